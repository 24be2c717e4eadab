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


@pytest.fixture
def one_torch_thread():
    """One torch thread for the test (restored after). On the loaded 2-core machine two
    torch threads wait for each other's core: a tiny matmul took 12-21 ms of process time
    (0.02 ms on one), step times swing, and timing-based verdicts (the cpu backend's
    trials) drown in that noise; numerics do not change. A module opts in with
    `pytestmark = pytest.mark.usefixtures("one_torch_thread")`."""
    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


class GuardModes:
    """Which guard mechanisms a test runs under; true when snapshots are on."""

    def __init__(self, snapshots, paths):
        self.snapshots, self.paths = snapshots, paths

    def __bool__(self):
        return self.snapshots


@pytest.fixture(params=[(True, True), (True, False), (False, True), (False, False)],
                ids=["snapshots+paths", "snapshots", "paths", "expressions"])
def guard_snapshot_modes(request, monkeypatch):
    """Guard facts about pinned modules checked as C snapshots or not
    (`config.guard_snapshots`), facts along attribute / item chains as C path checks or not
    (`config.guard_paths`); with both off, every such fact is a Python expression: the
    soundness tests of each. The value: a GuardModes, true when snapshots are on."""
    import terra_dyn
    from terra_dyn import config

    snapshots, paths = request.param
    monkeypatch.setattr(config, "guard_snapshots", snapshots)
    monkeypatch.setattr(config, "guard_paths", paths)
    terra_dyn.reset()
    yield GuardModes(snapshots, paths)
    terra_dyn.reset()

