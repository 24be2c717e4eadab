"""Attention written out by hand, `softmax(q @ k.transpose(-2, -1) * scale, -1) @ v`, as one
`torch.nn.functional.scaled_dot_product_attention(q, k, v, scale=scale)` call.

    matmul = q @ k.transpose(-2, -1)                 sdpa = scaled_dot_product_attention(
    mul = matmul * 0.125                       ->            q, k, v, scale=0.125)
    softmax = torch.softmax(mul, -1)
    out = softmax @ v

Two matmuls of 4-D tensors each copy their strided operands into contiguous 3-D batches
(q, k and v taken from one qkv projection are all strided): the CPU attention kernel reads
them where they lie and keeps the scores of a block of rows in cache. Measured (1 thread,
process CPU time, q/k/v [64, 4, 64, 64] split from a qkv projection): 7.6 ms -> 5.4 ms;
batch 1: 0.080 -> 0.071 ms. The results differ by rounding only (the kernel sums scores
block by block): 4e-7 to 6e-7 absolute on these inputs.

A match needs: 4-D q, k, v of one floating dtype (float32 or float64) on the CPU, equal
batch and head sizes, k transposed over its last two dims, a softmax over the last dim
without a dtype, a constant scale (a multiplication or division by a Python number, or
none), and no other user of the scores or the probabilities. Anything else is left as
written. The shapes come from the frontend's per-node values (`example_value`); a graph
without them is left as written. Training graphs use it too: the joint graph
(fusion/joint.py) then holds the kernel's forward and its backward
(`_scaled_dot_product_flash_attention_for_cpu_backward`), with no dropout (p = 0.0: no
random numbers drawn). Measured forward + backward, same shapes: 26.5 -> 21.8 ms (batch 64),
0.48 -> 0.37 ms (batch 1).
"""
import numbers
import operator

import torch
import torch.fx as fx
import torch.nn.functional as F

_MATMULS = {operator.matmul, torch.matmul}
_SOFTMAXES = {torch.softmax, F.softmax}
_TRANSPOSES = {torch.transpose}
_MULS = {operator.mul, torch.mul}
_DIVS = {operator.truediv, torch.div}
_DTYPES = (torch.float32, torch.float64)


def _call(node, functions, method):
    """The positional arguments of `node` if it calls one of `functions` or `.method`."""
    if isinstance(node, fx.Node) and (node.op == "call_function" and node.target in functions
                                      or node.op == "call_method" and node.target == method):
        return node.args
    return None


def _value(node):
    return node.meta.get("example_value", node.meta.get("val")) if isinstance(node, fx.Node) else None


def _scale(node):
    """(scores node, scale) for `scores * c`, `c * scores`, `scores / c`; (node, 1.0) otherwise."""
    args = _call(node, _MULS, "mul")
    if args is not None and not node.kwargs and len(args) == 2:
        for scores, c in (args, args[::-1]):
            if isinstance(c, numbers.Real) and not isinstance(c, bool) and isinstance(scores, fx.Node):
                return scores, float(c)
    args = _call(node, _DIVS, "div")
    if args is not None and not node.kwargs and len(args) == 2 and isinstance(args[1], numbers.Real) \
            and not isinstance(args[1], bool) and args[1] != 0:
        return args[0], 1.0 / float(args[1])
    return node, 1.0


def _transposed_last_two(node):
    """k when `node` is k.transpose(-2, -1) (either order, or as positive dims of a 4-D k)."""
    args = _call(node, _TRANSPOSES, "transpose")
    if args is None or node.kwargs or len(args) != 3:
        return None
    k, d0, d1 = args
    if isinstance(d0, int) and isinstance(d1, int) and {d0 % 4, d1 % 4} == {2, 3}:
        return k
    return None


def _softmax_input(node):
    """x for `softmax(x, -1)` without a dtype (function, method or F.softmax); else None."""
    args = _call(node, _SOFTMAXES, "softmax")
    if args is None or len(args) > 2 or set(node.kwargs) - {"dim", "_stacklevel", "dtype"} \
            or node.kwargs.get("dtype") is not None:
        return None
    dim = args[1] if len(args) > 1 else node.kwargs.get("dim")
    return args[0] if dim in (-1, 3) else None  # 3: the last dim of the 4-D scores (_match)


def _match(softmax):
    """(q, k, v, scale, output node, nodes to erase) for an attention ending at `softmax`."""
    scaled = _softmax_input(softmax)
    if scaled is None or len(softmax.users) != 1:
        return None
    (out,) = softmax.users
    args = _call(out, _MATMULS, "matmul")
    if args is None or out.kwargs or len(args) != 2 or args[0] is not softmax:
        return None
    v = args[1]
    scores, scale = _scale(scaled)
    if scores is not scaled and len(scaled.users) != 1:
        return None
    args = _call(scores, _MATMULS, "matmul")
    if args is None or scores.kwargs or len(args) != 2 or len(scores.users) != 1:
        return None
    q, kt = args
    k = _transposed_last_two(kt)
    values = [_value(n) for n in (q, k, v)]
    if k is None or not all(isinstance(t, torch.Tensor) for t in values):
        return None
    qv, kv, vv = values
    if not all(type(size) is int for t in values for size in t.shape):
        return None  # symbolic sizes: comparing them would add shape guards
    if not (all(t.dim() == 4 and t.dtype == qv.dtype for t in values) and qv.dtype in _DTYPES
            and qv.shape[:2] == kv.shape[:2] == vv.shape[:2] and qv.shape[3] == kv.shape[3]
            and kv.shape[2] == vv.shape[2]):
        return None
    devices = [n.meta.get("device", t.device) for n, t in zip((q, k, v), values)]
    if any(torch.device(d).type != "cpu" for d in devices):
        return None
    erase = [out, softmax] + ([scaled] if scaled is not scores else []) + [scores]
    return q, k, v, scale, out, erase, kt


def fuse_attention(gm: fx.GraphModule) -> fx.GraphModule:
    """`gm` itself when no attention matches, else a copy calling the fused kernel."""
    graph = fx.Graph()
    graph._codegen = gm.graph._codegen
    graph.output(graph.graph_copy(gm.graph, {}))
    fused = 0
    for node in [n for n in graph.nodes if _softmax_input(n) is not None]:
        found = _match(node)
        if found is None:
            continue
        q, k, v, scale, out, erase, kt = found
        with graph.inserting_before(out):
            sdpa = graph.call_function(F.scaled_dot_product_attention, (q, k, v), {"scale": scale})
        sdpa.meta = dict(out.meta)
        out.replace_all_uses_with(sdpa)
        for dead in erase:
            graph.erase_node(dead)
        if not kt.users:
            graph.erase_node(kt)
        fused += 1
    if not fused:
        return gm
    return fx.GraphModule(gm, graph)
