"""op_db samples of every op the backends lower (tests/backends/test_op_db.py's list and
harness) through the cpu backend, compared with eager on 1 and 2 threads."""
import pytest
from torch.fx.experimental.proxy_tensor import make_fx

from ..test_op_db import OPS, op_db_cases, pytestmark  # noqa: F401
from .support import run_on_threads

# kept as eager's own op on CPU (its fused kernel beats the decomposed chain): values are
# still compared, no kernel is expected (GELU's erf form is a kernel on small tensors
# since session 15, and op_db's samples are small)
KEPT_AS_ATEN = set()


@pytest.mark.parametrize("name", sorted(OPS))
def test_op_db_samples_match_eager(name):
    from terra_dyn.backends.cpu import compile_graph
    ran_kernel = False
    for i, (call, tensors, sample) in enumerate(op_db_cases(name, limit=3)):
        expected = call(*[t.clone() for t in tensors])
        compiled = compile_graph(make_fx(call, tracing_mode="fake")(*tensors), tensors)
        run_on_threads(compiled, tensors, expected, atol=1e-5, rtol=1e-5, what=f"{name} sample {i}: {sample}")
        ran_kernel = ran_kernel or bool(compiled.kernels)
    assert ran_kernel or name in KEPT_AS_ATEN, f"no sample of {name} ran a C++ kernel"
