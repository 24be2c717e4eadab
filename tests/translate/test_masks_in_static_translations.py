"""Selections by a bool mask, `torch.where(c)` and `nonzero` in a translation without symbolic
sizes (graph_state._sizes_from_data), against eager.

A first (static) translation broke at `px[obj_mask]` (no ShapeEnv for a size from data), and
the resumed frame then took `px[obj_mask]` as an input with a plain size while `tx[obj_mask]`
in it got one from data: `mse_loss` compared the two and broke again (yolov3: two breaks per
masked loss, 14 a layer). Now the fake mode gets a ShapeEnv at the first such op: one size
symbol per mask, the losses compare equal sizes, no break. A question about such a size that
the translator itself must answer (`if len(px[m]):`) breaks there, as the op did before.
"""
import torch
import torch.nn.functional as F

import terra_dyn
from terra_dyn import report


def _losses(x, w):
    px, tx, conf = x[0] * w, x[1], x[2]
    mask = conf > 0.5
    loss = F.mse_loss(px[mask], tx[mask]) + F.binary_cross_entropy(torch.sigmoid(px[mask]), conf[mask])
    other = ~mask
    return loss + 0.5 * F.mse_loss(px[other], tx[other]), tx[mask].numel() + 0 * loss


def _asks_about_the_size(x):
    picked = x[x > 0.5]
    if len(picked) > 2:
        return picked.sum() * 2
    return picked.sum() - 1


def _run(fn, *calls):
    terra_dyn.reset()
    fast = terra_dyn.optimize(fn, backend="interpreter")
    with report.recording() as recorder:
        for args in calls:
            expected_args = [a.detach().clone().requires_grad_(a.requires_grad) for a in args]
            got, expected = fast(*args), fn(*expected_args)
            for g, e in zip(got if isinstance(got, tuple) else (got,), expected if isinstance(expected, tuple) else (expected,)):
                torch.testing.assert_close(g, e, rtol=0, atol=0)
            (got[0] if isinstance(got, tuple) else got).backward()
            (expected[0] if isinstance(expected, tuple) else expected).backward()
            for a, b in zip(args, expected_args):
                if a.requires_grad:
                    torch.testing.assert_close(a.grad, b.grad, rtol=0, atol=0)
    terra_dyn.reset()
    return recorder.report()


def test_masked_losses_in_a_first_translation_match_eager_without_breaks():
    gen = torch.Generator().manual_seed(3)
    calls = []
    for n in (6, 6, 6):  # the same sizes: one static translation
        calls.append((torch.rand(3, 2, n, generator=gen), torch.rand(n, generator=gen).requires_grad_()))
    rep = _run(_losses, *calls)
    assert not rep.breaks, [str(b) for b in rep.breaks]  # before: getitem and mse_loss broke
    assert len(rep.graphs) == 1 and not rep.fallbacks


def test_masked_losses_match_eager_as_sizes_change():
    gen = torch.Generator().manual_seed(4)
    calls = [(torch.rand(3, 2, n, generator=gen), torch.rand(n, generator=gen).requires_grad_())
             for n in (6, 8, 5, 9, 7, 1)]
    rep = _run(_losses, *calls)
    assert not rep.breaks and not rep.fallbacks, [str(b) for b in rep.breaks]


def test_a_question_about_a_size_from_data_breaks_and_matches_eager():
    gen = torch.Generator().manual_seed(5)
    calls = [(torch.rand(8, generator=gen).requires_grad_(),) for _ in range(3)]
    calls.append((torch.zeros(8).requires_grad_(),))  # nothing picked: the other branch
    rep = _run(_asks_about_the_size, *calls)
    assert not rep.fallbacks


def _sample(labels, w):
    """faster_rcnn's sample_balanced: indices by `torch.where`, counts read as Python ints."""
    positive = torch.where(labels >= 1)[0]
    negative = torch.nonzero(labels == 0).flatten()
    num_pos = min(positive.numel(), 3)
    picked = torch.cat([positive[:num_pos], negative[:6 - num_pos]])
    return (w[picked] * labels[picked]).sum() + positive.numel()


def _labels(gen, n, ones):
    labels = torch.zeros(n)
    labels[torch.randperm(n, generator=gen)[:ones]] = 1.0
    return labels


def test_where_and_nonzero_in_a_first_translation_match_eager_without_breaks():
    gen = torch.Generator().manual_seed(6)
    calls = [(_labels(gen, 12, k), torch.rand(12, generator=gen).requires_grad_()) for k in (5, 5, 2, 7, 0)]
    rep = _run(_sample, *calls)
    assert not rep.breaks and not rep.fallbacks, [str(b) for b in rep.breaks]  # before: 2 breaks
    # the counts are sizes from data: one translation serves them all (before: 4)
    assert len(rep.translations) == 1, [str(t) for t in rep.translations]


def test_a_where_of_several_tensors_is_no_size_from_data():
    def f(c, x):
        return torch.where(c > 0, x, -x).sum() + torch.nonzero(c, as_tuple=True)[0].sum()

    gen = torch.Generator().manual_seed(7)
    calls = [(torch.randn(9, generator=gen), torch.rand(9, generator=gen).requires_grad_()) for _ in range(3)]
    rep = _run(f, *calls)
    assert not rep.fallbacks
