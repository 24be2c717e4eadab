"""What every kernel-generating backend shares: the ATen lowering, our decompositions, the
op table and the fusion decisions. Device-specific emitters (backends/triton, backends/cpu)
turn the same FusionGroups into their own kernels.

    aten_gm = lowering.lower_to_aten(gm, example_inputs)   # functional ATen graph + meta["val"]
    steps = partition.partition(aten_gm.graph)               # [FusionGroup | fx.Node, ...]
    ops.spec_of(node), ops.reduction_of(node)                # what a kernel computes

Nothing here imports triton, a compiler or terra_dyn._C.
"""
