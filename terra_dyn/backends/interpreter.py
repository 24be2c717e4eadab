"""The reference backend: run the FX graph with eager PyTorch ops.

    compile_graph(gm, example_inputs) -> gm.forward   (a plain bound Python function)

The GraphModule's generated `forward` is straight-line Python calling torch; returning it
bound (not gm itself, not an fx.Interpreter) keeps per-call overhead to one Python call.

Example: for a graph relu(x) + y, the result is `gm.forward`, and `gm.code` shows it.
"""


def compile_graph(gm, example_inputs):
    gm.recompile()
    return gm.forward
