"""The flattened signature the hook calls rewritten code with.

The hook passes a frame's argument slots positionally: positional parameters, keyword-only
parameters, then the `*args` tuple and the `**kwargs` dict, in `co_varnames` order. A code
object with that signature is the original with its flags and counts changed:

    def f(a, b=1, *rest, c, **kw): ...      # co_varnames starts a, b, c, rest, kw
    flatten_signature(f.__code__)            # a code object taking (a, b, c, rest, kw)
"""
import inspect
import types

_VARARGS = inspect.CO_VARARGS
_VARKEYWORDS = inspect.CO_VARKEYWORDS


def argument_slot_count(code: types.CodeType) -> int:
    """How many argument slots the frame of `code` has."""
    n = code.co_argcount + code.co_kwonlyargcount
    n += bool(code.co_flags & _VARARGS) + bool(code.co_flags & _VARKEYWORDS)
    return n


def argument_slot_names(code: types.CodeType) -> tuple:
    """Names of the argument slots, in the order the hook passes them."""
    return code.co_varnames[: argument_slot_count(code)]


def flatten_signature(code: types.CodeType) -> types.CodeType:
    """`code` taking every argument slot positionally (an identity translation)."""
    return code.replace(
        co_argcount=argument_slot_count(code),
        co_posonlyargcount=0,
        co_kwonlyargcount=0,
        co_flags=code.co_flags & ~(_VARARGS | _VARKEYWORDS),
    )
