"""`with torch.autocast(...)` blocks captured in the graph, with eager's dtypes and values.

    torch.autocast("cpu", dtype=torch.bfloat16)     also torch.amp.autocast, torch.cpu.amp.autocast,
        -> construct(): the real manager, built now   torch.cuda.amp.autocast (arguments known now)
    with manager:                     BEFORE_WITH -> enter(tx, manager)
        node  autocast_enter_(device, dtype, enabled, cache_enabled)
        translate time: Blocks.enter switches the real autocast state the same way, so that
        shape propagation (FakeTensorMode, whose CPU/CUDA tensors carry the Autocast
        dispatch keys) casts as the run will: x @ w is bfloat16 inside the block
        stack: exit = BLOCK_EXIT.__exit__, value = the manager (`as m`)
    (block ends normally)             BLOCK_EXIT.__exit__(None, None, None) -> exit(tx)
        node  autocast_exit_()

Run time. autocast_enter_ saves the state it replaces (enabled and dtype of the device, the
cache flag) on a per-thread stack, as eager's `__enter__` saves it on the manager, and
autocast_exit_ pops it: nesting, the weight-cast cache (cleared when the outermost block
ends) and the state after the block are eager's. The decorator form (`@torch.autocast(...)`
on a function or a `forward`) is the same `with` on a real manager inside torch's
decorate_autocast, inlined; its manager is guarded by identity.

Exceptions and breaks. UnwindingCodeGen wraps the graph's `forward` in try/except: if an
op raises, the blocks the graph opened are exited (state restored) before the exception
leaves. A `raise` in the block, or any graph break inside it, ends the graph with the block
open and resumes natively at that instruction (frame.py counts BLOCK_EXIT's `__exit__` as a
Python context manager's exit): the rest of the frame runs as Python under autocast (its
callees are translated, guarded on that state), and the block's own exception handler or
normal exit calls BLOCK_EXIT.__exit__ where eager calls the manager's.

Guards (GuardSet.ambient): `torch._C._is_any_autocast_enabled()`, one call; when autocast
was on at translation, also the enabled flags and dtypes of cpu, cuda and the enabled devices
and the cache flag (state_reader). A manager built with dtype=None or cache_enabled=None
reads the ambient value: guarded too. torch's check ignores mps and maia, so a frame
translated outside autocast is not retranslated inside an mps block (its ops are not cast).

Tracing backends. Triton's lowering runs the graph under make_fx: the enter node switches
autocast on while the ops are traced, so the casts become explicit aten._to_copy nodes
(and the exit node switches it off again). A graph that ends with a block still open (a
break inside the block) cannot be lowered that way, since the state change would be lost:
its forward calls refuse_tracing first, and the backend runs it eagerly.

Example:

    with torch.autocast("cpu", dtype=torch.bfloat16):      autocast_enter_('cpu', torch.bfloat16, True, True)
        y = x @ w                                          matmul -> bfloat16
    return y.float()                                       autocast_exit_(); float
"""
import functools
import sys
import threading
import warnings

import torch
import torch.fx as fx

from ..real_types import isa
from .errors import Unsupported
from .values import ConstValue, MethodValue

_MANAGER = torch.amp.autocast_mode.autocast
# subclasses whose __enter__/__exit__ only forward to the base class (scripting aside)
_KNOWN_CLASSES = tuple(c for c in (_MANAGER, getattr(torch.cpu.amp, "autocast", None),
                                   getattr(torch.cuda.amp, "autocast", None),
                                   getattr(torch.amp.autocast_mode, "_UnmanagedAutocast", None)) if c)
_KNOWN_ENTERS = {c.__dict__.get("__enter__") for c in _KNOWN_CLASSES} - {None}
_KNOWN_EXITS = {c.__dict__.get("__exit__") for c in _KNOWN_CLASSES} - {None}


# ----------------------------------------------------------------------------- run time
_thread = threading.local()


def _open_blocks():
    blocks = getattr(_thread, "blocks", None)
    if blocks is None:
        blocks = _thread.blocks = []
    return blocks


def _switch(device, enabled, dtype, cache_enabled):
    torch.set_autocast_enabled(device, enabled)
    torch.set_autocast_dtype(device, dtype)
    torch.set_autocast_cache_enabled(cache_enabled)


def _saved(device):
    return (device, torch.is_autocast_enabled(device), torch.get_autocast_dtype(device),
            torch.is_autocast_cache_enabled())


# The trailing underscore marks both nodes impure for graph_state's dead-code elimination
# (its rule for in-place ops); is_impure below says the same explicitly.
def autocast_enter_(device, dtype, enabled, cache_enabled):
    """Graph node: eager's autocast.__enter__ for these settings."""
    _open_blocks().append(_saved(device))
    torch.set_autocast_enabled(device, enabled)
    torch.set_autocast_dtype(device, dtype)
    torch.autocast_increment_nesting()
    torch.set_autocast_cache_enabled(cache_enabled)


def autocast_exit_():
    """Graph node: eager's autocast.__exit__ for the innermost block a graph entered."""
    device, enabled, dtype, cache_enabled = _open_blocks().pop()
    if torch.autocast_decrement_nesting() == 0:
        torch.clear_autocast_cache()
    _switch(device, enabled, dtype, cache_enabled)


def open_depth():
    return len(_open_blocks())


def unwind(depth):
    """Exit the blocks opened since `depth` (a graph that raised inside them)."""
    blocks = _open_blocks()
    while len(blocks) > depth:
        autocast_exit_()


def refuse_tracing():
    """First statement of a graph that ends inside a block: a tracing backend (make_fx)
    would drop the state change, so it must run this graph as it is."""
    from torch.utils._python_dispatch import _get_current_dispatch_mode_stack

    for mode in _get_current_dispatch_mode_stack():
        if type(mode).__name__ in ("FakeTensorMode", "ProxyTorchDispatchMode", "FunctionalTensorMode"):
            raise RuntimeError("the graph ends inside a torch.autocast block: it cannot be traced")


class BlockExit:
    """The `__exit__` of every autocast block a graph entered. Translated, a call of it is
    exit(); run natively (after a break inside the block) it exits the innermost block."""

    def __exit__(self, exc_type=None, exc=None, tb=None):
        autocast_exit_()
        return False  # never swallows an exception

    def __repr__(self):
        return "BLOCK_EXIT"


BLOCK_EXIT = BlockExit()
# the node targets; also the state switches a raising graph undoes (its forward exits the
# blocks it opened), which codegen's GraphErrorRerun gets as CodePlan.undone_on_error
STATE_SWITCHES = _NODE_TARGETS = frozenset((autocast_enter_, autocast_exit_))


def is_impure(target):
    """node_effects.is_impure's hook: autocast switches are kept, in program order."""
    try:
        return target in _NODE_TARGETS
    except TypeError:
        return False


# ----------------------------------------------------------------------------- exceptions
class UnwindingCodeGen(fx.graph.CodeGen):
    """FX code generation for a graph with autocast nodes: the body runs in
    `try: ... except BaseException: unwind(depth); raise`, depth read at entry."""

    def __init__(self, blocks):
        super().__init__()
        self.blocks = blocks

    def additional_globals(self):
        return [("_autocast_open_depth", open_depth), ("_autocast_unwind", unwind),
                ("_autocast_refuse_tracing", refuse_tracing)]

    def wrap_body(self, body):
        lines = "".join(body).split("\n")
        inner = "".join(f"    {line}\n" if line.strip() else "\n" for line in lines)
        head = ["_autocast_refuse_tracing()\n"] if self.blocks.left_open_at_end() else []
        return head + ["_autocast_depth = _autocast_open_depth()\n", "try:\n", inner,
                       "except BaseException:\n    _autocast_unwind(_autocast_depth)\n    raise\n"]


def _install_codegen(graph_state, blocks):
    graph = graph_state.graph
    if isinstance(graph._codegen, UnwindingCodeGen):
        return
    if type(graph._codegen) is not fx.graph.CodeGen:
        raise Unsupported("autocast block in a graph with its own code generation")
    codegen = UnwindingCodeGen(blocks)
    graph.set_codegen(codegen)
    graph.on_generate_code(lambda previous: codegen.wrap_body)


# ----------------------------------------------------------------------------- translate time
class Blocks:
    """The autocast blocks open at this point of one translation (TranslationContext.autocast).
    The real autocast state follows them while the frame is translated, so that shape
    propagation casts as the run will; close() puts it back."""

    def __init__(self):
        self.open = []  # _saved(device) per open block, innermost last
        self.yields = []  # per open block: (translator, its yields so far) in a materialized generator
        self.closed_with = None  # blocks still open when the translation ended
        self.top_level = []  # depths (len(open)) of the blocks the top-level frame opened

    def enter(self, device, dtype, enabled, cache_enabled, tx=None):
        self.open.append(_saved(device))
        self.yields.append((tx, _yields(tx)))
        _switch(device, enabled, dtype, cache_enabled)

    def exit(self, tx=None):
        tx_at_enter, count = self.yields.pop()
        device, enabled, dtype, cache_enabled = self.open.pop()
        _switch(device, enabled, dtype, cache_enabled)
        if tx is not None and tx_at_enter is tx and count is not None and _yields(tx) != count:
            # an inlined generator is run to completion at its call, but in eager its
            # consumer's loop body runs between the yields, inside the block
            raise Unsupported("yield inside a torch.autocast block (the generator runs natively)")

    def has_block(self, device=None):
        return any(device is None or saved[0] == device for saved in self.open)

    def left_open_at_end(self):
        return len(self.open) if self.closed_with is None else self.closed_with

    def close(self):
        self.closed_with = len(self.open)
        while self.open:
            self.exit()

    def __repr__(self):
        return f"Blocks({[s[0] for s in self.open]})"


def _yields(tx):
    """How often `tx` yielded, when it is a generator inlined to completion (else None)."""
    yielded = getattr(tx, "yielded", None)
    if yielded is None or (getattr(tx, "suspend_at_yield", False) and not getattr(tx, "lazy", False)):
        return None  # not a generator, or a @contextmanager's (its one yield is the with body)
    return len(yielded)


def needs_fake_propagation():
    """graph_state's hook: autocast casts in the Autocast dispatch keys, which tensors on
    the meta device lack: while autocast is on, ops must propagate under FakeTensorMode."""
    return torch._C._is_any_autocast_enabled()


def start():
    """TranslationContext.__init__: the Blocks of this translation."""
    return Blocks()


# ----------------------------------------------------------------------------- the translator's calls
def is_manager_class(fn):
    return isinstance(fn, type) and issubclass(fn, _MANAGER)


def is_manager(value):
    """A ConstValue holding a torch autocast manager whose enter/exit are torch's own."""
    if not isinstance(value, ConstValue) or not isa(value.value, _MANAGER):
        return False
    cls = type(value.value)
    return getattr(cls, "__enter__", None) in _KNOWN_ENTERS and getattr(cls, "__exit__", None) in _KNOWN_EXITS


def construct(tx, cls, args, kwargs):
    """`torch.autocast(...)`: the real manager, built now from arguments known now; the
    warnings its constructor gives (deprecated classes, an unsupported dtype) are replayed
    on every call at the user's line, as eager gives them."""
    if cls not in _KNOWN_CLASSES:  # a user subclass: its __init__ may do anything
        raise Unsupported(f"constructing {cls.__qualname__} (a subclass of torch.autocast)")
    try:
        values = [a.as_python() for a in args]
        kw = {k: v.as_python() for k, v in kwargs.items()}
    except Unsupported:
        raise Unsupported(f"{cls.__qualname__}() with arguments known only at run time") from None
    try:
        bound = _signature(cls).bind(*values, **kw)
        bound.apply_defaults()
    except TypeError as exc:
        raise Unsupported(f"{cls.__qualname__}(): {exc} (raises natively)") from None
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            manager = cls(*values, **kw)
        except Exception as exc:
            raise Unsupported(f"{cls.__qualname__}() raised {type(exc).__name__} (raises natively)") from None
    ctx = tx.ctx
    if "dtype" in _signature(cls).parameters and bound.arguments.get("dtype") is None:
        _guard_ambient(ctx, dtype_of=manager.device)
    if "cache_enabled" in _signature(cls).parameters and bound.arguments.get("cache_enabled") is None:
        _guard_ambient(ctx, cache=True)
    from .side_effects import Call

    for w in caught:
        ctx.record(Call(ConstValue(_WarningReplay.of(tx, w)), [], {}))
    return ConstValue(manager)


@functools.lru_cache(maxsize=None)
def _signature(cls):
    import inspect

    return inspect.signature(cls)


def enter(tx, manager):
    """BEFORE_WITH on an autocast manager: manager -> BLOCK_EXIT.__exit__, manager."""
    real = manager.value
    ctx = tx.ctx
    if manager.by_type:  # a real manager read from a closure or attribute (the decorator)
        if manager.source is None:
            raise Unsupported(f"with block on {manager!r}")
        ctx.guards.identity(manager.source, real)
    settings = (real.device, real.fast_dtype, bool(real._enabled), bool(real._cache_enabled))
    graph = ctx.graph
    _install_codegen(graph, ctx.autocast)
    ctx.autocast.enter(*settings, tx=tx)
    if tx.parent is None:  # a break inside moves to this with statement (translate/frame.py)
        ctx.open_with_blocks.append((tx.pc, tx.visits[tx.pc]))
        ctx.autocast.top_level.append(len(ctx.autocast.open))
    graph.graph.call_function(autocast_enter_, settings)
    graph.op_count += 1  # a graph of only mode switches must still run
    tx.push(MethodValue(ConstValue(BlockExit.__exit__), ConstValue(BLOCK_EXIT)))
    tx.push(manager)  # `with torch.autocast(...) as m`: eager's __enter__ returns the manager


def exit(tx, args):
    """The normal-path BLOCK_EXIT.__exit__(None, None, None) of the innermost block."""
    if any(not (isinstance(a, ConstValue) and a.value is None) for a in args[1:]):
        raise Unsupported("autocast block exiting with an exception (runs natively)")
    ctx = tx.ctx
    if not ctx.autocast.open:  # entered by native code before this frame was translated
        raise Unsupported("autocast block exited without being entered in this translation")
    if ctx.autocast.top_level and ctx.autocast.top_level[-1] == len(ctx.autocast.open):
        ctx.autocast.top_level.pop()
        ctx.open_with_blocks.pop()
    ctx.autocast.exit(tx)
    ctx.graph.graph.call_function(autocast_exit_, ())
    ctx.graph.op_count += 1
    return ConstValue(False)


QUERIES = (torch.is_autocast_enabled, torch.get_autocast_dtype, torch.is_autocast_cache_enabled,
           torch._C._is_any_autocast_enabled)


def query(tx, fn, args, kwargs):
    """torch.is_autocast_enabled("cpu") and friends: the translate-time state, guarded."""
    try:
        values = [a.as_python() for a in args]
        kw = {k: v.as_python() for k, v in kwargs.items()}
    except Unsupported:
        raise Unsupported(f"{fn.__name__}() with arguments known only at run time") from None
    try:
        result = fn(*values, **kw)
    except Exception as exc:
        raise Unsupported(f"{fn.__name__}() raised {type(exc).__name__} (raises natively)") from None
    if fn is torch.get_autocast_dtype:
        _guard_ambient(tx.ctx, dtype_of=values[0] if values else kw.get("device_type"))
    elif fn is torch.is_autocast_cache_enabled:
        _guard_ambient(tx.ctx, cache=True)
    # enabled flags: GuardSet.ambient's checks already pin them
    return ConstValue(result)


def _guard_ambient(ctx, dtype_of=None, cache=False):
    """A value read from the state at frame entry (not set by a block of this frame)."""
    if dtype_of is not None and not ctx.autocast.has_block(str(dtype_of)):
        ctx.guards.call_id(dtype_reader(str(dtype_of)), torch.get_autocast_dtype(str(dtype_of)))
    if cache and not ctx.autocast.has_block():
        ctx.guards.call_id(torch.is_autocast_cache_enabled, torch.is_autocast_cache_enabled())


@functools.lru_cache(maxsize=None)
def dtype_reader(device):
    """A stable zero-argument function for a `call_id` guard on one device's autocast dtype."""
    def autocast_dtype():
        return torch.get_autocast_dtype(device)

    autocast_dtype.__name__ = f"autocast_dtype_{device}"
    return autocast_dtype


# ----------------------------------------------------------------------------- guards
_ALWAYS_GUARDED = ("cpu", "cuda")
_OTHER_DEVICES = ("xpu", "mps", "hpu", "mtia", "maia", "xla", "ipu")  # guarded when enabled
_states = {}  # interned AutocastState tuples, so a `call_id` guard compares by identity


class AutocastState(tuple):
    """(devices, per-device (enabled, dtype), cache flag), printed readably in reports."""

    def __repr__(self):
        devices, flags, cache = self
        parts = [f"{d}={str(dt).replace('torch.', '') if on else 'off'}" for d, (on, dt) in zip(devices, flags)]
        return f"autocast({', '.join(parts)}, cache={cache})"


def _intern(devices, flags, cache):
    key = (devices, flags, cache)
    state = _states.get(key)
    if state is None:
        state = _states[key] = AutocastState(key)
    return state


@functools.lru_cache(maxsize=None)
def state_reader(devices):
    """A stable zero-argument function returning the interned state of `devices`."""
    def autocast_state():
        return _intern(devices, tuple((torch.is_autocast_enabled(d), torch.get_autocast_dtype(d))
                                      for d in devices), torch.is_autocast_cache_enabled())

    return autocast_state


def ambient_state():
    """(reader, state now) when autocast is on for some device, else None."""
    devices = list(_ALWAYS_GUARDED)
    for d in _OTHER_DEVICES:
        try:
            if torch.is_autocast_enabled(d):
                devices.append(d)
        except Exception:  # a device type this build does not know
            pass
    reader = state_reader(tuple(devices))
    state = reader()
    if len(devices) == len(_ALWAYS_GUARDED) and not any(on for on, _ in state[1]):
        return None
    return reader, state


# ----------------------------------------------------------------------------- warnings
class _WarningReplay:
    """A constructor warning given again at run time with eager's location and registry,
    so the warnings filters (default: once per location) decide as they would in eager."""

    def __init__(self, message, category, filename, lineno, module_globals):
        self.message, self.category = message, category
        self.filename, self.lineno = filename, lineno
        self.module_globals = module_globals

    @classmethod
    def of(cls, tx, caught):
        if caught.filename == __file__:  # the warning points at the caller: the user's line
            return cls(caught.message, caught.category, tx.code.co_filename, tx.lineno(), tx.f_globals)
        module = next((m for m in list(sys.modules.values())
                       if getattr(m, "__file__", None) == caught.filename), None)
        return cls(caught.message, caught.category, caught.filename, caught.lineno,
                   vars(module) if module is not None else {})

    def __call__(self):
        registry = self.module_globals.setdefault("__warningregistry__", {}) if self.module_globals else None
        warnings.warn_explicit(self.message, self.category, self.filename, self.lineno,
                               module=self.module_globals.get("__name__"), registry=registry,
                               module_globals=self.module_globals or None)

    def __repr__(self):
        return f"warning({self.category.__name__} at {self.filename}:{self.lineno})"
