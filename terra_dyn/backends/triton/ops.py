"""The Triton side of the op table (fusion/ops.py): the Triton expression each pointwise op
emits from already-rendered operands (Triton expressions or Python literals, cast as the
op's operand rule in fusion/ops.py says).

    POINTWISE["add"].emit(["tmp0", "tmp1"], node)   ->  "tmp0 + tmp1"

A reduction lowering names a reduction kind (sum, max, min, argmax, argmin); codegen
writes the masked `tl.sum`/`tl.max` (single block) or the accumulator loop (large rows).
Ops absent here run as ATen calls between kernels.
"""
import math
from dataclasses import dataclass
from typing import Callable

import torch
import torch.fx as fx

from ..fusion.ops import (  # noqa: F401  (re-exported for codegen and older imports)
    REDUCTIONS, SPECS, PointwiseSpec, Reduction, compute_dtype, op_name, out_dtype, reduction_of, spec_of)
from ..fusion.ops import is_float as _is_float
from ..fusion.ops import kwarg as _kw

aten = torch.ops.aten
prims = torch.ops.prims

TL_DTYPES = {
    torch.float16: "tl.float16", torch.bfloat16: "tl.bfloat16", torch.float32: "tl.float32",
    torch.float64: "tl.float64", torch.int8: "tl.int8", torch.int16: "tl.int16", torch.int32: "tl.int32",
    torch.int64: "tl.int64", torch.uint8: "tl.uint8", torch.bool: "tl.int1",
}


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


@dataclass(frozen=True)
class Pointwise:
    emit: Callable            # (operands: list[str], node) -> str
    spec: PointwiseSpec       # operand rules and accepted uses, shared with every backend

    def rule(self, i):
        return self.spec.rule(i)


def _binary(op):
    return lambda o, n: f"{o[0]} {op} {o[1]}"


def _alpha(sign):
    def emit(o, n):
        alpha = _kw(n, "alpha", 1)
        rhs = o[1] if alpha == 1 else f"{o[1]} * {literal(alpha)}"
        return f"{o[0]} {sign} {rhs}"
    return emit


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


def _minmax(fn):
    def emit(o, n):
        if _is_float(n):
            return f"tl.{fn}({o[0]}, {o[1]}, propagate_nan=tl.PropagateNan.ALL)"
        return f"tl.{fn}({o[0]}, {o[1]})"
    return emit


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


def _fill(position):
    # zeros_like/ones_like/full_like/fill: a constant block shaped like the (unused) input;
    # the compiler drops the input's load, the interpreter just reads it
    def emit(o, n):
        value = {"zeros_like": "0", "ones_like": "1"}.get(op_name(n)) or o[position]
        return f"tl.full({o[0]}.shape, {value}, {TL_DTYPES[compute_dtype(out_dtype(n))]})"
    return emit


def _sign(o, n):
    dt = TL_DTYPES[compute_dtype(out_dtype(n))]
    return f"({o[0]} > 0).to({dt}) - ({o[0]} < 0).to({dt})"


def _unary(fn):
    return lambda o, n: f"{fn}({o[0]})"


def _rounding(fn):
    # floor/ceil/trunc/round of an integer tensor is the tensor itself
    return lambda o, n: f"{fn}({o[0]})" if _is_float(n) else o[0]


EMIT = {
    "add": _alpha("+"), "sub": _alpha("-"), "mul": _binary("*"), "div": _div,
    "floor_divide": lambda o, n: f"tl.floor({o[0]} / {o[1]})" if _is_float(n) else _floor_div_int(o),
    "remainder": _remainder, "fmod": _fmod, "pow": _pow,
    "maximum": _minmax("maximum"), "minimum": _minmax("minimum"),
    "neg": lambda o, n: f"-{o[0]}", "abs": _unary("tl.abs"),
    "reciprocal": _unary("1.0 / "), "exp": _unary("tl.exp"), "exp2": _unary("tl.exp2"),
    "expm1": _unary("dm.expm1"), "log": _unary("tl.log"), "log2": _unary("tl.log2"),
    "log10": _unary("dm.log10"), "log1p": _unary("dm.log1p"), "sqrt": _unary("tl.sqrt_rn"),
    "rsqrt": _unary("tl.rsqrt"), "sin": _unary("tl.sin"), "cos": _unary("tl.cos"), "tan": _unary("dm.tan"),
    "tanh": _unary("dm.tanh"), "erf": _unary("tl.erf"),
    "sigmoid": lambda o, n: f"1.0 / (1.0 + tl.exp(-{o[0]}))",
    "floor": _rounding("tl.floor"), "ceil": _rounding("tl.ceil"), "trunc": _rounding("dm.trunc"),
    "round": lambda o, n: f"dm.nearbyint({o[0]})" if _is_float(n) else o[0],
    "sign": _sign, "sgn": _sign,
    "relu": lambda o, n: f"tl.where({o[0]} < 0, 0, {o[0]})",
    "eq": _binary("=="), "ne": _binary("!="), "lt": _binary("<"), "le": _binary("<="),
    "gt": _binary(">"), "ge": _binary(">="),
    "logical_and": _binary("&"), "logical_or": _binary("|"), "logical_xor": _binary("^"),
    "logical_not": lambda o, n: f"{o[0]} == 0",
    "bitwise_and": _binary("&"), "bitwise_or": _binary("|"), "bitwise_xor": _binary("^"),
    "bitwise_not": lambda o, n: f"({o[0]} == 0)" if out_dtype(n) == torch.bool else f"~{o[0]}",
    "isnan": lambda o, n: f"{o[0]} != {o[0]}",
    "isinf": lambda o, n: f"tl.abs({o[0]}) == float(\"inf\")",
    "where": lambda o, n: f"tl.where({o[0]}, {o[1]}, {o[2]})",
    "masked_fill": lambda o, n: f"tl.where({o[1]}, {o[2]}, {o[0]})",
    "clamp": _clamp,
    "clamp_min": lambda o, n: f"tl.where({o[0]} < {o[1]}, {o[1]}, {o[0]})",
    "clamp_max": lambda o, n: f"tl.where({o[0]} > {o[1]}, {o[1]}, {o[0]})",
    "addcmul": lambda o, n: f"{o[0]} + {literal(_kw(n, 'value', 1))} * {o[1]} * {o[2]}",
    "addcdiv": lambda o, n: f"{o[0]} + {literal(_kw(n, 'value', 1))} * ({o[1]} / {o[2]})",
    "lerp": lambda o, n: f"{o[0]} + {o[2]} * ({o[1]} - {o[0]})",
    "_to_copy": _cast, "convert_element_type": _cast,
    "clone": lambda o, n: o[0], "copy": lambda o, n: o[1],
    "zeros_like": _fill(None), "ones_like": _fill(None), "full_like": _fill(1), "fill": _fill(1),
}

POINTWISE = {name: Pointwise(EMIT[name], SPECS[name]) for name in SPECS}


def pointwise_of(node: fx.Node):
    """The Pointwise lowering of a node, or None."""
    return POINTWISE[op_name(node)] if spec_of(node) is not None else None
