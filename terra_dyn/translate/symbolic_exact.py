"""Rules whose results are exact by construction, with no check against the op run on meta
tensors at the symbols' values (symbolic_rules.propagate uses them):

    by_mask(env, mode, fake_args)  -> `t[mask]`'s fake result, or None when not that case

Meta tensors have no `nonzero`, so a selection by a bool mask cannot be checked there.
"""
import torch

from .size_decisions import _Fail, _need, _same


def by_mask(env, mode, args):
    """`t[mask]` for a bool mask of all of t's sizes (yolov3's `px[obj_mask]`): a 1-d result of
    the mask's count of True, the count from FakeTensorMode's nonzero (memoized on the mask:
    the same mask, unchanged, gives the same count, so `mse_loss(px[m], tx[m])` compares equal
    sizes). Meta tensors have no nonzero, so no meta check: None when not this case."""
    if len(args) != 2 or not isinstance(args[1], torch.Tensor):
        return None
    t, mask = args
    if mask.dtype is not torch.bool:
        return None
    if not t.dim() or mask.dim() != t.dim():
        raise _Fail  # indexes leading dims (a copy of t's layout) or a 0-d mask
    for a, b in zip(t.shape, mask.shape):
        _need(_same(env, a, b))
    with mode:
        count = torch.ops.aten.nonzero.default(mask).shape[0]
    from torch._subclasses.fake_tensor import FakeTensor

    return FakeTensor(mode, torch.empty_strided((count,), (1,), dtype=t.dtype, device="meta"), t.device)
