"""The public API: optimize, explain, reset, disable.

    @terra_dyn.optimize                      # or optimize(fn, backend="interpreter")
    def step(x, w):
        return torch.relu(x @ w).sum()

`optimize` wraps a function (or a module) so that its calls run with the frame hook on;
the hook hands each new frame to `convert_frame`'s callback.

    strict=True      any frame terra_dyn cannot translate raises TranslationError (file,
                     line, construct) instead of running eagerly; also TERRA_DYN_STRICT=1
    fullgraph=True   raises FullgraphError unless each frame is one graph with no break
"""
import contextlib
import functools

import torch

from . import code_location, config, convert_frame, eval_frame, torch_compat


def optimize(fn_or_module=None, *, backend="auto", fullgraph=False, strict=False, mode=None, dynamic=None,
             options=None, disable=False):
    """Return `fn_or_module` with its calls captured and compiled.

    Works as `optimize(fn)`, `@optimize` and `@optimize(backend=...)`. A module stays a
    module: the result is an `nn.Module` whose calls are optimized; it pickles and
    `torch.save`s like the original (and loads optimized again).

    torch.compile's arguments are accepted where they mean something here (torch_compat.py):
    `mode` ("default", "max-autotune", ...; "reduce-overhead": the "cudagraphs" backend),
    `options` ({"fullgraph", "strict", "backend"}), `disable=True` (returns the input
    unchanged), backend names "inductor" (-> "auto") and "eager" (-> "interpreter").
    `dynamic`: None (sizes start static, one that changes becomes symbolic), True (every
    size symbolic from the start), False (static; see dynamic_marks.py).
    """
    backend, fullgraph, strict = torch_compat.compile_arguments(backend, fullgraph, strict, mode, dynamic, options)
    if fn_or_module is None:
        return functools.partial(optimize, backend=backend, fullgraph=fullgraph, strict=strict, dynamic=dynamic,
                                 disable=disable)
    if not callable(fn_or_module):
        raise TypeError(
            f"terra_dyn.optimize expects a function or an nn.Module, got {type(fn_or_module).__name__}"
        )
    if disable:
        return fn_or_module
    if getattr(fn_or_module, "_torchdynamo_orig_callable", None) is not None:
        # already torch.compile'd: its own frame hook runs it, and ours must not translate
        # Dynamo's internals underneath it (nor nest the two hooks)
        return eval_frame.hook_off(fn_or_module)
    callback = convert_frame.make_callback(backend=backend, fullgraph=fullgraph, strict=strict, dynamic=dynamic)
    code_location.mark_entry(fn_or_module)  # translated wherever its file lives
    if isinstance(fn_or_module, torch.nn.Module):
        optimized = eval_frame.optimized_module(fn_or_module, callback)
        type(optimized).__reduce_ex__ = _reduce_optimized_module
        type(optimized)._terra_dyn_options = (backend if isinstance(backend, str) else None, fullgraph, strict)
        if strict or fullgraph:
            # the hook propagates a callback's error only in strict mode: turn it on per call
            cls = type(optimized)
            inner_call = cls.__call__

            def strict_call(self, *args, **kwargs):
                with _strict():
                    return inner_call(self, *args, **kwargs)

            cls.__call__ = strict_call
        return optimized
    optimized = eval_frame.optimized_callable(fn_or_module, callback)
    if not (strict or fullgraph):
        return optimized

    @functools.wraps(fn_or_module)
    def strict_wrapper(*args, **kwargs):
        with _strict():
            return optimized(*args, **kwargs)

    return strict_wrapper


def _reduce_optimized_module(self, protocol):
    """Pickle as the original module, re-optimized on load (with a named backend; a
    callable backend may not pickle, so the module then loads as the plain original)."""
    original = type(self)._terra_dyn_original
    backend, fullgraph, strict = type(self)._terra_dyn_options
    if backend is None:
        return original.__reduce_ex__(protocol)
    return _load_optimized, (original, backend, fullgraph, strict)


def _load_optimized(module, backend, fullgraph, strict):
    return optimize(module, backend=backend, fullgraph=fullgraph, strict=strict)


@contextlib.contextmanager
def _strict():
    previous = config.strict
    config.strict = True
    try:
        yield
    finally:
        config.strict = previous


def disable(fn):
    """Mark `fn` never to be touched: its frames (and what it calls) run as plain Python."""
    return eval_frame.disable(fn)


def reset():
    """Clear every cache: translations, compiled graphs, skip marks, recompile counts, and
    the process-wide report recorder."""
    from . import report

    eval_frame.reset()
    convert_frame.reset()
    report.clear()


def explain(fn, *args, **kwargs):
    """`explain(fn, *args)` or `explain(fn)(*args)`: run the call once under terra_dyn and
    return its Report (see explain.py)."""
    from .explain import explain as run_explain

    return run_explain(fn, *args, **kwargs)
