"""C++ source for one FusionGroup, specialized to the shapes, strides and dtypes of the
tensors it reads and writes (graphs are compiled per input signature, so sizes and strides
are literals and g++ sees plain affine loops).

Loops. The group's dims are collapsed first: adjacent dims that every tensor walks
contiguously (or broadcasts along) become one loop, so a contiguous pointwise group is one
flat loop however many dims it has. Then:

    pointwise   for outer (parallel)  { for inner (simd) { load, compute, store } }
                (one collapsed dim: one `parallel for simd` loop)
    reduction   for x in rows (parallel) {
                    for r in row (simd, reduction clause) { prologue; acc = combine(acc, v) }
                    x-level epilogue (e.g. rsqrt(var + eps)); stores of row values
                    for r in row (simd) { recompute the prologue; full-level stores }
                }

Rows are the kept dims flattened, r the reduced dims flattened. Reductions whose inputs are
ready share one pass over the row (layer norm's mean pass, then its variance pass). Every
kernel returns an int: nonzero when an integer division met a zero divisor, so that the
caller reruns the group through ATen and eager's error reaches the user.

    source = generate(group, layouts, output_layouts)
    print(source.text)

    extern "C" int pointwise_mul_add_tanh(const float* __restrict in0, float* __restrict out0, int64_t nthreads) {
      // FusionGroup#0(pointwise [4096, 1024]: mul add tanh)
      int err = 0;
      const int nt = (int)nthreads;
      #pragma omp parallel for simd num_threads(nt) schedule(static) reduction(|:err)
      for (int64_t i = 0; i < 4194304LL; ++i) {
        float tmp0 = in0[i];
        ...
"""
import math
from dataclasses import dataclass

import torch
import torch.fx as fx

from ..fusion import ops
from ..fusion.partition import FusionGroup, shape_of
from .cpp_ops import EMIT, c_type, compute_c_type, literal, round_to
from .read_through import view_of_input

# Kernels with less work than this run a plain loop (no OpenMP region): waking the OpenMP
# team costs a few microseconds, entering a one-thread region ~0.5-1 us.
PARALLEL_MIN_ELEMENTS = 32768
# Row buffers (per thread, on its stack) for values a later pass over the row reads again,
# at most this many bytes per kernel; longer rows recompute those values instead.
ROW_BUFFER_BYTES = 65536
# Ops worth storing for a later pass rather than recomputing (transcendental or divisions).
EXPENSIVE = {"exp", "exp2", "expm1", "log", "log2", "log10", "log1p", "tanh", "erf", "sigmoid", "sin", "cos",
             "tan", "pow", "div", "reciprocal", "rsqrt", "sqrt"}


@dataclass(frozen=True)
class TensorLayout:
    shape: tuple
    stride: tuple
    dtype: torch.dtype

    @staticmethod
    def of(t) -> "TensorLayout":
        return TensorLayout(tuple(int(s) for s in t.shape), tuple(int(s) for s in t.stride()), t.dtype)


def dense_strides(shape, stride) -> tuple:
    """`stride` when it lays `shape` out densely (a permutation of a contiguous layout),
    else the contiguous strides: outputs follow eager's layout whenever it is dense."""
    order = sorted(range(len(shape)), key=lambda d: (-stride[d], -d))
    expected, acc = [0] * len(shape), 1
    for d in reversed(order):
        expected[d] = acc
        acc *= max(shape[d], 1)
    if all(shape[d] == 1 or expected[d] == stride[d] for d in range(len(shape))):
        return tuple(stride)
    return contiguous_strides(shape)


def contiguous_strides(shape) -> tuple:
    strides, acc = [], 1
    for size in reversed(shape):
        strides.append(acc)
        acc *= max(size, 1)
    return tuple(reversed(strides))


@dataclass
class KernelSource:
    """One generated C++ function plus what its caller needs."""
    name: str
    text: str
    inputs: list            # fx nodes read, in argument order
    outputs: list           # fx nodes written, in argument order (after the inputs)
    input_layouts: list     # TensorLayout each input must have
    output_layouts: list    # TensorLayout of each output buffer
    group_repr: str
    returns: str = ""       # the calling function's return expression ('' : the outputs)

    def __repr__(self):
        return f"<KernelSource {self.name} in={len(self.inputs)} out={len(self.outputs)}>"


class _Loop:
    """A collapsed loop: its size and each access pattern's stride along it."""

    def __init__(self, size, strides):
        self.size = size
        self.strides = strides  # pattern id -> stride

    def __repr__(self):
        return f"_Loop({self.size}, {self.strides})"


def collapse(dims, full, patterns) -> list:
    """Collapsed loops over `dims` (outer to inner): drop size-1 dims, merge neighbours
    that every pattern (full dim -> stride dict) walks as one."""
    loops = []
    for d in dims:
        if full[d] == 1:
            continue
        strides = {pid: p.get(d, 0) for pid, p in patterns.items()}
        if loops and all(loops[-1].strides[pid] == strides[pid] * full[d] for pid in patterns):
            loops[-1] = _Loop(loops[-1].size * full[d], strides)
        else:
            loops.append(_Loop(full[d], strides))
    return loops


class _Scope:
    def __init__(self, parent=None, level="x"):
        self.parent = parent
        self.level = level
        self.values = {}  # node or load key -> (var, compute dtype)

    def lookup(self, key):
        scope = self
        while scope is not None:
            if key in scope.values:
                return scope.values[key]
            scope = scope.parent
        return None


class _Writer:
    def __init__(self, group: FusionGroup, layouts: dict, output_layouts: list):
        self.group = group
        self.layouts = layouts
        self.full = group.full_shape
        self.reduction = group.is_reduction
        self.x_dims = [d for d in range(len(self.full)) if d not in group.reduce_dims]
        self.r_dims = list(group.reduce_dims)
        inputs = group.inputs()
        views = {n: view_of_input(n, inputs) for n in inputs}
        self.read_through = {n: v for n, v in views.items() if v}  # node -> (input it views, offset)
        self.inputs = [n for n in inputs if n not in self.read_through]
        self.outputs = group.outputs()
        self.out_layouts = dict(zip(self.outputs, output_layouts))
        self.in_names = {n: f"in{i}" for i, n in enumerate(self.inputs)}
        self.out_names = {n: f"out{i}" for i, n in enumerate(self.outputs)}
        self.members = set(group.nodes)
        self.lines = []
        self.indent = 1
        self.counter = 0
        self.x_names, self.r_names = [], []
        self.loop_id = 0           # which pass over the row is being written
        self.row_values = {}       # full-level node -> (pass, line index after it, indent, var, dtype)
        self.buffers = {}          # node -> buffer name
        self.inserts = []          # (line index, text): buffer declarations and stores, added last
        self.body_start = 0        # line index of the first statement of the row body
        self.patterns = {}  # (layout, frame dims) -> (pattern id, full dim -> stride)
        self._collect_patterns()
        pats = {pid: strides for pid, strides in self.patterns.values()}
        if self.reduction:
            self.x_loops = collapse(self.x_dims, self.full, pats)
            self.r_loops = collapse(self.r_dims, self.full, pats)
        else:
            first = output_layouts[0]
            order = sorted(range(len(self.full)), key=lambda d: (-first.stride[d], d))
            self.x_loops = collapse(order, self.full, pats)
            self.r_loops = []
        self.xnumel = math.prod(self.full[d] for d in self.x_dims)
        self.rnumel = math.prod(self.full[d] for d in self.r_dims)

    # -- access patterns: how a tensor's elements map onto the group's full dims ----------
    def frame_dims(self, node_shape):
        if len(node_shape) == len(self.full):
            return tuple(range(len(self.full)))
        return tuple(self.x_dims)  # a squeezed x-level shape

    def _pattern(self, layout: TensorLayout, node_shape):
        dims = self.frame_dims(node_shape)
        key = (layout, dims, len(node_shape))
        if key not in self.patterns:
            shift = len(node_shape) - len(layout.shape)
            strides = {dims[shift + j]: st for j, (size, st) in enumerate(zip(layout.shape, layout.stride))
                       if size != 1 and st != 0}
            self.patterns[key] = (len(self.patterns), strides)
        return self.patterns[key][0]

    def _collect_patterns(self):
        for node in self.group.nodes:
            red = ops.reduction_of(node)
            if red is not None:
                if red.source not in self.members:
                    self._pattern(self.layouts[red.source], self.full)
                continue
            for arg in node.args:
                if isinstance(arg, fx.Node) and arg not in self.members:
                    self._pattern(self.layouts[arg], shape_of(node))
        for node in self.outputs:
            self._pattern(self.out_layouts[node], shape_of(node))

    def offset(self, pid, level):
        loops = list(self.x_loops) + (list(self.r_loops) if level == "full" else [])
        names = self.x_names + (self.r_names if level == "full" else [])
        terms = [f"{name} * {loop.strides[pid]}LL" if loop.strides[pid] != 1 else name
                 for loop, name in zip(loops, names) if loop.strides[pid] != 0]
        return " + ".join(terms) if terms else "0"

    # -- small helpers -------------------------------------------------------------------
    def line(self, text):
        self.lines.append("  " * self.indent + text)

    def fresh(self, prefix="tmp"):
        self.counter += 1
        return f"{prefix}{self.counter - 1}"

    def level(self, node):
        if not self.reduction:
            return "full"
        return "x" if self.group.is_x_level(node) else "full"

    def open_loop(self, var, size, pragma):
        if pragma:
            self.line(f"#pragma {pragma}")
        self.line(f"for (int64_t {var} = 0; {var} < {size}LL; ++{var}) {{")
        self.indent += 1

    def close(self):
        self.indent -= 1
        self.line("}")

    def split_index(self, index, loops, prefix):
        """Names of the per-loop indices of a flattened index over `loops` (emits them)."""
        if len(loops) <= 1:
            return [index] * len(loops)
        names, after = [], 1
        steps = []
        for loop in reversed(loops):
            steps.append(after)
            after *= loop.size
        for i, (loop, step) in enumerate(zip(loops, reversed(steps))):
            name = f"{prefix}{i}"
            div = index if step == 1 else f"({index} / {step}LL)"
            self.line(f"const int64_t {name} = {div if i == 0 else f'{div} % {loop.size}LL'};")
            names.append(name)
        return names

    @staticmethod
    def cast(var, src, dst):
        if src == dst or dst is None:
            return var
        if dst == torch.bool:
            return f"({var} != 0)"
        return f"(({compute_c_type(dst)}){var})"

    # -- values --------------------------------------------------------------------------
    def load(self, src: fx.Node, consumer_shape, scope: _Scope):
        layout = self.layouts[src]
        pid = self._pattern(layout, consumer_shape)
        key = ("load", pid, src)
        found = scope.lookup(key)
        if found:
            return found
        dtype = ops.compute_dtype(layout.dtype)
        name, offset = self.in_names.get(src), self.offset(pid, scope.level)
        if src in self.read_through:
            base, shift = self.read_through[src]
            name, offset = self.in_names[base], f"{shift}LL + {offset}" if shift else offset
        raw = f"{name}[{offset}]"
        if layout.dtype == torch.bfloat16:
            raw = f"td::bf16_load({raw})"
        elif layout.dtype == torch.float16:
            raw = f"(float){raw}"
        var = self.fresh()
        self.line(f"const {compute_c_type(dtype)} {var} = {raw};")
        scope.values[key] = (var, dtype)
        return var, dtype

    def operand_target(self, node, spec, i):
        rule = spec.rule(i)
        if rule == "out":
            return ops.compute_dtype(node.meta["val"].dtype)
        if rule == "bool":
            return torch.bool
        if rule == "promote":
            a, b = [x.meta["val"] if isinstance(x, fx.Node) else x for x in node.args[:2]]
            if not isinstance(a, torch.Tensor):
                a, b = b, a
            return ops.compute_dtype(torch.result_type(a, b))
        return None

    def value(self, node: fx.Node, scope: _Scope):
        """Emit (once per scope) the code computing an in-group node; returns (var, dtype)."""
        found = scope.lookup(node)
        if found:
            return found
        if self.level(node) == "x" and scope.level == "full":
            scope = scope.parent  # x-level values are computed once per row, outside r loops
            found = scope.lookup(node)
            if found:
                return found
        if scope.level == "full" and self.reduction:
            buffered = self.from_row_buffer(node, scope)
            if buffered:
                return buffered
        spec = ops.spec_of(node)
        if spec is None:
            raise RuntimeError(f"{node.format_node()} needed before its reduction was emitted")
        divisor = self.row_divisor(node, scope)
        if divisor:
            return divisor
        operands = []
        for i, arg in enumerate(node.args):
            target = self.operand_target(node, spec, i)
            if isinstance(arg, fx.Node):
                var, dtype = self.value(arg, scope) if arg in self.members else \
                    self.load(arg, shape_of(node), scope)
                operands.append(self.cast(var, dtype, target))
            elif arg is None:
                operands.append("None")
            elif isinstance(arg, (bool, int, float)):
                operands.append(literal(arg, target))
            else:
                operands.append(arg)  # dtypes, memory formats: read by the emitter from the node
        var = self.fresh()
        dtype = ops.compute_dtype(node.meta["val"].dtype)
        self.line(f"const {compute_c_type(dtype)} {var} = {EMIT[ops.op_name(node)](operands, node)};")
        scope.values[node] = (var, dtype)
        if scope.level == "full" and self.reduction and node not in self.row_values:
            self.row_values[node] = (self.loop_id, len(self.lines), self.indent, var, dtype)
        return var, dtype

    def row_divisor(self, node, scope):
        """`x / s` with s computed once per row (softmax's sum) as `x * (1 / s)`, the
        reciprocal taken once per row: a vector division costs ten multiplications
        (softmax over rows of 1024: about 10% of the kernel). Eager's softmax does the same."""
        if not (scope.level == "full" and self.reduction and ops.op_name(node) == "div" and ops.is_float(node)
                and ops.kwarg(node, "rounding_mode") is None and len(node.args) == 2):
            return None
        num, den = node.args
        if not (isinstance(den, fx.Node) and den in self.members and self.level(den) == "x"
                and isinstance(num, fx.Node) and den.meta["val"].dtype == node.meta["val"].dtype):
            return None
        dtype = ops.compute_dtype(node.meta["val"].dtype)
        # declared inside this pass's loop (g++ hoists it): another pass makes its own
        key = ("reciprocal", den)
        if scope.lookup(key) is None:
            den_var, den_dtype = self.value(den, scope)
            var = self.fresh()
            self.line(f"const {compute_c_type(dtype)} {var} = (({compute_c_type(dtype)})1) / "
                      f"{self.cast(den_var, den_dtype, dtype)};")
            scope.values[key] = (var, dtype)
        recip = scope.lookup(key)[0]
        num_var, num_dtype = self.value(num, scope) if num in self.members else \
            self.load(num, shape_of(node), scope)
        var = self.fresh()
        self.line(f"const {compute_c_type(dtype)} {var} = {self.cast(num_var, num_dtype, dtype)} * {recip};")
        scope.values[node] = (var, dtype)
        if node not in self.row_values:
            self.row_values[node] = (self.loop_id, len(self.lines), self.indent, var, dtype)
        return var, dtype

    def from_row_buffer(self, node, scope):
        """A value an earlier pass over this row computed: stored there into a row buffer
        (the store is inserted into that pass) and read back here, when it is worth it."""
        earlier = self.row_values.get(node)
        if earlier is None or earlier[0] == self.loop_id or ops.op_name(node) not in EXPENSIVE:
            return None
        _, position, indent, var, dtype = earlier
        if node not in self.buffers:
            size = self.rnumel * torch.empty((), dtype=dtype).element_size()
            if size * (len(self.buffers) + 1) > ROW_BUFFER_BYTES:
                return None
            name = f"row{len(self.buffers)}"
            self.buffers[node] = name
            self.inserts.append((self.body_start, "  " * 2 + f"{compute_c_type(dtype)} {name}[{self.rnumel}];"))
            self.inserts.append((position, "  " * indent + f"{name}[r] = {var};"))
        out = self.fresh()
        self.line(f"const {compute_c_type(dtype)} {out} = {self.buffers[node]}[r];")
        scope.values[node] = (out, dtype)
        return out, dtype

    def store(self, node, scope):
        var, dtype = self.value(node, scope)
        real = node.meta["val"].dtype
        pid = self._pattern(self.out_layouts[node], shape_of(node))
        target = f"{self.out_names[node]}[{self.offset(pid, self.level(node))}]"
        if real == torch.bfloat16:
            value = f"td::bf16_store({var})"
        elif real == torch.float16:
            value = f"(_Float16){var}"
        elif real == torch.bool:
            value = var if dtype == torch.bool else f"({var} != 0)"
        else:
            value = var if dtype == real else f"(({c_type(real)}){var})"
        self.line(f"{target} = {value};")

    # -- reductions ----------------------------------------------------------------------
    @staticmethod
    def neutral(kind, dtype):
        if kind == "sum":
            return literal(0, dtype)
        if dtype.is_floating_point:
            return "(-INFINITY)" if kind in ("max", "argmax") else "INFINITY"
        info = torch.iinfo(dtype)
        return literal(info.min if kind in ("max", "argmax") else info.max, dtype)

    def _reduction_input(self, red, node, scope):
        if red.source in self.members:
            var, dtype = self.value(red.source, scope)
        else:
            var, dtype = self.load(red.source, self.full, scope)
        acc = ops.compute_dtype(node.meta["val"].dtype) if red.kind in ("sum", "max", "min") else dtype
        return self.cast(var, dtype, acc), acc

    def reduce_batch(self, batch, top):
        accs, clauses = [], []
        for node in batch:
            red = ops.reduction_of(node)
            src = node.meta["val"].dtype if red.kind in ("sum", "max", "min") else red.source.meta["val"].dtype
            acc_dtype = ops.compute_dtype(src)
            acc = self.fresh("acc")
            self.line(f"{compute_c_type(acc_dtype)} {acc} = {self.neutral(red.kind, acc_dtype)};")
            if red.kind == "sum":
                clauses.append(f"reduction(+:{acc})")
            elif red.kind in ("max", "min"):
                clauses.append(f"reduction({red.kind}:{acc})")
                if acc_dtype.is_floating_point:
                    self.line(f"int {acc}_nan = 0;")
                    clauses.append(f"reduction(|:{acc}_nan)")
            else:
                self.line(f"int64_t {acc}_index = -1;")
            accs.append((node, red, acc, acc_dtype))
        vector = all(red.kind in ("sum", "max", "min") for _, red, _, _ in accs)
        loop = self.open_row_loop(top, "omp simd " + " ".join(clauses) if vector else None)
        for node, red, acc, acc_dtype in accs:
            v, _ = self._reduction_input(red, node, loop)
            if red.kind == "sum":
                self.line(f"{acc} += {v};")
            elif red.kind in ("max", "min"):
                cmp = ">" if red.kind == "max" else "<"
                self.line(f"{acc} = {v} {cmp} {acc} ? {v} : {acc};")
                if acc_dtype.is_floating_point:
                    self.line(f"{acc}_nan |= ({v} != {v});")
            else:
                cmp = ">" if red.kind == "argmax" else "<"
                nan = f" || ({v} != {v} && {acc} == {acc})" if acc_dtype.is_floating_point else ""
                # a later position wins only when strictly better (or the first NaN), as eager
                self.line(f"if ({acc}_index < 0 || {v} {cmp} {acc}{nan}) {{ {acc} = {v}; {acc}_index = r; }}")
        self.close()
        for node, red, acc, acc_dtype in accs:
            if red.kind == "sum":
                top.values[node] = (acc, acc_dtype)
            elif red.kind in ("max", "min"):
                if acc_dtype.is_floating_point:
                    self.line(f"if ({acc}_nan) {acc} = NAN;")
                top.values[node] = (acc, acc_dtype)
            else:
                top.values[node] = (f"{acc}_index", torch.int64)

    def open_row_loop(self, top, pragma):
        self.loop_id += 1
        self.open_loop("r", self.rnumel, pragma)
        self.r_names = self.split_index("r", self.r_loops, "r_")
        return _Scope(top, "full")

    def emitted(self, node, top) -> bool:
        return top.lookup(node) is not None

    def _cone_ready(self, node, top):
        """True when every x-level value a reduction's input needs is already emitted."""
        stack, seen = [ops.reduction_of(node).source], set()
        while stack:
            n = stack.pop()
            if n in seen or n not in self.members:
                continue
            seen.add(n)
            if self.level(n) == "x":
                if not self.emitted(n, top):
                    return False
                continue
            stack.extend(n.all_input_nodes)
        return True

    # -- whole kernels -------------------------------------------------------------------
    def header(self, name):
        args = [f"const {c_type(self.layouts[n].dtype)}* __restrict {self.in_names[n]}" for n in self.inputs]
        args += [f"{c_type(n.meta['val'].dtype)}* __restrict {self.out_names[n]}" for n in self.outputs]
        self.lines.append(f"extern \"C\" int {name}({', '.join(args + ['int64_t nthreads'])}) {{")
        self.line(f"// {self.group!r}")
        for node in self.inputs:
            lay = self.layouts[node]
            self.line(f"// {self.in_names[node]}: {node.name} {list(lay.shape)} stride {list(lay.stride)} "
                      f"{str(lay.dtype).replace('torch.', '')}")
        for node, (base, shift) in self.read_through.items():
            lay = self.layouts[node]
            self.line(f"// {node.name} {list(lay.shape)} stride {list(lay.stride)}: {self.in_names[base]} + {shift}")
        self.line("int err = 0;")
        if self.parallel:
            self.line("const int nt = (int)nthreads;")

    @property
    def parallel(self) -> bool:
        """Whether the outer loop is an OpenMP loop: a small kernel's loop is a plain one, since
        entering a parallel region costs ~0.5-1 us even on one thread (GOMP_parallel, its
        futex calls: a tenth of a softmax over 1024 floats, notes/s26e.md)."""
        return self.xnumel * max(self.rnumel, 1) >= PARALLEL_MIN_ELEMENTS

    def outer_pragma(self, simd=False):
        """The outer loop's pragma: OpenMP threads on big kernels (`simd`: a single loop
        that is also the vector loop)."""
        if not self.parallel:
            return "omp simd" if simd else None
        return f"omp parallel for{' simd' if simd else ''} num_threads(nt) schedule(static) reduction(|:err)"

    def pointwise_body(self):
        loops = self.x_loops or [_Loop(1, {pid: 0 for pid, _ in self.patterns.values()})]
        self.x_loops = loops
        if len(loops) == 1:
            self.open_loop("i", loops[0].size, self.outer_pragma(simd=True))
            self.x_names = ["i"]
        else:
            outer = math.prod(loop.size for loop in loops[:-1])
            self.open_loop("o", outer, self.outer_pragma())
            self.x_names = self.split_index("o", loops[:-1], "o_") if len(loops) > 2 else ["o"]
            self.open_loop("i", loops[-1].size, "omp simd")
            self.x_names.append("i")
        top = _Scope(None, "full")
        for node in self.outputs:
            self.store(node, top)
        for _ in range(min(len(loops), 2)):
            self.close()

    def reduction_body(self):
        self.open_loop("x", self.xnumel, self.outer_pragma())
        self.x_names = self.split_index("x", self.x_loops, "x_")
        self.body_start = len(self.lines)
        self.r_names = []
        top = _Scope(None, "x")
        done = set()
        reductions = [n for n in self.group.nodes if ops.reduction_of(n) is not None]
        for node in self.group.nodes:
            if node in reductions and node not in done:
                batch = [r for r in reductions if r not in done and (r is node or self._cone_ready(r, top))]
                self.reduce_batch(batch, top)
                done.update(batch)
            elif self.level(node) == "x" and node not in reductions:
                self.value(node, top)
        for node in self.outputs:
            if self.level(node) == "x":
                self.store(node, top)
        full_outputs = [n for n in self.outputs if self.level(n) == "full"]
        if full_outputs:
            loop = self.open_row_loop(top, "omp simd")
            for node in full_outputs:
                self.store(node, loop)
            self.close()
        self.close()


def kernel_name(group: FusionGroup) -> str:
    names = []
    for name in group.op_names():
        name = name.strip("_").replace("_copy", "cast")
        if name not in names:
            names.append(name)
    kind = "reduction" if group.is_reduction else "pointwise"
    return f"{kind}_{'_'.join(names[:5])}_{group.id}"


def generate(group: FusionGroup, layouts: dict, output_layouts: list) -> KernelSource:
    """The C++ function for `group`: `layouts` maps each input node to the TensorLayout it
    will have, `output_layouts` gives each output's (group.outputs() order)."""
    from .column import ColumnWriter, is_column
    writer = (ColumnWriter if is_column(group) else _Writer)(group, layouts, output_layouts)
    name = kernel_name(group)
    writer.header(name)
    if group.is_reduction:
        writer.reduction_body()
    else:
        writer.pointwise_body()
    writer.line("return err;")
    writer.lines.append("}")
    for position, text in sorted(writer.inserts, key=lambda item: -item[0]):
        writer.lines.insert(position, text)
    return KernelSource(name=name, text="\n".join(writer.lines) + "\n", inputs=writer.inputs,
                        outputs=writer.outputs, input_layouts=[layouts[n] for n in writer.inputs],
                        output_layouts=list(output_layouts), group_repr=repr(group))
