"""What the cpu backend fuses, caches, prints and differentiates; and how "auto" picks it."""
import subprocess
import sys

import torch

import terra_dyn.config as config
from terra_dyn.backends import lookup
from terra_dyn.backends.cpu import compile_graph
from terra_dyn.backends.cpu.compiled_graph import Program
from terra_dyn.backends.cpu.compiler import library_cache
from terra_dyn.backends.fusion.compiled import signature

from ..support import assert_same, trace
from .support import check, compiled_graph


def test_chain_of_pointwise_ops_is_one_kernel():
    x, b = torch.randn(64, 100), torch.randn(100)
    check(lambda x, b: torch.sigmoid(torch.tanh(x * 0.5 + b) - x.abs()) * 3, x, b, expect_kernels=1)


def test_softmax_layer_norm_rms_norm_var_argmax_are_one_kernel_each():
    x = torch.randn(8, 300)
    check(lambda x: torch.softmax(x, -1), x, expect_kernels=1)
    check(lambda x: torch.log_softmax(x, 0), x, expect_kernels=1)
    check(lambda x: torch.nn.functional.layer_norm(x, (300,), torch.randn(300), torch.randn(300)), x,
          expect_kernels=1)
    check(lambda x: torch.nn.functional.rms_norm(x, (300,), torch.randn(300), 1e-6), x, expect_kernels=1)
    check(lambda x: (x.var(-1), x.std(-1)), x, expect_kernels=1)
    check(lambda x: torch.argmax(x * 2, 1), x, expect_kernels=1)


def test_nan_rows_propagate_through_max_and_argmax():
    x = torch.randn(4, 50)
    x[1, 7] = float("nan")
    x[2, 3] = float("inf")
    check(lambda x: (x.amax(1), x.argmax(1), x.amin(1), torch.softmax(x, 1)), x)


def test_transposed_and_broadcast_inputs_keep_eagers_output_strides():
    x = torch.randn(33, 17).t()
    compiled = check(lambda x: (x * 2).exp(), x, expect_kernels=1)
    out = compiled(x)
    assert out.stride() == (x * 2).exp().stride()


def test_half_precision_is_computed_in_float32():
    for dtype in (torch.float16, torch.bfloat16):
        x = torch.randn(16, 64).to(dtype)
        check(lambda x: torch.nn.functional.gelu(x) * 2 + 1, x, atol=1e-2, rtol=1e-2, expect_kernels=1)
        check(lambda x: torch.softmax(x, -1), x, atol=1e-2, rtol=1e-2, expect_kernels=1)


def test_gelu_tanh_form_is_fused_erf_form_fused_only_on_small_tensors():
    from terra_dyn.backends.cpu.compiled_graph import GELU_ERF_MAX_ELEMENTS
    x = torch.randn(16, 300)
    gelu = torch.nn.functional.gelu
    compiled = check(lambda x: gelu(x, approximate="tanh"), x, expect_kernels=1)
    assert "tanh" in "".join(compiled.kernel_sources)
    # eager's erf GELU costs ~15 us a call on any small tensor: a kernel there
    for dtype in (torch.float32, torch.float64, torch.bfloat16):
        tol = {"atol": 1e-2, "rtol": 1e-2} if dtype == torch.bfloat16 else {}
        compiled = check(lambda x: gelu(x), (x * 3).to(dtype), expect_kernels=1, **tol)
        assert "erf" in "".join(compiled.kernel_sources)
    # above GELU_ERF_MAX_ELEMENTS eager's one-pass kernel is faster
    big = torch.randn(GELU_ERF_MAX_ELEMENTS // 256 + 1, 256)
    compiled = check(lambda x: gelu(x), big, expect_kernels=0)
    assert "aten.gelu.default" in compiled.describe()


def test_common_activations_are_kernels_in_every_float_dtype():
    F = torch.nn.functional
    for dtype in (torch.float32, torch.float64, torch.bfloat16, torch.float16):
        x = (torch.randn(37, 129) * 4).to(dtype).t()  # odd sizes, transposed
        tol = {} if dtype in (torch.float32, torch.float64) else {"atol": 2e-2, "rtol": 2e-2}
        for act in (F.hardsigmoid, F.hardswish, F.elu, F.selu, F.celu, F.mish, torch.frac,
                    lambda x: F.gelu(x, approximate="tanh")):
            check(lambda x: act(x) * 2 + 1, x, expect_kernels=1, **tol)


def test_outputs_that_do_not_depend_on_grad_inputs_do_not_require_grad():
    # faster_rcnn calls .numpy() on such an output: eager allows it, so must we
    def fn(x, w):
        y = torch.tanh(x * w)
        return y.sum(), torch.exp(y.detach() * 2), x * 3 + 1
    x, w = torch.randn(8, 40), torch.randn(40, requires_grad=True)
    compiled = compile_graph(trace(fn, 2), [x, w])
    outs = compiled(x, w)
    assert [o.requires_grad for o in outs] == [o.requires_grad for o in fn(x, w)] == [True, False, False]
    outs[2].numpy()
    outs[0].backward()
    got = w.grad.clone()
    w.grad = None
    fn(x, w)[0].backward()
    assert_same(got, w.grad)


def test_gradients_come_from_compiled_forward_and_backward():
    x = torch.randn(8, 40, requires_grad=True)
    w = torch.randn(40, requires_grad=True)
    fn = lambda x, w: torch.nn.functional.layer_norm(torch.tanh(x) * w, (40,)).sum()  # noqa: E731
    compiled = compile_graph(trace(fn, 2), [x, w])
    compiled(x, w).backward()
    got = (x.grad.clone(), w.grad.clone())
    x.grad = w.grad = None
    fn(x, w).backward()
    assert_same(got, (x.grad, w.grad), atol=1e-4, rtol=1e-4)
    assert compiled.backward_graphs and compiled.backward_graphs[0].kernels


def test_kernel_source_is_printed_when_asked(monkeypatch, capsys):
    monkeypatch.setattr(config, "print_kernels", True)
    x = torch.randn(4, 9)
    check(lambda x: (x + 1).relu() * 5, x)
    assert 'extern "C" int pointwise_add_relu_mul' in capsys.readouterr().err


def test_memory_cache_hit_for_the_same_graph():
    cache = library_cache()
    x = torch.randn(5, 11)
    check(lambda x: (x - 3).exp() * x, x)
    hits = cache.stats["memory_hits"]
    check(lambda x: (x - 3).exp() * x, x)
    assert cache.stats["memory_hits"] == hits + 1


def test_second_process_loads_from_disk_without_compiling(tmp_path):
    script = (
        "import torch, torch.fx as fx, terra_dyn.config as c; c.cache_dir = %r; c.cpu_min_elements = 0\n"
        "from terra_dyn.backends.cpu import compile_graph\n"
        "from terra_dyn.backends.cpu.compiler import library_cache\n"
        "x = torch.randn(7, 13); f = lambda x: (x * 3).sin() + x\n"
        "assert torch.allclose(compile_graph(fx.symbolic_trace(f), [x])(x), f(x))\n"
        "print(library_cache().stats)\n" % str(tmp_path))
    runs = [subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
            for _ in range(2)]
    assert all(r.returncode == 0 for r in runs), [r.stderr[-2000:] for r in runs]
    assert "'compiles': 1" in runs[0].stdout, runs[0].stdout
    assert "'compiles': 0" in runs[1].stdout and "'disk_hits': 1" in runs[1].stdout, runs[1].stdout


def test_cache_key_changes_with_flags_and_compiler_version(monkeypatch):
    from terra_dyn.backends.cpu import compiler
    cache = library_cache()
    key = cache.key("int x;")
    monkeypatch.setattr(compiler, "FLAGS", compiler.FLAGS + ("-O2",))
    assert cache.key("int x;") != key
    monkeypatch.undo()
    monkeypatch.setattr(compiler, "_version", lambda path: "g++ 99.0")
    assert cache.key("int x;") != key


def test_auto_picks_cpu_for_large_graphs_and_the_interpreter_for_tiny_ones(monkeypatch):
    monkeypatch.setattr(config, "cpu_min_elements", 4096)
    gm = trace(lambda x: x.exp() * 2)
    big = lookup("auto")(gm, [torch.randn(64, 64)])
    assert big is not gm.forward
    tiny = lookup("auto")(gm, [torch.randn(3)])
    assert tiny == gm.forward
    x = torch.randn(64, 64)
    assert_same(big(x), x.exp() * 2)


def test_auto_lowers_a_cpu_graph_only_after_its_first_calls(monkeypatch):
    from terra_dyn.backends import AUTO_CPU_EAGER_CALLS
    monkeypatch.setattr(config, "cpu_min_elements", 4096)
    gm = trace(lambda x: torch.tanh(x * 2 + 1) * x)
    compiled = lookup("auto")(gm, [torch.randn(64, 64)])
    graph = compiled_graph(compiled)  # the CpuCompiledGraph inside the hook-off wrapper
    for call in range(AUTO_CPU_EAGER_CALLS + 2):
        x = torch.randn(64, 64)
        assert_same(compiled(x), torch.tanh(x * 2 + 1) * x)
        if call < AUTO_CPU_EAGER_CALLS:
            assert not graph.programs, "lowered before its eager calls ran out"
    assert graph.kernels, graph.describe()


def test_optimize_with_the_cpu_backend_trains_like_eager():
    import terra_dyn
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(32, 64), torch.nn.GELU(), torch.nn.LayerNorm(64), torch.nn.Linear(64, 4))
    x = torch.randn(16, 32)
    fast = terra_dyn.optimize(model, backend="cpu")
    with torch.no_grad():
        assert_same(fast(x), model(x), atol=1e-5, rtol=1e-5)
    fast(x).square().mean().backward()
    ours = [p.grad.clone() for p in model.parameters()]
    model.zero_grad()
    model(x).square().mean().backward()
    assert_same(ours, [p.grad for p in model.parameters()], atol=1e-5, rtol=1e-4)


def test_a_compiled_backward_lowers_with_the_frame_hook_off(monkeypatch):
    # autograd's engine calls the joint graph's backward, whose first call lowers it with
    # make_fx: with the hook on, torch's tracer and functorch were translated as user code
    import terra_dyn
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(32, 64), torch.nn.Tanh(), torch.nn.Linear(64, 4))

    def step(x):
        loss = model(x).square().mean()
        loss.backward()  # a break: the rest of step runs with the hook on
        return loss.detach()

    monkeypatch.setattr(config, "cpu_min_elements", 0)
    fast = terra_dyn.optimize(step, backend="auto")  # lowered at its third call
    x = torch.randn(16, 32)
    with terra_dyn.report.recording() as recorder:
        for _ in range(6):
            fast(x)
    report = recorder.report()
    assert {g.filename for g in report.graphs} == {__file__}, report.graphs
    assert {b.filename for b in report.breaks} == {__file__}, report.breaks


def test_auto_keeps_a_lowering_only_when_it_measured_faster(monkeypatch):
    from terra_dyn.backends import AUTO_CPU_EAGER_CALLS
    monkeypatch.setattr(config, "cpu_min_elements", 4096)
    gm = trace(lambda x: torch.tanh(x * 2 + 1) * x)
    compiled = lookup("auto")(gm, [torch.randn(64, 64)])
    graph = compiled_graph(compiled)
    trial_calls = graph.TRIAL_CALLS
    for _ in range(AUTO_CPU_EAGER_CALLS + 1 + 2 * trial_calls):
        x = torch.randn(64, 64)
        assert_same(compiled(x), torch.tanh(x * 2 + 1) * x)
    (program,) = [p for p in graph.programs.values() if isinstance(p, Program)]
    assert program.verdict is not None, "the trial never ended"
    program._end_trial(eager=1e-4, lowered=2e-4)
    assert program.verdict == "eager" and "slower" in graph.notes[-1]
    assert program.run == program.eager_run
    x = torch.randn(64, 64)
    assert_same(compiled(x), torch.tanh(x * 2 + 1) * x)
    program._end_trial(eager=2e-4, lowered=1e-4)
    assert program.verdict == "kernels" and program.run == program.forward
    assert_same(compiled(x), torch.tanh(x * 2 + 1) * x)


def test_fake_tensor_calls_run_through_aten():
    from torch._subclasses.fake_tensor import FakeTensorMode
    x = torch.randn(8, 16)
    compiled = compile_graph(trace(lambda x: (x * 2).exp().sum(-1)), [x])
    with FakeTensorMode(allow_non_fake_inputs=True) as mode:
        fake = mode.from_tensor(x)
        assert compiled(fake).shape == (8,)
    assert_same(compiled(x), (x * 2).exp().sum(-1))


def test_lowering_leaves_module_classes_untouched():
    # fx's tracer patches nn.Module for each trace; done naively, every lowering changed
    # the version tag of every module class, and frames guarded on one translated again
    from terra_dyn import _C
    gm = trace(lambda x: (x * 2).tanh().sum())  # symbolic_trace itself patches nn.Module
    tag = _C.type_version_tag(torch.nn.Linear)
    x = torch.randn(8, 16, requires_grad=True)
    compiled = compile_graph(gm, [x])
    compiled(x).backward()
    assert compiled.backward_graphs and _C.type_version_tag(torch.nn.Linear) == tag


def test_module_training_steps_translate_once_with_the_cpu_backend(fresh_terra_dyn, monkeypatch):
    import copy
    from terra_dyn import report
    from terra_dyn.backends.cpu.compiled_graph import CpuCompiledGraph
    monkeypatch.setattr(CpuCompiledGraph, "PAYBACK", 0.0)  # lower at the first call
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(16, 32), torch.nn.Tanh(), torch.nn.LayerNorm(32))
    ours = copy.deepcopy(model)
    fast = fresh_terra_dyn.optimize(ours, backend="cpu")
    for step in range(4):
        x = torch.randn(4, 16)
        with report.recording() as rec:
            fast(x).square().mean().backward()
        model(x).square().mean().backward()
        assert not rec.report().recompiles, (step, rec.report().recompiles)
        assert_same([p.grad for p in ours.parameters()], [p.grad for p in model.parameters()],
                    atol=1e-5, rtol=1e-4)


def test_calls_that_differ_from_the_last_signature_miss_its_fast_guard():
    # the last Program runs behind an exact C guard; any difference must reach its own Program
    fn = lambda x, k: (x * k).tanh() + 1  # noqa: E731
    compiled = compile_graph(trace(fn, 2), [torch.randn(4, 6), 2])
    calls = [(torch.randn(4, 6), 2), (torch.randn(4, 6), 3), (torch.randn(6, 4).t(), 3), (torch.randn(6, 4).t(), 3),
             (torch.randn(4, 6, dtype=torch.float64), 3), (torch.randn(5, 6), 3), (torch.randn(4, 6), 2.5),
             (torch.randn(4, 6), True), (torch.randn(4, 6), 2)]
    for x, k in calls:
        assert_same(compiled(x, k), fn(x, k), what=f"{tuple(x.shape)} {x.stride()} {x.dtype} k={k!r}")
    x = torch.randn(4, 6, requires_grad=True)
    out = compiled(x, 2)
    assert out.requires_grad
    out.sum().backward()
    expected = torch.autograd.grad(fn(x, 2).sum(), x)[0]
    assert_same(x.grad, expected)
    with torch.no_grad():
        assert_same(compiled(x, 2), fn(x, 2))


def test_a_value_changing_every_call_is_not_lowered_per_call():
    # dcgan passes a float from .item() into its graph: a Program per value was never reused
    fn = lambda x, k: (x * k).tanh() + 1  # noqa: E731
    x = torch.randn(4, 6)
    compiled = compile_graph(trace(fn, 2), [x, 0.5])
    for k in (0.25, 0.75, 1.25, 0.25):
        assert_same(compiled(x, k), fn(x, k))
    lowered = [key for key, p in compiled.programs.items() if p is not compiled.gm]
    assert len(lowered) == 2, compiled.describe()  # the first value, and 0.25 at its second call


def test_a_graph_refusing_the_joint_graph_is_traced_once():
    def fn(x, buf, k):
        buf.add_(k)
        return (x * buf).tanh().sum()
    x, buf = torch.randn(3, 8, requires_grad=True), torch.zeros(8)
    compiled = compile_graph(trace(fn, 3), [x, buf, 1.0])
    for k in (1.0, 2.0, 3.0, 2.0, 3.0):
        ours_buf, eager_buf = buf.clone(), buf.clone()
        got = torch.autograd.grad(compiled(x, ours_buf, k), x)[0]
        assert_same((got, ours_buf), (torch.autograd.grad(fn(x, eager_buf, k), x)[0], eager_buf))
    assert compiled.joint_refused == "the graph mutates a tensor"
    assert sum("mutates a tensor" in n for n in compiled.notes) == 1


def _joint_graphs_traced(monkeypatch) -> list:
    """A list that gets an item for every JointProgram (a make_fx of a joint graph) built."""
    from terra_dyn.backends.fusion import compiled as fused
    traced = []

    class Counted(fused.JointProgram):
        def __init__(self, *args, **kwargs):
            traced.append(1)
            super().__init__(*args, **kwargs)
    monkeypatch.setattr(fused, "JointProgram", Counted)
    return traced


def test_a_graph_calling_an_inplace_op_refuses_the_joint_graph_without_tracing_it(monkeypatch):
    from terra_dyn.backends.fusion.compiled import joint_refusal
    traced = _joint_graphs_traced(monkeypatch)

    def fn(x, buf):
        buf.mul_(2)
        return (x * buf).tanh().sum()
    x, buf = torch.randn(3, 8, requires_grad=True), torch.ones(8)
    compiled = compile_graph(trace(fn), [x, buf])
    for _ in range(3):
        ours_buf, eager_buf = buf.clone(), buf.clone()
        got = torch.autograd.grad(compiled(x, ours_buf), x)[0]
        assert_same((got, ours_buf), (torch.autograd.grad(fn(x, eager_buf), x)[0], eager_buf))
    assert not traced and compiled.joint_refused == "the graph mutates a tensor", compiled.describe()
    F = torch.nn.functional
    assert joint_refusal(trace(lambda x: torch.relu_(x * 2))) == "the graph mutates a tensor"
    assert joint_refusal(trace(lambda x: F.relu(x * 2, inplace=True))) == "the graph mutates a tensor"
    assert joint_refusal(trace(lambda x: F.dropout(x * 2, 0.1, True))) == "the graph draws random numbers"
    assert joint_refusal(trace(lambda x: F.dropout(x * 2))) == "the graph draws random numbers"
    for fn in (lambda x: F.dropout(x * 2, 0.1, False), lambda x: F.dropout(x, 0.0),
               lambda x: torch.relu(x * 2).requires_grad_(), lambda x: torch.tanh(x) * 2):
        assert joint_refusal(trace(fn)) == ""


def test_a_training_graph_with_dropout_runs_eager_autograd_without_tracing_the_joint_graph(monkeypatch):
    traced = _joint_graphs_traced(monkeypatch)
    fn = lambda x: torch.nn.functional.dropout(x.tanh(), 0.3) * 2  # noqa: E731
    x = torch.randn(4, 8, requires_grad=True)
    compiled = compile_graph(trace(fn), [x])
    for seed in range(3):
        torch.manual_seed(seed)
        got = torch.autograd.grad(compiled(x).sum(), x)[0]
        torch.manual_seed(seed)
        assert_same(got, torch.autograd.grad(fn(x).sum(), x)[0])
    assert not traced and compiled.joint_refused == "the graph draws random numbers", compiled.describe()


def test_cpu_by_name_lowers_a_graph_once_its_eager_time_pays(monkeypatch):
    # graphs the frontend recompiles and runs a few times never pay make_fx + g++
    from terra_dyn.backends.cpu.compiled_graph import CpuCompiledGraph
    monkeypatch.setattr(CpuCompiledGraph, "seconds_per_node", {"lower": 1e9, "joint": 1e9})
    gm = trace(lambda x: torch.tanh(x * 2 + 1) * x)
    compiled = lookup("cpu")(gm, [torch.randn(8, 8)])
    graph = compiled_graph(compiled)
    for _ in range(3):
        x = torch.randn(8, 8)
        assert_same(compiled(x), torch.tanh(x * 2 + 1) * x)
    assert not graph.programs and graph.eager_seconds > 0
    per_node = graph.eager_seconds / CpuCompiledGraph.MIN_NODES / CpuCompiledGraph.PAYBACK
    monkeypatch.setattr(CpuCompiledGraph, "seconds_per_node", {"lower": per_node, "joint": per_node})  # paid
    assert_same(compiled(x), torch.tanh(x * 2 + 1) * x)
    assert graph.kernels, graph.describe()


def _long_chain(x, length):
    for i in range(length):
        x = torch.tanh(x * 1.01 + i)
    return x


def test_cpu_by_name_waits_longer_for_a_bigger_graph(monkeypatch):
    # a lowering's cost grows with the graph (yolov3's 237-node training graph: 5.6 s), so
    # eager time that pays for a small graph's lowering does not pay for a big one's
    from terra_dyn.backends.cpu.compiled_graph import CpuCompiledGraph
    monkeypatch.setattr(CpuCompiledGraph, "seconds_per_node", {"lower": 1e-3, "joint": 1e-3})
    x = torch.randn(8, 8)
    small, big = (compiled_graph(c) for c in (
        lookup("cpu")(trace(lambda x: _long_chain(x, n)), [x]) for n in (2, 100)))
    assert big.nodes > 200 > CpuCompiledGraph.MIN_NODES > small.nodes
    for graph, length in ((small, 2), (big, 100)):
        graph.eager_seconds = 0.1  # paid 0.1 s: more than 20 nodes' 20 ms, less than 200 nodes'
        assert_same(graph(x), _long_chain(x, length))
    assert small.programs and small.lowerings == 1, small.describe()
    assert not big.lowered and not any(isinstance(p, Program) for p in big.programs.values()), big.describe()


def test_cpu_by_name_lowers_a_later_signature_once_its_own_time_pays(monkeypatch):
    # faster_rcnn's per-image shapes: a signature seen twice was lowered (1.4 s a training
    # graph) though it never came again; now each new signature pays for itself, training
    # ones too, and runs the graph module meanwhile
    from terra_dyn.backends.cpu.compiled_graph import CpuCompiledGraph
    monkeypatch.setattr(CpuCompiledGraph, "seconds_per_node", {"lower": 1e-9, "joint": 1e-9})
    fn = lambda x, w: (x @ w).tanh() * 2 + 1  # noqa: E731
    w = torch.randn(5, 5, requires_grad=True)
    compiled = lookup("cpu")(trace(fn), [torch.randn(1, 5), w])
    graph = compiled_graph(compiled)
    for _ in range(2):  # the first call pays for the graph, the second lowers its signature
        graph(torch.randn(1, 5), w).sum().backward()
    assert len(graph.autograd_programs) == 1, graph.describe()
    monkeypatch.setattr(CpuCompiledGraph, "seconds_per_node", {"lower": 1e9, "joint": 1e9})
    for rows in (2, 3, 2, 3, 2):
        x = torch.randn(rows, 5)
        w.grad = None
        graph(x, w).sum().backward()
        got = w.grad
        w.grad = None
        fn(x, w).sum().backward()
        assert_same(got, w.grad)
        with torch.no_grad():
            assert_same(graph(x, w), fn(x, w))
    assert len(graph.autograd_programs) == 1 and not graph.programs, graph.describe()
    assert graph.unlowered_seconds and all(s > 0 for s in graph.unlowered_seconds.values())


def test_a_graph_whose_shapes_keep_changing_stops_lowering_new_ones():
    fn = lambda x: (x * 2).tanh() + 1  # noqa: E731
    compiled = compile_graph(trace(fn), [torch.randn(1, 5)])
    for rows in [1] + [r for r in range(2, 9) for _ in range(2)]:
        x = torch.randn(rows, 5)
        assert_same(compiled(x), fn(x))
    lowered = [p for p in compiled.programs.values() if p is not compiled.gm]
    assert len(lowered) == compiled.MAX_LOWERINGS, compiled.describe()
    assert any("signatures: new ones run the graph module" in n for n in compiled.notes)


def test_a_signature_past_the_limit_is_lowered_once_its_own_eager_time_pays(monkeypatch):
    from terra_dyn.backends.cpu.compiled_graph import CpuCompiledGraph
    fn = lambda x: (x * 2).tanh() + 1  # noqa: E731
    compiled = compile_graph(trace(fn), [torch.randn(1, 5)])
    for rows in [1] + [r for r in range(2, 5) for _ in range(2)]:  # the limit's 4 signatures
        compiled(torch.randn(rows, 5))
    monkeypatch.setattr(CpuCompiledGraph, "seconds_per_node", {"lower": 1e-15, "joint": 1e-15})  # any call pays
    x = torch.randn(9, 5)
    assert_same(compiled(x), fn(x))  # runs the graph module, timed
    assert signature([x], True) not in compiled.programs
    assert_same(compiled(x), fn(x))
    assert isinstance(compiled.programs[signature([x], True)], Program), compiled.describe()


def test_auto_lowers_a_translated_graph_whose_intermediates_are_meta_tensors(monkeypatch):
    # The translator propagates facts on meta tensors: "auto" must read the device the
    # translator records beside them, not the meta device (it once sent every translated
    # CPU graph to the interpreter, so no user of optimize() ever got a kernel).
    import terra_dyn
    import terra_dyn.backends.cpu as cpu_backend
    from terra_dyn.backends import AUTO_CPU_EAGER_CALLS
    monkeypatch.setattr(config, "cpu_min_elements", 4096)
    made = []
    real_compile = cpu_backend.compile_graph
    monkeypatch.setattr(cpu_backend, "compile_graph", lambda *a, **k: made.append(real_compile(*a, **k)) or made[-1])

    def gelu_like(x):
        return 0.5 * x * (1 + torch.tanh(0.7978845608 * (x + 0.044715 * x * x * x)))

    fast = terra_dyn.optimize(gelu_like, backend="auto")
    for _ in range(AUTO_CPU_EAGER_CALLS + 2):
        x = torch.randn(64, 128)
        assert_same(fast(x), gelu_like(x))
    assert len(made) == 1, "auto did not choose the cpu backend for a 8192-element CPU graph"
    assert made[0].kernels, made[0].describe()
