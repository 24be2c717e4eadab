"""Backend tests run generated Triton kernels with Triton's CPU interpreter.

TRITON_INTERPRET=1 must be set before triton is first imported (Triton builds its standard
library, tl.sum and friends, at import), so it is set here, at collection time. Kernels are
cached in a fresh directory per session so that every run really generates and loads them.
"""
import os
import tempfile

os.environ.setdefault("TRITON_INTERPRET", "1")
os.environ.setdefault("TRITON_DEFAULT_FP_FUSION", "1")

import pytest  # noqa: E402


@pytest.fixture(scope="session", autouse=True)
def kernel_cache_dir():
    import terra_dyn.config as config
    old = config.cache_dir
    with tempfile.TemporaryDirectory(prefix="terra_dyn_test_cache_") as directory:
        config.cache_dir = directory
        yield directory
        config.cache_dir = old


@pytest.fixture(autouse=True)
def seeded():
    """Each test draws the same inputs on every run: a bf16 comparison that passes must not
    fail on the next run's random draw (tolerances are per dtype, not per draw)."""
    import torch
    torch.manual_seed(0)
