"""Corpus, effects: in-place mutation of inputs (directly, through views and aliases), Python
side effects (counters, logs, attributes), exceptions raised by user code, and the programs
that by design cannot be one graph (print, branches on tensor values, .item(), numpy).

Programs with Python state are factories returning (callable, snapshot); the test compares the
snapshot after each call, so a side effect that runs twice or not at all is caught. Inputs
are compared after each call, so a lost or doubled in-place update is caught.
"""
import io

import numpy as np
import torch
import torch.nn.functional as F

from .corpus import case, program

# --------------------------------------------------------------------------- in-place on inputs


@case(lambda r: (r.randn(4),), "x.add_() on an input, returning the input itself")
def inplace_method_on_input(x):
    x.add_(1)
    return x


@case(lambda r: (r.randn(3, 4),), "x[0] += 1 and x[:, -1] = 0 on an input")
def setitem_on_input(x):
    x[0] += 1
    x[:, -1] = 0
    return x.sum()


@case(lambda r: (r.randn(2, 3),), "v = x.view(-1); v.mul_(2) mutates x through a view")
def mutate_through_view(x):
    v = x.view(-1)
    v.mul_(2)
    return v[:2] + 1, x


@case(lambda r: (r.randn(3, 3),), "mutation through a transpose view of an input")
def mutate_through_transpose(x):
    x.t()[0].fill_(0.5)
    return x * 2


@case(lambda r: (r.randn(4),), "y = x; y += 1 mutates x (alias), value read before and after")
def alias_augmented_assign(x):
    before = x * 1
    y = x
    y += 1
    return before, x + 0, y is x


@case(lambda r: (r.randn(3), r.randn(3)), "x.copy_(y), then x.zero_() after using x")
def copy_and_zero(x, y):
    x.copy_(y * 2)
    total = x.sum()
    x.zero_()
    return total


@case(lambda r: (r.randn(5),), "clamp_ then use the clamped input")
def clamp_inplace_then_use(x):
    x.clamp_(-0.5, 0.5)
    return x * 2, x.relu_()


@case(lambda r: ([r.randn(3), r.randn(3)], {"a": r.randn(2)}), "in-place on tensors inside list and dict inputs")
def mutate_inside_containers(xs, d):
    xs[0].mul_(3)
    d["a"].add_(xs[1][:2])
    return xs[0] + xs[1]


@case(lambda r: ([r.randn(2)], {"a": r.randn(2)}), "Python-level mutation of list and dict arguments")
def mutate_container_structure(xs, d):
    xs.append(xs[0] * 2)
    d["b"] = d["a"] + 1
    del d["a"]
    return len(xs)


@case(lambda r: (r.randn(3), r.randn(3), torch.zeros(3)), "out= argument writes into an input")
def out_argument(a, b, c):
    torch.add(a, b, out=c)
    torch.mul(c, 2, out=c)
    return c.sum()


def _input_and_its_view(r):
    x = r.randn(6)
    return x, x[2:4]


@case(_input_and_its_view, "two arguments aliasing one storage: mutating the view changes the base")
def aliased_arguments(x, window):
    window.mul_(10)
    return x.sum(), window


@case(lambda r: (r.randn(4, 4), r.randint(0, 4, 3)), "index_put_, index_add_ and scatter_ on an input")
def indexed_inplace(x, idx):
    x.index_put_((idx, idx), torch.ones(3))
    x.index_add_(0, idx, torch.full((3, 4), 0.5))
    x.scatter_(1, idx.view(3, 1), -1.0)
    return x


@case(lambda r: (r.randn(3, 3),), "a function returning None after mutating its input")
def returns_none(x):
    x.sub_(x.mean())


@case(lambda r: (r.randn(4, 5),), "in-place on a slice, with the read cloned first")
def inplace_on_slice(x):
    prev = x[:, :-1].clone()
    x[:, 1:].sub_(prev)
    return x


@case(lambda r: (r.randn(3, 3),), "result value read after later in-place ops on the same tensor")
def read_before_write_order(x):
    y = x + 1
    x.mul_(2)
    z = x + 1
    x.add_(y)
    return y, z, x

# --------------------------------------------------------------------------- Python side effects

COUNTER_READ = "the program reads a counter it incremented on the first call"


@program(lambda r: (r.randn(3),), "closure counter incremented by a helper called twice",
         may_recompile=COUNTER_READ)
def closure_counter():
    calls = {"n": 0}

    def helper(t):
        calls["n"] += 1
        return t * calls["n"]

    def fn(x):
        return helper(x) + helper(x)
    return fn, lambda: dict(calls)


@program(lambda r: (r.randn(3),), "nonlocal counter", may_recompile=COUNTER_READ)
def nonlocal_counter():
    count = 0

    def fn(x):
        nonlocal count
        count += 1
        return x + count
    return fn, lambda: count


GLOBAL_CALLS = 0


def _global_counter_fn(x):
    global GLOBAL_CALLS
    GLOBAL_CALLS += 1
    return x * 2 + GLOBAL_CALLS


@program(lambda r: (r.randn(3),), "global statement: module-level counter", may_recompile=COUNTER_READ)
def global_counter():
    global GLOBAL_CALLS
    GLOBAL_CALLS = 0
    return _global_counter_fn, lambda: GLOBAL_CALLS


@program(lambda r: (r.randn(2, 3),), "append shapes and tensors to a closure list (a log)",
         may_recompile="the log list grew")
def closure_log():
    log = []

    def fn(x):
        y = x.relu()
        log.append(("relu", tuple(y.shape)))
        log.append(y.sum())
        return y
    return fn, lambda: list(log)


class Tracker:
    def __init__(self):
        self.calls = 0
        self.last = None

    def observe(self, t):
        self.calls += 1
        self.last = t.detach()
        return t


@program(lambda r: (r.randn(4),), "attribute mutation on a Python object", may_recompile=COUNTER_READ)
def object_attribute_mutation():
    tracker = Tracker()

    def fn(x):
        return tracker.observe(x * 3) - 1
    return fn, lambda: (tracker.calls, tracker.last)


@program(lambda r: (r.randn(3),), "attribute set on an argument object", name="attribute_on_argument",
         may_recompile=COUNTER_READ)
def attribute_on_argument_factory():
    tracker = Tracker()

    def fn(x, obj=tracker):
        obj.calls = obj.calls + 10
        return x + obj.calls
    return fn, lambda: tracker.calls

# --------------------------------------------------------------------------- exceptions


class ShapeError(Exception):
    pass


@case(lambda r: (r.randn(3, 4), r.randn(3, 4)), "matmul shape mismatch raises RuntimeError",
      whole=False, why="raises")
def raises_shape_mismatch(x, y):
    z = x + 1
    return z @ y


@case(lambda r: ({"a": r.randn(2)},), "missing dict key raises KeyError", whole=False, why="raises")
def raises_key_error(d):
    return d["a"] * 2 + d["b"]


@case(lambda r: (r.randn(5, 3),), "raise ValueError on a shape check", whole=False, why="raises")
def raises_value_error(x):
    y = x.relu()
    if y.shape[0] != 4:
        raise ValueError(f"expected 4 rows, got {y.shape[0]}")
    return y


@case(lambda r: (r.randn(2, 2),), "raise a user-defined exception class", whole=False, why="raises")
def raises_custom(x):
    if x.dim() == 2:
        raise ShapeError("2-d input")
    return x


@case(lambda r: ([r.randn(2)],), "list index out of range raises IndexError", whole=False, why="raises")
def raises_index_error(xs):
    return xs[0] + xs[1]


@case(lambda r: (r.randn(3, 3),), "dim out of range inside a torch op raises IndexError", whole=False, why="raises")
def raises_bad_dim(x):
    return x.sum(dim=4)


@case(lambda r: (r.randn(3),), "assert on a shape fails with AssertionError", whole=False, why="raises")
def raises_assert(x):
    assert x.shape[0] == 4, "need 4"
    return x


@case(lambda r: (r.randn(3),), "bad keyword argument to a torch function raises TypeError", whole=False, why="raises")
def raises_type_error(x):
    return F.relu(x, bogus=True)


@case(lambda r: (r.randn(3),), "input mutated before an exception keeps the mutation", whole=False, why="raises")
def raises_after_mutation(x):
    x.add_(100)
    raise RuntimeError("after mutation")


@program(lambda r: (r.randn(3),), "side effect before an exception happens exactly once", whole=False, why="raises")
def raises_after_side_effect():
    log = []

    def fn(x):
        log.append("start")
        y = x * 2
        log.append("middle")
        return y + {"k": 1}["missing"]
    return fn, lambda: list(log)


@case(lambda r: (r.randn(3, 2),), "exception raised and caught in the same frame",
      whole=False, why="raise/except control flow")
def raise_and_catch(x):
    try:
        if x.shape[1] < 3:
            raise ValueError("too narrow")
        y = x * 2
    except ValueError:
        y = x - 2
    return y

# --------------------------------------------------------------------------- breaks by design


@program(lambda r: (r.randn(3),), "print to a stream between tensor ops", whole=False, why="print breaks the graph")
def print_between_ops():
    stream = io.StringIO()

    def fn(x):
        y = x * 2
        print("shape", tuple(y.shape), file=stream)
        return y + 1
    return fn, stream.getvalue


@case(lambda r: (r.randn(4),), "if on a tensor's value", whole=False, why="branch on tensor data")
def branch_on_tensor_value(x):
    if x.sum() > 0:
        return x * 2
    return x - 2


@case(lambda r: (r.randn(5),), ".item() / int() used in Python indexing", whole=False, why=".item() reads data")
def item_in_python(x):
    i = int(x.argmax())
    scale = x.max().item()
    return x[i] * scale, i


@case(lambda r: (r.randn(4),), ".tolist() then a Python loop", whole=False, why=".tolist() reads data")
def tolist_loop(x):
    total = 0.0
    for v in x.tolist():
        total += v * v
    return x / (total + 1)


@case(lambda r: (r.randn(3, 3),), "numpy round trip", whole=False, why="numpy call")
def numpy_round_trip(x):
    a = x.numpy()
    b = np.tanh(a) * 2
    return torch.from_numpy(b) + x


@case(lambda r: (r.randn(4) * 8,), "while loop on a tensor's value", whole=False, why="loop condition reads data")
def data_dependent_while(x):
    steps = 0
    while x.abs().max() > 1:
        x = x / 2
        steps += 1
    return x, steps


def _pairs(xs):
    for i in range(0, len(xs) - 1):
        yield xs[i], xs[i + 1]


@case(lambda r: ([r.randn(3) for _ in range(4)],), "consuming a user generator", whole=False, why="generator frame")
def generator_consumer(xs):
    return [a - b for a, b in _pairs(xs)]
