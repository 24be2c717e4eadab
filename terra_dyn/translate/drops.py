"""Drops that may finalize: an object whose class has `__del__` (or with a weak reference
whose callback is not terra_dyn's or torch's own: `weakref.finalize`, a WeakValueDictionary
entry) dies where plain Python lets go of its last reference (`del x`, `x = ...`, `o.a = ...`, `d[k] = ...`, `lst.clear()`), and
what follows may observe it (a counter, a closed resource). The translator replays stores
after the graph and its resume calls hold values until they return, so such a drop breaks
there and runs natively (opcodes_stack.check_drop for names, check_overwrite for the rest).
"""
import sys
import types
import weakref

import torch

from ..real_types import held_by_its_module
from .errors import Unsupported
from .values import ConstValue, Lazy, ListValue, TupleValue, Value


def _finalizes(value, depth):
    if isinstance(value, (ConstValue, Lazy)):
        return _real_finalizes(value.value if isinstance(value, ConstValue) else value.real, depth)
    if depth and isinstance(value, (TupleValue, ListValue)):
        items = value._items if isinstance(value, ListValue) else value.items
        return items is not None and any(_finalizes(v, depth - 1) for v in items[:64])
    return False


def _same(a, b):
    return a is b or isinstance(a, Lazy) and isinstance(b, Lazy) and a.real is b.real


def _real_finalizes(obj, depth):
    cls = type(obj)
    if getattr(cls, "__del__", None) is not None:
        return True
    if cls is types.ModuleType and sys.modules.get(obj.__name__) is obj:
        return False  # sys.modules holds it: a local drop never finalizes an imported module
    # a function or class its module holds is never let go by a local drop, whatever weak
    # references other tools keep to it (torch.compile's bookkeeping puts
    # `weakref.finalize` on `tuple` and `all`, and WeakKeyDictionary entries on the functions
    # it traced: transformers' mask functions and ModelOutput.to_tuple broke, issue 17)
    if cls.__weakrefoffset__ and weakref.getweakrefcount(obj) and not isinstance(obj, torch.Tensor) and \
            not held_by_its_module(obj) and any(_user_callback(r.__callback__) for r in weakref.getweakrefs(obj)):
        return True
    if depth and type(obj) in (list, tuple, dict):
        items = list(obj.values()) if type(obj) is dict else obj
        return any(_real_finalizes(x, depth - 1) for x in items[:64])
    return False


def _user_callback(callback):
    """A weak reference's callback the user can observe: not terra_dyn's own bookkeeping
    (cache entries dropped with their code) nor torch's (WeakIdKeyDictionary entries)."""
    if callback is None:
        return False
    owner = getattr(callback, "__module__", None) or type(callback).__module__ or ""
    return not owner.startswith(("terra_dyn.", "torch."))


def check_overwrite(tx, olds, what):
    """A store or deletion into an attribute, a container item or a cell lets go of each of
    `olds` (Values, or the real objects a real object's attribute holds): one whose class has
    `__del__`, not held by the frame's stack or names, may be finalized right there in
    plain Python; the replayed store would run after the graph (or not at all while the
    translation holds the object): the instruction runs natively (a break here)."""
    held = None
    for old in olds:
        tracked = isinstance(old, (Value, Lazy))
        if old is None or not (_finalizes(old, 2) if tracked else _real_finalizes(old, 2)):
            continue
        if held is None:
            held = list(tx.stack) + list(tx.locals.values())
        if not any(_same(v, old) if tracked else _holds(v, old) for v in held):
            raise Unsupported(f"{what} lets go of an object whose class has __del__: run natively")


def _holds(value, real):
    return isinstance(value, (ConstValue, Lazy)) and \
        (value.value if isinstance(value, ConstValue) else value.real) is real
