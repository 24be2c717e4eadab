"""Fusion decisions, views, fallbacks and autograd of the Triton backend (interpreter)."""
import os

import pytest
import torch
import torch.nn.functional as F

from .support import GENERATED, check

# the interpreter also computes masked-off lanes (log(0) there is harmless)
pytestmark = [pytest.mark.filterwarnings("ignore::UserWarning"), pytest.mark.filterwarnings("ignore::RuntimeWarning")]


def test_chain_of_ten_pointwise_ops_is_one_kernel():
    def chain(x, y):
        z = x * y + 1.0
        z = torch.sin(z) - y
        z = torch.exp(z * 0.5)
        z = torch.where(z > 1.0, z, -z)
        z = torch.sigmoid(z) / 3.0
        return torch.relu(z - 0.1)
    compiled = check(chain, torch.randn(37, 19), torch.randn(19), expect_kernels=1)
    assert len(compiled.groups[0].nodes) >= 10
    assert not compiled.notes


def test_softmax_is_one_kernel():
    check(lambda x: torch.softmax(x, -1), torch.randn(6, 129), expect_kernels=1)


def test_log_softmax_over_first_dim_is_one_kernel():
    check(lambda x: torch.log_softmax(x, 0), torch.randn(33, 5), expect_kernels=1)


def test_layer_norm_is_one_kernel():
    w, b = torch.randn(48), torch.randn(48)
    check(lambda x, w, b: F.layer_norm(x, (48,), w, b), torch.randn(3, 5, 48), w, b, expect_kernels=1, atol=1e-5,
          rtol=1e-5)


def test_rms_norm_pattern_is_one_kernel():
    def rms(x, w):
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + 1e-6) * w
    check(rms, torch.randn(7, 64), torch.randn(64), expect_kernels=1)


def test_variance_and_std_fuse_with_their_prologue():
    check(lambda x: (torch.var(x * 2, 1), torch.std(x, 1, keepdim=True)), torch.randn(9, 31),
          atol=1e-5, rtol=1e-5)


def test_long_rows_use_the_looped_reduction():
    compiled = check(lambda x: torch.softmax(x, -1), torch.randn(3, 5000), expect_kernels=1)
    assert "for roffset in range(0, 5000, RBLOCK)" in compiled.kernel_sources[0]
    check(lambda x: (x.sum(1), x.amax(1), x.argmax(1), x.argmin(1)), torch.randn(2, 6001), atol=1e-4, rtol=1e-5)


def test_layer_norm_with_long_rows_loops_and_matches():
    w, b = torch.randn(4500), torch.randn(4500)
    check(lambda x, w, b: F.layer_norm(x, (4500,), w, b), torch.randn(3, 4500), w, b, expect_kernels=1,
          atol=1e-5, rtol=1e-5)


def test_gelu_mlp_keeps_matmul_as_aten_and_fuses_epilogue():
    w1, b1 = torch.randn(32, 16), torch.randn(32)

    def mlp(x, w1, b1):
        return F.gelu(F.linear(x, w1, b1)) * 2.0
    compiled = check(mlp, torch.randn(8, 16), w1, b1, atol=1e-5, rtol=1e-5, expect_kernels=1)
    assert "erf" in compiled.kernel_sources[0]


def test_transposed_and_sliced_inputs_are_read_through_strides():
    x = torch.randn(40, 30)
    compiled = check(lambda a: (a.t() * 2.0, a[:, 3:17] + 1.0, a[::2].sum(1)), x)
    assert any("30 * " in s or " * x" in s for s in compiled.kernel_sources)


def test_broadcasting_and_type_promotion_follow_eager():
    a = torch.randint(-5, 5, (4, 1, 6), dtype=torch.int32)
    b = torch.randn(3, 1, dtype=torch.float16)
    c = torch.randint(0, 9, (6,), dtype=torch.int64)
    check(lambda a, b, c: (a + b, a * c, a / 2, (a > b) & (c < 5), b * 3), a, b, c)


def test_inplace_mutation_of_an_input_is_applied_once():
    def mutate(x, y):
        x.add_(1.0)
        return x * y
    x, y = torch.randn(5, 7), torch.randn(5, 7)
    expected_x = x + 1.0
    from terra_dyn.backends.triton import compile_graph
    compiled = compile_graph(torch.fx.symbolic_trace(mutate), [x.clone(), y])
    out = compiled(x, y)
    torch.testing.assert_close(x, expected_x)
    torch.testing.assert_close(out, expected_x * y)


def test_random_ops_stay_aten_calls():
    def drop(x):
        return F.dropout(x * 2.0, 0.5, True) + 1.0
    from terra_dyn.backends.triton import compile_graph
    x = torch.randn(64, 64)
    compiled = compile_graph(torch.fx.symbolic_trace(drop), [x])
    out = compiled(x)
    kept = out != 1.0
    torch.testing.assert_close(out[kept], (x * 4.0 + 1.0)[kept])
    assert 0.3 < kept.float().mean().item() < 0.7
    ops = [op for group in compiled.groups for op in group.op_names()]
    assert ops and not any("bernoulli" in op or "rand" in op for op in ops), ops


def test_cpu_tensors_without_interpreter_run_as_aten_with_a_note(monkeypatch):
    monkeypatch.setenv("TRITON_INTERPRET", "0")
    compiled = check(lambda x: torch.exp(x) + 1.0, torch.randn(4, 4), expect_kernels=0)
    assert any("TRITON_INTERPRET" in note for note in compiled.notes), compiled.notes


def test_complex_dtype_runs_as_aten():
    x = torch.randn(4, 4, dtype=torch.complex64)
    compiled = check(lambda x: x * 2 + 1, x, expect_kernels=0)
    assert compiled(x).dtype == torch.complex64


def test_zero_size_tensors():
    check(lambda x: (x * 2 + 1, x.sum(0)), torch.randn(0, 5))
    check(lambda x: torch.softmax(x, -1), torch.randn(0, 5))


def _grads(fn, args, compiled=None):
    leaves = [a.detach().clone().requires_grad_(a.requires_grad) for a in args]
    out = (compiled or fn)(*leaves)
    outs = out if isinstance(out, (tuple, list)) else [out]
    torch.manual_seed(1)
    total = sum((o * torch.randn_like(o)).sum() for o in outs if o.is_floating_point())
    total.backward()
    return [o.detach() for o in outs], [a.grad for a in leaves]


GRAD_PROGRAMS = {
    "softmax_gelu": (lambda x, w: (torch.softmax(x * w, -1) * F.gelu(x)).sum(), [(5, 9), (9,)]),
    "layer_norm": (lambda x, w, b: F.layer_norm(x, (9,), w, b), [(4, 3, 9), (9,), (9,)]),
    "mlp_relu": (lambda x, w, b: torch.relu(F.linear(x, w, b)).tanh(), [(6, 8), (5, 8), (5,)]),
    "log_softmax_sigmoid": (lambda x: (torch.log_softmax(x, 0), torch.sigmoid(x), x.argmax(1)), [(7, 4)]),
    "silu_var": (lambda x: F.silu(x) + x.var(1, keepdim=True), [(3, 33)]),
}


@pytest.mark.parametrize("name", sorted(GRAD_PROGRAMS))
def test_inputs_requiring_grad_get_gradients_from_compiled_backward(name):
    from terra_dyn.backends.triton import compile_graph
    fn, shapes = GRAD_PROGRAMS[name]
    args = [torch.randn(s, requires_grad=True) for s in shapes]
    compiled = compile_graph(torch.fx.symbolic_trace(fn), args)
    outs, grads = _grads(fn, args, compiled)
    ref_outs, ref_grads = _grads(fn, args)
    for a, e in zip(outs + grads, ref_outs + ref_grads):
        torch.testing.assert_close(a, e, atol=1e-5, rtol=1e-5)
    assert compiled.kernels and compiled.backward_graphs and compiled.backward_graphs[0].kernels, compiled.notes
    assert not compiled.notes, compiled.notes
    GENERATED.update(compiled.sources)
    GENERATED.update(compiled.backward_graphs[0].sources)


def test_mutating_graph_with_grad_inputs_runs_eagerly_with_a_note():
    from terra_dyn.backends.triton import compile_graph

    def f(x, buf):
        buf.add_(1.0)
        return x * buf
    x, buf = torch.randn(4, requires_grad=True), torch.zeros(4)
    compiled = compile_graph(torch.fx.symbolic_trace(f), [x, buf.clone()])
    compiled(x, buf).sum().backward()
    torch.testing.assert_close(x.grad, torch.ones(4))
    assert any("mutates" in n for n in compiled.notes), compiled.notes


def test_new_shapes_compile_a_new_specialization():
    from terra_dyn.backends.triton import compile_graph
    fn = lambda x: torch.softmax(x, -1) * 2  # noqa: E731
    compiled = compile_graph(torch.fx.symbolic_trace(fn), [torch.randn(4, 8)])
    for shape in [(4, 8), (3, 17), (1, 1)]:
        x = torch.randn(shape)
        torch.testing.assert_close(compiled(x), fn(x))
    assert len(compiled.programs) == 3


def test_kernel_source_is_readable_and_printed_when_asked(monkeypatch, capsys):
    import terra_dyn.config as config
    monkeypatch.setattr(config, "print_kernels", True)
    compiled = check(lambda x: torch.tanh(x) * 2, torch.randn(10))
    err = capsys.readouterr().err
    assert "@triton.jit" in err and "dm.tanh" in err
    assert compiled.kernel_sources[0] in err
    assert "pointwise [10]: tanh mul" in repr(compiled.groups[0])


def test_int64_indexing_is_used_for_huge_tensors():
    from terra_dyn.backends.triton import codegen
    from terra_dyn.backends.triton.lowering import lower_to_aten
    from terra_dyn.backends.triton.partition import partition
    x = torch.empty_strided((2 ** 16, 2 ** 15 + 1), (1, 2 ** 16), device="meta")
    gm = lower_to_aten(torch.fx.symbolic_trace(lambda x: x * 2), [x])
    group = partition(gm.graph)[0]
    source = codegen.generate(group, {n: codegen.TensorLayout.of(x) for n in group.inputs()})
    assert source.int64 and "tl.program_id(0).to(tl.int64)" in source.text
    y = torch.empty(3, 3, device="meta")
    gm = lower_to_aten(torch.fx.symbolic_trace(lambda x: x * 2), [y])
    group = partition(gm.graph)[0]
    assert not codegen.generate(group, {n: codegen.TensorLayout.of(y) for n in group.inputs()}).int64


def test_strict_mode_raises_instead_of_falling_back(monkeypatch):
    import terra_dyn.config as config
    monkeypatch.setattr(config, "strict", True)
    monkeypatch.setenv("TRITON_INTERPRET", "1")
    check(lambda x: x + 1, torch.randn(3))
    assert os.environ["TRITON_INTERPRET"] == "1"


def test_reshape_traced_contiguous_still_works_on_a_transposed_input():
    from terra_dyn.backends.triton import compile_graph
    fn = lambda x: (x.reshape(-1) * 2.0).sum()  # noqa: E731
    compiled = compile_graph(torch.fx.symbolic_trace(fn), [torch.randn(6, 5)])
    x = torch.randn(5, 6).t()
    torch.testing.assert_close(compiled(x), fn(x))
    assert not compiled.notes, compiled.notes


def test_sibling_reductions_and_pointwise_outputs_of_one_input_share_a_kernel():
    check(lambda x: (x.sum(1), x.amax(1), x.argmin(1)), torch.randn(6, 40), expect_kernels=1, atol=1e-5, rtol=1e-5)
    check(lambda x: (torch.exp(x), torch.sin(x) + 1.0, x * 3.0), torch.randn(5, 9), expect_kernels=1)


def test_module_parameters_inside_the_graph_module_get_gradients():
    from terra_dyn.backends.triton import compile_graph
    torch.manual_seed(0)
    module = torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.GELU(), torch.nn.LayerNorm(16))
    gm = torch.fx.symbolic_trace(module)
    x = torch.randn(4, 8)
    compiled = compile_graph(gm, [x])
    compiled(x).square().sum().backward()
    got = [p.grad.clone() for p in module.parameters()]
    module.zero_grad()
    module(x).square().sum().backward()
    for g, p in zip(got, module.parameters()):
        torch.testing.assert_close(g, p.grad)
    with torch.no_grad():
        torch.testing.assert_close(compiled(x), module(x), atol=1e-5, rtol=1e-5)
    assert compiled.kernels
