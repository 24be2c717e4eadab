"""Decisions about symbolic sizes for symbolic_rules: the sign of a difference or an equality
for all values of the symbols (the ShapeEnv's value ranges), contiguity for all values, and
the values a rule's result is checked at.
"""
import weakref

import torch


# -- decisions about sizes -------------------------------------------------------------


def _expr(x):
    import sympy

    return x.node.expr if isinstance(x, torch.SymInt) else sympy.Integer(x)


def _hint(x):
    """x's value now; None for a size that depends on data (an unbacked symbol: `nonzero`'s
    count), which no decision may be guarded on."""
    return x if type(x) is int else x.node.hint


_UNBACKED_EXAMPLE = 8192  # what an unbacked symbol stands for in the meta check (any value in its range)


def _example(env, x):
    """A value of x to run the op on meta tensors at: its hint, or for a size that depends on
    data, x at its symbols' hints and each unbacked symbol at one value in its range (the same
    for every expression of it, so the rule's result is checked at one consistent point);
    None when that gives no integer."""
    if type(x) is int:
        return x
    hint = x.node.hint
    if hint is not None:
        return hint
    import sympy

    expr = x.node.expr
    cache = _examples.setdefault(env, {})
    if expr not in cache:
        known, values = getattr(env, "backed_var_to_val", None), {}
        if known is None:
            known = env.var_to_val
        for sym in expr.free_symbols:
            value = known.get(sym)
            if value is None:
                bounds = env.var_to_range.get(sym)
                value = _UNBACKED_EXAMPLE
                if bounds is not None:
                    if bounds.upper.is_finite and value > bounds.upper:
                        value = int(bounds.upper)
                    if bounds.lower.is_finite and value < bounds.lower:
                        value = int(bounds.lower)
            values[sym] = sympy.Integer(value)
        out = expr.xreplace(values)
        cache[expr] = int(out) if out.is_Integer else None
    return cache[expr]


_examples = weakref.WeakKeyDictionary()  # ShapeEnv -> {expression: its example value}


def _compare(env, a, b):
    """The sign of a - b for all values of the symbols (-1, 0, 1), or None when it depends
    on them (the ShapeEnv's value ranges: sizes >= 2, and what its guards have learned)."""
    if type(a) is int and type(b) is int:
        return (a > b) - (a < b)
    ea, eb = _expr(a), _expr(b)
    if ea == eb:
        return 0
    diff = ea - eb
    if diff.is_Number:
        return int(bool(diff > 0)) - int(bool(diff < 0))
    sign = _sign(env, diff)
    if sign is None:
        import sympy

        diff = sympy.expand(diff)
        if diff.is_Number:
            return int(bool(diff > 0)) - int(bool(diff < 0))
        sign = _sign(env, diff)
    if sign is None:
        bounds = env.bound_sympy(diff)
        sign = 1 if bounds.lower > 0 else -1 if bounds.upper < 0 else None
    return sign


def _not_above(env, a, b):
    """a <= b for all values of the symbols: by sign, by `Min(x, b) <= b` / `a <= Max(a, y)`
    (interval bounds lose that), or by the ShapeEnv's bounds on a - b."""
    sign = _compare(env, a, b)
    if sign is not None:
        return sign <= 0
    return _expr_not_above(env, _expr(a), _expr(b))


def _expr_not_above(env, ea, eb):
    import sympy
    from torch.utils._sympy.functions import Max, Min

    if ea == eb:
        return True
    if isinstance(ea, (sympy.Min, Min)) and any(_expr_not_above(env, x, eb) for x in ea.args) \
            or isinstance(eb, (sympy.Max, Max)) and any(_expr_not_above(env, ea, x) for x in eb.args):
        return True
    diff = ea - eb
    if diff.is_Number:
        return bool(diff <= 0)
    return bool(env.bound_sympy(diff).upper <= 0)


def _sign(env, expr):
    """1 or -1 when a polynomial whose non-constant terms all have one sign, over symbols
    that are never negative, is bounded away from 0 by its terms at the symbols' lowest
    values; else None. Cheaper than the ShapeEnv's bound_sympy for `16*s0 + 16` against 0."""
    constant, low, signs = 0, 0, set()
    for term, coeff in expr.as_coefficients_dict().items():
        if not coeff.is_Integer:
            return None
        if term.is_Number:
            constant += int(coeff) * int(term)
            continue
        least = 1
        for sym, power in term.as_powers_dict().items():
            bounds = env.var_to_range.get(sym) if sym.is_Symbol else None
            if bounds is None or not power.is_Integer or power < 1 or not bounds.lower >= 0:
                return None
            least *= int(bounds.lower) ** int(power)
        signs.add(coeff > 0)
        low += int(coeff) * least
    if signs == {True} and constant + low > 0:
        return 1
    if signs == {False} and constant + low < 0:
        return -1
    return None


def _same(env, a, b):
    """True/False when a == b holds/fails for all values, None when it depends on them.
    Two symbolic sizes equal now whose relation is open (a layer's cached keys and values,
    each its own symbol) are made one, as FakeTensorMode's ops do: the ShapeEnv records
    `s1 == s0` (a guard, and a replacement so later sizes compare as the same)."""
    sign = _compare(env, a, b)
    if sign is None and type(a) is not int and type(b) is not int and _hint(a) is not None \
            and _hint(a) == _hint(b) and not _expr(a).is_number and not _expr(b).is_number:
        return bool(a == b)  # guarded (True: the hints are equal)
    return None if sign is None else sign == 0


def _is_one(x):
    return type(x) is int and x == 1


def _contiguous_strides(env, sizes):
    """torch's contiguous strides (a size 0 counts as 1: `Max(1, n)` for a symbolic size the
    value ranges do not keep at least 1)."""
    strides, step = [], 1
    for i, size in enumerate(reversed(sizes)):
        strides.append(step)
        if i == len(sizes) - 1:
            break  # the outermost size is in no stride
        if type(size) is int:
            size = max(size, 1)
        elif _compare(env, size, 1) not in (0, 1):
            size = torch.sym_max(size, 1)  # may be 0 (a mask over a counter that may be -1)
        step = step * size
    return strides[::-1]


def _canonical(env, t):
    """t is contiguous for all values: each stride the product of the sizes after it (the
    strides of size-1 dims, which torch ignores, aside)."""
    expected = _contiguous_strides(env, list(t.shape))
    return all(_is_one(n) or _same(env, s, c) is True for n, s, c in zip(t.shape, t.stride(), expected))


class _Fail(Exception):
    """A rule cannot decide for all values: FakeTensorMode decides."""


def _need(flag):
    if flag is not True:
        raise _Fail
