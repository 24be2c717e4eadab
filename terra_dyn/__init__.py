"""terra_dyn: run imperative PyTorch programs as optimized graphs.

    import terra_dyn
    fast_step = terra_dyn.optimize(step)          # a module stays a module
    report = terra_dyn.explain(step, x, w)        # graphs, breaks, recompiles, guards

The call path, by module: eval_frame (C hook glue) -> convert_frame (callback) ->
translate (bytecode -> FX graph) -> backends -> codegen -> report.
"""
from . import own_builtins

own_builtins.install(__name__)  # before any other submodule: see own_builtins.py

from . import config, logs  # noqa: E402
from .logs import set_logs

from .pyversion import unsupported_reason as _unsupported_reason

logs.install_from_config()  # TERRA_DYN_LOGS / TERRA_DYN_VERBOSE

if _unsupported_reason() is None:
    # Imported unconditionally: a real import error here must surface as itself, not be
    # mistaken for an unsupported Python.
    from . import eval_frame
    from .api import disable, optimize, reset
    from .explain import explain  # the function shadows the submodule's name
    from .dynamic_marks import mark_dynamic, mark_static
else:
    # The frame hook supports CPython 3.11-3.13 with the GIL (pyversion.py); the rest (e.g. terra_dyn.backends.triton) still
    # imports, and using the frontend raises one ImportError naming the supported versions.
    def __getattr__(name):
        if name in ("optimize", "disable", "reset", "explain", "eval_frame", "api"):
            from .pyversion import check_python_version

            check_python_version()
        raise AttributeError(f"module 'terra_dyn' has no attribute {name!r}")

__all__ = ["config", "optimize", "disable", "reset", "explain", "set_logs", "mark_dynamic", "mark_static"]
__version__ = "0.1.0"
