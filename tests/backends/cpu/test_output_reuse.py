"""A small kernel output's storage serves the kernel's next call once nothing references it
(csrc/kernel_call.cpp, Spare): a tensor, a view, a storage object, a numpy array, a
copy-on-write clone still holding it keep their values; a resized or shared storage is not
taken back; each output is a new plain tensor (requires_grad, inference mode as eager)."""
import pytest
import torch

from ..support import assert_same
from .support import check

tensor_check = pytest.importorskip("terra_dyn._tensor_check")


def _fn(x):
    return torch.tanh(x) * 2 + x


def _call(x):
    compiled = check(_fn, x)
    program = next(iter(compiled.programs.values()))
    assert isinstance(program.forward, tensor_check.KernelCall), program.gm.code
    return program.forward


def test_a_dropped_output_lends_its_storage_to_the_next_call():
    x, x2 = torch.randn(8, 8), torch.randn(8, 8)
    call = _call(x)
    y = call(x)
    address = y.data_ptr()
    del y
    # the freed memory would go to one of these if the call had not kept it
    blockers = [torch.empty(8, 8) for _ in range(64)]
    y2 = call(x2)
    assert y2.data_ptr() == address and address not in {b.data_ptr() for b in blockers}
    assert_same(y2, _fn(x2))


HOLDERS = {
    "tensor": (lambda y: y, lambda h: h),
    "view": (lambda y: y[1:], lambda h: h),
    "storage": (lambda y: y.untyped_storage(), lambda h: torch.empty(0).set_(h, 0, (8, 8))),
    "numpy": (lambda y: y.numpy(), torch.from_numpy),
    "lazy_clone": (lambda y: y._lazy_clone(), lambda h: h),
}


@pytest.mark.parametrize("holder", sorted(HOLDERS))
def test_an_output_still_referenced_keeps_its_values(holder):
    hold, read = HOLDERS[holder]
    x, x2 = torch.randn(8, 8), torch.randn(8, 8)
    call = _call(x)
    y = call(x)
    kept = hold(y)
    expected = read(kept).clone()
    del y
    y2 = call(x2)
    assert_same(read(kept), expected)
    assert_same(y2, _fn(x2))


def test_a_resized_or_shared_output_is_not_taken_back():
    x, x2 = torch.randn(8, 8), torch.randn(8, 8)
    call = _call(x)
    y = call(x)
    y.resize_(100)
    del y
    assert_same(call(x2), _fn(x2))
    y = call(x)
    y.share_memory_()
    del y
    y2 = call(x2)
    assert not y2.is_shared()
    assert_same(y2, _fn(x2))


def test_a_reused_storage_makes_a_new_plain_tensor():
    x = torch.randn(8, 8)
    call = _call(x)
    y = call(x)
    y.requires_grad_()
    del y
    y = call(x)
    assert not y.requires_grad and y.grad_fn is None and not y.is_inference()
    del y
    with torch.inference_mode():
        assert call(x).is_inference()
    y = call(x)
    assert not y.is_inference()
    assert_same(y, _fn(x))
