"""An f-string whose run-time numbers are known only when it is built (a recorded print)."""
from bytecode import Instr

from ..seam import rules
from .values import Value


class FormattedValue(Value):
    """An f-string with run-time numbers in it, built when a recorded print replays.
    `parts`: ConstValue strings and (ScalarValue, conversion, format spec) triples."""

    def __init__(self, parts):
        self.parts = list(parts)

    def rebuild(self, r):
        out = []
        for part in self.parts:
            if isinstance(part, tuple):
                scalar, conversion, spec = part
                out += r.push(scalar)
                if spec:
                    out.append(Instr("LOAD_CONST", spec))
                out += rules.format_value(conversion, bool(spec))
            else:
                out += r.push(part)
        return out + [Instr("BUILD_STRING", len(self.parts))]

    def __repr__(self):
        return f"FormattedValue({len(self.parts)} parts)"
