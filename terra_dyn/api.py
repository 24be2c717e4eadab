"""The public API: optimize, explain, reset, disable.

    @terra_dyn.optimize                      # or optimize(fn, backend="interpreter")
    def step(x, w):
        return torch.relu(x @ w).sum()

`optimize` wraps a function (or a module) so that its calls run with the frame hook on;
the hook hands each new frame to `convert_frame`'s callback.
"""
import functools

import torch

from . import convert_frame, eval_frame


def optimize(fn_or_module=None, *, backend="auto", fullgraph=False, strict=False):
    """Return `fn_or_module` with its calls captured and compiled.

    Works as `optimize(fn)`, `@optimize` and `@optimize(backend=...)`. A module stays a
    module: the result is an `nn.Module` whose calls are optimized.
    """
    if fn_or_module is None:
        return functools.partial(optimize, backend=backend, fullgraph=fullgraph, strict=strict)
    if not callable(fn_or_module):
        raise TypeError(
            f"terra_dyn.optimize expects a function or an nn.Module, got {type(fn_or_module).__name__}"
        )
    callback = convert_frame.make_callback(backend=backend, fullgraph=fullgraph, strict=strict)
    if isinstance(fn_or_module, torch.nn.Module):
        return eval_frame.optimized_module(fn_or_module, callback)
    return eval_frame.optimized_callable(fn_or_module, callback)


def disable(fn):
    """Mark `fn` never to be touched: its frames (and what it calls) run as plain Python."""
    return eval_frame.disable(fn)


def reset():
    """Clear every cache: translations, compiled graphs, skip marks."""
    eval_frame.reset()
