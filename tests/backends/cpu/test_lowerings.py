"""Every lowering of tests/backends/test_lowerings.py (same tables, same test bodies) through
the cpu backend: all dtypes, broadcasting, strided inputs, reductions of odd sizes; each
compiled graph compared with eager on 1 and 2 threads."""
import pytest

from .. import test_lowerings as shared
from . import support

pytestmark = shared.pytestmark


@pytest.fixture(autouse=True)
def cpu_check(monkeypatch):
    monkeypatch.setattr(shared, "check", support.check)


@pytest.mark.parametrize("name", sorted(shared.UNARY))
def test_unary_across_dtypes(name):
    shared.test_unary_across_dtypes(name)


@pytest.mark.parametrize("name", ["exp", "abs", "sigmoid", "to_half", "relu"])
def test_unary_odd_sizes_and_strides(name):
    shared.test_unary_odd_sizes_and_strides(name)


@pytest.mark.parametrize("name", sorted(shared.BINARY))
def test_binary_across_dtypes_with_broadcasting(name):
    shared.test_binary_across_dtypes_with_broadcasting(name)


@pytest.mark.parametrize("name", sorted(shared.BINARY))
def test_binary_strided_and_mixed_dtypes(name):
    shared.test_binary_strided_and_mixed_dtypes(name)


@pytest.mark.parametrize("name", sorted(shared.REDUCTIONS))
def test_reductions_across_dtypes_and_sizes(name):
    shared.test_reductions_across_dtypes_and_sizes(name)
