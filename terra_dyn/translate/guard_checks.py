"""Guard checks: how each kind of check runs in Python, reads to a user, and fails.

The C core (csrc/guards.c) runs the check tuples a GuardSet builds; this module is their
Python reading, used where C is not (PyGuard, when the C core is not built), by explain()
and recompile reasons (recompiles.py), and the helpers a generated predicate calls:

    ("type", 1, int)        run_check -> type(args[1]) is int
                            describe_check -> "type(a1) is int"
    Predicate(["a0"], ["a0.training == True"], namespace) -> a function over the slots
    check_tensor / check_tensor_layout / hook_keys        -> called by predicates

Example: PyGuard([("type", 0, int), ("eq", 0, 3)]).explain(4) -> "a0 == 3".
"""
import abc
import weakref

from .. import own_builtins
from . import guard_snapshot

try:  # a global_id check's object for "the dict lacks the name" (None is a value: `len = None`)
    from .._C import ABSENT as GLOBAL_ABSENT
except ImportError:
    GLOBAL_ABSENT = object()


def check_tensor(t, cls, dtype, device, sizes, strides, requires_grad):
    return (
        type(t) is cls and t.dtype == dtype and t.device == device and t.size() == sizes
        and t.stride() == strides and t.requires_grad == requires_grad
    )


def referent(held):
    """What a check holds: the object, or a weak reference's (None once it died)."""
    return held() if isinstance(held, weakref.ref) else held


def describe_check(check, args=None):
    kind = check[0]
    if kind == "tensor":
        _, i, cls, dtype, device, sizes, strides, rg = check
        return f"a{i}: {cls.__name__} {dtype} {device} sizes={sizes} strides={strides} requires_grad={rg}"
    if kind == "type":
        return f"type(a{check[1]}) is {getattr(referent(check[2]), '__name__', 'a dead class')}"
    if kind == "id":
        return f"a{check[1]} is {_short(check[2])}"
    if kind == "id_weak":
        return f"a{check[1]} is {_short(check[2]())}"
    if kind == "eq":
        return f"a{check[1]} == {check[2]!r}"
    if kind == "len":
        return f"len(a{check[1]}) == {check[2]}"
    if kind == "global_id":
        if check[3] is GLOBAL_ABSENT:
            return f"global {check[2]} is absent"
        return f"global {check[2]} is {_short(check[3])}"
    if kind == "call_id":
        return f"{getattr(check[1], '__name__', check[1])}() is {check[2]!r}"
    if kind == "callback":
        return "the same backend and options (callback)"
    if kind == "type_version":
        cls = referent(check[1])
        return f"class {getattr(cls, '__qualname__', 'of a dead class')} and its bases unchanged (version {check[2]})"
    if kind == "func":
        fn = referent(check[1])
        return f"{getattr(fn, '__qualname__', 'a dead function')}.__code__/__defaults__/__kwdefaults__ unchanged"
    if kind == "no_attr":
        return f"{check[2]!r} not set on a{check[1]} itself"
    if kind == "no_attr_weak":
        return f"{check[2]!r} not set on {_short(check[1]())} itself"
    if kind == "paths":  # facts along attribute / item chains (translate/guard_paths.py)
        return check[2].explain(*args) if args is not None else f"{len(check[2])} path facts"
    if kind == "snapshot":
        failure = check[4].failure()
        if failure is None:
            return f"{check[4]!r}: holds"
        where, what, old, new = failure
        return f"{where}: {what} {guard_snapshot.show(old)} expected, now {guard_snapshot.show(new)}"
    return repr(check)


def _short(obj):
    from .errors import safe_repr

    text = safe_repr(obj, limit=50)  # never a user __repr__: describing a guard is no side effect
    return text if not text.startswith("<") else f"<{type(obj).__name__} at {id(obj):#x}>"


def run_check(check, args):
    kind = check[0]
    if kind == "tensor":
        return check_tensor(args[check[1]], *check[2:])
    if kind == "type":
        return type(args[check[1]]) is referent(check[2])
    if kind == "id":
        return args[check[1]] is check[2]
    if kind == "id_weak":
        return check[2]() is not None and args[check[1]] is check[2]()
    if kind == "eq":
        return args[check[1]] == check[2]
    if kind == "len":
        return len(args[check[1]]) == check[2]
    if kind == "global_id":
        return check[1].get(check[2], GLOBAL_ABSENT) is check[3]
    if kind == "call_id":
        return check[1]() is check[2]
    if kind == "callback":
        return True  # PyGuard (no C core) has no hook: no callback to differ
    if kind == "type_version":
        return False  # without the C core no tag can be read: never reuse
    if kind == "no_attr":
        return check[2] not in getattr(args[check[1]], "__dict__", ())
    if kind == "no_attr_weak":
        return check[1]() is not None and check[2] not in getattr(check[1](), "__dict__", ())
    if kind == "func":
        fn = referent(check[1])
        if fn is None:
            return False
        return fn.__code__ is check[2] and fn.__defaults__ is check[3] and fn.__kwdefaults__ is check[4]
    if kind == "snapshot":
        return check[4].failure() is None
    if kind == "paths":
        return check[2](*args)
    raise ValueError(kind)


def explain_failure(checks, fallback, args):
    """The first failing check of a guard, readable; None when it passes."""
    for check in checks:
        try:
            ok = run_check(check, args)
        except Exception:
            ok = False
        if not ok:
            return describe_check(check, args)
    if fallback is not None and not fallback(*args):
        return fallback.explain(*args) if hasattr(fallback, "explain") else "Python guard"
    return None


_abc_token = [None, None]


def abc_token():
    """One object per value of abc's cache token (a "call_id" check compares by identity; the
    token is an int that each ABC registration anywhere moves)."""
    token = abc.get_cache_token()
    if token != _abc_token[0]:
        _abc_token[:] = [token, object()]
    return _abc_token[1]


class PyGuard:
    """Pure-Python stand-in with the C Guard's interface (used when _C is not built)."""

    def __init__(self, checks, fallback=None):
        self.checks = list(checks)
        self.fallback = fallback

    def __call__(self, *args):
        return self.explain(*args) is None

    check = __call__

    def explain(self, *args):
        return explain_failure(self.checks, self.fallback, args)


FREE = None  # a size, stride or storage offset that is a symbol of the translation: any value >= 2
UNCHECKED = ...  # a storage offset nothing read (check_storage_offset guards it when read)
AT_LEAST_ONE = ...  # a size that is a symbol which may be 1 (translate/unit_sizes.py): any value >= 1


def check_tensor_layout(t, cls, dtype, device, sizes, strides, offset, requires_grad):
    """A tensor guard for an input translated with symbolic sizes: each of `sizes`, `strides`
    and `offset` is an int (that value) or FREE (a symbol: at least 2, as the ShapeEnv
    assumed; relations between symbols are guarded apart), a size also AT_LEAST_ONE (a
    symbol that may be 1); `strides` None: contiguous;
    `offset` UNCHECKED: not checked."""
    if not (type(t) is cls and t.dtype == dtype and t.device == device and t.requires_grad == requires_grad):
        return False
    if not fits_layout(t.size(), sizes):
        return False
    if strides is None:
        if not t.is_contiguous():
            return False
    elif not fits_layout(t.stride(), strides):
        return False
    return offset is UNCHECKED or fits_layout((t.storage_offset(),), (offset,))


def layout_check(meta):
    """check_tensor_layout(x, *meta) as one C++ callable (terra_dyn._tensor_check.LayoutCheck,
    ~50 ns instead of ~5 us: yolov3 checks ~90 a step), or None without that module or
    with fast guards off (_C.set_fast_guards)."""
    try:
        from .. import _C, _tensor_check
    except ImportError:
        return None
    if _C.fast_guards_status() != "on":
        return None
    return _tensor_check.LayoutCheck(check_tensor_layout, *meta)


def fits_layout(actual, wanted):
    """Each item of `actual` is the int in `wanted`, or at least 2 where `wanted` has FREE,
    at least 1 where it has AT_LEAST_ONE."""
    if len(actual) != len(wanted):
        return False
    for want, got in zip(wanted, actual):
        if got != want and (got < 2 if want is FREE else want is not AT_LEAST_ONE or got < 1):
            return False
    return True


class Predicate:
    """A generated Python function `(a0, a1, ...) -> bool` over expressions, checked in order;
    any exception means False. `fast`: the same expressions as run (sources through pinned
    objects start from them); `exprs` stay over the argument slots, for explanations."""

    def __init__(self, params, exprs, namespace, fast=None):
        self.params = list(params)
        self.exprs = list(exprs)
        self.namespace = namespace
        body = " and ".join(f"({e})" for e in (self.exprs if fast is None else fast)) or "True"
        text = (
            f"def predicate({', '.join(self.params)}):\n"
            f"    try:\n        return {body}\n"
            f"    except Exception:\n        return False\n"
        )
        namespace.setdefault("__builtins__", own_builtins.SNAPSHOT)  # never the program's len
        exec(compile(text, "<terra_dyn guard>", "exec"), namespace)
        self.fn = namespace["predicate"]
        self.text = text

    def __call__(self, *args):
        return self.fn(*args)

    def explain(self, *args):
        env = dict(self.namespace)
        env.update(zip(self.params, args))
        for e in self.exprs:
            try:
                ok = eval(e, env)
            except Exception as exc:  # an attribute vanished, a key is missing, ...
                return f"{e} raised {type(exc).__name__}"
            if not ok:
                return e
        return None

    def __repr__(self):
        return f"Predicate({' and '.join(self.exprs)})"


_HOOK_TABLES = ("_forward_hooks", "_forward_pre_hooks", "_backward_hooks", "_backward_pre_hooks",
                "_forward_hooks_with_kwargs", "_forward_pre_hooks_with_kwargs", "_forward_hooks_always_called")


def offset_is(t, offset):
    return t.storage_offset() == offset


def hooks_are(module, keys):
    return hook_keys(module) == keys


def keys_are(d, keys):
    """list(d.keys()) == keys, each key of the very type of the one read: a key that is
    == "a" but of another type is another key to the code that read it (csrc/path_check.c
    key_is reads the same)."""
    now = list(d.keys())
    return len(now) == len(keys) and all(a is b or (type(a) is type(b) and a == b) for a, b in zip(now, keys))


def hook_keys(module):
    """The keys of each of a module's hook tables; () when it has none (the common case)."""
    tables = [getattr(module, t, None) for t in _HOOK_TABLES]
    if not any(tables):
        return ()
    return tuple(tuple(t or ()) for t in tables)
