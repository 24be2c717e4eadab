"""Soundness: Python language corners found by CPython's regression suite
(tests/soundness/cpython_suite.py), each reduced to a few lines and compared with the same
code run plainly: values, exceptions (type and message) and the calls into user code.
"""
import pytest

import terra_dyn


@pytest.fixture(autouse=True)
def _fresh():
    terra_dyn.reset()
    yield
    terra_dyn.reset()


def _outcome(fn, *args):
    try:
        return "value", fn(*args)
    except Exception as exc:  # the type and message must match too
        return "raised", (type(exc), str(exc))


def assert_same_as_plain(fn, *calls):
    """fn run plainly and optimized on each argument tuple of `calls`, in order."""
    fast = terra_dyn.optimize(fn, backend="interpreter")
    for args in calls:
        assert _outcome(fast, *args) == _outcome(fn, *args), args


# -- test_descr's test_supers: `"A(%r)" % a` once a turned symbolic gave "A(s2)" -------------
def _percent_format(a):
    return "A(%r)" % a


def _more_text(a):
    return hex(a), "%.1f" % (a * 0.5)


def test_text_made_from_a_run_time_number_follows_each_call():
    assert_same_as_plain(_percent_format, *[(i,) for i in range(6)])
    assert_same_as_plain(_more_text, *[(i,) for i in range(6)])


def _percent_format_of_a_tensor(t):
    return "%r" % t.sum()


def test_text_made_from_a_tensor_is_its_value_not_its_fake():
    import torch

    assert_same_as_plain(_percent_format_of_a_tensor, (torch.ones(2),), (torch.ones(3),))


# -- test_descr's test_meth_class_get: `{}.fromkeys(arg)` ran as dict.fromkeys({}, arg) -----
def _class_method_through_an_instance(arg):
    return dict.fromkeys(arg), {}.fromkeys(arg), {}.fromkeys(arg, 5), [].copy()


def test_builtin_class_method_read_through_an_instance_binds_the_class():
    assert_same_as_plain(_class_method_through_an_instance, ([1, 2, 3],), ([4],))


# -- test_descr's test_bound_method_repr: a method found through super(), handed to a
#    resume function, was rebuilt as `obj.method` (the override) --------------------------
def _super_method_after_a_break():
    class Base:
        def method(self):
            return "base"

    class Derived(Base):
        def method(self):
            return "derived"

    d = Derived()
    sup = super(Derived, d)
    first = repr(d.method).split(" of ")[0]
    second = repr(sup.method).split(" of ")[0]
    return first, second, sup.method()


def test_method_found_through_super_stays_the_base_method_after_a_break():
    assert_same_as_plain(_super_method_after_a_break, (), ())


# -- test_descr's test_compattr: a counter read through a user descriptor ------------------
class _Holder:
    def __init__(self):
        self.v = 0


def _post_increment(obj):
    x = obj.v
    obj.v = x + 1
    return x


def test_value_read_before_a_store_to_its_attribute_is_the_old_value():
    plain, fast_obj = _Holder(), _Holder()
    fast = terra_dyn.optimize(_post_increment, backend="interpreter")
    assert [fast(fast_obj) for _ in range(4)] == [_post_increment(plain) for _ in range(4)]
    assert fast_obj.v == plain.v == 4


class _Counting:
    """A descriptor whose __get__ counts its calls and returns the count."""

    def __get__(self, obj, cls=None):
        obj.reads = getattr(obj, "reads", 0) + 1
        return obj.reads


class _WithCounting:
    x = _Counting()


def _read_three_times(obj):
    return [obj.x, obj.x, obj.x]


def test_user_descriptor_get_runs_once_per_read():
    plain, fast_obj = _WithCounting(), _WithCounting()
    fast = terra_dyn.optimize(_read_three_times, backend="interpreter")
    for _ in range(3):
        assert fast(fast_obj) == _read_three_times(plain)
    assert fast_obj.reads == plain.reads == 9


class _Empty:
    pass


def _count_with_getattr_default(obj):
    obj.reads = getattr(obj, "reads", 0) + 1
    return obj.reads, hasattr(obj, "later")


def test_getattr_default_and_hasattr_follow_the_instance_dict():
    plain, fast_obj = _Empty(), _Empty()
    fast = terra_dyn.optimize(_count_with_getattr_default, backend="interpreter")
    for i in range(4):
        assert fast(fast_obj) == _count_with_getattr_default(plain)
        if i == 1:
            plain.later = fast_obj.later = 1
        if i == 2:
            del plain.later, fast_obj.later


# -- test_descr's test_getattr_hooks: a descriptor object as __getattribute__ --------------
class _CountingLookup:
    calls = 0

    def __get__(self, obj, cls=None):
        def lookup(name):
            type(self).calls += 1
            raise AttributeError(name)
        return lookup


class _LooksUpThroughADescriptor:
    __getattribute__ = _CountingLookup()


def _lookup_fails(obj):
    try:
        return getattr(obj, "attr")
    except AttributeError as exc:
        return str(exc)


def test_lookup_through_a_descriptor_object_runs_once_per_read():
    for _ in range(3):
        before = _CountingLookup.calls
        expected = _lookup_fails(_LooksUpThroughADescriptor())
        plain_calls = _CountingLookup.calls - before
        fast = terra_dyn.optimize(_lookup_fails, backend="interpreter")
        before = _CountingLookup.calls
        assert fast(_LooksUpThroughADescriptor()) == expected
        assert _CountingLookup.calls - before == plain_calls == 1


# -- test_descr's test_properties: a store to a read-only member of a builtin type ---------
def _store_to_read_only_members(raw):
    caught = []
    for attr in "fget", "fset", "fdel":
        try:
            setattr(raw, attr, 42)
        except AttributeError as exc:
            caught.append(str(exc))
    return caught


def test_store_to_a_read_only_builtin_member_raises_inside_its_try():
    assert_same_as_plain(_store_to_read_only_members, (property(len),), (property(len),))


class _PropertyOfMissing:
    @property
    def x(self):
        return self._x


def _has_property_value(obj):
    return hasattr(obj, "x")


def test_hasattr_of_a_property_whose_getter_raises_is_false():
    obj = _PropertyOfMissing()
    assert_same_as_plain(_has_property_value, (obj,), (obj,))
    obj._x = 1
    assert_same_as_plain(_has_property_value, (obj,))


class _Layer:
    def __init__(self, sliding):
        self.sliding = sliding


class _Cache:
    """transformers' DynamicCache: `is_sliding` a property over its layers, asked by
    `hasattr(cache, "is_sliding")` in the mask builders on every forward."""

    def __init__(self, *flags):
        self.layers = [_Layer(f) for f in flags]
        self.reads = 0

    @property
    def is_sliding(self):
        self.reads += 1  # a getter's effect: once per hasattr, as plain Python
        return [layer.sliding for layer in self.layers]

    @property
    def broken(self):
        raise ValueError("not an AttributeError: hasattr passes it on")


def _sliding_index(x, cache):
    if hasattr(cache, "is_sliding") and True in cache.is_sliding:
        return x * (cache.is_sliding.index(True) + 2)
    return x - 1


def test_hasattr_of_a_property_inlines_its_getter_in_the_graph():
    import torch

    from terra_dyn import report

    x, cache, plain = torch.randn(3), _Cache(False, True), _Cache(False, True)
    fast = terra_dyn.optimize(_sliding_index, backend="interpreter")
    with report.recording() as rec:
        for _ in range(3):
            torch.testing.assert_close(fast(x, cache), _sliding_index(x, plain))
    assert not rec.report().breaks and cache.reads == plain.reads == 9
    for c in (cache, plain):  # a change the getter reads, at each level: a layer's flag, the list
        c.layers[1].sliding = False
    torch.testing.assert_close(fast(x, cache), _sliding_index(x, plain))
    for c in (cache, plain):
        c.layers.append(_Layer(True))
    torch.testing.assert_close(fast(x, cache), _sliding_index(x, plain))
    assert cache.reads == plain.reads


def _has_broken(obj):
    return hasattr(obj, "broken")


def test_hasattr_of_a_property_whose_getter_raises_another_error_raises_it():
    assert_same_as_plain(_has_broken, (_Cache(),), (_Cache(),))


def test_hasattr_of_a_property_true_then_false_when_its_getter_starts_raising():
    obj = _PropertyOfMissing()
    obj._x = 1
    assert_same_as_plain(_has_property_value, (obj,), (obj,))
    del obj._x
    assert_same_as_plain(_has_property_value, (obj,), (obj,))


# -- test_descr's test_vicious_descriptor_nonsense: a lookup that runs a key's __eq__ ------
def _vicious():
    class Evil:
        def __hash__(self):
            return hash("attr")

        def __eq__(self, other):
            try:
                del C.attr
            except AttributeError:
                pass
            return False

    class Descr:
        def __get__(self, ob, cls=None):
            return 1

    class C:
        attr = Descr()

    c = C()
    c.__dict__[Evil()] = 0
    return c.attr, hasattr(C, "attr")


def test_attribute_lookup_through_a_dict_key_with_its_own_eq_runs_it_once():
    assert_same_as_plain(_vicious, (), ())


# -- test_descr's MroTest: a closure whose free variable is still unbound at the call -------
def _make_reader():
    prefix = "value: "

    def reader(flag):
        if flag:
            return prefix + later
        return prefix + "not yet"

    def bind():
        nonlocal later
        later = "bound"

    return reader, bind
    later = None  # noqa: F841 (makes `later` a cell of _make_reader, unbound until bind())


def test_closure_with_an_unbound_free_variable_runs_as_python():
    plain_reader, plain_bind = _make_reader()
    reader, bind = _make_reader()
    fast = terra_dyn.optimize(reader, backend="interpreter")
    for flag in (False, False, True):
        assert _outcome(fast, flag) == _outcome(plain_reader, flag)
    plain_bind()
    bind()
    for flag in (True, False, True):
        assert _outcome(fast, flag) == _outcome(plain_reader, flag)


# -- test_descr's test_dir: dir() without arguments lists the frame's own names --------------
def _names_here(x):
    junk = [x]
    print_ = repr(junk)  # noqa: F841
    return dir()


def test_dir_without_arguments_lists_the_users_names():
    assert_same_as_plain(_names_here, (1,), (2,))


# -- test_exceptions' test_missing_lineno_shows_as_none ------------------------------------
def _lines_after_raise(f):
    try:
        f()
    except ZeroDivisionError as exc:
        tb = exc.__traceback__.tb_next
    lines = []
    while tb:
        frame = tb.tb_frame
        lines.append(None if frame.f_lineno is None else frame.f_lineno - frame.f_code.co_firstlineno)
        tb = tb.tb_next
    return lines


def _divides_by_zero():
    1 / 0


def test_frame_of_code_without_line_numbers_shows_none():
    f = _divides_by_zero
    no_locations = b"\xf8" * (len(f.__code__.co_code) // 2)  # "no location" for each code unit
    stripped = type(f)(f.__code__.replace(co_linetable=no_locations), f.__globals__)
    assert _lines_after_raise(terra_dyn.optimize(stripped, backend="interpreter")) == \
        _lines_after_raise(stripped) == [None]
    assert _lines_after_raise(terra_dyn.optimize(f, backend="interpreter")) == _lines_after_raise(f) == [1]


# -- an item read, then its container written: the read is the old item --------------------
def _post_increment_item(a):
    x = a[0]
    a[0] = x + 1
    return x


def _swap(a):
    a[0], a[1] = a[1], a[0]
    return a[0]


def test_item_read_before_its_container_is_written_is_the_old_item():
    for fn, make in ((_post_increment_item, lambda: [1]), (_post_increment_item, lambda: {0: 1}),
                     (_swap, lambda: [1, 2])):
        plain, fast_arg = make(), make()
        fast = terra_dyn.optimize(fn, backend="interpreter")
        assert [fast(fast_arg) for _ in range(4)] == [fn(plain) for _ in range(4)]
        assert fast_arg == plain


# -- test_dataclasses' test_function_annotations and TestDocString: the generated __init__ --
# (made by exec'd code with the user's globals, so translated) lost its annotations
def _annotated_function_factory(kind):
    def made(a: kind, b: int) -> kind:
        return a

    return made  # rebuilt in the rewritten code


def test_a_function_made_in_translated_code_keeps_its_annotations():
    fast = terra_dyn.optimize(_annotated_function_factory, backend="interpreter")
    for kind in (str, float):
        made = fast(kind)
        assert made.__annotations__ == _annotated_function_factory(kind).__annotations__
        assert made.__annotations__ == {"a": kind, "b": int, "return": kind}
        assert made(3, 4) == 3


# -- test_dataclasses' test_helper_asdict_factory: an OrderedDict (or Counter) read in
# translated code was typed, copied and rebuilt as a plain dict --------------------------
def _dict_subclass_types(pairs):
    import collections

    od = collections.OrderedDict(pairs)  # made natively: wrapped as a dict value
    counts = collections.Counter(dict(pairs))
    return type(od), type(od.copy()), type(counts), od.copy(), counts.copy()


def test_an_ordered_dict_keeps_its_type():
    assert_same_as_plain(_dict_subclass_types, ([("a", 1), ("b", 2)],), ([("c", 3)],))


# -- test_dataclasses' test_getting_field_calls_get: a descriptor whose `__get__` is a callable
# object (a Mock), not a function, was called at translation and again natively ------------
def _read_through_a_callable_get():
    import dataclasses
    from unittest.mock import Mock

    class D:
        pass

    D.__get__ = Mock(return_value=7)

    @dataclasses.dataclass
    class C:
        i: D = D()

    c = C(5)
    D.__get__.reset_mock()
    value = c.i
    return value, D.__get__.call_count


def test_a_descriptor_with_a_callable_object_as_get_is_read_once():
    from unittest.mock import Mock

    from terra_dyn.translate.attributes import _python_descriptor

    class D:
        pass

    D.__get__ = Mock()
    assert _python_descriptor(D())  # so it is read natively, never at translation
    assert not _python_descriptor(property(lambda self: 1))
    assert_same_as_plain(_read_through_a_callable_get, (), ())


# -- test_with: a _GeneratorContextManager subclass with its own __enter__ / __exit__, nested ---
from contextlib import _GeneratorContextManager  # noqa: E402


class _RecordingManager(_GeneratorContextManager):
    def __init__(self, *args):
        super().__init__(*args)
        self.exit_args = None

    def __enter__(self):
        self.entered = True
        return _GeneratorContextManager.__enter__(self)

    def __exit__(self, kind, value, tb):
        self.exit_args = (kind, value is not None)
        return _GeneratorContextManager.__exit__(self, kind, value, tb)


def _resource():
    state = {"stopped": False}
    try:
        yield state
    finally:
        state["stopped"] = True


def _nested_managers(fail):
    a, b = _RecordingManager(_resource, (), {}), _RecordingManager(_resource, (), {})
    seen = []
    try:
        with a as x:
            with b as y:
                seen.append((x["stopped"], y["stopped"]))
                if fail:
                    raise ValueError("inner")
            seen.append((b.exit_args, y["stopped"], x["stopped"]))
    except ValueError as exc:
        seen.append(str(exc))
    return seen, a.exit_args, b.exit_args, x["stopped"], y["stopped"]


def test_nested_generator_managers_with_their_own_exit():
    # the status listed a TypeError in the optimized run of test_with's mock managers
    assert_same_as_plain(_nested_managers, (False,), (True,), (False,), (True,))


# -- test_named_expressions' test_named_expression_scope_03: any() ran the generator to its end
def _any_stops_at_the_first_true(xs):
    found = any((last := n) == 1 for n in xs)
    every = all((first_bad := n) < 2 for n in xs)
    seen = []
    some = any(seen.append(n) or n > 1 for n in xs)
    return found, last, every, first_bad, some, seen


def test_any_and_all_stop_consuming_where_python_stops():
    assert_same_as_plain(_any_stops_at_the_first_true, ([1, 2, 3],), ([3, 1, 2],), ([0, 0, 5],))


# -- test_grammar's test_var_annot_in_module: `__annotations__[1] = 2` in a function of a
# module without annotations raised NameError plainly; translated, the name was found as an
# attribute of the builtins module (which makes one on first read) and nothing raised
_NO_ANNOTATIONS = {}
exec("def _bad_annotations():\n    __annotations__[1] = 2\n    return 'stored'\n", _NO_ANNOTATIONS)


def _calls_bad_annotations():
    return _NO_ANNOTATIONS["_bad_annotations"]()


def test_global_lookup_reads_the_builtins_dict_not_the_module():
    import builtins

    builtins.__dict__.pop("__annotations__", None)  # (hasattr(builtins, ...) makes it)
    fast = terra_dyn.optimize(_calls_bad_annotations, backend="interpreter")
    for _ in range(2):
        assert _outcome(fast) == ("raised", (NameError, "name '__annotations__' is not defined"))
    assert "__annotations__" not in builtins.__dict__
    assert _outcome(_calls_bad_annotations) == _outcome(fast)


# -- test_bool's test_bool_called_at_least_once: an object made in the frame was taken as
# true without calling its __bool__; a global one's __bool__ ran once, at translate time
class _Counted:
    def __init__(self):
        self.count = 0

    def __bool__(self):
        self.count += 1
        return self.count % 2 == 1


def _truth_of_a_new_object(n):
    x = _Counted()
    outcomes = [bool(x or n) for _ in range(3)]
    if x:
        outcomes.append("x")
    return outcomes, x.count


_FLAG = _Counted()


def _truth_of_a_global_object(n):
    return (n + 1 if _FLAG else n - 1), _FLAG.count


def test_bool_of_a_python_object_runs_its_bool_each_time():
    assert_same_as_plain(_truth_of_a_new_object, (0,), (1,), (0,))
    fast = terra_dyn.optimize(_truth_of_a_global_object, backend="interpreter")
    got = [fast(i) for i in range(4)]
    _FLAG.count = 0
    assert got == [_truth_of_a_global_object(i) for i in range(4)]


# -- test_slice's test_cycle: a slice holding an object was a value: guarded by `==` (the
# object's __eq__) and baked into the code as a constant, which kept the object alive
class _Part:
    pass


def _slice_of_an_object_dies_with_it():
    import gc
    import weakref

    o = _Part()
    o.s = slice(o)
    w = weakref.ref(o)
    o = None
    gc.collect()
    return w() is None


def _slice_of_a_new_object(k):
    o = _Part()
    s = slice(o, k)
    print(end="")  # a break: s is the resume function's argument
    return s.start is o, s.stop


def test_slice_of_an_object_is_not_a_constant():
    assert_same_as_plain(_slice_of_an_object_dies_with_it, (), (), ())
    assert_same_as_plain(_slice_of_a_new_object, (1,), (2,), (2,))
