"""ATen steps between kernels put back together into the composite calls they came from
(`linear`, `matmul`), and steps that read no graph input computed once (constants).

make_fx decomposes every CompositeImplicit op, so a linear layer of a small model reaches a
Program as four Python steps where the user's graph made one call:

    t = torch.t(w); v = x.view([16, 64]); mm = torch.mm(v, t)
    y = torch.ops.aten._unsafe_view.default(mm, [2, 8, 64])
        -> y = torch._C._nn.linear(x, w)          (at::linear runs the same mm in C++)

[2, 8, 64] x [64, 128], 1 thread: 15.0 us as four steps, 8.6 us as linear (with a bias:
17.0 -> 9.8 us); a 2-layer llama's forward has 15 linears and 4 batched matmuls
(docs/CPU_BACKEND.md, session 20). The composite is called only where it runs exactly the
decomposed steps (same kernel, same operands, so the same bits): linear without a bias
takes matmul's fold (a view of x, mm), with a bias on a 2-D or contiguous 3-D x addmm;
matmul of two tensors of at least 3 dims expands, reshapes and calls bmm.

Constants: a causal mask built from `arange`s, comparisons and `where` (every decoder of
the Hugging Face corpus) reads no input; its ~20 steps ran on every call. Such a step is
computed once when the Program is made and read as an attribute, unless its value (or a
view of it) is an output, which the caller could change, or is too big to keep.
"""
import operator

import torch
import torch.fx as fx

aten = torch.ops.aten

# a folded constant is kept per Program: at most this many elements each
CONSTANT_MAX_ELEMENTS = 1 << 16


def _val(node):
    return node.meta.get("val") if isinstance(node, fx.Node) else None


def _call(node, target) -> bool:
    return isinstance(node, fx.Node) and node.op == "call_function" and node.target is target and not node.kwargs


def _only_user(node, user) -> bool:
    return list(node.users) == [user]


def _linear_operands(out: fx.Node):
    """(x, w, bias or None) when `out` is a decomposed linear layer at::linear repeats."""
    mm = out
    if _call(out, aten._unsafe_view.default) or _call(out, aten.view.default):
        mm = out.args[0]
        if not isinstance(mm, fx.Node) or not _only_user(mm, out):
            return None
    bias = None
    if _call(mm, aten.addmm.default) and len(mm.args) == 3:
        bias, flat, t = mm.args
    elif _call(mm, aten.mm.default):
        flat, t = mm.args
    else:
        return None
    if not _call(t, aten.t.default):
        return None
    w = t.args[0]
    x = flat.args[0] if mm is not out and _call(flat, aten.view.default) else flat
    vals = [_val(n) for n in (out, x, w, flat)] + ([_val(bias)] if bias is not None else [])
    if not all(isinstance(v, torch.Tensor) for v in vals):
        return None
    out_v, x_v, w_v = vals[0], vals[1], vals[2]
    if w_v.dim() != 2 or x_v.dim() < 2 or tuple(out_v.shape) != (*x_v.shape[:-1], w_v.shape[0]):
        return None
    if (mm is out) != (x_v.dim() == 2):
        return None
    shape, strides = x_v.shape, x_v.stride()
    if any(strides[i] != strides[i + 1] * shape[i + 1] for i in range(x_v.dim() - 2)):
        return None  # a view that matmul would not fold (a size-1 dim's odd stride): it calls bmm
    if bias is not None and (_val(bias).dim() != 1 or x_v.dim() > 3 or x_v.dim() == 3 and not x_v.is_contiguous()):
        return None  # at::linear adds a bias to other inputs after a matmul: another rounding
    return x, w, bias


def _target(node):
    return node.target if isinstance(node, fx.Node) and node.op == "call_function" else None


def _reshape_of(node):
    """x when `node` is x reshaped by a view, or by a contiguous clone and a view."""
    if not (_call(node, aten.view.default) or _call(node, aten._unsafe_view.default)):
        return None
    inner = node.args[0]
    if _target(inner) is aten.clone.default and len(inner.args) == 1 and \
            inner.kwargs.get("memory_format", torch.contiguous_format) == torch.contiguous_format:
        inner = inner.args[0]
    return inner


def _matmul_operand(node):
    """a when `node` is matmul's reshape of expand(a) to [batch, rows, cols], else None."""
    expand = _reshape_of(node)
    if _target(expand) is not aten.expand.default or expand.kwargs.get("implicit", False):
        return None
    return expand.args[0]


def _matmul_operands(out: fx.Node):
    """(a, b) when `out` is at::matmul's batched path (both of at least 3 dims) decomposed."""
    if not (_call(out, aten._unsafe_view.default) or _call(out, aten.view.default)):
        return None
    bmm = out.args[0]
    if not _call(bmm, aten.bmm.default) or not _only_user(bmm, out):
        return None
    a, b = (_matmul_operand(n) for n in bmm.args)
    va, vb, vo = _val(a), _val(b), _val(out)
    if not all(isinstance(v, torch.Tensor) for v in (va, vb, vo)) or va.dim() < 3 or vb.dim() < 3:
        return None
    try:
        batch = torch.broadcast_shapes(va.shape[:-2], vb.shape[:-2])
    except RuntimeError:
        return None
    if va.shape[-1] != vb.shape[-2] or tuple(vo.shape) != (*batch, va.shape[-2], vb.shape[-1]):
        return None
    return a, b


def _unsafe_view_as_view(graph: fx.Graph) -> int:
    """`_unsafe_view` has no Python binding (its overload's call: ~0.4 us more than `view`);
    a result that stays inside the graph may as well be a view (one that reaches the
    caller keeps being no view: an autograd.Function rejects in-place changes of views)."""
    output = next(n for n in graph.nodes if n.op == "output")
    count = 0
    for node in graph.nodes:
        if _call(node, aten._unsafe_view.default) and not _escapes(node, output):
            node.target = aten.view.default
            count += 1
    return count


def _drop_dead(graph: fx.Graph, nodes, erased: set):
    for node in nodes:
        if node.op == "call_function" and not node.users and node not in erased:
            inputs = node.all_input_nodes
            graph.erase_node(node)
            erased.add(node)
            _drop_dead(graph, inputs, erased)


def use_composites(graph: fx.Graph) -> int:
    """Rewrite decomposed linear layers and batched matmuls of `graph` into one call each,
    and `_unsafe_view`s that stay inside it into views; returns how many steps changed."""
    count, erased = 0, set()
    for node in reversed(list(graph.nodes)):  # a layer's last step first: it covers the most
        if node.op != "call_function" or node in erased:
            continue
        linear = _linear_operands(node)
        matmul = None if linear else _matmul_operands(node)
        if linear is None and matmul is None:
            continue
        if linear:
            target, args = torch._C._nn.linear, linear if linear[2] is not None else linear[:2]
        else:
            target, args = torch.matmul, matmul
        with graph.inserting_before(node):
            new = graph.call_function(target, tuple(args))
        new.meta = dict(node.meta)
        inputs = node.all_input_nodes
        node.replace_all_uses_with(new)
        graph.erase_node(node)
        erased.add(node)
        _drop_dead(graph, inputs, erased)
        count += 1
    return count + _unsafe_view_as_view(graph)


def _aliases(node: fx.Node) -> bool:
    """Whether `node`'s result may share memory with an input (a view op)."""
    target = node.target
    if target is operator.getitem:
        return True
    if not isinstance(target, torch._ops.OpOverload):
        return True
    returns = target._schema.returns
    return any(r.alias_info is not None for r in returns)


def _escapes(node: fx.Node, output: fx.Node) -> bool:
    """Whether `node`'s storage can reach the graph's output (itself or through views)."""
    for user in node.users:
        if user is output or user.op == "call_function" and _aliases(user) and _escapes(user, output):
            return True
    return False


def _foldable(node: fx.Node, constants) -> bool:
    target = node.target
    if node.op != "call_function" or not isinstance(target, torch._ops.OpOverload):
        return False
    if target._schema.is_mutable or torch.Tag.nondeterministic_seeded in target.tags:
        return False
    if target.overloadpacket in (aten.empty, aten.empty_like, aten.empty_strided, aten.new_empty):
        return False  # uninitialized memory: read only once written, by a step we keep
    val = _val(node)
    if not isinstance(val, torch.Tensor) or val.device.type != "cpu" or val.numel() > CONSTANT_MAX_ELEMENTS:
        return False
    return all(n in constants for n in node.all_input_nodes)


def fold_constants(gm: fx.GraphModule, graph: fx.Graph) -> int:
    """Compute once the steps of `graph` that read no graph input; their values become
    attributes of `gm` (the root the rewritten module copies them from). Returns how many
    steps no longer run per call."""
    if any(isinstance(n.target, torch._ops.OpOverload) and n.target._schema.is_mutable
           for n in graph.nodes if n.op == "call_function"):
        return 0  # a step writing a tensor in place could write a constant
    output = next(n for n in graph.nodes if n.op == "output")
    constants = {}  # node -> its value
    with torch.no_grad():
        for node in graph.nodes:
            if node.op == "get_attr":
                value = operator.attrgetter(node.target)(gm)
                if isinstance(value, torch.Tensor) and not value.requires_grad:
                    constants[node] = value
            elif _foldable(node, constants):
                args, kwargs = fx.node.map_arg((node.args, node.kwargs), constants.__getitem__)
                try:
                    constants[node] = node.target(*args, **kwargs)
                except Exception:  # noqa: BLE001 - the step then runs per call, as before
                    continue
    for node in [n for n in constants if n.op == "call_function" and _escapes(n, output)]:
        del constants[node]  # the caller could change it: a fresh one per call
    folded = 0
    for node in list(constants):
        users = [u for u in node.users if u not in constants]
        if node.op != "call_function" or not users:
            continue
        name = f"_terra_constant_{folded}"
        gm.register_buffer(name, constants[node], persistent=False)
        with graph.inserting_before(node):
            attr = graph.get_attr(name)
        attr.meta = dict(node.meta)
        node.replace_all_uses_with(attr, delete_user_cb=lambda user: user not in constants)
        folded += 1
    dropped = 0
    for node in reversed(list(graph.nodes)):
        if node in constants and not node.users:
            graph.erase_node(node)
            dropped += node.op == "call_function"
    return dropped
