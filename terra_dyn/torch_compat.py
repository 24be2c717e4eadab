"""torch.compile's habits, mapped to terra_dyn (or one clear error naming what is not there).

    optimize(model, mode="max-autotune", dynamic=None, options={"fullgraph": True},
             backend="inductor")
        -> compile_arguments(...) -> backend="auto", fullgraph=True, strict=False

    @torch.compiler.disable      the function runs as plain Python: the translator breaks
                                 at its call; its frame and every frame it calls run with
                                 the hook off (`disabled_frame` -> "recursive": _C.OFF)
    torch.compiler.disable(recursive=False)
                                 its own frame is never translated, functions it calls may
                                 be (`disabled_frame` -> "frame": _C.SKIP), as in Dynamo
    torch.compiler.is_compiling() True inside translated code, False where Python runs

torch._dynamo is never imported: a disabled function is recognised by the attributes
torch's wrapper carries (`_torchdynamo_disable`) and by the wrapper's frame.
"""
import os
import warnings

MODES = {
    "default": "",
    "max-autotune": "",  # the Triton backend autotunes its launch configs in every mode
    "max-autotune-no-cudagraphs": "",
    "reduce-overhead": "",  # backend "cudagraphs": CUDA graph replay where safe (backends/cudagraphs.py)
}
BACKEND_ALIASES = {"inductor": "auto", "eager": "interpreter", "aot_eager": "interpreter"}
OPTION_KEYS = {"fullgraph", "strict", "backend"}  # options terra_dyn's optimize takes itself
_warned = set()


class UnsupportedOption(ValueError):
    """An argument torch.compile takes that terra_dyn does not; the message says which."""


def compile_arguments(backend, fullgraph, strict, mode=None, dynamic=None, options=None):
    """torch.compile-style arguments -> (backend, fullgraph, strict) for optimize."""
    if mode is not None:
        if mode not in MODES:
            raise UnsupportedOption(f"terra_dyn.optimize: unknown mode {mode!r}; use one of {', '.join(MODES)}")
        if MODES[mode] and mode not in _warned:
            _warned.add(mode)
            warnings.warn(f"terra_dyn.optimize(mode={mode!r}): {MODES[mode]}", UserWarning, stacklevel=3)
    if dynamic not in (None, True, False):
        raise UnsupportedOption(f"terra_dyn.optimize(dynamic={dynamic!r}): use None, True or False")
    options = dict(options or {})
    unknown = sorted(set(options) - OPTION_KEYS)
    if unknown:
        raise UnsupportedOption(
            f"terra_dyn.optimize: unsupported option{'s' if len(unknown) > 1 else ''} "
            f"{', '.join(map(repr, unknown))}; options may hold {', '.join(sorted(OPTION_KEYS))} "
            "(every other knob: terra_dyn.config, see `terra-dyn config`)")
    backend = options.get("backend", backend)
    if isinstance(backend, str):
        backend = BACKEND_ALIASES.get(backend, backend)
    if mode == "reduce-overhead":
        if backend in ("auto", "triton", "cudagraphs"):
            backend = "cudagraphs"
        elif "reduce-overhead" not in _warned:
            _warned.add("reduce-overhead")
            warnings.warn(f"terra_dyn.optimize(mode='reduce-overhead'): CUDA graphs replay the auto and "
                          f"triton backends' graphs, not {backend!r}'s; runs as mode='default'",
                          UserWarning, stacklevel=3)
    return backend, bool(options.get("fullgraph", fullgraph)), bool(options.get("strict", strict))


_DISABLE_WRAPPER_FILE = os.path.join("torch", "_dynamo", "eval_frame.py")
_NONRECURSIVE_WRAPPER_FILE = os.path.join("torch", "_dynamo", "external_utils.py")


def disabled_frame(frame):
    """How torch.compiler.disable covers `frame`: "recursive" for the body of a function
    wrapped with recursive=True (called by torch's `DisableContext._fn`), "frame" for one
    wrapped with recursive=False (called by `nonrecursive_disable_wrapper`), else None."""
    caller = frame.f_back
    if caller is None:
        return None
    code = caller.f_code
    if code.co_name == "_fn" and code.co_filename.endswith(_DISABLE_WRAPPER_FILE):
        owner = caller.f_locals.get("self")
        return "recursive" if type(owner).__name__ == "DisableContext" else None
    if code.co_name == "nonrecursive_disable_wrapper" and code.co_filename.endswith(_NONRECURSIVE_WRAPPER_FILE):
        return "frame"
    return None


def is_torch_disabled(fn) -> bool:
    """A function wrapped by torch.compiler.disable (torch's wrapper marks itself)."""
    return bool(getattr(fn, "_torchdynamo_disable", False))
