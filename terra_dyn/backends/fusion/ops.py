"""Which ATen ops a fused kernel computes, on any device: the op table every kernel emitter
(Triton, C++) implements, with each op's operand-cast rule and the uses it accepts.

    spec_of(node)       -> PointwiseSpec, or None when the node stays an ATen call
    reduction_of(node)  -> Reduction(kind, source, dims, keepdim), or None

Operand rules (how an emitter casts each tensor operand before the op):
    "out"      to the compute dtype of the op's result (float ops on int tensors, int sums)
    "promote"  to the common dtype of the inputs (comparisons, whose result is bool)
    "bool"     to bool (logical ops, where's condition)
    "keep"     left as loaded (casts, isnan)
Compute dtypes are eager's result dtypes with float16/bfloat16 raised to float32.

Example: spec_of(aten.eq.Tensor node).operands == ("promote",); an emitter's table then
maps "eq" to its own expression ("tmp0 == tmp1" in both Triton and C++).
"""
from dataclasses import dataclass
from typing import Callable

import torch
import torch.fx as fx

aten = torch.ops.aten

# dtypes a kernel loads, computes and stores; others (complex, fp8, quantized) stay ATen calls.
FUSIBLE_DTYPES = frozenset({torch.float16, torch.bfloat16, torch.float32, torch.float64, torch.int8,
                            torch.int16, torch.int32, torch.int64, torch.uint8, torch.bool})


def compute_dtype(dtype: torch.dtype) -> torch.dtype:
    """Half-precision values live in float32 inside a kernel, as eager computes them."""
    return torch.float32 if dtype in (torch.float16, torch.bfloat16) else dtype


def out_dtype(node: fx.Node) -> torch.dtype:
    return node.meta["val"].dtype


def is_float(node):
    return out_dtype(node).is_floating_point


def kwarg(node, name, default=None):
    return node.kwargs.get(name, default)


def op_name(node: fx.Node) -> str:
    target = node.target
    if isinstance(target, torch._ops.OpOverload):
        return target._schema.name.split("::")[-1]
    return getattr(target, "__name__", str(target))


@dataclass(frozen=True)
class PointwiseSpec:
    operands: tuple = ("out",)  # rule per operand; the last rule repeats
    accepts: Callable = None    # (node) -> bool; None accepts every float/int/bool use

    def rule(self, i):
        return self.operands[min(i, len(self.operands) - 1)]


def _pow_accepts(n):
    exp = n.args[1]
    return is_float(n) or (not isinstance(exp, fx.Node) and exp in (1, 2, 3, 4))


_CAST_KWARGS = {"dtype", "layout", "device", "pin_memory", "non_blocking", "memory_format"}


def _cast_accepts(n):
    if set(n.kwargs) - _CAST_KWARGS:
        return False
    source = n.args[0]
    return isinstance(source, fx.Node) and source.meta["val"].device == n.meta["val"].device


def _creation_accepts(n):
    if set(n.kwargs) - _CAST_KWARGS:
        return False
    fill = n.args[1] if op_name(n) in ("full_like", "fill") and len(n.args) > 1 else 0
    return not isinstance(fill, fx.Node) and n.args[0].meta["val"].device == n.meta["val"].device


def _not_bool(n):
    return out_dtype(n) != torch.bool


def _not_float(n):
    return not is_float(n)


_ANY = PointwiseSpec()
_FLOAT = PointwiseSpec(accepts=is_float)
_NOT_BOOL = PointwiseSpec(accepts=_not_bool)
_PROMOTE = PointwiseSpec(("promote",))
_BOOL = PointwiseSpec(("bool",))
_BITWISE = PointwiseSpec(accepts=_not_float)
_CREATION = PointwiseSpec(("keep",), accepts=_creation_accepts)

SPECS = {
    "add": _ANY, "sub": _ANY, "mul": _ANY, "div": _ANY, "floor_divide": _ANY, "remainder": _ANY, "fmod": _ANY,
    "pow": PointwiseSpec(accepts=_pow_accepts), "maximum": _NOT_BOOL, "minimum": _NOT_BOOL,
    "neg": _NOT_BOOL, "abs": _NOT_BOOL, "reciprocal": _FLOAT, "exp": _FLOAT, "exp2": _FLOAT, "expm1": _FLOAT,
    "log": _FLOAT, "log2": _FLOAT, "log10": _FLOAT, "log1p": _FLOAT, "sqrt": _FLOAT, "rsqrt": _FLOAT,
    "sin": _FLOAT, "cos": _FLOAT, "tan": _FLOAT, "tanh": _FLOAT, "erf": _FLOAT, "sigmoid": _FLOAT,
    "floor": _ANY, "ceil": _ANY, "trunc": _ANY,
    "round": PointwiseSpec(accepts=lambda n: not n.kwargs.get("decimals") and len(n.args) == 1),
    "sign": _NOT_BOOL, "sgn": _ANY, "relu": _NOT_BOOL,
    "eq": _PROMOTE, "ne": _PROMOTE, "lt": _PROMOTE, "le": _PROMOTE, "gt": _PROMOTE, "ge": _PROMOTE,
    "logical_and": _BOOL, "logical_or": _BOOL, "logical_xor": _BOOL, "logical_not": _BOOL,
    "bitwise_and": _BITWISE, "bitwise_or": _BITWISE, "bitwise_xor": _BITWISE, "bitwise_not": _BITWISE,
    "isnan": PointwiseSpec(("keep",)),
    "isinf": PointwiseSpec(("keep",), accepts=lambda n: n.args[0].meta["val"].dtype.is_floating_point),
    "where": PointwiseSpec(("bool", "out")), "masked_fill": PointwiseSpec(("out", "bool", "out")),
    "clamp": PointwiseSpec(accepts=lambda n: _not_bool(n) and not any(
        isinstance(v, fx.Node) for v in n.kwargs.values())),
    "clamp_min": _ANY, "clamp_max": _ANY, "addcmul": _ANY, "addcdiv": _FLOAT, "lerp": _FLOAT,
    "_to_copy": PointwiseSpec(("keep",), accepts=_cast_accepts),
    "convert_element_type": PointwiseSpec(("keep",), accepts=lambda n: True),
    "clone": PointwiseSpec(accepts=lambda n: set(n.kwargs) <= {"memory_format"}),
    "copy": PointwiseSpec(("out",), accepts=lambda n: not n.kwargs),
    "zeros_like": _CREATION, "ones_like": _CREATION, "full_like": _CREATION, "fill": _CREATION,
}


def spec_of(node: fx.Node):
    """The PointwiseSpec of a node that a kernel can compute, or None."""
    if node.op != "call_function" or not isinstance(node.target, torch._ops.OpOverload):
        return None
    spec = SPECS.get(op_name(node))
    if spec is None or not isinstance(node.meta.get("val"), torch.Tensor):
        return None
    if spec.accepts is not None and not spec.accepts(node):
        return None
    return spec


# kind of each reduction op (argmax/argmin return int64 positions in the reduced dims)
REDUCTIONS = {"sum": "sum", "amax": "max", "amin": "min", "max": "max", "min": "min",
              "argmax": "argmax", "argmin": "argmin"}


@dataclass(frozen=True)
class Reduction:
    kind: str
    source: fx.Node
    dims: tuple     # sorted, non-negative
    keepdim: bool


def reduction_of(node: fx.Node):
    """The Reduction a node performs, or None when it is not a lowerable reduction."""
    if node.op != "call_function" or not isinstance(node.target, torch._ops.OpOverload):
        return None
    name = op_name(node)
    if name not in REDUCTIONS or not node.args or not isinstance(node.args[0], fx.Node):
        return None
    overload = node.target._overloadname
    if name in ("max", "min") and overload != "default":
        return None  # max.dim returns (values, indices): stays an ATen call
    if name == "sum" and overload not in ("default", "dim_IntList"):
        return None
    source = node.args[0]
    rank = source.meta["val"].dim()
    if name == "sum" and overload == "default":
        dim, keepdim = None, False
    else:
        dim = node.args[1] if len(node.args) > 1 else node.kwargs.get("dim")
        keepdim = bool(node.args[2] if len(node.args) > 2 else node.kwargs.get("keepdim", False))
    if dim is None or (isinstance(dim, (list, tuple)) and len(dim) == 0):
        dims = tuple(range(rank))
    else:
        dims = tuple(sorted({d % max(rank, 1) for d in ([dim] if isinstance(dim, int) else dim)}))
    if rank == 0 or (name in ("argmax", "argmin") and len(dims) > 1 and len(dims) != rank):
        return None
    if REDUCTIONS[name] != "sum" and source.meta["val"].dtype == torch.bool:
        return None  # bool max/argmax: rare, stays an ATen call
    return Reduction(REDUCTIONS[name], source, dims, keepdim)
