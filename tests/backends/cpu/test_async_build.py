"""Kernels built in the background (`asynchronous=True`, the frontend's backend="cpu"): calls
run eagerly until g++ is done, then the kernels; results equal eager's before and after, and
a build that fails leaves the graph on ATen ops with a note. A compiler wrapper that sleeps
first makes "still building" certain at the first call."""
import stat

import pytest
import torch

import terra_dyn
import terra_dyn.config as config
from terra_dyn.backends.cpu import compile_graph, wait_for_kernels
from terra_dyn.backends.cpu.compiled_graph import CpuCompiledGraph

from ..support import assert_same, trace


def chain(x):
    return torch.tanh(x * 2 + 1) * x


def _slow_compiler(tmp_path, then):
    """A compiler that answers --version at once and otherwise sleeps 0.5 s, then runs `then`."""
    path = tmp_path / "slow-cxx"
    path.write_text('#!/bin/sh\nif [ "$1" = "--version" ]; then echo "slow-cxx 1"; exit 0; fi\n'
                    f"sleep 0.5\n{then}\n")
    path.chmod(path.stat().st_mode | stat.S_IEXEC)
    return str(path)


@pytest.fixture
def fresh_cache(tmp_path, monkeypatch):
    monkeypatch.setattr(config, "cache_dir", str(tmp_path / "cache"))
    yield
    wait_for_kernels()


@pytest.fixture
def created(monkeypatch):
    """Every CpuCompiledGraph made during the test."""
    graphs = []
    original = CpuCompiledGraph.__init__

    def record(self, *args, **kwargs):
        original(self, *args, **kwargs)
        graphs.append(self)
    monkeypatch.setattr(CpuCompiledGraph, "__init__", record)
    return graphs


def test_calls_run_eagerly_until_the_build_is_done_then_kernels(tmp_path, monkeypatch, fresh_cache):
    monkeypatch.setattr(config, "cpu_cxx", _slow_compiler(tmp_path, 'exec g++ "$@"'))
    x = torch.randn(64, 33)
    compiled = compile_graph(trace(chain), [x], asynchronous=True)
    program = next(iter(compiled.programs.values()))
    assert program.pending is not None and not program.pending.done()  # the compiler sleeps
    assert_same(compiled(x), chain(x))  # eager, not waiting for g++
    assert program.gm is None
    wait_for_kernels()
    assert_same(compiled(x), chain(x))  # this call finds the build done: kernels from here
    assert program.pending is None and program.gm is not None
    assert compiled.last[1] == program.forward  # the exact-guard path calls the kernels
    assert len(compiled.kernels) == 1 and not compiled.notes, compiled.describe()
    assert_same(compiled(x * 3), chain(x * 3))


def test_a_failed_background_build_leaves_aten_ops_and_a_note(tmp_path, monkeypatch, fresh_cache):
    monkeypatch.setattr(config, "cpu_cxx", _slow_compiler(tmp_path, 'echo "slow-cxx: no" >&2; exit 1'))
    x = torch.randn(64, 33)
    compiled = compile_graph(trace(chain), [x], asynchronous=True)
    assert_same(compiled(x), chain(x))
    wait_for_kernels()
    assert_same(compiled(x), chain(x))
    assert not compiled.kernels
    assert len(compiled.notes) == 1 and "failed" in compiled.notes[0], compiled.notes


def test_a_cached_library_is_used_at_once(tmp_path, monkeypatch, fresh_cache):
    x = torch.randn(64, 33)
    compile_graph(trace(chain), [x])(x)  # builds into the cache
    compiled = compile_graph(trace(chain), [x], asynchronous=True)
    program = next(iter(compiled.programs.values()))
    assert program.pending is None and program.gm is not None


def test_training_steps_match_eager_before_and_after_the_build(tmp_path, monkeypatch, fresh_cache, created):
    monkeypatch.setattr(config, "cpu_cxx", _slow_compiler(tmp_path, 'exec g++ "$@"'))
    monkeypatch.setattr(CpuCompiledGraph, "PAYBACK", 0.0)

    def f(x, w, b):
        h = torch.nn.functional.layer_norm(x @ w, (w.shape[1],)) + b
        return torch.nn.functional.gelu(h, approximate="tanh").sum(-1)

    torch.manual_seed(0)
    x = torch.randn(8, 16)
    params = [torch.randn(16, 32, requires_grad=True), torch.randn(32, requires_grad=True)]
    ref = [p.detach().clone().requires_grad_(True) for p in params]
    fast = terra_dyn.optimize(f, backend="cpu")
    for step in range(4):
        if step == 2:
            wait_for_kernels()
        out, expected = fast(x, *params), f(x, *ref)
        out.square().sum().backward()
        expected.square().sum().backward()
        assert_same(out, expected, atol=1e-5, rtol=1e-5, what=f"step {step}")
        for p, r in zip(params, ref):
            assert_same(p.grad, r.grad, atol=1e-4, rtol=1e-4, what=f"grad at step {step}")
            p.grad = r.grad = None
    assert created and all(g.asynchronous for g in created)  # the halves build in the background too
    assert not any("failed" in n for g in created for n in g.notes)
    assert any(g.kernels for g in created), "no kernel was built"


def test_the_frontend_cpu_backend_builds_in_the_background(created):
    from terra_dyn.backends import lookup
    lookup("cpu")(trace(chain), [torch.randn(64, 33)])
    assert [g.asynchronous for g in created] == [config.cpu_async_compile]
