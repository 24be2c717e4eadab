"""Training graphs as a compiled forward and a compiled backward cut from one joint graph:
the forward saves what the backward needs, so nothing (a matmul above all) runs twice.

    joint(primals, tangents) = (outputs, grads)     traced once per signature by make_fx
        forward graph:  primals -> outputs + saved  the nodes the outputs need
        backward graph: saved + tangents -> grads   every other node
    saved = the forward values (and primals) that a backward node reads

    program = JointProgram(gm, args, compile_forward, compile_backward, table)
    loss = program(x, w).sum(); loss.backward()     # gradients equal eager's

Both halves are handed to the backend's compile functions (its own: kernels for their fusion
groups, matmul and conv as ATen calls). The saved values go through
ctx.save_for_backward, so autograd checks their versions and frees them after a backward
without retain_graph, as in eager. A backward under create_graph (double backward) runs
eager autograd on the saved primals instead: the saved intermediates carry no history.

With a `Trial` (the cpu backend), once both halves are ready the program measures itself
against eager autograd: calls take turns between the compiled pair (forward + backward
timed) and eager's (the graph module run with history inside the forward, autograd.grad
through it in the backward: what eager autograd costs); once each has
`calls` times, `eager_wins` says whether eager's fastest call was faster (the caller then runs
the graph module under eager autograd).
"""
import operator
import time

import torch
import torch.fx as fx
from torch.fx.experimental.proxy_tensor import make_fx
from torch.utils import _pytree as pytree

from ... import config
from .lowering import VIEW_OPS, drop_no_op_views, is_inplace, module_classes_untouched


class _JointFunction(torch.autograd.Function):
    @staticmethod
    def forward(ctx, program, *args):
        ctx.program = program
        ctx.turn = turn = None if program.trial is None else program.trial.turn(program)
        outs, saved = program.run_forward(args, turn)
        if program.all_tensors:  # the usual case: no per-argument list to build
            ctx.non_tensors = None
            ctx.save_for_backward(*args, *saved)
        else:
            ctx.non_tensors = [None if isinstance(a, torch.Tensor) else a for a in args]
            ctx.save_for_backward(*[a if isinstance(a, torch.Tensor) else None for a in args], *saved)
        if program.non_differentiable:
            ctx.mark_non_differentiable(*[outs[i] for i in program.non_differentiable])
        return tuple(outs)

    @staticmethod
    def backward(ctx, *grads):
        saved = ctx.saved_tensors
        program = ctx.program
        count = program.nargs
        args = saved[:count] if ctx.non_tensors is None else [
            s if n is None else n for s, n in zip(saved[:count], ctx.non_tensors)]
        # autograd's engine calls this with the frame hook on: the backward's first call
        # lowers it (make_fx, functorch), which must never reach the translator
        return (None, *_backward_hook_off(program, args, saved[count:], grads, ctx.turn))


# Function.apply's Python wrapper binds default arguments (for setup_context, which
# _JointFunction does not define) and unwraps dead functorch wrappers before the C apply;
# with no functorch transform active and plain tensors only, the C apply is the same call
# (a few us less per training call: docs/CPU_BACKEND.md, session 15)
_c_apply = super(torch.autograd.Function, _JointFunction).apply


def _backward_apply(ctx, *grads):
    # BackwardCFunction.apply (what the engine calls) looks up backward/vjp and a boxed-grads
    # flag on every call: _JointFunction defines backward only, unboxed
    return _JointFunction.backward(ctx, *grads)


_JointFunction._backward_cls.apply = _backward_apply
_PLAIN_TENSORS = (torch.Tensor, torch.nn.Parameter)


def _run_backward(program, args, saved, grads, turn):
    return program.run_backward(args, saved, grads, turn)


def _hook_off(fn):
    try:
        from ..._C import DisabledCallable
    except ImportError:  # no frontend on this Python: no hook to turn off
        return fn
    return DisabledCallable(fn)


_backward_hook_off = _hook_off(_run_backward)


def _fake_outputs(gm, args):
    """gm's flat outputs on fake tensors (shapes, dtypes, requires_grad) and their spec."""
    from torch._subclasses.fake_tensor import FakeTensorMode
    mode = FakeTensorMode(allow_non_fake_inputs=True)
    fakes = [mode.from_tensor(a).requires_grad_(a.requires_grad) if isinstance(a, torch.Tensor) else a
             for a in args]
    with mode, torch.enable_grad():
        return pytree.tree_flatten(gm(*fakes))


def draws_random_numbers(node) -> bool:
    """An op tagged nondeterministic_seeded, unless its dropout probability is 0 (the CPU
    attention kernel that fusion/attention.py calls is tagged for its dropout)."""
    if torch.Tag.nondeterministic_seeded not in getattr(node.target, "tags", ()):
        return False
    arguments = [a.name for a in node.target._schema.arguments]
    if "dropout_p" not in arguments:
        return True
    index = arguments.index("dropout_p")
    p = node.args[index] if index < len(node.args) else node.kwargs.get("dropout_p", 0.0)
    return p != 0


def _unsupported_reason(forward_nodes, outputs, placeholders) -> str:
    """Why the joint graph cannot replace eager autograd ('' when it can)."""
    if any(is_inplace(n) for n in forward_nodes):
        return "the graph mutates a tensor"
    if any(draws_random_numbers(n) for n in forward_nodes):
        # a draw inside a compiled forward consumes the generator in another order than
        # eager's ops would: keep eager's order (and its masks) exactly
        return "the graph draws random numbers"
    for out in outputs:
        if not isinstance(out, fx.Node) or not isinstance(out.meta.get("val"), torch.Tensor):
            return "an output is not a tensor"
        while out.target in VIEW_OPS:  # a view of an intermediate is a new tensor to autograd
            out = out.args[0]
        if out in placeholders:
            return "an output aliases an input"
    return ""


class Unsupported(Exception):
    """The graph keeps eager autograd; the message says why."""


class Trial:
    """The compiled pair against eager autograd, `calls` timed calls each (module docstring).
    `ready()` says when the halves run their final code (the cpu backend's kernels are
    built in the background); `clock` is the process's CPU time, which other processes on
    a shared machine move less than wall time."""

    def __init__(self, calls, ready, clock=time.process_time):
        # ready(program, switched=True): both halves of `program` have their kernels built
        # (switched: and have already switched to them, so that no timed call pays that)
        self.calls, self.ready, self.clock = calls, ready, clock
        self.times = {"eager": [], "compiled": []}
        self.verdict = None  # None while running, then "eager" or "compiled"

    def turn(self, program):
        """None (no trial now) or [whose turn, seconds so far] (the forward adds its own)."""
        if self.verdict is not None or program.backward is None or not self.ready(program):
            return None
        eager, compiled = self.times["eager"], self.times["compiled"]
        return ["eager" if len(eager) < len(compiled) else "compiled", 0.0]

    def record(self, turn, seconds):
        self.times[turn].append(seconds)
        eager, compiled = self.times["eager"], self.times["compiled"]
        if min(len(eager), len(compiled)) >= self.calls:
            # each side's fastest call: load from other processes only ever adds time
            self.verdict = "eager" if min(eager) <= min(compiled) else "compiled"


class JointProgram:
    """Compiled forward and backward graphs for one input signature (module docstring);
    raises Unsupported for graphs that must keep eager autograd."""

    def __init__(self, gm, args, compile_forward, compile_backward, table, trial=None):
        self.gm = gm
        self.trial = trial
        self.diff = [i for i, a in enumerate(args) if isinstance(a, torch.Tensor) and a.requires_grad]
        flat, self.out_spec = _fake_outputs(gm, args)
        if not all(isinstance(o, torch.Tensor) for o in flat):
            raise Unsupported("an output is not a tensor")
        self.differentiable = [i for i, o in enumerate(flat) if o.requires_grad]
        self.non_differentiable = [i for i, o in enumerate(flat) if not o.requires_grad]
        self.nargs, self.all_tensors = len(args), all(isinstance(a, torch.Tensor) for a in args)
        # the outputs' structure, read once: one tensor, a flat tuple, or anything pytree rebuilds
        self.single_output = self.out_spec.is_leaf()
        self.tuple_output = self.out_spec.type is tuple and all(c.is_leaf() for c in self.out_spec.children())
        tangents = [torch.empty(flat[i].shape, dtype=flat[i].dtype) for i in self.differentiable]
        plain = [a.detach() if isinstance(a, torch.Tensor) else a for a in args]
        with module_classes_untouched():
            joint = make_fx(self._joint(len(args)), decomposition_table=table,
                            tracing_mode="fake", _allow_non_fake_inputs=True)(*plain, *tangents)
        self._split(joint, len(args), len(flat))
        self.compile_backward = compile_backward
        self.forward = compile_forward(self.forward_gm, args)
        self.backward = None  # compiled at the first backward, on its real inputs
        self._fast = [None, None]  # (guard, run) of each half once settled (_call_half)

    def __repr__(self):
        return (f"JointProgram(differentiable inputs {self.diff}, saves {len(self.saved_nodes)} values, "
                f"backward {'built' if self.backward else 'not built'})")

    @property
    def fuses_nothing(self) -> bool:
        """Both halves built and neither holds a kernel (the caller then runs eager autograd)."""
        return self.backward is not None and not (self.forward.sources or self.backward.sources)

    def _joint(self, nargs):
        gm, diff = self.gm, self.diff

        def joint(*flat):
            primals, tangents = flat[:nargs], flat[nargs:]
            with torch.enable_grad():
                leaves = [p.detach().requires_grad_(True) if i in diff else p for i, p in enumerate(primals)]
                outs = pytree.tree_leaves(gm(*leaves))
                got = torch.autograd.grad([outs[i] for i in self.differentiable], [leaves[i] for i in diff],
                                          list(tangents), allow_unused=True)
            grads = [g if g is not None else torch.zeros_like(primals[i]) for g, i in zip(got, diff)]
            return (*outs, *grads)
        return joint

    def _split(self, joint: fx.GraphModule, nargs: int, nouts: int):
        """Cut `joint` into self.forward_gm and self.backward_gm."""
        # the leaves' detaches and a weight gradient's t(t(.)) are no-ops here: the backward
        # then reads a parameter as the saved input it is, not as a saved detach of it
        drop_no_op_views(joint.graph)
        nodes = list(joint.graph.nodes)
        placeholders = [n for n in nodes if n.op == "placeholder"]
        primals, tangents = placeholders[:nargs], placeholders[nargs:]
        results = next(n for n in nodes if n.op == "output").args[0]
        outputs, grads = list(results[:nouts]), list(results[nouts:])
        after_tangents = set(tangents)
        for node in nodes:
            if any(a in after_tangents for a in node.all_input_nodes):
                after_tangents.add(node)
        needed, stack = set(), [o for o in outputs if isinstance(o, fx.Node)]
        while stack:  # the ancestors of the outputs: the forward graph
            node = stack.pop()
            if node not in needed and node.op not in ("placeholder", "output"):
                needed.add(node)
                stack.extend(node.all_input_nodes)
        for node in nodes:  # every item of a forward op's tuple (the attention kernel's
            # logsumexp, read by its backward only) is a forward value: a tuple cannot be saved
            if node.target is operator.getitem and node.args[0] in needed:
                needed.add(node)
        forward_nodes = [n for n in nodes if n in needed]
        reason = _unsupported_reason(forward_nodes, outputs, set(placeholders))
        if reason:
            raise Unsupported(reason)
        backward_nodes = [n for n in nodes if n.op not in ("placeholder", "output") and n not in needed]
        read_by_backward = {a for n in backward_nodes for a in n.all_input_nodes} | {
            g for g in grads if isinstance(g, fx.Node)}
        self.saved_primals = [i for i, p in enumerate(primals) if p in read_by_backward]
        self.saved_nodes = [n for n in forward_nodes if n in read_by_backward]
        if not all(isinstance(n.meta.get("val"), torch.Tensor) for n in self.saved_nodes):
            raise Unsupported("the backward reads a value that is not a tensor")  # save_for_backward cannot hold it
        self.forward_gm = _graph_module(joint, primals, forward_nodes, outputs + self.saved_nodes)
        self.backward_gm = _graph_module(joint, [primals[i] for i in self.saved_primals] + self.saved_nodes + tangents,
                                         backward_nodes, grads)

    @property
    def eager_wins(self) -> bool:
        """The trial measured eager autograd at least as fast as the compiled pair."""
        return self.trial is not None and self.trial.verdict == "eager"

    def waits_for_its_build(self) -> bool:
        """Both halves exist, a trial is to come and their kernels are not built yet."""
        trial = self.trial
        return (trial is not None and trial.verdict is None and self.backward is not None
                and not trial.ready(self, switched=False))

    def __call__(self, *args):
        if self.all_tensors and not torch._C._are_functorch_transforms_active() and all(
                type(a) in _PLAIN_TENSORS for a in args):
            outs = _c_apply(self, *args)
        else:
            outs = _JointFunction.apply(self, *args)
        if self.single_output:
            return outs[0]
        return outs if self.tuple_output else pytree.tree_unflatten(list(outs), self.out_spec)

    def run_forward(self, args, turn=None):
        """(outputs, saved values) of the compiled forward graph; on an eager trial turn the
        graph module's outputs with eager autograd's history kept in `turn` for the backward
        (nothing saved), so that the turn costs what eager autograd costs."""
        start = None if turn is None else self.trial.clock()
        if turn is not None and turn[0] == "eager":
            with torch.enable_grad():
                leaves = [a.detach().requires_grad_(True) if i in self.diff else a for i, a in enumerate(args)]
                outs = pytree.tree_leaves(self.gm(*leaves))
            turn += [leaves, outs]
            turn[1] += self.trial.clock() - start
            return [o.detach() for o in outs], []
        results = self._call_half(0, self.forward, args)
        if turn is not None:
            turn[1] += self.trial.clock() - start
        count = len(results) - len(self.saved_nodes)
        return results[:count], results[count:]

    def run_backward(self, args, saved, grads, turn=None):
        """Gradients of every input (None for those that need none)."""
        if torch.is_grad_enabled():  # create_graph: gradients must themselves have history
            return self._eager_backward(args, grads, create_graph=True)
        if turn is not None and turn[0] == "eager" and len(turn) < 4:
            # a second backward (retain_graph) of an eager turn: its history went with the first
            return self._eager_backward(args, grads, create_graph=False)
        if turn is not None:  # eager's backward through the turn's history; else the compiled half
            start = self.trial.clock()
            if turn[0] == "eager":
                got = self._eager_turn_backward(len(args), turn, grads)
            else:
                got = self._compiled_backward(args, saved, grads)
            self.trial.record(turn[0], turn[1] + self.trial.clock() - start)
            return got
        return self._compiled_backward(args, saved, grads)

    def _eager_turn_backward(self, nargs, turn, grads):
        """Eager autograd's backward through the history an eager turn's forward kept."""
        outs, leaves = turn.pop(), turn.pop()  # dropped here: a retained second backward recomputes
        return self._per_input(nargs, torch.autograd.grad(
            [outs[i] for i in self.differentiable], [leaves[i] for i in self.diff],
            [grads[i] for i in self.differentiable], allow_unused=True))

    def _compiled_backward(self, args, saved, grads):
        tangents = [grads[i].contiguous() for i in self.differentiable]
        inputs = [args[i] for i in self.saved_primals] + list(saved) + tangents
        try:
            if self.backward is None:
                self.backward = self.compile_backward(self.backward_gm, inputs)
            return self._per_input(len(args), self._call_half(1, self.backward, inputs))
        except Exception:
            if config.strict:
                raise
            return self._eager_backward(args, grads, create_graph=False)  # same math, ATen ops

    def _call_half(self, which, half, inputs):
        """half(*inputs), through the half's settled run function behind its exact guard once
        it has one (half.settled(): skips the compiled graph's __call__ layers)."""
        fast = self._fast[which]
        if fast is not None and not torch.is_grad_enabled() and fast[0].check(*inputs):
            try:
                return fast[1](*inputs)
            except Exception:  # noqa: BLE001 (the half's own path: its eager fallback and note)
                self._fast[which] = None
        result = half(*inputs)
        settled = getattr(half, "settled", None)
        self._fast[which] = settled() if settled is not None else None
        return result

    def _eager_backward(self, args, grads, create_graph):
        """Gradients by eager autograd through gm, run again on the saved inputs."""
        with torch.enable_grad():
            outs = pytree.tree_leaves(self.gm(*args))
            pairs = [(outs[i], grads[i]) for i in self.differentiable]
            got = torch.autograd.grad([o for o, _ in pairs], [args[i] for i in self.diff], [g for _, g in pairs],
                                      create_graph=create_graph, allow_unused=True)
        return self._per_input(len(args), got)

    def _per_input(self, nargs, grads):
        """`grads` (one per differentiable input) placed at their inputs' positions."""
        result = [None] * nargs
        for i, g in zip(self.diff, grads):
            result[i] = g
        return result


def _graph_module(joint: fx.GraphModule, inputs, body, outputs) -> fx.GraphModule:
    """A graph of `body` (nodes of `joint`, in order) over placeholders for `inputs`."""
    graph, env = fx.Graph(), {}
    for node in inputs:
        env[node] = graph.placeholder(node.name)
        env[node].meta = dict(node.meta)
    for node in body:
        env[node] = graph.node_copy(node, env.__getitem__)
    graph.output(tuple(fx.node.map_arg(tuple(outputs), env.__getitem__)))
    return fx.GraphModule(joint, graph)
