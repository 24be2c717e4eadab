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
about 1 us (docs/CPU_BACKEND.md). Where the C++ module terra_dyn._tensor_check is built,
`call` is its KernelCall instead (csrc/kernel_call.cpp): the same steps in C++, reading data
pointers from the TensorImpl and allocating with at::detail::empty_strided_cpu, calling the
module's `<name>_packed(pointers, nthreads)` entry; it hands any call it cannot read exactly
so (a tensor subclass, keyword arguments) to the Python function (`python_call`), which
stays the path without that module or with `C_CALL = False`. The kernel was generated for exact input strides; inputs
produced by ATen steps (whose strides the lowering only predicted) are checked, and a
mismatch or a nonzero return (an integer division by zero) runs the group through
`aten_fallback`, eager's own ops, which return the same values or raise eager's error.
"""
import ctypes
import functools
import math

import torch

from ... import own_builtins
from . import codegen
from .codegen import KernelSource

C_CALL = True  # KernelCall where terra_dyn._tensor_check has it (tests compare both paths)


def packed_entry(source: KernelSource) -> str:
    """The `<name>_packed(pointers, nthreads)` entry KernelCall calls (one per kernel)."""
    pointers = ", ".join(f"td::AnyPtr{{p[{i}]}}" for i in range(len(source.inputs) + len(source.outputs)))
    return (f'extern "C" int {source.name}_packed(void* const* p, int64_t t) '
            f'{{ return {source.name}({pointers}, t); }}\n')


def _kernel_call_type():
    try:
        from ... import _tensor_check
    except ImportError:
        return None
    return getattr(_tensor_check, "KernelCall", None)


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
        self.python_call = self._generate()
        self.library = library
        self.call = self._c_call(library) or self.python_call

    def _c_call(self, library, returns=None, slow=None):
        """KernelCall for this kernel, or None (no C++ module, no packed entry, C_CALL off).
        returns: output indices of the tuple it returns (-1: None), else the source's
        structure; slow: what runs every call it cannot make itself (with `returns`: a
        function returning that tuple), else the Python calling function and aten_fallback."""
        kernel_call = _kernel_call_type() if C_CALL else None
        entry = getattr(library, f"{self.source.name}_packed", None) if kernel_call else None
        if entry is None:
            return None
        source = self.source
        outputs = [(tuple(lay.shape), tuple(lay.stride), lay.dtype) for lay in source.output_layouts]
        checks = [(i, tuple(source.input_layouts[i].stride), functools.partial(self._strides_differ, i))
                  for i in self.checked]
        if returns is None and source.returns:  # "(out0, None, out1)": output indices, -1 for None
            items = [r.strip() for r in source.returns.strip("()").split(",") if r.strip()]
            if len(items) < 2:
                return None  # "(out0)" is not a tuple: the Python function returns it
            returns = [-1 if r == "None" else int(r[len("out"):]) for r in items]
        # a small kernel keeps the GIL: releasing and taking it back cost more than it lets run
        numel = max(math.prod(lay.shape) for lay in [*source.input_layouts, *source.output_layouts])
        call = kernel_call(ctypes.cast(entry, ctypes.c_void_p).value, len(source.inputs), outputs, checks, returns,
                           slow or self.python_call, slow or self.aten_fallback,
                           release_gil=numel >= codegen.PARALLEL_MIN_ELEMENTS)
        call.__name__, call.__module__ = source.name, __name__
        return call

    def whole_graph_call(self, returns, graph_forward):
        """A KernelCall that is a whole graph's forward: a graph whose one step is this kernel
        on its inputs in order, returning the tuple of outputs `returns` (output indices);
        every call it cannot make itself runs graph_forward (None: no C++ module)."""
        if self.checked or self.source.returns:
            return None
        return self._c_call(self.library, list(returns), graph_forward)

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
