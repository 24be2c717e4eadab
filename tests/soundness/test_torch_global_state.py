"""torch's global state changed between calls reaches the next optimized call (issue 16).

Each test reads a piece of global state inside an optimized function, changes it after the
first call, and compares every call with the same function run plainly. A torch call made of
constants alone (`torch.get_num_threads()`, `torch.are_deterministic_algorithms_enabled()`)
or a torch.backends flag (a getter on a module subclass) was answered once at translate
time and baked in: a silent wrong branch or value.
"""
import contextlib

import pytest
import torch

import terra_dyn

pytestmark = pytest.mark.usefixtures("fresh_terra_dyn")


def _deterministic(x):
    if torch.are_deterministic_algorithms_enabled():
        return x + 1
    return x - 1


def _threads(x):
    return x + torch.get_num_threads()


def _precision(x):
    return x * (2 if torch.get_float32_matmul_precision() == "highest" else 3)


def _default_device(x):
    return torch.zeros(2, device=torch.get_default_device()).device.type == "meta", x + 1


def _grad_mode(x):
    return x + (1 if torch.is_grad_enabled() else 2)


def _inference_mode(x):
    return x + (1 if torch.is_inference_mode_enabled() else 2)


def _promoted(x):
    return x.to(torch.promote_types(torch.float32, torch.float64))


def _cudnn_deterministic(x):
    return x + (1 if torch.backends.cudnn.deterministic else 2)


def _mkldnn_enabled(x):
    return x + (1 if torch.backends.mkldnn.enabled else 2)


def _set_threads(n):
    torch.set_num_threads(n)


# the flags() context managers: torch's op_db tests (run earlier in the suite) call
# torch.backends.disable_global_flags(), after which a plain assignment raises
_FLAGS = contextlib.ExitStack()
_STATES = {
    # name: (function, [state changes], restore)
    "deterministic": (_deterministic, [lambda: torch.use_deterministic_algorithms(True),
                                       lambda: torch.use_deterministic_algorithms(False)],
                      lambda old=torch.are_deterministic_algorithms_enabled(): torch.use_deterministic_algorithms(old)),
    "num_threads": (_threads, [lambda: _set_threads(2 if torch.get_num_threads() == 1 else 1),
                               lambda: _set_threads(3)],
                    lambda old=torch.get_num_threads(): _set_threads(old)),
    "matmul_precision": (_precision, [lambda: torch.set_float32_matmul_precision("high"),
                                      lambda: torch.set_float32_matmul_precision("highest")],
                         lambda old=torch.get_float32_matmul_precision(): torch.set_float32_matmul_precision(old)),
    "default_device": (_default_device, [lambda: torch.set_default_device("meta"),
                                         lambda: torch.set_default_device(None)],
                       lambda: torch.set_default_device(None)),
    "grad_mode": (_grad_mode, [lambda: torch.set_grad_enabled(False), lambda: torch.set_grad_enabled(True)],
                  lambda: torch.set_grad_enabled(True)),
    "promote_types": (_promoted, [lambda: None], lambda: None),
    # a module subclass's getter (torch.backends' ContextProp), read once and baked in before
    "cudnn_deterministic": (_cudnn_deterministic, [lambda: _FLAGS.enter_context(torch.backends.cudnn.flags(
                                                        enabled=torch.backends.cudnn.enabled, deterministic=True)),
                                                    lambda: _FLAGS.enter_context(torch.backends.cudnn.flags(
                                                        enabled=torch.backends.cudnn.enabled, deterministic=False))],
                            lambda: _FLAGS.close()),
    "mkldnn_enabled": (_mkldnn_enabled, [lambda: _FLAGS.enter_context(torch.backends.mkldnn.flags(enabled=False)),
                                         lambda: _FLAGS.enter_context(torch.backends.mkldnn.flags(enabled=True))],
                       lambda: _FLAGS.close()),
}


def _result(fn, x):
    out = fn(x)
    parts = out if isinstance(out, tuple) else (out,)
    return [(p.tolist(), str(p.dtype)) if isinstance(p, torch.Tensor) and p.device.type != "meta"
            else p for p in parts]


@pytest.mark.parametrize("name", sorted(_STATES))
def test_torch_global_state_changed_after_the_first_call(name):
    # before: deterministic, num_threads, matmul_precision, default_device and the two
    # torch.backends flags kept the first call's answer
    fn, changes, restore = _STATES[name]
    fast = terra_dyn.optimize(fn, backend="interpreter")
    x = torch.ones(2)
    try:
        got, want = [_result(fast, x)], [_result(fn, x)]
        for change in changes:
            change()
            got.append(_result(fast, x))
            want.append(_result(fn, x))
            got.append(_result(fast, x))  # cached
            want.append(_result(fn, x))
    finally:
        restore()
    assert got == want


def test_inference_mode_entered_around_a_cached_call():
    fast = terra_dyn.optimize(_inference_mode, backend="interpreter")
    x = torch.ones(2)
    got, want = [fast(x).tolist()], [_inference_mode(x).tolist()]
    with torch.inference_mode():
        got.append(fast(x).tolist())
        want.append(_inference_mode(x).tolist())
    got.append(fast(x).tolist())
    want.append(_inference_mode(x).tolist())
    assert got == want == [[3.0, 3.0], [2.0, 2.0], [3.0, 3.0]]


_W = torch.ones(2, requires_grad=True)


def _grad_switched_by_a_statement(x):
    torch.set_grad_enabled(False)  # at once, and for the caller too: no with block
    a = x * _W
    torch.set_grad_enabled(True)
    b = x * _W
    torch.set_grad_enabled(False)
    return a.requires_grad, b.requires_grad, (x * _W).requires_grad


def _grad_switched_by_a_with_block(x):
    with torch.set_grad_enabled(False):
        a = x * _W
    return a.requires_grad, (x * _W).requires_grad


@pytest.mark.parametrize("fn", [_grad_switched_by_a_statement, _grad_switched_by_a_with_block])
def test_set_grad_enabled_called_inside_the_frame(fn):
    # before: the statement form was taken for a with block's manager never entered, so `a`
    # required grad and grad mode was not left off for the caller
    fast = terra_dyn.optimize(fn, backend="interpreter")
    x = torch.ones(2)
    try:
        got, want = [], []
        for _ in range(2):
            got.append((fast(x), torch.is_grad_enabled()))
            torch.set_grad_enabled(True)
            want.append((fn(x), torch.is_grad_enabled()))
            torch.set_grad_enabled(True)
    finally:
        torch.set_grad_enabled(True)
    assert got == want


def _switch_grad(mode):
    torch.set_grad_enabled(mode)  # runs natively: the caller breaks here


def _product_read_after_a_native_switch(x):
    b = x * _W
    _switch_grad(False)
    return b.requires_grad, b.is_leaf, torch.is_grad_enabled()


def test_a_product_made_before_a_native_grad_switch_still_requires_grad():
    # the resume function after the switch is translated with grad mode off, and its facts
    # about the non-leaf `b` were made under that mode: b.requires_grad read False
    fast = terra_dyn.optimize(_product_read_after_a_native_switch, backend="interpreter")
    got, want = [], []
    try:
        for fn, out in ((_product_read_after_a_native_switch, want), (fast, got)):
            for _ in range(2):
                torch.set_grad_enabled(True)
                out.append(fn(torch.ones(2)))
    finally:
        torch.set_grad_enabled(True)
    assert got == want == [(True, False, False)] * 2


def _facts_of(t):
    return t.requires_grad, t.is_leaf, torch.is_grad_enabled()


@pytest.mark.parametrize("mode", ["no_grad", "inference_mode", "grad"])
def test_a_non_leaf_input_requires_grad_under_every_grad_mode(mode):
    fast = terra_dyn.optimize(_facts_of, backend="interpreter")
    manager = {"no_grad": torch.no_grad, "inference_mode": torch.inference_mode,
               "grad": torch.enable_grad}[mode]
    t = torch.ones(2) * _W  # a non-leaf requiring grad
    with manager():
        assert [fast(t), fast(t)] == [_facts_of(t)] * 2
