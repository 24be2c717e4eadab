"""Sources: where a value the translation used lives at run time, relative to the frame.

A source is both a Python expression over the frame's argument slots (for guards) and a
bytecode load sequence (for the rewritten code):

    AttrSource(ItemSource(LocalSource("xs", 0), 1), "weight")
        expr()  -> "a0[1].weight"          (guards see the slots as a0, a1, ...)
        load()  -> LOAD_FAST xs; LOAD_CONST 1; BINARY_SUBSCR; LOAD_ATTR weight

Module attributes found in `_parameters`, `_buffers` or `_modules` are read straight from
those dicts (ModuleDictSource): nn.Module.__getattr__ is a Python call, a dict lookup is not.
"""
from dataclasses import dataclass

from bytecode import FreeVar, Instr

from ..seam import rules


class Source:
    # True: a load that follows a path a native instruction may rebind (`h.l`, `xs[0]`), so
    # a break loads it into a temp first (codegen Reconstructor.pin); a local is no path
    is_path = True

    def expr(self) -> str:
        raise NotImplementedError

    def load(self) -> list:
        raise NotImplementedError

    def root(self):
        return self

    def expr_from(self, base_text):
        """expr() with the base's expression replaced by `base_text` (a guard's shorter
        reading of it: a pinned object, a bound prefix)."""
        return base_text + self.expr()[len(self.base.expr()):]

    def __repr__(self):
        return self.expr()


@dataclass(frozen=True, repr=False)
class LocalSource(Source):
    """An argument slot (index `slot` of the flattened signature) or any local variable."""

    name: str
    slot: int = -1
    is_path = False

    def expr(self):
        return f"a{self.slot}" if self.slot >= 0 else f"<local {self.name}>"

    def load(self):
        return [Instr("LOAD_FAST", self.name)]


@dataclass(frozen=True, repr=False)
class FreeVarSource(Source):
    """A closure variable of the translated frame (checked in the rewritten code's prologue)."""

    name: str

    def expr(self):
        return f"<closure {self.name}>"

    def load(self):
        return [Instr("LOAD_DEREF", FreeVar(self.name))]


@dataclass(frozen=True, repr=False)
class GlobalSource(Source):
    name: str

    def expr(self):
        return f"G[{self.name!r}]"

    def load(self):
        return rules.load_global(self.name)


@dataclass(frozen=True, repr=False)
class AttrSource(Source):
    base: Source
    name: str

    def expr(self):
        return f"{self.base.expr()}.{self.name}"

    def load(self):
        return self.base.load() + rules.load_attr(self.name)

    def root(self):
        return self.base.root()


@dataclass(frozen=True, repr=False)
class GenericAttrSource(Source):
    """`object.__getattribute__(base, name)`: what an inlined Python __getattribute__ read
    through `super().__getattribute__(name)` (a transformers config maps old names through
    `attribute_map`, then reads `use_cache` so). Guards and loads read it the same way, not
    through the override again (two Python calls a read): the override's own reads are
    guarded apart, and its code by the class's version tag."""

    base: Source
    name: str

    def expr(self):
        return self.expr_from(self.base.expr())

    def expr_from(self, base_text):
        return f"object.__getattribute__({base_text}, {self.name!r})"

    def load(self):
        return rules.call_const(object.__getattribute__, self.base.load() + [Instr("LOAD_CONST", self.name)], 2)

    def root(self):
        return self.base.root()


@dataclass(frozen=True, repr=False)
class ModuleDictSource(Source):
    """`module._parameters[name]` (or `_buffers` / `_modules`): what `module.name` returns."""

    base: Source
    table: str
    name: str

    def expr(self):
        return f"{self.base.expr()}.{self.table}[{self.name!r}]"

    def load(self):
        return self.base.load() + rules.load_attr(self.table) + [
            Instr("LOAD_CONST", self.name), Instr("BINARY_SUBSCR")]

    def root(self):
        return self.base.root()


@dataclass(frozen=True, repr=False)
class ItemSource(Source):
    base: Source
    key: object  # an int, str or other constant

    def expr(self):
        return f"{self.base.expr()}[{self.key!r}]"

    def load(self):
        return self.base.load() + [Instr("LOAD_CONST", self.key), Instr("BINARY_SUBSCR")]

    def root(self):
        return self.base.root()


@dataclass(frozen=True, repr=False)
class ClosureCellSource(Source):
    """`fn.__closure__[i].cell_contents` of an inlined closure."""

    base: Source
    index: int

    def expr(self):
        return f"{self.base.expr()}.__closure__[{self.index}].cell_contents"

    def load(self):
        return self.base.load() + rules.load_attr("__closure__") + [
            Instr("LOAD_CONST", self.index), Instr("BINARY_SUBSCR")] + rules.load_attr("cell_contents")

    def root(self):
        return self.base.root()


@dataclass(frozen=True, repr=False)
class DefaultSource(Source):
    """`fn.__defaults__[i]` / `fn.__kwdefaults__[name]` of an inlined function."""

    base: Source
    key: object
    kw: bool = False

    def expr(self):
        table = "__kwdefaults__" if self.kw else "__defaults__"
        return f"{self.base.expr()}.{table}[{self.key!r}]"

    def load(self):
        table = "__kwdefaults__" if self.kw else "__defaults__"
        return self.base.load() + rules.load_attr(table) + [
            Instr("LOAD_CONST", self.key), Instr("BINARY_SUBSCR")]

    def root(self):
        return self.base.root()


def is_guardable_in_slots(source: Source) -> bool:
    """Whether `source` can be evaluated from the argument slots and globals alone."""
    return not isinstance(source.root(), FreeVarSource)


