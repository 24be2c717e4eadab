"""Numbers seen changing on an object: graph inputs wherever they are read next.

A recompile that finds `obj.attr` or `obj[key]` holding another number of the same type
(a learning rate in `optimizer.param_groups[0]['lr']`, DropBlock's scheduled `drop_prob`,
a step counter) notes the pair here (convert_frame). Until then every code object that
reads the number holds it constant, and each would pay its own recompile to learn that it
changes: the train step that saw it first, then the module's forward, then the resume
functions cut from both (dropblock: 5 translations of DropBlock2D.forward after step 2).
From the note on, every translation that reads that number, in any code object, takes it
as a graph input (wrap.py), guarded by type only.

Floats follow their class too: a float attribute seen changing on one instance of a class
is an input on every instance (the same scheduled drop probability on each DropBlock). A
float item seen changing in a dict held as an attribute (`layer.metrics['loss']`) makes
every float item of the dicts held there inputs, a new dict each step included (yolov3's
metrics: `recall50` stays 0.0 for three steps, then changes). Ints do not: a size or a
count on one layer says nothing about the next.

    note(owner, key, value, holder)     convert_frame, on a recompile that saw owner.key change
    wanted(owner, key, value, holder)   wrap, for a number read as owner.key / owner[key]
                                        (holder: (obj, name) when owner was read as obj.name)
    active()                    anything noted (wrap records owners only then)

Example: train_step's recompile sees `a0.model._modules['drop'].drop_prob` go 0.1 -> 0.2:
note(drop, "drop_prob", 0.2); DropBlock2D.forward's next translation wraps `a0.drop_prob`
as a placeholder instead of `a0.drop_prob == 0.2`.

Being an input is always correct (the value is read on every call); what it can cost is a
graph break where the code needs the value (`range(n)`, a branch). A translation that fails
with such an input is retried with it constant (convert_frame), and it stays constant there.
Owners are held weakly where they can be; a dict or list is known by id only, and a new one
at the same address only makes a number an input that did not need to be.
"""
import sys
import weakref

from ..real_types import isa

_MAX_NOTED = 4096  # owners noted; past it the oldest go (a number is then constant again)

_noted = {}  # (id(owner), key) -> weakref to the owner, or None (a dict or list)
# class -> names; classes held weakly (one made per call must not be kept alive)
_float_attrs = weakref.WeakKeyDictionary()  # attributes whose floats were seen changing on some instance
_float_tables = weakref.WeakKeyDictionary()  # attributes holding dicts whose float items were seen changing
_CONTAINERS = (dict, list, tuple)


def is_float(value):
    numpy = sys.modules.get("numpy")
    return type(value) is float or numpy is not None and isa(value, numpy.floating)


def note(owner, key, value, holder=None):
    """owner.key (or owner[key]) now holds `value`, another number than a translation held;
    holder: (obj, name) when owner is the dict obj.name."""
    if len(_noted) >= _MAX_NOTED:
        del _noted[next(iter(_noted))]
    try:
        ref = weakref.ref(owner, lambda _, k=(id(owner), key): _noted.pop(k, None))
    except TypeError:  # a dict, a list: by id
        ref = None
    _noted[(id(owner), key)] = ref
    if not is_float(value):
        return
    if isa(key, str) and not isa(owner, _CONTAINERS):
        _float_attrs.setdefault(type(owner), set()).add(key)
    elif type(owner) is dict and holder is not None:
        _float_tables.setdefault(type(holder[0]), set()).add(holder[1])


def wanted(owner, key, value, holder=None):
    """Whether `value`, read as owner.key / owner[key], is a number seen changing there."""
    if (id(owner), key) in _noted:
        ref = _noted[(id(owner), key)]
        if ref is None or ref() is owner:
            return True
    if not is_float(value):
        return False
    if type(owner) is dict:
        return holder is not None and holder[1] in _float_tables.get(type(holder[0]), ())
    return key in _float_attrs.get(type(owner), ())


def active():
    return bool(_noted or _float_attrs or _float_tables)


def reset():
    _noted.clear()
    _float_attrs.clear()
    _float_tables.clear()
