"""Iteration and generator-context-manager semantics that must match eager exactly.

    lists   zip / reversed / enumerate / iter+next / for / comprehensions / map / filter over
            a list the loop body appends to, pops from or assigns into: each step reads the
            live list (never a snapshot), for lists that are locals, arguments, globals and
            attributes, with and without a graph break inside the loop
    dicts   adding or removing a key while iterating the dict or one of its views raises
            RuntimeError("dictionary changed size during iteration"), as eager does, whether
            the change is translated or runs natively after a break; views are live
    with    a @contextmanager generator whose block is left by an exception sees it at its
            `yield`: except / finally run, suppression and re-raise work (the with statement
            or the frame runs natively: see generator_cm.py), and the normal exit is still
            one graph

Every test runs the program eagerly and optimized (interpreter backend, caches cleared),
twice each (the first call translates, the second runs the cached code) on fresh copies of
the same inputs, and compares: return value or exception (type and message), the arguments
after the call, printed output and a log of calls into user code. `expect` then checks how
the optimized run got there (one graph, a break, a fallback), so that a test cannot pass by
silently running everything natively where the translation is meant to be exact.

    check(zip_appends, lambda: (torch.ones(2), [1.0, 2.0, 3.0]), expect=ONE_GRAPH)
"""
import collections
import contextlib
import copy
import dataclasses
import io

import pytest
import torch

import terra_dyn
from terra_dyn import report

from .harness import Capture, call, compare_outcomes

LOG = []  # calls into user code (generator bodies, key functions), in order
SHARED = []  # a global list the programs mutate


def ONE_GRAPH(first, second):
    """First call: one graph per frame, nothing broke or fell back; second: a cache hit."""
    return first.whole_per_frame() and second.quiet()


def A_BREAK(first, second):
    return bool(first.breaks) and not first.fallbacks


def A_FALLBACK(first, second):
    return bool(first.fallbacks)


def PARTLY_NATIVE(first, second):
    """A break or a fallback (which one depends on what a break can rebuild, e.g. closures)."""
    return bool(first.breaks or first.fallbacks)


def check(fn, make_args, expect=None, calls=2, reset=None):
    """Eager vs optimized on `calls` fresh copies of make_args(); returns the outcomes."""
    runs = {}
    for mode in ("eager", "ours"):
        terra_dyn.reset()
        target = fn if mode == "eager" else terra_dyn.optimize(fn, backend="interpreter")
        outcomes, captures = [], []
        for _ in range(calls):
            LOG.clear()
            SHARED[:] = [1.0, 2.0, 3.0]
            if reset is not None:
                reset()
            args = copy.deepcopy(make_args())
            out = io.StringIO()
            with report.recording() as rec, contextlib.redirect_stdout(out):
                outcome = call(target, args, {}, snapshot=lambda: (list(LOG), list(SHARED)))
            outcome.printed = out.getvalue()
            outcomes.append(outcome)
            captures.append(Capture.of(rec))
        runs[mode] = outcomes, captures
    terra_dyn.reset()
    (eager, _), (ours, captures) = runs["eager"], runs["ours"]
    for n, (e, o) in enumerate(zip(eager, ours)):
        problems = compare_outcomes(e, o)
        if e.error is not None and o.error is not None and str(e.error) != str(o.error):
            problems.append(f"message: eager {e.error!r} vs ours {o.error!r}")
        if e.printed != o.printed:
            problems.append(f"printed: eager {e.printed!r} vs ours {o.printed!r}")
        assert not problems, f"call {n} of {fn.__name__}: " + "; ".join(problems)
    if expect is not None:
        assert expect(*captures), f"{fn.__name__}: {expect.__name__} expected, got " + captures[0].why()
    return eager


def _raised(outcomes, kind, text):
    return all(isinstance(o.error, kind) and text in str(o.error) for o in outcomes)


# ----------------------------------------------------------------------------- lists

def zip_appends(x, xs):
    out = []
    for a, b in zip(xs, xs):
        if len(xs) < 6:
            xs.append(a + 1)
        out.append(a * b)
    return x * len(out), out


def zip_assigns_ahead(x, xs):
    out = []
    for i, (a, b) in enumerate(zip(xs, [10.0, 20.0, 30.0])):
        if i + 1 < len(xs):
            xs[i + 1] = 100.0
        out.append(a + b)
    return x * sum(out), out


def zip_loses_the_item_of_a_longer_iterator(x, xs):
    it = iter(xs)
    pairs = list(zip(it, [7.0]))  # takes xs[0] with 7, then takes xs[1] and stops: it is lost
    return x + len(pairs), pairs, list(it)


def zip_stops_when_a_list_shrinks(x, xs):
    out = []
    for a, b in zip(xs, [1.0, 2.0, 3.0, 4.0]):
        xs.pop()
        out.append(a + b)
    return x * len(out), out, xs


def reversed_pops_front(x, xs):
    out = []
    for a in reversed(xs):
        out.append(a)
        xs.pop(0)
    return x + len(out), out, xs


def reversed_sees_assignment(x, xs):
    out = []
    for i, a in enumerate(reversed(xs)):
        if i == 0:
            xs[0] = 50.0
        out.append(a)
    return x * out[-1], out


def reversed_ignores_appends(x, xs):
    out = []
    for a in reversed(xs):
        if len(xs) < 5:
            xs.append(7.0)
        out.append(a)
    return x + len(out), out, xs


def for_and_enumerate_see_appends_and_pops(x, xs):
    seen = []
    for a in xs:
        if len(xs) < 6:
            xs.append(a * 2)
        seen.append(a)
    for i, a in enumerate(xs):
        seen.append((i, a))
        xs.pop()
    return x + len(seen), seen, xs


def exhausted_iterator_stays_exhausted(x, xs):
    it = iter(xs)
    first = list(it)
    xs.append(4.0)
    return x + len(first), first, next(it, "end"), list(zip(it, xs))


def next_after_insert_and_clear(x, xs):
    it = iter(xs)
    a = next(it)
    xs.insert(0, 9.0)
    b = next(it)
    xs.clear()
    c = next(it, -1.0)
    xs.append(4.0)
    return x * a, a, b, c, next(it, -2.0)


def comprehension_over_growing_list(x, xs):
    out = [xs.append(a) or a for a in xs if len(xs) < 6]
    return x + len(out), out, xs


def enumerate_of_iterator_then_the_rest(x, xs):
    it = iter(xs)
    for i, a in enumerate(it, 10):
        if i == 11:
            break
    return x + a, i, list(it)


def user_double(a):
    LOG.append(a)
    return a * 2


def map_and_filter_over_growing_list(x, xs):
    out = []
    for a in map(user_double, xs):
        if len(xs) < 5:
            xs.append(a + 1)
        out.append(a)
    for a in filter(None, xs):
        if len(xs) < 7:
            xs.append(0.0)
        out.append(a)
    return x + len(out), out


def zip_strict_lengths_differ(x, xs):
    total = x
    for a, b in zip(xs, [1.0, 2.0], strict=True):
        total = total + a * b
    return total


def zip_strict_same_lengths(x, xs):
    total = x
    for a, b in zip(xs, [1.0, 2.0, 3.0], strict=True):
        total = total + a * b
    return total


def zip_reversed_mutated_across_breaks(x, xs):
    for a, b in zip(xs, reversed(xs)):
        x = x + a * b
        if x.sum().item() > 0:  # a graph break inside the loop
            xs.append(1.0)
        xs[0] = xs[0] + 1
        if len(xs) > 5:
            break
    return x, xs


def reversed_assigned_after_break(x, xs):
    for a in reversed(xs):
        x = x + a
        if x.sum().item() > 0:
            xs[0] = 100.0
    return x, xs


def global_list_zip_and_reversed(x):
    out = []
    for a, b in zip(SHARED, SHARED):
        if len(SHARED) < 5:
            SHARED.append(a + 1)
        out.append(a * b)
    for a in reversed(SHARED):
        SHARED[0] = 9.0
        out.append(a)
    return x * len(out), out


@dataclasses.dataclass
class Bag:
    items: list


def attribute_list_zip_and_reversed(x, bag):
    out = []
    for a, b in zip(bag.items, range(10)):
        if len(bag.items) < 5:
            bag.items.append(a + b)
        out.append(a)
    for a in reversed(bag.items):
        bag.items.pop()
        out.append(a)
    return x + len(out), out


def local_list_zip(x):
    xs = [1.0, 2.0]
    out = []
    for a, b in zip(xs, xs):
        if len(xs) < 4:
            xs.append(a + b)
        out.append(a)
    return x * len(out), out


def _list_args():
    return torch.ones(2), [1.0, 2.0, 3.0]


@pytest.mark.parametrize("fn", [
    zip_appends, zip_assigns_ahead, zip_loses_the_item_of_a_longer_iterator, zip_stops_when_a_list_shrinks,
    reversed_pops_front, reversed_sees_assignment, reversed_ignores_appends,
    for_and_enumerate_see_appends_and_pops, exhausted_iterator_stays_exhausted, next_after_insert_and_clear,
    comprehension_over_growing_list, enumerate_of_iterator_then_the_rest, zip_strict_same_lengths,
], ids=lambda f: f.__name__)
def test_list_iteration_is_live_in_one_graph(fn):
    check(fn, _list_args, expect=ONE_GRAPH)


def test_global_attribute_and_local_lists_are_live():
    check(global_list_zip_and_reversed, lambda: (torch.ones(2),), expect=ONE_GRAPH)
    check(attribute_list_zip_and_reversed, lambda: (torch.ones(2), Bag([1.0, 2.0])), expect=ONE_GRAPH)
    check(local_list_zip, lambda: (torch.ones(2),), expect=ONE_GRAPH)


def map_two_lists_with_a_lambda(x, xs):
    scale = 3.0
    pairs = list(map(lambda a, b: a * b + scale, xs, [1.0, 2.0]))  # stops at the shorter
    return x * sum(pairs), pairs


def map_tensors_then_filter(x, xs):
    ys = list(map(torch.relu, [x, -x, x * 2]))
    kept = list(filter(lambda v: v > 1.5, xs))
    return sum(ys), kept, list(filter(None, [0.0, 1.0, 0.0, 2.0]))


def map_with_a_break_inside(x, xs):
    return list(map(lambda a: (x * a).sum().item(), xs))  # .item() in the mapped function


def filter_on_tensor_values(x, xs):
    return [t for t in filter(lambda t: t.sum() > 0, [x, -x, x])]  # a branch on a tensor value


def map_without_iterables(x, xs):
    return list(map(user_double))


def test_map_and_filter_call_user_code_lazily_in_one_graph():
    eager = check(map_and_filter_over_growing_list, _list_args, expect=ONE_GRAPH)
    assert eager[0].state[0] == [1.0, 2.0, 3.0, 3.0, 5.0]  # user_double's calls, in order
    check(map_two_lists_with_a_lambda, _list_args, expect=ONE_GRAPH)
    check(map_tensors_then_filter, _list_args, expect=ONE_GRAPH)


def test_map_and_filter_that_cannot_be_captured_run_natively():
    check(map_with_a_break_inside, _list_args, expect=PARTLY_NATIVE)
    check(filter_on_tensor_values, _list_args, expect=PARTLY_NATIVE)
    eager = check(map_without_iterables, _list_args)
    assert _raised(eager, TypeError, "map() must have at least two arguments")


def test_zip_strict_raises_the_same_value_error():
    eager = check(zip_strict_lengths_differ, _list_args, expect=A_BREAK)
    assert _raised(eager, ValueError, "zip() argument 2 is shorter than argument 1")


@pytest.mark.parametrize("fn", [zip_reversed_mutated_across_breaks, reversed_assigned_after_break],
                         ids=lambda f: f.__name__)
def test_live_iterators_survive_graph_breaks(fn):
    check(fn, lambda: (torch.ones(2), [1.0, -2.0, 3.0]), expect=A_BREAK)
    check(fn, lambda: (-torch.ones(2), [1.0, -2.0, 3.0]), expect=A_BREAK)


# ----------------------------------------------------------------------------- dicts

def dict_add_key_in_loop(x, d):
    for k in d:
        d[k + "x"] = 1.0
        x = x + 1
    return x


def dict_del_key_over_items(x, d):
    for k, v in d.items():
        x = x * v
        del d["b"]
    return x


def dict_add_key_over_values(x, d):
    for v in d.values():
        x = x + v
        d["z"] = 3.0
    return x


def dict_add_key_over_keys_view(x, d):
    for k in d.keys():
        x = x + d[k]
        d.setdefault("new", 0.0)
    return x


def dict_add_key_after_the_last(x, d):
    for k in d:
        x = x + d[k]
        if k == "b":
            d["c"] = 5.0
    return x


def dict_add_key_over_reversed(x, d):
    for k in reversed(d):
        x = x + d[k]
        d.pop("a")
    return x


def dict_add_key_then_next(x, d):
    it = iter(d)
    a = next(it)
    d.pop("b")
    return x, a, next(it, None)


def dict_add_key_in_zip(x, d):
    out = []
    for k, v in zip([1, 2, 3], d):
        out.append(k)
        d["zz"] = 2.0
    return x, out


def dict_changed_size_caught(x, d):
    try:
        for k in d:
            d[k + "!"] = 0.0
            x = x + 1
    except RuntimeError as err:
        x = x * 100
        print("caught:", err)
    return x


def _grow(d, k):
    d[k + "+"] = 1.0


def dict_grown_by_a_callee(x, d):
    for k in d:
        _grow(d, k)
        x = x + 1
    return x


def dict_local_grown(x):
    d = {"a": 1.0, "b": 2.0}
    for k in d:
        d["c"] = 3.0
        x = x * 2
    return x


def dict_grown_natively_after_break(x, d):
    for k in d:
        x = x + d[k]
        if x.sum().item() > 0:
            d[k + "m"] = 1.0
    return x


def dict_grown_then_break(x, d):
    for k in d:
        d[k + "m"] = 1.0
        print(x.sum().item())
    return x


@pytest.mark.parametrize("fn", [
    dict_add_key_in_loop, dict_del_key_over_items, dict_add_key_over_values, dict_add_key_over_keys_view,
    dict_add_key_after_the_last, dict_add_key_over_reversed, dict_add_key_then_next, dict_add_key_in_zip,
    dict_grown_by_a_callee, dict_grown_natively_after_break, dict_grown_then_break,
], ids=lambda f: f.__name__)
def test_dict_changed_size_during_iteration_raises(fn):
    eager = check(fn, lambda: (torch.ones(2), {"a": 1.0, "b": 2.0}))
    assert _raised(eager, RuntimeError, "dictionary changed size during iteration")


def test_dict_changed_size_is_caught_in_the_same_frame():
    eager = check(dict_changed_size_caught, lambda: (torch.ones(2), {"a": 1.0, "b": 2.0}), expect=A_BREAK)
    assert eager[0].printed == "caught: dictionary changed size during iteration\n"
    check(dict_local_grown, lambda: (torch.ones(2),), expect=A_BREAK)


def test_ordered_dict_and_counter_raise_their_own_errors():
    eager = check(dict_add_key_in_loop, lambda: (torch.ones(2), collections.OrderedDict(a=1.0, b=2.0)))
    assert _raised(eager, RuntimeError, "OrderedDict mutated during iteration")
    eager = check(dict_add_key_in_loop, lambda: (torch.ones(2), collections.Counter(a=1, b=2)))
    assert _raised(eager, RuntimeError, "dictionary changed size during iteration")


def dict_values_reassigned(x, d):
    for k in d.keys():
        d[k] = d[k] * 2
        x = x + d[k]
    for k, v in d.items():
        d.update({k: v + 1})
        x = x * v
    return x, d


def dict_key_replaced_at_equal_size(x, d):
    for k in d:
        x = x + d[k]
        if k == "a":
            del d["b"]
            d["q"] = 9.0
    return x, d


def dict_views_are_live_and_reusable(x, d):
    ks, vs, its = d.keys(), d.values(), d.items()
    first = [k for k in ks]
    again = [k for k in ks]
    d["c"] = 10.0
    return x * sum(vs), first, again, list(ks), list(its), len(vs), sorted(d.values())


def dict_add_key_break_out(x, d):
    for k in d:
        d["n" + k] = 1.0
        break
    return x + len(d), d


def test_dict_value_updates_and_views_stay_in_one_graph():
    args = lambda: (torch.ones(2), {"a": 1.0, "b": 2.0})  # noqa: E731
    check(dict_values_reassigned, args, expect=ONE_GRAPH)
    check(dict_views_are_live_and_reusable, args, expect=ONE_GRAPH)
    check(dict_add_key_break_out, args, expect=ONE_GRAPH)


def test_dict_key_replaced_at_equal_size_runs_natively():
    # CPython's position after such a change depends on the hash table's layout
    check(dict_key_replaced_at_equal_size, lambda: (torch.ones(2), {"a": 1.0, "b": 2.0, "c": 3.0}),
          expect=A_FALLBACK)


def dict_with_tuple_keys(x, d):
    for k in d:
        x = x + k[0] * d[k]
    return x


def test_dict_guarded_by_type_only_is_not_iterated_at_translate_time():
    """Its keys are not guarded: the cached code must not reuse the first call's keys."""
    fast = terra_dyn.optimize(dict_with_tuple_keys, backend="interpreter")
    terra_dyn.reset()
    for d in ({(1,): 1.0}, {(5,): 1.0}, {(2,): 3.0, (4,): 1.0}):
        assert torch.equal(fast(torch.zeros(1), d), dict_with_tuple_keys(torch.zeros(1), d)), d
    terra_dyn.reset()


def set_grown_in_loop(x):
    s = {1, 2, 3}
    out = []
    for v in s:
        out.append(v)
        s.add(v + 10)
    return x, out


def test_set_changed_size_raises():
    eager = check(set_grown_in_loop, lambda: (torch.ones(2),))
    assert _raised(eager, RuntimeError, "Set changed size during iteration")


# ----------------------------------------------------------------------------- with

@contextlib.contextmanager
def guarded(tag):
    LOG.append(("enter", tag))
    print("enter", tag)
    try:
        yield tag
    except ValueError as err:
        LOG.append(("caught", str(err)))
    finally:
        LOG.append(("finally", tag))


@contextlib.contextmanager
def reraising():
    try:
        yield
    except KeyError:
        LOG.append("keyerror")
        raise


@contextlib.contextmanager
def translating():
    try:
        yield
    except ValueError:
        raise KeyError("translated")


@contextlib.contextmanager
def swallowing():
    try:
        yield
    finally:
        return  # noqa: B012 - swallows whatever the block raised


@contextlib.contextmanager
def plain(tag):
    LOG.append(tag)
    yield len(tag)
    LOG.append(tag + "!")


def cm_suppressed(x):
    y = x * 2
    with guarded("a"):
        y = y + 1
        raise ValueError("boom")
    return y * 3


def cm_not_suppressed(x):
    y = x * 2
    with guarded("a"):
        y = y + 1
        raise TypeError("boom")
    return y


def cm_reraised(x):
    with reraising():
        x = x + 1
        {}["k"]
    return x


def cm_translated(x):
    with translating():
        x = x + 1
        raise ValueError("v")
    return x


def cm_swallowed(x):
    with swallowing():
        x = x + 1
        raise ValueError("v")
    return x * 2


def cm_nested(x):
    with guarded("outer"):
        with plain("inner"):
            x = x + 1
            raise ValueError("inner")
        x = x * 5
    return x


def cm_caught_outside(x):
    try:
        with plain("p"):
            x = x + 1
            raise ValueError("v")
    except ValueError:
        x = x * 10
    return x


def _fail(x):
    raise ValueError("from a callee")


def cm_raise_in_callee(x):
    with guarded("c"):
        x = x + 1
        _fail(x)
    return x


def cm_stop_iteration(x):
    with plain("q"):
        x = x + 1
        next(iter([]))
    return x


def cm_whole_in_callee(x):
    return cm_suppressed(x) + 1


def cm_break_inside(x):
    with guarded("b") as tag:
        y = x + 1
        if y.sum().item() > 0:
            y = y * 2
    return y, tag


@pytest.mark.parametrize("fn", [
    cm_suppressed, cm_not_suppressed, cm_reraised, cm_translated, cm_swallowed, cm_nested,
    cm_caught_outside, cm_raise_in_callee, cm_stop_iteration, cm_whole_in_callee, cm_break_inside,
], ids=lambda f: f.__name__)
def test_generator_cm_sees_the_exception_at_its_yield(fn):
    check(fn, lambda: (torch.ones(2),))


def test_generator_cm_exception_paths_give_eager_logs():
    """The runs above compare with eager; these pin down what eager itself does."""
    eager = check(cm_suppressed, lambda: (torch.ones(2),), expect=A_BREAK)  # the with statement runs natively
    assert eager[0].state[0] == [("enter", "a"), ("caught", "boom"), ("finally", "a")]
    assert eager[0].printed == "enter a\n"
    eager = check(cm_not_suppressed, lambda: (torch.ones(2),))
    assert _raised(eager, TypeError, "boom") and eager[0].state[0][-1] == ("finally", "a")
    eager = check(cm_reraised, lambda: (torch.ones(2),))
    assert _raised(eager, KeyError, "k") and eager[0].state[0] == ["keyerror"]
    eager = check(cm_translated, lambda: (torch.ones(2),))
    assert _raised(eager, KeyError, "translated")
    eager = check(cm_nested, lambda: (torch.ones(2),))
    assert eager[0].error is None and eager[0].state[0] == [
        ("enter", "outer"), "inner", ("caught", "inner"), ("finally", "outer")]


def cm_normal_exit(x):
    with guarded("n") as tag:
        x = x + len(tag)
    with plain("pq") as n:
        x = x * n
    return x


def test_generator_cm_normal_exit_is_still_one_graph():
    eager = check(cm_normal_exit, lambda: (torch.ones(2),), expect=lambda first, second: first.whole_per_frame())
    assert eager[0].state[0] == [("enter", "n"), ("finally", "n"), "pq", "pq!"]


# ------------------------------------------------------------- iterators handed to native code

def dict_iterator_resumed_natively(x, d):
    it = iter(d.items())
    k0, v0 = next(it)
    y = x * v0
    print(y.sum().item())  # a break: `it` is rebuilt at position 1 over the real dict
    d[k0] = 7.0  # a value change: no error
    rest = [k for k, v in it]
    d["late"] = 1.0
    return y, k0, rest, next(it, "done"), d


def dict_iterator_grown_natively(x, d):
    it = iter(d)
    first = next(it)
    print(x.sum().item())  # a break
    d["late"] = 0.0
    return x, first, next(it)  # raises natively, on the rebuilt iterator


def list_iterator_resumed_natively(x, xs):
    it = iter(xs)
    a = next(it)
    print(x.sum().item())  # a break
    xs.insert(0, 5.0)
    return x, a, list(it), list(reversed(xs))


def zip_over_a_run_time_iterator(x, xs):
    it = iter(xs)
    print(x.sum().item())  # a break: the resume function receives `it` as a real iterator
    out = []
    for a, b in zip(it, xs):
        if len(xs) < 8:
            xs.append(a + b)
        out.append((a, b))
    return x, out, xs


def test_iterators_rebuilt_at_breaks_continue_as_eager():
    check(dict_iterator_resumed_natively, lambda: (torch.ones(2), {"a": 1.0, "b": 2.0, "c": 3.0}), expect=A_BREAK)
    eager = check(dict_iterator_grown_natively, lambda: (torch.ones(2), {"a": 1.0, "b": 2.0}), expect=A_BREAK)
    assert _raised(eager, RuntimeError, "dictionary changed size during iteration")
    check(list_iterator_resumed_natively, _list_args, expect=A_BREAK)
    check(zip_over_a_run_time_iterator, _list_args, expect=A_BREAK)
