"""hasattr/getattr of a tensor and its methods read as Python reads them: the tensor's own
dict (a fake tensor has none of the real one's attributes) and torch.Tensor's class, which a
program may change after the first call. Each compares with the same code run plainly."""
import torch

import terra_dyn


def _both(fn, *calls):
    fast = terra_dyn.optimize(fn, backend="interpreter")
    got, expected = [], []
    for change, args in calls:
        if change is not None:
            change()
        got.append(fast(*args))
        expected.append(fn(*args))
    return got, expected


def _equal(got, expected):
    assert len(got) == len(expected)
    for g, e in zip(got, expected):
        if isinstance(e, torch.Tensor):
            assert torch.equal(g, e)
        else:
            assert g == e


def test_hasattr_of_an_attribute_the_tensor_itself_holds():
    # the fake tensor lacks `tag`: hasattr answered False from the first call
    def f(x):
        return x * 2 if hasattr(x, "tag") else x - 1

    tagged = torch.ones(2)
    tagged.tag = "kept"
    plain = torch.ones(2)
    got, expected = _both(f, (None, (tagged,)), (None, (plain,)), (None, (tagged,)))
    _equal(got, expected)
    assert [g.tolist() for g in got] == [[2.0, 2.0], [0.0, 0.0], [2.0, 2.0]]


def test_getattr_with_a_default_of_a_tensor_attribute():
    def f(x):
        return getattr(x, "scale", 1) * x

    x = torch.ones(2)
    x.scale = 3
    got, expected = _both(f, (None, (x,)), (lambda: setattr(x, "scale", 5), (x,)),
                          (None, (torch.ones(2),)))
    _equal(got, expected)
    assert [g[0].item() for g in got] == [3.0, 5.0, 1.0]


def test_a_method_added_to_torch_tensor_after_the_first_call():
    def f(x):
        return x.double_it() if hasattr(x, "double_it") else x

    x = torch.arange(3.0)
    try:
        got, expected = _both(f, (None, (x,)),
                              (lambda: setattr(torch.Tensor, "double_it", lambda self: self * 2), (x,)))
    finally:
        if hasattr(torch.Tensor, "double_it"):
            del torch.Tensor.double_it
    _equal(got, expected)
    assert got[1].tolist() == [0.0, 2.0, 4.0]


def test_a_tensor_method_replaced_after_the_first_call_and_restored():
    def f(x):
        return x.relu() + 1

    x = torch.tensor([-1.0, 2.0])
    old = torch.Tensor.relu

    def replace():
        torch.Tensor.relu = lambda self: self * 0 + 7

    def restore():
        torch.Tensor.relu = old

    try:
        got, expected = _both(f, (None, (x,)), (replace, (x,)), (restore, (x,)))
    finally:
        torch.Tensor.relu = old
    _equal(got, expected)
    assert [g.tolist() for g in got] == [[1.0, 3.0], [8.0, 8.0], [1.0, 3.0]]


def test_hasattr_of_methods_and_getters_of_a_parameter():
    p = torch.nn.Parameter(torch.ones(2))

    def f(p):
        return hasattr(p, "tag"), hasattr(p, "relu"), hasattr(p, "grad"), hasattr(p, "shape")

    got, expected = _both(f, (None, (p,)), (lambda: setattr(p, "tag", 1), (p,)))
    assert got == expected == [(False, True, True, True), (True, True, True, True)]
