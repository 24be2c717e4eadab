"""Triton source for one FusionGroup, specialized to the shapes, strides and dtypes of the
tensors it reads (graphs are compiled per input shape; strides become literals, so a
transposed or sliced input costs nothing but its index arithmetic).

A pointwise group is a 1-D kernel over the flattened output: program p handles elements
[p * XBLOCK, (p + 1) * XBLOCK). A reduction group is a 2-D tile kernel: rows (the kept
dims, flattened) on axis 0, the reduced dims (flattened) on axis 1. When a whole row fits
one block (`persistent`), every value is computed once in registers; otherwise each
reduction loops over the row in RBLOCK chunks and recomputes its prologue, and a final loop
writes full-level outputs (the recompute costs math, not memory traffic).

    source = generate(group, layouts)       # layouts: node -> TensorLayout of each input
    print(source.text)

    @triton.jit
    def reduction_amax_sub_exp_sum_div(in_ptr0, out_ptr0, XBLOCK: tl.constexpr, RBLOCK: tl.constexpr):
        # FusionGroup#0(reduction [64, 1000] dims (1,): amax sub exp sum div)
        xnumel = 64
        rnumel = 1000
        xindex = tl.program_id(0) * XBLOCK + tl.arange(0, XBLOCK)[:, None]
        ...
"""
import math
from dataclasses import dataclass, field

import torch
import torch.fx as fx

from . import ops
from .environment import KERNEL_DTYPES
from .ops import TL_DTYPES, compute_dtype, literal
from .partition import FusionGroup, shape_of

# Rows up to this length are reduced in one block (values stay in registers).
PERSISTENT_MAX_RNUMEL = 4096
LOOPED_RBLOCK = 1024
INT32_LIMIT = 2 ** 31 - 1


@dataclass(frozen=True)
class TensorLayout:
    shape: tuple
    stride: tuple
    dtype: torch.dtype

    @staticmethod
    def of(t: torch.Tensor) -> "TensorLayout":
        return TensorLayout(tuple(t.shape), tuple(t.stride()), t.dtype)

    @staticmethod
    def contiguous(shape, dtype) -> "TensorLayout":
        return TensorLayout(tuple(shape), _contiguous_strides(shape), dtype)

    def max_offset(self):
        return sum((s - 1) * abs(st) for s, st in zip(self.shape, self.stride) if s > 0)


def _contiguous_strides(shape):
    strides, acc = [], 1
    for size in reversed(shape):
        strides.append(acc)
        acc *= max(size, 1)
    return tuple(reversed(strides))


@dataclass
class KernelSource:
    """Generated kernel text plus what its launcher needs."""
    name: str
    text: str
    inputs: list            # fx nodes loaded, in argument order
    outputs: list           # fx nodes stored, in argument order (after inputs)
    output_layouts: list    # TensorLayout of each output buffer (contiguous)
    signature: dict         # argument name -> triton type ("*fp32", "constexpr")
    xnumel: int
    rnumel: int             # 1 for pointwise kernels
    persistent: bool
    int64: bool
    outer: bool = False     # a reduction over dims outside the innermost one (see _Writer)
    group_repr: str = ""
    block_params: tuple = field(default=("XBLOCK",))

    @property
    def is_reduction(self):
        return "RBLOCK" in self.block_params

    def __repr__(self):
        kind = f"rows={self.xnumel} x {self.rnumel}{' persistent' if self.persistent else ' looped'}" \
            if self.is_reduction else f"numel={self.xnumel}"
        return f"<KernelSource {self.name} {kind} in={len(self.inputs)} out={len(self.outputs)}>"


class _Scope:
    def __init__(self, parent=None, level="x"):
        self.parent = parent
        self.level = level
        self.values = {}   # node or load key -> (var, compute dtype)

    def lookup(self, key):
        scope = self
        while scope is not None:
            if key in scope.values:
                return scope.values[key]
            scope = scope.parent
        return None


class _Writer:
    def __init__(self, group: FusionGroup, layouts: dict):
        self.group = group
        self.layouts = layouts
        self.full = group.full_shape
        self.x_dims = [d for d in range(len(self.full)) if d not in group.reduce_dims]
        self.r_dims = list(group.reduce_dims)
        self.xnumel = math.prod(self.full[d] for d in self.x_dims)
        self.rnumel = math.prod(self.full[d] for d in self.r_dims)
        self.reduction = group.is_reduction
        # an "outer" reduction keeps the innermost dim (x.sum(1) of [B, R, C]): neighbouring
        # x values are neighbours in memory, so a block must be wide in x and narrow in r,
        # and the row is walked in a loop (a whole-row block that wide would not fit registers)
        self.outer = self.reduction and bool(self.x_dims) and max(self.x_dims) > max(self.r_dims)
        self.persistent = self.reduction and self.rnumel <= PERSISTENT_MAX_RNUMEL and not self.outer
        self.inputs = group.inputs()
        self.outputs = group.outputs()
        self.in_names = {n: f"in_ptr{i}" for i, n in enumerate(self.inputs)}
        self.out_names = {n: f"out_ptr{i}" for i, n in enumerate(self.outputs)}
        self.out_layouts = [TensorLayout.contiguous(shape_of(n), n.meta["val"].dtype) for n in self.outputs]
        big = [lay.max_offset() for lay in list(layouts.values()) + self.out_layouts]
        self.int64 = max(big + [self.xnumel * self.rnumel]) >= INT32_LIMIT
        self.lines = []
        self.indent = 1
        self.counter = 0
        self.members = set(group.nodes)

    # -- small helpers -------------------------------------------------------------------
    def line(self, text):
        self.lines.append("    " * self.indent + text)

    def fresh(self, prefix="tmp"):
        self.counter += 1
        return f"{prefix}{self.counter - 1}"

    def level(self, node):
        if not self.reduction:
            return "x"
        return "x" if self.group.is_x_level(node) else "full"

    def frame_dims(self, node_shape):
        """Full-shape dim of each dim of a node's shape."""
        if len(node_shape) == len(self.full):
            return list(range(len(self.full)))
        return list(self.x_dims)  # a squeezed x-level shape

    def offset(self, layout: TensorLayout, node_shape, level, full_block=False):
        """The element offset of `layout` at the current indices. `full_block`: the offset
        must span the whole block even where the tensor does not vary along x or r (a store
        does not broadcast its pointer the way a load does; e.g. an output with one row)."""
        dims = self.frame_dims(node_shape)
        shift = len(node_shape) - len(layout.shape)
        terms = {}
        for j, (size, stride) in enumerate(zip(layout.shape, layout.stride)):
            if size != 1 and stride != 0:
                terms[dims[shift + j]] = stride
        x_parts = self._collapse(terms, self.x_dims, "xindex")
        r_parts = self._collapse(terms, self.r_dims, "rindex")
        parts = x_parts + r_parts
        if full_block or not parts:
            if not x_parts:
                parts.append("0 * xindex")
            if level == "full" and not r_parts:
                parts.append("0 * rindex")
        return " + ".join(parts)

    def _collapse(self, terms, dims, index):
        active = [d for d in dims if self.full[d] > 1]
        used = [d for d in active if d in terms]
        if not used:
            return []
        contiguous = dict(zip(active, _contiguous_strides([self.full[d] for d in active])))
        if used == active:
            scale = terms[active[-1]]
            if all(terms[d] == scale * contiguous[d] for d in active):
                return [index if scale == 1 else f"{scale} * {index}"]
        prefix = index[0]
        return [f"{prefix}{d}" if terms[d] == 1 else f"{terms[d]} * {prefix}{d}" for d in used]

    def index_vars(self, dims, index):
        active = [d for d in dims if self.full[d] > 1]
        after = _contiguous_strides([self.full[d] for d in active])
        for i, (d, step) in enumerate(zip(active, after)):
            div = index if step == 1 else f"({index} // {step})"
            expr = div if i == 0 else f"{div} % {self.full[d]}"
            self.line(f"{index[0]}{d} = {expr}")

    @staticmethod
    def cast(var, src, dst):
        if src == dst:
            return var
        if dst == torch.bool:
            return f"({var} != 0)"
        return f"{var}.to({TL_DTYPES[dst]})"

    # -- values --------------------------------------------------------------------------
    def load(self, src: fx.Node, consumer_shape, scope: _Scope):
        layout = self.layouts[src]
        level = scope.level
        off = self.offset(layout, consumer_shape, level)
        key = ("load", src, off)
        found = scope.lookup(key)
        if found:
            return found
        mask = "mask" if level == "full" else "xmask"
        other = ", other=0" if self.reduction else ""
        var = self.fresh()
        dtype = compute_dtype(layout.dtype)
        up = ".to(tl.float32)" if dtype != layout.dtype else ""
        self.line(f"{var} = tl.load({self.in_names[src]} + ({off}), {mask}{other}){up}")
        scope.values[key] = (var, dtype)
        return var, dtype

    def operand_target(self, node, lowering, i):
        rule = lowering.rule(i)
        if rule == "out":
            return compute_dtype(node.meta["val"].dtype)
        if rule == "bool":
            return torch.bool
        if rule == "promote":
            a, b = [x.meta["val"] if isinstance(x, fx.Node) else x for x in node.args[:2]]
            if not isinstance(a, torch.Tensor):
                a, b = b, a
            return compute_dtype(torch.result_type(a, b))
        return None

    def value(self, node: fx.Node, scope: _Scope):
        """Emit (once per scope) the code computing an in-group node; returns (var, dtype)."""
        found = scope.lookup(node)
        if found:
            return found
        if self.level(node) == "x" and scope.level == "full":
            scope = scope.parent  # x-level values are computed once, outside any row loop
            found = scope.lookup(node)
            if found:
                return found
        lowering = ops.pointwise_of(node)
        if lowering is None:
            raise RuntimeError(f"{node.format_node()} needed before its reduction was emitted")
        operands = []
        for i, arg in enumerate(node.args):
            if isinstance(arg, fx.Node):
                var, dtype = self.value(arg, scope) if arg in self.members else \
                    self.load(arg, shape_of(node), scope)
                target = self.operand_target(node, lowering, i)
                operands.append(self.cast(var, dtype, target) if target is not None else var)
            else:
                operands.append("None" if arg is None else literal(arg))
        var = self.fresh()
        self.line(f"{var} = {lowering.emit(operands, node)}")
        result = (var, compute_dtype(node.meta["val"].dtype))
        scope.values[node] = result
        return result

    def store(self, node, scope):
        var, dtype = self.value(node, scope)
        real = node.meta["val"].dtype
        layout = TensorLayout.contiguous(shape_of(node), real)
        off = self.offset(layout, shape_of(node), self.level(node), full_block=True)
        mask = "mask" if self.level(node) == "full" else "xmask"
        value = self.cast(var, dtype, real) if real != dtype else var
        self.line(f"tl.store({self.out_names[node]} + ({off}), {value}, {mask})")

    # -- reductions ----------------------------------------------------------------------
    def _neutral(self, kind, dtype):
        if kind == "sum":
            return "0"
        if dtype.is_floating_point:
            return 'float("-inf")' if kind in ("max", "argmax") else 'float("inf")'
        info = torch.iinfo(dtype)
        return str(info.min if kind in ("max", "argmax") else info.max)

    def _reduction_input(self, red: ops.Reduction, node, scope):
        if red.source in self.members:
            var, dtype = self.value(red.source, scope)
        else:
            var, dtype = self.load(red.source, self.full, scope)
        acc = compute_dtype(node.meta["val"].dtype) if red.kind in ("sum", "max", "min") else dtype
        return self.cast(var, dtype, acc), acc

    def reduce_persistent(self, node, full, top):
        red = ops.reduction_of(node)
        v, acc = self._reduction_input(red, node, full)
        scope = top
        var = self.fresh()
        if red.kind in ("sum", "max", "min"):
            fn = {"sum": "tl.sum", "max": "tl.max", "min": "tl.min"}[red.kind]
            self.line(f"{var} = {fn}(tl.where(mask, {v}, {self._neutral(red.kind, acc)}), 1)[:, None]")
            if red.kind != "sum" and acc.is_floating_point:
                # eager's amax/amin return NaN for a row holding one; tl.max may skip NaNs on GPU
                self.line(f"{var} = tl.where(tl.max(tl.where(mask & ({v} != {v}), 1, 0), 1)[:, None] > 0, "
                          f"float(\"nan\"), {var})")
            scope.values[node] = (var, acc)
            return
        var, best = self.fresh(), var
        fn = "tl.max" if red.kind == "argmax" else "tl.min"
        self.line(f"{best} = {fn}(tl.where(mask, {v}, {self._neutral(red.kind, acc)}), 1)[:, None]")
        self.line(f"{var} = tl.min(tl.where(mask & ({v} == {best}), rindex, {INT32_LIMIT}), 1)[:, None]"
                  ".to(tl.int64)")
        scope.values[node] = (var, torch.int64)

    def reduce_loop(self, batch, top):
        accs = []
        for node in batch:
            red = ops.reduction_of(node)
            acc_name = self.fresh("acc")
            dtype = node.meta["val"].dtype if red.kind in ("sum", "max", "min") else red.source.meta["val"].dtype
            acc_dtype = compute_dtype(dtype)
            self.line(f"{acc_name} = tl.full([XBLOCK, RBLOCK], {self._neutral(red.kind, acc_dtype)}, "
                      f"{TL_DTYPES[acc_dtype]})")
            if red.kind in ("argmax", "argmin"):
                self.line(f"{acc_name}_index = tl.full([XBLOCK, RBLOCK], {INT32_LIMIT}, tl.int32)")
            accs.append((node, red, acc_name, acc_dtype))
        loop = self.open_row_loop(top)
        for node, red, acc, acc_dtype in accs:
            v, _ = self._reduction_input(red, node, loop)
            if red.kind == "sum":
                self.line(f"{acc} = tl.where(mask, {acc} + {v}, {acc})")
            elif red.kind in ("max", "min"):
                fn = "tl.maximum" if red.kind == "max" else "tl.minimum"
                nan = ", propagate_nan=tl.PropagateNan.ALL" if acc_dtype.is_floating_point else ""
                self.line(f"{acc} = tl.where(mask, {fn}({acc}, {v}{nan}), {acc})")
            else:
                cmp = ">" if red.kind == "argmax" else "<"
                better = self.fresh("better")
                # a later position wins only when strictly better: the first extreme is kept
                self.line(f"{better} = mask & (({v} {cmp} {acc}) | ({acc}_index == {INT32_LIMIT}))")
                self.line(f"{acc} = tl.where({better}, {v}, {acc})")
                self.line(f"{acc}_index = tl.where({better}, rindex, {acc}_index)")
        self.indent -= 1
        for node, red, acc, acc_dtype in accs:
            var = self.fresh()
            if red.kind in ("sum", "max", "min"):
                fn = {"sum": "tl.sum", "max": "tl.max", "min": "tl.min"}[red.kind]
                self.line(f"{var} = {fn}({acc}, 1)[:, None]")
                if red.kind != "sum" and acc_dtype.is_floating_point:  # NaN lanes win, as in eager
                    self.line(f"{var} = tl.where(tl.max(tl.where({acc} != {acc}, 1, 0), 1)[:, None] > 0, "
                              f"float(\"nan\"), {var})")
                top.values[node] = (var, acc_dtype)
            else:
                fn = "tl.max" if red.kind == "argmax" else "tl.min"
                self.line(f"{var}_best = {fn}({acc}, 1)[:, None]")
                self.line(f"{var} = tl.min(tl.where({acc} == {var}_best, {acc}_index, {INT32_LIMIT}), 1)"
                          "[:, None].to(tl.int64)")
                top.values[node] = (var, torch.int64)

    def open_row_loop(self, top):
        # The bound is spelled as a number: triton 3.6's interpreter (TRITON_INTERPRET=1) turns
        # a local int into a 1-element array, which range() cannot take under numpy >= 2.4.
        self.line(f"for roffset in range(0, {self.rnumel}, RBLOCK):")
        self.indent += 1
        cast = ".to(tl.int64)" if self.int64 else ""
        self.line(f"rindex = (roffset + tl.arange(0, RBLOCK)[None, :]){cast}")
        self.line("rmask = rindex < rnumel")
        self.line("mask = xmask & rmask")
        self.index_vars(self.r_dims, "rindex")
        return _Scope(top, "full")

    def _cone_ready(self, node, top):
        """True when every x-level value a reduction's input needs is already emitted."""
        stack, seen = [ops.reduction_of(node).source], set()
        while stack:
            n = stack.pop()
            if n in seen or n not in self.members:
                continue
            seen.add(n)
            if self.level(n) == "x":
                if top.lookup(n) is None:
                    return False
                continue
            stack.extend(n.all_input_nodes)
        return True

    # -- whole kernels -------------------------------------------------------------------
    def header(self, name):
        args = [self.in_names[n] for n in self.inputs] + [self.out_names[n] for n in self.outputs]
        blocks = "XBLOCK: tl.constexpr, RBLOCK: tl.constexpr" if self.reduction else "XBLOCK: tl.constexpr"
        self.lines.append("@triton.jit")
        self.lines.append(f"def {name}({', '.join(args + [blocks])}):")
        self.line(f"# {self.group!r}")
        for node in self.inputs:
            lay = self.layouts[node]
            self.line(f"# {self.in_names[node]}: {node.name} {list(lay.shape)} stride {list(lay.stride)} "
                      f"{str(lay.dtype).replace('torch.', '')}")
        self.line(f"xnumel = {self.xnumel}")
        pid = "tl.program_id(0).to(tl.int64)" if self.int64 else "tl.program_id(0)"
        if self.reduction:
            self.line(f"rnumel = {self.rnumel}")
            self.line(f"xindex = {pid} * XBLOCK + tl.arange(0, XBLOCK)[:, None]")
        else:
            self.line(f"xindex = {pid} * XBLOCK + tl.arange(0, XBLOCK)")
        self.line("xmask = xindex < xnumel")
        self.index_vars(self.x_dims, "xindex")

    def pointwise_body(self):
        top = _Scope(None, "x")
        for node in self.outputs:
            self.store(node, top)

    def persistent_body(self):
        top = _Scope(None, "x")
        self.line("rindex = tl.arange(0, RBLOCK)[None, :]")
        self.line("rmask = rindex < rnumel")
        self.line("mask = xmask & rmask")
        self.index_vars(self.r_dims, "rindex")
        full = _Scope(top, "full")
        outputs = set(self.outputs)
        for node in self.group.nodes:
            if ops.reduction_of(node) is not None:
                self.reduce_persistent(node, full, top)
            if node in outputs:
                self.store(node, full if self.level(node) == "full" else top)

    def looped_body(self):
        top = _Scope(None, "x")
        done = set()
        reductions = [n for n in self.group.nodes if ops.reduction_of(n) is not None]
        for node in self.group.nodes:
            if node in reductions and node not in done:
                batch = [r for r in reductions if r not in done and (r is node or self._cone_ready(r, top))]
                self.reduce_loop(batch, top)
                done.update(batch)
            elif self.level(node) == "x" and node not in done and node not in reductions:
                self.value(node, top)
        for node in self.outputs:
            if self.level(node) == "x":
                self.store(node, top)
        full_outputs = [n for n in self.outputs if self.level(n) == "full"]
        if full_outputs:
            loop = self.open_row_loop(top)
            for node in full_outputs:
                self.store(node, loop)
            self.indent -= 1


def kernel_name(group: FusionGroup) -> str:
    names = []
    for name in group.op_names():
        name = name.strip("_").replace("_copy", "cast")
        if name not in names:
            names.append(name)
    kind = "reduction" if group.is_reduction else "pointwise"
    return f"{kind}_{'_'.join(names[:5])}"


def generate(group: FusionGroup, layouts: dict) -> KernelSource:
    """The kernel for `group` given the layout of each input node (see TensorLayout)."""
    writer = _Writer(group, layouts)
    name = kernel_name(group)
    writer.header(name)
    if not group.is_reduction:
        writer.pointwise_body()
    elif writer.persistent:
        writer.persistent_body()
    else:
        writer.looped_body()
    text = "\n".join(writer.lines) + "\n"
    signature = {writer.in_names[n]: "*" + KERNEL_DTYPES[layouts[n].dtype] for n in writer.inputs}
    signature.update({writer.out_names[n]: "*" + KERNEL_DTYPES[n.meta["val"].dtype] for n in writer.outputs})
    blocks = ("XBLOCK", "RBLOCK") if group.is_reduction else ("XBLOCK",)
    signature.update({b: "constexpr" for b in blocks})
    return KernelSource(name=name, text=text, inputs=writer.inputs, outputs=writer.outputs,
                        output_layouts=writer.out_layouts, signature=signature, xnumel=writer.xnumel,
                        rnumel=writer.rnumel if group.is_reduction else 1, persistent=writer.persistent,
                        int64=writer.int64, outer=writer.outer, group_repr=repr(group), block_params=blocks)


MODULE_PRELUDE = (
    "import triton\n"
    "import triton.language as tl\n"
    "# device math: libdevice on a GPU, tl.* formulas under the CPU interpreter\n"
    "from terra_dyn.backends.triton.device_math import dm\n\n\n"
)


def module_text(source: KernelSource) -> str:
    """The full Python module written to the kernel cache for one kernel."""
    return MODULE_PRELUDE + source.text
