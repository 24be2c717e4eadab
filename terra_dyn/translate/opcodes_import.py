"""Opcode handlers: imports of modules that are already imported.

    level, fromlist IMPORT_NAME name -> module      (sys.modules[name], resolved now)
    module IMPORT_FROM name          -> module, module.name

Library code imports inside functions (transformers: `from ..integrations import ...` in
a forward, `import torch.distributed as dist` in a helper). When every module the
statement names is in sys.modules, the statement only looks them up, so the result is a
constant of the translation. A module not imported yet would run its import (arbitrary
code, once): that stays a graph break, run natively.

Guarded as a foreign global: `sys.modules.get(name) is module`, and for `from m import x`
`m.__dict__.get("x") is x` (the C `global_id` check takes any dict), so a module replaced
in sys.modules or a rebound attribute makes the translation miss.
"""
import importlib.util
import sys

from .errors import Unsupported
from .values import ConstValue


def _imported(name):
    module = sys.modules.get(name)
    if module is None:
        raise Unsupported(f"import of {name!r}, not imported yet (runs natively)")
    return module


def _module_value(tx, name):
    _imported(name)
    return tx.ctx.wrap_global(sys.modules, name)


class ImportOpcodes:
    def IMPORT_NAME(self, instr):
        """level, fromlist -> module"""
        fromlist, level = self.pop(), self.pop()
        if not (isinstance(level, ConstValue) and isinstance(fromlist, ConstValue)):
            raise Unsupported("import with computed arguments")
        level, fromlist = level.value, fromlist.value
        name = instr.arg
        if level:
            package = self.f_globals.get("__package__") or self.f_globals.get("__name__", "").rpartition(".")[0]
            if not package:
                raise Unsupported("relative import outside a package")
            name = importlib.util.resolve_name("." * level + name, package)
        parts = name.split(".")
        for i in range(1, len(parts) + 1):  # `import a.b.c` imports a, a.b and a.b.c
            _imported(".".join(parts[:i]))
        if fromlist:
            module = _imported(name)
            for item in fromlist:  # `from a import b`: b is an attribute or a submodule
                if item != "*" and not hasattr(module, item):
                    _imported(f"{name}.{item}")
            self.push(_module_value(self, name))
        else:  # `import a.b` binds `a`
            self.push(_module_value(self, parts[0]))

    def IMPORT_FROM(self, instr):
        """module -> module, module.name"""
        module = self.stack[-1]
        if not isinstance(module, ConstValue):
            raise Unsupported("from-import of a computed module")
        real = module.value
        if not isinstance(getattr(real, "__dict__", None), dict):
            raise Unsupported("from-import of an object without a __dict__")
        if instr.arg in real.__dict__:
            self.push(self.ctx.wrap_global(real.__dict__, instr.arg))
        else:  # a submodule not bound as an attribute yet
            self.push(_module_value(self, f"{real.__name__}.{instr.arg}"))
