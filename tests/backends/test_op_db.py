"""op_db sample inputs (CPU, float32) for every op the backend lowers, each as a tiny graph
through the Triton backend (interpreter), compared with eager: values, dtypes, shapes."""
import pytest
import torch
from torch.fx.experimental.proxy_tensor import make_fx
from torch.utils import _pytree as pytree

from .support import GENERATED, assert_same

pytestmark = [pytest.mark.filterwarnings("ignore::UserWarning"), pytest.mark.filterwarnings("ignore::RuntimeWarning")]

LOWERED = [
    "abs", "neg", "exp", "exp2", "expm1", "log", "log2", "log10", "log1p", "sqrt", "rsqrt", "sin", "cos", "tan",
    "tanh", "sigmoid", "erf", "floor", "ceil", "trunc", "round", "sign", "sgn", "reciprocal", "nn.functional.relu",
    "logical_not", "isnan", "isinf", "add", "sub", "mul", "div", "floor_divide", "remainder", "fmod",
    "pow", "maximum", "minimum", "eq", "ne", "lt", "le", "gt", "ge", "logical_and", "logical_or", "logical_xor",
    "where", "masked_fill", "clamp", "clamp_min", "clamp_max", "addcmul", "addcdiv", "lerp", "rsub", "square",
    "sum", "mean", "amax", "amin", "argmax", "argmin", "var", "std", "softmax", "log_softmax", "logsumexp",
    "nn.functional.gelu", "nn.functional.silu", "nn.functional.layer_norm", "nn.functional.hardtanh",
    "nn.functional.leaky_relu", "nn.functional.softplus", "nn.functional.rms_norm", "nn.functional.hardsigmoid",
    "nn.functional.hardswish", "nn.functional.elu", "nn.functional.selu", "nn.functional.celu", "nn.functional.mish",
    "frac", "clone", "half", "bool", "int",
]
SAMPLES_PER_OP = 4


def _op_infos():
    from torch.testing._internal.common_methods_invocations import op_db
    by_name = {}
    for info in op_db:
        if info.name in LOWERED and info.variant_test_name == "" and info.name not in by_name:
            by_name[info.name] = info
    return by_name


OPS = _op_infos()


def op_db_cases(name, limit=SAMPLES_PER_OP):
    """(call, tensors, sample) for the first `limit` samples of op `name`, preferring ones
    with a non-scalar input; `call(*tensors)` runs the op on those tensors."""
    info = OPS[name]
    if torch.float32 not in info.supported_dtypes("cpu"):
        pytest.fail(f"{name} has no float32 CPU support in op_db")
    samples = []
    for sample in info.sample_inputs("cpu", torch.float32, requires_grad=False):
        samples.append(sample)
        if len(samples) >= 16:
            break
    # cap the samples (the interpreter is slow), preferring ones with a non-scalar input
    samples.sort(key=lambda s: not (isinstance(s.input, torch.Tensor) and s.input.dim() > 0))
    cases = []
    for sample in samples[:limit]:
        leaves, spec = pytree.tree_flatten((sample.input, sample.args, sample.kwargs))
        positions = [k for k, leaf in enumerate(leaves) if isinstance(leaf, torch.Tensor)]

        def call(*tensors, leaves=leaves, spec=spec, positions=positions):
            filled = list(leaves)
            for k, t in zip(positions, tensors):
                filled[k] = t
            inp, args, kwargs = pytree.tree_unflatten(filled, spec)
            return info.op(inp, *args, **kwargs)

        cases.append((call, [leaves[k] for k in positions], sample))
    return cases


@pytest.mark.parametrize("name", sorted(OPS))
def test_op_db_samples_match_eager(name):
    from terra_dyn.backends.triton import compile_graph
    ran_kernel = False
    for i, (call, tensors, sample) in enumerate(op_db_cases(name)):
        expected = call(*[t.clone() for t in tensors])
        gm = make_fx(call, tracing_mode="fake")(*tensors)
        compiled = compile_graph(gm, tensors)
        actual = compiled(*tensors)
        assert_same(actual, expected, atol=1e-5, rtol=1e-5, what=f"{name} sample {i}: {sample}")
        GENERATED.update(compiled.sources)
        ran_kernel = ran_kernel or bool(compiled.kernels)
    assert ran_kernel, f"no sample of {name} ran a Triton kernel"
