"""Capture coverage added for PyTorch's test databases: @contextlib.contextmanager blocks,
RNG-state calls (op_db's freeze_rng_state / manual_seed wrapper) and lazy modules.

Every test runs the function eagerly and optimized (interpreter backend, caches cleared) on
fresh copies of the same inputs with the same seed, twice (first call translates, second runs
the cached code), and compares the outputs, the exception type, and the random stream right
after the call (torch.rand drawn next); where the point is capture, it also checks one graph
on the first call and nothing new on the cached one.

Run: .venv/bin/python -m pytest -q tests/translate/test_coverage_additions.py   (a few seconds)
"""
import contextlib

import torch

import terra_dyn

from .harness import call, compare_outcomes, optimize, optimized_call


def run_both(fn, make_args, calls=2, seed=7, whole=True):
    """Eager vs optimized on identical inputs and RNG seed; returns the Capture of each call."""
    fast = optimize(fn)
    captures = []
    for n in range(calls):
        torch.manual_seed(seed + n)
        eager = call(fn, make_args(), {})
        eager_next = torch.rand(4)
        torch.manual_seed(seed + n)
        ours, capture = optimized_call(fast, make_args(), {})
        ours_next = torch.rand(4)
        problems = compare_outcomes(eager, ours)
        assert not problems, f"call {n}: " + "; ".join(problems)
        assert torch.equal(eager_next, ours_next), f"call {n}: the random stream after the call differs"
        captures.append(capture)
    if whole:
        assert captures[0].one_graph(), captures[0].why()
        if whole != "first":  # "first": each call gets a new module (guarded by identity)
            assert all(c.quiet() for c in captures[1:]), [c.why() for c in captures[1:]]
    terra_dyn.reset()
    return captures


@contextlib.contextmanager
def frozen_rng():
    state = torch.get_rng_state()
    try:
        yield
    finally:
        torch.set_rng_state(state)


@contextlib.contextmanager
def scaled(t, k):
    t.mul_(k)  # setup mutates an input
    try:
        yield t * 2
    finally:
        t.div_(k)  # teardown undoes it


def test_freeze_rng_state_wrapper_of_op_db():
    from torch.testing._internal.common_methods_invocations import wrapper_set_seed

    def f(x):
        return wrapper_set_seed(torch.bernoulli, x)

    run_both(f, lambda: (torch.full((6, 5), 0.5),))


def test_user_contextmanager_restores_rng_stream():
    def f(x):
        with frozen_rng():
            torch.manual_seed(3)
            a = torch.rand_like(x)
        b = torch.randn_like(x)  # drawn from the restored stream, as in eager
        return a + x, b

    run_both(f, lambda: (torch.zeros(3, 2),))


def test_contextmanager_yields_value_and_runs_teardown():
    def f(x):
        with scaled(x, 4.0) as y:
            z = y + x
        return z, x * 1  # x is back to its value after the block

    run_both(f, lambda: (torch.arange(6.0).reshape(2, 3),))


def test_return_inside_contextmanager_block_runs_teardown():
    def f(x):
        with scaled(x, 3.0) as y:
            return y.sum() + x.sum()

    run_both(f, lambda: (torch.ones(4),))


def test_manual_seed_argument_changes_between_calls():
    def f(x, seed):
        torch.manual_seed(seed)
        return x + torch.rand(3)

    fast = optimize(f)
    for seed in (1, 2, 1):
        expected = f(torch.zeros(3), seed)
        got = fast(torch.zeros(3), seed)
        assert torch.equal(expected, got), seed
    terra_dyn.reset()


def test_exception_inside_contextmanager_block_matches_eager():
    def f(x):
        with frozen_rng():
            torch.manual_seed(5)
            y = torch.rand_like(x)
            if x.shape[0] == 3:
                raise ValueError("boom")
        return y

    run_both(f, lambda: (torch.zeros(3),), whole=False)


def test_generator_that_yields_twice_raises_like_eager():
    @contextlib.contextmanager
    def twice():
        yield 1
        yield 2

    def f(x):
        with twice():
            y = x + 1
        return y

    run_both(f, lambda: (torch.zeros(3),), whole=False)


def test_break_inside_contextmanager_body_matches_eager():
    @contextlib.contextmanager
    def reads_value(t):
        n = int(t.sum().item())  # needs a tensor's value: not capturable
        yield n
        t.add_(n)

    def f(x):
        with reads_value(x) as n:
            y = x * n
        return y, x

    run_both(f, lambda: (torch.ones(3),), whole=False)


def test_lazy_module_initialized_at_translation_is_captured():
    def f(m, x):
        return m(x)

    def make():
        torch.manual_seed(0)
        return (torch.nn.LazyLinear(3), torch.randn(2, 5))

    run_both(f, make, whole="first")


def test_lazy_module_after_a_random_op_keeps_eager_order():
    def f(m, x):
        noise = torch.rand(3)  # in eager this draw comes before the initialization
        return m(x), noise

    run_both(f, lambda: (torch.nn.LazyConv1d(2, 3), torch.ones(1, 4, 8)), whole=False)


class Registry:
    seen = []


def plus_one(x, make_class=False):
    class Twice(torch.autograd.Function):  # built but unused on plain tensors, as in torch.masked
        @staticmethod
        def forward(ctx, t):
            return t * 2

    return (x + 1, Twice) if make_class else x + 1


def test_unused_local_class_in_a_callee_is_captured():
    def f(x):
        return plus_one(x) * 3

    run_both(f, lambda: (torch.ones(3),))


def test_local_class_escaping_its_callee_matches_eager():
    def f(x):
        y, cls = plus_one(x, make_class=True)
        return cls.apply(y), cls.__name__

    run_both(f, lambda: (torch.ones(3),), whole=False)


def test_used_local_class_matches_eager():
    def f(x):
        class Twice(torch.autograd.Function):
            @staticmethod
            def forward(ctx, t):
                return t * 2

            @staticmethod
            def backward(ctx, g):
                return g * 2

        return Twice.apply(x) + 1, Twice.__name__

    run_both(f, lambda: (torch.ones(3),), whole=False)


def test_class_body_with_effects_runs_natively():
    def f(x):
        class Noted:
            Registry.seen.append(1)  # the body has a side effect: must happen as in eager

        return x + len(Registry.seen)

    Registry.seen.clear()
    fast = optimize(f)
    expected = [f(torch.ones(2)) for _ in range(2)]
    Registry.seen.clear()
    got = [fast(torch.ones(2)) for _ in range(2)]
    assert all(torch.equal(a, b) for a, b in zip(expected, got))
    assert len(Registry.seen) == 2
    terra_dyn.reset()


def short_name(name):
    return name.rsplit(".", 1)[-1]


def my_sum(t):
    return t.sum()


def test_string_method_of_a_guarded_name_does_not_recompile():
    def f(x, op):
        return x * len(short_name(op.__name__))

    fast = optimize(f)
    for op in (my_sum, my_sum, run_both):
        assert torch.equal(f(torch.ones(2), op), fast(torch.ones(2), op))

    def g(x):
        return x * len(short_name(my_sum.__name__))

    run_both(g, lambda: (torch.ones(2),))


def test_rng_state_nodes_refuse_fake_tracing():
    # A tracing backend (Triton's lower_to_aten) must not bake manual_seed / get_rng_state in
    # at trace time: lowering fails, so that backend runs the graph eagerly.
    import pytest
    import torch.fx as fx

    from terra_dyn.backends.triton.lowering import lower_to_aten
    from terra_dyn.translate.generator_cm import rng_get_state, rng_manual_seed, rng_set_state

    graph = fx.Graph()
    x = graph.placeholder("x")
    state = graph.call_function(rng_get_state, ())
    graph.call_function(rng_manual_seed, (3,))
    noise = graph.call_function(torch.rand_like, (x,))
    graph.call_function(rng_set_state, (state,))
    graph.output(noise)
    gm = fx.GraphModule(torch.nn.Module(), graph)
    torch.manual_seed(0)
    eager = gm(torch.zeros(3))
    torch.manual_seed(3)
    assert torch.equal(eager, torch.rand(3))  # the graph itself reseeds, as eager would
    with pytest.raises(RuntimeError, match="RNG state"):
        lower_to_aten(gm, [torch.zeros(3)])


# ----------------------------------------------------------------------------- key functions
# min / max / sorted with a key function over values known at translate time: the key is
# translated (called once per item, in order, as Python does), the items are returned as
# they are (tensors included), ties keep Python's order.

KEY_CALLS = []


def _rows(t):
    KEY_CALLS.append(t.shape)  # a side effect of the key: replayed once per item
    return t.shape[0]


def test_min_max_sorted_with_key_functions():
    def f(xs, x):
        biggest = max(xs, key=_rows)
        flattest = min(xs, key=lambda t: (t.shape[0], -t.shape[1]))
        ordered = sorted(xs, key=lambda t: t.shape[0], reverse=True)  # ties stay in order
        n = min([3, 1, 2], key=lambda v: -v)
        fallback = max([], key=len, default=x)
        return biggest * 2, flattest + 1, [t.sum() for t in ordered], n, fallback

    def make_args():
        g = torch.Generator().manual_seed(0)
        return ([torch.randn(2, 3, generator=g), torch.randn(4, 1, generator=g),
                 torch.randn(4, 2, generator=g), torch.randn(1, 1, generator=g)], torch.randn(2, generator=g))

    KEY_CALLS.clear()
    run_both(f, make_args)
    assert len(KEY_CALLS) == 4 * 4  # 4 items, 2 eager and 2 optimized calls: once per item each


def test_incomparable_keys_raise_as_eager():
    def f(x):
        return max([x, x * 2], key=lambda t: t if False else {})  # dicts do not compare

    run_both(f, lambda: (torch.randn(3),), whole=False)
