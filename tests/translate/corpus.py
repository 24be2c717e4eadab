"""The shared program corpus: small, real-looking PyTorch programs that translation must get
right, each with a seeded input maker and a note on what it exercises.

    corpus_tensor.py    operators, torch.* / F.* calls, Tensor methods and properties, indexing, dtypes
    corpus_python.py    user functions, closures, loops, branches on static facts, builtins, containers
    corpus_modules.py   nn.Module programs: MLP, convnet, attention, RNN cells, hooks, train/eval
    corpus_effects.py   in-place mutation and aliasing, Python side effects, exceptions, by-design breaks
        |  each registers Entry objects with the decorators below
        v
    ENTRIES (this module)  -->  tests/translate/test_corpus.py, benchmarks/capture_coverage.py

An entry is a program factory plus an input factory; every run builds a fresh program (fresh
module parameters drawn from a fixed seed, fresh side-effect state) and fresh inputs, so an
eager run and an optimized run see identical, independent copies. Example:

    @case(lambda r: (r.randn(4, 5), r.randn(5)), "broadcasting add of a row vector")
    def add_row(x, b):
        return x + b

`whole=False` (with a reason) marks programs that by design cannot be one graph per frame:
the ones that raise, print, or branch on a tensor's value. They are still checked for
correctness; the capture-rate target counts the others.
"""
import dataclasses
from typing import Any, Callable, List, Optional

import torch


class A:
    """Call arguments: `A(x, y, scale=2.0)` -> args (x, y), kwargs {'scale': 2.0}."""

    def __init__(self, *args, **kwargs):
        self.args, self.kwargs = args, kwargs


class R:
    """Seeded input maker handed to each entry's `inputs` function."""

    def __init__(self, seed):
        self.g = torch.Generator().manual_seed(seed)

    def randn(self, *shape, dtype=torch.float32, requires_grad=False):
        t = torch.randn(*shape, generator=self.g).to(dtype)
        return t.requires_grad_(requires_grad)

    def rand(self, *shape, dtype=torch.float32):
        return torch.rand(*shape, generator=self.g).to(dtype)

    def randint(self, low, high, *shape, dtype=torch.int64):
        return torch.randint(low, high, shape, generator=self.g).to(dtype)

    def mask(self, *shape):
        return torch.rand(*shape, generator=self.g) > 0.5


@dataclasses.dataclass
class Program:
    """A built program: the callable under test, and a snapshot of its Python-side state
    (counters, logs) taken after each call and compared between eager and ours."""

    fn: Callable
    snapshot: Optional[Callable[[], Any]] = None

    @property
    def module(self):
        return self.fn if isinstance(self.fn, torch.nn.Module) else None


@dataclasses.dataclass
class Entry:
    name: str
    build: Callable[[], Program]
    make_inputs: Callable[[R], Any]
    exercises: str
    whole: bool = True  # one graph per frame by design
    why_not_whole: str = ""
    group: str = ""
    # Why the cached call may translate again (as one graph per frame): Python state the
    # program reads (a counter, a list's length) changed since the first call.
    may_recompile: str = ""

    def inputs(self, seed):
        made = self.make_inputs(R(seed))
        if isinstance(made, A):
            return made.args, made.kwargs
        return tuple(made), {}

    def fresh_program(self, seed=0) -> Program:
        torch.manual_seed(seed)  # module parameters drawn identically for every build
        return self.build()

    def __repr__(self):
        tag = "" if self.whole else f" (not whole: {self.why_not_whole})"
        return f"<entry {self.name}: {self.exercises}{tag}>"


ENTRIES: List[Entry] = []


def _register(entry):
    if any(e.name == entry.name for e in ENTRIES):
        raise ValueError(f"duplicate corpus entry {entry.name}")
    ENTRIES.append(entry)
    return entry


def case(inputs, exercises, *, whole=True, why="", name=None, may_recompile=""):
    """Decorate a plain function: the program is the function itself."""
    def register(fn):
        _register(Entry(name or fn.__name__, lambda: Program(fn), inputs, exercises, whole, why,
                        fn.__module__.rsplit(".", 1)[-1], may_recompile))
        return fn
    return register


def program(inputs, exercises, *, whole=True, why="", name=None, may_recompile=""):
    """Decorate a factory returning a callable or (callable, snapshot): for programs with
    their own state (closures over counters, modules built with arguments)."""
    def register(factory):
        def build():
            made = factory()
            return Program(*made) if isinstance(made, tuple) else Program(made)
        _register(Entry(name or factory.__name__, build, inputs, exercises, whole, why,
                        factory.__module__.rsplit(".", 1)[-1], may_recompile))
        return factory
    return register


def by_name(name) -> Entry:
    return next(e for e in ENTRIES if e.name == name)


# Importing the program modules fills ENTRIES (they import `case` and `program` from here).
from . import corpus_tensor, corpus_python, corpus_modules, corpus_effects  # noqa: E402,F401
