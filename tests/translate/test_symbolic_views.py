"""Non-contiguous inputs (slices, transposes) whose sizes change keep them symbolic too, and a
storage offset read as a number is always this call's (issue 11).

After one size-only recompile, a slice or a transpose of a tensor is translated with symbolic
sizes, its strides symbolic or inferred from the sizes (`a0.stride()[1] == a0.size()[0]` for
a transpose, a guarded relation) and its storage offset symbolic when at least 2. A later call
whose layout breaks a relation the translation relied on is translated again. `x.storage_offset()`
read as a number is guarded (or symbolic), never the first call's. Every call is compared with
eager (tensors, and the Python numbers returned); translation counts are the point.
"""
import torch

import terra_dyn
from terra_dyn import report

from .test_symbolic_numbers import _same, translations


def bbox_wh_iou(wh1, wh2):  # yolov3's, called on a column slice of the targets
    wh2 = wh2.t()
    w1, h1 = wh1[0], wh1[1]
    w2, h2 = wh2[0], wh2[1]
    inter_area = torch.min(w1, w2) * torch.min(h1, h2)
    union_area = (w1 * h1 + 1e-16) + w2 * h2 - inter_area
    return inter_area / union_area, wh2.shape[1], wh2.stride(), wh2.is_contiguous()


def targets(n, seed=0):
    return torch.rand(n, 6, generator=torch.Generator().manual_seed(seed + n))


def test_a_column_slice_whose_rows_change_is_translated_twice():
    anchor = torch.tensor([1.5, 2.0])
    calls = [(anchor, targets(n)[:, 4:6]) for n in (3, 5, 7, 9, 4, 12, 5)]
    rep = translations(bbox_wh_iou, calls)
    assert len(rep.graphs) == 2 and len(rep.recompiles) == 1 and not rep.fallbacks


def test_a_transpose_keeps_its_stride_as_a_relation_to_its_size():
    def f(x):
        return (x * 2).sum(1), x.shape[0], x.stride(), x.is_contiguous(), x.t().is_contiguous()

    calls = [(torch.randn(4, n).t(),) for n in (3, 5, 7, 9)]
    rep = translations(f, calls)
    assert len(rep.graphs) == 2 and not rep.fallbacks
    # the same sizes with another layout: every stride, contiguity and value stays eager's
    others = [(torch.randn(4, 2 * n)[:, ::2].t(),) for n in (5, 6)] + [(torch.randn(n, 4),) for n in (5, 6)]
    rep = translations(f, calls + others)
    assert len(rep.graphs) == 4 and not rep.fallbacks  # one more per layout, not per size


def test_row_and_column_slices_with_changing_offsets():
    def f(x, y):
        return x.exp() + 1, (y * x[:, :1]).sum(0), x.storage_offset(), y.stride(0)

    calls = []
    for n in (4, 6, 9, 5, 11):
        base = torch.randn(n, n + 3, generator=torch.Generator().manual_seed(n))
        calls.append((base[2:, 2:], base[2:, 1:3]))
    rep = translations(f, calls)
    assert len(rep.graphs) == 2 and not rep.fallbacks


def test_storage_offset_of_a_contiguous_input_is_this_calls():
    # on main this returned the first call's offset for every later call
    def f(x):
        return x * 2, x.storage_offset(), x[1:].storage_offset()

    base = torch.arange(40.0)
    calls = [(base[k:k + 4],) for k in (0, 3, 5, 5, 0, 7)]
    rep = translations(f, calls)
    assert len(rep.graphs) == 4 and not rep.fallbacks  # one per offset read


def test_an_offset_nothing_reads_is_not_guarded():
    def f(x):
        return x * 2 + x.sum()

    base = torch.arange(40.0)
    rep = translations(f, [(base[k:k + 4],) for k in (0, 3, 5, 9)])
    assert len(rep.graphs) == 1


def test_storage_offset_of_a_symbolic_input():
    def f(x):
        return x.cumsum(0), x.storage_offset(), x.shape[0]

    base = torch.arange(60.0)
    calls = [(base[k:k + n],) for k, n in ((4, 3), (6, 5), (2, 8), (9, 4), (3, 3), (0, 5), (1, 6), (5, 2))]
    rep = translations(f, calls)
    assert len(rep.graphs) <= 4 and not rep.fallbacks  # offsets 0 and 1 are constants of their own


def test_gradients_and_in_place_writes_through_symbolic_views():
    def f(x, w):
        return ((x * w).sum(1) ** 2).mean(), x.stride(), x.storage_offset()

    def g(x):
        x.mul_(2)  # writes through the view into its base
        return x.sum(0)

    terra_dyn.reset()
    fast_f, fast_g = terra_dyn.optimize(f, backend="interpreter"), terra_dyn.optimize(g, backend="interpreter")
    with report.recording() as rec:
        for n in (3, 5, 7, 9, 4):
            base = torch.randn(n + 2, 6, generator=torch.Generator().manual_seed(n), requires_grad=True)
            twin = base.detach().clone().requires_grad_(True)
            w = torch.randn(3, generator=torch.Generator().manual_seed(n + 50))
            got, expected = fast_f(base[2:, 1:4], w), f(twin[2:, 1:4], w)
            _same(got, expected)
            got[0].backward()
            expected[0].backward()
            _same(base.grad, twin.grad)
            written, written_eager = base.detach().clone(), base.detach().clone()
            _same(fast_g(written[:, 1:3]), g(written_eager[:, 1:3]))
            _same(written, written_eager)
    rep = rec.report()
    assert len(rep.graphs) == 4 and len(rep.recompiles) == 2 and not rep.fallbacks  # 2 for f, 2 for g
    terra_dyn.reset()


class _WindowLayer:
    """transformers' DynamicSlidingWindowLayer in small: keeps the last `window - 1` positions."""

    def __init__(self, window=4):
        self.keys, self.window = None, window

    def update(self, k):
        full = k if self.keys is None else torch.cat([self.keys, k], dim=-2)
        self.keys = full[:, :, -self.window + 1:, :]
        return full


def _window_step(x, layer):
    full = layer.update(x)
    return torch.softmax(x @ full.transpose(-1, -2), dim=-1) @ full, layer.keys.stride()


def test_a_window_cache_sliced_from_the_prompt_keeps_its_strides_symbolic():
    # gemma2's generate loop: at the second token the window cache is the last 3 positions of
    # the prompt's 8 (strides of a base 8 long), from the third a slice of a 4-long tensor: the
    # same sizes, other strides. The prompt's length changed (8 -> 1) at that second call, so the
    # cache's base of that length makes its strides symbolic then (relations guarded), not one
    # more translation at the third token
    def generate(fn, tokens, prompt=8, heads=2):
        torch.manual_seed(0)
        layer, out = _WindowLayer(), []
        x = torch.randn(1, heads, prompt, 4)
        for _ in range(tokens):
            h, strides = fn(x, layer)
            out.append((h, strides, layer.keys.stride()))
            x = h[:, :, -1:] * 0.5
        return out

    terra_dyn.reset()
    fast = terra_dyn.optimize(_window_step, backend="interpreter")
    _same(generate(fast, 2), generate(_window_step, 2))  # the warm-up: the prompt and token 2
    with report.recording() as rec:
        _same(generate(fast, 10), generate(_window_step, 10))
    assert not rec.report().translations and not rec.report().fallbacks
    # other layouts of the same sizes: whatever the guard lets through is eager's
    for prompt, heads in ((6, 2), (8, 3), (2, 2)):
        _same(generate(fast, 6, prompt, heads), generate(_window_step, 6, prompt, heads))
    terra_dyn.reset()
