"""Library objects that model code builds or reads on every forward, captured in the graph:
transformers' ModelOutput (a dataclass that is also an OrderedDict) and registries that
implement subscripting in Python. Each compared with eager, one graph, no break."""
import collections.abc

import pytest
import torch

import terra_dyn
from terra_dyn import report

modeling_outputs = pytest.importorskip("transformers.modeling_outputs")


def _run(fn, *args):
    fast = terra_dyn.optimize(fn, backend="interpreter", fullgraph=True)
    with report.recording() as rec:
        first = fast(*args)
        second = fast(*args)
    return first, second, rec.report()


def _same_output(a, b):
    assert type(a) is type(b)
    assert list(a.keys()) == list(b.keys())
    for k in a.keys():
        torch.testing.assert_close(a[k], b[k])
    for f in type(a).__dataclass_fields__:
        assert (getattr(a, f) is None) == (getattr(b, f) is None)


def test_model_output_built_in_the_graph_matches_eager(fresh_terra_dyn):
    def f(x):
        out = modeling_outputs.BaseModelOutputWithPooling(last_hidden_state=x * 2, pooler_output=x.sum(0))
        y = out[0] + out["pooler_output"] + out.to_tuple()[1] + out.last_hidden_state
        return y, out, tuple(out.keys()), out[1:]

    x = torch.randn(3, 4)
    for ours in _run(f, x)[:2]:
        expected = f(x)
        torch.testing.assert_close(ours[0], expected[0])
        _same_output(ours[1], expected[1])
        assert ours[2] == expected[2]
        torch.testing.assert_close(ours[3], expected[3])
    assert _run(f, x)[2].break_count == 0


def test_model_output_old_cache_keyword_is_renamed(fresh_terra_dyn):
    cls = modeling_outputs.BaseModelOutputWithPast
    if "past_key_values" in cls.__dataclass_fields__:
        pytest.skip("this transformers still names the field past_key_values")

    def f(x):
        out = cls(last_hidden_state=x + 1, past_key_values=(x,))
        return out

    x = torch.randn(2)
    first, second, rep = _run(f, x)
    _same_output(first, f(x))
    assert rep.break_count == 0


class _Registry(collections.abc.Mapping):
    _global = {"double": lambda t: t * 2}

    def __getitem__(self, key):
        return self._global[key]

    def __iter__(self):
        return iter(self._global)

    def __len__(self):
        return len(self._global)


_REGISTRY = _Registry()


def test_subscript_and_in_implemented_in_python_are_inlined(fresh_terra_dyn):
    def f(x):
        if "double" in _REGISTRY:
            return _REGISTRY["double"](x) + 1
        return x

    x = torch.randn(3)
    first, second, rep = _run(f, x)
    torch.testing.assert_close(first, x * 2 + 1)
    assert rep.graph_count == 1 and rep.break_count == 0


import contextvars  # noqa: E402

_SWITCH = contextvars.ContextVar("terra_dyn_test_switch", default=None)


def test_context_var_read_is_a_guarded_constant(fresh_terra_dyn):
    def f(x):
        return x * 2 if _SWITCH.get() is None else x - 1

    fast = terra_dyn.optimize(f, backend="interpreter")
    x = torch.randn(3)
    with report.recording() as rec:
        torch.testing.assert_close(fast(x), x * 2)
        token = _SWITCH.set(1)
        try:
            torch.testing.assert_close(fast(x), x - 1)  # the guard sees the new value
        finally:
            _SWITCH.reset(token)
        torch.testing.assert_close(fast(x), x * 2)
    rep = rec.report()
    assert rep.break_count == 0 and rep.graph_count == 2


class _Layers(collections.abc.Sized):
    """An ABC subclass with nothing abstract left: built in the graph like a plain class."""

    def __init__(self, n):
        self.n = n

    def __len__(self):
        return self.n

    def count(self):
        return self.n


def test_concrete_abc_subclass_is_built_in_the_graph(fresh_terra_dyn):
    def f(x):
        layers = _Layers(3)
        return x * layers.count()

    x = torch.randn(2)
    first, second, rep = _run(f, x)
    torch.testing.assert_close(first, x * 3)
    assert rep.break_count == 0


class _Stack(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.layers = torch.nn.ModuleList(torch.nn.Linear(4, 4) for _ in range(3))
        self.used = 2

    def forward(self, x):
        for layer in self.layers[: self.used]:  # transformers decoders loop like this
            x = torch.relu(layer(x))
        return x + self.layers[:1][0](x)


def test_loop_over_a_module_list_slice_stays_in_one_graph(fresh_terra_dyn):
    m = _Stack()
    x = torch.randn(2, 4)
    first, second, rep = _run(m, x)
    torch.testing.assert_close(first, m(x))
    torch.testing.assert_close(second, m(x))
    assert rep.graph_count == 1 and rep.break_count == 0


def test_size_returned_as_a_number_never_goes_stale(fresh_terra_dyn):
    """transformers' Cache.get_seq_length: a frame with no tensor op that returns a size.
    After a size-only recompile the size is symbolic; returning it must give each call's
    size (the graph computes it), never bake the first value in (generate then crashed)."""
    fast = terra_dyn.optimize(lambda x: x.shape[0], backend="interpreter")
    with report.recording() as rec:
        assert [fast(torch.zeros(i)) for i in range(12)] == list(range(12))
    assert len(rec.report().graphs) <= 3  # sizes 0 and 1 stay static; 2 on: symbolic
