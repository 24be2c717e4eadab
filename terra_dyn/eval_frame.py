"""Python glue over the C frame hook (terra_dyn._C): wrap functions and modules.

    fast = optimized_callable(step, callback)   # calls of `fast` run with the hook on
    model = optimized_module(model, callback)   # still an nn.Module; same parameters
    with frame_hook(callback): step(x)          # the same, for a block of code
    plain = disable(helper)                     # never touched, nor what it calls

Each call of an optimized function sets this thread's callback, calls the function, and
puts the previous callback back (in C: OptimizedCallable). The hook then hands every new
frame on this thread to the per-code cache, and a miss to `callback(frame)`.

Strict mode: when `terra_dyn.config.strict` is true, an exception raised by the callback
(or a callback returning something other than None / SKIP / CacheEntry) propagates out of
the call; otherwise it becomes a RuntimeWarning and the original code runs.

CPython 3.11, 3.12 and 3.13 (with the GIL) are supported: the hook reads CPython's
internal frame layout, one branch per version (csrc/frame_api.h). On other interpreters
the package still imports (the Triton backend works alone), but importing this module
raises one ImportError saying so (terra_dyn/pyversion.py).
"""
import contextlib
import functools
import sys

from .pyversion import SUPPORTED_VERSIONS, check_python_version  # noqa: F401 (re-exported)

check_python_version()

from . import _C  # noqa: E402  (after the version check: a clear error first)

SKIP = _C.SKIP
set_eval_frame = _C.set_eval_frame
cache_entries = _C.cache_entries


@contextlib.contextmanager
def frame_hook(callback):
    """Run the block with `callback` installed on this thread (None: hook off)."""
    previous = _C.set_eval_frame(callback)
    try:
        yield
    finally:
        _C.set_eval_frame(previous)


def optimized_callable(fn, callback):
    """`fn` wrapped so that its calls run with `callback` installed on this thread."""
    return functools.update_wrapper(_C.OptimizedCallable(fn, callback), fn)


def optimized_module(module, callback):
    """A view of `module` whose calls run with `callback` installed.

    The view's class is a subclass of the module's own class made for it (so isinstance
    holds and repr is unchanged) with `__call__` optimized, and it shares the module's very
    `__dict__`: parameters, buffers, submodules, hooks, the training flag and any attribute
    set later on either object are the same, and `state_dict()` keys are unchanged.
    """
    cls = type(module)
    # The call goes through the original module object: parametrize and weight_norm swap
    # the *original's* class after the first call (a subclass with properties), which the
    # view's class would not see. Attributes the view's class lacks come from it too.
    # drop_self: the view bound as `self` is dropped in C (no Python wrapper frame per call).
    optimized_call = _C.OptimizedCallable(module, callback, drop_self=True)

    def __getattr__(self, name):
        original = type(self)._terra_dyn_original
        if type(original) is not cls:
            return getattr(original, name)
        return cls.__getattr__(self, name)

    subclass = type(cls.__name__, (cls,), {
        "__call__": optimized_call,
        "__getattr__": __getattr__,
        "__module__": cls.__module__,
        "__qualname__": cls.__qualname__,
        "_terra_dyn_original": module,
    })
    view = object.__new__(subclass)
    view.__dict__ = module.__dict__
    return view


def hook_off(fn):
    """`fn` run with the hook off on this thread (its code is not marked: other callers of
    the same code may still be optimized)."""
    wrapper = _C.DisabledCallable(fn)
    with contextlib.suppress(AttributeError, TypeError):
        functools.update_wrapper(wrapper, fn)
    return wrapper


def disable(fn):
    """`fn` with the hook off while it runs; its code object is never handed to a callback."""
    code = getattr(fn, "__code__", None)
    if code is not None:
        _C.skip_code(code)
    wrapper = _C.DisabledCallable(fn)
    with contextlib.suppress(AttributeError, TypeError):
        functools.update_wrapper(wrapper, fn)
    return wrapper


def reset():
    """Drop every code object's cache entries and SKIP marks (skip_code marks stay)."""
    _C.reset()
