"""Python side effects that need no tensor value: recorded, replayed after the graph.

Terra's idea: `print("step", i)`, `log.append(loss_name)`, `obj.count += 1` do not split
the graph. The translator records them in program order; the rewritten code replays them
right after the compiled graph returns (codegen turns each record into bytecode).

    Call(fn, args, kwargs)       fn(*args, **kwargs), result dropped (print, logger.info)
    StoreAttr(obj, name, value)  obj.name = value
    StoreGlobal(name, value)     `global n; n = value` (the frame's own globals)
    StoreDeref(name, value)      `nonlocal n; n = value` (the frame's own closure)

Containers with a source (a list argument that was appended to) are written back whole at
the end (`xs[:] = [...]`), see TranslationContext.mutate.
"""
from dataclasses import dataclass, field


@dataclass
class Call:
    fn: object  # Value
    args: list
    kwargs: dict = field(default_factory=dict)
    lineno: int = None  # the call's line: the replay runs there (logging reads it)

    def __repr__(self):
        return f"Call({self.fn!r}, {self.args!r})"


@dataclass
class StoreAttr:
    obj: object  # Value with a source
    name: str
    value: object  # Value

    def __repr__(self):
        return f"StoreAttr({self.obj!r}.{self.name} = {self.value!r})"


@dataclass
class StoreGlobal:
    name: str
    value: object  # Value

    def __repr__(self):
        return f"StoreGlobal({self.name} = {self.value!r})"


@dataclass
class StoreDeref:
    """`nonlocal x; x = v` on a closure variable of the translated frame."""

    name: str
    value: object  # Value

    def __repr__(self):
        return f"StoreDeref({self.name} = {self.value!r})"
