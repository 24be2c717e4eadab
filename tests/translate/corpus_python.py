"""Corpus, Python around the tensors: user functions, closures, lambdas, methods, *args and
**kwargs, defaults; loops over range, lists, tuples, dicts, zip, enumerate, reversed; branches
on facts known at translate time; builtins; building and returning containers.

Every branch here depends only on shapes, dtypes, flags, None checks or Python values, so each
program is one graph by design. See corpus.py for the entry format.
"""
import dataclasses
import functools
import math
import operator
from collections import namedtuple

import torch
import torch.nn.functional as F

from .corpus import A, case, program

SCALE = 0.5
EPS = 1e-5
OFFSETS = torch.tensor([1.0, -1.0, 0.5, 2.0])  # a global tensor read by the program
ACTIVATIONS = {"relu": torch.relu, "tanh": torch.tanh, "gelu": F.gelu}
Pair = namedtuple("Pair", ["mean", "std"])


@dataclasses.dataclass
class Stats:
    total: torch.Tensor
    peak: torch.Tensor
    count: int


def normalize(x, eps=EPS):
    return (x - x.mean(-1, keepdim=True)) / (x.std(-1, keepdim=True) + eps)


def affine(x, w, b=None):
    y = x @ w
    return y if b is None else y + b


def block(x, w):
    return normalize(torch.relu(affine(x, w)))

# --------------------------------------------------------------------------- calls


@case(lambda r: (r.randn(4, 6),), "call a module-level user function with a default argument")
def call_helper(x):
    return normalize(x) * SCALE


@case(lambda r: (r.randn(3, 4), r.randn(4, 4)), "three levels of user functions")
def nested_helpers(x, w):
    return block(block(x, w), w)


@case(lambda r: (r.randn(3, 4), r.randn(4, 2), r.randn(2)), "optional argument passed and omitted")
def optional_argument(x, w, b):
    return affine(x, w, b), affine(x, w), affine(x, w, b=None)


@case(lambda r: (r.randn(5),), "local lambda and lambda passed to a helper")
def lambdas(x):
    square = lambda t: t * t  # noqa: E731
    apply_twice = lambda f, t: f(f(t))  # noqa: E731
    return square(x) + apply_twice(torch.sin, x)


@case(lambda r: A(r.randn(3, 3), act="gelu"), "global dict of functions chosen by a string argument")
def dispatch_by_name(x, act="relu"):
    return ACTIVATIONS[act](x) + ACTIVATIONS["relu"](x)


@case(lambda r: A(r.randn(2, 3), r.randn(2, 3), r.randn(2, 3)), "*args in the entry signature")
def star_args(*xs):
    total = xs[0]
    for t in xs[1:]:
        total = total + t
    return total / len(xs)


@case(lambda r: A(r.randn(2, 3), scale=2.0, shift=r.randn(3)), "**kwargs in the entry signature")
def star_kwargs(x, **options):
    y = x * options.get("scale", 1.0)
    if "shift" in options:
        y = y + options["shift"]
    return y, sorted(options)


def _forward_args(fn, *args, **kwargs):
    return fn(*args, **kwargs)


@case(lambda r: (r.randn(1, 2, 6),), "forwarding *args/**kwargs through a wrapper to F.*")
def forwarding_wrapper(x):
    a = _forward_args(F.avg_pool1d, x, 2, stride=2)
    b = _forward_args(F.pad, x, (1, 1), mode="constant", value=0.5)
    return a, b


@case(lambda r: A(r.randn(4), r.randn(4), alpha=0.25), "keyword-only argument with a default")
def keyword_only(x, y, *, alpha=0.5, beta=1.0):
    return alpha * x + beta * y


@case(lambda r: (r.randn(3),), "functools.partial of a user function")
def partial_call(x):
    loose = functools.partial(normalize, eps=0.1)
    return loose(x) + functools.partial(torch.add, alpha=2)(x, x)


def _power(x, n):
    return x if n == 1 else x * _power(x, n - 1)


@case(lambda r: (r.randn(4),), "recursion with a Python depth")
def recursion(x):
    return _power(x, 4)


class Scaler:
    """A plain Python object (not a module) with state and methods."""

    def __init__(self, factor):
        self.factor = factor

    def __call__(self, x):
        return self.apply(x) + self.offset()

    def apply(self, x):
        return x * self.factor

    def offset(self):
        return self.factor / 10

    @staticmethod
    def clip(x):
        return x.clamp(-1, 1)

    @classmethod
    def unit(cls):
        return cls(1.0)


@program(lambda r: (r.randn(3, 3),), "methods, __call__, staticmethod and classmethod of a Python object")
def python_object_methods():
    scaler = Scaler(3.0)

    def run(x):
        return scaler(x), Scaler.clip(scaler.apply(x)), Scaler.unit()(x)
    return run


@program(lambda r: (r.randn(4),), "closure over Python numbers from a factory")
def closure_numbers():
    def make_affine(a, b):
        def f(x):
            return a * x + b
        return f
    return make_affine(2.0, -1.0)


@program(lambda r: (r.randn(2, 4),), "closure over a tensor created outside the call")
def closure_tensor():
    torch.manual_seed(1)
    w = torch.randn(4, 4)

    def project(x):
        return x @ w + w.sum(0)
    return project


@case(lambda r: (r.randn(4),), "global tensor and global floats")
def global_tensor(x):
    return x * OFFSETS + SCALE - EPS

# --------------------------------------------------------------------------- loops


@case(lambda r: (r.randn(3, 3),), "for over range(n) accumulating a tensor")
def loop_range(x):
    acc = torch.zeros_like(x)
    for i in range(4):
        acc = acc + x * i
    return acc


@case(lambda r: ([r.randn(2, 2) for _ in range(3)],), "for over a list of tensors passed in")
def loop_list_input(xs):
    out = xs[0]
    for t in xs[1:]:
        out = out @ t
    return out


@case(lambda r: (r.randn(2, 3), (r.randn(3, 3), r.randn(3, 3))), "for over a tuple of weights")
def loop_tuple_weights(x, weights):
    for w in weights:
        x = torch.tanh(x @ w)
    return x


@case(lambda r: ({"a": r.randn(3), "b": r.randn(3), "c": r.randn(3)},), "for over dict.items(), keys and values")
def loop_dict_items(d):
    total = 0
    for name, t in d.items():
        total = total + t * len(name)
    keys = [k for k in d]
    return total, keys, sum(d.values())


@case(lambda r: ([r.randn(3) for _ in range(3)], [r.randn(3) for _ in range(3)]), "zip over two lists")
def loop_zip(xs, ys):
    return [x * y for x, y in zip(xs, ys)]


@case(lambda r: ([r.randn(4) for _ in range(4)],), "enumerate with the index as a scalar")
def loop_enumerate(xs):
    out = torch.zeros(4)
    for i, t in enumerate(xs, start=1):
        out = out + t / i
    return out


@case(lambda r: ([r.randn(2, 2) for _ in range(3)],), "reversed over a list and over range")
def loop_reversed(xs):
    y = torch.eye(2)
    for t in reversed(xs):
        y = y @ t
    for i in reversed(range(2)):
        y = y + i
    return y


@case(lambda r: (r.randn(3, 3),), "nested loops with continue and break on Python values")
def loop_nested_control(x):
    out = x
    for i in range(4):
        if i == 1:
            continue
        for j in range(3):
            if j > i:
                break
            out = out + x[i % 3, j]
    return out


@case(lambda r: (r.randn(4),), "while loop on a Python counter")
def loop_while(x):
    n = 0
    while n < 3:
        x = x * 2 - 1
        n += 1
    return x, n


@case(lambda r: (r.randn(2, 4),), "iterate over a tensor's first dimension")
def loop_over_tensor_rows(x):
    rows = []
    for row in x:
        rows.append(row.sum())
    return torch.stack(rows)

# --------------------------------------------------------------------------- branches on static facts


@case(lambda r: (r.randn(5, 3),), "if on a shape value")
def branch_on_shape(x):
    if x.shape[0] > 4:
        x = x[:4]
    else:
        x = x.repeat(2, 1)
    return x * 2 if x.dim() == 2 else x


@case(lambda r: A(r.randn(3), training=False), "if on a boolean flag argument")
def branch_on_flag(x, training=True):
    if training:
        return F.dropout(x, 0.5)
    return x + 1


@case(lambda r: (r.randn(3, 4), None, r.randn(4)), "None checks on optional tensors")
def branch_on_none(x, mask, bias):
    if mask is not None:
        x = x * mask
    if bias is None:
        return x
    return x + bias


@case(lambda r: (r.randn(3), r.randint(0, 3, 3)), "if on dtype")
def branch_on_dtype(x, i):
    outs = []
    for t in (x, i):
        outs.append(t.float() * 2 if t.dtype != torch.float32 else t.exp())
    return outs


@case(lambda r: (r.randn(3), [r.randn(3), r.randn(3)], 2.0), "isinstance on tensors, lists, floats")
def branch_on_isinstance(a, b, c):
    def as_tensor(v):
        if isinstance(v, torch.Tensor):
            return v
        if isinstance(v, (list, tuple)):
            return torch.stack(list(v)).sum(0)
        return torch.full((3,), float(c))
    return as_tensor(a) + as_tensor(b) + as_tensor(c)


@case(lambda r: ([r.randn(2) for _ in range(3)], r.randn(5, 2)), "len() of lists and tensors")
def builtin_len(xs, t):
    return t[: len(xs)] * len(t), len(xs) + len(t)


class Config:
    hidden = 4
    use_bias = True
    act = "tanh"


@case(lambda r: (r.randn(2, 4),), "getattr/hasattr on a config class, with defaults")
def config_attributes(x):
    act = getattr(torch, Config.act)
    y = act(x) * Config.hidden
    if hasattr(Config, "use_bias") and Config.use_bias:
        y = y + 1
    if getattr(Config, "missing", None) is None:
        y = y * 2
    return y, hasattr(Config, "nothing")


@case(lambda r: (r.randn(6, 3),), "min/max/abs/round on Python numbers from shapes")
def python_min_max(x):
    n, d = x.shape
    k = max(1, min(n // 2, d))
    return x[:k] * abs(-k) * round(2.6), max([n, d, 4]), min(n, d, key=lambda v: -v)


@case(lambda r: (r.randn(3),), "f-string of constants used as dict keys")
def fstring_keys(x):
    out = {}
    for i in range(3):
        out[f"layer_{i}"] = x * i
    name = f"{'out'}_{len(out):02d}"
    return out, name


@case(lambda r: (r.randn(4, 4),), "ternary expressions and assert on shapes")
def ternary_and_assert(x):
    assert x.dim() == 2, "expects a matrix"
    y = x.t() if x.shape[0] == x.shape[1] else x
    return y if y.is_contiguous() else y.contiguous()


@case(lambda r: (r.randn(3),), "try/except around code that does not raise")
def try_no_raise(x):
    table = {"a": 1.0}
    try:
        y = x * table["a"]
    except KeyError:
        y = x
    finally:
        y = y + 1
    return y


@case(lambda r: (r.randn(2, 3), r.randn(3, 3)), "with torch.no_grad() block")
def no_grad_block(x, w):
    w = w.clone().requires_grad_()
    with torch.no_grad():
        frozen = x @ w
    live = x @ w
    return frozen, live.detach(), frozen.requires_grad, live.requires_grad


@case(lambda r: (r.randn(5),), "math and operator modules on Python values")
def math_and_operator(x):
    k = math.floor(math.log2(8)) + math.ceil(0.2)
    y = functools.reduce(operator.add, [x, x * 2, x * 3])
    return y * k + math.pi, math.isfinite(k)

# --------------------------------------------------------------------------- containers


@case(lambda r: (r.randn(3),), "local list append/extend/pop/insert and slicing")
def local_list_ops(x):
    items = [x]
    items.append(x * 2)
    items.extend([x + 1, x - 1])
    last = items.pop()
    items.insert(0, last)
    return torch.stack(items[1:3]), items[::2], len(items)


@case(lambda r: (r.randn(3),), "local dict get/update/setdefault/in")
def local_dict_ops(x):
    d = {"x": x}
    d.update(y=x * 2)
    d.setdefault("z", x + 3)
    d.setdefault("x", x * 100)
    return d["x"] + d.get("y") + d.get("w", x), "z" in d


@case(lambda r: (r.randn(4), r.randn(4)), "tuple unpacking and starred unpacking")
def unpacking(x, y):
    a, (b, c) = x, (y, x * y)
    first, *rest = [a, b, c]
    *init, final = (a, b, c)
    return first + sum(rest), len(init), final


@case(lambda r: (r.randn(4, 3),), "list, dict and generator comprehensions")
def comprehensions(x):
    cols = [x[:, i] for i in range(x.shape[1])]
    named = {f"c{i}": c.sum() for i, c in enumerate(cols)}
    return torch.stack(cols, 1), named, torch.stack(tuple(c * 2 for c in cols if c.shape[0] == 4))


@case(lambda r: (r.randn(2, 3),), "return a list of tensors and Python values")
def return_list(x):
    return [x, x.sum(), x.shape[0], "label", None]


@case(lambda r: (r.randn(2, 3),), "return a nested dict of tensors")
def return_dict(x):
    return {"logits": x, "aux": {"mean": x.mean(), "parts": [x[0], x[1]]}, "n": x.numel()}


@case(lambda r: (r.randn(5, 4),), "return a namedtuple")
def return_namedtuple(x):
    return Pair(x.mean(0), x.std(0)), Pair(mean=x.sum(), std=x.var())


@case(lambda r: (r.randn(5, 4),), "return a dataclass of tensors")
def return_dataclass(x):
    return Stats(total=x.sum(0), peak=x.amax(), count=x.shape[0])


@case(lambda r: ({"x": r.randn(3), "layers": [r.randn(3, 3), r.randn(3, 3)]},), "nested dict/list input")
def nested_container_input(batch):
    h = batch["x"]
    for w in batch["layers"]:
        h = h @ w
    return h


@case(lambda r: (Pair(r.randn(4), r.rand(4) + 0.5),), "namedtuple input, attribute access")
def namedtuple_input(p):
    return p.mean / p.std, p[0] * p[1]


@case(lambda r: (r.randn(3, 4), (2, 2)), "tuple-of-ints argument used as a shape")
def shape_tuple_argument(x, shape):
    return x.reshape(-1)[: shape[0] * shape[1]].view(shape), torch.zeros(shape) + x[0, 0]


@case(lambda r: (r.randn(3),), "string methods and comparisons on constants")
def string_constants(x):
    mode = "Mean".lower()
    if mode == "mean" and mode.startswith("me"):
        return x.mean(), mode.upper()
    return x.sum(), mode
