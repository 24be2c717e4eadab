"""Corpus of programs with graph breaks (issue 5), each runnable eagerly and under terra_dyn.

Each `Program` states how many graphs and graph breaks its FIRST call must record, derived
from the issue's rules (never from a run of ours):

  R1  tensor work with nothing unsupported in it is one graph;
  R2  a Python side effect that needs no tensor value (print/logging of Python values,
      shapes or strings; list appends; dict and attribute updates on plain objects;
      counters) is replayed: no break;
  R3  what needs a tensor's value at run time (.item(), .tolist(), .numpy(), bool(t), a
      branch on a tensor, print/logging of a tensor, numpy on its data), .backward() and
      autograd.grad, calls into disable'd functions, unsupported builtins/bytecodes, custom
      context managers: a break; the tensor work before and after it are separate graphs;
  R4  a break inside an inlined callee splits at the caller's call site, and the callee's
      frame is translated on its own (so its work is in graphs too);
  R5  a break inside a loop keeps the body in graphs, and the number of graphs does not
      grow with the number of iterations.

`graphs` counts graphs with at least one op; `breaks` counts distinct break sites
(file:line), since a site inside a loop or re-entered by a continuation may be recorded
more than once (the loop's own `for` line may be a site too, where the mechanism
hands a real iterator to a continuation). A count is an int, or a (low, high) range where the issue leaves the
mechanism open (try/with/generators/loops). Every program is compared with eager by
tests/breaks/test_programs.py: values, Python side effects (`snapshot()` of this module's
globals plus `state(args)`), printed output, log records and exceptions.

    for p in PROGRAMS: p.fn(*p.inputs())        # eager
"""
import logging
import random
from collections import Counter
from dataclasses import dataclass
from typing import Any, Callable, Optional, Tuple, Union

import numpy as np
import torch
import torch.nn.functional as F

import terra_dyn

Count = Union[int, Tuple[int, int]]
log = logging.getLogger("terra_dyn.tests.breaks")

# Python state the programs mutate; reset() before every run, snapshot() after.
LOG = []
CALLS = Counter()
STATS = {}
COUNTER = 0


def reset():
    global COUNTER
    LOG.clear()
    CALLS.clear()
    STATS.clear()
    COUNTER = 0


def snapshot():
    return {"LOG": list(LOG), "CALLS": dict(CALLS), "STATS": dict(STATS), "COUNTER": COUNTER}


@dataclass
class Program:
    name: str
    fn: Callable
    inputs: Callable[[], tuple]
    graphs: Count
    breaks: Count
    rule: str
    kind: str
    state: Callable[[tuple], Any] = lambda args: None
    min_ops: int = 0  # ops that must be inside graphs (the captured tensor work)
    raises: Optional[type] = None

    def __repr__(self):
        return f"<program {self.name}: {self.kind}; graphs={self.graphs}, breaks={self.breaks}>"


PROGRAMS = []


def program(inputs, graphs, breaks, rule, kind, **extra):
    def register(fn):
        PROGRAMS.append(Program(fn.__name__, fn, inputs, graphs, breaks, rule, kind, **extra))
        return fn
    return register


def randn(*shapes, requires_grad=False):
    def make():
        gen = torch.Generator().manual_seed(0)
        return tuple(torch.randn(*s, generator=gen).requires_grad_(requires_grad) for s in shapes)
    return make


X = randn((4, 8))
XW = randn((4, 8), (8, 3))

# --------------------------------------------------------------------------- print and logging


@program(X, 1, 0, "R2: printing a shape and Python values needs no tensor value", "print")
def print_shape(x):
    y = torch.relu(x) * 2
    print("shape", y.shape, "rows", y.shape[0], f"dims={y.dim()}")
    return y + 1


@program(X, 1, 0, "R2: logging strings and shapes is replayed in order", "logging")
def log_shape(x):
    log.warning("start %s", tuple(x.shape))
    y = x.sin().sum(dim=0)
    log.warning("done: %d values", y.numel())
    return y


@program(X, 2, 1, "R3: printing a tensor needs its value: graph before, graph after", "print tensor")
def print_tensor(x):
    y = x.cos() * 3
    print("y sum:", y.sum())
    return y.relu()


@program(X, 2, 1, "R3: logging a tensor formats its value", "logging tensor")
def log_tensor(x):
    y = x.abs() + 1
    log.warning("mean %s", y.mean())
    return y.log()


# --------------------------------------------------------------------------- tensor values


@program(XW, 2, 1, "R3: .item() in the middle splits the graph in two", ".item()")
def item_in_the_middle(x, w):
    y = torch.relu(x @ w)
    scale = y.sum().item()
    return y * scale


@program(X, 2, 1, "R3: .tolist() reads the data", ".tolist()")
def tolist_in_the_middle(x):
    y = x[0] * 2
    values = y.tolist()
    return y + max(values)


@program(X, 2, 1, "R3: numpy on the tensor's data (one line: one site)", "numpy")
def numpy_norm(x):
    y = x * 2 - 1
    norm = float(np.linalg.norm(y.numpy()))
    return y / norm


@program(X, 2, 1, "R3: bool(tensor) needs its value; the later if is on a Python bool", "bool(tensor)")
def bool_of_tensor(x):
    y = x.tanh()
    positive = bool(y.sum() > 0)
    if positive:
        return y * 2
    return y - 2


@program(X, 2, 1, "R3: an if on a tensor's value", "branch on tensor")
def branch_on_tensor(x):
    y = x.exp()
    if y.mean() > 1.5:
        z = y * 2
    else:
        z = y - 1
    return z.sqrt()


@program(lambda: (torch.full((3,), 40.0),), (2, 4), 1,
         "R3+R5: a while loop on a tensor condition (6 iterations) breaks at its test", "while on tensor",
         min_ops=3)
def while_on_tensor(x):
    y = x + 1
    while y.norm() > 1:
        y = y / 2
    return y * 3


# --------------------------------------------------------------------------- unsupported Python


@program(X, 2, 1, "R3: eval() runs Python the translator cannot look into", "unsupported builtin")
def eval_builtin(x):
    y = x * 2
    k = eval("3 + 4")
    return y + k


@program(X, 2, 1, "R3: a class statement (LOAD_BUILD_CLASS) is an unsupported bytecode", "unsupported bytecode")
def class_statement(x):
    y = x.sigmoid()

    class Scale:
        factor = 3

    return y * Scale.factor


@program(X, (1, 3), (0, 1), "try/finally: captured, or a break where nothing better is possible", "try/finally")
def try_finally(x):
    try:
        y = x * 2
    finally:
        LOG.append("finally")
    return y + 1


@program(X, (1, 3), (0, 2), "a KeyError raised and caught in the frame: correct, counts open", "try/except")
def try_except(x):
    table = {"a": 1}
    y = x + 1
    try:
        k = table["b"]
    except KeyError:
        k = 2
    return y * k


@program(randn((4, 8), requires_grad=True), 1, 0, "torch.no_grad is captured, not a break", "with no_grad")
def with_no_grad(x):
    with torch.no_grad():
        y = x * 2
    return y + 1, x * 3


class Recorder:
    """A user context manager: its __enter__/__exit__ are Python the graph cannot hold."""

    def __init__(self, name):
        self.name = name

    def __enter__(self):
        LOG.append(("enter", self.name))
        return self

    def __exit__(self, *exc):
        LOG.append(("exit", self.name))
        return False


@program(X, (1, 3), (0, 2), "R3, or R2 when __enter__/__exit__ only touch Python state (replayed): "
         "a custom context manager; enter/exit run once, in order", "with custom")
def with_custom_manager(x):
    y = x + 1
    with Recorder("block"):
        z = y * 2
    return z - 1


@program(lambda: ([torch.ones(3) * i for i in range(4)],), (1, 3), (0, 1),
         "a generator expression consumed in the frame: inlined or a break", "generator expression")
def generator_expression(xs):
    total = sum(t * 2 for t in xs)
    return total + 1


def squares(xs):
    for t in xs:
        CALLS["squares.next"] += 1
        yield t * t


@program(lambda: ([torch.ones(3) * i for i in range(4)],), (1, 5), (0, 2),
         "a generator function's frame runs unmodified; consuming it breaks or is inlined", "generator")
def generator_function(xs):
    acc = xs[0] * 0
    for v in squares(xs):
        acc = acc + v
    return acc


# --------------------------------------------------------------------------- autograd


@program(randn((4, 3), (3,), requires_grad=True), 2, 1, "R3: .backward() runs autograd outside the graph",
         ".backward()", state=lambda args: [a.grad for a in args])
def backward_in_the_middle(x, w):
    loss = (x * w).sum()
    loss.backward()
    return w.grad * 2


@program(randn((4, 3), (3,), requires_grad=True), 2, 1, "R3: torch.autograd.grad is a break", "autograd.grad")
def autograd_grad(x, w):
    loss = (x.tanh() * w).pow(2).sum()
    (g,) = torch.autograd.grad(loss, [w])
    return g * 3


def _plain_helper(y):
    CALLS["disabled"] += 1
    return y.flip(0) * 2


disabled_helper = terra_dyn.disable(_plain_helper)


@program(X, 2, 1, "R3: a call into a disable'd function runs it as plain Python", "disable")
def calls_disabled(x):
    y = x + 1
    z = disabled_helper(y)
    return z - y


# --------------------------------------------------------------------------- Python state


class Box:
    """A plain object: attribute updates on it are replayed (R2)."""

    def __init__(self):
        self.steps = 0
        self.last_shape = None


@program(lambda: (randn((4, 8))()[0], Box()), 1, 0, "R2: attribute updates on a plain object", "setattr",
         state=lambda args: (args[1].steps, args[1].last_shape))
def set_attributes(x, box):
    y = x * 2
    box.steps = box.steps + 1
    box.last_shape = tuple(y.shape)
    return y


@program(X, 1, 0, "R2: appends to a global list, a dict update and a counter", "global state")
def global_state(x):
    global COUNTER
    y = x.relu()
    LOG.append(("shape", tuple(y.shape)))
    STATS["calls"] = STATS.get("calls", 0) + 1
    STATS.update(rows=y.shape[0])
    COUNTER += 1
    CALLS["global_state"] += 1
    return y * 2


@program(X, 1, 0, "R2: appending a tensor the graph computes to a global list", "append tensor")
def append_tensor(x):
    y = x * 3
    LOG.append(y)
    return y + 1


def note(tag):
    LOG.append(tag)
    return len(tag)


@program(X, 2, 1, "R2+R3: an inlined helper's appends are replayed; only the .item() breaks", "user calls")
def calls_across_a_break(x):
    n = note("before")
    y = x * n
    v = y.sum().item()
    m = note("after")
    return y + v * m


@program(X, 2, 1, "R2+R3: prints of strings, shapes and floats keep program order around a break",
         "print order")
def prints_in_order_around_a_break(x):
    print("start")
    y = x * 2
    print("shape", tuple(y.shape))
    v = y.abs().max().item()
    print("max", round(v, 3))
    return y / v


# --------------------------------------------------------------------------- breaks in callees and loops


def inner_prints(y):
    s = y * 3
    print("inner sum", s.sum())
    return s - 1


@program(X, 2, 1, "R4: the caller and callee before the print; the rest of both after it (not split at the call)",
         "break in callee", min_ops=5)
def break_in_callee(x):
    a = x * 2
    b = inner_prints(a)
    return b + 1


@program(lambda: (torch.ones(3), 6), (2, 4), (1, 2), "R5: .item() inside a for loop; body stays in graphs",
         "break in for loop", min_ops=3)
def item_in_for_loop(x, n):
    values = []
    y = x
    for i in range(n):
        y = y * 0.5 + i
        values.append(y.sum().item())
    return y, values


@program(lambda: (torch.ones(3), 5), (2, 5), (1, 2), "R5: printing a tensor inside a while loop", "break in while loop",
         min_ops=2)
def print_in_while_loop(x, n):
    i = 0
    y = x
    while i < n:
        y = y.sin() + 1
        print("y:", y)
        i += 1
    return y


@program(lambda: (torch.linspace(0, 1, 16), 10_000), (2, 4), (1, 3),
         "R5: 10,000 iterations with a print and an .item(): no stack growth, graphs stay few",
         "long loop", min_ops=3)
def long_loop_with_print_and_item(x, n):
    total = 0.0
    y = x
    for i in range(n):
        y = (y * 0.999 + 0.001).clamp(0, 1)
        v = y.mean().item()
        total += v
        if i % 2500 == 0:
            print(f"iteration {i}: mean {v:.5f}")
    return y, total


# --------------------------------------------------------------------------- exceptions across breaks


# One graph: after the print no tensor op remains (the rest is Python and a raise), so a
# second graph would be empty.
@program(X, 1, (1, 2), "R3: the raise comes after a break; finally runs once", "exception after break",
         raises=ValueError)
def raise_after_break(x):
    try:
        y = x * 2
        print("sum before raising", y.sum())
        LOG.append("body")
        if y.shape[0] == 4:
            raise ValueError(f"bad rows: {y.shape[0]}")
        return y
    finally:
        LOG.append("finally")


@program(X, (1, 3), (1, 2), "R3: .item() then a KeyError caught by except (runs once)", "except after break")
def except_after_break(x):
    try:
        y = x.relu()
        v = y.sum().item()
        return {}[v]
    except KeyError:
        LOG.append("except")
        return x * 0


def check_positive(t):
    if t.min() < 0:  # a branch on a tensor inside the callee
        raise RuntimeError("negative entries")
    return t


@program(X, (1, 4), (1, 2), "R4: an exception raised in a callee after its break", "exception in callee",
         raises=RuntimeError)
def raise_in_callee(x):
    y = x - 10
    return check_positive(y) + 1


# --------------------------------------------------------------------------- a Terra-style training loop


class TinyNet(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1 = torch.nn.Linear(8, 16)
        self.fc2 = torch.nn.Linear(16, 3)

    def forward(self, x):
        return self.fc2(torch.relu(self.fc1(x)))


def make_training(steps=60):
    """Model, optimizer, a DataLoader over a seeded dataset, and a Python RNG: fresh each run."""
    torch.manual_seed(0)
    random.seed(0)
    model = TinyNet()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    gen = torch.Generator().manual_seed(1)
    data = torch.utils.data.TensorDataset(torch.randn(steps * 4, 8, generator=gen),
                                          torch.randint(0, 3, (steps * 4,), generator=gen))
    loader = torch.utils.data.DataLoader(data, batch_size=4, shuffle=False)
    return model, optimizer, loader


def train_step(model, optimizer, x, y):
    if random.random() < 0.3:  # a Python-random choice, as in SDPoint/DropBlock-style code
        x = x.flip(1)
    loss = F.cross_entropy(model(x), y)
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    log.warning("loss %.4f", loss.item())
    return loss


@program(lambda: make_training(15), (1, 40), (1, 40),
         "a whole training loop as one entry point: data loader, step, loss.item() logging",
         "training loop", min_ops=3,
         state=lambda args: [p.detach().clone() for p in args[0].parameters()])
def training_loop(model, optimizer, loader):
    losses = []
    for x, y in loader:
        losses.append(train_step(model, optimizer, x, y).item())
    return losses


def programs_by_name():
    return {p.name: p for p in PROGRAMS}
