"""The reference backend: run the FX graph with eager PyTorch ops.

    compile_graph(gm, example_inputs) -> gm.forward   (a plain bound Python function)

The GraphModule's generated `forward` is straight-line Python calling torch; returning it
bound (not gm itself, not an fx.Interpreter) keeps per-call overhead to one Python call.

Example: for a graph relu(x) + y, the result is `gm.forward`, and `gm.code` shows it.

The translator's GraphModule comes with its code generated (the constructor does it) and
marked by `code_is_fresh`; compile_graph generates it again only if the graph changed since
(a backend's pass edited it). Generating it twice cost 30-60 ms per translation of a small
decoder (the forward of a 2-layer model: ~600 nodes).
"""


def code_is_fresh(gm):
    """Note that gm's code was generated from its graph as it stands now."""
    gm.__dict__["_terra_code_of"] = _fingerprint(gm.graph)


def compile_graph(gm, example_inputs):
    if not _unchanged(gm.__dict__.pop("_terra_code_of", None), gm.graph):
        gm.recompile()
    return gm.forward


def _fingerprint(graph):
    # the objects themselves (compared by identity: no SymInt's __eq__ runs, no id reused)
    return graph, [(n, n.name, n.op, n.target, n._args, n._kwargs) for n in graph.nodes]


def _unchanged(mark, graph):
    if mark is None or mark[0] is not graph:
        return False
    now = _fingerprint(graph)[1]
    return len(now) == len(mark[1]) and all(
        a[0] is b[0] and a[1] == b[1] and a[2] == b[2] and all(x is y for x, y in zip(a[3:], b[3:]))
        for a, b in zip(now, mark[1]))
