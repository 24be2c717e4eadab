"""One fresh process that builds a Triton kernel (interpreted on CPU) with the kernel
knobs set, shared by the logs test and the knob tests that read its output."""
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@pytest.fixture(scope="session")
def kernel_run(tmp_path_factory):
    """(result, cache_dir) of a process with TERRA_DYN_LOGS=kernels, TERRA_DYN_PRINT_KERNELS=1
    and TERRA_DYN_CACHE_DIR set, that compiles and runs `tanh(x) * 2` with the Triton backend."""
    cache_dir = tmp_path_factory.mktemp("kernel_cache")
    program = ("import torch, torch.fx\n"
               "from terra_dyn.backends.triton import compile_graph\n"
               "c = compile_graph(torch.fx.symbolic_trace(lambda x: torch.tanh(x) * 2), [torch.randn(10)])\n"
               "c(torch.randn(10))\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("TERRA_DYN")}
    env.update(TRITON_INTERPRET="1", TERRA_DYN_LOGS="kernels", TERRA_DYN_PRINT_KERNELS="1",
               TERRA_DYN_CACHE_DIR=str(cache_dir))
    result = subprocess.run([sys.executable, "-c", program], cwd=ROOT, env=env, capture_output=True,
                            text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    return result, cache_dir
