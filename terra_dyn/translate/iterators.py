"""Iterator values: Python iteration modelled lazily over the live containers, as CPython does.

    iter(xs), for v in xs     IteratorValue(live=xs)     reads xs[i] at each step
    zip(a, b, strict=...)     ZipIterator                one item from each, in order
    enumerate(it, start)      EnumerateIterator          (count, item) over another iterator
    map(f, a, ...), filter    MapIterator                calls f at each step (inlined)
    reversed(xs)              ReversedIterator           xs[i], i counting down
    for k in d, d.items()...  DictIterator               d's keys in order; raises when d
                                                         changed size, as CPython's does
    d.keys()/values()/items() DictViewValue              a view: each iter() is a new DictIterator

A step never reads a snapshot: `for a, b in zip(xs, ys): xs.append(...)` sees what eager
sees. A step that must raise (a dict changed size, zip(strict=True) lengths differ, a
run-time iterator inside) raises Unsupported with nothing moved: the graph break then runs
that step natively on the real iterator, which `rebuild_call()` gives as a call in the same
state (rebuild(r) below emits it): e.g. a list iterator at index 3 is
`list_iterator_at(xs, 3)`, a zip `zip(<its iterators rebuilt>)`.

Example: `for i, (a, b) in enumerate(zip(xs, reversed(xs)))` with xs = [p, q] gives
(0, (p, q)), then (1, (q, p)); if the body did `xs[1] = r` first, the second is (1, (r, p)).
"""
from bytecode import Instr

from .errors import Unsupported
from .values import ConstValue, TupleValue, Value


class OpaqueIterator(Value):
    """A real iterator object whose remaining items are unknown without consuming it."""

    def __init__(self, value, source):
        self.value = value
        self.source = source

    def rebuild(self, r):
        return r.load_source(self.source)

    def __repr__(self):
        return f"OpaqueIterator({type(self.value).__name__})"



class IteratorValue(Value):
    """An iterator whose items are known values; `next_item()` advances it, None at the end.

    This class: the items are known now (a tuple, a range, a generator's yields) or, over a
    list (`live`), read from the list at each step as list_iterator does: `for v in xs:
    xs.append(...)` sees the appended items and assignments. Subclasses below model zip,
    enumerate, reversed and dict iteration the same way: lazily, over the live containers.

    Like CPython's, an exhausted iterator stays exhausted (later appends are not seen). A
    step that must raise (a dict changed size) raises Unsupported with nothing moved, so
    the graph break redoes it natively on the real iterator, which `rebuild_call()` makes in the
    same state: (callable, [argument Values]), or None for iter(remaining items)."""

    # the str, tuple, bytes or range iterated (a ConstValue or TupleValue; operators.get_iter,
    # builtins_ops reversed): rebuilt as iter(origin) (reversed(origin) when `reverse`) after
    # `index` steps, CPython's own iterator type with its `__reduce__`
    origin = None
    reverse = False
    exhausted_as = None  # once exhausted: (callable, args) making an exhausted real one
    tensor_rows = False  # True: over a tensor's rows, unrolled at this call's row count (index_keys)

    def __init__(self, items, index=0, live=None):
        self._items = list(items)
        self.index = index
        self.live = live  # a ListValue, or None
        self.exhausted = False

    @property
    def items(self):
        return self._items if self.live is None else self.live.items

    def next_item(self):
        saved = self.save()
        try:
            item = None if self.exhausted else self._next()
        except Unsupported:
            self.restore(saved)
            raise
        if item is None and self._sticky():
            self._exhaust()
        return item

    def _next(self):
        items = self.items
        if self.index >= len(items):
            return None
        self.index += 1
        return items[self.index - 1]

    def _sticky(self):
        return True  # zip and enumerate are not: their state is in the iterators they wrap

    def _exhaust(self):
        self.exhausted_as = self._exhausted_call()
        self.exhausted = True
        self._items, self.index, self.live, self.origin = [], 0, None, None

    def _exhausted_call(self):
        """How to make the real iterator once exhausted: of its own type, as CPython leaves
        it (a list or str iterator drops its sequence; `__reduce__` shows an empty one)."""
        if self.live is not None:
            return iterator_after, [ConstValue(list)]
        if self.origin is not None:
            return iterator_after, [self.origin, ConstValue(self.reverse)]
        return self.exhausted_as  # set where the iterator was made (a tuple's)

    def unpack_items(self):
        """Every item left, in order (list(it), `a, b = it`, f(*it)); consumes the iterator."""
        out = []
        while (item := self.next_item()) is not None:
            out.append(item)
        return out

    def remaining(self):
        return self.items[self.index:]

    def rebuild_call(self):
        if self.exhausted:
            return self.exhausted_as
        if self.live is not None:
            return list_iterator_at, [self.live, ConstValue(self.index)]
        if self.origin is not None:
            return iterator_after, [self.origin, ConstValue(self.reverse), ConstValue(self.index)]
        return None

    @property
    def args(self):
        """The values this iterator reads (graph outputs it needs when rebuilt)."""
        rebuilt = self.rebuild_call()
        return rebuilt[1] if rebuilt is not None else self.remaining()

    def children(self):
        return self.args

    def fresh_mutable(self):
        return True  # `for i in it: next(it)`: the loop and `it` share one

    def rebuild(self, r):
        rebuilt = self.rebuild_call()  # over live containers: a call making the real one, same state
        if rebuilt is not None:
            fn, args = rebuilt
            return r.call_const(fn, r.items(args), len(args))
        rest = self.remaining()
        if all(isinstance(x, ConstValue) and r.is_simple(x.value) for x in rest):
            return [Instr("LOAD_CONST", tuple(x.value for x in rest)), Instr("GET_ITER")]
        return r.items(rest) + [Instr("BUILD_TUPLE", len(rest)), Instr("GET_ITER")]

    def wrapped(self):
        return []  # the iterators this one advances (zip, enumerate)

    def save(self):
        return [(it, dict(it.__dict__)) for it in self._tree()]

    def restore(self, saved):
        for it, state in saved:
            it.__dict__.clear()
            it.__dict__.update(state)

    def _tree(self):
        out = [self]
        for inner in self.wrapped():
            out += inner._tree() if isinstance(inner, IteratorValue) else []
        return out

    def __repr__(self):
        if self.live is not None:
            return f"IteratorValue(list, at {self.index})"
        return f"IteratorValue({len(self.items) - self.index} left)"


class GeneratorIterator(IteratorValue):
    """A generator made by an inlined generator function, run lazily as CPython does: each
    step resumes its suspended child Translator up to the next yield. Running it to
    completion at the call instead would move its side effects (appends, `finally:`) before
    the consumer's, and freeze what it reads from state the consumer changes:

        def gen(state):
            for i in range(3):
                state.append(i); yield i
        for i in gen(state): x = x + len(state)      # 1, 2, 3 (not 3, 3, 3)

    Its state is a translator's, not a real generator's: it cannot be rebuilt for native
    code. Anything unsupported inside it moves the break to the call that made it (the
    generator is then made natively and iterated natively); a break elsewhere while it is
    live makes the whole frame run as plain Python."""

    def __init__(self, child, created_at=None):
        super().__init__([])
        self.child = child
        self.created_at = created_at  # (pc, visit) of the top-level instruction that made it
        self.finished = False

    def next_item(self):
        if self.finished:
            return None
        child = self.child
        child.suspended = False
        child.done = False
        try:
            child.run()
        except Unsupported as exc:
            from .exceptions import KnownRaise

            if isinstance(exc, KnownRaise):  # a consumer's handler may catch it: a generator
                self.finished = True  # that raised is finished, as in CPython
            if self.created_at is not None and not hasattr(exc, "at"):
                exc.at, exc.breakable = self.created_at, True
            else:
                exc.breakable = False
            raise
        if child.suspended:
            return child.yielded[-1]
        self.finished = True
        return None

    def remaining(self):
        raise Unsupported("a generator in progress cannot be rebuilt", breakable=False)

    def rebuild_call(self):
        raise Unsupported("a generator in progress cannot be rebuilt", breakable=False)

    @property
    def args(self):
        return []

    def save(self):
        return []

    def __repr__(self):
        return f"GeneratorIterator({self.child.name}{', finished' if self.finished else ''})"


def next_of(it):
    """One step of an iterator value: an item, or None at its end."""
    if isinstance(it, IteratorValue):
        return it.next_item()
    raise Unsupported(f"next() of {it!r} (a run-time iterator)")


class ZipIterator(IteratorValue):
    """zip(a, b, ...): one step takes one item from each iterator, in order; at the first
    that ends, the items already taken are lost, as in CPython. strict=True: a length
    mismatch raises (natively, see next_item)."""

    def __init__(self, iterators, strict=False):
        super().__init__([])
        self.iterators = list(iterators)
        self.strict = strict

    def _next(self):
        if not self.iterators:
            return None
        items = []
        for i, it in enumerate(self.iterators):
            item = next_of(it)
            if item is None:
                if self.strict and (i > 0 or any(next_of(o) is not None for o in self.iterators[1:])):
                    raise Unsupported("zip(strict=True) over iterables of different lengths "
                                      "(raises natively)")
                return None
            items.append(item)
        return TupleValue(items)

    def _sticky(self):
        return False

    def wrapped(self):
        return self.iterators

    def rebuild_call(self):
        return (zip_strict if self.strict else zip), list(self.iterators)

    def __repr__(self):
        return f"ZipIterator({', '.join(map(repr, self.iterators))})"


class EnumerateIterator(IteratorValue):
    """enumerate(it, start): (count, item) pairs over another iterator value."""

    def __init__(self, inner, start=0):
        super().__init__([])
        self.inner = inner
        self.count = start

    def _next(self):
        item = next_of(self.inner)
        if item is None:
            return None
        self.count += 1
        return TupleValue([ConstValue(self.count - 1), item])

    def _sticky(self):
        return False

    def wrapped(self):
        return [self.inner]

    def rebuild_call(self):
        return enumerate, [self.inner, ConstValue(self.count)]

    def __repr__(self):
        return f"EnumerateIterator({self.inner!r}, at {self.count})"


class MapIterator(IteratorValue):
    """map(fn, a, ...) and filter(fn, a): each step takes the next items and calls fn on them
    then (inlined, as any call), so the calls happen in eager's order and as many times.
    `tx` is the translator that made it: the calls are its children."""

    def __init__(self, tx, fn, iterators, keep_if_true=False):
        super().__init__([])
        self.tx = tx
        self.fn = fn  # a callable Value; ConstValue(None) for filter(None, it)
        self.iterators = list(iterators)
        self.keep_if_true = keep_if_true  # filter: yield the item when fn(item) is true

    def _next(self):
        from .calls import call_value
        from .operators import truth

        while True:
            items = []
            for it in self.iterators:  # as zip: the first iterator to end ends the step
                item = next_of(it)
                if item is None:
                    return None
                items.append(item)
            if not self.keep_if_true:
                return call_value(self.tx, self.fn, items, {})
            is_none = isinstance(self.fn, ConstValue) and self.fn.value is None
            if truth(self.tx, items[0] if is_none else call_value(self.tx, self.fn, items, {})):
                return items[0]

    def _sticky(self):
        return False

    def wrapped(self):
        return self.iterators

    def rebuild_call(self):
        return (filter if self.keep_if_true else map), [self.fn] + list(self.iterators)

    def __repr__(self):
        return f"{'Filter' if self.keep_if_true else 'Map'}Iterator({self.fn!r})"


class ReversedIterator(IteratorValue):
    """reversed(xs) over a list: reads xs[i] at each step, i counting down from the length
    at creation, and ends when i falls outside the list (list_reverseiterator)."""

    def __init__(self, seq):
        super().__init__([])
        self.seq = seq  # a ListValue
        self.index = len(seq.items) - 1

    def _next(self):
        items = self.seq.items
        if not 0 <= self.index < len(items):
            return None
        self.index -= 1
        return items[self.index + 1]

    def _exhaust(self):
        super()._exhaust()
        self.seq = None

    def _exhausted_call(self):
        return iterator_after, [ConstValue(list), ConstValue(True)]

    def rebuild_call(self):
        if self.exhausted:
            return self.exhausted_as
        return list_reverseiterator_at, [self.seq, ConstValue(self.index)]

    def __repr__(self):
        return f"ReversedIterator(list, at {self.index})"


class DictIterator(IteratorValue):
    """Iteration over a dict's keys / values / items (`kind`), forward or reversed.

    Adding or removing a key while it runs makes its next step raise RuntimeError("dictionary
    changed size during iteration"), as CPython's does: the step raises Unsupported and the
    break's native step raises it on the rebuilt iterator. Keys replaced at an equal size
    (delete one, add another) leave CPython's position depending on the hash table's layout:
    the frame then runs natively (not breakable), so the result is CPython's own."""

    def __init__(self, d, kind="keys", reverse=False):
        super().__init__([])
        self.dict = d  # a DictValue
        self.kind = kind
        self.reverse = reverse
        self.keys = list(d.items)  # as at creation: the order the steps walk
        self.pos = 0  # items yielded so far

    def _changed(self):
        now = self.dict.items
        if len(now) != len(self.keys):
            return "size"
        if list(now) != self.keys:
            return "keys"
        return None

    def _next(self):
        changed = self._changed()
        if changed == "size":
            raise Unsupported("dictionary changed size during iteration (raises natively)")
        if changed == "keys":
            raise Unsupported("dict keys replaced during iteration (the frame runs natively)",
                              breakable=False)
        if self.pos >= len(self.keys):
            return None
        key = self.keys[-1 - self.pos] if self.reverse else self.keys[self.pos]
        self.pos += 1
        if self.kind == "keys":
            return ConstValue(key)
        value = self.dict.items[key]
        return value if self.kind == "values" else TupleValue([ConstValue(key), value])

    def _exhaust(self):
        super()._exhaust()
        self.dict, self.keys = None, []

    def _exhausted_call(self):
        return dict_iterator_at, [ConstValue(getattr(self.dict, "cls", dict)), ConstValue(self.kind),
                                  ConstValue(self.reverse), ConstValue(-1)]

    def rebuild_call(self):
        if self.exhausted:
            return self.exhausted_as
        changed = self._changed()
        cls = getattr(self.dict, "cls", dict)
        if changed == "size":
            return changed_size_iterator, [ConstValue(cls)]
        if changed == "keys":
            raise Unsupported("dict keys replaced during iteration (the frame runs natively)",
                              breakable=False)
        return dict_iterator_at, [self.dict, ConstValue(self.kind), ConstValue(self.reverse),
                                  ConstValue(self.pos)]

    def __repr__(self):
        return f"DictIterator({self.kind}{', reversed' if self.reverse else ''}, at {self.pos})"


class DictViewValue(Value):
    """d.keys() / d.values() / d.items(): a live view, iterable any number of times."""

    def __init__(self, d, kind):
        self.dict = d  # a DictValue
        self.kind = kind

    def iterate(self, reverse=False):
        return DictIterator(self.dict, self.kind, reverse)

    def unpack_items(self):
        """Its items now (a view is not consumed: a fresh iterator is)."""
        return self.iterate().unpack_items()

    def python_type(self):
        return type(getattr(getattr(self.dict, "cls", dict)(), self.kind)())

    def rebuild_call(self):
        return dict_view, [self.dict, ConstValue(self.kind)]

    @property
    def args(self):
        return [self.dict]

    def children(self):
        return self.args

    def rebuild(self, r):
        fn, args = self.rebuild_call()
        return r.call_const(fn, r.items(args), len(args))

    def __repr__(self):
        return f"DictViewValue({self.kind})"


# -- the real iterators a graph break rebuilds (see rebuild_call() above) ---------------
def list_iterator_at(xs, index):
    """iter(xs) advanced to `index` (a list, str, tuple, bytes or range: CPython's iterator
    type for it, whose `__reduce__` names xs and the index)."""
    it = iter(xs)
    it.__setstate__(index)
    return it


def iterator_after(xs, reverse=False, steps=-1):
    """iter(xs) (reversed(xs)) after `steps` items, or exhausted (steps -1: as CPython leaves
    one whose next() raised StopIteration); xs a type (list) is made empty first."""
    it = (reversed if reverse else iter)(xs() if isinstance(xs, type) else xs)
    if steps < 0:
        for _ in it:
            pass
    for _ in range(steps):
        next(it)
    return it


def list_reverseiterator_at(xs, index):
    it = reversed(xs)
    it.__setstate__(index)
    return it


def zip_strict(*iterators):
    return zip(*iterators, strict=True)


def dict_view(d, kind):
    return getattr(d, kind)()


def dict_iterator_at(d, kind, reverse, done):
    """An iterator over d's `kind` view after `done` steps (-1: exhausted; d a type: an
    empty one of it)."""
    return iterator_after(getattr(d() if isinstance(d, type) else d, kind)(), reverse, done)


def changed_size_iterator(cls):
    """An iterator whose every step raises as one over a dict that changed size does."""
    d = cls()
    d[0] = 0
    it = iter(d)
    d[1] = 1
    return it
