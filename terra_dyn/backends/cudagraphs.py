"""Replaying a compiled graph through CUDA graphs ("reduce-overhead"): one launch per call
instead of one per kernel, for small graphs whose time is all launch overhead.

    runner = CudaGraphRunner(compiled)     # compiled: any backend's callable, e.g. a CompiledGraph
    runner(x, w)                           # call 1: runs `compiled` (compiles, autotunes) and checks it
    runner(x, w)                           # call 2: captures one CUDA graph; later calls replay it
    runner.notes                           # why a signature runs without a graph, one line each

Per input signature (shapes, strides, dtypes, devices, non-tensor values):

    call 1 (warm-up)  run `compiled` as is; record what makes a graph unsafe: an input whose
                      version counter moved (the graph mutates it: a replay would write a
                      private copy instead), an output sharing storage with an input (a copy
                      would break the alias), a CPU tensor among the inputs
    call 2 (capture)  copy the inputs into graph-owned buffers, capture one call on a side
                      stream into a private memory pool, replay it once for this call
    call 3+ (replay)  copy inputs whose memory differs from the buffer's into it, replay,
                      return clones of the outputs

Inputs that are nn.Parameters are read in place (their memory is the same on every call and
an optimizer updates them in place); a replay with a different parameter tensor at that
position captures again. Outputs are cloned so that a later replay never overwrites a
tensor the caller still holds: one copy kernel per output, kept because a silently
overwritten result is worse than a few microseconds.
Anything that fails while capturing leaves that signature running `compiled` as before,
with one note; strict mode (config.strict) raises instead.
"""
import torch

from .. import config
from .fusion.compiled import signature

_WARM, _UNSAFE = "warm", "unsafe"


def _signature(args):
    # requires_grad too: a graph captured without autograd must not replay for inputs that need it
    return signature(args) + tuple(isinstance(a, torch.Tensor) and a.requires_grad for a in args)


def _flat_tensors(value):
    if isinstance(value, torch.Tensor):
        return [value]
    if isinstance(value, (list, tuple)):
        return [t for v in value for t in _flat_tensors(v)]
    if isinstance(value, dict):
        return [t for v in value.values() for t in _flat_tensors(v)]
    return []


def _map_tensors(value, fn):
    if isinstance(value, torch.Tensor):
        return fn(value)
    if isinstance(value, tuple) and hasattr(value, "_fields"):
        return type(value)(*[_map_tensors(v, fn) for v in value])
    if isinstance(value, (list, tuple)):
        return type(value)(_map_tensors(v, fn) for v in value)
    if isinstance(value, dict):
        return {k: _map_tensors(v, fn) for k, v in value.items()}
    return value


class CapturedCall:
    """One signature's CUDA graph: its input buffers, its outputs, and how to replay it."""

    def __init__(self, compiled, args):
        tensors = [a for a in args if isinstance(a, torch.Tensor)]
        self.device = tensors[0].device
        self.params = {i: a for i, a in enumerate(args) if isinstance(a, torch.nn.Parameter)}
        self.buffers = {i: a.clone() for i, a in enumerate(args)
                        if isinstance(a, torch.Tensor) and i not in self.params}
        inputs = [self.buffers.get(i, self.params.get(i, a)) for i, a in enumerate(args)]
        side = torch.cuda.Stream(device=self.device)
        side.wait_stream(torch.cuda.current_stream(self.device))
        with torch.cuda.stream(side):  # a side-stream run first, as CUDA graph capture requires
            compiled(*inputs)
        torch.cuda.current_stream(self.device).wait_stream(side)
        self.graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(self.graph):
            self.outputs = compiled(*inputs)

    def matches_params(self, args):
        return all(args[i] is p for i, p in self.params.items())

    def __call__(self, args):
        for i, buffer in self.buffers.items():
            if args[i].data_ptr() != buffer.data_ptr():
                buffer.copy_(args[i])
        self.graph.replay()
        return _map_tensors(self.outputs, torch.Tensor.clone)


class CudaGraphRunner:
    """`compiled`, replayed through one CUDA graph per input signature where that is safe."""

    def __init__(self, compiled, notes=None):
        self.compiled = compiled
        self.notes = notes if notes is not None else getattr(compiled, "notes", [])
        self.entries = {}  # signature -> _WARM, _UNSAFE or CapturedCall

    def __repr__(self):
        graphs = sum(isinstance(e, CapturedCall) for e in self.entries.values())
        return f"<CudaGraphRunner {graphs} graph(s) over {self.compiled!r}>"

    def note(self, line):
        if line not in self.notes:
            self.notes.append(line)

    def _unsafe_reason(self, args):
        tensors = [a for a in args if isinstance(a, torch.Tensor)]
        if not tensors:
            return "no tensor inputs"
        if any(t.device.type != "cuda" for t in tensors):
            return "inputs not all on a CUDA device"
        if len({t.device for t in tensors}) > 1:
            return "inputs on several CUDA devices"
        if torch.is_grad_enabled() and any(t.requires_grad for t in tensors):
            return "inputs require grad (training graphs run without CUDA graphs)"
        if torch.cuda.is_current_stream_capturing():
            return "already inside a CUDA graph capture"
        return ""

    def _warm_up(self, key, args):
        reason = self._unsafe_reason(args)
        tensors = [a for a in args if isinstance(a, torch.Tensor)]
        versions = [t._version for t in tensors]
        out = self.compiled(*args)
        if not reason and [t._version for t in tensors] != versions:
            reason = "the graph mutates an input"
        if not reason:
            storages = {t.untyped_storage().data_ptr() for t in tensors}
            if any(o.untyped_storage().data_ptr() in storages for o in _flat_tensors(out)):
                reason = "an output aliases an input"
        if not reason and any(o.device.type != "cuda" for o in _flat_tensors(out)):
            reason = "an output is not on the GPU"
        if reason:
            self.note(f"runs without CUDA graphs: {reason}")
        self.entries[key] = _UNSAFE if reason else _WARM
        return out

    def _capture(self, key, args):
        try:
            captured = CapturedCall(self.compiled, args)
        except Exception as exc:
            if config.strict:
                raise
            self.note(f"runs without CUDA graphs: capture failed ({type(exc).__name__}: {exc})")
            self.entries[key] = _UNSAFE
            return None
        self.entries[key] = captured
        return captured

    def __call__(self, *args):
        key = _signature(args)
        entry = self.entries.get(key)
        if entry is None:
            return self._warm_up(key, args)
        if entry is _UNSAFE or (entry is not _WARM and self._unsafe_reason(args)):
            return self.compiled(*args)
        if entry is _WARM or not entry.matches_params(args):
            entry = self._capture(key, args)
            if entry is None:
                return self.compiled(*args)
        return entry(args)

