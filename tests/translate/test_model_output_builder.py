"""The emitted ModelOutput construction (model_output._Builder): the object a cached call
returns is eager's, field for field and item for item, and every fact the direct
construction relies on, changed between cached calls, sends it back to `cls(**fields)`."""
import collections
import dataclasses
from typing import Optional

import pytest
import torch

import terra_dyn
from terra_dyn.translate import model_output

modeling_outputs = pytest.importorskip("transformers.modeling_outputs")
generic = pytest.importorskip("transformers.utils.generic")


def _exact(ours, eager):
    """Same class, instance dict (names in order, values) and OrderedDict items (in order)."""
    assert type(ours) is type(eager)
    a, b = list(vars(ours).items()), list(vars(eager).items())
    assert [k for k, _ in a] == [k for k, _ in b]
    for (_, x), (_, y) in zip(a, b):
        assert (x is None) == (y is None)
        if isinstance(x, torch.Tensor):
            torch.testing.assert_close(x, y)
    assert list(collections.OrderedDict.keys(ours)) == list(collections.OrderedDict.keys(eager))
    for k in ours.keys():
        torch.testing.assert_close(collections.OrderedDict.__getitem__(ours, k),
                                   collections.OrderedDict.__getitem__(eager, k))


@dataclasses.dataclass
class _Out(modeling_outputs.ModelOutput):
    last_hidden_state: Optional[torch.Tensor] = None
    pooler_output: Optional[torch.Tensor] = None
    hidden_states: Optional[tuple] = None
    attentions: Optional[tuple] = None


def _f(x):
    return _Out(last_hidden_state=x * 2, pooler_output=x.sum(0))


def _g(x):
    return _Out(last_hidden_state=x + 1)


@pytest.mark.parametrize("fn", [_f, _g])
def test_cached_calls_build_eagers_object(fresh_terra_dyn, fn):
    x = torch.randn(3, 4)
    fast = terra_dyn.optimize(fn, backend="interpreter", fullgraph=True)
    for _ in range(4):
        _exact(fast(x), fn(x))


def test_builder_agrees_with_native_on_many_field_sets():
    b = model_output._Builder(_Out)
    assert b.fast
    t, u = torch.randn(2), torch.randn(3)
    cases = [{"last_hidden_state": t}, {"pooler_output": t}, {"last_hidden_state": t, "pooler_output": u},
             {"last_hidden_state": t, "hidden_states": (t, u)}, {"attentions": (t,)},
             {"last_hidden_state": (("a", t),)},  # a lone non-tensor first field: __post_init__ unpacks it
             {"last_hidden_state": t, "pooler_output": None}, {"last_hidden_state": None}, {}]
    for fields in cases:
        try:
            eager = _Out(**fields)
        except Exception as e:  # the builder raises what eager raises
            with pytest.raises(type(e)):
                b.build(dict(fields))
            continue
        _exact(b.build(dict(fields)), eager)


def _patched_class_case(monkeypatch):
    def post_init(self):
        generic.ModelOutput.__post_init__(self)
        object.__setattr__(self, "marker", 1)
    monkeypatch.setattr(_Out, "__post_init__", post_init)


def _patched_base_case(monkeypatch):
    original = generic.ModelOutput.__setattr__

    def setattr_(self, name, value):
        original(self, name, value)
        object.__setattr__(self, "seen_" + name, True)
    monkeypatch.setattr(generic.ModelOutput, "__setattr__", setattr_)


def _patched_helper_case(monkeypatch):
    original = generic._register_model_output_pytree_node

    def register(cls):
        original(cls)
        _CALLS.append(cls)
    monkeypatch.setattr(generic, "_register_model_output_pytree_node", register)


def _patched_fields_case(monkeypatch):
    original = generic.fields
    monkeypatch.setattr(generic, "fields", lambda obj: original(obj)[:1])  # only the first field is filed


_CALLS = []


@pytest.mark.parametrize("change", [_patched_class_case, _patched_base_case, _patched_helper_case,
                                    _patched_fields_case])
def test_a_changed_fact_falls_back_to_the_native_construction(fresh_terra_dyn, monkeypatch, change):
    x = torch.randn(3, 4)
    fast = terra_dyn.optimize(_f, backend="interpreter")
    for _ in range(3):
        _exact(fast(x), _f(x))
    change(monkeypatch)
    del _CALLS[:]
    eager = _f(x)
    eager_calls = len(_CALLS)
    del _CALLS[:]
    for _ in range(2):
        ours = fast(x)
        _exact(ours, eager)
        assert vars(ours).keys() == vars(eager).keys()
    assert len(_CALLS) == 2 * eager_calls


def test_a_class_whose_construction_differs_is_never_built_directly():
    @dataclasses.dataclass
    class Odd(modeling_outputs.ModelOutput):
        a: Optional[torch.Tensor] = None
        b: Optional[torch.Tensor] = None

        def __post_init__(self):
            super().__post_init__()
            object.__setattr__(self, "extra", 1)

    assert not model_output._Builder(Odd).fast
    t = torch.randn(2)
    _exact(model_output._Builder(Odd).build({"a": t}), Odd(a=t))


def test_a_field_set_with_an_unknown_name_raises_as_eager_does():
    b = model_output._Builder(_Out)
    assert b.fast
    t = torch.randn(2)
    with pytest.raises(TypeError):
        _Out(last_hidden_state=t, bogus=t)
    with pytest.raises(TypeError):
        b.build({"last_hidden_state": t, "bogus": t})


def test_a_field_that_is_a_data_descriptor_is_never_built_directly():
    @dataclasses.dataclass
    class WithProperty(modeling_outputs.ModelOutput):
        a: Optional[torch.Tensor] = None
        b: Optional[torch.Tensor] = None

    seen = []
    WithProperty.b = property(lambda self: self.__dict__.get("_b"),
                              lambda self, v: (seen.append(v), self.__dict__.__setitem__("_b", v)))
    builder = model_output._Builder(WithProperty)
    assert not builder.fast
    t, u = torch.randn(2), torch.randn(3)
    _exact(builder.build({"a": t, "b": u}), WithProperty(a=t, b=u))
