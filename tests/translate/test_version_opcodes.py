"""Constructs that CPython 3.11, 3.12 and 3.13 compile to different bytecode, translated
and compared with eager on the running interpreter (run it with each version's venv).

3.12: inlined comprehensions (LOAD_FAST_AND_CLEAR, END_FOR, STORE_FAST of a NULL),
BINARY_SLICE / STORE_SLICE, RETURN_CONST, LOAD_SUPER_ATTR, LOAD_ATTR's method bit,
CALL_INTRINSIC_1; 3.13: TO_BOOL, CALL_KW, LOAD_FAST_LOAD_FAST and its siblings,
FORMAT_SIMPLE / FORMAT_WITH_SPEC, SET_FUNCTION_ATTRIBUTE, the NULL above the callable.
An opcode the translator has no handler for is a graph break naming it.
"""
import dis

import torch
from torch import nn

import terra_dyn
from terra_dyn import report
from terra_dyn.translate.executor import Translator


def _compare(fn, *args):
    """fn optimized against eager on fresh copies of args: (ours, report)."""
    fast = terra_dyn.optimize(fn, backend="interpreter")
    with report.recording() as rec:
        ours = fast(*[a.clone() if isinstance(a, torch.Tensor) else a for a in args])
    eager = fn(*[a.clone() if isinstance(a, torch.Tensor) else a for a in args])
    if isinstance(eager, torch.Tensor):
        torch.testing.assert_close(ours, eager)
    else:
        assert type(ours) is type(eager)
        assert len(ours) == len(eager)
        for o, e in zip(ours, eager):
            torch.testing.assert_close(o, e)
    return ours, rec.report()


def test_comprehension_keeps_the_outer_loop_variable(fresh_terra_dyn):
    def f(x):
        i = x * 3  # the comprehension's `i` must not clobber this one (PEP 709 saves it)
        ys = [x + i for i in range(3)]
        return i + ys[0] + ys[2]

    _, rep = _compare(f, torch.randn(4))
    assert rep.break_count == 0 and rep.graph_count == 1


def test_comprehension_variable_unbound_outside(fresh_terra_dyn):
    def f(x):
        ys = [x * k for k in range(4)]
        try:
            k  # noqa: B018  unbound after the comprehension, as in eager
            seen = 1
        except NameError:
            seen = 0
        return ys[3] + seen

    _compare(f, torch.randn(3))


def test_break_inside_a_comprehension_resumes(fresh_terra_dyn, capsys):
    def f(x):
        total = [float(x[i].sum().item()) * 2 for i in range(2)]
        return x * total[0] + total[1]

    _compare(f, torch.randn(2, 3))


def test_dict_and_set_comprehensions(fresh_terra_dyn):
    def f(x):
        d = {k: x * k for k in range(3)}
        s = {k % 2 for k in range(5)}
        return d[2] + len(s)

    _, rep = _compare(f, torch.randn(3))
    assert rep.break_count == 0


def test_slices_load_and_store(fresh_terra_dyn):
    def f(x, xs):
        xs[1:3] = [x, x * 2]
        ys = xs[:2]
        return x[1:3] + ys[1][:2] + xs[2][3:]

    _compare(f, torch.randn(5), [torch.ones(5)] * 4)


def test_return_of_a_constant_after_a_branch(fresh_terra_dyn):
    def f(x, flag):
        if flag:
            return None
        return x + 1

    fast = terra_dyn.optimize(f, backend="interpreter")
    x = torch.randn(3)
    assert fast(x, True) is None
    torch.testing.assert_close(fast(x, False), x + 1)


def test_method_calls_and_keyword_calls(fresh_terra_dyn):
    def f(x):
        y = x.clamp(min=-0.5, max=0.5)
        return torch.cat([y, x.relu()], dim=0).sum(dim=0, keepdim=True)

    _, rep = _compare(f, torch.randn(4))
    assert rep.break_count == 0


def test_zero_argument_super_in_an_inlined_forward(fresh_terra_dyn):
    class Base(nn.Module):
        def forward(self, x):
            return x * 2

    class Child(Base):
        def forward(self, x):
            return super().forward(x) + 1

    model = Child()
    _, rep = _compare(model, torch.randn(3))
    assert rep.break_count == 0


def test_zero_argument_super_after_a_break(fresh_terra_dyn, capsys):
    class Base(nn.Module):
        def forward(self, x):
            return x * 2

    class Child(Base):
        def forward(self, x):
            print("sum", x.sum().item())
            return super().forward(x) + 1

    _compare(Child(), torch.randn(3))


def test_unary_plus_and_star_unpacking(fresh_terra_dyn):
    def f(x):
        a, *rest = (x, x * 2, x * 3)
        return +a + tuple(rest)[1]

    _compare(f, torch.randn(3))


def test_f_strings_of_python_values_are_constants(fresh_terra_dyn, capsys):
    def f(x, n):
        label = f"{n}:{n!r:>4}:{n:03d}"
        print(label)
        return x + len(label)

    _compare(f, torch.randn(3), 7)


def test_closure_made_in_the_frame(fresh_terra_dyn):
    def f(x):
        scale = 3

        def g(y, bias=1):
            return y * scale + bias

        return g(x) + g(x, bias=2)

    _, rep = _compare(f, torch.randn(3))
    assert rep.break_count == 0


def test_branch_on_a_tensor_breaks_and_takes_the_right_side(fresh_terra_dyn):
    def f(x):
        if x.sum() > 0:
            return x + 1
        return x - 1

    fast = terra_dyn.optimize(f, backend="interpreter")
    for x in (torch.ones(3), -torch.ones(3)):
        torch.testing.assert_close(fast(x), f(x))


def test_for_loop_exhaustion_continues_after_the_loop(fresh_terra_dyn, capsys):
    def f(x):
        for i in range(3):
            x = x + i
            print(i)
        return x * 2

    _compare(f, torch.randn(3))


def test_an_opcode_without_a_handler_is_a_break_naming_it(fresh_terra_dyn, monkeypatch):
    def f(x):
        y = x + 1
        z = y * 2
        return z

    names = [i.opname for i in dis.get_instructions(f)]
    victim = "BINARY_OP"
    assert victim in names
    for klass in Translator.__mro__:
        if victim in vars(klass):
            monkeypatch.delattr(klass, victim)
    _, rep = _compare(f, torch.randn(3))
    assert rep.breaks and f"bytecode {victim} is not supported" in rep.breaks[0].reason


def test_method_form_load_that_cannot_be_translated_is_no_break_point(fresh_terra_dyn):
    """`c.make(...)` through __getattr__ on 3.12 is LOAD_ATTR with the method bit: natively
    it pushes [NULL, attr] or [method, self], known only at run time; a break there stored
    the NULL in a local and crashed CPython. The frame runs natively instead."""
    actions = []

    def make(tag):
        actions.append("make" + tag)
        return lambda fn: fn

    class Tracer:
        def __init__(self, index):
            self.index = index

        def __getattr__(self, name):
            actions.append(name)
            return make if name == "make" else str(self.index)

    def f(x):
        class Local:  # a class statement: a break before the decorators
            pass

        c1, c2 = Tracer(1), Tracer(2)

        @c1.make(c1.arg)
        @c2.make(c2.arg)
        def g(t):
            return t * 2

        return g(x), list(actions), Local.__name__

    fast = terra_dyn.optimize(f, backend="interpreter")
    ours = fast(torch.ones(2))
    mine = list(actions)
    actions.clear()
    eager = f(torch.ones(2))
    torch.testing.assert_close(ours[0], eager[0])
    assert ours[1:] == eager[1:] and mine == list(actions)


def _masked_like(x, scale):
    """torch.masked's reductions: a local class, closing over a local and with a method
    that calls super(), is defined and only used on another path."""
    def helper(t):
        return t * scale

    class Combine(torch.autograd.Function):
        @staticmethod
        def forward(ctx, t):
            return helper(t)

        def describe(self):
            return super().__repr__()

    if isinstance(x, list):  # never on these inputs: the class is not needed
        return Combine.apply(x[0])
    return helper(x).sum(0)


def test_an_unused_local_class_with_a_closure_and_a_classcell_is_not_a_break(fresh_terra_dyn):
    """The class body pushes its closure's cell (3.11/3.12 LOAD_CLOSURE, 3.13 LOAD_FAST) and
    hands `__class__` on as `__classcell__` (COPY; STORE_NAME): the class statement is
    skipped and the frame stays one graph on every version."""
    def f(x):
        return _masked_like(x, 3.0) + 1

    _, rep = _compare(f, torch.randn(4, 3))
    assert rep.graph_count == 1 and rep.break_count == 0


def test_a_class_body_reading_a_plain_local_is_still_built_natively(fresh_terra_dyn):
    """Only the closure's cells may be read in a skipped class body; anything else is a
    break that builds the class as Python does (here: a body that calls a function)."""
    def f(x):
        def g(t):
            class Local:
                factor = len("abc")
            return t * 2
        return g(x) + 1

    _, rep = _compare(f, torch.randn(3))
    assert rep.break_count >= 1
