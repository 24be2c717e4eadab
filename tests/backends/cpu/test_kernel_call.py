"""A kernel's calling function in C++ (csrc/kernel_call.cpp, terra_dyn._tensor_check.KernelCall):
the compiled graph calls it instead of the generated Python function; results (values,
dtypes, shapes, strides) equal eager's and the Python path's, on 1 and 2 threads, for one
output, several outputs and a template's tuple with None; calls it cannot read exactly (a
tensor subclass, keyword arguments) go to the Python function; a checked input with other
strides and an integer division by zero run eager's ops."""
import pytest
import torch

from terra_dyn.backends.cpu import compile_graph, kernel

from ..support import assert_same, trace
from .support import check

tensor_check = pytest.importorskip("terra_dyn._tensor_check")
aten = torch.ops.aten


def _calls(compiled):
    """The kernel calling functions of compiled's programs' rewritten graphs."""
    found = []
    for program in compiled.programs.values():
        gm = getattr(program, "gm", None)
        for node in gm.graph.nodes if gm is not None else ():
            if node.op == "call_function" and hasattr(node.target, "__name__") and \
                    isinstance(node.target, tensor_check.KernelCall):
                found.append(node.target)
    return found


def _both_paths(fn, *args, atol=None, rtol=None):
    """check() through KernelCall and through the Python calling functions: same results."""
    compiled = check(fn, *args, atol=atol, rtol=rtol)
    assert _calls(compiled), compiled.describe()
    old = kernel.C_CALL
    kernel.C_CALL = False
    try:
        python = compile_graph(trace(fn, len(args)), list(args))
    finally:
        kernel.C_CALL = old
    assert not _calls(python)
    assert_same(compiled(*args), python(*args), atol, rtol, "C call against the Python call")
    return compiled


def _expect_same_strides(ours, eager):
    for a, b in zip(ours if isinstance(ours, (list, tuple)) else [ours],
                    eager if isinstance(eager, (list, tuple)) else [eager]):
        assert a is None and b is None or (a.stride() == b.stride() and a.dtype == b.dtype and a.shape == b.shape)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.bfloat16, torch.int32])
def test_pointwise_chain_through_the_c_call(dtype):
    x = (torch.randn(5, 37) * 4).to(dtype)
    fn = lambda x: (x * 2 + 1) * x - 3  # noqa: E731
    compiled = _both_paths(fn, x)
    _expect_same_strides(compiled(x), fn(x))


def test_reduction_with_two_outputs_returns_a_list():
    x = torch.randn(6, 33, dtype=torch.float64)

    def fn(x):
        s = (x * x).sum(-1)
        return s, x / (s.unsqueeze(-1) + 1)

    compiled = _both_paths(fn, x)
    _expect_same_strides(compiled(x), fn(x))


def test_softmax_of_a_transposed_input_plus_a_broadcast_row():
    x, b = torch.randn(4, 3, 50).transpose(0, 1), torch.randn(50)
    _both_paths(lambda x, b: torch.softmax(x + b, -1), x, b, atol=1e-6, rtol=1e-5)


@pytest.mark.parametrize("mask", [(True, True, True), (True, False, True), (False, True, False)])
def test_layer_norm_backward_template_tuple_with_none(mask):
    x, w, b = torch.randn(7, 40) * 2, torch.rand(40) + 0.5, torch.randn(40)
    _, mean, rstd = aten.native_layer_norm(x, [40], w, b, 1e-5)
    g = torch.randn(7, 40)

    def fn(g, x, mean, rstd, w, b):
        return aten.native_layer_norm_backward(g, x, [40], mean, rstd, w, b, list(mask))

    compiled = _both_paths(fn, g, x, mean, rstd, w, b, atol=1e-4, rtol=1e-4)
    ours, eager = compiled(g, x, mean, rstd, w, b), fn(g, x, mean, rstd, w, b)
    assert isinstance(ours, tuple) and [o is None for o in ours] == [e is None for e in eager]


def test_outputs_are_fresh_plain_tensors_and_inference_tensors_under_inference_mode():
    x = torch.randn(8, 8)
    fn = lambda x: torch.tanh(x) * 2 + x  # noqa: E731
    compiled = check(fn, x)
    call = _calls(compiled)[0]
    a, b = call(x), call(x)
    assert a.data_ptr() != b.data_ptr() and a.data_ptr() != x.data_ptr()
    assert not a.requires_grad and a.grad_fn is None and not a.is_inference()
    with torch.inference_mode():
        y = torch.randn(8, 8)
        assert call(y).is_inference() == fn(y).is_inference()
        assert_same(call(y), fn(y))


def test_a_tensor_subclass_and_keywords_take_the_python_function():
    class Marked(torch.Tensor):
        pass

    x = torch.randn(4, 9)
    fn = lambda x: x * 3 + 1  # noqa: E731
    call = _calls(check(fn, x))[0]
    assert call.__name__.startswith("pointwise")  # FX's name for the target
    assert_same(call(x.as_subclass(Marked)).as_subclass(torch.Tensor), fn(x))
    assert_same(call(in0=x), fn(x))
    with pytest.raises(TypeError):
        call(x, x)  # the Python function's own error for a wrong count


def test_a_checked_input_with_other_strides_runs_eagers_ops_with_a_note():
    x, w = torch.randn(6, 5), torch.randn(5, 7)
    fn = lambda x, w: torch.relu(x @ w) * 2 + 1  # noqa: E731
    compiled = check(fn, x, w)
    call = _calls(compiled)[0]
    other = torch.randn(7, 6).t()  # the mm output's shape, transposed strides
    assert_same(call(other), torch.relu(other) * 2 + 1)
    assert any("not the predicted" in n for n in compiled.notes), compiled.notes


def test_integer_division_by_zero_through_the_c_call_raises_eagers_error():
    a = torch.tensor([4, 5, 6], dtype=torch.int64)
    b = torch.tensor([1, 0, 2], dtype=torch.int64)
    fn = lambda a, b: torch.div(a + 1, b, rounding_mode="floor") * 2  # noqa: E731
    compiled = compile_graph(trace(fn, 2), [a, b])
    assert _calls(compiled)
    with pytest.raises(RuntimeError) as eager_error:
        fn(a, b)
    with pytest.raises(RuntimeError) as ours:
        compiled(a, b)
    assert str(ours.value) == str(eager_error.value)


def test_bad_specs_are_refused():
    with pytest.raises(ValueError):
        tensor_check.KernelCall(1, 1, [((2,), (1,), "not a dtype")], [], None, print, print)
    with pytest.raises(ValueError):
        tensor_check.KernelCall(1, 1, [((2,), (1,), torch.float32)], [], [3], print, print)
