"""Bad input for the cpu backend: no compiler, a compile error, an unsupported dtype, an
integer division by zero. The group runs through ATen with one note (same values as
eager, or eager's own error); strict mode raises instead."""
import pytest
import torch

import terra_dyn.config as config
from terra_dyn.backends.cpu import compile_graph, compiler

from ..support import assert_same, trace


def chain(x):
    return torch.tanh(x * 2 + 1) * x


def test_no_compiler_runs_groups_as_aten_with_one_note(monkeypatch):
    monkeypatch.setattr(config, "cpu_cxx", "/nonexistent/g++")
    x = torch.randn(64, 33)
    compiled = compile_graph(trace(chain), [x])
    assert_same(compiled(x), chain(x))
    assert not compiled.kernels
    assert len(compiled.notes) == 1 and "no C++ compiler" in compiled.notes[0], compiled.notes


def test_compile_error_runs_groups_as_aten_with_one_note(monkeypatch):
    monkeypatch.setattr(compiler, "FLAGS", compiler.FLAGS + ("-fno-such-flag-terra-dyn",))
    x = torch.randn(64, 33)
    compiled = compile_graph(trace(chain), [x])
    assert_same(compiled(x), chain(x))
    assert len(compiled.notes) == 1 and "failed" in compiled.notes[0], compiled.notes


def test_strict_mode_raises_instead_of_falling_back(monkeypatch):
    monkeypatch.setattr(config, "cpu_cxx", "/nonexistent/g++")
    monkeypatch.setattr(config, "strict", True)
    x = torch.randn(64, 33)
    with pytest.raises(compiler.CompileError, match="no C\\+\\+ compiler"):
        compile_graph(trace(chain), [x])(x)


def test_complex_dtype_stays_aten_and_matches():
    x = torch.randn(16, 8, dtype=torch.complex64)
    compiled = compile_graph(trace(lambda x: (x * 2 + 1) * x), [x])
    assert_same(compiled(x), (x * 2 + 1) * x)
    assert not compiled.kernels


def test_integer_division_by_zero_raises_eagers_error():
    a = torch.tensor([4, 5, 6], dtype=torch.int64)
    b = torch.tensor([1, 0, 2], dtype=torch.int64)
    fn = lambda a, b: torch.div(a + 1, b, rounding_mode="floor") * 2  # noqa: E731
    with pytest.raises(RuntimeError) as eager_error:
        fn(a, b)
    compiled = compile_graph(trace(fn, 2), [a, b])
    assert compiled.kernels
    with pytest.raises(RuntimeError) as ours:
        compiled(a, b)
    assert str(ours.value) == str(eager_error.value)
    ok = torch.tensor([1, 3, 2], dtype=torch.int64)
    assert_same(compiled(a, ok), fn(a, ok))


def test_a_user_error_inside_the_graph_is_raised_like_eager():
    x, y = torch.randn(4, 5), torch.randn(6, 5)
    fn = lambda x, y: torch.cat([x * 2, y]).exp() @ torch.randn(3, 3)  # noqa: E731
    with pytest.raises(RuntimeError):
        compile_graph(trace(fn, 2), [x, y])(x, y)
