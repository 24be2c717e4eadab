"""Calling one compiled C++ kernel on tensors: output buffers, raw pointers, thread count.

    kernel = CpuKernel(source, library, aten_fallback, checked=[1])
    out0, out1 = kernel(x, w)          # fresh outputs, in eager's strides

A call allocates the outputs (torch.empty_strided) and passes every tensor's data_ptr()
and torch.get_num_threads() through ctypes, which releases the GIL for the call. Each
kernel gets its own Python function, generated for its exact inputs and outputs (straight
line, no loops or lists), which the compiled graph calls directly (`kernel.call`):

    def reduction_sum_0(in0, in1):
        if in1.stride() != (1, 64):
            return strides_differ(1, in0, in1)
        out0 = empty_strided((64,), (1,), dtype=dtype0, device=cpu)
        if fn(in0.data_ptr(), in1.data_ptr(), out0.data_ptr(), get_num_threads()):
            return aten_fallback(in0, in1)
        return out0

Measured (benchmarks/cpu_call_overhead.py): the generic version with loops and lists cost
about 3 us of Python per call besides the allocation and the ctypes call; the generated one
about 1 us (docs/CPU_BACKEND.md). The kernel was generated for exact input strides; inputs
produced by ATen steps (whose strides the lowering only predicted) are checked, and a
mismatch or a nonzero return (an integer division by zero) runs the group through
`aten_fallback`, eager's own ops, which return the same values or raise eager's error.
"""
import ctypes

import torch

from ... import own_builtins
from .codegen import KernelSource


class CpuKernel:
    """One kernel of a loaded library; `call` is its generated calling function."""

    def __init__(self, source: KernelSource, library, aten_fallback, checked=(), on_fallback=None):
        self.source = source
        self.aten_fallback = aten_fallback
        self.on_fallback = on_fallback or (lambda line: None)
        fn = getattr(library, source.name)
        fn.restype = ctypes.c_int
        fn.argtypes = [ctypes.c_void_p] * (len(source.inputs) + len(source.outputs)) + [ctypes.c_int64]
        self.fn = fn
        self.checked = list(checked)
        self.call = self._generate()

    def __repr__(self):
        return f"CpuKernel({self.source.name})"

    def __call__(self, *inputs):
        return self.call(*inputs)

    def _strides_differ(self, index, *inputs):
        stride = self.source.input_layouts[index].stride
        self.on_fallback(f"{self.source.group_repr} ran as ATen ops: input {index} has strides "
                         f"{inputs[index].stride()}, not the predicted {stride}")
        return self.aten_fallback(*inputs)

    def _generate(self):
        """The straight-line calling function of the module docstring."""
        source = self.source
        ins = [f"in{i}" for i in range(len(source.inputs))]
        outs = [f"out{i}" for i in range(len(source.outputs))]
        scope = {"fn": self.fn, "aten_fallback": self.aten_fallback, "strides_differ": self._strides_differ,
                 "empty_strided": torch.empty_strided, "get_num_threads": torch.get_num_threads,
                 "cpu": torch.device("cpu"), "__name__": __name__, "__builtins__": own_builtins.SNAPSHOT}
        lines = [f"def {source.name}({', '.join(ins)}):"]
        for i in self.checked:
            lines += [f"    if in{i}.stride() != {source.input_layouts[i].stride!r}:",
                      f"        return strides_differ({i}, {', '.join(ins)})"]
        for i, layout in enumerate(source.output_layouts):
            scope[f"dtype{i}"] = layout.dtype
            lines.append(f"    out{i} = empty_strided({layout.shape!r}, {layout.stride!r}, dtype=dtype{i}, device=cpu)")
        pointers = ", ".join(f"{name}.data_ptr()" for name in ins + outs)
        lines += [f"    if fn({pointers}, get_num_threads()):",
                  f"        return aten_fallback({', '.join(ins)})  # eager raises its own error",
                  f"    return {source.returns or (outs[0] if len(outs) == 1 else '[' + ', '.join(outs) + ']')}"]
        exec(compile("\n".join(lines), f"<cpu kernel call {source.name}>", "exec"), scope)
        return scope[source.name]
