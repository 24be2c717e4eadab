"""Kernels with less work than codegen.PARALLEL_MIN_ELEMENTS are plain loops, with no OpenMP
region: entering even a one-thread region cost ~0.5-1 us a call (GOMP_parallel and its
futex calls), a fifth of a softmax over 1024 floats. Bigger kernels keep theirs. Pointwise
(one loop and a loop nest), row reductions, column reductions and the layer-norm backward
template, each small and big, equal eager's results on 1 and 2 threads."""
import pytest
import torch

from terra_dyn.backends.cpu import codegen

from .support import check

aten = torch.ops.aten
THRESHOLD = 32768


@pytest.fixture(autouse=True)
def real_threshold(monkeypatch):  # conftest.py sets 0: every kernel parallel
    monkeypatch.setattr(codegen, "PARALLEL_MIN_ELEMENTS", THRESHOLD)


def _layer_norm_backward(g, x, mean, rstd, w, b):
    return aten.native_layer_norm_backward(g, x, [x.shape[-1]], mean, rstd, w, b, [True, True, True])


def _ln_inputs(rows, cols):
    x, w, b = torch.randn(rows, cols) * 3 + 1, torch.rand(cols) + 0.5, torch.randn(cols)
    _, mean, rstd = aten.native_layer_norm(x, [cols], w, b, 1e-5)
    return torch.randn(rows, cols), x, mean, rstd, w, b


CASES = {
    "pointwise": (lambda x: torch.tanh(x * 2 + 1) * x, lambda n: [torch.randn(n // 64, 64)]),
    "pointwise_nest": (lambda x, y: torch.tanh(x * y + 1), lambda n: [torch.randn(n // 64, 64).t(), torch.randn(n // 64, 1).t()]),
    "softmax": (lambda x: torch.softmax(x, -1), lambda n: [torch.randn(n // 256, 256)]),
    "column_sum": (lambda x: (x * 2).sum(0), lambda n: [torch.randn(n // 128, 128)]),
    "layer_norm_backward": (_layer_norm_backward, lambda n: list(_ln_inputs(n // 256, 256))),
}


@pytest.mark.parametrize("name", sorted(CASES))
@pytest.mark.parametrize("elements", [THRESHOLD // 8, THRESHOLD * 2])
def test_an_openmp_region_only_for_big_kernels(name, elements):
    fn, make = CASES[name]
    compiled = check(fn, *make(elements), atol=1e-5, rtol=1e-5)
    texts = [k.text for k in compiled.kernels]
    assert texts, compiled.describe()
    parallel = ["omp parallel" in t for t in texts]
    assert parallel == [elements >= THRESHOLD] * len(texts), "\n".join(texts)
