"""Lazy modules (nn.LazyLinear, LazyConv2d, ...): their first call is initialized now.

    module(x) with uninitialized parameters, at the start of a graph
        -> module._infer_parameters(module, (real x,), {}) runs eagerly at translate time
           (parameters materialized with eager's RNG draws, the pre-hook removed, the class
           switched to Linear / Conv2d ...) -> the now ordinary module is inlined as usual

Why this is exact: translation happens when the frame is called, before any of the graph
runs; with no graph op and no side effect recorded before the call, eager would also run
this initialization first, drawing the same random numbers in the same order. Otherwise
(or when an argument's real value is unknown) the call stays a graph break: the module
initializes itself natively. If the translation fails later, the fallback runs the
original code on the initialized module, which is what eager's state is at that point.

Example: `f(m, x)` with m = nn.LazyLinear(4): m becomes Linear(in=x.shape[-1], 4) when f
is first translated; the graph is linear(x, m.weight, m.bias).
"""
import torch

from ..real_types import isa
from .values import ConstValue, TensorValue


def maybe_initialize(tx, module, args, kwargs):
    """Initialize `module` now if it is an uninitialized lazy module and that is exact."""
    from torch.nn.modules.lazy import LazyModuleMixin

    if not isinstance(module, LazyModuleMixin) or not module.has_uninitialized_params():
        return
    graph = tx.ctx.graph
    if graph.op_count or graph.side_effects or tx.ctx.mutated:
        return  # something would run before it in eager order
    real_args = [_real(a) for a in args]
    real_kwargs = {k: _real(v) for k, v in kwargs.items()}
    if any(a is _UNKNOWN for a in real_args) or any(v is _UNKNOWN for v in real_kwargs.values()):
        return
    hook = getattr(module, "_initialize_hook", None)
    if hook is None or hook.id not in module._forward_pre_hooks:
        return
    fn = module._forward_pre_hooks[hook.id]
    if getattr(fn, "__func__", None) is not LazyModuleMixin._infer_parameters:
        return  # a subclass hooking its own initialization: left to run natively
    with torch.no_grad() if not torch.is_grad_enabled() else _nullcontext():
        module._infer_parameters(module, tuple(real_args), real_kwargs)


class _Unknown:
    pass


_UNKNOWN = _Unknown()


class _nullcontext:
    def __enter__(self):
        return None

    def __exit__(self, *exc):
        return False


def _real(value):
    if isinstance(value, TensorValue):
        real = getattr(value, "real", None)
        return real if isa(real, torch.Tensor) else _UNKNOWN
    if isinstance(value, ConstValue) and not value.by_type and \
            isa(value.value, (int, float, bool, type(None), str)):
        return value.value
    return _UNKNOWN
