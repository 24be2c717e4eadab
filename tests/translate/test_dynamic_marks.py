"""optimize(dynamic=...) and mark_dynamic / mark_static, as torch.compile's: results equal
eager's, and the number of translations is what the setting promises."""
import torch

import terra_dyn
from terra_dyn import report


def _translations(fn, inputs, **options):
    terra_dyn.reset()
    fast = terra_dyn.optimize(fn, backend="interpreter", **options)
    with report.recording() as rec:
        for x in inputs:
            assert torch.allclose(fast(x), fn(x))
    return len(rec.report().graphs)


def _body(x):
    return torch.relu(x) * 2 + x.sum(0)


def _rows():
    return [torch.randn(n, 4) for n in range(2, 9)]


def test_dynamic_none_settles_after_one_size_change():
    assert _translations(_body, _rows()) == 2


def test_dynamic_true_is_symbolic_from_the_first_call():
    assert _translations(_body, _rows(), dynamic=True) == 1


def test_dynamic_false_translates_each_size():
    assert _translations(_body, _rows(), dynamic=False) == 7


def test_mark_dynamic_and_mark_static():
    rows = _rows()
    for x in rows:
        terra_dyn.mark_dynamic(x, 0)
    assert _translations(_body, rows) == 1
    rows = _rows()
    for x in rows:
        terra_dyn.mark_static(x, 0)
    assert _translations(_body, rows) == 7


def test_marked_size_read_as_a_number_stays_symbolic():
    def size_out(x):
        return x * x.shape[0]

    rows = _rows()
    for x in rows:
        terra_dyn.mark_dynamic(x, 0)
    assert _translations(size_out, rows) == 1


def test_marked_size_whose_value_is_needed_falls_back_to_static():
    def unrolled(x):
        total = x[0] * 0
        for i in range(x.shape[0]):  # the loop is unrolled: valid for one length
            total = total + x[i] * i
        return total

    rows = _rows()
    for x in rows:
        terra_dyn.mark_dynamic(x, 0)
    assert _translations(unrolled, rows) == 7  # one per value, never a wrong one
