"""The CUDA-graph runner ("reduce-overhead", backends/cudagraphs.py) decides per signature
whether a replay would be safe. Replays need a GPU (checked by the GPU benchmark's overhead
part on the H200: new inputs seen, held outputs unchanged); the decisions and the fallback
are checked here on CPU."""
import torch

from terra_dyn.backends import lookup
from terra_dyn.backends.cudagraphs import CudaGraphRunner


class _AnyDevice(CudaGraphRunner):
    """A runner that takes every input as GPU-resident, to exercise the warm-up checks."""

    def _unsafe_reason(self, args):
        return ""


def test_cpu_inputs_run_the_compiled_graph_with_one_note():
    runner = CudaGraphRunner(lambda x: x * 2, notes=[])
    x = torch.arange(4.0)
    for _ in range(3):
        assert torch.equal(runner(x), x * 2)
    assert runner.notes == ["runs without CUDA graphs: inputs not all on a CUDA device"]


def test_a_graph_that_mutates_an_input_is_never_captured():
    def mutate(x):
        x.add_(1)
        return x * 2
    runner = _AnyDevice(mutate, notes=[])
    x = torch.zeros(3)
    runner(x)
    assert runner.notes == ["runs without CUDA graphs: the graph mutates an input"]
    assert torch.equal(runner(x), torch.full((3,), 4.0))  # ran as is: the mutation reached x
    assert torch.equal(x, torch.full((3,), 2.0))


def test_an_output_aliasing_an_input_is_never_captured():
    runner = _AnyDevice(lambda x: x[1:], notes=[])
    runner(torch.zeros(3))
    assert runner.notes == ["runs without CUDA graphs: an output aliases an input"]


def test_cudagraphs_backend_on_cpu_is_the_auto_backend():
    gm = torch.fx.symbolic_trace(lambda x: torch.relu(x) + 1)
    x = torch.randn(8)
    compiled = lookup("cudagraphs")(gm, [x])
    assert not isinstance(compiled, CudaGraphRunner)
    assert torch.equal(compiled(x), torch.relu(x) + 1)
