"""Hand-written kernels for single ATen ops that the shared decompositions lower badly.

Layer norm's backward (aten.native_layer_norm_backward) decomposes into a row kernel for the
input gradient plus two sums over the outer dims (weight and bias gradients) that read a
materialized grad * x_hat: 2-3x slower than eager's kernel (docs/CPU_BACKEND.md, session
12), so the decomposition table keeps the op whole and this module gives it one kernel
instead, specialized like the generated ones (sizes are literals):

    for each row i (rows split over threads, each thread with its own dw, db partial sums):
        s1 = sum_j g*w,  s2 = sum_j g*w*(x - mean)              one pass over the row
        dx = rstd * (g*w - s1/N - x_hat * s2*rstd/N)             a second pass, in L1;
        dw_t[j] += g * x_hat,  db_t[j] += g                      beside it
    dw = sum_t dw_t, db = sum_t db_t

    source = layer_norm_backward(node, layouts, "layer_norm_backward_3")   # None: eager's op
"""
import math

import torch
import torch.fx as fx

from . import codegen
from .codegen import KernelSource, TensorLayout, contiguous_strides
from .cpp_ops import c_type

aten = torch.ops.aten
_DTYPES = (torch.float32, torch.float64)


def _contiguous(layout: TensorLayout) -> bool:
    return all(size == 1 or stride == want
               for size, stride, want in zip(layout.shape, layout.stride, contiguous_strides(layout.shape)))


def _val(arg):
    return arg.meta.get("val") if isinstance(arg, fx.Node) else None


def layer_norm_backward(node: fx.Node, layout_of, name: str):
    """A KernelSource for `node` (a native_layer_norm_backward), or None where eager's op
    runs: a dtype other than f32/f64, a layout that is not contiguous, an empty tensor, a
    weight gradient asked without a weight. layout_of(node) -> TensorLayout."""
    if node.target is not aten.native_layer_norm_backward.default or node.kwargs:
        return None
    grad, x, normalized, mean, rstd, weight, bias, mask = node.args
    vals = node.meta.get("val")
    tensors = [a for a in (grad, x, mean, rstd, weight, bias) if a is not None]
    if not all(isinstance(_val(a), torch.Tensor) for a in tensors) or not isinstance(vals, (tuple, list)):
        return None
    if any(_val(a).dtype != _val(x).dtype or _val(a).device.type != "cpu" or _val(a).layout != torch.strided
           for a in tensors) or _val(x).dtype not in _DTYPES:
        return None
    layouts = {a: layout_of(a) for a in tensors}
    if not all(_contiguous(layout) for layout in layouts.values()):
        return None
    cols = math.prod(int(s) for s in normalized)
    numel = math.prod(layouts[x].shape)
    if cols == 0 or numel == 0 or numel % cols or layouts[grad].shape != layouts[x].shape:
        return None
    rows = numel // cols
    if math.prod(layouts[mean].shape) != rows or math.prod(layouts[rstd].shape) != rows:
        return None
    produced = [isinstance(v, torch.Tensor) for v in vals]
    if produced[1] and weight is None or len(produced) != 3:
        return None
    outputs = [TensorLayout.of(v) for v in vals if isinstance(v, torch.Tensor)]
    if not all(_contiguous(layout) for layout in outputs):
        return None
    inputs = tensors
    text = _text(name, c_type(_val(x).dtype), rows, cols, weight is not None, bias is not None, produced)
    returns = []
    for has in produced:
        returns.append(f"out{sum(1 for r in returns if r != 'None')}" if has else "None")
    return KernelSource(name=name, text=text, inputs=inputs, outputs=[node] * len(outputs),
                        input_layouts=[layouts[a] for a in inputs], output_layouts=outputs,
                        group_repr=f"layer_norm_backward [{rows}, {cols}] outputs {produced}",
                        returns=f"({', '.join(returns)})")


def _text(name, t, rows, cols, has_weight, has_bias, produced) -> str:
    dx, dw, db = produced
    args = [f"const {t}* __restrict g", f"const {t}* __restrict x", f"const {t}* __restrict mean",
            f"const {t}* __restrict rstd"]
    args += [f"const {t}* __restrict w"] * has_weight + [f"const {t}* __restrict b"] * has_bias
    args += [f"{t}* __restrict {o}" for o, has in (("dx", dx), ("dw", dw), ("db", db)) if has]
    wj = "w[j]" if has_weight else f"({t})1"
    cols_needed = dw or db
    parallel = rows * cols >= codegen.PARALLEL_MIN_ELEMENTS
    lines = [f'extern "C" int {name}({", ".join(args + ["int64_t nthreads"])}) {{',
             f"  const int64_t M = {rows}LL, N = {cols}LL;",
             f"  int nt = {'(int)nthreads' if parallel else '1'};",
             "  if (nt > M) nt = (int)M;",
             "  if (nt < 1) nt = 1;"]
    if cols_needed:  # per-thread partial column sums: [dw_t (N), db_t (N)] for each thread
        lines += [f"  {t}* part = ({t}*)__builtin_calloc((unsigned long)nt * 2 * N, sizeof({t}));",
                  "  if (!part) return 1;  // the caller runs eager's op"]
    # a small one is a plain loop: entering even a one-thread OpenMP region costs ~0.5-1 us
    lines += ["  #pragma omp parallel for num_threads(nt) schedule(static)"] * parallel
    lines += ["  for (int c = 0; c < nt; ++c) {",
              "    const int64_t r0 = M * c / nt, r1 = M * (c + 1) / nt;"]
    if cols_needed:
        lines += [f"    {t}* __restrict cw = part + 2 * N * c;", f"    {t}* __restrict cb = cw + N;"]
    lines += ["    for (int64_t i = r0; i < r1; ++i) {",
              f"      const {t}* __restrict gi = g + i * N;",
              f"      const {t}* __restrict xi = x + i * N;",
              f"      const {t} a = mean[i], r = rstd[i];"]
    accumulate = (["        cw[j] += gi[j] * xh;"] if dw else []) + (["        cb[j] += gi[j];"] if db else [])
    if dx:
        lines += [f"      {t} s1 = 0, s2 = 0;",
                  "      #pragma omp simd reduction(+:s1, s2)",
                  "      for (int64_t j = 0; j < N; ++j) {",
                  f"        const {t} gw = gi[j] * {wj};",
                  "        s1 += gw;",
                  "        s2 += gw * (xi[j] - a);",
                  "      }",
                  f"      const {t} c1 = s1 / ({t})N, c2 = s2 * r / ({t})N;",
                  f"      {t}* __restrict dxi = dx + i * N;",
                  "      #pragma omp simd",
                  "      for (int64_t j = 0; j < N; ++j) {",
                  f"        const {t} xh = (xi[j] - a) * r;",
                  f"        dxi[j] = r * (gi[j] * {wj} - c1 - xh * c2);",
                  *accumulate,
                  "      }"]
    elif cols_needed:
        lines += ["      #pragma omp simd",
                  "      for (int64_t j = 0; j < N; ++j) {",
                  f"        const {t} xh = (xi[j] - a) * r;",
                  *accumulate,
                  "      }"]
    lines += ["    }", "  }"]
    if cols_needed:
        lines += ["  for (int64_t j = 0; j < N; ++j) {",
                  f"    {t} sw = 0, sb = 0;",
                  "    for (int c = 0; c < nt; ++c) { sw += part[2 * N * c + j]; sb += part[2 * N * c + N + j]; }"]
        lines += ["    dw[j] = sw;"] * dw + ["    db[j] = sb;"] * db
        lines += ["  }", "  __builtin_free(part);"]
    lines += ["  return 0;", "}"]
    return "\n".join(lines) + "\n"
