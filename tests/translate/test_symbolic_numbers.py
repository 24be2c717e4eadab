"""Sizes and numbers read as Python values stay symbolic after one change (issue 11).

Once a size changed between calls (or is marked dynamic) and once an int argument, attribute
or global changed, the next translation holds it as a symbolic number: arithmetic, comparisons,
min/max, tensor op arguments (view, reshape, expand, new_zeros, arange, narrow, slicing) take
it without fixing its value; a branch guards only the relation it relied on; code that needs
the value (`range(n)`, a dict key) makes that translation static for it. Every call is
compared with eager (values, and Python numbers returned or stored), and the number of
translations is the point.
"""
import functools
import io
import os
import sys
from contextlib import redirect_stdout

import pytest
import numpy as np
import torch

import terra_dyn
from terra_dyn import report

_REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
if _REPO not in sys.path:
    sys.path.insert(0, _REPO)
from benchmarks.programs.boxes import nms_numpy  # noqa: E402  (faster_rcnn's numpy NMS, as it runs there)


def _same(got, expected):
    if isinstance(expected, (tuple, list)):
        assert type(got) is type(expected) and len(got) == len(expected)
        for g, e in zip(got, expected):
            _same(g, e)
    elif isinstance(expected, torch.Tensor):
        torch.testing.assert_close(got, expected, rtol=0, atol=0)
    else:
        assert type(got) is type(expected) and got == expected


def translations(fn, calls, **options):
    """Runs fn eagerly and optimized on each argument tuple, compares; returns the report."""
    terra_dyn.reset()
    fast = terra_dyn.optimize(fn, backend="interpreter", **options)
    with report.recording() as rec:
        for args in calls:
            _same(fast(*args), fn(*args))
    terra_dyn.reset()
    return rec.report()


def rows(*sizes, cols=6):
    return [(torch.randn(n, cols, generator=torch.Generator().manual_seed(n)),) for n in sizes]


def test_a_size_returned_as_a_number_follows_each_call():
    def f(x):
        n = x.shape[0]
        return x.sum(0) / n, n, len(x) + 1

    rep = translations(f, rows(3, 4, 5, 9, 4, 12))
    assert len(rep.graphs) == 2 and not rep.fallbacks


def test_sizes_flow_into_view_reshape_expand_and_factories():
    def f(x):
        h, w = x.shape[-2:]
        flat = x.view(-1, h * w)
        back = flat.reshape(x.shape[0], h, w)
        grid = torch.arange(w, dtype=x.dtype).expand(h, w)
        zeros = x.new_zeros(h, w // 2)
        return back + grid, zeros, flat.shape[1], torch.ones(h).sum()

    calls = [(torch.randn(2, h, w),) for h, w in [(3, 4), (5, 6), (7, 8), (9, 10), (5, 6)]]
    rep = translations(f, calls)
    assert len(rep.graphs) == 2 and not rep.fallbacks


def test_slicing_and_narrow_with_symbolic_bounds():
    def f(x):
        n = x.shape[0]
        half = n // 2
        return x[:half], x[half:], x.narrow(0, 1, n - 2), x[:, : x.shape[1] - 1], n % 3

    rep = translations(f, rows(4, 5, 7, 10, 11))
    assert len(rep.graphs) == 2 and not rep.fallbacks


def test_min_max_and_comparisons_stay_symbolic():
    def f(x):
        n = x.shape[0]
        m = max(n, 4)
        k = min(n - 1, 6)
        return x.new_ones(m).sum(), x[:k], n >= 4, n * 2 - 1

    rep = translations(f, rows(3, 5, 8, 10, 2))
    # sizes 2..10 around the constants 4 and 6: max/min stay symbolic, so no guard on them
    assert len(rep.graphs) == 2 and not rep.fallbacks


def test_a_branch_guards_only_its_relation():
    def f(x):
        n = x.shape[0]
        if n > 8:
            return x * 2
        return x - 1

    rep = translations(f, rows(3, 5, 7, 9, 12, 6, 15, 4))
    # 3 static; 5 symbolic with n <= 8; 9 symbolic with n > 8; the rest reuse them
    assert len(rep.graphs) == 3 and not rep.fallbacks
    assert any("a0.size()[0]" in g and "8" in g for g in rep.guards)


def test_range_over_a_size_unrolls_for_one_value_only():
    def f(x):
        total = x[0] * 0
        for i in range(x.shape[0]):
            total = total + x[i] * i
        return total

    rep = translations(f, rows(2, 3, 4, 5, 3))
    assert len(rep.graphs) == 4  # one per distinct length: never a loop of the wrong length


def test_a_size_used_as_a_dict_key_is_pinned():
    def f(x):
        table = {x.shape[0]: "rows"}
        return x + 1, table

    rep = translations(f, rows(2, 3, 4, 3, 4))
    # a key must be a real number: the dict is built natively (a break), with this call's key
    assert not rep.fallbacks and len(rep.recompiles) <= 2


def test_a_size_stored_on_an_object_and_printed_is_this_calls():
    class Seen:
        n = None

    seen = Seen()

    def f(x):
        seen.n = x.shape[0] * 10
        print("rows", x.shape[0])
        return x.relu()

    terra_dyn.reset()
    fast = terra_dyn.optimize(f, backend="interpreter")
    with report.recording() as rec:
        for (x,) in rows(2, 3, 5, 7):
            out = io.StringIO()
            with redirect_stdout(out):
                _same(fast(x), f(x))
            assert seen.n == x.shape[0] * 10
            assert out.getvalue() == f"rows {x.shape[0]}\n" * 2
    assert len(rec.report().graphs) == 2
    terra_dyn.reset()


def test_sizes_read_from_a_zero_arg_frame_follow_each_call():
    fast = terra_dyn.optimize(lambda x: x.shape[0], backend="interpreter")
    assert [fast(torch.zeros(i)) for i in range(12)] == list(range(12))
    terra_dyn.reset()


def test_an_int_argument_used_as_a_size_is_not_baked_in():
    def f(x, k):
        y = torch.zeros(k)
        return x + y.shape[0], y.sum() + k

    rep = translations(f, [(torch.ones(2), k) for k in (2, 3, 4, 5, 6, 3)])
    assert len(rep.graphs) == 2 and not rep.fallbacks


def test_a_branch_on_an_int_counter_is_a_break_not_a_translation_per_outcome():
    def f(x, step):
        x = x * step
        if step % 2 == 0:  # a counter's branch: a graph break, as before symbolic numbers
            return x + 1
        return x - 1

    rep = translations(f, [(torch.ones(3), s) for s in range(10)])
    # step 0 static; from step 1 on, one translation (the branch runs natively)
    assert len(rep.recompiles) == 1 and not rep.fallbacks
    assert any("branch on a number" in b.reason for b in rep.breaks)


def test_truth_of_a_counter_and_of_a_numpy_number_branch_like_eager():
    # 3.13 converts to bool before its jumps (TO_BOOL, COMPARE_OP's bool flag), and its
    # jumps read only True and False: a number or a numpy bool must never reach one
    def f(x, step, scale):
        if step:
            x = x + 1
        if scale == np.float32(0.5):
            x = x * 2
        if step - 3 < 0:
            x = x - 1
        return x

    rep = translations(f, [(torch.ones(3), s, np.float32(s / 4)) for s in range(8)])
    assert not rep.fallbacks and len(rep.recompiles) < 7  # values: compared call by call


def test_dynamic_true_is_symbolic_from_the_first_call():
    def f(x):
        n = x.shape[0]
        return x.view(n, 2, -1).sum(1) * n

    rep = translations(f, [(torch.randn(n, 4),) for n in (2, 3, 5, 8)], dynamic=True)
    assert len(rep.graphs) == 1


def test_float_arithmetic_with_a_size_never_guards_a_stale_number():
    class Scale(torch.nn.Module):
        p = 0.5

        def forward(self, x):
            return x * (x.shape[0] * self.p)

    m = Scale()
    fast = terra_dyn.optimize(m, backend="interpreter")
    for i, n in enumerate([2, 3, 4, 5, 6]):
        m.p = 0.1 * (i + 1)
        x = torch.ones(n, 2)
        _same(fast(x), x * (n * m.p))
    terra_dyn.reset()


@pytest.mark.parametrize("where", ["attribute", "global"])
def test_a_number_that_changes_every_step_is_a_graph_input(where):
    class Drop(torch.nn.Module):
        p = 0.1

        def forward(self, x):
            return x * (1 - self.p) if where == "attribute" else x * (1 - LR["lr"]) - GLOBAL_SCALE

    m = Drop()
    fast = terra_dyn.optimize(m, backend="interpreter")
    global GLOBAL_SCALE
    with report.recording() as rec:
        for step in range(8):
            m.p = 0.1 + step / 100
            GLOBAL_SCALE = step * 0.5
            LR["lr"] = 0.01 * step
            x = torch.ones(3)
            _same(fast(x), m(x))
    assert len(rec.report().graphs) == 2
    terra_dyn.reset()


LR = {"lr": 0.0}
GLOBAL_SCALE = 0.0


def test_numpy_numbers_that_change_are_passed_through_by_type():
    np = pytest.importorskip("numpy")

    def f(x, s):
        i = np.argmax(np.array([s, 1.0]))  # numpy work: runs natively around the graphs
        return x * 2 + float(s), i, s

    rep = translations(f, [(torch.ones(2), np.float32(v)) for v in (0.5, 2.5, 3.5, 0.25, 7.0)])
    # two code objects (f, and its resume function after the numpy call), each translated
    # once with the numbers as constants and once with them by type: 4 recompiles in all
    # (before: one translation per value for each)
    assert len(rep.recompiles) <= 4 and not rep.fallbacks


def test_an_equality_branch_on_a_number_breaks_instead_of_pinning_it():
    def f(x, point):  # sdpoint: which block downsamples is drawn each step
        for i in range(4):
            if i + 1 == point:
                x = x[:, ::2]
            x = x * (i + 1)
        return x

    # taking the branch would fix point to one value (a translation per value, each a whole
    # model in sdpoint): it is a graph break instead, as for any run-time number
    terra_dyn.reset()
    fast = terra_dyn.optimize(f, backend="interpreter")
    points = (0, 3, 1, 4, 2, 3, 0, 1, 2, 4)
    with report.recording() as first:
        for p in points:
            _same(fast(torch.ones(2, 8), p), f(torch.ones(2, 8), p))
    assert any("branch on a number" in b.reason for b in first.report().breaks)
    with report.recording() as rec:  # settled: every value reuses a translation
        for p in points:
            _same(fast(torch.ones(2, 8), p), f(torch.ones(2, 8), p))
    assert not rec.report().translations and not rec.report().fallbacks
    terra_dyn.reset()


def test_a_counter_read_twice_is_one_graph_input():
    class Step(torch.nn.Module):
        iteration = 0

        def forward(self, x):  # resnet50's train step reads self.iteration in two places
            y = x * (self.iteration // 10)
            return y + self.iteration

    m, ref = Step(), Step()
    fast = terra_dyn.optimize(m, backend="interpreter")
    with report.recording() as rec:
        for i in range(1, 25):
            m.iteration = ref.iteration = i
            _same(fast(torch.ones(2)), ref(torch.ones(2)))
    assert not rec.report().fallbacks and len(rec.report().graphs) == 2
    terra_dyn.reset()


def test_slice_objects_sizes_and_f_strings_with_symbolic_numbers():
    def f(x):
        cut = slice(0, x.shape[0] - 1)
        print("rows")
        return x[cut], x.shape, x.size(), f"n={x.shape[0]:3d}", x[: len(x) // 2].sum()

    with redirect_stdout(io.StringIO()):
        rep = translations(f, rows(2, 3, 4, 5, 6, 7, 3))
    assert len(rep.graphs) == 2 and not rep.fallbacks


def test_sizes_from_the_size_method_are_symbolic_too():
    def f(x):
        n, m = x.size()
        if n > 4:  # a guarded relation, not a break
            return x.view(n, 2, m // 2), x.size(0) * m
        return x.reshape(n * m), x.numel()

    rep = translations(f, rows(3, 5, 6, 7, 2, 3, 9))
    assert len(rep.graphs) == 3 and not rep.breaks and not rep.fallbacks


@terra_dyn.disable
def _runs_natively():
    return None


def test_a_symbolic_slice_lives_across_a_graph_break():
    def f(x):
        cut = slice(1, x.shape[0] - 1)
        _runs_natively()  # a graph break with `cut` live: rebuilt as slice(1, <this call's n - 1>)
        return x[cut] * 2

    rep = translations(f, rows(3, 4, 6, 9, 4))
    assert rep.breaks and not rep.fallbacks




def boxes(seed, n=12):
    rng = np.random.default_rng(seed)
    xy = rng.uniform(0, 40, size=(n, 2))
    return np.concatenate([xy, xy + rng.uniform(4, 20, size=(n, 2))], axis=1), rng.uniform(size=n)


def test_a_function_without_tensor_work_runs_as_written_after_one_recompile():
    terra_dyn.reset()
    fast = terra_dyn.optimize(nms_numpy, backend="interpreter")
    calls = [boxes(seed) + (0.3,) for seed in range(8)]
    with report.recording() as rec:
        for args in calls:
            np.testing.assert_array_equal(fast(*args), nms_numpy(*args))
    rep = rec.report()
    # before: each of its resume functions translated again for each new numpy number
    assert not rep.graphs and not rep.fallbacks and not rep.recompiles
    assert rep.as_written and "runs as written" in rep.as_written[0].reason
    assert "Run as written" in rep.render()
    with report.recording() as rec:  # settled: plain Python, nothing translated again
        for args in calls:
            np.testing.assert_array_equal(fast(*args), nms_numpy(*args))
    assert not rec.report().translations and not rec.report().as_written
    terra_dyn.reset()


def test_a_dict_comprehension_of_item_calls_runs_as_written():
    def losses(d):  # faster_rcnn's log line: its resume functions hold changing floats
        return {k: round(v.item(), 4) for k, v in d.items()}

    terra_dyn.reset()
    fast = terra_dyn.optimize(losses, backend="interpreter")
    for rounds in range(2):
        with report.recording() as rec:
            for s in range(6):
                d = {"a": torch.tensor(0.5 + s + rounds), "b": torch.tensor(1.25 * s)}
                _same(fast(d), losses(d))
        rep = rec.report()
        assert not rep.fallbacks and not rep.recompiles
    assert not rep.translations  # the second round: plain Python throughout
    terra_dyn.reset()


def test_a_function_with_tensor_work_is_still_translated_when_numbers_change():
    def f(x, s):
        i = np.argmax(np.array([s, 1.0]))  # a break, then tensor work in the resume function
        return x * 2 + float(s), i

    rep = translations(f, [(torch.ones(2), np.float32(v)) for v in (0.5, 2.5, 3.5, 0.25, 7.0, 9.0)])
    # f itself has no graph, its resume function has one: the function is not run as written
    assert not rep.as_written and rep.graphs and rep.recompiles


def test_a_flag_that_turns_tensor_work_on_gets_its_translation():
    def f(x, flag):
        if flag:
            return x.relu() * 2
        return None

    # the first translation does no tensor work; the recompile for flag=True still translates
    rep = translations(f, [(torch.randn(3), False), (torch.randn(3), True), (torch.randn(3), True)])
    assert not rep.as_written and len(rep.graphs) == 1


def test_a_symbolic_translation_builds_no_fake_tensor_cache_entries(monkeypatch):
    from torch._subclasses.fake_tensor import FakeTensorMode

    def f(x, w):
        h = (x @ w).relu()
        return h[: x.shape[0] // 2].sum(0) * x.shape[0], h.shape

    made = []
    make_entry = FakeTensorMode._make_cache_entry

    def counting(self, *args, **kwargs):
        made.append(self.shape_env is not None)
        return make_entry(self, *args, **kwargs)

    monkeypatch.setattr(FakeTensorMode, "_make_cache_entry", counting)
    w = torch.randn(6, 5)
    rep = translations(f, [(x, w) for (x,) in rows(4, 6, 8)])
    assert len(rep.translations) == 2 and not rep.fallbacks  # the second one symbolic
    # each translation has its own ShapeEnv: entries made under one are never read again
    assert not any(made)


def test_a_pinned_size_is_not_made_symbolic_again_by_a_like_size_guess():
    def f(x, t):  # yolov3: the grid size is pinned, the target count changes
        acc = x[:, 0]
        for i in range(x.shape[1]):  # needs the grid size's value
            acc = acc + x[:, i]
        return acc.sum() + t.sum(0)

    def call(cols, count):
        return torch.ones(2, cols), torch.arange(count * 3, dtype=torch.float32).view(count, 3)

    terra_dyn.reset()
    fast = terra_dyn.optimize(f, backend="interpreter")
    for cols, count in [(4, 8), (8, 8), (8, 6)]:  # the grid pinned at 8, then the count leaves 8
        _same(fast(*call(cols, count)), f(*call(cols, count)))
    with report.recording() as rec:  # the count stayed symbolic: no translation per count
        for count in (5, 7, 9, 3):
            _same(fast(*call(8, count)), f(*call(8, count)))
    assert not rec.report().translations and not rec.report().fallbacks
    terra_dyn.reset()


def test_sizes_failing_one_at_a_time_are_pinned_one_at_a_time_without_a_fallback():
    def f(x, y, z):  # yolov3's anchors / (img_dim / grid) into torch.tensor: a guard no text spells
        out = x.sum() + y.sum() + z.sum()
        for v in (x, y, z):
            out = out + torch.tensor([2.0 / (v.shape[1] / 8)])
        return out

    terra_dyn.reset()
    fast = terra_dyn.optimize(f, backend="interpreter")
    with report.recording() as rec:
        for n in (4, 8, 16, 32, 8):
            args = (torch.ones(2, n), torch.ones(3, n), torch.ones(4, n))
            _same(fast(*args), f(*args))
    assert not rec.report().fallbacks
    terra_dyn.reset()


class _GrowingCache:
    """transformers' DynamicLayer in small: made on the first call, concatenated on each later."""

    def __init__(self):
        self.keys = None

    def update(self, k):
        self.keys = k if self.keys is None else torch.cat([self.keys, k], dim=-2)
        return self.keys


def test_a_size_pinned_against_a_constant_is_symbolic_again_when_that_one_changes_too():
    # mistral's generate loop: at token 2 the mask's length changed but the cache's did not
    # (the entry before made it), so `scores + mask` pinned the mask; from token 3 both grow, and
    # the mask's old length (2) is the heads' count too (a like-size guess that fails alone)
    def step(q, k, mask, cache):
        keys = cache.update(k)  # (1, 2, L, 4)
        return torch.softmax(q @ keys.transpose(-1, -2) + mask, dim=-1) @ keys

    def run(fn, tokens):
        torch.manual_seed(0)
        cache, out = _GrowingCache(), []
        for t in range(1, tokens + 1):
            q, k = torch.randn(1, 2, 1, 4), torch.randn(1, 2, 1, 4)
            out.append(fn(q, k, torch.zeros(1, 1, 1, t), cache))
        return out

    terra_dyn.reset()
    fast = terra_dyn.optimize(step, backend="interpreter")
    _same(run(fast, 3), run(step, 3))
    with report.recording() as rec:  # tokens 1 to 12, the first three translated already
        _same(run(fast, 12), run(step, 12))
    assert not rec.report().translations and not rec.report().fallbacks
    terra_dyn.reset()


class _Trainer:
    """resnet50's train_step shape: a counter attribute, a progress line every few steps."""

    def __init__(self, every):
        self.iteration, self.every, self.lines = 0, every, []

    def step(self, x):
        y = (x * 2).relu()
        if self.iteration % self.every == 0:
            self.lines.append((self.iteration, float(y.sum())))
        return y + 1


def _train(every, calls):
    """(eager lines, terra lines, translations per call) over `calls` steps, results compared."""
    eager, fast = _Trainer(every), _Trainer(every)
    step = terra_dyn.optimize(fast.step, backend="interpreter")
    per_call = []
    for i in range(calls):
        x = torch.randn(4, 3, generator=torch.Generator().manual_seed(i))
        with report.recording() as rec:
            got = step(x)
        _same(got, eager.step(x))
        eager.iteration += 1
        fast.iteration += 1
        per_call.append(len(rec.report().translations))
    terra_dyn.reset()
    return eager.lines, fast.lines, per_call


def test_a_rarely_taken_branch_on_a_counter_runs_as_written_not_translated():
    eager, lines, per_call = _train(every=5, calls=17)
    assert lines == eager
    assert sum(per_call[2:]) == 0  # steps 5, 10, 15 flip the outcome: run as written


def test_a_branch_on_a_counter_taken_every_other_call_is_translated_both_ways():
    eager, lines, per_call = _train(every=2, calls=12)
    assert lines == eager
    assert sum(per_call[5:]) == 0  # the second flip (call 5) translates the other way


def _deprecated_kwarg(func):
    """transformers' deprecate_kwarg in small: a wrapper taking **kwargs around the forward."""
    @functools.wraps(func)
    def wrapped_func(*args, **kwargs):
        if "past" in kwargs:
            kwargs["cache"] = kwargs.pop("past")
        return func(*args, **kwargs)
    return wrapped_func


class _CountingLayer:
    """DynamicSlidingWindowLayer in small: an int counter beside the growing keys."""

    def __init__(self):
        self.keys = None
        self.cumulative_length = 0

    def mask_length(self, query_length):
        return self.cumulative_length + query_length

    def update(self, k):
        self.cumulative_length += k.shape[-2]
        self.keys = k if self.keys is None else torch.cat([self.keys, k], dim=-2)
        return self.keys


class _CountingCache:
    def __init__(self, layers=2):
        self.layers = [_CountingLayer() for _ in range(layers)]


@_deprecated_kwarg
def _counting_step(x, cache=None):
    # the mask's length comes from the first layer's counter, the keys' from each layer's cat
    mask = torch.zeros(1, 1, x.shape[-2], cache.layers[0].mask_length(x.shape[-2]))
    h = x
    for layer in cache.layers:
        keys = layer.update(h)
        h = torch.softmax(h @ keys.transpose(-1, -2) + mask, dim=-1) @ keys
    return h


@pytest.mark.parametrize("prompt", [1, 3])
def test_a_counter_pinned_against_a_cache_of_one_is_symbolic_again_when_the_cache_grows(prompt):
    # mistral's generate loop with a one-token prompt: at token 2 the counter (1) met the cache's
    # length 1, static (sizes 0 and 1 always are), and `scores + mask` pinned it; from token 3
    # both grow by one per token: the counter is revived with the cache's length (their
    # relation guarded) instead of a translation per token until the recompile limit
    def generate(fn, tokens):
        torch.manual_seed(0)
        cache, out = _CountingCache(), []
        x = torch.randn(1, 2, prompt, 4)
        for _ in range(tokens):
            h = fn(x, cache=cache)
            out.append((h, cache.layers[0].cumulative_length, cache.layers[1].cumulative_length))
            x = h[:, :, -1:] + 0.5
        return out

    terra_dyn.reset()
    fast = terra_dyn.optimize(_counting_step, backend="interpreter")
    _same(generate(fast, 2), generate(_counting_step, 2))  # the warm-up: tokens 1 and 2
    with report.recording() as rec:
        _same(generate(fast, 16), generate(_counting_step, 16))
    r = rec.report()
    assert len(r.translations) <= (1 if prompt == 1 else 0) and not r.fallbacks
    terra_dyn.reset()
