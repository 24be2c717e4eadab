"""The graph being built: FX nodes, graph inputs, fake tensors and recorded side effects.

    GraphState.input_tensor(real, source)  -> TensorValue (a placeholder; guards added)
    GraphState.call(kind, target, args)    -> Value (an FX node; shapes from fake tensors)
    GraphState.side_effects                -> replayed in program order by the rewritten code
    GraphState.finish(live_values)         -> GraphModule whose outputs are the live tensors

Example: `torch.relu(x) + 1` on an input x adds placeholder x, call_function relu and
call_function operator.add, each with a fake tensor saying its shape and dtype.
"""
import logging
import operator
import threading

import torch
import torch.fx as fx
from torch._subclasses.fake_tensor import FakeTensorMode

from .errors import Unsupported
from .values import ConstValue, ListValue, ScalarValue, TensorValue, TupleValue, Value

class _QuietFakeErrors(logging.Filter):
    """Fake-tensor propagation failing is expected (it becomes a graph break): no log."""

    state = threading.local()

    def filter(self, record):
        return not getattr(self.state, "active", False)


_quiet = _QuietFakeErrors()
logging.getLogger("torch._subclasses.fake_tensor").addFilter(_quiet)

_FX_CONSTANTS = (int, float, bool, str, type(None), torch.dtype, torch.device, torch.memory_format,
                 torch.layout, type(Ellipsis), slice, range)


class GraphState:
    def __init__(self, guards):
        self.guards = guards
        self.graph = fx.Graph()
        self.fake_mode = FakeTensorMode()
        self.inputs = []  # (Value, source) in placeholder order
        self._by_id = {}  # id(real input) -> Value (aliases share one placeholder)
        self._keepalive = []
        self.side_effects = []  # SideEffect records, program order
        self.mutated = {}  # id(real container) -> the ListValue/DictValue to write back
        self.attr_overlay = {}  # (id(obj), name) -> Value stored during translation
        self._last_placeholder = None
        self.op_count = 0

    # -- inputs ---------------------------------------------------------------------
    def _placeholder(self, name):
        if self._last_placeholder is None:
            first = next(iter(self.graph.nodes), None)
            ctx = self.graph.inserting_before(first) if first is not None else self.graph.inserting_after(None)
        else:
            ctx = self.graph.inserting_after(self._last_placeholder)
        with ctx:
            node = self.graph.placeholder(_clean(name))
        self._last_placeholder = node
        return node

    def input_tensor(self, real, source, by_identity=False):
        known = self._by_id.get(id(real))
        if known is not None:
            if source is not None and known.source is not None and source != known.source:
                # `f(x, x)`: the graph reads both through one placeholder, so a later call
                # with two different tensors must not reuse it
                self.guards.same_object(source, known.source, real)
            return known
        if by_identity:
            self.guards.identity(source, real)
        else:
            self.guards.tensor(source, real)
        node = self._placeholder(source.expr())
        fake = self.fake_mode.from_tensor(real)
        node.meta["example_value"] = fake
        value = TensorValue(node, fake, source)
        value.cls = type(real)
        value.real = real  # for attributes read from the real input (x.grad after backward)
        self._by_id[id(real)] = value
        self._keepalive.append(real)
        self.inputs.append((value, source))
        return value

    def known_input(self, real):
        """The value of a real object already used as a graph input, or None."""
        return self._by_id.get(id(real)) if real is not None else None

    def input_scalar(self, real, source):
        """A number that varies between calls: a graph input instead of a constant."""
        self.guards.type(source, type(real))
        node = self._placeholder(source.expr())
        value = ScalarValue(node, real, source)
        self.inputs.append((value, source))
        return value

    # -- ops ------------------------------------------------------------------------
    def call(self, kind, target, args, kwargs=None):
        """Add one node; `kind` is "call_function" or "call_method"."""
        kwargs = kwargs or {}
        node_args = tuple(_to_node(a) for a in args)
        node_kwargs = {k: _to_node(v) for k, v in kwargs.items()}
        fake_args = tuple(_to_fake(a) for a in args)
        fake_kwargs = {k: _to_fake(v) for k, v in kwargs.items()}
        _quiet.state.active = True
        try:
            with self.fake_mode:
                if kind == "call_method":
                    result = getattr(fake_args[0], target)(*fake_args[1:], **fake_kwargs)
                else:
                    result = target(*fake_args, **fake_kwargs)
        except Unsupported:
            raise
        except Exception as exc:  # a user error (shape mismatch) or a data-dependent op:
            # break here, so the real instruction runs natively and raises (or computes) as eager
            name = getattr(target, "__name__", target)
            raise Unsupported(f"{name}: {type(exc).__name__}: {str(exc).splitlines()[0][:200] if str(exc) else ''}")
        finally:
            _quiet.state.active = False
        node = self.graph.create_node(kind, target, node_args, node_kwargs)
        self.op_count += 1
        mutated = _mutated_arg(kind, target, args, kwargs)
        if mutated is not None and isinstance(result, torch.Tensor):
            # an in-place op returns its argument: keep aliasing visible (`y += 1; y is x`)
            node.meta["example_value"] = result
            return mutated
        return self._wrap_result(node, result)

    def _wrap_result(self, node, result):
        if isinstance(result, torch.Tensor):
            node.meta["example_value"] = result
            return TensorValue(node, result)
        if isinstance(result, (tuple, list)) and not isinstance(result, torch.Size):
            items = []
            for i, r in enumerate(result):
                sub = self.graph.call_function(operator.getitem, (node, i))
                items.append(self._wrap_result(sub, r))
            if isinstance(result, list):
                return ListValue(items)
            return TupleValue(items, cls=type(result))  # tuple or torch.return_types.*
        if isinstance(result, torch.Size):
            return TupleValue([ConstValue(int(s)) for s in result], cls=torch.Size)
        if isinstance(result, (int, float, bool)):
            if isinstance(node, fx.Node) and _depends_on_scalar(node):
                return ScalarValue(node, result)
            return ConstValue(result)
        if result is None or isinstance(result, (torch.dtype, torch.device, str)):
            return ConstValue(result)
        raise Unsupported(f"op returned {type(result).__name__}")

    def record(self, effect):
        self.side_effects.append(effect)

    # -- finishing ------------------------------------------------------------------
    def finish(self, outputs):
        """A GraphModule returning `outputs` (graph values), or None for an empty graph."""
        if not self.op_count and not outputs:
            return None
        nodes = tuple(v.node for v in outputs)
        self.graph.output(nodes)
        self.graph.eliminate_dead_code(is_impure_node=_is_impure)
        gm = fx.GraphModule(torch.nn.Module(), self.graph)
        gm.graph.lint()
        return gm

    def example_inputs(self):
        return [src for _, src in self.inputs]


def _is_impure(node):
    if node.op in ("placeholder", "output"):
        return True
    target = node.target
    from .generator_cm import is_impure as changes_rng_state

    if changes_rng_state(target):  # manual_seed / set_rng_state: kept, in program order
        return True
    if node.op == "call_method":
        return isinstance(target, str) and target.endswith("_") and not target.endswith("__")
    name = getattr(target, "__name__", "")
    if getattr(target, "__module__", None) in ("_operator", "operator") and target not in _INPLACE_OPERATORS \
            and target is not operator.setitem:
        return False
    if target in (operator.setitem, torch._C._set_grad_enabled, operator.iadd, operator.imul,
                  operator.isub, operator.itruediv):
        return True
    if node.kwargs.get("inplace") is True or "out" in node.kwargs:
        return True
    return name.endswith("_") and not name.endswith("__")


_INPLACE_OPERATORS = {operator.iadd, operator.isub, operator.imul, operator.itruediv,
                      operator.ifloordiv, operator.imod, operator.ipow, operator.iand, operator.ior,
                      operator.ixor, operator.ilshift, operator.irshift, operator.imatmul}


def _mutated_arg(kind, target, args, kwargs):
    """The TensorValue an in-place op writes to and returns, or None."""
    out = kwargs.get("out")
    if isinstance(out, TensorValue):
        return out
    first = args[0] if args else None
    if not isinstance(first, TensorValue):
        return None
    if kind == "call_method":
        name = target
    elif target in _INPLACE_OPERATORS:
        return first
    elif getattr(target, "__module__", None) in ("_operator", "operator"):
        return None  # operator.and_ / or_ are not in-place despite the underscore
    else:
        name = getattr(target, "__name__", "")
        inplace = kwargs.get("inplace")
        if isinstance(inplace, ConstValue) and inplace.value is True:
            return first
    if name.endswith("_") and not name.endswith("__"):
        return first
    return None


def _depends_on_scalar(node):
    return any(isinstance(a, fx.Node) and not isinstance(a.meta.get("example_value"), torch.Tensor)
               for a in node.args)


def _clean(name):
    out = "".join(c if c.isalnum() else "_" for c in name).strip("_")
    return out or "input"


def _to_node(v):
    if isinstance(v, (TensorValue, ScalarValue)):
        return v.node
    if isinstance(v, ConstValue):
        if v.by_type:  # its value is not guarded: baking it in would reuse a stale value
            raise Unsupported(f"cannot pass a {type(v.value).__name__} guarded only by type to a graph op")
        if isinstance(v.value, _FX_CONSTANTS) or isinstance(v.value, torch.Size):
            return v.value
        if isinstance(v.value, (tuple, list)) and all(isinstance(x, _FX_CONSTANTS) for x in v.value):
            return v.value
        raise Unsupported(f"cannot pass {type(v.value).__name__} to a graph op")
    if isinstance(v, TupleValue):
        return tuple(_to_node(x) for x in v.items)
    if isinstance(v, ListValue):
        return [_to_node(x) for x in v.items]
    if isinstance(v, Value):
        raise Unsupported(f"cannot pass {v!r} to a graph op")
    return v


def _to_fake(v):
    if isinstance(v, TensorValue):
        return v.fake
    if isinstance(v, ScalarValue):
        return v.example
    if isinstance(v, ConstValue):
        return v.value
    if isinstance(v, TupleValue):
        items = tuple(_to_fake(x) for x in v.items)
        return torch.Size(items) if v.cls is torch.Size else items
    if isinstance(v, ListValue):
        return [_to_fake(x) for x in v.items]
    return v
