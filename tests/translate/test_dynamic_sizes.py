"""Sizes that change between calls become symbolic after one recompile, as long as the
translation never needs their value (relations between them, like two equal batch sizes,
are guarded).

A tensor guard that failed on sizes alone (same type, dtype, device, number of dims and
requires_grad) makes convert_frame keep those sizes symbolic in the next translation
(`a0.size()[0]`). Reading such a size as a number (`x.shape[0]`) gives a symbolic number
(tests/translate/test_symbolic_numbers.py); if the translation needs its value (a loop over
it) or an op needs it equal to something, the translation is redone with the size static: the
result is always eager's, only the number of translations changes. Sizes 0 and 1 stay static;
non-contiguous inputs are tests/translate/test_symbolic_views.py's.

Every call is compared with eager on the same inputs; the translation counts are the point.
"""
import torch

import terra_dyn
from terra_dyn import report


def run(fn, inputs):
    """Eager vs optimized for each argument tuple; returns the report."""
    fast = terra_dyn.optimize(fn, backend="interpreter")
    with report.recording() as rec:
        for args in inputs:
            expected, got = fn(*args), fast(*args)
            if isinstance(expected, tuple):
                assert len(expected) == len(got)
                for e, g in zip(expected, got):
                    torch.testing.assert_close(g, e, rtol=0, atol=0)
            else:
                torch.testing.assert_close(got, expected, rtol=0, atol=0)
    terra_dyn.reset()
    return rec.report()


def batches(*rows, cols=4):
    return [torch.randn(n, cols, generator=torch.Generator().manual_seed(n)) for n in rows]


W = torch.randn(4, 3, generator=torch.Generator().manual_seed(0))


def test_a_batch_size_that_changes_is_translated_twice():
    def f(x, w):
        h = torch.tanh(x @ w) * 2
        return h.relu().sum(0), h.mean(), torch.cat([h, h], 1)

    rep = run(f, [(x, W) for x in batches(5, 7, 9, 11, 7, 3, 13)])
    assert len(rep.graphs) == 2 and len(rep.recompiles) == 1
    assert not rep.fallbacks


def test_reading_the_size_as_a_number_keeps_it_symbolic():
    def f(x, w):
        n = x.shape[0]
        return (x @ w).sum() / n

    rep = run(f, [(x, W) for x in batches(5, 7, 9, 5)])
    assert len(rep.graphs) == 2  # the graph divides by x.size(0), computed on each call


def test_len_and_iteration_keep_the_size_static():
    def f(x):
        return sum(row.sum() for row in x) + len(x)

    rep = run(f, [(x,) for x in batches(3, 4, 5)])
    assert len(rep.graphs) == 3


def test_an_op_relating_two_sizes_guards_the_relation():
    def f(x, y):
        return x + y  # broadcasting needs the sizes equal (or 1): guarded, a0.size()[0] == a1.size()[0]

    pairs = [(a, b) for a, b in zip(batches(5, 6, 7), batches(5, 6, 7))]
    rep = run(f, pairs)
    assert len(rep.graphs) == 2
    # a later call with mismatched sizes raises eager's error
    fast = terra_dyn.optimize(f, backend="interpreter")
    for a, b in pairs:
        fast(a, b)
    try:
        f(*batches(2, 3))
    except RuntimeError as exc:
        eager_error = type(exc)
    try:
        fast(*batches(2, 3))
    except RuntimeError as exc:
        assert type(exc) is eager_error
    else:
        raise AssertionError("no error")
    terra_dyn.reset()


def test_ones_after_a_change_stay_symbolic_and_strided_inputs_get_a_symbolic_layout():
    def f(x):
        return torch.sigmoid(x) * 3

    strided = [torch.randn(n, 2 * n + 1)[:, ::2] for n in (4, 6, 5)]  # strides (2n+1, 2)
    xs = batches(4, 6, 1, 1, 8) + strided
    rep = run(f, [(x,) for x in xs])
    # 4; symbolic for 6 and 8, and for the 1s (a size that changed is a symbol that may be 1:
    # test_unit_sizes.py); the strided ones: one translation, sizes and strides symbolic
    assert len(rep.graphs) == 3


def test_a_size_of_one_after_symbolic_ones_that_broadcasts_is_eagers():
    def f(x, y):
        return x * y + 1  # equal sizes: a0.size()[0] == a1.size()[0] is guarded

    pairs = list(zip(batches(5, 6, 7, 1, 1), batches(5, 6, 7, 1, 1)))  # the second 1 is translated
    pairs.append((batches(1)[0], batches(3)[0]))  # (1, 4) * (3, 4): eager broadcasts
    pairs.append((batches(3)[0], batches(1)[0]))
    rep = run(f, pairs)
    assert len(rep.graphs) >= 3  # the ones and the broadcast are translations of their own


def test_a_size_of_one_after_symbolic_ones_reads_its_own_stride():
    def f(x):
        return x.sum(1) * x.stride(0)

    xs = batches(5, 6, 7) + [torch.randn(1, 9)[:, :4]] * 2  # (1, 4), strides (9, 1): contiguous too
    # (twice: the first 1 after symbolic ones runs as written, the second is translated)
    rep = run(f, [(x,) for x in xs])
    assert not rep.fallbacks


def test_sizes_reached_through_an_attribute_or_a_list():
    class Holder:
        pass

    holder = Holder()

    def f(xs):
        return torch.relu(holder.t).sum() + xs[0].exp().sum()

    inputs = []
    for n in (5, 6, 7, 8):
        holder_t = torch.randn(n, 3)
        inputs.append(([torch.randn(n + 1, 2)], holder_t))

    fast = terra_dyn.optimize(f, backend="interpreter")
    with report.recording() as rec:
        for xs, t in inputs:
            holder.t = t
            torch.testing.assert_close(fast(xs), f(xs), rtol=0, atol=0)
    assert len(rec.report().graphs) == 2
    terra_dyn.reset()


def test_a_training_step_with_a_changing_batch():
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 2))
    reference = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 2))
    reference.load_state_dict(model.state_dict())

    def make_step(m):
        opt = torch.optim.SGD(m.parameters(), lr=0.1)

        def step(x, y):
            loss = ((m(x) - y) ** 2).mean()  # F.mse_loss compares the sizes: they would stay static
            opt.zero_grad()
            loss.backward()
            opt.step()
            return loss.detach()
        return step

    fast, eager = terra_dyn.optimize(make_step(model), backend="interpreter"), make_step(reference)
    with report.recording() as rec:
        for n in (8, 5, 9, 12, 7, 16, 3):
            x = torch.randn(n, 4, generator=torch.Generator().manual_seed(n))
            y = torch.randn(n, 2, generator=torch.Generator().manual_seed(n + 100))
            torch.testing.assert_close(fast(x, y), eager(x, y), rtol=1e-6, atol=1e-6)
    for p, q in zip(model.parameters(), reference.parameters()):
        torch.testing.assert_close(p, q, rtol=1e-6, atol=1e-6)
    assert len(rec.report().recompiles) <= 4  # not one per batch size
    terra_dyn.reset()


class _Cache:  # a decoder's key cache: empty on the prompt, then one position longer per token
    def __init__(self, keys=None):
        self.keys = keys


def _decode(ids, cache, proj):
    q = ids @ proj  # (1, length, 4)
    keys = q if cache.keys is None else torch.cat([cache.keys, q], dim=1)
    return (q @ keys.transpose(1, 2)).softmax(-1) @ keys, keys


def test_a_cache_of_the_prompt_length_is_symbolic_with_the_first_token():
    """The second call changes ids from the prompt's 8 positions to 1 and is the first to
    see a cache, of 8 positions: that dim is kept symbolic at once (convert_frame's
    _like_sizes), so the third token, with 9, needs no translation (the generate loop)."""
    proj = torch.randn(3, 4)
    prompt, token = torch.randn(1, 8, 3), torch.randn(1, 1, 3)
    _, keys = _decode(prompt, _Cache(), proj)
    calls = [(prompt, _Cache(), proj), (token, _Cache(keys), proj)]
    for n in (9, 10, 4):
        calls.append((token, _Cache(torch.randn(1, n, 4)), proj))
    fast = terra_dyn.optimize(_decode, backend="interpreter")
    with report.recording() as rec:
        for i, args in enumerate(calls):
            expected, got = _decode(*args), fast(*args)
            for e, g in zip(expected, got):
                torch.testing.assert_close(g, e)
            if i == 1:
                translated = rec.report().graph_count
    assert translated == 2 and rec.report().graph_count == 2  # none after the first token
    terra_dyn.reset()


def test_a_size_like_a_changed_one_that_must_stay_static_is_still_right():
    """The guess is only a guess: a dim of the same size used as a number keeps eager's
    result (a new translation where the guard says so)."""
    def f(x, y):
        return x.sum(1) + y.reshape(-1)[: y.shape[0] * 2].sum() * y.shape[0]

    run(f, [(torch.randn(3, 8), torch.randn(5, 2)), (torch.randn(3, 1), torch.randn(8, 2)),
            (torch.randn(3, 1), torch.randn(9, 2)), (torch.randn(3, 1), torch.randn(8, 3))])


class _Window:  # transformers' DynamicSlidingWindowLayer: a counter crossing the window once
    def __init__(self):
        self.cumulative_length, self.window = 0, 4


def _masked(x, layer):
    layer.cumulative_length += x.shape[0]
    if layer.cumulative_length >= layer.window:
        return x[-layer.window + 1:] * 2
    return x + layer.cumulative_length


def test_branch_on_a_counter_attribute_is_guarded_by_its_outcome():
    """A number read from an attribute that changes per call becomes symbolic; a branch on
    it is guarded by its outcome (not a break per call): one translation per side."""
    ours, theirs = _Window(), _Window()
    fast = terra_dyn.optimize(_masked, backend="interpreter")
    with report.recording() as rec:
        for _ in range(8):
            x = torch.randn(1, 3)
            torch.testing.assert_close(fast(x, ours), _masked(x, theirs))
            assert ours.cumulative_length == theirs.cumulative_length
    assert rec.report().break_count == 0 and rec.report().graph_count <= 4
    terra_dyn.reset()


def test_a_size_of_one_after_symbolic_ones_squeezes_as_eager():
    # torch answers squeeze's `s == 1` for a symbol without a guard under size-oblivious
    # reasoning, and keeps the dim: a translation valid for 1 too would read dim() 2 here
    def f(x):
        y = x.squeeze(0)
        return y * 2, y.dim()

    rep = run(f, [(x,) for x in batches(5, 3, 1, 1, 6, 1)])  # a 1 right after a 1 is translated
    assert not rep.fallbacks
