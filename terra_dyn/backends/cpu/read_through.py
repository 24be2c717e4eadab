"""Views a kernel reads through its base: an input of a fusion group that is a chain of views
of another input of the same group needs no tensor of its own. The kernel loads it from
the base's pointer at the view's strides and offset, and the compiled graph drops the view
step when nothing else uses it (compiled_graph.Program._rewrite).

    slice_1 = aten.slice.Tensor(x, 1, 0, 1)       # each row's first element (a layer norm's
    kernel(x, slice_1, w, b)                      # float64 shift)
        ->  kernel(x, w, b), reading slice_1 as in0[x * 1024 + 0]

A view step is a Python binding call (~1 us); a layer norm graph without one stays a single
KernelCall (compiled_graph._whole_graph_kernel).
"""
import torch
import torch.fx as fx

aten = torch.ops.aten

# Views whose offset into their base follows from the base's layout (not as_strided's
# absolute offset, no dtype change).
VIEWS = {
    aten.slice.Tensor, aten.select.int, aten.narrow.default, aten.unsqueeze.default, aten.squeeze.dim,
    aten.squeeze.dims, aten.squeeze.default, aten.expand.default, aten.permute.default, aten.t.default,
    aten.transpose.int, aten.alias.default, aten.detach.default, aten.diagonal.default,
    aten.view.default, aten._unsafe_view.default,
}


def view_of_input(node: fx.Node, inputs) -> tuple:
    """(input, element offset) when `node` is a chain of VIEWS of one of `inputs` (the
    furthest such ancestor), else None."""
    base, found = node, None
    while base.op == "call_function" and base.target in VIEWS and isinstance(base.args[0], fx.Node):
        base = base.args[0]
        if base in inputs:
            found = base
    view, root = node.meta.get("val"), found is not None and found.meta.get("val")
    if not isinstance(view, torch.Tensor) or not isinstance(root, torch.Tensor) or view.dtype != root.dtype:
        return None
    return found, int(view.storage_offset()) - int(root.storage_offset())
