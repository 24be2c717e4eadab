"""Shared pytest fixtures for the terra_dyn suites (keep this small: fixtures only).

    def test_something(fresh_terra_dyn):   # caches cleared before and after the test
        ...
"""
import pytest


@pytest.fixture
def fresh_terra_dyn():
    """terra_dyn with every cache cleared before and after the test, so translations made by
    one test never satisfy another's (each test sees its own first, uncached call)."""
    import terra_dyn

    terra_dyn.reset()
    yield terra_dyn
    terra_dyn.reset()


@pytest.fixture(params=[True, False], ids=["snapshots", "expressions"])
def guard_snapshot_modes(request, monkeypatch):
    """Guard facts about pinned modules checked as C snapshots, then as Python expressions
    (`config.guard_snapshots`): the soundness tests of both. The value: snapshots on."""
    import terra_dyn
    from terra_dyn import config

    monkeypatch.setattr(config, "guard_snapshots", request.param)
    terra_dyn.reset()
    yield request.param
    terra_dyn.reset()
