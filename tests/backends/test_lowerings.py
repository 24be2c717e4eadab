"""Every lowering against eager under TRITON_INTERPRET=1: dtypes, broadcasting, strided
(transposed, sliced) inputs, odd sizes (1, 7, 1023, 4097) and zero-size tensors."""
import pytest
import torch

from .support import check

pytestmark = [pytest.mark.filterwarnings("ignore::UserWarning"), pytest.mark.filterwarnings("ignore::RuntimeWarning")]

FLOATS = (torch.float32, torch.float16, torch.bfloat16)
INTS = (torch.int32, torch.int64)
ALL = FLOATS + INTS + (torch.bool,)


def make(shape, dtype, low=-3, high=3, positive=False):
    if dtype == torch.bool:
        return torch.rand(shape) > 0.5
    if dtype.is_floating_point:
        t = torch.empty(shape).uniform_(0.1 if positive else low, high)
        return t.to(dtype)
    return torch.randint(1 if positive else low, high + 1, shape, dtype=dtype)


# name -> (fn, dtypes it accepts, needs positive inputs)
UNARY = {
    "abs": (torch.abs, FLOATS + INTS, False), "neg": (torch.neg, FLOATS + INTS, False),
    "exp": (torch.exp, FLOATS, False), "exp2": (torch.exp2, FLOATS, False), "expm1": (torch.expm1, FLOATS, False),
    "log": (torch.log, FLOATS, True), "log2": (torch.log2, FLOATS, True), "log10": (torch.log10, FLOATS, True),
    "log1p": (torch.log1p, FLOATS, True), "sqrt": (torch.sqrt, FLOATS, True), "rsqrt": (torch.rsqrt, FLOATS, True),
    "sin": (torch.sin, FLOATS, False), "cos": (torch.cos, FLOATS, False), "tan": (torch.tan, FLOATS, False),
    "tanh": (torch.tanh, FLOATS, False), "sigmoid": (torch.sigmoid, FLOATS, False), "erf": (torch.erf, FLOATS, False),
    "floor": (torch.floor, FLOATS + INTS, False), "ceil": (torch.ceil, FLOATS + INTS, False),
    "trunc": (torch.trunc, FLOATS, False), "round": (torch.round, FLOATS, False),
    "sign": (torch.sign, FLOATS + INTS, False), "reciprocal": (torch.reciprocal, FLOATS, True),
    "relu": (torch.relu, FLOATS + INTS, False), "logical_not": (torch.logical_not, ALL, False),
    "bitwise_not": (torch.bitwise_not, INTS + (torch.bool,), False), "isnan": (torch.isnan, FLOATS, False),
    "square": (torch.square, FLOATS + INTS, False), "gelu": (torch.nn.functional.gelu, FLOATS, False),
    "gelu_tanh": (lambda x: torch.nn.functional.gelu(x, approximate="tanh"), FLOATS, False),
    "silu": (torch.nn.functional.silu, FLOATS, False), "hardtanh": (torch.nn.functional.hardtanh, FLOATS, False),
    "leaky_relu": (torch.nn.functional.leaky_relu, FLOATS, False),
    "softplus": (torch.nn.functional.softplus, FLOATS, False),
    "clamp": (lambda x: torch.clamp(x, -1, 2), FLOATS + INTS, False),
    "pow2": (lambda x: x ** 2, FLOATS + INTS, False), "pow_frac": (lambda x: x ** 1.7, FLOATS, True),
    "to_half": (lambda x: x.to(torch.float16), ALL, False), "to_int": (lambda x: x.to(torch.int32), FLOATS, False),
    "to_bool": (lambda x: x.to(torch.bool), ALL, False),
    "zeros_like_plus": (lambda x: torch.zeros_like(x) + x, ALL[:-1], False),
    "ones_like": (lambda x: torch.ones_like(x, dtype=torch.float32) * 2, ALL, False),
    "full_like": (lambda x: torch.full_like(x, 3) - x, ALL[:-1], False), "scalar_mix": (lambda x: (x * 3 - 1) / 2, ALL[:-1], False),
}

BINARY = {
    "add": (torch.add, ALL[:-1]), "sub": (torch.sub, ALL[:-1]), "mul": (torch.mul, ALL),
    "div": (torch.div, FLOATS + INTS), "div_floor": (lambda a, b: torch.div(a, b, rounding_mode="floor"), FLOATS + INTS),
    "div_trunc": (lambda a, b: torch.div(a, b, rounding_mode="trunc"), FLOATS + INTS),
    "remainder": (torch.remainder, FLOATS + INTS), "fmod": (torch.fmod, FLOATS + INTS),
    "maximum": (torch.maximum, FLOATS + INTS), "minimum": (torch.minimum, FLOATS + INTS),
    "eq": (torch.eq, ALL), "ne": (torch.ne, ALL), "lt": (torch.lt, FLOATS + INTS), "le": (torch.le, FLOATS + INTS),
    "gt": (torch.gt, FLOATS + INTS), "ge": (torch.ge, FLOATS + INTS), "logical_and": (torch.logical_and, ALL),
    "logical_or": (torch.logical_or, ALL), "bitwise_xor": (torch.bitwise_xor, INTS + (torch.bool,)),
    "pow": (torch.pow, FLOATS), "where_gt": (lambda a, b: torch.where(a > b, a, b), ALL[:-1]),
    "lerp": (lambda a, b: torch.lerp(a, b, 0.3), FLOATS), "addcmul": (lambda a, b: torch.addcmul(a, a, b, value=0.5), FLOATS),
}

REDUCTIONS = {
    "sum": (lambda x: x.sum(-1), ALL), "sum_all": (lambda x: x.sum(), FLOATS + INTS),
    "sum_keep0": (lambda x: x.sum(0, keepdim=True), FLOATS + INTS),
    "mean": (lambda x: x.mean(-1), FLOATS), "amax": (lambda x: x.amax(-1), FLOATS + INTS),
    "amin": (lambda x: x.amin(0), FLOATS + INTS), "argmax": (lambda x: x.argmax(-1), FLOATS + INTS),
    "argmin": (lambda x: x.argmin(0), FLOATS + INTS), "var": (lambda x: x.var(-1), FLOATS),
    "std": (lambda x: x.std(0, correction=0), FLOATS),
    "max_dim": (lambda x: (x.max(1)[0], x.max(1)[1]), FLOATS + INTS),
    "min_dim": (lambda x: (x.min(0, keepdim=True)[0], x.min(0, keepdim=True)[1]), FLOATS + INTS), "softmax": (lambda x: torch.softmax(x, -1), FLOATS),
    "log_softmax": (lambda x: torch.log_softmax(x, 0), FLOATS), "logsumexp": (lambda x: torch.logsumexp(x, -1), FLOATS),
}

SHAPES = [(7,), (1,), (1023,), (3, 4097), (0, 3)]


def _tol(dtype):
    return {torch.float16: (1e-2, 1e-2), torch.bfloat16: (5e-2, 5e-2)}.get(dtype, (2e-5, 2e-5))


@pytest.mark.parametrize("name", sorted(UNARY))
def test_unary_across_dtypes(name):
    fn, dtypes, positive = UNARY[name]
    for dtype in dtypes:
        x = make((5, 7), dtype, positive=positive)
        atol, rtol = _tol(dtype)
        check(fn, x, atol=atol, rtol=rtol, what=f"{name} {dtype}")


@pytest.mark.parametrize("name", sorted(UNARY))
def test_unary_odd_sizes_and_strides(name):
    fn, dtypes, positive = UNARY[name]
    for shape in SHAPES:
        check(fn, make(shape, dtypes[0], positive=positive), atol=2e-5, rtol=2e-5, what=f"{name} {shape}")
    base = make((9, 13), dtypes[0], positive=positive)
    check(fn, base.t(), atol=2e-5, rtol=2e-5, what=f"{name} transposed")
    check(fn, base[1:8:2, ::3], atol=2e-5, rtol=2e-5, what=f"{name} sliced")


@pytest.mark.parametrize("name", sorted(BINARY))
def test_binary_across_dtypes_with_broadcasting(name):
    fn, dtypes = BINARY[name]
    nonzero = name in ("div", "div_floor", "div_trunc", "remainder", "fmod")
    for dtype in dtypes:
        a = make((4, 1, 6), dtype, positive=name == "pow")
        b = make((3, 1), dtype, positive=nonzero and dtype.is_floating_point is False)
        if nonzero:
            b = torch.where(b == 0, torch.ones_like(b), b)
        atol, rtol = _tol(dtype)
        check(fn, a, b, atol=atol, rtol=rtol, what=f"{name} {dtype}")


@pytest.mark.parametrize("name", sorted(BINARY))
def test_binary_strided_and_mixed_dtypes(name):
    fn, dtypes = BINARY[name]
    a = make((11, 7), dtypes[0], positive=name == "pow")
    b = make((7, 11), dtypes[0] if name in ("pow", "lerp") else dtypes[-1], positive=True)
    b = torch.where(b == 0, torch.ones_like(b), b) if b.dtype != torch.bool else b
    check(fn, a, b.t(), atol=2e-5, rtol=2e-5, what=f"{name} transposed {a.dtype}/{b.dtype}")
    check(fn, make((0, 7), dtypes[0]), make((7,), dtypes[0], positive=True), what=f"{name} zero-size")


@pytest.mark.parametrize("name", sorted(REDUCTIONS))
def test_reductions_across_dtypes_and_sizes(name):
    fn, dtypes = REDUCTIONS[name]
    for dtype in dtypes:
        x = make((6, 33), dtype)
        if dtype.is_floating_point and name.startswith("arg"):
            x = torch.randperm(6 * 33).reshape(6, 33).to(dtype)  # no ties in low precision
        atol, rtol = _tol(dtype)
        if name.startswith("sum") and dtype in (torch.float16, torch.bfloat16):
            atol, rtol = 0.1, 2e-2  # eager accumulates in a different order
        check(fn, x, atol=atol, rtol=rtol, what=f"{name} {dtype}")
    for shape in [(1, 7), (2, 1023), (3, 4097), (7, 1)]:
        x = torch.randn(shape)
        check(fn, x, atol=1e-4, rtol=1e-4, what=f"{name} {shape}")
    check(fn, torch.randn(40, 9).t(), atol=1e-4, rtol=1e-4, what=f"{name} transposed")
