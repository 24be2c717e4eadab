"""The fast path of tensor / call_id guard checks (terra_dyn._tensor_check) against the
Python-API path and against eager metadata comparisons: same answers, both paths.

    fast:   Guard built while set_fast_guards(True)  -> fast_checks counts its checks
    python: Guard built while set_fast_guards(False) -> fast_checks == 0
"""
import itertools
import os
import subprocess
import sys
import warnings

import pytest
import torch

from terra_dyn import _C

from . import test_guards

PATHS = ["fast", "python"]


@pytest.fixture(params=PATHS)
def path(request):
    previous = _C.set_fast_guards(request.param == "fast")
    yield request.param
    _C.set_fast_guards(previous)


def guard(checks, path, fast=None):
    g = _C.Guard(checks)
    fast = sum(c[0] in ("tensor", "call_id") for c in checks) if fast is None else fast
    assert g.fast_checks == (fast if path == "fast" else 0), (path, checks)
    return g


def tensor_check(t, i=0):
    return ("tensor", i, type(t), t.dtype, t.device, tuple(t.shape), t.stride(), t.requires_grad)


def eager_same(a, b):
    """The reference: what the check means, read through ordinary Python."""
    return (type(a) is type(b) and a.dtype is b.dtype and a.device == b.device and a.shape == b.shape
            and a.stride() == b.stride() and a.requires_grad == b.requires_grad)


def test_fast_path_is_built_and_loaded():
    assert _C.fast_guards_status() == "on", "terra_dyn._tensor_check did not build or load"


def test_env_var_forces_python_path():
    code = ("import torch; from terra_dyn import _C; x = torch.ones(2);"
            "g = _C.Guard([('tensor', 0, type(x), x.dtype, x.device, (2,), (1,), False)]);"
            "print(g.fast_checks, g.check(x), _C.fast_guards_status()[:3])")
    env = dict(os.environ, TERRA_DYN_SLOW_GUARDS="1")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert out.stdout.split() == ["0", "True", "off"], out.stderr


def test_missing_module_falls_back_to_python_path():
    code = ("import sys; sys.modules['terra_dyn._tensor_check'] = None;"  # import fails
            "import torch; from terra_dyn import _C; x = torch.ones(2);"
            "g = _C.Guard([('tensor', 0, type(x), x.dtype, x.device, (2,), (1,), False),"
            "              ('call_id', torch.is_grad_enabled, True)]);"
            "print(g.fast_checks, g.check(x), g.check(x.double()), _C.fast_guards_status().split()[0])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.stdout.split() == ["0", "True", "False", "unavailable:"], out.stderr


# Existing per-kind cases, under both paths.
TENSOR_CASES = [c for c in test_guards.CASES if c[0][0] in ("tensor", "call_id")]


@pytest.mark.parametrize("check,good,bad", TENSOR_CASES, ids=[f"case{i}" for i in range(len(TENSOR_CASES))])
def test_existing_cases_both_paths(path, check, good, bad):
    g = guard([check], path)
    assert g.check(*good) is True and g.explain(*good) is None
    if check[0] == "call_id":
        with torch.no_grad():
            assert g.check() is False
    else:
        assert g.check(*bad) is False
        assert g.explain(*bad).startswith("check 0 ")


def test_explain_names_field_both_paths(path):
    x = test_guards.X
    g = guard([tensor_check(x)], path)
    assert "differs in dtype" in g.explain(x.double())
    assert "differs in sizes" in g.explain(x.t())
    assert "differs in strides" in g.explain(torch.randn(3, 2).t())
    assert "differs in requires_grad" in g.explain(x.clone().requires_grad_())
    assert "differs in device" in g.explain(x.to("meta"))


def variants():
    """Tensors that differ from each other in one or more metadata fields."""
    base = torch.randn(2, 3, 4)
    out = [base, base.float().double(), base.transpose(0, 2), base[:, :, ::2], base[0], base.sum(),
           base.reshape(6, 4), base.clone().requires_grad_(), torch.nn.Parameter(base.clone()),
           torch.nn.Parameter(base.clone(), requires_grad=False), base.to("meta"), base.int(),
           torch.empty(0, 3), torch.empty(2, 0, 4), base.expand(5, 2, 3, 4), base.unsqueeze(1),
           base.permute(2, 1, 0).contiguous(),
           torch.randn(4, 3, 2, 2).contiguous(memory_format=torch.channels_last), torch.randn(4, 3, 2, 2),
           torch.ones(1, 1, 1), torch.ones(1, 1, 1)[:, :, :].as_strided((1, 1, 1), (7, 7, 7)),
           torch.ones(*[1] * 13), torch.ones(*[1] * 12)]
    with torch.no_grad():
        out.append(base * 2)
    with torch.inference_mode():
        out.append(torch.randn(2, 3, 4))
    return out


def test_all_pairs_agree_with_eager_both_paths(path):
    vs = variants()
    guards = [guard([tensor_check(v)], path, fast=int(v.dim() <= 12)) for v in vs]  # 13 dims: Python path
    for (i, g), (j, v) in itertools.product(enumerate(guards), enumerate(vs)):
        assert g.check(v) is eager_same(vs[i], v), (path, i, j)


class Plain(torch.Tensor):
    pass


class OwnTorchFunction(torch.Tensor):
    @classmethod
    def __torch_function__(cls, func, types, args=(), kwargs=None):
        return super().__torch_function__(func, types, args, kwargs or {})


class ShapeProperty(torch.Tensor):
    @property
    def shape(self):
        return torch.Size([99])


def test_subclasses(path):
    x = torch.randn(2, 2)
    plain, own = x.as_subclass(Plain), x.as_subclass(OwnTorchFunction)
    g = guard([tensor_check(plain)], path)
    assert g.check(plain) and g.check(torch.randn(2, 2).as_subclass(Plain)) and not g.check(x)
    # A type whose attributes may answer differently keeps the Python path, even when fast.
    for t in (own, x.as_subclass(ShapeProperty)):
        g = _C.Guard([tensor_check(t)])
        assert g.fast_checks == 0
        assert g.check(t) and not g.check(x)
    odd = x.as_subclass(ShapeProperty)
    assert _C.Guard([("tensor", 0, ShapeProperty, x.dtype, x.device, (99,), x.stride(), False)]).check(odd)


def test_unusual_tensors_fall_back_to_python_answers(path):
    x = torch.randn(3, 3)
    sparse = x.to_sparse()
    g = guard([tensor_check(x)], path)
    assert g.check(sparse) is False
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "nested tensors are a prototype"
        nested = torch.nested.nested_tensor([torch.randn(2), torch.randn(3)])
    assert g.check(nested) is False
    # A spec taken from a sparse tensor: the fast path cannot tell, the Python path decides
    # (it compares the same fields as for dense tensors; layout is not one of them).
    on_sparse = guard([tensor_check(sparse)], path)
    assert on_sparse.check(sparse) is True and on_sparse.check(x.to_sparse()) is True
    assert on_sparse.check(torch.randn(3, 3)) is False


def test_device_spec_with_index_never_matches_cpu(path):
    x = torch.randn(2)
    g = guard([("tensor", 0, torch.Tensor, x.dtype, torch.device("cpu", 0), (2,), (1,), False)], path)
    assert g.check(x) is (x.device == torch.device("cpu", 0))


def test_odd_spec_items_take_python_path():
    x = torch.randn(2)
    for spec in [("tensor", 0, torch.Tensor, x.dtype, x.device, [2], (1,), False),
                 ("tensor", 0, torch.Tensor, "float32", x.device, (2,), (1,), False),
                 ("tensor", 0, int, x.dtype, x.device, (2,), (1,), False)]:
        g = _C.Guard([spec])
        assert g.fast_checks == 0 and g.check(x) is False
    # 0 == False for the Python path's comparison: the fast path leaves it to that path.
    g = _C.Guard([("tensor", 0, torch.Tensor, x.dtype, x.device, (2,), (1,), 0)])
    assert g.fast_checks == 0 and g.check(x) is True


def test_call_id_grad_mode_and_default_dtype(path):
    g = guard([("call_id", torch.is_grad_enabled, True), ("call_id", torch.get_default_dtype, torch.float32)], path)
    assert g.check() is True
    with torch.no_grad():
        assert g.check() is False
    with torch.inference_mode():
        assert g.check() is torch.is_grad_enabled()
    torch.set_default_dtype(torch.float64)
    try:
        assert g.check() is False
    finally:
        torch.set_default_dtype(torch.float32)
    off = guard([("call_id", torch.is_grad_enabled, False)], path)
    assert off.check() is False
    with torch.no_grad():
        assert off.check() is True


def test_call_id_other_functions_still_called():
    calls = []
    sentinel = object()
    g = _C.Guard([("call_id", lambda: calls.append(1) or sentinel, sentinel),
                  ("call_id", torch.is_grad_enabled, "not a bool")])
    assert g.fast_checks == 0 and g.check() is False and calls == [1]


def test_fast_path_survives_many_random_calls(path):
    """Guards on the hot path of the hook: many calls, mixed hits and misses, no crash."""
    x = torch.randn(4, 4)
    g = guard([("call_id", torch.is_grad_enabled, True), tensor_check(x, 0), tensor_check(x, 1)], path)
    others = [x, x.t(), x.double(), 3, None, "s", torch.randn(4, 4), x.to_sparse()]
    hits = sum(g.check(a, b) for a in others for b in others for _ in range(50))
    assert hits == 50 * 4  # x and the fresh randn(4, 4) pass, in both slots


def test_building_and_checking_fast_guards_does_not_leak(path):
    import gc
    import tracemalloc

    x = torch.randn(3, 3)
    checks = [("call_id", torch.is_grad_enabled, True), tensor_check(x), tensor_check(x, 1)]

    def churn(n):
        for _ in range(n):
            g = _C.Guard(checks)
            g.check(x, x)
            g.check(x, x.t())

    churn(1000)
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        churn(20_000)
        gc.collect()
        grown = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert grown < 20_000, f"{grown} bytes kept over 20,000 guards"  # a TensorSpec alone is 216 bytes


def _layout_cases():
    """(tensor or other object, check_tensor_layout's arguments after it)."""
    from terra_dyn.translate.guard_checks import FREE, UNCHECKED
    cpu, f32 = torch.device("cpu"), torch.float32
    free4 = (torch.Tensor, f32, cpu, (FREE, 4), None, UNCHECKED, False)
    strided = (torch.Tensor, f32, cpu, (FREE, FREE), (FREE, 2), UNCHECKED, False)
    return [
        (torch.randn(5, 4), free4), (torch.randn(1, 4), free4), (torch.randn(0, 4), free4),
        (torch.randn(1, 9)[:, :4], free4),  # contiguous, but not the fake's stride for the 1
        (torch.randn(5, 3), free4), (torch.randn(5, 4).t(), free4), (torch.randn(5, 4, dtype=torch.float64), free4),
        (torch.randn(5, 4, requires_grad=True), free4), (torch.randn(2, 5, 4), free4), (3, free4),
        (torch.nn.Parameter(torch.randn(5, 4)), (torch.nn.Parameter,) + free4[1:-1] + (True,)),
        (torch.randn(5, 9)[:, ::2], strided), (torch.randn(5, 9)[:, ::3], strided),
        (torch.randn(5, 9)[1:, ::2], strided[:-2] + (FREE, False)),
        (torch.randn(5, 9)[:, ::2], strided[:-2] + (FREE, False)),
        (torch.randn(5, 9)[1:, ::2], strided[:-2] + (9, False)),
        (torch.randn(5, 9)[1:, ::2], strided[:-2] + (8, False)),
    ]


def test_the_layout_check_in_cxx_answers_as_check_tensor_layout():
    from terra_dyn.translate.guard_checks import check_tensor_layout, layout_check
    for t, meta in _layout_cases():
        fast = layout_check(meta)
        assert fast is not None and fast(t) == check_tensor_layout(t, *meta), (t, meta)
    previous = _C.set_fast_guards(False)
    try:
        assert layout_check(_layout_cases()[0][1]) is None  # the Python path, as the Guards built now
    finally:
        _C.set_fast_guards(previous)
