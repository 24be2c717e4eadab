"""CPU backend tests: every group becomes a kernel (no size threshold) and every kernel runs
its OpenMP loop on the threads given (no minimum size), so that tiny test tensors exercise
the same code paths as large ones, on 1 and on 2 threads."""
import pytest


@pytest.fixture(autouse=True)
def every_group_a_kernel(monkeypatch):
    import terra_dyn.config as config
    from terra_dyn.backends.cpu import codegen
    monkeypatch.setattr(config, "cpu_min_elements", 0)
    monkeypatch.setattr(codegen, "PARALLEL_MIN_ELEMENTS", 0)
