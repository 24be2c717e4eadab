"""Symbolic sizes in Python's words: what a translation assumed about them becomes guard text.

    python_of(Eq(s0, s1 + 1), {s0: "a0.size()[0]", s1: "a1.size()[0]"})
        -> "(a0.size()[0]) == (1 + (a1.size()[0]))"
    NumberSource("a0.step")  -> the torch._guards.Source a ShapeEnv wants for a symbol (made
                                on first use: static translations never import torch._guards)
    shape_env()              -> a ShapeEnv for one symbolic translation

An expression this cannot spell (an op on sizes Python has no operator for) fails the
attempt with DynamicShapesFailed naming the sizes in it; convert_frame retranslates with
those static.
"""


class DynamicShapesFailed(Exception):
    """The translation relied on the value of a size or number it was asked to keep symbolic
    (`range(n)`, a dict key, an op that needed it equal to something): translate again with
    those (`exprs`, e.g. {"a0.size()[0]"}) static."""

    def __init__(self, message, exprs=(), unit=False):
        super().__init__(message)
        self.exprs = set(exprs)
        self.unit = unit  # all of `exprs` are sizes that may be 1 (unit_sizes): only they go static


_RELATIONS = {"Equality": "==", "Unequality": "!=", "StrictLessThan": "<", "LessThan": "<=",
              "StrictGreaterThan": ">", "GreaterThan": ">="}


def python_of(expr, names):
    """Python source for a sympy expression over symbolic sizes (`names`: symbol -> source
    expression): integers, sums, products and comparisons; anything else fails the
    translation's symbolic sizes."""
    kind = type(expr).__name__
    if expr in names:
        return f"({names[expr]})"
    if expr.is_Integer:
        return str(int(expr))
    if kind in _RELATIONS:
        return f"{python_of(expr.lhs, names)} {_RELATIONS[kind]} {python_of(expr.rhs, names)}"
    if expr.is_Add:
        return "(" + " + ".join(python_of(a, names) for a in expr.args) + ")"
    if expr.is_Mul:
        return "(" + " * ".join(python_of(a, names) for a in expr.args) + ")"
    if kind in _FUNCTIONS:
        return f"{_FUNCTIONS[kind]}({', '.join(python_of(a, names) for a in expr.args)})"
    if kind in _OPERATORS and len(expr.args) == 2:
        return f"({python_of(expr.args[0], names)} {_OPERATORS[kind]} {python_of(expr.args[1], names)})"
    if kind == "Pow" and expr.exp.is_Integer and expr.exp > 0:
        return f"({python_of(expr.base, names)} ** {int(expr.exp)})"
    if kind == "Not":
        return f"(not {python_of(expr.args[0], names)})"
    if kind in ("And", "Or"):
        return "(" + f" {kind.lower()} ".join(python_of(a, names) for a in expr.args) + ")"
    raise DynamicShapesFailed(f"the translation assumed {expr}", sources_in(expr, names))


# torch's sympy functions over ints (torch/utils/_sympy/functions.py), as Python spells them
_OPERATORS = {"FloorDiv": "//", "PythonMod": "%", "Mod": "%", "IntTrueDiv": "/"}
_FUNCTIONS = {"Max": "max", "Min": "min"}


def sources_in(expr, names):
    return {names[s] for s in getattr(expr, "free_symbols", ()) if s in names}


class NumberSource:
    """Names a symbol after the terra_dyn source it stands for (`a1`, `a0.step`): the ShapeEnv
    wants a torch._guards.Source; made on first use (torch._guards is not imported for static
    translations)."""

    def __new__(cls, expr):
        return _number_source_class()(expr)


def _number_source_class():
    global _NUMBER_SOURCE
    if _NUMBER_SOURCE is None:
        import dataclasses

        from torch._guards import GuardSource, Source

        @dataclasses.dataclass(frozen=True)
        class NumberSource(Source):
            expr: str

            @property
            def _name_template(self):
                return self.expr

            def guard_source(self):
                return GuardSource.LOCAL

        _NUMBER_SOURCE = NumberSource
    return _NUMBER_SOURCE


_NUMBER_SOURCE = None


def shape_env():
    """A ShapeEnv without duck sizing (two sizes equal at translate time are not assumed
    equal) that names no user frame for its symbols and guards. torch's ShapeEnv walks the
    stack for each new symbol and guard, to a frame outside its `uninteresting_files()`, and
    the first such walk imports torch.export, torch._inductor and torch._dynamo to list those
    files: about 1.9 s of CPU time in the first symbolic translation of a process (mistral's
    generate loop, whose steady state saves about 1.5 ms a token). terra_dyn's guards carry
    their own source expressions; the location is never read."""
    global _SHAPE_ENV
    if _SHAPE_ENV is None:
        # sympy imports sympy.tensor.tensor (and sympy.combinatorics) at its first sum of
        # symbols; made there, deep in the first symbolic translation of a process, that
        # import cost 250-450 ms of gemma2's (its cost alone: 40-60 ms). Made here, at once.
        import sympy.tensor.tensor  # noqa: F401
        from torch.fx.experimental.symbolic_shapes import ShapeEnv, SLoc

        class QuietShapeEnv(ShapeEnv):
            def _get_stack_summary(self, is_debug=False, framework_loc=None):
                return SLoc(framework_loc or "terra_dyn translation", None), ""

        _SHAPE_ENV = QuietShapeEnv
    return _SHAPE_ENV(duck_shape=False)


_SHAPE_ENV = None
