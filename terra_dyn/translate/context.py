"""State shared by every frame of one translation: graph, guards, side effects, options.

    TranslationContext(code, f_globals, options, stop_at)
        .graph      GraphState (FX graph, inputs, side effects)
        .guards     GuardSet
        .wrap(real, source) -> Value                   (wrap.py)
        .mutate(container)   the container is written back to the real object
        .record(effect)      a Python side effect replayed after the graph
        .set_grad_enabled(b) grad mode inside the graph (torch.no_grad blocks)
        .autocast            torch.autocast blocks open at this point (autocast.Blocks)

One context per attempt: a graph break restarts the translation with `stop_at` set, so
that nothing from the abandoned attempt leaks into the next one.
"""

import builtins
import time
import types

import torch

from ..real_types import isa
from . import autocast
from . import wrap as wrap_mod
from .errors import Unsupported
from .graph_state import GraphState
from .guard_checks import GLOBAL_ABSENT
from .guards import GuardSet
from .sources import GlobalSource
from .values import ConstValue


def executor_budget():
    from .executor import MAX_SECONDS

    return MAX_SECONDS


class TranslationContext:
    def __init__(self, code, f_globals, slot_count, options, stop_at=None, stop_step=None):
        self.code = code
        self.f_globals = f_globals
        self.options = options
        self.stop_at = stop_at
        self.stop_step = stop_step  # a break inside inlined callees: stop at this step (nested_breaks.py)
        self.guards = GuardSet(slot_count, f_globals, code.co_freevars)
        self.guards.ambient()
        self.graph = GraphState(self.guards, set(getattr(options, "dynamic", ()) or ()),
                                getattr(options, "static", ()) or ())
        self.dynamic = set(getattr(options, "dynamic", ()) or ())
        self.options_static = getattr(options, "static", None) or frozenset()
        # numbers made inputs because they changed on their object (changing.py): the
        # options' set, shared by every attempt, so that convert_frame sees them on failure
        self.changing_inputs = getattr(options, "changing_inputs", None)
        if self.changing_inputs is None:
            self.changing_inputs = set()
        self.owners = {}  # source -> the object wrapped there, while changing.active()
        self.steps = 0
        self.deadline = time.thread_time() + executor_budget()  # CPU time: load does not count
        self.grad_stack = []
        self.mutated = []  # ListValue / DictValue with a source: written back at the end
        self._initial_grad = torch.is_grad_enabled()
        self._mutables = {}
        self._by_type_objects = {}  # id -> the ConstValue of an object guarded by type (wrap.py)
        self.context_vars = {}  # id(ContextVar) -> [(token, value)] set in the graph (context_vars.py)
        self.global_overlay = {}  # name -> Value assigned during translation
        self._keepalive = []
        self.autocast = autocast.start()
        # (pc, visit) of the top-level BEFORE_WITH of each @contextmanager or autocast block
        # still open: a break inside one moves to its with statement, which then runs natively
        self.open_with_blocks = []

    # -- values ---------------------------------------------------------------------
    def wrap(self, real, source):
        return wrap_mod.wrap(self, real, source)  # one value per list/dict: see wrap.wrap

    def wrap_global(self, f_globals, name):
        real = f_globals[name]
        if f_globals is not self.f_globals:
            # a global of an inlined function from another module: guard its identity in
            # that module's dict (a C check takes any dict)
            key = ("foreign", id(f_globals), name)
            if key not in self.guards._seen:
                self.guards._seen.add(key)
                self.guards.checks.append(("global_id", f_globals, name, real))
            if isa(real, torch.Tensor):
                return self.graph.input_tensor(real, _ForeignGlobal(f_globals, name), by_identity=True)
            return ConstValue(real, _ForeignGlobal(f_globals, name))
        return self.wrap(real, GlobalSource(name))

    def guard_builtin(self, f_globals, name):
        """`name`, absent from `f_globals`, read from the builtins dict as LOAD_GLOBAL reads
        it (the one the function's globals name, not the builtins module's attributes:
        those include `__annotations__`, made on first read): (value,) or None. Guarded: the
        name stays absent from the globals and the builtins dict still maps it to the value
        (`builtins.len = ...` after the first call reaches the next one)."""
        b = builtins_of(f_globals)
        if name not in b:
            return None
        real = b[name]
        if f_globals is self.f_globals:
            self.guards.global_absent(name)
        else:
            key = ("foreign_absent", id(f_globals), name)
            if key not in self.guards._seen:
                self.guards._seen.add(key)
                self.guards.checks.append(("global_id", f_globals, name, GLOBAL_ABSENT))
        key = ("builtin", id(b), name)
        if key not in self.guards._seen:
            self.guards._seen.add(key)
            self.guards.checks.append(("global_id", b, name, real))
        return (real,)

    def keep_alive(self, obj):
        """`obj` is keyed by id in this context: it must outlive it."""
        self._keepalive.append(obj)

    # -- effects --------------------------------------------------------------------
    def mutate(self, container):
        if container.source is not None and all(c is not container for c in self.mutated):
            self.mutated.append(container)

    def record(self, effect):
        self.graph.record(effect)

    def set_grad_enabled(self, enabled):
        self.grad_stack.append(enabled)
        torch._C._set_grad_enabled(enabled)
        self.graph.graph.call_function(torch._C._set_grad_enabled, (enabled,))
        self.graph.op_count += 1  # a graph of only mode switches must still run

    def restore_grad_enabled(self, previous):
        if self.grad_stack:
            self.grad_stack.pop()
        torch._C._set_grad_enabled(previous)
        self.graph.graph.call_function(torch._C._set_grad_enabled, (previous,))
        self.graph.op_count += 1

    def close(self):
        """Undo translate-time global state (grad mode, autocast)."""
        torch._C._set_grad_enabled(self._initial_grad)
        self.autocast.close()
        self.owners.clear()  # user objects: not kept past the translation
        # Values made during the translation refer back to the context (a lazy list's
        # realize closure): a cycle that only the cyclic gc would free, keeping the frame's
        # objects alive past the drops the rewritten code makes (a `__del__` ran late, a
        # weakref stayed alive). Let go of what the context holds; the translation's result
        # keeps what it needs on its own.
        for name in ("_keepalive", "_mutables", "_by_type_objects", "mutated", "context_vars", "global_overlay"):
            getattr(self, name).clear()
        if self.graph is not None:  # its values and it refer to each other: the same cycle, and
            # its records name user objects (a bound method's object, written by StoreAttr)
            self.graph.release_user_objects()
        self.graph = None


def builtins_of(f_globals):
    """The builtins dict a function made with these globals reads (CPython's
    `_PyEval_BuiltinsFromGlobals`): `__builtins__` there, a module's dict or a dict."""
    b = f_globals.get("__builtins__", builtins)
    if isinstance(b, types.ModuleType):
        b = b.__dict__
    if type(b) is not dict:
        raise Unsupported("the globals' __builtins__ is not a dict or a module")
    return b


class _ForeignGlobal(GlobalSource):
    """A global of another module's function: loaded from that module's dict at run time."""

    def __init__(self, f_globals, name):
        object.__setattr__(self, "name", name)
        object.__setattr__(self, "f_globals", f_globals)

    def expr(self):
        return f"FG{id(self.f_globals)}[{self.name!r}]"  # GuardSet puts the dict in its namespace

    def load(self):
        from bytecode import Instr

        return [Instr("LOAD_CONST", self.f_globals), Instr("LOAD_CONST", self.name), Instr("BINARY_SUBSCR")]
