"""Training graphs on the cpu backend: a compiled forward that saves activations and a
compiled backward (fusion/joint.py); outputs and gradients equal eager's."""
import pytest
import torch
import torch.nn.functional as F

from terra_dyn.backends.cpu import compile_graph
from terra_dyn.backends.fusion.joint import JointProgram

from ..support import assert_same, trace

TOL = {"atol": 1e-5, "rtol": 1e-4}


def leaves(*tensors, grad=None):
    """Fresh leaf copies; `grad` lists which require grad (default: every float tensor)."""
    grad = grad or [t.is_floating_point() for t in tensors]
    return [t.detach().clone().requires_grad_(g) for t, g in zip(tensors, grad)]


def run_and_grads(fn, args, seed_grads):
    outs = fn(*args)
    outs = outs if isinstance(outs, (tuple, list)) else (outs,)
    pairs = [(o, g) for o, g in zip(outs, seed_grads) if o.requires_grad]
    torch.autograd.backward([o for o, _ in pairs], [g for _, g in pairs])
    return [o.detach() for o in outs], [a.grad for a in args if isinstance(a, torch.Tensor) and a.requires_grad]


def check_training(fn, *tensors, grad=None, calls=2):
    """fn through the cpu backend and eagerly: outputs, requires_grad flags and gradients
    equal on `calls` calls with fresh inputs of the same signature; returns the compiled graph."""
    compiled = compile_graph(trace(fn, len(tensors)), leaves(*tensors, grad=grad))
    for call in range(calls):
        inputs = [t * (1 + call / 2) if t.is_floating_point() else t for t in tensors]
        ours, theirs = leaves(*inputs, grad=grad), leaves(*inputs, grad=grad)
        expected = fn(*theirs)
        expected = expected if isinstance(expected, (tuple, list)) else (expected,)
        seeds = [torch.randn_like(e) if e.is_floating_point() else None for e in expected]
        got_outs, got_grads = run_and_grads(compiled, ours, seeds)
        want_outs, want_grads = run_and_grads(fn, theirs, seeds)
        assert_same(got_outs, want_outs, **TOL, what=f"outputs, call {call}")
        assert [o.requires_grad for o in (compiled(*ours) if len(expected) > 1 else [compiled(*ours)])] == \
            [e.requires_grad for e in expected]
        assert_same(got_grads, want_grads, **TOL, what=f"gradients, call {call}")
    assert joint_programs(compiled) and not compiled.notes, compiled.describe()
    return compiled


def joint_programs(compiled):
    return [p for p in compiled.autograd_programs.values() if isinstance(p, JointProgram)]


def aten_targets(compiled_half):
    return [str(n.target) for p in compiled_half.programs.values() for n in p.aten_gm.graph.nodes
            if n.op == "call_function"]


def mlp(x, w1, b1, w2, b2, gamma, beta):
    h = F.gelu(F.linear(x, w1, b1), approximate="tanh")
    h = F.layer_norm(h, (h.shape[-1],), gamma, beta)
    return F.linear(h, w2, b2).square().mean()


def test_mlp_gradients_equal_eager_and_no_matmul_runs_twice():
    args = (torch.randn(16, 32), torch.randn(64, 32) * 0.2, torch.randn(64), torch.randn(8, 64) * 0.2,
            torch.randn(8), torch.rand(64) + 0.5, torch.randn(64))
    compiled = check_training(mlp, *args, grad=[False] + [True] * 6)
    (program,) = joint_programs(compiled)
    forward_mms = [t for t in aten_targets(program.forward) if "mm" in t or "linear" in t]  # composite_steps
    backward_mms = [t for t in aten_targets(program.backward) if "mm" in t or "linear" in t]
    # eager: one matmul per linear forward, two per linear backward (x needs no grad: one less)
    assert len(forward_mms) == 2 and len(backward_mms) == 3, (forward_mms, backward_mms)
    assert program.forward.kernels and program.backward.kernels, compiled.describe()


@pytest.mark.parametrize("threads", [1, 2])
def test_batch_one_mlp_with_erf_gelu_gradients_equal_eager(threads):
    # erf GELU and its gradient are kernels on small tensors: values and gradients equal eager's
    def fn(x, w1, b1, w2, b2):
        return F.linear(F.gelu(F.linear(x, w1, b1)), w2, b2)
    args = (torch.randn(1, 24), torch.randn(48, 24) * 0.3, torch.randn(48), torch.randn(6, 48) * 0.3, torch.randn(6))
    old = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        compiled = check_training(fn, *args, grad=[False] + [True] * 4)
    finally:
        torch.set_num_threads(old)
    (program,) = joint_programs(compiled)
    assert program.forward.kernels and program.backward.kernels, compiled.describe()
    assert "aten.gelu_backward.default" not in aten_targets(program.backward), aten_targets(program.backward)


def block(x, wq, wk, wv, wo, gamma, beta):
    q, k, v = x @ wq, x @ wk, x @ wv
    attention = torch.softmax(q @ k.transpose(-1, -2) / 4.0, dim=-1)
    h = x + (attention @ v) @ wo
    return F.layer_norm(h, (h.shape[-1],), gamma, beta)


def test_transformer_block_like_graph_gradients_equal_eager():
    d = 16
    args = (torch.randn(2, 6, d),) + tuple(torch.randn(d, d) * 0.3 for _ in range(4)) + (
        torch.rand(d) + 0.5, torch.randn(d))
    compiled = check_training(block, *args)
    (program,) = joint_programs(compiled)
    assert program.backward.kernels, compiled.describe()


def test_broadcasting_and_reductions_over_outer_and_inner_dims():
    def fn(x, w, b):
        y = torch.tanh(x * w + b[:, None])         # w broadcasts over rows, b over columns
        return y.sum(0), y.var(-1), (y.exp() / y.exp().sum(-1, keepdim=True)).amax(-1)
    check_training(fn, torch.randn(12, 70), torch.randn(70), torch.randn(12))


def test_non_differentiable_outputs_and_integer_inputs():
    def fn(x, w, idx):
        y = torch.sigmoid(x * w)
        return y.sum(-1), y.argmax(-1), torch.exp(y.detach()) * 2, y[idx].relu()
    x, w = torch.randn(9, 20), torch.randn(20)
    idx = torch.tensor([0, 3, 3, 8])
    check_training(fn, x, w, idx, grad=[True, True, False])


def test_pair_skips_functions_python_wrapper_and_keeps_output_structures(monkeypatch):
    # plain tensors, no functorch transform: the C apply directly (Function.apply's Python
    # wrapper only binds defaults and unwraps dead functorch wrappers); one tensor, a flat
    # tuple and a nested structure come back as eager returns them
    from terra_dyn.backends.fusion import joint
    wrapper_calls = []
    original = joint._JointFunction.apply
    monkeypatch.setattr(joint._JointFunction, "apply", lambda *a: wrapper_calls.append(1) or original(*a))
    x, w = torch.randn(4, 10), torch.randn(10)
    for fn in (lambda x, w: torch.tanh(x * w).sum(-1),
               lambda x, w: (torch.tanh(x * w), (x * w).exp().sum()),
               lambda x, w: {"a": torch.tanh(x * w), "b": [(x * w).sigmoid(), x + 1]}):
        compiled = compile_graph(trace(fn, 2), leaves(x, w))
        ours, theirs = leaves(x, w), leaves(x, w)
        got, want = compiled(*ours), fn(*theirs)
        assert type(got) is type(want) and (not isinstance(got, dict) or type(got["b"]) is list)
        flat_got, flat_want = torch.utils._pytree.tree_leaves(got), torch.utils._pytree.tree_leaves(want)
        assert_same(flat_got, flat_want, **TOL)
        sum(t.float().sum() for t in flat_got).backward()
        sum(t.float().sum() for t in flat_want).backward()
        assert_same([a.grad for a in ours], [a.grad for a in theirs], **TOL)
        assert joint_programs(compiled), compiled.describe()
    assert not wrapper_calls


@pytest.mark.parametrize("grad", [[True, False, False], [False, True, False], [False, False, True],
                                  [True, True, True]])
def test_requires_grad_mixes(grad):
    fn = lambda x, w, b: F.silu(x @ w + b).pow(2).sum(-1)  # noqa: E731
    check_training(fn, torch.randn(5, 7), torch.randn(7, 3), torch.randn(3), grad=grad)


def test_retain_graph_backward_twice_and_without_it_errors_as_eager():
    fn = lambda x, w: (torch.tanh(x * w) * x).sum()  # noqa: E731
    x, w = torch.randn(6, 30), torch.randn(30)
    compiled = compile_graph(trace(fn, 2), leaves(x, w))
    grads = []
    for f in (compiled, fn):
        a, b = leaves(x, w)
        loss = f(a, b)
        loss.backward(retain_graph=True)
        loss.backward()
        with pytest.raises(RuntimeError, match="backward through the graph a second time"):
            loss.backward()
        grads.append((a.grad, b.grad))
    assert_same(grads[0], grads[1], **TOL)


def test_double_backward_equals_eager():
    fn = lambda x, w: (torch.tanh(x * w) ** 2).sum()  # noqa: E731
    x, w = torch.randn(4, 10), torch.randn(10)
    compiled = compile_graph(trace(fn, 2), leaves(x, w))
    results = []
    for f in (compiled, fn):
        a, b = leaves(x, w)
        (gx,) = torch.autograd.grad(f(a, b), [a], create_graph=True)
        gx.sum().backward()
        results.append((gx.detach(), b.grad))
    assert_same(results[0], results[1], **TOL)


def test_graph_mutating_an_input_keeps_eager_autograd():
    def fn(x, buf):
        buf.add_(1)
        return (x * buf).tanh().sum()
    x, buf = torch.randn(3, 8), torch.zeros(8)
    compiled = compile_graph(trace(fn, 2), [x.requires_grad_(), buf.clone()])
    ours, theirs = leaves(x, grad=[True]) + [buf.clone()], leaves(x, grad=[True]) + [buf.clone()]
    compiled(*ours).backward()
    fn(*theirs).backward()
    assert_same((ours[0].grad, ours[1]), (theirs[0].grad, theirs[1]))
    assert any("mutates a tensor" in n for n in compiled.notes), compiled.notes


def test_training_graph_without_kernels_runs_eager_autograd_from_its_second_call():
    fn = lambda x, w: x @ w  # noqa: E731  (a matmul only: no group, no kernel)
    x, w = torch.randn(5, 7), torch.randn(7, 3)
    compiled = compile_graph(trace(fn, 2), leaves(x, w))
    for call in range(3):
        ours, theirs = leaves(x * (call + 1), w), leaves(x * (call + 1), w)
        seed = torch.randn(5, 3)
        assert_same(run_and_grads(compiled, ours, [seed]), run_and_grads(fn, theirs, [seed]), **TOL,
                    what=f"call {call}")
        if call == 0:
            (program,) = joint_programs(compiled)
            assert program.fuses_nothing, compiled.describe()
    assert not joint_programs(compiled) and list(compiled.autograd_programs.values()) == [compiled.gm]
    assert any("without kernels" in n for n in compiled.notes), compiled.notes


def test_settled_training_signature_skips_the_signature_key(monkeypatch):
    from terra_dyn.backends.fusion import compiled as fused
    keys, original = [], fused.signature
    monkeypatch.setattr(fused, "signature", lambda *a, **k: keys.append(1) or original(*a, **k))
    fn = lambda x, w: (torch.tanh(x * w) * x).sum()  # noqa: E731
    x, w = torch.randn(6, 30), torch.randn(30)
    compiled = compile_graph(trace(fn, 2), leaves(x, w))
    counts = []
    for call in range(4):
        ours, theirs = leaves(x, w * (call + 1)), leaves(x, w * (call + 1))
        seed = torch.tensor(1.5)
        assert_same(run_and_grads(compiled, ours, [seed]), run_and_grads(fn, theirs, [seed]), **TOL,
                    what=f"call {call}")
        counts.append(len(keys))
    assert counts[1] == counts[2] == counts[3], counts  # from the third call: the exact guard only
    ours, theirs = leaves(x, w, grad=[True, False]), leaves(x, w, grad=[True, False])  # another signature
    assert_same(run_and_grads(compiled, ours, [seed]), run_and_grads(fn, theirs, [seed]), **TOL)
    assert len(keys) > counts[3]


@pytest.mark.parametrize("input_grad", [True, False])
def test_layer_norm_backward_is_one_kernel_and_equals_eager(input_grad):
    # the decomposed backward (a row kernel + two outer sums) was 2.3x eager's kernel: the op
    # stays whole and templates.py gives it one kernel
    def fn(x, r, gamma, beta):
        return F.layer_norm(x + r, (x.shape[-1],), gamma, beta) * 2.0
    args = (torch.randn(3, 5, 40), torch.randn(3, 5, 40), torch.rand(40) + 0.5, torch.randn(40))
    compiled = check_training(fn, *args, grad=[input_grad, False, True, True])
    (program,) = joint_programs(compiled)
    backward = aten_targets(program.backward)
    assert backward.count("aten.native_layer_norm_backward.default") == 1, backward
    assert [k for k in program.backward.kernels if k.name.startswith("layer_norm_backward")], compiled.describe()
    assert program.forward.kernels, compiled.describe()  # the forward's add + layer norm: one kernel


def test_training_halves_hold_no_detach_or_double_transpose():
    # a linear's weight gradient came out as t(t(mm)), and every parameter was saved as a
    # detach of itself: about a microsecond of Python each, tens per step
    args = (torch.randn(16, 32), torch.randn(64, 32) * 0.2, torch.randn(64), torch.randn(8, 64) * 0.2,
            torch.randn(8), torch.rand(64) + 0.5, torch.randn(64))
    compiled = check_training(mlp, *args, grad=[False] + [True] * 6)
    (program,) = joint_programs(compiled)
    assert not [n for n in program.saved_nodes if n.target is torch.ops.aten.detach.default], program.saved_nodes
    for half in (program.forward, program.backward):
        for p in half.programs.values():
            nodes = [n for n in p.aten_gm.graph.nodes if n.op == "call_function"]
            assert not [n for n in nodes if n.target is torch.ops.aten.detach.default], p.aten_gm.code
            assert not [n for n in nodes if n.target is torch.ops.aten.t.default
                        and n.args[0].target is torch.ops.aten.t.default], p.aten_gm.code


@pytest.mark.parametrize("fn", [lambda x: x.t().t(), lambda x: x.detach(), lambda x: (x * 2).t().t() + 1,
                                lambda x: (x * 2).view(8, 4).view(32).sin()])
def test_no_op_views_dropped_without_changing_results_or_aliasing_inputs(fn):
    x = torch.randn(4, 8)
    compiled = compile_graph(trace(fn), [x])
    got = compiled(x)
    assert_same(got, fn(x))
    assert got is not x  # an output that was a view of an input stays a new tensor object


def test_settled_halves_run_behind_their_exact_guards_and_equal_eager():
    # JointProgram._call_half: once a half's kernels are built it is called through its
    # settled run function (no compiled graph's __call__ layers); a new signature (another
    # batch) takes the half's own path again, and both keep eager's values and gradients
    args = (torch.randn(16, 32), torch.randn(64, 32) * 0.2, torch.randn(64), torch.randn(8, 64) * 0.2,
            torch.randn(8), torch.rand(64) + 0.5, torch.randn(64))
    compiled = check_training(mlp, *args, grad=[False] + [True] * 6, calls=3)
    (program,) = joint_programs(compiled)
    assert all(fast is not None for fast in program._fast), program._fast
    calls = []
    for which in (0, 1):
        guard, run = program._fast[which]
        program._fast[which] = (guard, lambda *a, run=run, which=which: calls.append(which) or run(*a))
    ours, theirs = leaves(*args, grad=[False] + [True] * 6), leaves(*args, grad=[False] + [True] * 6)
    seed = [torch.randn(())]
    assert_same(run_and_grads(compiled, ours, seed), run_and_grads(mlp, theirs, seed), **TOL)
    assert calls == [0, 1], calls
    small = [a[:4] if i == 0 else a for i, a in enumerate(args)]  # another signature of the same graph
    ours, theirs = leaves(*small, grad=[False] + [True] * 6), leaves(*small, grad=[False] + [True] * 6)
    seed = [torch.randn(())]
    assert_same(run_and_grads(compiled, ours, seed), run_and_grads(mlp, theirs, seed), **TOL)
