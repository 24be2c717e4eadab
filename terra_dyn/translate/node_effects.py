"""What an FX node does besides computing its result (GraphState.call and finish):

    is_impure(node)                        -> kept by dead-code elimination (in-place, RNG, autocast)
    mutated_arg(kind, target, args, kwargs) -> the TensorValue an in-place op writes to, or None
"""
import operator

import torch

from . import autocast
from .values import ConstValue, TensorValue


def is_impure(node):
    """Does the node change state (in place, RNG, autocast, grad mode): kept by dead-code elimination."""
    if node.op in ("placeholder", "output"):
        return True
    target = node.target
    from .generator_cm import is_impure as changes_rng_state

    if changes_rng_state(target) or autocast.is_impure(target):  # rng / autocast switches: kept,
        return True  # in program order
    if node.op == "call_method":
        return isinstance(target, str) and target.endswith("_") and not target.endswith("__")
    name = getattr(target, "__name__", "")
    if getattr(target, "__module__", None) in ("_operator", "operator") and target not in _INPLACE_OPERATORS \
            and target is not operator.setitem:
        return False
    if target in (operator.setitem, torch._C._set_grad_enabled, operator.iadd, operator.imul,
                  operator.isub, operator.itruediv):
        return True
    if node.kwargs.get("inplace") is True or "out" in node.kwargs:
        return True
    return name.endswith("_") and not name.endswith("__")


_INPLACE_OPERATORS = {operator.iadd, operator.isub, operator.imul, operator.itruediv,
                      operator.ifloordiv, operator.imod, operator.ipow, operator.iand, operator.ior,
                      operator.ixor, operator.ilshift, operator.irshift, operator.imatmul}


def mutated_arg(kind, target, args, kwargs):
    """The TensorValue an in-place op writes to and returns, or None."""
    out = kwargs.get("out")
    if isinstance(out, TensorValue):
        return out
    first = args[0] if args else None
    if not isinstance(first, TensorValue):
        return None
    if kind == "call_method":
        name = target
    elif target in _INPLACE_OPERATORS:
        return first
    elif getattr(target, "__module__", None) in ("_operator", "operator"):
        return None  # operator.and_ / or_ are not in-place despite the underscore
    else:
        name = getattr(target, "__name__", "")
        inplace = kwargs.get("inplace")
        if isinstance(inplace, ConstValue) and inplace.value is True:
            return first
    if name.endswith("_") and not name.endswith("__"):
        return first
    return None
