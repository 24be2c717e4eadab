"""explain(): run a function once under terra_dyn and say what was captured and where it broke.

    report = terra_dyn.explain(step, x, w)       # runs step(x, w) once, optimized
    report = terra_dyn.explain(step)(x, w)       # the same (torch._dynamo.explain's spelling)
    print(report)                                # per frame: graphs, breaks, recompiles, time
    report.graphs[0].graph.print_readable()      # the FX graph itself
    report.breaks[0]                             # <break at train.py:23: Tensor.item() ...>
    report.to_json()                             # the same, as plain data

    explain(fn, *args) -> reset() -> optimize(fn) -> call inside report.recording() -> Report

Fresh translation: explain calls `terra_dyn.reset()` first, so every frame `fn` reaches is
translated during this call and its graphs, breaks and guards are in the report (a cached
translation would record nothing). The price: other optimized functions retranslate on
their next call. The call runs for real: `fn`'s side effects happen once, as in eager.
"""
import time

from . import config, report as report_module
from .api import optimize, reset


def explain(fn, *args, **kwargs):
    """Run `fn(*args, **kwargs)` once under terra_dyn and return the Report of that call.

    Two spellings, as torch._dynamo.explain: `explain(fn, *args, **kwargs)`, and
    `explain(fn)(*args, **kwargs)` (with no arguments, explain returns the function that
    runs the call, so a function of no arguments is `explain(fn)()`).

    `fn` may be a function, a method, an nn.Module or an already optimized callable. The
    backend and strictness are those of terra_dyn.config (TERRA_DYN_BACKEND,
    TERRA_DYN_STRICT). Exceptions raised by `fn` propagate as they would eagerly.
    """
    if not args and not kwargs:
        return ExplainCall(fn)
    return _explain_call(fn, args, kwargs)


class ExplainCall:
    """`explain(fn)`: call it with fn's arguments to get the Report."""

    def __init__(self, fn):
        self.fn = fn

    def __call__(self, *args, **kwargs) -> report_module.Report:
        return _explain_call(self.fn, args, kwargs)

    def __repr__(self):
        return f"<explain({_name_of(self.fn)}): call it with the arguments to get the report>"


def _explain_call(fn, args, kwargs) -> report_module.Report:
    reset()
    optimized = optimize(fn, backend=config.backend, strict=config.strict)
    start = time.perf_counter()
    with report_module.recording() as recorder:
        optimized(*args, **kwargs)
    result = recorder.report()
    result.wall_seconds = time.perf_counter() - start
    result.started = start
    result.title = f"explain({_name_of(fn)})"
    return result


def _name_of(fn):
    target = getattr(fn, "_terra_dyn_original", fn)  # an optimized module remembers its original
    name = getattr(target, "__qualname__", None) or getattr(target, "__name__", None)
    return name or type(target).__name__
