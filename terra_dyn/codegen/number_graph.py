"""A graph of Python-number arithmetic only, spelled as plain bytecode instead of a graph call.

The translator marks such a graph (translate/frame.py `_number_arithmetic`: every input a
run-time number, every node an operator or math function on numbers); the rewritten code
then computes its nodes inline, in graph order, into locals, and leaves the same output
tuple a graph call would, so the rest of the rewritten code reads it unchanged:

    graph(a1, a4): mul = a1 * 2; sub = mul - 1; add = a4 + sub; return (add,)
    ->  LOAD_FAST v; STORE_FAST ___num0        (each input from its source, as for a call)
        LOAD_FAST total; STORE_FAST ___num1
        <call operator.mul(___num0, 2)>; STORE_FAST ___num2   ...
        LOAD_FAST ___num4; BUILD_TUPLE 1; STORE_FAST ___graph_out

Example: `total += v * 2 - 1` after `v = x.mean().item()` in a loop: one graph call per
iteration before, a few instructions now.
"""
from bytecode import Instr

from ..errors import Unsupported
from .reconstruct import OUT, call_const

_LITERALS = (int, float, bool, str, type(None))


def number_graph_code(graph, input_loads):
    """Instructions computing fx `graph` inline; `input_loads`: one instruction list per
    placeholder, in order. Leaves the output tuple in ___graph_out."""
    names = {}
    out = []
    placeholders = [n for n in graph.nodes if n.op == "placeholder"]
    if len(placeholders) != len(input_loads):
        raise Unsupported("number graph: inputs do not match its placeholders")
    for node, load in zip(placeholders, input_loads):
        names[node] = f"___num{len(names)}"
        out += list(load) + [Instr("STORE_FAST", names[node])]
    for node in graph.nodes:
        if node.op == "call_function":
            if node.kwargs:
                raise Unsupported("number graph: keyword arguments")
            args = [ins for a in node.args for ins in _load(a, names)]
            names[node] = f"___num{len(names)}"
            out += call_const(node.target, args, len(node.args)) + [Instr("STORE_FAST", names[node])]
        elif node.op == "output":
            out += _load(tuple(node.args[0]), names) + [Instr("STORE_FAST", OUT)]
        elif node.op != "placeholder":
            raise Unsupported(f"number graph: {node.op} node")
    return out


def _load(arg, names):
    if arg in names:  # an fx.Node computed before
        return [Instr("LOAD_FAST", names[arg])]
    if isinstance(arg, (tuple, list)):
        out = [ins for a in arg for ins in _load(a, names)]
        return out + [Instr("BUILD_TUPLE" if isinstance(arg, tuple) else "BUILD_LIST", len(arg))]
    if isinstance(arg, _LITERALS):
        return [Instr("LOAD_CONST", arg)]
    raise Unsupported(f"number graph: argument {arg!r}")
