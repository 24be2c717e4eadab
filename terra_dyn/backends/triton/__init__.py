"""The Triton backend: an FX graph in, a callable running fused Triton kernels out.

    gm --lowering--> ATen graph --partition--> [FusionGroup | ATen node, ...]
       --codegen (per group, at its first run)--> Triton source --kernel_cache--> kernel
       --launch--> outputs;  groups that cannot be kernels run as their ATen ops

    compiled = compile_graph(torch.fx.symbolic_trace(f), [x])
    compiled(x)                          # == f(x)
    compiled.kernel_sources, compiled.notes

Modules, in the order data flows: lowering (+ decompositions), partition (+ ops),
codegen, kernel_cache (+ device_math), launch, compiled_graph; environment says where
kernels can run, compile_check compiles a kernel for sm_90 without a GPU.
Nothing here imports terra_dyn._C or the frame hook.
"""
from .environment import is_available, why_unavailable


def compile_graph(gm, example_inputs: list):
    """Backend entry point (torch.compile's backend signature): returns a CompiledGraph."""
    from .compiled_graph import CompiledGraph
    return CompiledGraph(gm, example_inputs)


__all__ = ["compile_graph", "is_available", "why_unavailable"]
