"""torch.autocast blocks through the Triton backend (run with Triton's CPU interpreter).

The frontend records autocast_enter_/autocast_exit_ nodes (translate/autocast.py); lowering
runs them while make_fx traces, so autocast's casts become explicit aten._to_copy nodes of
the ATen graph and the kernels see eager's dtypes. Values are compared with eager within the
bfloat16 tolerance of the other backend tests (Triton rounds some casts differently).
"""
import pytest
import torch

import terra_dyn
from terra_dyn.backends.triton import compile_graph
from terra_dyn.translate import autocast as autocast_mod

from .support import assert_same

aten = torch.ops.aten


def _capturing():
    compiled = []

    def backend(gm, example_inputs):
        compiled.append(compile_graph(gm, example_inputs))
        return compiled[-1]
    return backend, compiled


def _state():
    return torch.is_autocast_enabled("cpu"), torch.get_autocast_dtype("cpu"), len(autocast_mod._open_blocks())


def test_casts_become_explicit_aten_casts(fresh_terra_dyn):
    def f(x, w):
        y = x * 2
        with torch.autocast("cpu", dtype=torch.bfloat16):
            z = (y @ w).relu()
            s = z.sum()
        return z + 1, s, y @ w

    backend, compiled = _capturing()
    fast = terra_dyn.optimize(f, backend=backend)
    x, w = torch.randn(4, 8), torch.randn(8, 3)
    before = _state()
    for _ in range(2):
        assert_same(fast(x, w), f(x, w))
        assert _state() == before
    (graph,) = compiled
    (program,) = graph.programs.values()
    nodes = list(program.aten_gm.graph.nodes)
    casts = [n for n in nodes if n.target is aten._to_copy.default]
    assert len(casts) == 2 and all(n.kwargs["dtype"] is torch.bfloat16 for n in casts)
    mms = [n for n in nodes if n.target is aten.mm.default]
    assert set(mms[0].args) == set(casts) and mms[1].args[0].meta["val"].dtype is torch.float32
    assert not any(n.target in (autocast_mod.autocast_enter_, autocast_mod.autocast_exit_) for n in nodes)
    assert not graph.notes and graph.kernels


def test_break_inside_block_lowers_the_resumed_part_under_autocast(fresh_terra_dyn, capsys):
    def f(x, w):
        with torch.autocast("cpu"):
            y = x @ w
            print("total", y.sum().item())
            z = y @ w.t()
        return y, z

    backend, compiled = _capturing()
    fast = terra_dyn.optimize(f, backend=backend)
    x, w = torch.randn(4, 8), torch.randn(8, 3)
    before = _state()
    ours = fast(x, w)
    assert _state() == before
    ours_out = capsys.readouterr().out
    eager = f(x, w)
    eager_out = capsys.readouterr().out
    # the with statement ran natively; the graphs inside the block were traced with autocast
    # on, so their casts are explicit ATen casts (the CPU interpreter truncates float32 ->
    # bfloat16 where eager rounds: a bf16 unit apart at most, see test above)
    assert ours[0].dtype == eager[0].dtype == torch.bfloat16 and ours[1].dtype == torch.bfloat16
    assert_same(ours, eager, atol=0.1, rtol=0.02)
    assert float(ours_out.split()[1]) == pytest.approx(float(eager_out.split()[1]), rel=0.02)
    assert len(compiled) >= 2  # the parts before and after the break are compiled graphs


def test_gradients_through_a_lowered_block(fresh_terra_dyn):
    def f(x, w):
        with torch.autocast("cpu"):
            y = (x @ w).relu()
        return y.float().sum()

    backend, compiled = _capturing()
    fast = terra_dyn.optimize(f, backend=backend)
    x = torch.randn(4, 8)
    w_ours, w_eager = torch.randn(8, 3).requires_grad_(), None
    w_eager = w_ours.detach().clone().requires_grad_()
    for _ in range(2):
        w_ours.grad = w_eager.grad = None
        ours, eager = fast(x, w_ours), f(x, w_eager)
        ours.backward()
        eager.backward()
        assert_same(ours, eager, atol=0.1, rtol=1.6e-2)  # a sum of 12 bfloat16 values
        assert_same(w_ours.grad, w_eager.grad, atol=1.6e-2, rtol=1.6e-2)  # float32 of bfloat16 math
        assert not torch.is_autocast_enabled("cpu")
    (graph,) = compiled
    assert graph.backward_graphs and not graph.notes  # forward and VJP ran as lowered graphs


def test_frame_called_inside_eager_autocast(fresh_terra_dyn):
    """Translated and lowered under the caller's autocast (guarded): casts are explicit, and
    the same frame called outside gets its own float32 entry."""
    def f(x, w):
        return torch.softmax((x @ w).relu() + 1, -1), (x @ w).dtype

    backend, compiled = _capturing()
    fast = terra_dyn.optimize(f, backend=backend)
    x, w = torch.randn(4, 8), torch.randn(8, 3)
    for _ in range(2):
        with torch.autocast("cpu"):
            assert_same(fast(x, w), f(x, w))
        assert_same(fast(x, w), f(x, w))
    assert len(compiled) == 2
    nodes = [n for p in compiled[0].programs.values() for n in p.aten_gm.graph.nodes]
    assert any(n.target is aten._to_copy.default and n.kwargs.get("dtype") is torch.bfloat16 for n in nodes)
