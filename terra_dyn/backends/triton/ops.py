"""The lowering table: which ATen ops become Triton code, and the expression each one emits.

A pointwise lowering turns already-rendered operands (Triton expressions or Python literals,
cast as its `operands` rule says) into one Triton expression:

    POINTWISE["add"].emit(["tmp0", "tmp1"], node)   ->  "tmp0 + tmp1"

Operand rules (how codegen casts each tensor operand before the op):
    "out"      to the compute dtype of the op's result (float ops on int tensors, int sums)
    "promote"  to the common dtype of the inputs (comparisons, whose result is bool)
    "bool"     to bool (logical ops, where's condition)
    "keep"     left as loaded (casts, isnan)
Compute dtypes are eager's result dtypes with float16/bfloat16 raised to float32.

A reduction lowering names a reduction kind (sum, max, min, argmax, argmin); codegen
writes the masked `tl.sum`/`tl.max` (single block) or the accumulator loop (large rows).
Ops absent here run as ATen calls between kernels.
"""
import math
from dataclasses import dataclass
from typing import Callable

import torch
import torch.fx as fx

aten = torch.ops.aten
prims = torch.ops.prims

TL_DTYPES = {
    torch.float16: "tl.float16", torch.bfloat16: "tl.bfloat16", torch.float32: "tl.float32",
    torch.float64: "tl.float64", torch.int8: "tl.int8", torch.int16: "tl.int16", torch.int32: "tl.int32",
    torch.int64: "tl.int64", torch.uint8: "tl.uint8", torch.bool: "tl.int1",
}


def compute_dtype(dtype: torch.dtype) -> torch.dtype:
    """Half-precision values live in float32 inside a kernel, as eager computes them."""
    return torch.float32 if dtype in (torch.float16, torch.bfloat16) else dtype


def literal(value) -> str:
    """A Python scalar as Triton source."""
    if isinstance(value, bool):
        return "True" if value else "False"
    if isinstance(value, float):
        if math.isnan(value):
            return 'float("nan")'
        if math.isinf(value):
            return 'float("inf")' if value > 0 else 'float("-inf")'
        return repr(value)
    if isinstance(value, int):
        return str(value)
    if isinstance(value, torch.dtype) and value in TL_DTYPES:
        return TL_DTYPES[value]
    raise TypeError(f"no Triton literal for {value!r}")


def out_dtype(node: fx.Node) -> torch.dtype:
    return node.meta["val"].dtype


def _is_float(node):
    return out_dtype(node).is_floating_point


def _kw(node, name, default=None):
    return node.kwargs.get(name, default)


@dataclass(frozen=True)
class Pointwise:
    emit: Callable            # (operands: list[str], node) -> str
    operands: tuple = ("out",)  # rule per operand; the last rule repeats
    accepts: Callable = None  # (node) -> bool; None accepts every float/int/bool use

    def rule(self, i):
        return self.operands[min(i, len(self.operands) - 1)]


def _binary(op):
    return Pointwise(lambda o, n: f"{o[0]} {op} {o[1]}")


def _alpha(sign):
    def emit(o, n):
        alpha = _kw(n, "alpha", 1)
        rhs = o[1] if alpha == 1 else f"{o[1]} * {literal(alpha)}"
        return f"{o[0]} {sign} {rhs}"
    return Pointwise(emit)


def _div(o, n):
    mode = _kw(n, "rounding_mode")
    if mode is None:
        return f"{o[0]} / {o[1]}"
    if _is_float(n):
        if mode == "floor":
            return f"tl.floor({o[0]} / {o[1]})"
        quotient = f"({o[0]} / {o[1]})"
        if out_dtype(n) == torch.float16:
            # eager rounds a half-precision quotient to its dtype before truncating: 5.9858
            # in fp32 is 5.984 in fp16 but 6.0 in bf16, and truncates to 6, not 5
            quotient = f"{quotient}.to(tl.float16).to(tl.float32)"
        elif out_dtype(n) == torch.bfloat16:
            # the same for bf16, rounding to nearest even with integer arithmetic: Triton's
            # CPU interpreter truncates a float32 -> bfloat16 cast where the GPU rounds
            bits = f"{quotient}.to(tl.uint32, bitcast=True)"
            quotient = f"(({bits} + 0x7FFF + (({bits} >> 16) & 1)) & 0xFFFF0000).to(tl.float32, bitcast=True)"
        return f"dm.trunc({quotient})"
    if mode == "trunc":
        return f"{o[0]} // {o[1]}"  # Triton's integer division truncates, like C
    return _floor_div_int(o)


def _floor_div_int(o):
    a, b = o
    return f"tl.where((({a} % {b}) != 0) & (({a} < 0) != ({b} < 0)), {a} // {b} - 1, {a} // {b})"


def _remainder(o, n):
    a, b = o
    if _is_float(n):
        return f"{a} - tl.floor({a} / {b}) * {b}"
    return f"tl.where((({a} % {b}) != 0) & ((({a} % {b}) < 0) != ({b} < 0)), ({a} % {b}) + {b}, {a} % {b})"


def _fmod(o, n):
    return f"{o[0]} - dm.trunc({o[0]} / {o[1]}) * {o[1]}" if _is_float(n) else f"{o[0]} % {o[1]}"


_POW_SPECIAL = {2: "{a} * {a}", 3: "{a} * {a} * {a}", 4: "({a} * {a}) * ({a} * {a})", 1: "{a}",
                0.5: "tl.sqrt_rn({a})", -0.5: "tl.rsqrt({a})", -1: "1.0 / {a}", -2: "1.0 / ({a} * {a})"}


def _pow(o, n):
    base, exp = n.args[0], n.args[1]
    if not isinstance(exp, fx.Node) and exp in _POW_SPECIAL:
        return _POW_SPECIAL[exp].format(a=o[0])
    if not isinstance(exp, fx.Node) and exp == 0:
        return f"tl.full({o[0]}.shape, 1, {o[0]}.dtype)"
    if not isinstance(base, fx.Node):
        return f"dm.pow(tl.full({o[1]}.shape, {o[0]}, {o[1]}.dtype), {o[1]})"
    if not isinstance(exp, fx.Node):
        return f"dm.pow({o[0]}, tl.full({o[0]}.shape, {o[1]}, {o[0]}.dtype))"
    return f"dm.pow({o[0]}, {o[1]})"


def _pow_accepts(n):
    exp = n.args[1]
    return _is_float(n) or (not isinstance(exp, fx.Node) and exp in (1, 2, 3, 4))


def _minmax(fn):
    def emit(o, n):
        if _is_float(n):
            return f"tl.{fn}({o[0]}, {o[1]}, propagate_nan=tl.PropagateNan.ALL)"
        return f"tl.{fn}({o[0]}, {o[1]})"
    return Pointwise(emit, accepts=lambda n: out_dtype(n) != torch.bool)


def _clamp(o, n):
    # where-based so that NaN stays NaN, as eager's clamp does
    value = o[0]
    low, high = (o[1] if len(o) > 1 else "None"), (o[2] if len(o) > 2 else "None")
    if "min" in n.kwargs and n.kwargs["min"] is not None:
        low = literal(n.kwargs["min"])
    if "max" in n.kwargs and n.kwargs["max"] is not None:
        high = literal(n.kwargs["max"])
    if low not in (None, "None"):
        value = f"tl.where({value} < {low}, {low}, {value})"
    if high not in (None, "None"):
        value = f"tl.where({value} > {high}, {high}, {value})"
    return value


def _cast(o, n):
    target = out_dtype(n)
    if target == torch.bool:
        return f"({o[0]} != 0)"
    if target in (torch.float16, torch.bfloat16):
        return f"{o[0]}.to({TL_DTYPES[target]}).to(tl.float32)"  # round as eager, compute in fp32
    return f"{o[0]}.to({TL_DTYPES[target]})"


_CAST_KWARGS = {"dtype", "layout", "device", "pin_memory", "non_blocking", "memory_format"}


def _cast_accepts(n):
    if set(n.kwargs) - _CAST_KWARGS:
        return False
    source = n.args[0]
    return isinstance(source, fx.Node) and source.meta["val"].device == n.meta["val"].device


def _fill(position):
    # zeros_like/ones_like/full_like/fill: a constant block shaped like the (unused) input;
    # the compiler drops the input's load, the interpreter just reads it
    def emit(o, n):
        value = {"zeros_like": "0", "ones_like": "1"}.get(op_name(n)) or o[position]
        return f"tl.full({o[0]}.shape, {value}, {TL_DTYPES[compute_dtype(out_dtype(n))]})"
    return Pointwise(emit, ("keep",), accepts=_creation_accepts)


def _creation_accepts(n):
    if set(n.kwargs) - _CAST_KWARGS:
        return False
    fill = n.args[1] if op_name(n) in ("full_like", "fill") and len(n.args) > 1 else 0
    return not isinstance(fill, fx.Node) and n.args[0].meta["val"].device == n.meta["val"].device


def _sign(o, n):
    dt = TL_DTYPES[compute_dtype(out_dtype(n))]
    return f"({o[0]} > 0).to({dt}) - ({o[0]} < 0).to({dt})"


def _float_only(n):
    return _is_float(n)


def _unary(fn, float_only=True):
    return Pointwise(lambda o, n: f"{fn}({o[0]})", accepts=_float_only if float_only else None)


def _rounding(fn):
    # floor/ceil/trunc/round of an integer tensor is the tensor itself
    return Pointwise(lambda o, n: f"{fn}({o[0]})" if _is_float(n) else o[0])


POINTWISE = {
    "add": _alpha("+"), "sub": _alpha("-"), "mul": _binary("*"),
    "div": Pointwise(_div), "floor_divide": Pointwise(lambda o, n: f"tl.floor({o[0]} / {o[1]})"
                                                      if _is_float(n) else _floor_div_int(o)),
    "remainder": Pointwise(_remainder), "fmod": Pointwise(_fmod),
    "pow": Pointwise(_pow, accepts=_pow_accepts),
    "maximum": _minmax("maximum"), "minimum": _minmax("minimum"),
    "neg": Pointwise(lambda o, n: f"-{o[0]}", accepts=lambda n: out_dtype(n) != torch.bool),
    "abs": Pointwise(lambda o, n: f"tl.abs({o[0]})", accepts=lambda n: out_dtype(n) != torch.bool),
    "reciprocal": _unary("1.0 / "), "exp": _unary("tl.exp"), "exp2": _unary("tl.exp2"),
    "expm1": _unary("dm.expm1"), "log": _unary("tl.log"), "log2": _unary("tl.log2"),
    "log10": _unary("dm.log10"), "log1p": _unary("dm.log1p"), "sqrt": _unary("tl.sqrt_rn"),
    "rsqrt": _unary("tl.rsqrt"), "sin": _unary("tl.sin"), "cos": _unary("tl.cos"), "tan": _unary("dm.tan"),
    "tanh": _unary("dm.tanh"), "erf": _unary("tl.erf"),
    "sigmoid": Pointwise(lambda o, n: f"1.0 / (1.0 + tl.exp(-{o[0]}))", accepts=_float_only),
    "floor": _rounding("tl.floor"), "ceil": _rounding("tl.ceil"), "trunc": _rounding("dm.trunc"),
    "round": Pointwise(lambda o, n: f"dm.nearbyint({o[0]})" if _is_float(n) else o[0],
                       accepts=lambda n: not n.kwargs.get("decimals") and len(n.args) == 1),
    "sign": Pointwise(_sign, accepts=lambda n: out_dtype(n) != torch.bool), "sgn": Pointwise(_sign),
    "relu": Pointwise(lambda o, n: f"tl.where({o[0]} < 0, 0, {o[0]})", accepts=lambda n: out_dtype(n) != torch.bool),
    "eq": Pointwise(lambda o, n: f"{o[0]} == {o[1]}", ("promote",)),
    "ne": Pointwise(lambda o, n: f"{o[0]} != {o[1]}", ("promote",)),
    "lt": Pointwise(lambda o, n: f"{o[0]} < {o[1]}", ("promote",)),
    "le": Pointwise(lambda o, n: f"{o[0]} <= {o[1]}", ("promote",)),
    "gt": Pointwise(lambda o, n: f"{o[0]} > {o[1]}", ("promote",)),
    "ge": Pointwise(lambda o, n: f"{o[0]} >= {o[1]}", ("promote",)),
    "logical_and": Pointwise(lambda o, n: f"{o[0]} & {o[1]}", ("bool",)),
    "logical_or": Pointwise(lambda o, n: f"{o[0]} | {o[1]}", ("bool",)),
    "logical_xor": Pointwise(lambda o, n: f"{o[0]} ^ {o[1]}", ("bool",)),
    "logical_not": Pointwise(lambda o, n: f"{o[0]} == 0", ("bool",)),
    "bitwise_and": Pointwise(lambda o, n: f"{o[0]} & {o[1]}", accepts=lambda n: not _is_float(n)),
    "bitwise_or": Pointwise(lambda o, n: f"{o[0]} | {o[1]}", accepts=lambda n: not _is_float(n)),
    "bitwise_xor": Pointwise(lambda o, n: f"{o[0]} ^ {o[1]}", accepts=lambda n: not _is_float(n)),
    "bitwise_not": Pointwise(lambda o, n: f"({o[0]} == 0)" if out_dtype(n) == torch.bool else f"~{o[0]}",
                             accepts=lambda n: not _is_float(n)),
    "isnan": Pointwise(lambda o, n: f"{o[0]} != {o[0]}", ("keep",)),
    "isinf": Pointwise(lambda o, n: f"tl.abs({o[0]}) == float(\"inf\")", ("keep",),
                       accepts=lambda n: n.args[0].meta["val"].dtype.is_floating_point),
    "where": Pointwise(lambda o, n: f"tl.where({o[0]}, {o[1]}, {o[2]})", ("bool", "out")),
    "masked_fill": Pointwise(lambda o, n: f"tl.where({o[1]}, {o[2]}, {o[0]})", ("out", "bool", "out")),
    "clamp": Pointwise(_clamp, accepts=lambda n: out_dtype(n) != torch.bool and not any(
        isinstance(v, fx.Node) for v in n.kwargs.values())),
    "clamp_min": Pointwise(lambda o, n: f"tl.where({o[0]} < {o[1]}, {o[1]}, {o[0]})"),
    "clamp_max": Pointwise(lambda o, n: f"tl.where({o[0]} > {o[1]}, {o[1]}, {o[0]})"),
    "addcmul": Pointwise(lambda o, n: f"{o[0]} + {literal(_kw(n, 'value', 1))} * {o[1]} * {o[2]}"),
    "addcdiv": Pointwise(lambda o, n: f"{o[0]} + {literal(_kw(n, 'value', 1))} * ({o[1]} / {o[2]})",
                         accepts=_float_only),
    "lerp": Pointwise(lambda o, n: f"{o[0]} + {o[2]} * ({o[1]} - {o[0]})", accepts=_float_only),
    "_to_copy": Pointwise(_cast, ("keep",), accepts=_cast_accepts),
    "convert_element_type": Pointwise(_cast, ("keep",), accepts=lambda n: True),
    "clone": Pointwise(lambda o, n: o[0], accepts=lambda n: set(n.kwargs) <= {"memory_format"}),
    "copy": Pointwise(lambda o, n: o[1], ("out",), accepts=lambda n: not n.kwargs),
    "zeros_like": _fill(None), "ones_like": _fill(None), "full_like": _fill(1), "fill": _fill(1),
}


# kind of each reduction op (argmax/argmin return int64 positions in the reduced dims)
REDUCTIONS = {"sum": "sum", "amax": "max", "amin": "min", "max": "max", "min": "min",
              "argmax": "argmax", "argmin": "argmin"}


@dataclass(frozen=True)
class Reduction:
    kind: str
    source: fx.Node
    dims: tuple     # sorted, non-negative
    keepdim: bool


def op_name(node: fx.Node) -> str:
    target = node.target
    if isinstance(target, torch._ops.OpOverload):
        return target._schema.name.split("::")[-1]
    return getattr(target, "__name__", str(target))


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


def pointwise_of(node: fx.Node):
    """The Pointwise lowering of a node, or None."""
    if node.op != "call_function" or not isinstance(node.target, torch._ops.OpOverload):
        return None
    lowering = POINTWISE.get(op_name(node))
    if lowering is None or not isinstance(node.meta.get("val"), torch.Tensor):
        return None
    if lowering.accepts is not None and not lowering.accepts(node):
        return None
    return lowering
