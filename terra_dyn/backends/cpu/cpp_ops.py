"""The C++ side of the op table (fusion/ops.py): C types, literals, and the C++ expression
each pointwise op emits from operands already cast to the op's compute type.

    EMIT["add"](["tmp0", "tmp1"], node)   ->  "(tmp0 + tmp1)"
    c_type(torch.bfloat16)                ->  "uint16_t"   (storage; computed as float)

Math calls use the C names (expf, tanh) so that g++ vectorizes them through glibc's vector
math library (libmvec) when the prelude declares them `simd` (see compiler.py). Helpers
with eager's exact semantics (NaN-propagating maximum, floor division, bf16 rounding)
live in PRELUDE, a few lines of plain C++ that every kernel module starts with.
"""
import math

import torch
import torch.fx as fx

from ..fusion.ops import SPECS, compute_dtype, is_float, kwarg, op_name, out_dtype

C_TYPES = {
    torch.float32: "float", torch.float64: "double", torch.float16: "_Float16", torch.bfloat16: "uint16_t",
    torch.int8: "int8_t", torch.int16: "int16_t", torch.int32: "int32_t", torch.int64: "int64_t",
    torch.uint8: "uint8_t", torch.bool: "bool",
}

# functions libmvec may vectorize; compiler.py declares the ones this machine's glibc has
MATH_FUNCTIONS = ("exp", "log", "sin", "cos", "tan", "tanh", "erf", "expm1", "log1p", "log2", "log10", "exp2",
                  "pow")

# No standard headers: <cmath> alone costs g++ 0.1 s per module, more than the kernels.
PRELUDE = r"""
typedef __INT8_TYPE__ int8_t; typedef __INT16_TYPE__ int16_t; typedef __INT32_TYPE__ int32_t;
typedef __INT64_TYPE__ int64_t; typedef __UINT8_TYPE__ uint8_t; typedef __UINT16_TYPE__ uint16_t;
typedef __UINT32_TYPE__ uint32_t;
#define NAN __builtin_nanf("")
#define INFINITY __builtin_inff()
namespace td {
// a kernel's `<name>_packed(pointers, nthreads)` entry (kernel.py) passes each void* on typed
struct AnyPtr { void* v; template <class T> operator T*() const { return (T*)v; } };
static inline float fmod(float a, float b) { return __builtin_fmodf(a, b); }
static inline double fmod(double a, double b) { return __builtin_fmod(a, b); }
static inline float floor(float a) { return __builtin_floorf(a); }
static inline double floor(double a) { return __builtin_floor(a); }
static inline float copysign(float a, float b) { return __builtin_copysignf(a, b); }
static inline double copysign(double a, double b) { return __builtin_copysign(a, b); }
static inline float abs(float a) { return __builtin_fabsf(a); }
static inline double abs(double a) { return __builtin_fabs(a); }
template <class T> static inline T abs(T a) { return a < 0 ? (T)-a : a; }
static inline float bf16_load(uint16_t v) { uint32_t u = (uint32_t)v << 16; float f; __builtin_memcpy(&f, &u, 4); return f; }
static inline uint16_t bf16_store(float f) {
  uint32_t u; __builtin_memcpy(&u, &f, 4);
  if (f != f) return 0x7FC0;
  u += 0x7FFF + ((u >> 16) & 1);  // round to nearest even, as c10::BFloat16
  return (uint16_t)(u >> 16);
}
static inline float bf16_round(float f) { return bf16_load(bf16_store(f)); }
static inline float f16_round(float f) { return (float)(_Float16)f; }
template <class T> static inline T maximum(T a, T b) { return a != a ? a : (b != b ? b : (a > b ? a : b)); }
template <class T> static inline T minimum(T a, T b) { return a != a ? a : (b != b ? b : (a < b ? a : b)); }
template <class T> static inline T fdiv_floor(T a, T b) {
  // eager's div_floor: exact for values whose quotient is an integer
  if (b == 0) return a / b;
  T mod = td::fmod(a, b); T div = (a - mod) / b;
  if (mod != 0 && ((b < 0) != (mod < 0))) div -= 1;
  if (div == 0) return td::copysign(T(0), a / b);
  T floordiv = td::floor(div);
  if (div - floordiv > T(0.5)) floordiv += 1;
  return floordiv;
}
template <class T> static inline T fremainder(T a, T b) {
  T mod = td::fmod(a, b);
  if (mod != 0 && ((b < 0) != (mod < 0))) mod += b;
  return mod;
}
template <class T> static inline T idiv_floor(T a, T b, int& err) {
  if (b == 0) { err = 1; return 0; }
  T q = a / b;
  if ((a % b != 0) && ((a < 0) != (b < 0))) q -= 1;
  return q;
}
template <class T> static inline T idiv_trunc(T a, T b, int& err) { if (b == 0) { err = 1; return 0; } return a / b; }
template <class T> static inline T iremainder(T a, T b, int& err) {
  if (b == 0) { err = 1; return 0; }
  T m = a % b;
  if (m != 0 && ((m < 0) != (b < 0))) m += b;
  return m;
}
template <class T> static inline T ifmod(T a, T b, int& err) { if (b == 0) { err = 1; return 0; } return a % b; }
template <class T> static inline T lerp(T a, T b, T w) {
  return (w < T(0.5)) ? a + w * (b - a) : b - (b - a) * (T(1) - w);
}
}  // namespace td
"""


def c_type(dtype: torch.dtype) -> str:
    """The C type a tensor of `dtype` is stored as."""
    return C_TYPES[dtype]


def compute_c_type(dtype: torch.dtype) -> str:
    """The C type values of `dtype` are computed in (half types: float)."""
    return C_TYPES[compute_dtype(dtype)]


def literal(value, dtype: torch.dtype = None) -> str:
    """A Python scalar as a C++ expression, converted to `dtype`'s compute type when given."""
    if isinstance(value, bool):
        text = "true" if value else "false"
    elif isinstance(value, float):
        if math.isnan(value):
            text = "NAN"
        elif math.isinf(value):
            text = "INFINITY" if value > 0 else "(-INFINITY)"
        else:
            text = repr(value)
            text = text if any(c in text for c in ".en") else text + ".0"
    elif isinstance(value, int):
        text = f"(-{-value - 1}LL - 1)" if value < -(2 ** 63 - 1) else f"{value}LL"
    else:
        raise TypeError(f"no C++ literal for {value!r}")
    return f"(({compute_c_type(dtype)}){text})" if dtype is not None else text


# computed inline by g++ (sqrtps, roundps): no library call
BUILTINS = ("sqrt", "floor", "ceil", "trunc", "nearbyint", "fmod")


def math_call(name, dtype, *args):
    """A libm call in the precision of `dtype` (expf for float, exp for double)."""
    suffix = "f" if compute_dtype(dtype) == torch.float32 else ""
    prefix = "__builtin_" if name in BUILTINS else ""
    return f"{prefix}{name}{suffix}({', '.join(args)})"


def math_declarations(simd: bool) -> str:
    """extern "C" declarations of MATH_FUNCTIONS, `simd` ones when libmvec has them."""
    attribute = ' __attribute__((simd("notinbranch")))' if simd else ""
    lines = ['extern "C" {']
    for name in MATH_FUNCTIONS:
        for ctype, suffix in (("float", "f"), ("double", "")):
            params = ", ".join([ctype] * (2 if name == "pow" else 1))
            lines.append(f"{ctype} {name}{suffix}({params}) noexcept{attribute};")
    return "\n".join(lines) + "\n}\n"


def _t(n):
    return compute_c_type(out_dtype(n))


def _binary(op):
    return lambda o, n: f"({o[0]} {op} {o[1]})"


def _alpha(sign):
    def emit(o, n):
        alpha = kwarg(n, "alpha", 1)
        rhs = o[1] if alpha == 1 else f"{o[1]} * {literal(alpha, compute_dtype(out_dtype(n)))}"
        return f"({o[0]} {sign} {rhs})"
    return emit


def _int_helper(name):
    return lambda o, n: f"td::{name}<{_t(n)}>({o[0]}, {o[1]}, err)"


def _div(o, n):
    mode = kwarg(n, "rounding_mode")
    if mode is None:
        return f"({o[0]} / {o[1]})"
    if is_float(n):
        if mode == "floor":
            return f"td::fdiv_floor<{_t(n)}>({o[0]}, {o[1]})"
        # eager rounds a half-precision quotient to its dtype before truncating it
        return math_call("trunc", out_dtype(n), round_to(f"({o[0]} / {o[1]})", out_dtype(n)))
    return _int_helper("idiv_trunc" if mode == "trunc" else "idiv_floor")(o, n)


def _floor_divide(o, n):
    return f"td::fdiv_floor<{_t(n)}>({o[0]}, {o[1]})" if is_float(n) else _int_helper("idiv_floor")(o, n)


def _remainder(o, n):
    return f"td::fremainder<{_t(n)}>({o[0]}, {o[1]})" if is_float(n) else _int_helper("iremainder")(o, n)


def _fmod(o, n):
    return math_call("fmod", out_dtype(n), o[0], o[1]) if is_float(n) else _int_helper("ifmod")(o, n)


_POW_SPECIAL = {2: "({a} * {a})", 3: "({a} * {a} * {a})", 4: "(({a} * {a}) * ({a} * {a}))", 1: "{a}"}


def _pow(o, n):
    exp = n.args[1]
    if not isinstance(exp, fx.Node) and exp in _POW_SPECIAL:
        return _POW_SPECIAL[exp].format(a=o[0])
    if not isinstance(exp, fx.Node) and exp == 0.5:
        return math_call("sqrt", out_dtype(n), o[0])
    if not isinstance(exp, fx.Node) and exp == 0:
        return f"(({_t(n)})1)"
    return math_call("pow", out_dtype(n), o[0], o[1])


def _clamp(o, n):
    # compare-and-select so that NaN stays NaN, as eager's clamp does
    value = o[0]
    low, high = (o[1] if len(o) > 1 else "None"), (o[2] if len(o) > 2 else "None")
    if kwarg(n, "min") is not None:
        low = literal(kwarg(n, "min"), out_dtype(n))
    if kwarg(n, "max") is not None:
        high = literal(kwarg(n, "max"), out_dtype(n))
    if low != "None":
        value = f"({value} < {low} ? {low} : {value})"
    if high != "None":
        value = f"({value} > {high} ? {high} : {value})"
    return value


def round_to(value, dtype):
    """Round a float expression to a half type's precision (it stays a float)."""
    if dtype == torch.float16:
        return f"td::f16_round({value})"
    if dtype == torch.bfloat16:
        return f"td::bf16_round({value})"
    return value


def _cast(o, n):
    target = out_dtype(n)
    if target == torch.bool:
        return f"({o[0]} != 0)"
    if target in (torch.float16, torch.bfloat16):
        return round_to(f"((float){o[0]})", target)
    return f"(({c_type(target)}){o[0]})"


def _fill(o, n):
    value = {"zeros_like": 0, "ones_like": 1}.get(op_name(n))
    if value is None:
        value = n.args[1]
    return literal(value, out_dtype(n))


def _sign(o, n):
    return f"(({_t(n)})(({o[0]} > 0) - ({o[0]} < 0)))"


def _unary(name):
    return lambda o, n: math_call(name, out_dtype(n), o[0])


def _rounding(name):
    # floor/ceil/trunc/round of an integer tensor is the tensor itself
    return lambda o, n: math_call(name, out_dtype(n), o[0]) if is_float(n) else o[0]


def _one(n):
    return f"(({_t(n)})1)"


EMIT = {
    "add": _alpha("+"), "sub": _alpha("-"), "mul": _binary("*"), "div": _div, "floor_divide": _floor_divide,
    "remainder": _remainder, "fmod": _fmod, "pow": _pow,
    "maximum": lambda o, n: f"td::maximum<{_t(n)}>({o[0]}, {o[1]})",
    "minimum": lambda o, n: f"td::minimum<{_t(n)}>({o[0]}, {o[1]})",
    "neg": lambda o, n: f"(-{o[0]})", "abs": lambda o, n: f"td::abs({o[0]})",
    "reciprocal": lambda o, n: f"({_one(n)} / {o[0]})", "exp": _unary("exp"), "exp2": _unary("exp2"),
    "expm1": _unary("expm1"), "log": _unary("log"), "log2": _unary("log2"), "log10": _unary("log10"),
    "log1p": _unary("log1p"), "sqrt": _unary("sqrt"),
    "rsqrt": lambda o, n: f"({_one(n)} / {math_call('sqrt', out_dtype(n), o[0])})",
    "sin": _unary("sin"), "cos": _unary("cos"), "tan": _unary("tan"), "tanh": _unary("tanh"), "erf": _unary("erf"),
    "sigmoid": lambda o, n: f"({_one(n)} / ({_one(n)} + {math_call('exp', out_dtype(n), '-' + o[0])}))",
    "floor": _rounding("floor"), "ceil": _rounding("ceil"), "trunc": _rounding("trunc"),
    "round": _rounding("nearbyint"), "sign": _sign, "sgn": _sign,
    "relu": lambda o, n: f"({o[0]} < 0 ? (({_t(n)})0) : {o[0]})",
    "eq": _binary("=="), "ne": _binary("!="), "lt": _binary("<"), "le": _binary("<="),
    "gt": _binary(">"), "ge": _binary(">="),
    "logical_and": _binary("&&"), "logical_or": _binary("||"), "logical_xor": _binary("!="),
    "logical_not": lambda o, n: f"(!{o[0]})",
    "bitwise_and": _binary("&"), "bitwise_or": _binary("|"), "bitwise_xor": _binary("^"),
    "bitwise_not": lambda o, n: f"(!{o[0]})" if out_dtype(n) == torch.bool else f"(({_t(n)})~{o[0]})",
    "isnan": lambda o, n: f"({o[0]} != {o[0]})",
    "isinf": lambda o, n: f"({o[0]} == INFINITY || {o[0]} == -INFINITY)",
    "where": lambda o, n: f"({o[0]} ? {o[1]} : {o[2]})",
    "masked_fill": lambda o, n: f"({o[1]} ? {o[2]} : {o[0]})",
    "clamp": _clamp,
    "clamp_min": lambda o, n: f"({o[0]} < {o[1]} ? {o[1]} : {o[0]})",
    "clamp_max": lambda o, n: f"({o[0]} > {o[1]} ? {o[1]} : {o[0]})",
    "addcmul": lambda o, n: f"({o[0]} + {literal(kwarg(n, 'value', 1), out_dtype(n))} * {o[1]} * {o[2]})",
    "addcdiv": lambda o, n: f"({o[0]} + {literal(kwarg(n, 'value', 1), out_dtype(n))} * ({o[1]} / {o[2]}))",
    "lerp": lambda o, n: f"td::lerp<{_t(n)}>({o[0]}, {o[1]}, {o[2]})",
    "_to_copy": _cast, "convert_element_type": _cast,
    "clone": lambda o, n: o[0], "copy": lambda o, n: o[1],
    "zeros_like": _fill, "ones_like": _fill, "full_like": _fill, "fill": _fill,
}

assert set(EMIT) == set(SPECS), sorted(set(EMIT) ^ set(SPECS))
