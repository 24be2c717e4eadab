"""Symbolic sizes that may be 1: a size seen changing, on a plainly contiguous input.

torch's ShapeEnv makes a size of 0 or 1 a constant (0/1 specialization: broadcasting,
contiguity and squeeze answer differently for a 1), and a symbol assumes at least 2. So a
size that changed to 1 (faster_rcnn's box count of image 1 went 3 -> 1 at step 1) was
translated as a static 1, and its next value (4 at step 2) translated the frame again; and
a size that changed among values of 2 or more (image 0's count) was translated again for
its first 1 (step 17).

Here such a size is a symbol with range [1, inf), whatever its hint (1 or more):

    fake = unit_sizes.fake_tensor(graph_state, real, context, dims)   # symbols of dims at 1
    unit_sizes.layout_read(unit_sources, name, args, at_one)          # before each op

Every question torch asks about it is answered as the ShapeEnv answers any other symbol's
(evaluated at the hint and guarded: a question whose answer for 1 differs from the general
case records `Eq(s, 1)`, which pins the size, and the translation is made again with it
static, as before), except at the sites torch wrote to take the general path without a
guard (`guard_or_false` / `guard_or_true`), and of those only the ones listed in
`_GENERAL_SITES`, whose general path is right for a 1 as well:
  - broadcasting (fake_impls.infer_size, _refs' _broadcast_shapes and should_expand,
    _prims' _broadcast_in_dim_meta): "s is not 1" gives the result size s, which a 1 has
    too; the equality it then assumes is `torch._check`ed, i.e. guarded;
  - contiguity (_prims_common's is_contiguous and check_contiguous_sizes_strides): a
    1-element column view (`boxes[:, 2]`, stride 4) is contiguous for a 1 only. Taking it
    as not contiguous changes no value an op computes, only the strides torch gives results
    along dims of size 1, where a stride is never used, and whether `contiguous()` or
    `reshape` copies.
What a translation can read of those facts is what `layout_read` stops: a stride,
contiguity, storage offset or data pointer read by the code, or `contiguous()` of a tensor
the facts call non-contiguous (eager returns the same object for a 1), make the attempt
fail with the unit symbols named (DynamicShapesFailed: static again). The graph runs the
same ops on the real tensors, so the values are eager's. A guard's layout check takes the
size as at least 1 (guard_checks.AT_LEAST_ONE). With a hint above 1, a question outside those
sites is answered at the hint and guarded (`Ne(s, 1)` for a squeeze): that translation
leaves a 1 to another, as before. A pin of such a symbol is its value's, not the 1's
(graph_state._stop_if_pinned): it is pinned as any other size.

Sizes that grow with a counter (GROW, growing_dims): a decoder's cache of length 1 beside
its counter 0 -> 1 at the second token; the length is such a symbol at 1 though it did not
change (it will, with the counter), so the second token's translation serves the rest.
"""
import sys

import torch

from .size_exprs import DynamicShapesFailed

# (end of the file name, function) of guard_or_false / guard_or_true call sites whose
# general answer holds for a size of 1 (see the module docstring)
_GENERAL_SITES = frozenset({
    ("_subclasses/fake_impls.py", "infer_size"),
    ("_refs/__init__.py", "_broadcast_shapes"),
    ("_refs/__init__.py", "should_expand"),
    ("_prims/__init__.py", "_broadcast_in_dim_meta"),
    ("_prims_common/__init__.py", "is_contiguous"),
    ("_prims_common/__init__.py", "check_contiguous_sizes_strides"),
})
# tensor methods whose answer depends on strides (or identity) the facts may have wrong for a 1
_LAYOUT_READS = frozenset({"stride", "is_contiguous", "storage_offset", "data_ptr", "is_non_overlapping_and_dense",
                           "_is_view", "is_set_to", "untyped_storage", "storage"})

# in a translation's `static` set: "1:a0.size()[0]", a size whose 1 a translation needed
# (DynamicShapesFailed.unit): static when 1, symbolic for other values as before
NOT_UNIT = "1:"

# in a translation's `dynamic` set: "grow==1@a2['cache']" (guard_changes._growing_with): an
# int counter under a2['cache'] changed and is 1 now; its tensors' sizes of 1 (but dim 0)
# grow with it (symbols, that may be 1 at 1)
GROW = "grow=="


def grow_scopes(dynamic):
    """{scope: the counter's value} of the GROW entries of `dynamic`."""
    return {e.split("@", 1)[1]: int(e[len(GROW):].split("@", 1)[0]) for e in dynamic if e.startswith(GROW)}


def grows_at(scopes, expr):
    """The counter value `expr` (a number or tensor under a grow scope) grows with, or None."""
    for scope, value in scopes.items():
        if expr.startswith(scope) and expr[len(scope):len(scope) + 1] in (".", "["):
            return value
    return None


def growing_dims(scopes, real, expr, static):
    """Dims (but 0) of a tensor under a grow scope whose size is the counter's value: one
    token longer on each call, as the counter (a 1: a symbol that may be 1, if `real` is
    plainly contiguous), except those named in `static`."""
    value = grows_at(scopes, expr)
    if value is None or isinstance(real, torch.nn.Parameter) or value == 1 and not plainly_contiguous(real):
        return []
    return [d for d in range(1, real.dim()) if real.shape[d] == value and f"{expr}.size()[{d}]" not in static]

_installed = None  # _install(): True once wrapped, False where this torch lacks what it needs


def plainly_contiguous(real):
    """Not a view, and its strides those torch gives a new tensor of its sizes (a (1, 4)
    tensor can be contiguous with strides (1, 1): a symbol in its place would claim them);
    False where this torch lacks what unit symbols need (then a 1 stays static)."""
    if not _install():
        return False
    strides, step = [], 1
    for n in reversed(real.shape):
        strides.append(step)
        step *= max(n, 1)
    if real.stride() != tuple(reversed(strides)):
        return False
    return not real._is_view() or (real._base.shape == real.shape and real.storage_offset() == 0
                                   and real._base.stride() == real.stride())


def fake_tensor(env_mode, real, context, unit_dims):
    """A fake tensor of contiguous `real` with the sizes of `context` symbolic, those of
    `unit_dims` (1 now) symbols with range [1, inf), the others at least 2 as usual.
    Returns (fake, the unit symbols)."""
    import torch.fx.experimental._config as shape_config
    from torch.utils._sympy.numbers import int_oo
    from torch.utils._sympy.value_ranges import ValueRanges

    _install()
    env = env_mode.shape_env
    before = shape_config.backed_size_oblivious
    shape_config.backed_size_oblivious = True  # symbols made for 1 (do_not_specialize_zero_one)
    try:
        fake = env_mode.from_tensor(real, symbolic_context=context)
    finally:
        shape_config.backed_size_oblivious = before
    units = set()
    for d, size in enumerate(fake.shape):
        sym = getattr(getattr(size, "node", None), "expr", None)
        if sym is None or not sym.is_Symbol:
            continue
        env.size_like.discard(sym)  # not size-oblivious: guard_size_oblivious asks the hint
        env._update_var_to_range(sym, ValueRanges(1 if d in unit_dims else 2, int_oo))
        if d in unit_dims:
            units.add(sym)
    known = getattr(env, "terra_unit_symbols", None)
    env.terra_unit_symbols = (known or frozenset()) | units
    return fake, units


def layout_read(unit_sources, name, args, at_one=()):
    """Before an op whose answer a 1 could change without the facts showing it (see
    _LAYOUT_READS; `contiguous()` of a tensor whose facts are not contiguous returns the
    tensor itself in eager for a 1): stop the attempt (the unit sizes made static) when one
    of them (`at_one`) is 1 in this call; else True: they must become sizes of at least 2
    (at_least_two), as yolov3's target count at its `contiguous()` (three attempts more)."""
    if not unit_sources:
        return False
    if name == "contiguous":
        facts = getattr(args[0], "facts", None) if args else None
        if facts is None or facts.is_contiguous():
            return False
    elif name not in _LAYOUT_READS:
        return False
    if not at_one:
        return True
    raise DynamicShapesFailed(f"{name}() reads a layout that a size of 1 changes: "
                              f"{', '.join(sorted(unit_sources))} static", unit_sources, unit=True)


def at_least_two(env, symbols, sources):
    """Unit symbols none of which is 1 now become ordinary sizes: `s >= 2` guarded (at the
    hint, as any relation of sizes) and their range [2, inf). What the translation decided
    so far holds: the general answers are those of a size of at least 2, the others were
    guarded at the hint. `symbols` and `sources` are emptied."""
    import sympy
    from torch.utils._sympy.numbers import int_oo
    from torch.utils._sympy.value_ranges import ValueRanges

    for sym in symbols:
        env.evaluate_expr(sympy.Ge(sym, 2))
        env._update_var_to_range(sym, ValueRanges(2, int_oo))
    env.terra_unit_symbols = frozenset(getattr(env, "terra_unit_symbols", frozenset()) - symbols)
    symbols.clear()
    sources.clear()


def _install():
    """Wrap symbolic_shapes._guard_or (behind guard_or_false / guard_or_true, from Python and
    C++ alike) once: for an expression over unit symbols at a _GENERAL_SITES site, answer
    as torch does for size-oblivious symbols (statically from the ranges, else the
    default); everything else as before."""
    global _installed
    if _installed is not None:
        return _installed
    import torch.fx.experimental._config as shape_config
    from torch.fx.experimental import symbolic_shapes

    original = getattr(symbolic_shapes, "_guard_or", None)
    static_eval = getattr(symbolic_shapes, "_static_eval_sym_bool", None)
    if original is None or static_eval is None or not hasattr(shape_config, "backed_size_oblivious"):
        _installed = False  # another torch: sizes of 1 stay static
        return False

    def _guard_or(a, default):
        units = getattr(getattr(getattr(a, "node", None), "shape_env", None), "terra_unit_symbols", None)
        if units and a.node.expr.free_symbols & units and _general_site(sys._getframe(2).f_code):
            result = static_eval(a)
            return default if result is None else result
        return original(a, default)

    symbolic_shapes._guard_or = _guard_or
    _installed = True
    return True


def _general_site(code):
    name = code.co_filename.replace("\\", "/")
    return any(name.endswith(suffix) and code.co_name == fn for suffix, fn in _GENERAL_SITES)
