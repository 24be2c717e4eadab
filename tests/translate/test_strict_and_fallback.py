"""Fallbacks run the original code (same results, same errors); strict and fullgraph raise."""
import threading
import traceback

import pytest
import torch

import terra_dyn
from terra_dyn import report
from terra_dyn.convert_frame import TranslationError
from terra_dyn.translate import FullgraphError


_LOCK = threading.Lock()


def guarded_division(x):
    scale = 2.0
    y = x * scale
    with _LOCK:  # a context manager written in C is not inlined, and a with statement
        y = y / 3  # cannot be split: the frame runs eagerly
    return y / x.sum().item()


def test_unsupported_frame_falls_back_and_is_recorded(fresh_terra_dyn):
    fast = terra_dyn.optimize(guarded_division, backend="interpreter")
    x = torch.randn(3)
    with report.recording() as rec:
        torch.testing.assert_close(fast(x), guarded_division(x))
    rep = rec.report()
    assert rep.graph_count == 0 and len(rep.fallbacks) == 1
    assert "with block" in rep.fallbacks[0].reason
    torch.testing.assert_close(fast(x), guarded_division(x))  # skipped from now on


def test_strict_names_file_line_and_construct(fresh_terra_dyn):
    fast = terra_dyn.optimize(guarded_division, backend="interpreter", strict=True)
    with pytest.raises(TranslationError) as info:
        fast(torch.randn(3))
    text = str(info.value)
    assert __file__ in text and "with block" in text
    assert f":{guarded_division.__code__.co_firstlineno + 3}" in text


def test_fullgraph_raises_on_a_break(fresh_terra_dyn):
    def f(x):
        y = x * 2
        print(y.sum().item())
        return y

    fast = terra_dyn.optimize(f, backend="interpreter", fullgraph=True)
    with pytest.raises(FullgraphError, match=r"item"):
        fast(torch.randn(3))


def test_fullgraph_accepts_a_single_graph(fresh_terra_dyn):
    def f(x):
        return (x * 2).relu()

    fast = terra_dyn.optimize(f, backend="interpreter", fullgraph=True)
    x = torch.randn(3)
    torch.testing.assert_close(fast(x), f(x))


def test_user_errors_surface_with_eager_type_and_traceback(fresh_terra_dyn):
    def f(x, y):
        z = x * 2
        return z @ y  # shape mismatch: raised by the user's own line

    fast = terra_dyn.optimize(f, backend="interpreter")
    with pytest.raises(RuntimeError) as ours:
        fast(torch.randn(2, 3), torch.randn(2, 3))
    with pytest.raises(RuntimeError) as eager:
        f(torch.randn(2, 3), torch.randn(2, 3))
    assert str(ours.value) == str(eager.value)
    frames = traceback.extract_tb(ours.value.__traceback__)
    assert any(fr.name == "f" and fr.lineno == f.__code__.co_firstlineno + 2 for fr in frames)


def test_key_error_from_user_dict(fresh_terra_dyn):
    def f(x, d):
        return x + d["missing"]

    fast = terra_dyn.optimize(f, backend="interpreter")
    with pytest.raises(KeyError):
        fast(torch.randn(2), {"present": 1})


def test_backend_failure_falls_back(fresh_terra_dyn):
    def broken_backend(gm, example_inputs):
        raise RuntimeError("backend exploded")

    def f(x):
        return x.sin() + 1

    fast = terra_dyn.optimize(f, backend=broken_backend)
    x = torch.randn(3)
    with report.recording() as rec:
        torch.testing.assert_close(fast(x), f(x))
    assert "backend exploded" in rec.report().fallbacks[0].reason


def test_disabled_function_is_not_inlined(fresh_terra_dyn):
    calls = []

    @terra_dyn.disable
    def helper(t):
        calls.append(1)
        return t + 1

    def f(x):
        return helper(x * 2) * 3

    fast = terra_dyn.optimize(f, backend="interpreter")
    x = torch.randn(3)
    torch.testing.assert_close(fast(x), f(x))
    assert len(calls) == 2  # once each: ours and eager
