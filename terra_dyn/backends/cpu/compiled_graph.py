"""The callable that the cpu backend returns: per input signature, the lowered graph
rewritten so that each fusion group worth a kernel is one call to generated C++.

    compiled = CpuCompiledGraph(gm, example_inputs)
    compiled(x, w)                # same results as gm(x, w)
    compiled.notes                # one line per group that ran as ATen ops for a reason
    compiled.kernel_sources       # generated C++ of every kernel
    print(compiled.describe())    # each step: kernel or ATen, and why

Per signature (shapes, strides, dtypes of tensors; values of other inputs), `Program`:
    lower_to_aten -> partition -> decide each group (kernel, or ATen when it is tiny, a
    single op eager already runs well, or blocked) -> generate every kernel from the layouts
    the lowering predicted -> one shared object for the whole graph (compiler.py) ->
    a new FX graph where a kernel group is `kernel(inputs...)` + getitems, the rest ATen
    nodes -> its generated `forward` is what runs (straight-line Python, no interpreter;
    ATen steps call torch's own bindings, fast_calls.py).

A group that cannot be a kernel (no compiler, a compile error, an unsupported dtype,
device or layout) runs as its ATen ops with one note; config.strict raises instead.
Autograd: graphs whose inputs require grad run as a fusion/joint.py JointProgram: a
compiled forward that saves activations and a compiled backward, both this class.
"""
import functools
import math
import operator
import sys
import time

import torch
import torch.fx as fx

from ... import config
from ..fusion import decompositions
from ..fusion.attention import fuse_attention
from ..fusion.lowering import drop_no_op_views, is_inplace, lower_to_aten
from ..fusion.partition import FusionGroup, partition
from ..fusion.compiled import FusedGraph, exact_guard, needs_autograd
from ..fusion.joint import Trial
from . import codegen, composite_steps, fast_calls, read_through, templates
from .column import XBLOCK, is_column
from .compiler import CompileError, PendingBuild, library_cache
from .kernel import CpuKernel, packed_entry


def _size_and_blocker(group: FusionGroup) -> str:
    """'' when `group` should be a kernel, else why it runs as ATen ops."""
    vals = [n.meta["val"] for n in group.nodes] + [n.meta.get("val") for n in group.inputs()]
    for v in vals:
        if not isinstance(v, torch.Tensor):
            return "an input is not a tensor"
        if v.device.type != "cpu":
            return f"device {v.device} is not the CPU"
        if v.layout != torch.strided:
            return f"layout {v.layout} is not strided"
    return ""


def _performance_reason(group: FusionGroup) -> str:
    """Why eager's own op is at least as fast here ('' when a kernel pays).

    A group of several ops is a kernel at any size: it replaces several ATen calls (a GELU
    is six after decomposition) by one call of about the cost of one. A single op is
    already one eager call with a vectorized kernel: nothing to gain."""
    elements = math.prod(group.full_shape)
    if elements == 0:
        return "zero-size tensors"
    if config.cpu_min_elements <= 0:
        return ""  # every group a kernel (tests)
    if len(group.nodes) == 1:
        return "a single op: nothing to fuse"
    rows = elements // max(math.prod(group.full_shape[d] for d in group.reduce_dims), 1)
    if is_column(group) and rows < XBLOCK and elements >= config.cpu_min_elements:
        # a column kernel vectorizes across rows: with few of them, eager's split reduction wins
        return f"a reduction over outer dims keeping only {rows} rows"
    return ""


# GELU's erf form (and its gradient) is decomposed into a kernel up to this many elements:
# eager's CPU gelu / gelu_backward cost ~15 / ~28 us a call on any small tensor (32 floats
# as 1024), our kernel 7 / 12 us on 1024 floats (with its call); they tie near 64K and
# eager's one-pass kernel wins above (1M: docs/CPU_BACKEND.md, session 15)
GELU_ERF_MAX_ELEMENTS = 1 << 16


def _gelu_decomposition(decomposition):
    """`decomposition` for GELU's tanh form at any size and its erf form on tensors of at
    most GELU_ERF_MAX_ELEMENTS; otherwise NotImplemented, which make_fx reads as "keep the
    op" (lower_to_aten). The tensor is the last one of the arguments (gelu's x, gelu_backward's x)."""
    def decompose(*args, **kwargs):
        approximate = kwargs.get("approximate", args[-1] if len(args) > 1 and isinstance(args[-1], str) else "none")
        numel = [a for a in args if isinstance(a, torch.Tensor)][-1].numel()
        if approximate != "tanh" and not (isinstance(numel, int) and numel <= GELU_ERF_MAX_ELEMENTS):
            return NotImplemented
        return decomposition(*args, **kwargs)
    return decompose


LAYER_NORM_ONE_PASS = True  # docs/CPU_BACKEND.md, sessions 17 (float32) and 19 (float64)


def decomposition_table() -> dict:
    """The shared decompositions, with GELU and its gradient decomposed in the tanh form and,
    on small tensors, the erf form (GELU_ERF_MAX_ELEMENTS). Eager's fused CPU GELU kernel in
    the erf form (one pass, a cheap vector erf) beats our decomposed chain on big tensors,
    whose libmvec erff costs more (1M floats, 1 thread: eager 0.40 ms, decomposed 0.74 ms);
    its tanh form is scalar in eager and 3.7x slower than the fused decomposition (1.86 ms
    against 0.51 ms; docs/CPU_BACKEND.md)."""
    aten = torch.ops.aten
    table = dict(decompositions.table())
    for op in (aten.gelu.default, aten.gelu_backward.default):
        table[op] = _gelu_decomposition(table[op])
    if LAYER_NORM_ONE_PASS:  # statistics in one pass (decompositions.row_moments_one_pass; Triton keeps two)
        table[aten.native_layer_norm.default] = functools.partial(decompositions.native_layer_norm, one_pass=True)
    # Layer norm's backward stays eager's kernel: decomposed, it became a row kernel plus
    # two sums over the outer dims reading a materialized grad * x_hat; eager's kernel
    # computes the weight and bias gradients beside the row pass. [64, 64, 256], 1 thread,
    # thread time: ours 2.39 ms against eager's 1.05 (b1: 68 us against 34 us); without an
    # input gradient 0.95 against 0.56 ms (docs/CPU_BACKEND.md, session 12).
    table.pop(aten.native_layer_norm_backward.default, None)
    return table


def _layout_of(node) -> codegen.TensorLayout:
    return codegen.TensorLayout.of(node.meta["val"])


def _output_layout(node) -> codegen.TensorLayout:
    val = node.meta["val"]
    shape = tuple(int(s) for s in val.shape)
    return codegen.TensorLayout(shape, codegen.dense_strides(shape, tuple(int(s) for s in val.stride())), val.dtype)


def _aten_callable(step, inputs):
    """The step's nodes (a group's, or one node a template replaces) as a function of
    `inputs`, run by eager ATen ops."""
    graph, env = fx.Graph(), {}
    for node in inputs:
        env[node] = graph.placeholder(node.name)
    if isinstance(step, fx.Node):
        graph.output(graph.node_copy(step, env.__getitem__))
        return fx.GraphModule(torch.nn.Module(), graph).forward
    def value(node):
        if node not in env:  # a view the kernel reads through its base (read_through.py)
            env[node] = graph.node_copy(node, value)
        return env[node]

    for node in step.nodes:
        env[node] = graph.node_copy(node, value)
    outs = [env[n] for n in step.outputs()]
    graph.output(outs[0] if len(outs) == 1 else tuple(outs))
    return fx.GraphModule(torch.nn.Module(), graph).forward


def _whole_graph_kernel(graph: fx.Graph, kernels, out_index, forward):
    """A graph that is one kernel on its inputs (a softmax, a layer norm, a GELU): that
    kernel's KernelCall returning the graph's output tuple, which the Program then calls
    instead of the graph's generated forward (one Python frame, ~0.2-0.3 us of a 3 us
    call); `forward` runs any call it cannot make itself. None for any other graph."""
    calls = [n for n in graph.nodes if n.op == "call_function" and n.target is not operator.getitem]
    placeholders = [n for n in graph.nodes if n.op == "placeholder"]
    output = next(n for n in graph.nodes if n.op == "output").args[0]
    if len(kernels) != 1 or len(calls) != 1 or calls[0].target is not kernels[0].call or \
            list(calls[0].args) != placeholders or calls[0].kwargs:
        return None
    if output is calls[0] and len(kernels[0].source.outputs) == 1:
        return kernels[0].call  # the graph returns what the kernel's own call returns
    if type(output) is not tuple or not output or any(o not in out_index for o in output):
        return None
    return kernels[0].whole_graph_call([out_index[o] for o in output], forward)


class Program:
    """One lowered graph for one input signature, rewritten to call kernels."""

    def __init__(self, aten_gm: fx.GraphModule, owner: "CpuCompiledGraph", plain=None):
        # plain: the graph aten_gm was lowered from (the owner's, or its attention fused)
        self.aten_gm = aten_gm
        self.owner = owner
        graph = aten_gm.graph
        self.mutates = any(is_inplace(n) for n in graph.nodes)
        if not self.mutates:
            drop_no_op_views(graph)  # t(t(x)), detach(x) (lowering.py)
            composite_steps.use_composites(graph)  # linear, matmul: one call each
            composite_steps.fold_constants(aten_gm, graph)  # a causal mask: made once
            aten_gm.recompile()
        self.steps = partition(graph)
        self.decisions = {}  # group -> KernelSource, or the reason it runs as ATen ops
        self.read_through = set()  # view steps left out: kernels read them through their bases
        kernels = {}
        for group in [s for s in self.steps if isinstance(s, FusionGroup)]:
            reason = _size_and_blocker(group)
            if reason:
                owner.note(f"{group!r} runs as ATen ops: {reason}")
            reason = reason or _performance_reason(group)
            if reason:
                self.decisions[group] = reason
                continue
            try:
                source = codegen.generate(group, {n: _layout_of(n) for n in group.inputs()},
                                          [_output_layout(n) for n in group.outputs()])
            except Exception as exc:
                if config.strict:
                    raise
                self.decisions[group] = f"kernel generation failed ({type(exc).__name__}: {exc})"
                owner.note(f"{group!r} runs as ATen ops: {self.decisions[group]}")
                continue
            self.decisions[group] = source
            kernels[group] = source
        for index, node in enumerate(self.steps):  # single ops with a hand-written kernel (templates.py)
            source = isinstance(node, fx.Node) and templates.layer_norm_backward(
                node, _layout_of, f"layer_norm_backward_{index}")
            if source:
                self.decisions[node] = kernels[node] = source
        # without kernels the user's own graph is faster than its ATen form (fewer, fused
        # ops such as linear; no decompositions): run it, as the interpreter backend does
        # (a joint graph's half is itself ATen: its steps then call torch's bindings)
        plain = owner.gm if plain is None else plain
        self.eager_run = fast_calls.fast_module(plain).forward
        self.pending = None  # a PendingBuild while g++ builds the kernels in the background
        # a measuring owner ("cpu" by name, "auto") keeps this signature's kernels only if
        # they measured faster than the graph module: once built, its calls alternate
        # between the two until each side has TRIAL_CALLS, then the faster runs from then on
        self.trial = ([], [])  # (graph module, kernels) seconds a call
        self.verdict = None  # "kernels" or "eager" once the trial is over
        library = self._build(list(kernels.values()), owner.asynchronous)
        if isinstance(library, PendingBuild):
            # calls run eagerly until the build is done (each polls it, a few us): the
            # first call does not wait for g++ (docs/CPU_BACKEND.md, first call)
            self.pending, self.gm, self.run = library, None, self._until_built
            return
        self._finish(library)

    def _finish(self, library):
        self.gm = self._rewrite(self.aten_gm.graph, library)
        self.run = self.forward if library is not None else self.eager_run
        if library is not None and self.owner.measures:
            self.run = self._trial_call  # the rewrite above is not in any timed call

    def _trial_call(self, *args):
        # per signature: the frontend's one symbolic graph for a 1K and a 16M chain has one
        # Program per size, and a verdict at 1K (call costs) says nothing about 16M (memory)
        eager, lowered = self.trial
        run_eager = len(eager) < len(lowered)
        clock = self.owner.clock
        start = clock()
        result = self.eager_run(*args) if run_eager else self.forward(*args)
        (eager if run_eager else lowered).append(clock() - start)
        if len(eager) >= self.owner.TRIAL_CALLS:
            self._end_trial(min(eager), min(lowered))
        return result

    def _end_trial(self, eager, lowered):
        """Each side's fastest call (load from other processes only ever adds time)."""
        old, self.verdict = self.run, "eager" if lowered >= eager else "kernels"
        self.run = self.eager_run if self.verdict == "eager" else self.forward
        if self.verdict == "eager":
            self.owner.note(f"kernels measured slower than the graph module ({lowered * 1e6:.0f} us against "
                            f"{eager * 1e6:.0f} us a call): the signature runs eagerly")
        self.owner.replace_run(old, self.run)

    def _until_built(self, *args):
        if not self.pending.done():
            return self.eager_run(*args)
        pending, self.pending = self.pending, None
        self.run = self.eager_run  # stays so if the build's error is raised (config.strict)
        self._finish(self._loaded(pending.result))
        self.owner.replace_run(self._until_built, self.run)
        return self.run(*args)

    def _build(self, sources, asynchronous=False):
        if not sources:
            return None
        text = "\n".join(s.text + packed_entry(s) for s in sources)
        if config.print_kernels:
            print(f"// terra_dyn cpu kernels\n{text}", file=sys.stderr)
        hint = sources[0].name if len(sources) == 1 else f"graph_{len(sources)}_kernels"
        cache = library_cache()
        self.sources = sources
        if asynchronous:
            library = self._loaded(lambda: cache.build_module_async(text, hint))
            if isinstance(library, PendingBuild):
                for source in sources:  # kernels to come: JointProgram.fuses_nothing must not drop them
                    self.owner.sources.setdefault(source.text, source)
            return library
        return self._loaded(lambda: cache.build_module(text, hint))

    def _loaded(self, build):
        """build()'s library, or None (notes say why) when it failed."""
        try:
            library = build()
        except (CompileError, OSError) as exc:
            if config.strict:
                raise
            for group, source in list(self.decisions.items()):
                if isinstance(source, codegen.KernelSource):
                    self.decisions[group] = f"no kernel: {str(exc).splitlines()[0][:300]}"
                    self.owner.note(f"{group!r} runs as ATen ops: {self.decisions[group]}")
                    self.owner.sources.pop(source.text, None)
            return None
        for source in ([] if isinstance(library, PendingBuild) else self.sources):
            self.owner.sources.setdefault(source.text, source)
        return library

    def _rewrite(self, graph: fx.Graph, library) -> fx.GraphModule:
        """The graph calling `library`'s kernels for the groups that have one."""
        new, env = fx.Graph(), {}
        made, out_index = [], {}  # kernels called; node of a kernel's output -> its index
        grouped = {n for s in self.steps if isinstance(s, FusionGroup) for n in s.nodes}
        for node in graph.nodes:
            if node.op in ("placeholder", "get_attr"):
                env[node] = new.node_copy(node, env.__getitem__)
        for step in self.steps:
            source = self.decisions.get(step)
            if isinstance(source, codegen.KernelSource) and library is not None:
                # strides predicted for outputs of ATen steps are checked at each call
                checked = [i for i, n in enumerate(source.inputs)
                           if n.op == "call_function" and n not in grouped]
                kernel = CpuKernel(source, library, _aten_callable(step, source.inputs), checked, self.owner.note)
                call = new.call_function(kernel.call, tuple(env[n] for n in source.inputs))
                made.append(kernel)
                if isinstance(step, fx.Node):  # a template: one op, its own result structure
                    env[step] = call
                elif len(source.outputs) == 1:
                    env[source.outputs[0]] = call
                    out_index[call] = 0
                else:
                    for i, node in enumerate(source.outputs):
                        env[node] = new.call_function(operator.getitem, (call, i))
                        out_index[env[node]] = i
            else:
                for node in (step.nodes if isinstance(step, FusionGroup) else [step]):
                    env[node] = new.node_copy(node, env.__getitem__)
        output = next(n for n in graph.nodes if n.op == "output")
        new.output(fx.node.map_arg(output.args[0], env.__getitem__))
        copies = {copy: node for node, copy in env.items()}
        for node in reversed(list(new.nodes)):  # views that kernels read through their bases
            if node.op == "call_function" and node.target in read_through.VIEWS and not node.users:
                new.erase_node(node)
                self.read_through.add(copies.get(node))
        fast_calls.use_bindings(new)  # ATen steps call torch.addmm, x.view... (fast_calls.py)
        gm = fx.GraphModule(self.aten_gm, new)
        self.forward = _whole_graph_kernel(new, made, out_index, gm.forward) or gm.forward
        return gm

    def __call__(self, *args):
        return self.run(*args)

    @property
    def groups(self):
        return [s for s in self.steps if isinstance(s, FusionGroup)]


_PLAIN = (torch.Tensor, torch.nn.Parameter)


class CpuCompiledGraph(FusedGraph):
    """The result of compile_graph(gm, example_inputs); call it like gm (fusion/compiled.py)."""

    label = "CpuCompiledGraph"
    program_type = Program
    keys_by_type = True  # fake example inputs run the graph module; real ones get kernels
    saves_activations = True
    LOWER_AT_CALL = 2  # fusion/compiled.py: signatures that never repeat are not lowered
    MAX_LOWERINGS = 4

    # With `payback`, a graph runs eagerly until its eager run time adds up to PAYBACK x
    # what lowering it would cost, and then a signature is lowered once its own eager time
    # adds up to that: a lowering that saves nothing then costs at most the time the graph
    # ran (a rent-or-buy bound), and graphs run a few times, or cheap per call (the ten
    # programs' small graphs, recompiled every step or two, faster_rcnn's per-image
    # shapes), never pay make_fx + g++ for nothing. The cost is estimated per graph from
    # its node count and what lowerings measured in this process: yolov3's 237-node
    # training graph took 5.6 s (joint make_fx 2.8 s + forward lowering 2.8 s), a 10-node
    # chain ~0.1 s; one mean for all graphs (0.25 x, before) lowered the big one after 50 ms
    # of eager time and stalled a step for seconds.
    PAYBACK = 1.0
    # seconds per graph node, moving averages updated as lowerings run here: "lower" (make_fx
    # + partition + codegen of one graph), "joint" (make_fx of a training graph's joint graph;
    # a training lowering also lowers its forward and backward halves)
    seconds_per_node = {"lower": 5e-3, "joint": 12e-3}
    MIN_NODES = 20  # a small graph's lowering still pays make_fx's fixed costs

    def __init__(self, gm, example_inputs, notes=None, eager_calls=0, payback=False, asynchronous=False):
        # eager_calls: the first calls run the user's graph module as it is (the
        # interpreter), lowering only on the call after them. "auto" uses it: graphs that
        # the frontend recompiles within a few calls (changing shapes, the ten programs'
        # first steps) then never pay make_fx + g++ (~0.1-0.3 s each) for nothing.
        self.eager_calls = eager_calls
        self.payback = payback
        # asynchronous: kernels are built in the background, the calls meanwhile run eagerly
        # (Program._until_built); the frontend's "cpu" and "auto" ask for it, compile_graph
        # itself builds at once (tests look at the kernels right after a call)
        self.asynchronous = asynchronous
        self.eager_seconds = 0.0
        self.nodes = len(gm.graph.nodes)
        self.trains = None  # whether the graph's first call trained (its lowering cost)
        self.credit = None  # graph-module seconds for the first signature past the payback
        self.credited = False
        self._unlowered = None  # (exact guard, key) of the last signature run unlowered
        # auto and "cpu" by name keep kernels only where they measured faster: an inference
        # signature's Program times its kernels against the graph module (Program._trial_call),
        # a training signature's JointProgram the compiled pair against eager autograd
        # (joint_trial); the eager calls before a lowering are cold, not a yardstick
        self.measures = eager_calls > 0 or payback
        self._graph_to_lower = None
        super().__init__(gm, example_inputs, notes, lower_now=eager_calls == 0 and not payback)

    # calls timed on each side before kernels are kept or dropped; each side's fastest
    # call is its figure (load from other processes only ever adds time: with 3 calls and
    # medians, a 1K chain's kernels, 4x faster than eager, measured slower at load 14)
    TRIAL_CALLS = 5
    # the process's CPU time: other processes on a shared machine move it less than wall time
    clock = staticmethod(time.process_time)

    def kernels_ready(self, switched=True) -> bool:
        """No Program of this graph waits for its kernels' background build; `switched`: nor
        has one yet to switch to them (its next call rewrites its graph: not a call to time)."""
        return not any(isinstance(p, Program) and p.pending is not None and (switched or not p.pending.done())
                       for p in self.programs.values())

    def settled(self):
        """(exact guard, run function) of the signature called last, once that function is
        final (no kernels building): a caller that passes that signature only may check the
        guard and call it directly (JointProgram's halves); None before."""
        last = self.last
        if last is None or not self.kernels_ready():
            return None
        return last[0], last[1]

    def joint_trial(self):
        if not self.measures:
            return None  # compile_graph itself (tests): the pair stays
        return Trial(self.TRIAL_CALLS, lambda program, switched=True: program.forward.kernels_ready(switched) and
                     program.backward.kernels_ready(switched), self.clock)

    def _joint_program(self, args):
        # make_fx of the joint graph is most of a training graph's lowering cost: count it
        start = time.perf_counter()
        try:
            return super()._joint_program(args)
        finally:
            self._measured("joint", time.perf_counter() - start, self.nodes)

    def _measured(self, kind, seconds, nodes):
        per = type(self).seconds_per_node
        per[kind] = 0.8 * per[kind] + 0.2 * seconds / max(nodes, self.MIN_NODES)

    def lowering_cost(self, training=False) -> float:
        """Estimated seconds to lower this graph for one signature (training: the joint
        graph and its two halves)."""
        per = self.seconds_per_node
        return max(self.nodes, self.MIN_NODES) * (per["joint"] + 2 * per["lower"] if training else per["lower"])

    def payback_seconds(self, training=None) -> float:
        return self.PAYBACK * self.lowering_cost(bool(self.trains) if training is None else training)

    def _worth_lowering(self, key, training=False) -> bool:
        if not self.payback:
            return super()._worth_lowering(key, training)
        # "cpu" by name: a signature is lowered once its own graph-module time pays; the
        # graph-wide time that let calls get here counts for the first signature to come
        if len(self.unlowered_seconds) > 1024:  # values that never repeat: forget them
            self.unlowered_seconds.clear()
        if self.credit is not None:
            self.unlowered_seconds[key] = self.unlowered_seconds.get(key, 0.0) + self.credit
            self.credit = None
        return self.unlowered_seconds.get(key, 0.0) >= self.payback_seconds(training)

    def signature_key(self, args, training=False):
        # a repeated unlowered signature's key comes from its exact guard (~1 us a tensor
        # otherwise: a training graph's inputs are every parameter)
        last = self._unlowered
        if last is not None and last[2] == training and last[0].check(*args):
            return last[1]
        return super().signature_key(args, training)

    def _timed_graph_module(self, key, args=None):
        if self.payback and args is not None and (self._unlowered is None or self._unlowered[1] is not key):
            guard = exact_guard(args)
            self._unlowered = None if guard is None else (guard, key, len(key) > len(args))
        return super()._timed_graph_module(key)

    def __call__(self, *args):
        if self.trains is None:
            self.trains = needs_autograd(args) or self.trainable_attributes and torch.is_grad_enabled()
        # credited: past the graph-wide payback for good (another graph's lowering moving
        # seconds_per_node must not send this one back to eager calls; the entry's fast
        # path, fusion/compiled.py, skips this method)
        if self.eager_calls > 0 or self.payback and not self.credited and self.eager_seconds < self.payback_seconds():
            self.eager_calls -= 1
            start = time.perf_counter()
            result = self.gm.forward(*args)  # not nn.Module.__call__: a few us a call
            self.eager_seconds += time.perf_counter() - start
            return result
        if self.payback and not self.credited:  # from now on each signature pays for itself
            self.credit, self.credited = self.eager_seconds, True
        return FusedGraph.__call__(self, *args)

    def note(self, line: str):
        if line not in self.notes and config.verbose:
            print(f"terra_dyn cpu: {line}", file=sys.stderr)
        super().note(line)

    def lower(self, args):
        if any(type(a) not in _PLAIN for a in args if isinstance(a, torch.Tensor)):
            # fake or other subclass tensors (a frontend propagating shapes, a tensor
            # subclass): their data pointers mean nothing to a kernel, ATen handles them
            return self.gm
        start = time.perf_counter()
        gm = self.graph_to_lower()
        program = Program(lower_to_aten(gm, args, self.decomposition_table()), self, gm)
        self._measured("lower", time.perf_counter() - start, self.nodes)
        return program

    def describe_step(self, program, step) -> str:
        if not isinstance(step, FusionGroup):
            source = program.decisions.get(step)
            if isinstance(source, codegen.KernelSource):
                return f"kernel {source.name}"
            return f"view {step.target}, read by a kernel" if step in program.read_through else f"aten {step.target}"
        how = program.decisions.get(step)
        how = f"kernel {how.name}" if isinstance(how, codegen.KernelSource) else f"ATen ({how})"
        return f"{step!r} -> {how}"

    def decomposition_table(self) -> dict:
        return decomposition_table()

    def _half(self, gm, example):
        return CpuCompiledGraph(gm, example, notes=self.notes, asynchronous=self.asynchronous)

    def graph_to_lower(self) -> fx.GraphModule:
        if self._graph_to_lower is None:
            self._graph_to_lower = fuse_attention(self.gm)  # fusion/attention.py
        return self._graph_to_lower
