"""Calling one compiled C++ kernel on tensors: output buffers, raw pointers, thread count.

    kernel = CpuKernel(source, library, aten_fallback, checked=[1])
    out0, out1 = kernel(x, w)          # fresh outputs, in eager's strides

A call is: allocate the outputs (torch.empty_strided), pass every tensor's data_ptr() and
torch.get_num_threads() through ctypes (measured: about 1.5 us for a 3-tensor call on this
machine, against 2-5 us for one eager ATen op; docs/CPU_BACKEND.md). ctypes releases the
GIL for the call. The kernel was generated for exact input strides; inputs produced by
ATen steps (whose strides the lowering only predicted) are checked, and a mismatch or a
nonzero return (an integer division by zero) runs the group through `aten_fallback`, eager's
own ops, which return the same values or raise eager's error.
"""
import ctypes

import torch

from .codegen import KernelSource


class CpuKernel:
    """A callable FX target: fx codegen names it by __name__ and stores it as a global."""

    __module__ = __name__

    def __init__(self, source: KernelSource, library, aten_fallback, checked=(), on_fallback=None):
        self.source = source
        self.__name__ = source.name
        self.aten_fallback = aten_fallback
        self.on_fallback = on_fallback or (lambda line: None)
        fn = getattr(library, source.name)
        fn.restype = ctypes.c_int
        fn.argtypes = [ctypes.c_void_p] * (len(source.inputs) + len(source.outputs)) + [ctypes.c_int64]
        self.fn = fn
        self.outputs = [(lay.shape, lay.stride, lay.dtype) for lay in source.output_layouts]
        self.checked = [(i, source.input_layouts[i].stride) for i in checked]
        self.single = len(self.outputs) == 1

    def __repr__(self):
        return f"CpuKernel({self.source.name})"

    def __call__(self, *inputs):
        for i, stride in self.checked:
            if inputs[i].stride() != stride:
                self.on_fallback(f"{self.source.group_repr} ran as ATen ops: input {i} has strides "
                                 f"{inputs[i].stride()}, not the predicted {stride}")
                return self.aten_fallback(*inputs)
        outs = [torch.empty_strided(shape, stride, dtype=dtype, device="cpu") for shape, stride, dtype in self.outputs]
        err = self.fn(*[t.data_ptr() for t in inputs], *[o.data_ptr() for o in outs], torch.get_num_threads())
        if err:
            return self.aten_fallback(*inputs)  # eager raises its own error (division by zero)
        return outs[0] if self.single else outs
