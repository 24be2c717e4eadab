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
from .kernel_cache import kernel_cache
from .launch import Launcher
from ..fusion.compiled import FusedGraph
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


class CompiledGraph(FusedGraph):
    """The result of compile_graph(gm, example_inputs); call it like gm (fusion/compiled.py)."""

    label = "CompiledGraph triton"
    program_type = Program

    def lower(self, args):
        return Program(lower_to_aten(self.gm, args), self)

    def describe_step(self, program, step) -> str:
        if not isinstance(step, GroupStep):
            return f"aten {step.target}"
        built = [v for v in step.variants.values() if isinstance(v, Launcher)]
        how = f"kernel {built[0].source.name} {built[0].config or ''}" if built else "not run yet"
        return f"{step.group!r} -> {how}"
