"""`with` on @contextlib.contextmanager objects, and the RNG-state calls they often wrap.

    cm = helper(*args)          contextmanager's helper constructs _GeneratorContextManager
        -> GeneratorCMValue(func, args, kwargs)         nothing runs yet
    with cm as v:               BEFORE_WITH -> enter(tx, cm)
        generator body inlined in a child Translator up to its first `yield`; v = the
        yielded value; the child stays suspended
    (block ends normally)       exit(...)(None, None, None) -> exit(tx, cm)
        the child resumes after the yield (`finally:` bodies included) to its return;
        a second yield means "generator didn't stop": left to run natively

    torch.get_rng_state() / set_rng_state(t) / manual_seed(n)  -> impure FX nodes in
        program order (call_rng), so random ops between them draw eager's exact stream;
        their targets rng_get_state / rng_set_state / rng_manual_seed refuse to be traced
        on fake tensors, so a tracing backend (Triton's make_fx) runs such a graph eagerly
    torch.accelerator.is_available() / cuda.is_available()     -> constants (call_machine)
    torch._C._DisableTorchDispatch() / _DisableFuncTorch()      -> NoDispatchGuard: a no-op
        (see _noop_guard_ok: only when no dispatch mode or functorch layer is active)

The exception path is never translated. A graph break inside the block would need the
suspended generator as a real object; it exists only as a child Translator. So the break
moves to the block's `with` statement (translate/frame.py): the graph so far runs, the
with statement runs natively on a real manager (make_manager), and the frame goes on in a
resume function inside a Python with block, whose own breaks run under the original
exception table (codegen/resume.py). An exception leaving the block (a `raise`, a call that
raises) in a frame without a break runs the frame natively from its start (a fallback;
inside an inlined callee, only that callee runs natively), and the generator's except /
finally, its suppression or re-raise of the exception are CPython's own
(tests/translate/test_iteration_semantics.py, test_generator_cm_*).
A graph op raising at run time inside the block is codegen's GraphErrorRerun case: the
segment re-runs natively, unless an in-place or random op had run before it in the graph;
then the generator's except / finally do not run (a known gap, reported as a Fallback).

Example: op_db's random-op wrapper

    with freeze_rng_state():            # get_rng_state node
        torch.manual_seed(42)           # manual_seed node
        out = torch.bernoulli(x)        # bernoulli node
    return out                          # set_rng_state node (the generator's finally)
"""
import contextlib
import inspect
import types

import torch
from bytecode import Instr

from .errors import Unsupported
from .values import ConstValue, TensorValue, Value

RNG_FUNCTIONS = (torch.get_rng_state, torch.set_rng_state, torch.manual_seed)
# Answers fixed for the process (which accelerator the machine has): computed now.
MACHINE_FUNCTIONS = tuple(f for f in (getattr(torch, "accelerator", None) and torch.accelerator.is_available,
                                      getattr(torch, "accelerator", None) and
                                      torch.accelerator.current_accelerator,
                                      torch.cuda.is_available) if f)


class GeneratorCMValue(Value):
    """A _GeneratorContextManager not yet entered: the generator function and its arguments."""

    def __init__(self, func, args, kwargs):
        self.func = func  # ConstValue of a function, or FunctionValue
        self.args = list(args)
        self.kwargs = dict(kwargs)
        self.child = None  # the suspended generator Translator, once entered
        self.finished = False

    def children(self):
        return [self.func] + self.args + list(self.kwargs.values())

    def rebuild(self, r):
        if self.child is not None:
            raise Unsupported(f"cannot rebuild {self!r}: a generator suspended in translation")
        args = r.push(self.func) + r.items(self.args) + [Instr("BUILD_TUPLE", len(self.args))]
        return r.call_const(make_manager, args + r.build_dict(self.kwargs), 3)

    def __repr__(self):
        state = "finished" if self.finished else "suspended at its yield" if self.child is not None else "new"
        return f"GeneratorCMValue({getattr(self.func, 'name', None) or _name(self.func)}, {state})"


class GeneratorCMExit:
    """The `__exit__` a BEFORE_WITH on a GeneratorCMValue pushes (translate-time marker)."""


class NoDispatchGuard:
    """Stands for torch._C._DisableTorchDispatch() / _DisableFuncTorch() in a graph: a
    no-op when nothing is there to disable (checked at translate time, see _noop_guard_ok)."""

    def __enter__(self):
        return None

    def __exit__(self, *exc_info):
        return False

    def __repr__(self):
        return "NoDispatchGuard()"


_NOOP_GUARD = NoDispatchGuard()
_GUARD_CLASSES = tuple(c for c in (getattr(torch._C, "_DisableTorchDispatch", None),
                                   getattr(torch._C, "_DisableFuncTorch", None)) if c is not None)


def _name(fn):
    return getattr(getattr(fn, "value", None), "__qualname__", repr(fn))


def _check_arguments_bind(func, nargs, keywords):
    """Calling the generator function binds its arguments at once (a missing one raises
    TypeError where the manager is made, before `with`): one that would not bind runs
    natively, where it raises."""
    from .values import FunctionValue

    if isinstance(func, FunctionValue):
        code = func.code
        ndefaults = len(func.defaults.items) if func.defaults is not None else 0
        kwdefaults = dict.fromkeys(func.kwdefaults.items) if func.kwdefaults is not None else None
        stand_in = types.FunctionType(code, {}, code.co_name, (None,) * ndefaults,
                                      tuple(types.CellType() for _ in code.co_freevars) or None)
        stand_in.__kwdefaults__ = kwdefaults
    else:
        stand_in = getattr(func, "value", None)
    try:
        inspect.signature(stand_in).bind(*range(nargs), **dict.fromkeys(keywords))
    except TypeError as exc:
        raise Unsupported(f"the context manager's arguments do not bind ({exc}): it raises natively") from None
    except ValueError:  # no signature to read: the call decides natively
        raise Unsupported("the context manager's function has no signature") from None


def construct(tx, cls, args, kwargs):
    """calls._construct's hook: a Value for `cls(*args)`, or None when not ours."""
    if cls is contextlib._GeneratorContextManager:
        if kwargs or len(args) != 3:
            raise Unsupported("_GeneratorContextManager with unusual arguments")
        func, f_args, f_kwargs = args
        from .values import DictValue, TupleValue

        if not isinstance(f_args, TupleValue) or not isinstance(f_kwargs, DictValue):
            raise Unsupported("_GeneratorContextManager arguments unknown")
        _check_arguments_bind(func, len(f_args.items), list(f_kwargs.items))
        return GeneratorCMValue(func, f_args.items, f_kwargs.items)
    if cls in _GUARD_CLASSES and not args and not kwargs:
        if not _noop_guard_ok():
            raise Unsupported(f"{cls.__name__} with a dispatch mode or functorch layer active")
        return ConstValue(_NOOP_GUARD)
    return None


def _noop_guard_ok():
    # Disabling torch dispatch / functorch changes nothing when no mode or transform is on.
    try:
        from torch.utils._python_dispatch import _get_current_dispatch_mode

        if _get_current_dispatch_mode() is not None:
            return False
        return torch._C._functorch.maybe_current_level() is None
    except Exception:  # an API moved: stay on the safe side
        return False


def enter(tx, manager):
    """BEFORE_WITH: run the generator to its first yield; push exit marker, yielded value."""
    from . import inline
    from .values import MethodValue

    if manager.child is not None or manager.finished:
        raise Unsupported("generator context manager entered twice (raises natively)")
    func = manager.func
    code = getattr(func, "code", None) or getattr(getattr(func, "value", None), "__code__", None)
    if code is None or not code.co_flags & 0x20:  # CO_GENERATOR
        raise Unsupported(f"contextmanager of {func!r}")
    child = inline.inline_function(tx, func, manager.args, manager.kwargs, suspend_at_yield=True)
    if child.done and not child.suspended:
        raise Unsupported("generator didn't yield (raises natively)")
    manager.child = child
    if tx.parent is None:
        tx.ctx.open_with_blocks.append((tx.pc, tx.visits[tx.pc]))
        manager.opened_at_top = True
    tx.push(MethodValue(ConstValue(GeneratorCMExit), manager))
    tx.push(child.yielded[-1])


def exit(tx, manager, exc_args):
    """The normal-path `__exit__(None, None, None)`: finish the generator body."""
    if manager.child is None or manager.finished:
        raise Unsupported("generator context manager exited without being entered")
    if any(not (isinstance(a, ConstValue) and a.value is None) for a in exc_args):
        raise Unsupported("generator context manager exiting with an exception")
    child = manager.child
    child.suspended = False
    child.done = False
    try:
        child.run()
    except Unsupported as exc:
        exc.breakable = True
        raise
    if child.suspended:
        raise Unsupported("generator didn't stop (raises natively)")
    manager.finished = True
    if getattr(manager, "opened_at_top", False):
        tx.ctx.open_with_blocks.pop()
    return ConstValue(False)


def make_manager(func, args, kwargs):
    """A real, not yet entered @contextmanager object: what `helper(*args, **kwargs)` makes
    (reconstruct.py, when the with statement itself runs natively after a break)."""
    return contextlib._GeneratorContextManager(func, args, kwargs)


def unwrap_rng(f):
    """The RNG-state function `f` is, or None. torch may replace torch.manual_seed by a
    functools.wraps wrapper (torch/_compile.py's dynamo-disable): look through it."""
    for _ in range(4):
        if any(f is r for r in RNG_FUNCTIONS):
            return f
        inner = getattr(f, "__wrapped__", None)
        code = getattr(f, "__code__", None)
        if inner is None or code is None or not code.co_filename.endswith(("torch/_compile.py",
                                                                          "torch\\_compile.py")):
            return None
        f = inner
    return None


def call_machine(tx, fn, args, kwargs):
    """torch.accelerator.is_available() and friends: a constant (their arguments too)."""
    if not all(isinstance(a, ConstValue) and not a.by_type for a in list(args) + list(kwargs.values())):
        raise Unsupported(f"{fn.__qualname__} with run-time arguments")
    try:
        return ConstValue(fn(*[a.value for a in args], **{k: v.value for k, v in kwargs.items()}))
    except Exception as exc:
        raise Unsupported(f"{fn.__qualname__} raised {type(exc).__name__} (raises natively)") from None


def rng_get_state():
    _refuse_tracing("torch.get_rng_state")
    return torch.get_rng_state()


def rng_set_state(state):
    _refuse_tracing("torch.set_rng_state")
    torch.set_rng_state(state)


def rng_manual_seed(seed):
    _refuse_tracing("torch.manual_seed")
    return torch.manual_seed(seed)


_NODE_TARGETS = {torch.get_rng_state: rng_get_state, torch.set_rng_state: rng_set_state,
                 torch.manual_seed: rng_manual_seed}


def _refuse_tracing(name):
    """A backend tracing the graph (make_fx, fake tensors) would run this once at trace time
    and bake its result in: fail instead, so that backend runs the graph eagerly."""
    from torch.utils._python_dispatch import _get_current_dispatch_mode_stack

    for mode in _get_current_dispatch_mode_stack():
        if type(mode).__name__ in ("FakeTensorMode", "ProxyTorchDispatchMode", "FunctionalTensorMode"):
            raise RuntimeError(f"{name} changes the global RNG state: the graph cannot be traced")


def call_rng(tx, fn, args, kwargs):
    """get_rng_state / set_rng_state / manual_seed as graph nodes, never run at translate time."""
    from .values import ScalarValue

    graph = tx.ctx.graph
    if kwargs:
        raise Unsupported(f"torch.{fn.__name__} with keyword arguments")
    if fn is torch.get_rng_state:
        if args:
            raise Unsupported("torch.get_rng_state() takes no arguments")
        node = graph.graph.call_function(_NODE_TARGETS[fn], ())
        fake = graph.fake_mode.from_tensor(torch.get_rng_state())  # shape/dtype only
        node.meta["example_value"] = fake
        graph.op_count += 1
        return TensorValue(node, fake)
    if fn is torch.set_rng_state:
        if len(args) != 1 or not isinstance(args[0], TensorValue):
            raise Unsupported("torch.set_rng_state of a non-tensor")
        graph.graph.call_function(_NODE_TARGETS[fn], (args[0].node,))
        graph.op_count += 1
        return ConstValue(None)
    # manual_seed: a known int or a run-time number; returns the default generator
    if len(args) != 1 or not (isinstance(args[0], ScalarValue) or
                              isinstance(args[0], ConstValue) and type(args[0].value) is int
                              and not args[0].by_type):
        raise Unsupported("torch.manual_seed of a non-integer")
    seed = args[0].node if isinstance(args[0], ScalarValue) else args[0].value
    graph.graph.call_function(_NODE_TARGETS[fn], (seed,))
    graph.op_count += 1
    return ConstValue(torch.default_generator)


# node targets changing global RNG state (also CodePlan.global_state_ops: never re-run)
RNG_STATE_OPS = frozenset(_NODE_TARGETS.values())


def is_impure(target):
    """node_effects.is_impure's hook: these nodes change global RNG state."""
    try:
        return target in RNG_STATE_OPS
    except TypeError:
        return False
