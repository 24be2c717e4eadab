"""Backends: GraphModule -> callable (torch.compile's backend convention).

    lookup("interpreter") -> interpreter.compile_graph      eager ops; always works
    lookup("triton")      -> triton.compile_graph           fused Triton kernels (lazy import)
    lookup("cpu")         -> cpu.compile_graph              fused C++ kernels (g++, OpenMP),
                                                            once a graph's eager time pays
    lookup("auto")        -> triton for graphs on CUDA tensors when Triton and a GPU are
                             present; cpu for graphs on CPU tensors big enough for a kernel
                             to pay (a tensor of >= config.cpu_min_elements) when a C++
                             compiler runs; else the interpreter
    lookup("cudagraphs")  -> auto, with each compiled graph replayed through CUDA graphs
                             where that is safe (torch.compile's "reduce-overhead"; see
                             cudagraphs.py); on CPU tensors the same as auto
    lookup(callable)      -> that callable, e.g. a torch.compile-style backend

Example: `lookup("auto")(gm, [torch.randn(4)])` returns `gm.forward` (tiny: the interpreter).
"""
import importlib

import torch

from . import interpreter


def _triton():
    # importlib, not `from . import triton`: this module defines a function named triton.
    return importlib.import_module(__name__ + ".triton")


def _hook_off(compiled):
    """Run a backend's Python internals (Triton launchers, generated binders) with the frame
    hook off: they are not user code and must never reach the translator."""
    try:
        from .._C import DisabledCallable
    except ImportError:  # no frontend on this Python: there is no hook to turn off
        return compiled
    return DisabledCallable(compiled)


def _cpu():
    return importlib.import_module(__name__ + ".cpu")


def _tensor_facts(example_inputs):
    """(device, numel) of each example tensor, without making fakes the translator made lazy."""
    facts = getattr(example_inputs, "tensor_facts", None)
    if facts is not None:
        return facts()
    return [(t.device, t.numel()) for t in example_inputs if isinstance(t, torch.Tensor)]


def _on_cuda(example_inputs):
    return any(device.type == "cuda" for device, _ in _tensor_facts(example_inputs))


# "auto" runs a CPU graph's first calls through the graph module itself and lowers it to
# C++ kernels after them (the ten programs, --config small, median step: see
# docs/CPU_BACKEND.md): make_fx + g++ cost 0.1-0.3 s per graph, and a graph the frontend
# recompiles within its first calls would pay that for nothing.
AUTO_CPU_EAGER_CALLS = 2
# "cpu" chosen by name lowers a graph once its eager run time pays for the lowering
# (CpuCompiledGraph.PAYBACK): the ten programs recompile graphs that run once or twice
# (bert's learning-rate lambda for each step value, faster_rcnn's per-image graphs), and
# lowering each at its first call made forced "cpu" 2-40x eager (docs/CPU_BACKEND.md).
# compile_graph itself still lowers at once (tests).

def _big_enough_for_cpu_kernels(gm, example_inputs):
    """A graph on CPU tensors holding a tensor (input or intermediate) of at least
    config.cpu_min_elements; smaller graphs skip the lowering: eager ops are as fast."""
    from .. import config
    facts = list(_tensor_facts(example_inputs))
    for node in gm.graph.nodes:
        value = node.meta.get("example_value", node.meta.get("val"))
        if isinstance(value, torch.Tensor):
            # the translator propagates facts on meta tensors and records the device beside them
            facts.append((node.meta.get("device", value.device), value.numel()))
    if not facts or any(device.type != "cpu" for device, _ in facts):
        return False
    return any(numel >= config.cpu_min_elements for _, numel in facts)


def auto(gm, example_inputs):
    if _on_cuda(example_inputs):
        try:
            triton_backend = _triton()
            if triton_backend.is_available():
                return _hook_off(triton_backend.compile_graph(gm, example_inputs))
        except ImportError:
            pass
    elif _big_enough_for_cpu_kernels(gm, example_inputs) and _cpu().is_available():
        # lowered on its third call: a graph recompiled before that never pays the lowering
        return _hook_off(_cpu().compile_graph(gm, example_inputs, eager_calls=AUTO_CPU_EAGER_CALLS).entry)
    return interpreter.compile_graph(gm, example_inputs)


def triton(gm, example_inputs):
    return _hook_off(_triton().compile_graph(gm, example_inputs))


def cpu(gm, example_inputs):
    # g++ builds in the background, the graph's calls run eagerly meanwhile (the first call
    # then costs capture + make_fx, not the compile: docs/CPU_BACKEND.md). "auto" builds at
    # once: its trial of kernels against the graph module must time kernels.
    from .. import config
    compiled = _cpu().compile_graph(gm, example_inputs, payback=True, asynchronous=config.cpu_async_compile)
    return _hook_off(compiled.entry)  # its fast path in C (fusion/compiled.py FusedGraph.entry)


def cudagraphs(gm, example_inputs):
    from .cudagraphs import CudaGraphRunner
    compiled = auto(gm, example_inputs)
    if not _on_cuda(example_inputs):
        return compiled
    return _hook_off(CudaGraphRunner(compiled))


_BY_NAME = {"interpreter": interpreter.compile_graph, "auto": auto, "triton": triton, "cpu": cpu,
            "cudagraphs": cudagraphs}


def lookup(name_or_callable):
    if callable(name_or_callable):
        return name_or_callable
    try:
        return _BY_NAME[name_or_callable]
    except KeyError:
        raise ValueError(
            f"unknown terra_dyn backend {name_or_callable!r}; use one of {sorted(_BY_NAME)} or a callable"
        ) from None


def backend_name(name_or_callable):
    if isinstance(name_or_callable, str):
        return name_or_callable
    return getattr(name_or_callable, "__name__", type(name_or_callable).__name__)
