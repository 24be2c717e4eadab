"""Exceptions raised and caught inside inlined functions, translated like any other path.

    KnownRaise(exception)   an instruction that raises for certain under the translation's
                            guards: a missing key of a guarded dict, `raise IndexError(...)`
                            in an inlined function (the exception is an ExceptionValue)
    Translator.run, in an inlined frame whose exception table covers the instruction:
        unwind(tx, exc)     stack cut to the entry's depth, the exception pushed, jump to
                            the handler, which runs translated:
        PUSH_EXC_INFO       exc -> previous, exc
        CHECK_EXC_MATCH     exc, type -> exc, isinstance(exc, type)
        POP_EXCEPT          previous ->
        RERAISE             exc -> (raises it again: the next handler out, or the caller's)
    Not caught in any inlined frame, it is an ordinary Unsupported at the top-level frame's
    CALL: the callee runs natively and raises there, as before.

The library code that needs it runs on every forward of a transformers model:
`Mapping.get` is `try: return self[key] except KeyError: return default` (the
attention-function registry, whose __getitem__ misses "eager"), and `Sequence.__iter__`
ends at the IndexError its __getitem__ raises (the per-layer config view).

Only inlined frames catch: a top-level frame's handler runs natively (a real exception,
sys.exc_info() and the traceback are the interpreter's), and an ExceptionValue is never
rebuilt in emitted code (a frame that would need one runs unmodified).
"""
from bytecode import TryBegin, TryEnd

from ..real_types import isa
from .errors import Unsupported
from .values import ConstValue, Value


class KnownRaise(Unsupported):
    """The instruction raises `exception` (made at translate time) on every call this
    translation serves."""

    def __init__(self, exception):
        super().__init__(f"{type(exception).__name__} {exception} (raises natively)")
        self.exception = exception


class ExceptionValue(Value):
    """A built-in exception made in an inlined function (`IndexError("out of range")`)."""

    def __init__(self, exception):
        self.exception = exception

    def rebuild(self, r):
        raise Unsupported(f"cannot rebuild {self!r} after a graph break")

    def __repr__(self):
        return f"ExceptionValue({type(self.exception).__name__})"


def construct(tx, cls, args, kwargs):
    """`IndexError(msg)` in an inlined function with constant arguments, else None."""
    if tx.parent is None or cls.__module__ != "builtins" or not issubclass(cls, Exception) or kwargs or \
            not all(isinstance(a, ConstValue) for a in args):
        return None
    return ExceptionValue(cls(*[a.value for a in args]))


def unwind(tx, exc):
    """Jump to the handler that catches `exc` at tx.pc; False when none in this frame."""
    entry = _covering_entry(tx.instrs, tx.pc)
    if entry is None:
        return False
    del tx.stack[entry.stack_depth:]
    if entry.push_lasti:
        tx.push(ConstValue(tx.pc))  # read back only by RERAISE 1, which raises again here
    tx.push(ExceptionValue(exc.exception))
    tx.jump(entry.target)
    return True


def _covering_entry(instrs, pc):
    """The exception table entry (flat in 3.11+) whose range holds instruction pc."""
    active = None
    for ins in instrs[:pc + 1]:
        if isinstance(ins, TryBegin):
            active = ins
        elif isinstance(ins, TryEnd) and ins.entry is active:
            active = None
    return active


class ExceptionOpcodes:
    """Handler opcodes, for inlined frames only (see the module docstring)."""

    def _raised(self):
        exc = self.pop()
        if self.parent is None or not isinstance(exc, ExceptionValue):
            raise Unsupported("exception handler (runs natively)")
        return exc

    def RAISE_VARARGS(self, instr):
        """exc -> (raises)"""
        exc = self.stack[-1] if instr.arg == 1 else None
        if isinstance(exc, ConstValue) and isa(exc.value, type):
            exc = construct(self, exc.value, [], {})  # `raise IndexError`
        if self.parent is None or not isinstance(exc, ExceptionValue):
            raise Unsupported("raise statement (runs natively)")
        self.pop()
        raise KnownRaise(exc.exception)

    def PUSH_EXC_INFO(self, instr):
        """exc -> previous, exc"""
        exc = self._raised()
        self.push(ConstValue(None))  # the exception being handled before: only POP_EXCEPT reads it
        self.push(exc)

    def CHECK_EXC_MATCH(self, instr):
        """exc, type -> exc, isinstance(exc, type)"""
        kind = self.pop()
        exc = self.stack[-1]
        classes = kind.value if isinstance(kind, ConstValue) else None
        if not isinstance(exc, ExceptionValue) or not (
                isinstance(classes, type) or isinstance(classes, tuple) and all(isinstance(c, type) for c in classes)):
            raise Unsupported("except clause over run-time types")
        self.push(ConstValue(isinstance(exc.exception, classes)))

    def POP_EXCEPT(self, instr):
        """previous ->"""
        if self.parent is None:
            raise Unsupported("exception handler (runs natively)")
        self.pop()

    def RERAISE(self, instr):
        """[lasti,] exc -> (raises it again)"""
        raise KnownRaise(self._raised().exception)
