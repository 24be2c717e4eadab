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

Autograd: when grad mode is on and an input requires grad, the original graph runs
eagerly, so autograd records ATen ops and gradients are exact (no kernel runs then).
"""
import sys

import torch
import torch.fx as fx

from ... import config
from . import codegen, environment
from .kernel_cache import kernel_cache
from .launch import Launcher
from .lowering import lower_to_aten
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
        if config.print_kernels:
            print(f"# terra_dyn triton kernel for {self.group!r}\n{source.text}", file=sys.stderr)
        self.owner.sources.setdefault(source.text, source)
        return Launcher(source, kernel, cache, interpret, target)

    def run(self, env):
        tensors = [env[n] for n in self.inputs]
        key = tuple((tuple(t.shape), t.stride(), t.dtype, t.device) if isinstance(t, torch.Tensor) else None
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
    """One lowered, partitioned graph for one input signature."""

    def __init__(self, aten_gm: fx.GraphModule, owner: "CompiledGraph"):
        self.aten_gm = aten_gm
        graph = aten_gm.graph
        self.placeholders = [n for n in graph.nodes if n.op == "placeholder"]
        self.constants = {n: getattr(aten_gm, n.target) for n in graph.nodes if n.op == "get_attr"}
        self.output = next(n for n in graph.nodes if n.op == "output")
        self.steps = [GroupStep(s, owner) if isinstance(s, FusionGroup) else s for s in partition(graph)]
        self._plan_frees()

    def _plan_frees(self):
        # drop each intermediate after its last reader so peak memory stays near eager's
        last = {}
        for i, step in enumerate(self.steps):
            members = step.group.nodes if isinstance(step, GroupStep) else [step]
            for member in members:
                for arg in member.all_input_nodes:
                    last[arg] = i
        kept = set(self.output.all_input_nodes) | set(self.placeholders) | set(self.constants)
        self.frees = [[] for _ in self.steps]
        for node, i in last.items():
            if node not in kept:
                self.frees[i].append(node)

    @property
    def groups(self):
        return [s.group for s in self.steps if isinstance(s, GroupStep)]

    def __call__(self, *args):
        env = dict(zip(self.placeholders, args))
        env.update(self.constants)
        for step, frees in zip(self.steps, self.frees):
            if isinstance(step, GroupStep):
                step.run(env)
            else:
                _run_node(step, env)
            for node in frees:
                env.pop(node, None)
        return fx.node.map_arg(self.output.args[0], env.__getitem__)


def _signature(args):
    key = []
    for a in args:
        if isinstance(a, torch.Tensor):
            key.append((tuple(a.shape), a.dtype, a.device))
        else:
            try:
                hash(a)
                key.append((type(a), a))
            except TypeError:
                key.append((type(a), id(a)))
    return tuple(key)


class CompiledGraph:
    """The result of compile_graph(gm, example_inputs); call it like gm."""

    def __init__(self, gm: fx.GraphModule, example_inputs):
        self.gm = gm
        self.notes = []
        self.sources = {}     # kernel text -> KernelSource (unique kernels built so far)
        self.programs = {}
        self._grad_noted = False
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

    def __call__(self, *args):
        if torch.is_grad_enabled() and any(isinstance(a, torch.Tensor) and a.requires_grad for a in args):
            if not self._grad_noted:
                self._grad_noted = True
                self.note("inputs require grad: graph ran eagerly so autograd records ATen ops")
            return self.gm(*args)
        return self._program(args)(*args)
