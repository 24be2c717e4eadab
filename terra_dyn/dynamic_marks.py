"""Sizes the user declares dynamic or static before the first call, and optimize's
`dynamic=` (torch.compile's meanings).

    terra_dyn.mark_dynamic(x, 0)    x's size 0 is symbolic from the first translation
    terra_dyn.mark_static(x, 1)     x's size 1 never becomes symbolic, however it changes
    optimize(f, dynamic=None)       sizes start static; one that changes becomes symbolic
    optimize(f, dynamic=True)       every size of every tensor argument symbolic from the start
    optimize(f, dynamic=False)      sizes stay static: one translation per size

Marks live on the tensor (like torch._dynamo.mark_dynamic's) and are read when a frame with
that tensor in an argument slot is translated: they become `a<slot>.size()[<dim>]` entries of
the code's dynamic (or static) set in convert_frame. A size that the translation cannot keep
symbolic (the code reads it as a number) falls back to static, as an automatic one does
(DynamicShapesFailed), and the recompile report says so.
"""
import torch

_DYNAMIC, _STATIC = "_terra_dyn_dynamic_dims", "_terra_dyn_static_dims"


def _mark(t, dims, attr):
    if not isinstance(t, torch.Tensor):
        raise TypeError(f"terra_dyn.{attr[10:-5]}: expected a tensor, got {type(t).__name__}")
    dims = [dims] if isinstance(dims, int) else list(dims)
    for d in dims:
        if not -t.dim() <= d < t.dim():
            raise IndexError(f"dimension {d} out of range for a tensor of {t.dim()} dims")
    setattr(t, attr, getattr(t, attr, frozenset()) | {d % t.dim() for d in dims})


def mark_dynamic(t, dims):
    """Keep size(s) `dims` of tensor `t` symbolic from the first translation on."""
    _mark(t, dims, _DYNAMIC)


def mark_static(t, dims):
    """Never make size(s) `dims` of tensor `t` symbolic (one translation per value)."""
    _mark(t, dims, _STATIC)


def marked_sizes(args, dynamic=None):
    """(sizes to keep symbolic, sizes to keep static) of the tensors in argument slots
    `args`, as `a<slot>.size()[<dim>]`; `dynamic` is optimize's argument."""
    wanted, pinned = set(), set()
    for i, t in enumerate(args):
        if not issubclass(type(t), torch.Tensor):  # isinstance() could run a user __getattribute__
            continue
        static = getattr(t, _STATIC, frozenset())
        if dynamic is False:
            static = range(t.dim())
        dims = range(t.dim()) if dynamic is True else getattr(t, _DYNAMIC, ())
        wanted.update(f"a{i}.size()[{d}]" for d in dims if d not in static)
        pinned.update(f"a{i}.size()[{d}]" for d in static)
    return wanted, pinned
