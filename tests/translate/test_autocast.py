"""torch.autocast blocks are captured in the graph (translate/autocast.py), with eager's
dtypes, values, printed output, warnings, exceptions and autocast state after the call.

Each test runs the optimized function twice (the first call translates, the second hits the
cache) and the plain function once, on fresh copies of the same inputs.
"""
import contextlib
import warnings

import pytest
import operator

import torch
import torch.nn as nn

import terra_dyn
from terra_dyn import report
from terra_dyn.translate import autocast as autocast_mod


def _state():
    return (torch.is_autocast_enabled("cpu"), torch.get_autocast_dtype("cpu"),
            torch.is_autocast_enabled("cuda"), torch.is_autocast_cache_enabled(),
            torch.is_grad_enabled(), len(autocast_mod._open_blocks()))


def _outcome(fn, args):
    try:
        return ("returned", fn(*args)), _state()
    except Exception as exc:  # noqa: BLE001 - compared with eager's
        return ("raised", type(exc), str(exc)), _state()


def _same(a, b):
    if isinstance(a, torch.Tensor):
        return (isinstance(b, torch.Tensor) and a.dtype == b.dtype and a.shape == b.shape
                and a.requires_grad == b.requires_grad and torch.equal(a.detach(), b.detach()))
    if isinstance(a, (tuple, list)):
        return type(a) is type(b) and len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    return a == b


def _compare(fn, make_args, capsys, backend="interpreter"):
    """Assert the optimized fn and fn agree (twice); return the first call's report."""
    fast = terra_dyn.optimize(fn, backend=backend)
    before = _state()
    with report.recording() as rec:
        first = _outcome(fast, make_args())
    first_out = capsys.readouterr().out
    with report.recording() as rec2:
        second = _outcome(fast, make_args())
    second_out = capsys.readouterr().out
    assert _state() == before
    eager = _outcome(fn, make_args())
    eager_out = capsys.readouterr().out
    for ours in (first, second):
        assert _same(ours[0], eager[0]), (ours, eager)
        assert ours[1] == eager[1] == before
    assert first_out == second_out == eager_out
    assert not rec2.report().recompiles and not rec2.report().graphs  # the cache served it
    return rec.report()


def _args(*shapes, seed=0, grad=()):
    def make():
        g = torch.Generator().manual_seed(seed)
        return tuple(torch.randn(*s, generator=g).requires_grad_(i in grad) for i, s in enumerate(shapes))
    return make


def _targets(rep):
    return [n.target for g in rep.graphs for n in g.graph.graph.nodes]


def test_block_is_one_graph_with_eager_dtypes(fresh_terra_dyn, capsys):
    def f(x, w, b):
        h = x * 2
        with torch.autocast("cpu", dtype=torch.bfloat16):
            y = h @ w
            z = torch.nn.functional.linear(h, w.t(), b)
            s = torch.softmax(y, -1)
            ld = y.dtype
        return y + 1, z, s, ld, (h @ w).dtype

    rep = _compare(f, _args((4, 8), (8, 3), (3,)), capsys)
    assert rep.graph_count == 1 and rep.break_count == 0
    targets = _targets(rep)
    assert autocast_mod.autocast_enter_ in targets and autocast_mod.autocast_exit_ in targets


def test_float16_default_dtype_and_amp_spelling(fresh_terra_dyn, capsys):
    def f(x, w):
        with torch.amp.autocast("cpu", dtype=torch.float16):
            a = x @ w
        with torch.autocast(device_type="cpu"):
            b = x @ w
        return a, b

    rep = _compare(f, _args((5, 4), (4, 6)), capsys)
    assert rep.graph_count == 1 and rep.break_count == 0


def test_nested_blocks_and_enabled_false(fresh_terra_dyn, capsys):
    def f(x, w):
        with torch.autocast("cpu", dtype=torch.bfloat16):
            a = x @ w
            with torch.autocast("cpu", enabled=False):
                b = x @ w
                with torch.autocast("cpu", dtype=torch.float16):
                    c = x @ w
                d = x @ w
            e = x @ w
        return a, b, c, d, e, x @ w

    rep = _compare(f, _args((4, 8), (8, 3)), capsys)
    assert rep.graph_count == 1 and rep.break_count == 0
    assert _targets(rep).count(autocast_mod.autocast_enter_) == 3


def test_autocast_and_no_grad_nest_both_ways(fresh_terra_dyn, capsys):
    def f(x, w):
        with torch.no_grad():
            with torch.autocast("cpu"):
                a = x @ w
        with torch.autocast("cpu"):
            with torch.no_grad():
                b = x @ w
            c = x @ w
        return a, b, c, torch.is_grad_enabled()

    rep = _compare(f, _args((4, 8), (8, 3), grad=(1,)), capsys)
    assert rep.graph_count == 1 and rep.break_count == 0


def test_decorator_on_function_and_forward_is_inlined(fresh_terra_dyn, capsys):
    @torch.autocast("cpu", dtype=torch.bfloat16)
    def project(x, w):
        return x @ w

    class Head(nn.Module):
        def __init__(self):
            super().__init__()
            torch.manual_seed(0)
            self.fc = nn.Linear(8, 3)

        @torch.autocast("cpu")
        def forward(self, x):
            return self.fc(x).softmax(-1)

    head = Head()

    def f(x, w):
        return project(x, w) + 1, head(x) * 2

    rep = _compare(f, _args((4, 8), (8, 3)), capsys)
    assert rep.graph_count == 1 and rep.break_count == 0


def test_decorated_function_as_entry_point(fresh_terra_dyn, capsys):
    @torch.autocast("cpu")
    def f(x, w):
        return (x @ w).relu()

    rep = _compare(f, _args((4, 8), (8, 3)), capsys)
    assert rep.graph_count == 1  # torch's wrapper runs natively; f is translated inside it


def test_manager_held_by_a_module_is_guarded_by_identity(fresh_terra_dyn, capsys):
    class Block(nn.Module):
        def __init__(self, amp):
            super().__init__()
            torch.manual_seed(0)
            self.fc = nn.Linear(8, 3)
            self.amp = amp

        def forward(self, x):
            with self.amp:
                return self.fc(x)

    def f(x):
        return block(x) + 1

    block = Block(torch.autocast("cpu", dtype=torch.bfloat16))
    rep = _compare(f, _args((4, 8)), capsys)
    assert rep.graph_count == 1 and rep.break_count == 0
    fast = terra_dyn.optimize(f, backend="interpreter")
    x = torch.randn(4, 8)
    assert fast(x).dtype == torch.bfloat16
    block.amp = torch.autocast("cpu", dtype=torch.float16)  # another manager: retranslated
    with report.recording() as rec:
        ours = fast(x)
    assert _same(ours, f(x)) and ours.dtype == torch.float16 and rec.report().graph_count == 1


def test_raise_inside_block_restores_state(fresh_terra_dyn, capsys):
    def f(x, w):
        with torch.autocast("cpu"):
            y = x @ w
            if y.shape[0] == 4:
                raise ValueError(f"bad rows {y.shape[0]}")
        return y

    rep = _compare(f, _args((4, 8), (8, 3)), capsys)
    # the with statement and the raise run natively; the matmul inside is still a graph op
    assert operator.matmul in _targets(rep)


def test_graph_error_inside_block_restores_state(fresh_terra_dyn):
    def f(x, idx):
        with torch.autocast("cpu"):
            y = x @ x.t()
            z = y[idx] * 2
        return z

    fast = terra_dyn.optimize(f, backend="interpreter")
    x = torch.randn(4, 8)
    assert _same(fast(x, torch.tensor([1, 2])), f(x, torch.tensor([1, 2])))
    before = _state()
    bad = torch.tensor([1, 10])
    ours, eager = _outcome(fast, (x, bad)), _outcome(f, (x, bad))
    assert ours[0][:2] == eager[0][:2] == ("raised", IndexError)
    assert ours[1] == eager[1] == before


def test_break_inside_block_runs_rest_under_autocast(fresh_terra_dyn, capsys):
    calls = []

    def helper(t):
        calls.append(t.dtype)
        return t * 3

    def f(x, w):
        y = x + 1
        with torch.autocast("cpu"):
            z = y @ w
            print("total", z.sum().item())
            u = helper(z @ w.t())
        return z, u, y @ w

    rep = _compare(f, _args((4, 8), (8, 3)), capsys)
    # the block's with statement runs natively (a break inside it moves there); the ops
    # before, inside (before and after the break) and after it are graph ops
    assert _targets(rep).count(operator.matmul) >= 3 and operator.mul in _targets(rep)
    assert calls == [torch.bfloat16] * 3


def test_graph_error_inside_block_caught_by_except(fresh_terra_dyn):
    def f(x, idx):
        try:
            with torch.autocast("cpu"):
                y = x @ x.t()
                z = y[idx]
        except IndexError:
            z = None
        return z, torch.is_autocast_enabled("cpu")

    fast = terra_dyn.optimize(f, backend="interpreter")
    x = torch.randn(4, 8)
    assert _same(fast(x, torch.tensor([1, 2])), f(x, torch.tensor([1, 2])))
    before = _state()
    bad = torch.tensor([1, 10])
    ours, eager = _outcome(fast, (x, bad)), _outcome(f, (x, bad))
    assert _same(ours[0], eager[0]) and ours[1] == eager[1] == before


def test_break_in_callee_and_loop_inside_block(fresh_terra_dyn, capsys):
    def report_norm(t):
        print("norm", t.norm().item(), t.dtype)
        return t @ t.t()

    def f(x, w):
        outs = []
        with torch.autocast("cpu"):
            for i in range(2):
                y = x @ w + i
                outs.append(report_norm(y))
        outs.append(x @ w)
        return outs

    rep = _compare(f, _args((4, 8), (8, 3)), capsys)
    assert _targets(rep).count(operator.matmul) >= 2  # in the loop and after the block


def test_break_before_block_captures_block_in_resume(fresh_terra_dyn, capsys):
    def f(x, w):
        print("mean", x.mean().item())
        with torch.autocast("cpu", dtype=torch.bfloat16):
            y = x @ w
        return y, y.dtype

    rep = _compare(f, _args((4, 8), (8, 3)), capsys)
    assert rep.break_count == 1
    assert autocast_mod.autocast_enter_ in _targets(rep)


def test_native_error_after_break_inside_block_restores_state(fresh_terra_dyn, capsys):
    def f(x, w):
        with torch.autocast("cpu"):
            y = x @ w
            print("max", y.max().item())
            y = y @ x  # shape mismatch: raises natively, inside the block
        return y

    rep = _compare(f, _args((4, 8), (8, 3)), capsys)
    assert operator.matmul in _targets(rep)


def test_function_translated_outside_autocast_recompiles_inside(fresh_terra_dyn):
    def f(x, w):
        return x @ w, torch.is_autocast_enabled("cpu")

    fast = terra_dyn.optimize(f, backend="interpreter")
    x, w = torch.randn(4, 8), torch.randn(8, 3)
    assert _same(fast(x, w), f(x, w))
    with report.recording() as rec:
        with torch.autocast("cpu", dtype=torch.bfloat16):
            ours, eager = fast(x, w), f(x, w)
    assert ours[0].dtype == torch.bfloat16 and _same(ours, eager)
    assert len(rec.report().recompiles) == 1
    with torch.autocast("cpu", dtype=torch.float16):
        assert _same(fast(x, w), f(x, w))  # another dtype: another entry
    with report.recording() as rec:
        assert _same(fast(x, w), f(x, w))  # outside again: the first entry
        with torch.autocast("cpu", dtype=torch.bfloat16):
            assert _same(fast(x, w), f(x, w))
    assert not rec.report().recompiles


def test_frame_translated_inside_autocast_then_called_outside(fresh_terra_dyn):
    def f(x, w):
        with torch.autocast("cpu", enabled=False):
            a = x @ w
        return a, x @ w

    fast = terra_dyn.optimize(f, backend="interpreter")
    x, w = torch.randn(4, 8), torch.randn(8, 3)
    with torch.autocast("cpu"):
        assert _same(fast(x, w), f(x, w))
        assert torch.is_autocast_enabled("cpu")
    assert _same(fast(x, w), f(x, w))
    assert not torch.is_autocast_enabled("cpu")


def test_state_queries_are_constants_of_the_guarded_state(fresh_terra_dyn, capsys):
    def f(x):
        before = (torch.is_autocast_enabled("cpu"), torch.get_autocast_dtype("cpu"))
        with torch.autocast("cpu", dtype=torch.float16, cache_enabled=False):
            inside = (torch.is_autocast_enabled("cpu"), torch.get_autocast_dtype("cpu"),
                      torch.is_autocast_cache_enabled())
            y = x * 2 if torch.is_autocast_enabled("cpu") else x
        return y, before, inside

    rep = _compare(f, _args((3,)), capsys)
    assert rep.graph_count == 1 and rep.break_count == 0


def test_manager_argument_and_as_target(fresh_terra_dyn, capsys):
    def f(x, w, use_amp):
        with torch.autocast("cpu", enabled=use_amp) as ac:
            y = x @ w
        return y, ac.fast_dtype

    fast = terra_dyn.optimize(f, backend="interpreter")
    x, w = torch.randn(4, 8), torch.randn(8, 3)
    for flag in (True, False, True):
        assert _same(fast(x, w, flag), f(x, w, flag))


def test_weight_cast_cache_is_cleared_after_the_block(fresh_terra_dyn, capsys):
    torch.manual_seed(0)
    lin = nn.Linear(8, 4)
    start = lin.weight.detach().clone()

    def f(x):
        with torch.autocast("cpu"):
            a = lin(x)
            b = lin(x * 2)  # the cached bfloat16 weight, as in eager
        return a, b

    def three_steps(fn):
        with torch.no_grad():
            lin.weight.copy_(start)
        outs = []
        for _ in range(3):
            outs.append(fn(x))
            with torch.no_grad():
                lin.weight.add_(0.5)  # a stale cached cast would show in the next step
        return outs

    x = torch.randn(3, 8)
    assert _same(three_steps(terra_dyn.optimize(f, backend="interpreter")), three_steps(f))


def test_contextmanager_around_autocast_and_user_calls(fresh_terra_dyn, capsys):
    calls = []

    @contextlib.contextmanager
    def mixed_precision():
        calls.append("enter")
        with torch.autocast("cpu"):
            yield
        calls.append("exit")

    def f(x, w):
        with mixed_precision():
            y = x @ w
        return y

    calls.clear()
    rep = _compare(f, _args((4, 8), (8, 3)), capsys)
    assert rep.graph_count == 1 and rep.break_count == 0
    assert calls == ["enter", "exit"] * 3  # two optimized calls (replayed appends) + eager


def test_generator_yielding_inside_block_runs_natively(fresh_terra_dyn, capsys):
    def batches(x):
        with torch.autocast("cpu"):
            for row in x:
                yield row  # the consumer's body runs inside the block, between yields

    def per_block(x):
        with torch.autocast("cpu"):
            y = x @ x.t()
        yield y
        yield y + 1

    def f(x, w):
        outs = [row @ w for row in batches(x)]
        return outs, [t for t in per_block(x)]

    rep = _compare(f, _args((3, 8), (8, 2)), capsys)
    assert any("yield inside a torch.autocast block" in b.reason for b in rep.breaks)
    assert autocast_mod.autocast_enter_ in _targets(rep)  # per_block is still inlined


@pytest.mark.parametrize("make", [lambda: torch.cpu.amp.autocast(), lambda: torch.cuda.amp.autocast()],
                         ids=["cpu_amp", "cuda_amp"])
def test_deprecated_managers_warn_like_eager(fresh_terra_dyn, make):
    def f(x, w):
        with make():
            return x @ w

    fast = terra_dyn.optimize(f, backend="interpreter")
    x, w = torch.randn(4, 8), torch.randn(8, 3)

    def run(fn):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            out = fn(x, w)
        return out, [(w_.category, str(w_.message), w_.filename, w_.lineno) for w_ in caught]

    eager = run(f)
    for _ in range(2):
        ours = run(fast)
        assert _same(ours[0], eager[0])
        assert ours[1] == eager[1] and eager[1]


def test_state_restored_when_translation_gives_up(fresh_terra_dyn):
    def f(x, w):
        with torch.autocast("cpu"):
            y = x @ w
            print(y.sum().item())
        return y

    fast = terra_dyn.optimize(f, backend="interpreter", fullgraph=True)
    before = _state()
    with pytest.raises(Exception):
        fast(torch.randn(4, 8), torch.randn(8, 3))
    assert _state() == before


def test_graph_module_code_unwinds_on_error():
    """The generated forward exits the blocks it opened when an op raises."""
    import torch.fx as fx

    graph = fx.Graph()
    blocks = autocast_mod.Blocks()
    x = graph.placeholder("x")
    autocast_mod._install_codegen(type("G", (), {"graph": graph})(), blocks)
    graph.call_function(autocast_mod.autocast_enter_, ("cpu", torch.bfloat16, True, True))
    y = graph.call_function(torch.mm, (x, x))
    graph.call_function(autocast_mod.autocast_exit_, ())
    graph.output((y,))
    gm = fx.GraphModule(nn.Module(), graph)
    assert "except BaseException" in gm.code
    square = torch.randn(3, 3)
    assert gm(square)[0].dtype == torch.bfloat16 and not torch.is_autocast_enabled("cpu")
    before = _state()
    with pytest.raises(RuntimeError):
        gm(torch.randn(3, 4))
    assert _state() == before
