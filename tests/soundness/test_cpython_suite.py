"""The CPython regression-suite runner's fast CI subset (tests/soundness/cpython_suite.py;
the whole list: `python -m tests.soundness.cpython_suite`).

Each module runs plainly and with every test method optimized, in subprocesses; every test
must have the same outcome, and the optimized run must really translate frames.
"""
import pytest

from . import cpython_suite

CI_MODULES = ["test_property", "test_decorators"]


@pytest.mark.parametrize("module", CI_MODULES)
def test_optimized_outcomes_equal_the_plain_run(module):
    n, diffs, stats = cpython_suite.compare(module, timeout=300)
    assert diffs == [], "\n".join(diffs)
    assert n > 10
    assert stats["@translations"] > 50  # the test methods really ran translated
