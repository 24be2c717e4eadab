"""terra_dyn: run imperative PyTorch programs as optimized graphs.

    import terra_dyn
    fast_step = terra_dyn.optimize(step)          # a module stays a module
    report = terra_dyn.explain(step, x, w)        # graphs, breaks, recompiles, guards

The call path, by module: eval_frame (C hook glue) -> convert_frame (callback) ->
translate (bytecode -> FX graph) -> backends -> codegen -> report.
"""
from . import config
from .api import disable, optimize, reset

__all__ = ["config", "optimize", "disable", "reset"]
__version__ = "0.1.0"
