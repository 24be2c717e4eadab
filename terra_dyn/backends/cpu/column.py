"""Column reductions: reductions over outer dims (x.sum(0), x.var(0), a layer norm's weight
gradient), where each kept row is strided in memory. Walking one row at a time (codegen's
row loops) would touch a new cache line per element; instead a kernel takes a block of
XBLOCK neighbouring rows and walks their elements side by side, vectorized across the rows
(contiguous in memory), with one accumulator per row in a small array:

    for b in blocks of XBLOCK rows (parallel):        xb = b * XBLOCK, xn rows in this block
        acc[j] = neutral                               j < xn
        for r in reduced elements:
            for j in rows (simd): acc[j] = combine(acc[j], prologue(r, xb + j))
        for j in rows: x-level epilogue into arrays (mean[j], rstd[j]); x-level stores
        for r: for j (simd): full-level outputs (log_softmax over dim 0)

Every x-level value lives in a per-block array, so any later loop reads it as `name[j]`.

    writer = ColumnWriter(group, layouts, output_layouts)   # chosen by codegen.generate
"""
from .codegen import _Scope, _Writer
from .cpp_ops import compute_c_type
from ..fusion import ops

XBLOCK = 64


def is_column(group) -> bool:
    """A reduction whose innermost (non-1) dim is kept: its rows are strided."""
    inner = [d for d, size in enumerate(group.full_shape) if size > 1]
    return group.is_reduction and bool(inner) and inner[-1] not in group.reduce_dims


class ColumnWriter(_Writer):
    def __init__(self, group, layouts, output_layouts):
        super().__init__(group, layouts, output_layouts)
        self.x_arrays = {}  # x-level node -> (array name, compute dtype)

    def array(self, dtype, prefix="xv"):
        name = self.fresh(prefix)
        self.inserts.append((self.body_start, "  " * 2 + f"{compute_c_type(dtype)} {name}[{XBLOCK}];"))
        return name

    def emitted(self, node, top) -> bool:
        return node in self.x_arrays

    def from_row_buffer(self, node, scope):
        return None  # rows are not contiguous here: no row buffers

    def value(self, node, scope):
        if self.level(node) == "x" and node in self.x_arrays:
            name, dtype = self.x_arrays[node]
            return f"{name}[j]", dtype
        var, dtype = super().value(node, scope)
        if self.level(node) == "x" and node not in self.x_arrays:
            name = self.array(dtype)
            self.line(f"{name}[j] = {var};")
            self.x_arrays[node] = (name, dtype)
        return var, dtype

    def open_rows(self, pragma=None):
        """for j in this block's rows, with x = xb + j split into the x loops' indices."""
        if pragma:
            self.line(f"#pragma {pragma}")
        self.line("for (int64_t j = 0; j < xn; ++j) {")
        self.indent += 1
        self.line("const int64_t x = xb + j;")
        self.x_names = self.split_index("x", self.x_loops, "x_")
        return _Scope(None, "x")

    def open_row_elements(self):
        """for r in the reduced elements, then for j in rows (simd): a full-level scope."""
        self.loop_id += 1
        self.open_loop("r", self.rnumel, None)
        self.r_names = self.split_index("r", self.r_loops, "r_")
        return _Scope(self.open_rows("omp simd"), "full")

    def fill(self, name, value):
        self.line(f"for (int64_t j = 0; j < xn; ++j) {name}[j] = {value};")

    def reduce_batch(self, batch, top):
        accs = []
        for node in batch:
            red = ops.reduction_of(node)
            src = node.meta["val"].dtype if red.kind in ("sum", "max", "min") else red.source.meta["val"].dtype
            acc_dtype = ops.compute_dtype(src)
            acc = self.array(acc_dtype, "acc")
            self.fill(acc, self.neutral(red.kind, acc_dtype))
            flag = None
            if red.kind in ("max", "min") and acc_dtype.is_floating_point:
                flag = self.fresh("nan")
                self.inserts.append((self.body_start, "  " * 2 + f"int {flag}[{XBLOCK}];"))
                self.fill(flag, "0")
            if red.kind in ("argmax", "argmin"):
                flag = self.fresh("index")
                self.inserts.append((self.body_start, "  " * 2 + f"int64_t {flag}[{XBLOCK}];"))
                self.fill(flag, "-1")
            accs.append((node, red, acc, acc_dtype, flag))
        scope = self.open_row_elements()
        for node, red, acc, acc_dtype, flag in accs:
            v, _ = self._reduction_input(red, node, scope)
            if red.kind == "sum":
                self.line(f"{acc}[j] += {v};")
            elif red.kind in ("max", "min"):
                cmp = ">" if red.kind == "max" else "<"
                self.line(f"{acc}[j] = {v} {cmp} {acc}[j] ? {v} : {acc}[j];")
                if flag:
                    self.line(f"{flag}[j] |= ({v} != {v});")
            else:
                cmp = ">" if red.kind == "argmax" else "<"
                nan = f" || ({v} != {v} && {acc}[j] == {acc}[j])" if acc_dtype.is_floating_point else ""
                self.line(f"if ({flag}[j] < 0 || {v} {cmp} {acc}[j]{nan}) {{ {acc}[j] = {v}; {flag}[j] = r; }}")
        self.close()
        self.close()
        for node, red, acc, acc_dtype, flag in accs:
            if red.kind in ("argmax", "argmin"):
                self.x_arrays[node] = (flag, ops.compute_dtype(node.meta["val"].dtype))
                continue
            if flag:
                self.line(f"for (int64_t j = 0; j < xn; ++j) if ({flag}[j]) {acc}[j] = NAN;")
            self.x_arrays[node] = (acc, acc_dtype)

    def reduction_body(self):
        blocks = -(-self.xnumel // XBLOCK)
        self.open_loop("b", blocks, self.outer_pragma())
        self.line(f"const int64_t xb = b * {XBLOCK}LL;")
        self.line(f"const int64_t xn = {self.xnumel}LL - xb < {XBLOCK}LL ? {self.xnumel}LL - xb : {XBLOCK}LL;")
        self.body_start = len(self.lines)
        done = set()
        reductions = [n for n in self.group.nodes if ops.reduction_of(n) is not None]
        for node in self.group.nodes:
            if node in reductions and node not in done:
                batch = [r for r in reductions if r not in done and (r is node or self._cone_ready(r, None))]
                self.reduce_batch(batch, None)
                done.update(batch)
            elif self.level(node) == "x" and node not in reductions:
                self.value(node, self.open_rows())
                self.close()
        x_outputs = [n for n in self.outputs if self.level(n) == "x"]
        if x_outputs:
            scope = self.open_rows()
            for node in x_outputs:
                self.store(node, scope)
            self.close()
        full_outputs = [n for n in self.outputs if self.level(n) == "full"]
        if full_outputs:
            scope = self.open_row_elements()
            for node in full_outputs:
                self.store(node, scope)
            self.close()
            self.close()
        self.close()
