"""What every kernel backend's compiled graph does besides its kernels: one lowered Program
per input signature, the eager fallbacks, and the autograd dispatch.

    class CompiledGraph(FusedGraph):              # triton/compiled_graph.py, cpu/compiled_graph.py
        program_type = Program
        def lower(self, args): return Program(lower_to_aten(self.gm, args), self)
        def describe_step(self, program, step): return "... -> kernel ..."

    compiled = CompiledGraph(gm, example_inputs)
    compiled(x, w)      # no grad needed: the Program; grad needed: AutogradProgram or eager

A call whose arguments pass the exact guard of the last Program run (`exact_guard`) runs
that Program at once, and so does a training call (grad mode on) passing the guard of the
last settled training signature; otherwise it takes one of four paths, in this order:
  the graph module holds trainable parameters      -> eager (autograd must see them)
  an input requires grad                           -> JointProgram (joint.py: compiled forward
                                                      saving activations, compiled backward)
                                                      where the subclass saves activations,
                                                      else AutogradProgram (a backward that
                                                      recomputes forward values); eager where
                                                      neither applies, and from the call
                                                      after the first backward where neither
                                                      half of the JointProgram has a kernel
  otherwise                                        -> the signature's Program; a failure of
                                                      a functional graph runs it again eagerly
"""
import math
import operator
import time

import torch
import torch.fx as fx

from ... import config
from ..triton.autograd import AutogradProgram, eager_only_reason, needs_autograd
from . import decompositions
from .joint import JointProgram, Unsupported

try:
    from ..._C import Guard
except ImportError:  # no C core on this Python: every call takes the signature path
    Guard = None
try:
    from ..._tensor_check import GraphEntry
except ImportError:  # no C++ module: `entry` is the compiled graph itself
    GraphEntry = None

_VALUE_TYPES = (bool, int, float, str, type(None))


def exact_guard(args):
    """A C Guard that passes exactly for arguments of `args`'s signature: tensors of the same
    type, dtype, device, sizes, strides and requires_grad, equal plain Python values (a few
    ns a tensor, against ~1 us a tensor to build the signature key); None where it cannot."""
    if Guard is None:
        return None
    checks = []
    for i, a in enumerate(args):
        if isinstance(a, torch.Tensor):
            checks.append(("tensor", i, type(a), a.dtype, a.device, tuple(a.shape), a.stride(), a.requires_grad))
        elif type(a) in _VALUE_TYPES:
            checks += [("type", i, type(a)), ("eq", i, a)]
        else:
            return None
    return Guard(checks)


def signature(args, with_type=False) -> tuple:
    """The key of a Program: shapes, strides, dtypes and devices of tensors (a reshape traced
    on a contiguous input became a view, which a transposed input cannot take), their types
    if `with_type` (a backend that runs fake tensors differently), and the values of
    everything else."""
    key = []
    for a in args:
        if isinstance(a, torch.Tensor):
            key.append((a.shape, a.stride(), a.dtype, a.device) + ((type(a),) if with_type else ()))
        else:
            try:
                hash(a)
                key.append((type(a), a))
            except TypeError:
                key.append((type(a), id(a)))
    return tuple(key)


_DROPOUTS = {torch.nn.functional.dropout, torch.nn.functional.dropout1d, torch.nn.functional.dropout2d,
             torch.nn.functional.dropout3d, torch.nn.functional.alpha_dropout,
             torch.nn.functional.feature_alpha_dropout}


def _draws(node) -> bool:
    """F.dropout(x, p, training) with a literal p > 0 and training True (its defaults: 0.5, True)."""
    if node.target not in _DROPOUTS:
        return False
    p = node.args[1] if len(node.args) > 1 else node.kwargs.get("p", 0.5)
    training = node.args[2] if len(node.args) > 2 else node.kwargs.get("training", True)
    return isinstance(p, (int, float)) and p > 0 and training is True


def joint_refusal(gm: fx.GraphModule) -> str:
    """Why the joint graph of the user's graph would be refused (joint.py), read from the graph
    itself ('' when not sure): an in-place op (`x.add_(y)`, `torch.relu_(x)`, `inplace=True`,
    `x[i] = v`) stays one in the joint graph, and a dropout draws (traced, its bernoulli_ is
    in-place too). Finding out by make_fx took seconds for a big graph (bert's 142-node
    training graph, with dropout: 1.5-2.5 s; gpt2's 6-node one 154 ms). A graph not caught
    here is traced and checked as before."""
    for node in gm.graph.nodes:
        if node.op == "call_method":
            name = node.target
        elif node.op == "call_function":
            if node.target is operator.setitem or node.kwargs.get("inplace") is True:
                return "the graph mutates a tensor"
            if _draws(node):
                return "the graph draws random numbers"
            name = getattr(node.target, "__name__", "")
        else:
            continue
        if name.endswith("_") and not name.endswith("__") and name != "requires_grad_":
            return "the graph mutates a tensor"
    return ""


class FusedGraph:
    """A backend's compile_graph result; subclasses say how to lower and how to describe."""

    label = "compiled graph"
    program_type = type(None)
    keys_by_type = False  # True: fake and real tensors of one shape get separate Programs
    saves_activations = False  # True: training graphs get a JointProgram

    def __init__(self, gm: fx.GraphModule, example_inputs, notes=None, lower_now=True):
        self.gm = gm
        self.notes = [] if notes is None else notes  # a backward graph shares its forward's notes
        self.sources = {}     # kernel text -> kernel source (unique kernels built so far)
        self.programs = {}
        self.autograd_programs = {}
        self.backward_graphs = []
        self.guards = {}  # id(program) -> its exact guard (None: it has none)
        # what a backend hands the frontend: a C GraphEntry running `last` behind its guard
        # without this class's Python __call__ (1.5-2.5 us of a small softmax), else self
        self.entry = self if GraphEntry is None else GraphEntry(self, self._run_failed)
        self._last = None
        self.last = None  # (guard, program.run, grad mode must be off) of the last Program run
        self.last_training = None  # (guard, program) of the last settled training signature
        self.training_guards = {}  # training signature key -> its exact guard (None: it has none)
        self.trainable_attributes = any(p.requires_grad for p in gm.parameters())
        self.lowered = False  # a lowering was tried (Program, JointProgram)
        self.lowerings = 0  # signatures lowered so far
        self.joint_refused = ""  # why a joint graph cannot work for this graph (Unsupported)
        self.unlowered_calls = {}  # signature key -> calls so far, while not worth lowering
        self.unlowered_seconds = {}  # signature key -> graph-module seconds, past MAX_LOWERINGS
        try:
            if lower_now and not needs_autograd(example_inputs):  # training calls build a JointProgram
                self._program(list(example_inputs))
        except Exception:
            if config.strict:
                raise
            # example inputs the lowering cannot trace (e.g. fake tensors of another mode):
            # lower again on the first real call

    # -- what a subclass defines ---------------------------------------------------------
    def lower(self, args):
        """The Program for `args` (or self.gm to run eagerly); may raise."""
        raise NotImplementedError

    def describe_step(self, program, step) -> str:
        raise NotImplementedError

    def decomposition_table(self) -> dict:
        """The decompositions make_fx applies when lowering (and tracing a joint graph)."""
        return decompositions.table()

    def graph_to_lower(self) -> fx.GraphModule:
        """The graph that lowerings and joint graphs trace: self.gm, or a subclass's rewrite
        of it computing the same values."""
        return self.gm

    # -- shared ----------------------------------------------------------------------------
    def note(self, line: str):
        if line not in self.notes:
            self.notes.append(line)

    # Calls of a signature (after the graph's first) before it is lowered, and signatures
    # lowered per graph at most (None: no limit). The cpu backend sets 2 and 4: a Python
    # value that changes every call (dcgan passes a float from .item() into its graph)
    # made a new signature per call, each paying make_fx + g++ (1.3 s a step) for a
    # Program never reused, and faster_rcnn's changing shapes paid it per shape.
    LOWER_AT_CALL = 1
    MAX_LOWERINGS = None

    def payback_seconds(self) -> float:
        """Graph-module time on one signature past MAX_LOWERINGS that pays for lowering it
        anyway (a subclass that measures its lowerings says; inf: never)."""
        return math.inf

    def _worth_lowering(self, key, training=False) -> bool:
        if not self.lowered:
            return True
        if len(self.unlowered_calls) > 1024:  # values that never repeat: forget them
            self.unlowered_calls.clear()
            self.unlowered_seconds.clear()
        if self.MAX_LOWERINGS is not None and self.lowerings >= self.MAX_LOWERINGS:
            # a function called on a few big sizes (benchmarks/cpu_kernels.py: its sixth
            # size, 16M elements, ran the graph module at eager's 486 ms against 4 ms for
            # 4M) still gets kernels for a signature whose own eager calls paid for them
            if self.unlowered_seconds.get(key, 0.0) >= self.payback_seconds():
                return True
            self.note(f"more than {self.MAX_LOWERINGS} signatures: new ones run the graph module")
            return False
        calls = self.unlowered_calls[key] = self.unlowered_calls.get(key, 0) + 1
        return calls >= self.LOWER_AT_CALL

    def _timed_graph_module(self, key, args=None):
        """self.gm's forward, adding each call's time to `key`'s unlowered seconds (`args`:
        the call's arguments, for a subclass that remembers them)."""
        forward = self.gm.forward  # not nn.Module.__call__: a few us a call

        def run(*args):
            start = time.perf_counter()
            try:
                return forward(*args)
            finally:
                self.unlowered_seconds[key] = self.unlowered_seconds.get(key, 0.0) + time.perf_counter() - start
        run.runs_graph_module = True  # an error is the user's own: never run it again
        return run

    def signature_key(self, args, training=False):
        """The key of `args`'s Program (training: and of which inputs require grad)."""
        key = signature(args, self.keys_by_type)
        return key + tuple(isinstance(a, torch.Tensor) and a.requires_grad for a in args) if training else key

    def _program(self, args):
        key = self.signature_key(args)
        program = self.programs.get(key)
        if program is None:
            if not self._worth_lowering(key):
                return self._timed_graph_module(key, args)
            try:
                program = self.lower(args)
                paid = isinstance(program, self.program_type)  # not a cheap "run gm" (fake inputs)
            except Exception as exc:
                if config.strict:
                    raise
                self.note(f"graph runs eagerly: lowering failed ({type(exc).__name__}: {exc})")
                program, paid = self.gm, True
            self.lowered |= paid
            self.lowerings += paid
            self.programs[key] = program
        return program

    @property
    def kernel_sources(self) -> list:
        return [s.text for s in self.sources.values()]

    @property
    def kernels(self) -> list:
        return list(self.sources.values())

    @property
    def groups(self) -> list:
        return [g for p in self.programs.values() if isinstance(p, self.program_type) for g in p.groups]

    def __repr__(self):
        return (f"<{self.label}: {len(self.programs)} signature(s), {len(self.sources)} kernel(s), "
                f"{len(self.notes)} note(s)>")

    def describe(self) -> str:
        """A readable account for reports: each step of each signature, kernels, notes."""
        lines = [repr(self)]
        for key, program in self.programs.items():
            shapes = ", ".join(repr(k[1]) if isinstance(k[0], type) else str(list(k[0])) for k in key)
            lines.append(f"  signature ({shapes}):")
            for step in (program.steps if isinstance(program, self.program_type) else []):
                lines.append("    " + self.describe_step(program, step))
        lines += [f"  autograd: {p!r}" for p in self.autograd_programs.values() if p is not self.gm]
        lines += [f"  backward: {b!r}" for b in self.backward_graphs]
        lines += [f"  note: {n}" for n in self.notes]
        return "\n".join(lines)

    def _half(self, gm, example):
        """A compiled graph for a forward or backward half of a training graph."""
        return type(self)(gm, example, notes=self.notes)

    def _compile_backward(self, gm, example):
        backward = self._half(gm, example)
        self.backward_graphs.append(backward)
        return backward

    def _autograd_program(self, args):
        key = self.signature_key(args, training=True)
        program = self.autograd_programs.get(key)
        if isinstance(program, JointProgram) and program.fuses_nothing:
            # no kernel in either half: the pair would only add an autograd.Function, the
            # saved-value bookkeeping and two graphs' calls to the user's own ops (a small
            # MLP's training step: 0.77x eager), so eager autograd runs the graph module
            self.note("training graph without kernels: runs eagerly (autograd records the graph module's ops)")
            program = self.autograd_programs[key] = self.gm
        if program is None and not self._worth_lowering(key, training=True):
            return self._timed_graph_module(key, args)
        if program is None and self.saves_activations:
            program = self._joint_program(args)
            self.lowered = True
            self.lowerings += 1
            self.autograd_programs[key] = program
        if program is None:
            forward = self._program(args)
            is_program = isinstance(forward, self.program_type)
            reason = eager_only_reason(forward, args) if is_program else "lowering failed"
            if reason:
                self.note(f"inputs require grad and {reason}: graph ran eagerly so autograd records ATen ops")
                program = self.gm
            else:
                program = AutogradProgram(self.gm, forward, args, self._compile_backward, self.note)
            self.autograd_programs[key] = program
        if not (isinstance(program, JointProgram) and program.backward is None):
            self._remember_training(key, args, program)
        return program

    def _eager_from_now(self, program):
        """`program`'s trial measured eager autograd faster: its signature runs gm from now."""
        eager, compiled = (min(t) * 1e6 for t in program.trial.times.values())
        self.note(f"training graph: eager autograd measured faster than the compiled pair ({eager:.0f} us "
                  f"against {compiled:.0f} us a forward + backward): runs eagerly")
        self.autograd_programs = {k: (self.gm if p is program else p) for k, p in self.autograd_programs.items()}
        if self.last_training is not None and self.last_training[1] is program:
            self.last_training = (self.last_training[0], self.gm)
        return self.gm

    def _remember_training(self, key, args, program):
        """A settled program of a training signature (eager, or a pair whose backward is
        built) runs behind its exact guard from the next call: building the signature key
        costs about 1 us a tensor, a training graph's inputs are every parameter."""
        guard = self.training_guards.get(key, False)
        if guard is False:
            guard = self.training_guards[key] = exact_guard(args)
        self.last_training = None if guard is None else (guard, program)

    def _joint_program(self, args):
        if not self.joint_refused and joint_refusal(self.gm):
            self.joint_refused = joint_refusal(self.gm)  # joint.py's reason, without a make_fx
            self.note(f"inputs require grad and {self.joint_refused}: graph ran eagerly so autograd records ATen ops")
        if self.joint_refused:  # the graph's own structure (a mutation, a random draw): no retrace
            return self.gm
        try:
            return JointProgram(self.graph_to_lower(), args, self._compile_forward, self._compile_backward,
                                self.decomposition_table(), self.joint_trial())
        except Exception as exc:
            if config.strict and not isinstance(exc, Unsupported):
                raise
            if isinstance(exc, Unsupported):
                self.joint_refused = why = str(exc)
            else:
                why = f"the joint graph failed ({type(exc).__name__}: {exc})"
            self.note(f"inputs require grad and {why}: graph ran eagerly so autograd records ATen ops")
            return self.gm

    def joint_trial(self):
        """A joint.Trial for a new JointProgram (the pair measured against eager autograd),
        or None: the pair stays."""
        return None

    def _compile_forward(self, gm, example):
        return self._half(gm, example)

    def replace_run(self, old, new):
        """A Program's run function changed from `old` to `new` (its kernels were built in
        the background): the exact-guard fast path calls the new one from now on."""
        last = self.last
        if last is not None and last[1] == old:
            self.last = (last[0], new, last[2])

    @property
    def last(self):
        return self._last

    @last.setter
    def last(self, value):
        self._last = value
        if self.entry is not self:
            self.entry.set(*((value[0].check, value[1], value[2]) if value is not None else (None, None, False)))

    def _run_failed(self, *args):
        """The entry's fast path raised: forget it and take the signature path (as __call__'s)."""
        self.last = None
        return self(*args)

    def _remember(self, args, program):
        """Make `program` the one the next call tries first, behind its exact guard."""
        guard = self.guards.get(id(program), False)
        if guard is False:
            guard = self.guards[id(program)] = exact_guard(args)
        if guard is not None:
            grad_off = self.trainable_attributes or any(isinstance(a, torch.Tensor) and a.requires_grad for a in args)
            self.last = (guard, program.run, grad_off)

    def __call__(self, *args):
        last = self.last
        if last is not None and last[0].check(*args) and not (last[2] and torch.is_grad_enabled()):
            try:
                return last[1](*args)
            except Exception:  # noqa: BLE001 (the path below runs it again: eager fallback, note)
                self.last = None
        training = self.last_training
        if training is not None and torch.is_grad_enabled() and training[0].check(*args):
            return self._run_training(training[1], args)
        if self.trainable_attributes and torch.is_grad_enabled():
            # parameters held by the graph module (not passed as inputs) would get no
            # gradient from a compiled forward: run eagerly so autograd sees them
            self.note("the graph module holds parameters that require grad: graph ran eagerly")
            return self.gm.forward(*args)
        if needs_autograd(args):
            return self._run_training(self._autograd_program(args), args)
        program = self._program(args)
        if not isinstance(program, self.program_type) or program.mutates or config.strict:
            return program(*args)
        try:
            result = program(*args)
        except Exception as exc:
            # a failure of ours (or the user's own error, which the eager run raises again):
            # the graph is functional, so running it again eagerly repeats no side effect
            self.note(f"graph ran eagerly after {type(exc).__name__}: {exc}")
            return self.gm(*args)
        self._remember(args, program)
        return result

    def _run_training(self, program, args):
        if isinstance(program, JointProgram):
            if program.eager_wins:
                program = self._eager_from_now(program)
            elif program.waits_for_its_build():
                # its halves' kernels are still building in the background: eager autograd
                # meanwhile (the halves' ATen steps would only add the pair's overhead to it)
                return self.gm.forward(*args)
        if program is self.gm:
            return self.gm.forward(*args)  # not nn.Module.__call__: a few us a call
        if getattr(program, "runs_graph_module", False):
            return program(*args)
        if config.strict:
            return program(*args)
        try:
            return program(*args)
        except Exception as exc:
            # such graphs mutate nothing (joint.py, triton/autograd.py refuse those), so
            # running it again eagerly repeats no side effect; the user's own error recurs
            self.note(f"graph ran eagerly (autograd) after {type(exc).__name__}: {exc}")
            self.autograd_programs = {k: (self.gm if p is program else p) for k, p in self.autograd_programs.items()}
            self.last_training = None
            return self.gm(*args)
