"""contextvars.ContextVar in translated code: reads guarded, set/reset pairs in the graph.

    var.get()            the value a set earlier in this translation gave, else the real
                         value now: a guarded constant (None, bool, int, str)
    token = var.set(v)   in an inlined function: v is what later gets read, until
    var.reset(token)     the matching reset; nothing reaches the real variable
    a set still in force when its function returns (or one in the top-level frame, whose
    effect would outlive the graph) -> Unsupported: that call runs natively

Library code switches behaviour for the extent of a call this way (transformers' output
capturing and the kernels package: `token = VAR.set(x); try: ... finally: VAR.reset(token)`),
so a balanced pair has no effect outside the call, and the reads between them see x.

Example: `def inner(x): t = V.set(2); y = x * V.get(); V.reset(t); return y` inlined in
`f(x)` gives one graph mul(x, 2), and V stays unset.
"""
import contextvars
import functools

from ..real_types import isa
from .errors import Unsupported
from .values import ConstValue, Value


class ContextTokenValue(Value):
    """The token of a set made in the translation (never rebuilt in emitted code: a frame
    that would need it runs unmodified)."""

    def __init__(self, owner):
        self.owner = owner  # the Translator of the function that made the set

    def rebuild(self, r):
        raise Unsupported(f"cannot rebuild {self!r}: the token of a set made in the translation")

    def __repr__(self):
        return f"ContextTokenValue({self.owner.name})"


def get(tx, args, kwargs):
    """`var.get()`: library code reads a ContextVar on every call (transformers' kernel
    and output-capturing switches), nearly always unset, so None. The value read now is a
    constant of the translation, guarded by calling `var.get(...)` again (a C call_id
    check); only None, bools, ints and strings, whose identity says all about them."""
    if kwargs or not args or not all(isinstance(a, ConstValue) for a in args):
        raise Unsupported("ContextVar.get with run-time arguments")
    var, extra = args[0], [a.value for a in args[1:]]
    if not isa(var.value, contextvars.ContextVar) or var.source is None and not var.is_const():
        raise Unsupported("ContextVar.get of an unknown variable")
    pairs = tx.ctx.context_vars.get(id(var.value))
    if pairs:
        return pairs[-1][1]
    try:
        value = var.value.get(*extra)
    except LookupError:
        raise Unsupported("ContextVar.get of an unset variable (raises natively)") from None
    if value is not None and type(value) not in (bool, int, str):
        raise Unsupported(f"ContextVar.get returned a {type(value).__name__}")
    if var.by_type:  # the guard below reads this very variable: pin it
        tx.ctx.guards.identity(var.source, var.value)
    tx.ctx.guards.call_id(functools.partial(var.value.get, *extra), value)
    return ConstValue(value)


def set_or_reset(tx, f, args, kwargs):
    if kwargs or len(args) != 2 or not isinstance(args[0], ConstValue) or \
            not isinstance(args[0].value, contextvars.ContextVar):
        raise Unsupported(f"ContextVar.{f.__name__} with these arguments")
    if tx.parent is None or getattr(tx, "suspend_at_yield", False):
        # its effect would outlive the graph (or a generator's suspension): runs natively
        raise Unsupported(f"ContextVar.{f.__name__} outside an inlined function (runs natively)")
    var = args[0].value
    pairs = tx.ctx.context_vars.setdefault(id(var), [])
    tx.ctx.keep_alive(var)
    if f is contextvars.ContextVar.set:
        token = ContextTokenValue(tx)
        pairs.append((token, args[1]))
        return token
    if not pairs or pairs[-1][0] is not args[1]:
        raise Unsupported("ContextVar.reset of another token (raises natively)")
    pairs.pop()
    return ConstValue(None)


def check_reset(tx, child):
    """A function inlined by `tx` returned: every set it made must be reset by now."""
    for pairs in tx.ctx.context_vars.values():
        if any(token.owner is child for token, _ in pairs):
            raise Unsupported(f"a ContextVar set in {child.name} is still set when it returns: called natively")


WRITES = (contextvars.ContextVar.set, contextvars.ContextVar.reset)
