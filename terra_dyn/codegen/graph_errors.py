"""Re-running a segment natively when its compiled graph raised at run time.

    GraphErrorRerun(code, graph_fn, graph, undone, global_state).allowed(exc) -> bool
        the rewritten code's handler around the graph call asks it; True: the handler runs
        the original (or resume) code natively with the same argument slots
    module_of(graph_fn) -> the GraphModule whose own forward graph_fn is, else None

The question is which nodes a re-run would repeat with a visible effect: in-place writes to
tensors the graph did not make, batch_norm's running statistics, random draws, RNG state
switches. Grad-mode and autocast switches do not count: they are undone on the error path.
The translator names the node targets it inserts for those (`undone`: autocast switches,
`global_state`: RNG state switches) in the CodePlan: codegen never imports translate.

Example: a graph `emb = embedding(idx, w); y = emb * 2` raising IndexError has no such node,
so the segment re-runs natively and the user's `except IndexError` runs once.
"""
import inspect
import warnings

import torch

from .. import config, report


class GraphErrorRerun:
    """The handler for a compiled graph that raised: may the segment run again natively?

    In the rewritten code, around the graph call only (3.11 exception tables cost nothing
    until an exception):

        try:    ___graph_out = compiled(...)
        except: if rerun.allowed(exc): return run_original(<original or resume code>, slots)
                else: re-raise exc unchanged

    The segment's Python effects (prints, appends, attribute stores) are replayed after the
    graph call, so none has happened yet. The graph's own effects are the question: a
    re-run repeats an in-place write to a tensor (batch_norm's running statistics too) or a
    random draw (the RNG advances twice) that ran before the failing op. So a re-run is
    allowed when the graph has no such node, or, for a GraphModule's own `forward` (the
    interpreter backend, which runs the nodes in order), when the failing node comes before
    the first of them (found from the traceback's line in `forward`). Otherwise the graph's
    error propagates as before this handler existed: tensor state as eager's at the failing
    op, but the segment's Python effects before it and its except/finally blocks are
    skipped, and the report says so. No copy of inputs or RNG state is taken to allow more
    re-runs: that would cost every call, not just failing ones. Grad-mode switches (`with
    torch.no_grad():` inside the graph) are undone either way: the handler sets the grad
    mode the graph was entered with (guarded, so the one seen at translation), as leaving
    the `with` block by an exception does. Strict mode re-runs too: the error is the
    user's, not terra_dyn's. KeyboardInterrupt and other non-Exception errors never re-run.

    Example: `try: y = emb(idx) except IndexError: y = None` with idx out of range runs the
    except block once, at the user's line, and the report gets a Fallback note.
    """

    _MAX_NOTES = 20  # a loop that catches the same error every step need not grow the report

    def __init__(self, code, graph_fn, graph, undone=frozenset(), global_state=frozenset()):
        # names only: the code itself would close a cycle through its own cache entry
        self.where = (code.co_name, code.co_filename, code.co_firstlineno)
        self.module = module_of(graph_fn)
        try:
            self.first_effect = _first_effect(graph, undone, global_state)
        except Exception:  # a node this analysis cannot read: assume an effect, never re-run
            self.first_effect = 0
        self.grad_mode = torch.is_grad_enabled() if _switches_grad_mode(graph) else None
        self.notes = 0

    def __repr__(self):
        return f"<GraphErrorRerun {self.where[0]}: first effect at node {self.first_effect}>"

    def allowed(self, exc):
        if self.grad_mode is not None:
            torch._C._set_grad_enabled(self.grad_mode)
        if not isinstance(exc, Exception):
            return False
        if self.first_effect is None:
            ok = True
        else:
            failing = self._failing_node(exc)
            ok = failing is not None and failing < self.first_effect
        if self.notes < self._MAX_NOTES:
            self.notes += 1
            try:
                self._note(exc, ok)
            except Exception:  # a user __str__ that raises: the note is not worth a new error
                pass
        return ok

    def _note(self, exc, ok):
        kind = type(exc).__name__
        if ok:
            reason = f"graph raised {kind} at run time; segment re-run eagerly"
        else:
            reason = (f"graph raised {kind} at run time after an in-place or random op had run; "
                      f"not re-run, so this segment's Python effects and except/finally blocks "
                      f"before the error were skipped")
        text = str(exc).splitlines()[0][:200] if str(exc) else ""
        name, filename, lineno = self.where
        report.record_fallback(report.Fallback(name, filename, lineno, f"{reason} ({kind}: {text})"))
        if config.verbose:
            warnings.warn(f"terra_dyn: {name} ({filename}:{lineno}): {reason}",
                          RuntimeWarning, stacklevel=3)

    def _failing_node(self, exc):
        """Index in graph.nodes of the node that raised, when `forward` is FX's own code."""
        gm = self.module
        lines = getattr(gm, "_lineno_map", None)
        if not lines:
            return None
        forward = type(gm).forward.__code__  # read now: recompile() replaces it
        lineno = None
        tb = exc.__traceback__
        while tb is not None:
            if tb.tb_frame.f_code is forward:
                lineno = tb.tb_lineno
            tb = tb.tb_next
        if lineno is None:
            return None
        return lines.get(lineno - getattr(gm, "_prologue_start", 0))


def module_of(graph_fn):
    """The GraphModule whose own forward `graph_fn` is (the interpreter backend), else None."""
    gm = getattr(graph_fn, "__self__", graph_fn)
    if not isinstance(gm, torch.fx.GraphModule):
        return None
    if graph_fn is not gm and getattr(graph_fn, "__func__", None) is not type(gm).forward:
        return None
    return gm


def _first_effect(graph, undone, global_state):
    """Index of the first node a re-run would repeat (see GraphErrorRerun), None if none.
    `undone`, `global_state`: the translator's state-switch node targets (GraphErrorRerun)."""
    if graph is None:
        return 0  # unknown graph: never re-run
    fresh = set()  # nodes holding a tensor the graph made itself (writes to them are private)
    for i, node in enumerate(graph.nodes):
        if node.op not in ("call_function", "call_method"):
            continue
        if node.op == "call_function" and isinstance(node.target, (torch._ops.OpOverload, torch._ops.OpOverloadPacket)):
            if _aten_has_effect(node.target, "out" in node.kwargs):
                return i
            continue
        name = _op_name(node)
        if node.target is torch._C._set_grad_enabled or _member(node.target, undone):
            continue  # GraphErrorRerun sets the entry grad mode; an autocast graph exits its blocks
        if _member(node.target, global_state) or _draws_random(name) or _updates_running_stats(node, name):
            return i
        if _writes_in_place(node, name):
            target = node.kwargs.get("out", node.args[0] if node.args else None)
            if target not in fresh:
                return i
            fresh.add(node)  # it returns its (fresh) argument
        elif name in _FRESH_RESULT:
            fresh.add(node)
    return None


def _switches_grad_mode(graph):
    return graph is not None and any(n.target is torch._C._set_grad_enabled for n in graph.nodes)


def _op_name(node):
    target = node.target
    return target if isinstance(target, str) else getattr(target, "__name__", "")


def _member(target, targets):
    try:
        return target in targets
    except TypeError:  # an unhashable target
        return False


def _aten_has_effect(op, has_out):
    """An ATen op that writes an argument or draws random numbers (from its schemas/tags);
    for a packet, every overload the call may pick (the `out` ones only given out=)."""
    if isinstance(op, torch._ops.OpOverloadPacket):
        overloads = [getattr(op, o) for o in op.overloads() if has_out or not o.endswith("out")]
    else:
        overloads = [op]
    for overload in overloads:
        if torch.Tag.nondeterministic_seeded in overload.tags or overload._schema.is_mutable:
            return True
    return False


def _updates_running_stats(node, name):
    """F.batch_norm / instance_norm in training mode write their running statistics."""
    if name not in ("batch_norm", "instance_norm"):
        return False
    running = node.args[1] if len(node.args) > 1 else node.kwargs.get("running_mean")
    flag = "training" if name == "batch_norm" else "use_input_stats"
    training = node.args[5] if len(node.args) > 5 else node.kwargs.get(flag, name == "instance_norm")
    return running is not None and training is not False


def _writes_in_place(node, name):
    import operator

    if node.target is operator.setitem or node.kwargs.get("inplace") is True or "out" in node.kwargs:
        return True
    if getattr(node.target, "__module__", None) in ("_operator", "operator"):
        return name in _INPLACE_OPERATORS
    at = _inplace_position(node.target)  # F.relu(x, True)
    if at is not None and len(node.args) > at and node.args[at] is True:
        return True
    return name.endswith("_") and not name.endswith("__")


_INPLACE_OPERATORS = frozenset({"iadd", "isub", "imul", "itruediv", "ifloordiv", "imod", "ipow", "iand",
                                "ior", "ixor", "ilshift", "irshift", "imatmul", "iconcat"})
_inplace_positions = {}


def _inplace_position(fn):
    """Position of an `inplace` parameter of a torch.nn.functional function, else None."""
    if getattr(fn, "__module__", None) != "torch.nn.functional":
        return None
    if fn not in _inplace_positions:
        try:
            names = list(inspect.signature(fn).parameters)
        except (TypeError, ValueError):
            names = []
        _inplace_positions[fn] = names.index("inplace") if "inplace" in names else None
    return _inplace_positions[fn]


# ops whose result is a new tensor, never a view of an argument: `y = conv(x); y.relu_()`
# writes nowhere a re-run would see (ResNet's ReLU(inplace=True))
_FRESH_RESULT = frozenset({
    "add", "sub", "mul", "truediv", "matmul", "neg", "conv1d", "conv2d", "conv3d", "linear",
    "batch_norm", "layer_norm", "group_norm", "instance_norm", "relu", "gelu", "silu", "sigmoid",
    "tanh", "exp", "softmax", "log_softmax", "cat", "stack", "clone", "zeros_like", "ones_like",
    "empty_like", "zeros", "ones", "empty", "full", "bmm", "mm", "addmm", "max_pool2d", "avg_pool2d",
    "adaptive_avg_pool2d", "embedding", "index_select", "gather", "where", "div", "pow",
})

# random ops that are no ATen op of their own name
_RANDOM_NAMES = frozenset({"gumbel_softmax", "fractional_max_pool2d", "fractional_max_pool3d",
                           "_fractional_max_pool2d", "_fractional_max_pool3d", "rrelu"})
_random_cache = {}


def _draws_random(name):
    """A random op: its name (less a trailing `_`) is an ATen op tagged nondeterministic_seeded."""
    hit = _random_cache.get(name)
    if hit is None:
        base = name.rstrip("_")
        hit = base in _RANDOM_NAMES
        packet = getattr(torch.ops.aten, base, None) if base and not hit else None
        if isinstance(packet, torch._ops.OpOverloadPacket):
            hit = any(torch.Tag.nondeterministic_seeded in getattr(packet, o).tags for o in packet.overloads())
        _random_cache[name] = hit
    return hit
