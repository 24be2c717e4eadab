"""Python side effects that need no tensor value: recorded, replayed after the graph.

Terra's idea: `print("step", i)`, `log.append(loss_name)`, `obj.count += 1` do not split
the graph. The translator records them in program order; the rewritten code replays them
right after the compiled graph returns: codegen asks each record for its instructions,
`effect.replay(r)` with r a codegen Reconstructor (r.push(value) rebuilds a value).

    Call(fn, args, kwargs)       fn(*args, **kwargs), result dropped (print, logger.info)
    StoreAttr(obj, name, value)  obj.name = value
    StoreGlobal(name, value)     `global n; n = value` (the frame's own globals)
    StoreDeref(name, value)      `nonlocal n; n = value` (the frame's own closure)

Containers with a source (a list argument that was appended to) are written back whole at
the end (`xs[:] = [...]`), see TranslationContext.mutate.
"""
from dataclasses import dataclass, field

from bytecode import FreeVar, Instr

from ..seam import rules


@dataclass
class Call:
    fn: object  # Value
    args: list
    kwargs: dict = field(default_factory=dict)
    lineno: int = None  # the call's line: the replay runs there (logging reads it)

    def replay(self, r):
        names = tuple(self.kwargs)
        args = r.items(list(self.args) + [self.kwargs[k] for k in names])
        call = rules.call(r.push(self.fn), args, len(self.args) + len(names), names) + [Instr("POP_TOP")]
        if self.lineno:  # logging reads the caller's line from the frame
            for ins in call:
                if isinstance(ins, Instr):
                    ins.lineno = self.lineno
        return call

    def __repr__(self):
        return f"Call({self.fn!r}, {self.args!r})"


@dataclass
class StoreAttr:
    obj: object  # Value with a source
    name: str
    value: object  # Value

    def replay(self, r):
        return r.push(self.value) + r.push(self.obj) + [Instr("STORE_ATTR", self.name)]

    def __repr__(self):
        return f"StoreAttr({self.obj!r}.{self.name} = {self.value!r})"


@dataclass
class StoreGlobal:
    name: str
    value: object  # Value

    def replay(self, r):
        return r.push(self.value) + [Instr("STORE_GLOBAL", self.name)]

    def __repr__(self):
        return f"StoreGlobal({self.name} = {self.value!r})"


@dataclass
class StoreDeref:
    """`nonlocal x; x = v` on a closure variable of the translated frame."""

    name: str
    value: object  # Value

    def replay(self, r):
        return r.push(self.value) + [Instr("STORE_DEREF", FreeVar(self.name))]

    def __repr__(self):
        return f"StoreDeref({self.name} = {self.value!r})"
