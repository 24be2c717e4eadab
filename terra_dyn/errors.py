"""Why a translation stopped: `Unsupported` (a construct the translator does not capture).

Neutral ground: translate raises it, codegen raises it too (a value that cannot be rebuilt,
a break kind it cannot emit), and codegen never imports translate (docs/VERSIONS.md,
"Values rebuild themselves"); translate/errors.py re-exports both names.

    raise Unsupported("call to print with a tensor argument")   # inside an opcode handler
    -> the executor adds file/line/stack -> a graph break at that instruction, or a fallback

`Unsupported.breakable` says whether a graph break may split here: false for problems that
make the whole frame untranslatable (e.g. generator code), true for one instruction.
"""
import torch


class Unsupported(Exception):
    """A construct the translator does not capture. Carries the user's file, line and stack."""

    def __init__(self, reason, filename="", lineno=0, breakable=True):
        super().__init__(reason)
        self.reason = reason
        self.filename = filename
        self.lineno = lineno
        self.breakable = breakable
        self.user_stack = []  # "file:line in func", outermost first
        self.source_line = ""

    def locate(self, filename, lineno, func_name):
        """Called by each frame the exception passes through: innermost first."""
        if not self.filename:
            self.filename, self.lineno = filename, lineno or 0
        self.user_stack.insert(0, f"{filename}:{lineno} in {func_name}")
        return self

    def __str__(self):
        where = f"{self.filename}:{self.lineno}: " if self.filename else ""
        return f"{where}{self.reason}"


_TENSORS = (torch.Tensor, torch.nn.Parameter)
_PLAIN_REPR = (int, float, complex, bool, str, bytes, type(None), tuple, range, slice)


def safe_repr(obj, limit=60):
    """repr() for messages and reports that never runs user code: a user `__repr__` called
    at translate time is a side effect Python would not have (CPython's test_class records
    every special-method call), so objects of other classes show as <TypeName>."""
    cls = type(obj)
    if cls in _TENSORS and obj.numel() > 17:
        # its repr is longer than 60 characters (`tensor([a, b, ...])`: 3 or more per item), and
        # formatting the values took ~7 ms a weight in guard descriptions (mistral's first call)
        return f"<{cls.__name__}>"
    if cls in _PLAIN_REPR and not (cls is tuple and not all(type(x) in _PLAIN_REPR for x in obj)) or \
            cls.__module__ in ("builtins", "torch") or cls.__module__.startswith("torch."):
        try:
            text = repr(obj)
        except Exception:
            text = f"<{cls.__name__}>"
        return text if len(text) <= limit else f"<{cls.__name__}>"
    return f"<{cls.__name__}>"
