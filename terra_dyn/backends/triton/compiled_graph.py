"""The callable that `compile_graph` returns: the steps of a partitioned ATen graph, run in
order, each fusion group as a Triton kernel or, when it cannot be one, as its ATen ops.

    compiled = CompiledGraph(gm, example_inputs)
    compiled(x, w)              # same results as gm(x, w)
    compiled.notes              # one line per group that ran as ATen ops, and why
    compiled.kernel_sources     # generated Triton source of every kernel built so far

Graphs are compiled per input signature (shapes, dtypes, devices, and the values of
non-tensor inputs): make_fx specializes shapes, so a new signature lowers again. Each
group's kernel is generated at its first run, from the layouts of the tensors it reads
(strides of ATen outputs are known for sure only then).

Autograd: when grad mode is on and an input requires grad, an AutogradProgram (autograd.py)
runs the forward kernels inside a torch.autograd.Function whose backward is the compiled
VJP graph; graphs it cannot handle (input mutation, aliased outputs) run eagerly so that
autograd records ATen ops. `backward_graphs` holds the compiled VJP graphs.
"""
import operator
import sys

import torch
import torch.fx as fx

from ... import config, logs
from . import codegen, environment
from .autograd import AutogradProgram, eager_only_reason, needs_autograd
from .kernel_cache import kernel_cache
from .launch import Launcher
from .lowering import is_inplace, lower_to_aten
from .partition import FusionGroup, partition


def _run_node(node: fx.Node, env: dict):
    args = fx.node.map_arg(node.args, env.__getitem__)
    kwargs = fx.node.map_arg(node.kwargs, env.__getitem__)
    env[node] = node.target(*args, **kwargs)


class GroupStep:
    """One fusion group: a kernel per input layout, or its ATen ops where no kernel can run."""

    def __init__(self, group: FusionGroup, owner: "CompiledGraph"):
        self.group = group
        self.owner = owner
        self.inputs = group.inputs()
        self.outputs = group.outputs()
        self.variants = {}  # layout key -> Launcher, or a reason string (run as ATen ops)

    def __repr__(self):
        return f"GroupStep({self.group!r})"

    def _build(self, tensors):
        devices = {t.device for t in tensors}
        if len(devices) != 1:
            return f"inputs on several devices {sorted(map(str, devices))}"
        device = devices.pop()
        dtypes = {t.dtype for t in tensors} | {n.meta["val"].dtype for n in self.group.nodes}
        reason = environment.kernel_blocker(device, dtypes)
        if reason:
            return reason
        if any(t.numel() == 0 for t in tensors):
            return "zero-size tensors"
        layouts = {n: codegen.TensorLayout.of(t) for n, t in zip(self.inputs, tensors)}
        source = codegen.generate(self.group, layouts)
        interpret = environment.interpreting()
        target = "interpreter" if interpret else "cuda:sm_%d%d" % torch.cuda.get_device_capability(device)
        cache = kernel_cache()
        kernel = cache.load(source, interpret, target)
        logs.kernel(f"triton kernel for {self.group!r}", source.text)
        if config.print_kernels:
            print(f"# terra_dyn triton kernel for {self.group!r}\n{source.text}", file=sys.stderr)
        self.owner.sources.setdefault(source.text, source)
        return Launcher(source, kernel, cache, interpret, target)

    def launch(self, *tensors):
        """The group's outputs from its input tensors (the generated program calls this)."""
        env = dict(zip(self.inputs, tensors))
        self.run(env)
        return [env[n] for n in self.outputs]

    def run(self, env):
        tensors = [env[n] for n in self.inputs]
        key = tuple((t.shape, t.stride(), t.dtype, t.device) if isinstance(t, torch.Tensor) else None
                    for t in tensors)
        variant = self.variants.get(key)
        if variant is None:
            try:
                if not all(isinstance(t, torch.Tensor) for t in tensors):
                    raise TypeError("a group input is not a tensor")
                variant = self._build(tensors)
            except Exception as exc:
                if config.strict:
                    raise
                variant = f"kernel generation failed ({type(exc).__name__}: {exc})"
            self.variants[key] = variant
            if isinstance(variant, str):
                self.owner.note(f"{self.group!r} runs as ATen ops: {variant}")
        if isinstance(variant, Launcher):
            try:
                for node, out in zip(self.outputs, variant(tensors)):
                    env[node] = out
                return
            except Exception as exc:  # compile or launch failure on this GPU: ATen from now on
                if config.strict:
                    raise
                self.variants[key] = f"kernel failed ({type(exc).__name__}: {exc})"
                self.owner.note(f"{self.group!r} runs as ATen ops: {self.variants[key]}")
        for node in self.group.nodes:
            _run_node(node, env)


class Program:
    """One lowered, partitioned graph for one input signature, run as straight-line Python.

    The steps become one generated function (an fx.GraphModule over the ATen graph's
    constants): each fusion group is a call to its GroupStep's `launch`, each other node a
    direct ATen call, and FX's code generator drops every intermediate after its last
    reader, so peak memory stays near eager's. Walking the steps with a dictionary of
    values instead cost about 3 us per ATen call in Python (transformer block: 41 calls).

        def forward(self, arg0_1, arg1_1):
            launch = self.GroupStep_launch(arg0_1, arg1_1);  arg0_1 = None
            getitem = launch[0];  launch = None
            t = torch.ops.aten.t.default(arg1_1);  arg1_1 = None
            mm = torch.ops.aten.mm.default(getitem, t);  getitem = t = None
            return (mm,)
    """

    def __init__(self, aten_gm: fx.GraphModule, owner: "CompiledGraph"):
        self.aten_gm = aten_gm
        graph = aten_gm.graph
        self.placeholders = [n for n in graph.nodes if n.op == "placeholder"]
        self.output = next(n for n in graph.nodes if n.op == "output")
        self.steps = [GroupStep(s, owner) if isinstance(s, FusionGroup) else s for s in partition(graph)]
        self.mutates = any(is_inplace(n) for n in graph.nodes)
        self.module = self._generate()
        self.run = self.module.forward  # not the module: nn.Module.__call__ adds a few us of hook checks

    def _generate(self) -> fx.GraphModule:
        graph = fx.Graph()
        env = {}
        for node in self.aten_gm.graph.nodes:  # placeholders and constants keep their names
            if node.op in ("placeholder", "get_attr"):
                env[node] = graph.node_copy(node, env.__getitem__)
        for step in self.steps:
            if isinstance(step, GroupStep):
                call = graph.call_function(step.launch, tuple(env[n] for n in step.inputs))
                for i, node in enumerate(step.outputs):
                    env[node] = graph.call_function(operator.getitem, (call, i))
            elif step.op == "call_function":
                env[step] = graph.node_copy(step, env.__getitem__)
        graph.output(fx.node.map_arg(self.output.args[0], env.__getitem__))
        return fx.GraphModule(self.aten_gm, graph)

    @property
    def groups(self):
        return [s.group for s in self.steps if isinstance(s, GroupStep)]

    def __call__(self, *args):
        return self.run(*args)


def _signature(args):
    key = []
    for a in args:
        if isinstance(a, torch.Tensor):
            # strides too: a reshape traced on a contiguous input became a view, which a
            # transposed input of the same shape cannot take
            key.append((tuple(a.shape), a.stride(), a.dtype, a.device))
        else:
            try:
                hash(a)
                key.append((type(a), a))
            except TypeError:
                key.append((type(a), id(a)))
    return tuple(key)


class CompiledGraph:
    """The result of compile_graph(gm, example_inputs); call it like gm."""

    def __init__(self, gm: fx.GraphModule, example_inputs, notes=None):
        self.gm = gm
        self.notes = [] if notes is None else notes  # a backward graph shares its forward's notes
        self.sources = {}     # kernel text -> KernelSource (unique kernels built so far)
        self.programs = {}
        self.autograd_programs = {}
        self.backward_graphs = []
        self.trainable_attributes = any(p.requires_grad for p in gm.parameters())
        try:
            self._program(list(example_inputs))
        except Exception:
            if config.strict:
                raise
            # example inputs the lowering cannot trace (e.g. fake tensors of another mode):
            # lower again on the first real call

    def note(self, line: str):
        if line not in self.notes:
            self.notes.append(line)

    def _program(self, args):
        key = _signature(args)
        program = self.programs.get(key)
        if program is None:
            try:
                program = Program(lower_to_aten(self.gm, args), self)
            except Exception as exc:
                if config.strict:
                    raise
                self.note(f"graph runs eagerly: lowering failed ({type(exc).__name__}: {exc})")
                program = self.gm
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
        return [g for p in self.programs.values() if isinstance(p, Program) for g in p.groups]

    def __repr__(self):
        return (f"<CompiledGraph triton: {len(self.programs)} signature(s), {len(self.sources)} kernel(s), "
                f"{len(self.notes)} note(s)>")

    def describe(self) -> str:
        """A readable account for reports: each step of each signature, kernels, notes."""
        lines = [repr(self)]
        for key, program in self.programs.items():
            shapes = ", ".join(str(list(k[0])) if len(k) == 4 else repr(k[1]) for k in key)
            lines.append(f"  signature ({shapes}):")
            steps = program.steps if isinstance(program, Program) else []
            for step in steps:
                if isinstance(step, GroupStep):
                    built = [v for v in step.variants.values() if isinstance(v, Launcher)]
                    how = f"kernel {built[0].source.name} {built[0].config or ''}" if built else "not run yet"
                    lines.append(f"    {step.group!r} -> {how}")
                else:
                    lines.append(f"    aten {step.target}")
        lines += [f"  backward: {b!r}" for b in self.backward_graphs]
        lines += [f"  note: {n}" for n in self.notes]
        return "\n".join(lines)

    def _compile_backward(self, gm, example):
        backward = CompiledGraph(gm, example, notes=self.notes)
        self.backward_graphs.append(backward)
        return backward

    def _autograd_program(self, args):
        key = _signature(args) + tuple(isinstance(a, torch.Tensor) and a.requires_grad for a in args)
        program = self.autograd_programs.get(key)
        if program is None:
            forward = self._program(args)
            reason = eager_only_reason(forward, args) if isinstance(forward, Program) else "lowering failed"
            if reason:
                self.note(f"inputs require grad and {reason}: graph ran eagerly so autograd records ATen ops")
                program = self.gm
            else:
                program = AutogradProgram(self.gm, forward, args, self._compile_backward, self.note)
            self.autograd_programs[key] = program
        return program

    def __call__(self, *args):
        if self.trainable_attributes and torch.is_grad_enabled():
            # parameters held by the graph module (not passed as inputs) would get no
            # gradient from a compiled forward: run eagerly so autograd sees them
            self.note("the graph module holds parameters that require grad: graph ran eagerly")
            return self.gm(*args)
        if needs_autograd(args):
            return self._autograd_program(args)(*args)
        program = self._program(args)
        if not isinstance(program, Program) or program.mutates or config.strict:
            return program(*args)
        try:
            return program(*args)
        except Exception as exc:
            # a failure of ours (or the user's own error, which the eager run raises again):
            # the graph is functional, so running it again eagerly repeats no side effect
            self.note(f"graph ran eagerly after {type(exc).__name__}: {exc}")
            return self.gm(*args)
