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
