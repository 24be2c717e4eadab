"""Function values: functions made during translation and the cells they close over.

    FunctionValue   a function made by MAKE_FUNCTION (a lambda, a nested def, a closure)
    CellValue       a closure cell made during translation (or the frame's own)

Both are rebuilt in emitted code when they outlive the translation (returned, stored,
handed to a resume function). Example: `def add(y): return x + y` inside a translated
frame is FunctionValue(add) with one CellValue for x; returned, it is rebuilt as
`FunctionType(<code>, <globals>, "add", None, (<cell of x>,))`.
"""
import types

from bytecode import Instr

from ..errors import Unsupported
from ..seam import rules
from .values import Value


def with_annotations(fn, pairs):
    """fn with the annotations MAKE_FUNCTION gives it: `pairs` is its (name, value, ...)
    tuple."""
    fn.__annotations__ = dict(zip(pairs[::2], pairs[1::2]))
    return fn


class FunctionValue(Value):
    """A function created during translation (a lambda, a nested def, a closure)."""

    def __init__(self, code, f_globals, name, defaults=None, kwdefaults=None, closure=None, annotations=None):
        self.code = code
        self.f_globals = f_globals
        self.name = name
        self.qualname = code.co_qualname  # as MAKE_FUNCTION sets it
        self.defaults = defaults  # TupleValue or None
        self.kwdefaults = kwdefaults  # DictValue or None
        self.closure = closure  # list of CellValue or None
        self.annotations = annotations  # TupleValue (name, value, name, value...) or None

    def children(self):
        return list(self.closure or [])

    def fresh_mutable(self):
        return self.source is None

    def rebuild(self, r):
        if self.source is not None:  # a real function (translate/frame.py)
            return r.load_source(self.source)
        if self.annotations is None:
            return self._rebuild_function(r)
        # dataclasses' generated `__init__` (made by exec'd code, translated as the user's):
        # inspect.signature and the class's docstring read its annotations
        return r.call_const(with_annotations, self._rebuild_function(r) + r.push(self.annotations), 2)

    def _rebuild_function(self, r):
        if self.kwdefaults is not None:
            raise Unsupported("cannot rebuild a function with keyword-only defaults")
        if not self.closure and self.defaults is None:
            return [Instr("LOAD_CONST", self.code)] + rules.make_function()
        # a closure: its cells are the frame's (shared with resume functions) or built here
        defaults = r.push(self.defaults) if self.defaults is not None else [Instr("LOAD_CONST", None)]
        closure = r.items(self.closure) + [Instr("BUILD_TUPLE", len(self.closure))] if self.closure else [
            Instr("LOAD_CONST", None)]
        made = [Instr("LOAD_CONST", self.code), Instr("LOAD_CONST", self.f_globals), Instr("LOAD_CONST", self.name)]
        return r.call_const(types.FunctionType, made + defaults + closure, 5)

    def __repr__(self):
        return f"FunctionValue({self.name})"


class CellValue(Value):
    """A closure cell created during translation."""

    real = False  # True: the frame's own cell or a real closure's (frame.py, inline.py)
    closure_name = None  # the frame's own cell: rebuilt as LOAD_CLOSURE of this name

    def __init__(self, content=None):
        self.content = content

    def fresh_mutable(self):
        return not self.real  # made during translation (a frame's own, a closure's)

    def rebuild(self, r):
        if self.fresh_mutable():  # empty: fill() stores the contents once the temp exists
            return r.call_const(types.CellType, [], 0)
        if self.closure_name is not None:
            return rules.load_closure(self.closure_name)  # the frame's own cell
        raise Unsupported(f"cannot rebuild {self!r} after a graph break")

    def fill(self, r, load):
        """The contents after the cell: a function stored in the cell it closes over (a
        recursive inner def) then finds the cell already built."""
        if self.content is None:
            return []
        return r.push(self.content) + load + [Instr("STORE_ATTR", "cell_contents")]

    def __repr__(self):
        return f"CellValue({self.content!r})"


class SavedCellValue(Value):
    """A frame's cell set aside by an inlined comprehension (3.12+): LOAD_FAST_AND_CLEAR of a
    cell slot pushes the cell itself, MAKE_CELL gives the comprehension a cell of its own, and
    STORE_FAST puts the saved one back. `[lambda: x for x in range(x)], x` must read the
    outer x after the loop, and a second comprehension's lambdas must not share the first's
    cell."""

    def __init__(self, cell):
        self.cell = cell

    def rebuild(self, r):
        raise Unsupported("a comprehension's saved closure cell across a graph break")

    def __repr__(self):
        return f"SavedCellValue({self.cell!r})"
