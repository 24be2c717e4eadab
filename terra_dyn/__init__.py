"""terra_dyn: run imperative PyTorch programs as optimized graphs.

    import terra_dyn
    fast_step = terra_dyn.optimize(step)          # a module stays a module
    report = terra_dyn.explain(step, x, w)        # graphs, breaks, recompiles, guards

The call path, by module: eval_frame (C hook glue) -> convert_frame (callback) ->
translate (bytecode -> FX graph) -> backends -> codegen -> report.
"""
from . import config

try:
    from . import eval_frame  # first: on an unsupported Python it names the supported versions
    from .api import disable, optimize, reset
    from .explain import explain  # the function shadows the submodule's name
except ImportError as _hook_error:
    # The frame hook is CPython 3.11 only; the rest (e.g. terra_dyn.backends) still
    # imports, and using the frontend raises the hook's own ImportError.
    def __getattr__(name, _error=_hook_error):
        if name in ("optimize", "disable", "reset", "explain", "eval_frame", "api"):
            raise ImportError(str(_error)) from _error
        raise AttributeError(f"module 'terra_dyn' has no attribute {name!r}")

__all__ = ["config", "optimize", "disable", "reset", "explain"]
__version__ = "0.1.0"
