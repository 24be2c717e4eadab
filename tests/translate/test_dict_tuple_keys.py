"""A dict read by key (translate/calls.py dict_read_by_key) with a tuple key, against eager.

faster_rcnn's RPN caches its anchors per feature size, `self._anchor_cache[(h, w,
str(device))]`; once the cache had its first key, every forward broke three times there
("dict.__contains__ with a tuple key", then `__getitem__`). A tuple of str, int and None
keys the dict by value and is spelled by its repr, as those keys are.
"""
import torch

import terra_dyn
from terra_dyn import report


class _Anchors(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.scale = torch.nn.Parameter(torch.ones(()))
        self._cache = {}

    def anchors(self, h, w, device):
        key = (h, w, str(device))
        if key not in self._cache:
            self._cache[key] = torch.arange(h * w, dtype=torch.float32, device=device).reshape(h, w)
        return self._cache[key]

    def forward(self, x):
        return (x * self.anchors(x.shape[-2], x.shape[-1], x.device) * self.scale).sum()


def test_a_tuple_key_of_a_changing_dict_stays_in_the_graph(fresh_terra_dyn):
    model, plain = _Anchors(), _Anchors()
    fast = terra_dyn.optimize(model, backend="interpreter")
    shapes = [(3, 4)] * 4 + [(2, 5), (3, 4), (2, 5), (2, 5)]
    breaks = []
    for i, (h, w) in enumerate(shapes):
        x = torch.rand(h, w, generator=torch.Generator().manual_seed(i))
        with report.recording() as rec:
            got = fast(x)
        torch.testing.assert_close(got, plain(x), rtol=0, atol=0)
        breaks.append(len(rec.report().breaks))
    # the cache's first key came at call 0: from call 1 on it is read by key (before: 3
    # breaks at call 1); a key of symbolic sizes (call 4 on) is no constant and breaks
    assert not any(breaks[:4]), breaks
    assert list(model._cache) == list(plain._cache) == [(3, 4, "cpu"), (2, 5, "cpu")]


def test_a_key_that_holds_another_object_is_not_spelled(fresh_terra_dyn):
    class Key:
        pass

    store = {}

    def f(x, key):
        if key not in store:
            store[key] = x.sum()
        return x + store[key]

    fast = terra_dyn.optimize(f, backend="interpreter")
    k = (1, Key())
    for _ in range(3):
        x = torch.rand(3)
        torch.testing.assert_close(fast(x, k), x + store[k])
