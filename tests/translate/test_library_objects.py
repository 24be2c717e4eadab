"""Library objects that model code builds or reads on every forward, captured in the graph:
transformers' ModelOutput (a dataclass that is also an OrderedDict) and registries that
implement subscripting in Python. Each compared with eager, one graph, no break."""
import collections.abc

import pytest
import torch

import terra_dyn
from terra_dyn import _C
from terra_dyn import report
from terra_dyn.translate.guard_paths import guard_texts

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


class _Interface(collections.abc.MutableMapping):
    """transformers' AttentionInterface: a class-wide mapping plus a local one, read with
    Mapping.get, whose `self[key]` raises KeyError inside a try for a missing key."""

    _global_mapping = {"sdpa": lambda t: t * 3}

    def __init__(self):
        self._local_mapping = {}

    def __getitem__(self, key):
        if key in self._local_mapping:
            return self._local_mapping[key]
        return self._global_mapping[key]

    def __setitem__(self, key, value):
        self._local_mapping.update({key: value})

    def __delitem__(self, key):
        del self._local_mapping[key]

    def __iter__(self):
        return iter({**self._global_mapping, **self._local_mapping})

    def __len__(self):
        return len(self._global_mapping.keys() | self._local_mapping.keys())

    def get_interface(self, name, default):
        return super().get(name, default)


_INTERFACE = _Interface()


def _eager_attention(t):
    return t + 1


def test_mapping_get_of_a_missing_key_takes_the_except_branch(fresh_terra_dyn):
    def f(x):
        attention = _INTERFACE.get_interface("eager", _eager_attention)  # KeyError caught
        return attention(x) * _INTERFACE.get("sdpa")(x)

    x = torch.randn(3)
    first, second, rep = _run(f, x)
    for ours in (first, second):
        torch.testing.assert_close(ours, f(x))
    assert rep.graph_count == 1 and rep.break_count == 0
    _INTERFACE["eager"] = lambda t: t - 5  # the local mapping gains the key: guards see it
    try:
        fast = terra_dyn.optimize(f, backend="interpreter")
        torch.testing.assert_close(fast(x), f(x))
    finally:
        del _INTERFACE["eager"]


def _lookup(d, key):
    try:
        return d[key]
    except (IndexError, TypeError):
        return "index"
    except KeyError as exc:
        return f"missing {exc.args[0]}"
    finally:
        d["looked"] = True


def test_except_clauses_and_finally_of_an_inlined_function_match_eager(fresh_terra_dyn):
    def f(x, d):
        return x + len(_lookup(d, "a")), _lookup(d, "b")

    x = torch.randn(2)
    for d in ({"b": 1}, {"a": "xyz", "b": 2}):
        expected_d, ours_d = dict(d), dict(d)
        expected = f(x, expected_d)
        ours = terra_dyn.optimize(f, backend="interpreter")(x, ours_d)
        torch.testing.assert_close(ours[0], expected[0])
        assert ours[1] == expected[1] and ours_d == expected_d


def _strict(d, key):
    try:
        return d[key]
    except IndexError:  # not the KeyError raised: it goes on to the caller
        return 0


def test_an_exception_no_inlined_handler_catches_still_raises(fresh_terra_dyn):
    def f(x, d):
        return x + _strict(d, "a")

    fast = terra_dyn.optimize(f, backend="interpreter")
    with pytest.raises(KeyError, match="a"):
        fast(torch.randn(2), {"b": 1})
    torch.testing.assert_close(fast(torch.ones(2), {"a": 2}), torch.ones(2) + 2)


class _Config:
    """transformers' PretrainedConfig: every read maps old names through attribute_map in
    a Python __getattribute__, and a per-layer view is a Sequence (iteration ends at the
    IndexError its __getitem__ raises)."""

    attribute_map = {"n_layer": "num_hidden_layers"}

    def __init__(self, layers, width):
        self.num_hidden_layers = layers
        self.width = width

    def __getattribute__(self, key):
        heterogeneity = super().__getattribute__("__dict__").get("_spec")
        if heterogeneity is not None:
            raise AttributeError(key)
        if key != "attribute_map" and key in super().__getattribute__("attribute_map"):
            key = super().__getattribute__("attribute_map")[key]
        return super().__getattribute__(key)


class _PerLayer(collections.abc.Sequence):
    def __init__(self, config):
        self._config = config

    def __len__(self):
        return self._config.num_hidden_layers

    def __getitem__(self, i):
        if i < 0:
            i += len(self)
        if i < 0 or i >= len(self):
            raise IndexError("list index out of range")
        return self._config


def _scale_per_layer(x, config):
    for layer_config in _PerLayer(config):  # in a helper, as DynamicCache's is
        x = x * layer_config.width
    return x


def test_config_reads_and_per_layer_views_stay_in_the_graph(fresh_terra_dyn):
    def f(x, config):
        return _scale_per_layer(x, config) + config.n_layer + len(list(_PerLayer(config)))

    x = torch.randn(2)
    config = _Config(3, 2)
    first, second, rep = _run(f, x, config)
    for ours in (first, second):
        torch.testing.assert_close(ours, f(x, config))
    assert rep.graph_count == 1 and rep.break_count == 0
    fast = terra_dyn.optimize(f, backend="interpreter")
    config.width = 5  # read through __getattribute__: guarded like any attribute
    torch.testing.assert_close(fast(x, config), f(x, config))
    torch.testing.assert_close(fast(x, _Config(1, 4)), f(x, _Config(1, 4)))


def test_guards_read_a_config_without_its_python_getattribute(fresh_terra_dyn):
    """What the inlined __getattribute__ read through object.__getattribute__ is guarded
    the same way (sources.GenericAttrSource): the guard runs no Python override (two calls
    a read), and every change it covers still reaches the result."""
    def f(x, config):
        return x * config.width + config.n_layer

    x, config = torch.randn(2), _Config(3, 2)
    fast = terra_dyn.optimize(f, backend="interpreter")
    torch.testing.assert_close(fast(x, config), f(x, config))
    text = " ".join(guard_texts(_C.cache_entries(f.__code__)[0].guard))
    assert "object.__getattribute__" in text and ".width" not in text and ".num_hidden_layers" not in text
    for change in (lambda c: setattr(c, "width", 5), lambda c: setattr(c, "num_hidden_layers", 7),
                   lambda c: c.__dict__.__setitem__("width", 2.5),
                   lambda c: setattr(c, "attribute_map", {"n_layer": "width"}),
                   lambda c: setattr(type(c), "width", property(lambda self: 11))):
        change(config)
        torch.testing.assert_close(fast(x, config), f(x, config))
    del _Config.width
    config._spec = 1  # the override raises now
    with pytest.raises(AttributeError):
        fast(x, config)
    torch.testing.assert_close(fast(x, _Config(1, 4)), f(x, _Config(1, 4)))


class _RecordRegistry(dict):
    """transformers' _CanRecordRegistry: a dict subclass read through super().get."""

    def get(self, key):
        return super().get(key) or {}


_RECORDS = _RecordRegistry(linear={"hidden": 2})


def test_dict_subclass_read_through_dict_get_guards_the_key(fresh_terra_dyn):
    def f(x, name):
        flags = _RECORDS.get(name)
        return x * len(flags) + ("hidden" in flags)

    x = torch.randn(2)
    first, second, rep = _run(f, x, "linear")
    torch.testing.assert_close(first, f(x, "linear"))
    assert rep.break_count == 0
    fast = terra_dyn.optimize(f, backend="interpreter")
    torch.testing.assert_close(fast(x, "conv"), f(x, "conv"))
    _RECORDS["conv"] = {"a": 1, "b": 2}  # a key added later: the absence guard fails
    try:
        torch.testing.assert_close(fast(x, "conv"), f(x, "conv"))
    finally:
        del _RECORDS["conv"]


def test_tuple_plus_size_is_a_size_as_in_eager(fresh_terra_dyn):
    def f(x):
        shape = (-1,) + x.shape[1:] + (x.size(-1),)  # gpt2's output_shape
        return x.view(shape[0], shape[1]) * shape[2], type(shape), type(x.shape + (1,)), shape

    x = torch.randn(2, 3)
    first, second, rep = _run(f, x)
    expected = f(x)
    torch.testing.assert_close(first[0], expected[0])
    assert first[1:] == expected[1:] and rep.break_count == 0


class _Chunked(torch.nn.Module):
    def ff_chunk(self, h):
        return h * 2

    def forward(self, x):
        import inspect

        n = len(inspect.signature(self.ff_chunk).parameters)  # apply_chunking_to_forward
        return self.ff_chunk(x) + n


def test_signature_of_a_bound_method_is_computed_in_translation(fresh_terra_dyn):
    m = _Chunked()
    x = torch.randn(3)
    first, second, rep = _run(m, x)
    torch.testing.assert_close(first, m(x))
    assert rep.break_count == 0


def _make_warning_once():
    import functools
    import logging

    def warning_once(self, *args):
        self.warning(*args)

    warning_once.__module__ = "library.utils.logging"  # recognised as transformers' own
    return functools.lru_cache(None)(warning_once), logging.getLogger("terra_dyn_test_once")


def test_warning_once_in_library_code_warns_once_like_eager(fresh_terra_dyn, caplog):
    once, logger = _make_warning_once()

    def helper(x):
        once(logger, "deprecated path")
        return x + 1

    def f(x):
        return helper(x) * 2

    fast = terra_dyn.optimize(f, backend="interpreter")
    x = torch.randn(2)
    with report.recording() as rec, caplog.at_level("WARNING", logger="terra_dyn_test_once"):
        for _ in range(3):
            torch.testing.assert_close(fast(x), f(x))
    assert [r.getMessage() for r in caplog.records] == ["deprecated path"]
    assert rec.report().break_count == 0


def test_id_of_a_pinned_function_keys_a_dict_in_the_graph(fresh_terra_dyn):
    def f(x):
        table = {id(torch.relu): 2}
        return x * table[id(torch.relu)]

    x = torch.randn(2)
    first, second, rep = _run(f, x)
    torch.testing.assert_close(first, f(x))
    assert rep.break_count == 0


def test_loss_module_built_in_the_forward_is_called_in_the_graph(fresh_terra_dyn):
    def f(x, target):
        loss_fct = torch.nn.CrossEntropyLoss(reduction="sum", label_smoothing=0.1)  # bert's MLM head
        return loss_fct(x.view(-1, 5), target.view(-1)), loss_fct

    x, target = torch.randn(2, 3, 5), torch.randint(0, 5, (2, 3))
    first, second, rep = _run(f, x, target)
    expected = f(x, target)
    for ours in (first, second):
        torch.testing.assert_close(ours[0], expected[0])
        assert type(ours[1]) is type(expected[1]) and ours[1].label_smoothing == 0.1
    assert first[1] is not second[1]  # a new module per call, as in eager
    assert rep.break_count == 0


class _SettingConfig(_Config):
    """A config whose __setattr__ maps old names too (transformers' loss functions set
    `config.problem_type` on the first call)."""

    problem_type = None
    stores = 0

    def __setattr__(self, key, value):
        if key in super().__getattribute__("attribute_map"):
            key = super().__getattribute__("attribute_map")[key]
        super().__setattr__(key, value)


def test_config_store_through_a_python_setattr_matches_eager(fresh_terra_dyn):
    def f(x, config):
        if config.problem_type is None:
            config.problem_type = "single"
        config.n_layer = config.n_layer + 1  # stored as num_hidden_layers
        return x * config.num_hidden_layers + len(config.problem_type)

    x = torch.randn(2)
    ours_config, eager_config = _SettingConfig(3, 2), _SettingConfig(3, 2)
    fast = terra_dyn.optimize(f, backend="interpreter")
    with report.recording() as rec:
        for _ in range(3):
            torch.testing.assert_close(fast(x, ours_config), f(x, eager_config))
            assert vars(ours_config) == vars(eager_config)
    assert rec.report().break_count == 0


import dataclasses  # noqa: E402
from typing import Optional  # noqa: E402


@dataclasses.dataclass
class _PairOutput(modeling_outputs.ModelOutput):
    """CLIPOutput's shape: an own to_tuple that flattens nested outputs (out[i] reads it)."""

    loss: Optional[torch.Tensor] = None
    logits: Optional[torch.Tensor] = None
    inner: Optional[modeling_outputs.BaseModelOutput] = None

    def to_tuple(self):
        return tuple(v.to_tuple() if isinstance(v, modeling_outputs.ModelOutput) else v for v in self.values())


def test_model_output_with_its_own_to_tuple_matches_eager(fresh_terra_dyn):
    def f(x):
        out = _PairOutput(logits=x * 2, inner=modeling_outputs.BaseModelOutput(last_hidden_state=x + 1))
        return out[0] + out[1][0], out.to_tuple()[1], out

    x = torch.randn(3)
    first, second, rep = _run(f, x)
    expected = f(x)
    for ours in (first, second):
        torch.testing.assert_close(ours[0], expected[0])
        torch.testing.assert_close(ours[1], expected[1])
        _same_output(ours[2], expected[2])
    assert rep.break_count == 0


class _Growing:
    """A Python __iter__ reading state the loop body changes: each step must see it."""

    def __init__(self):
        self.items = [1, 2]

    def __iter__(self):
        i = 0
        while i < len(self.items):
            yield self.items[i]
            i += 1


def _grow_and_scale(x, bag):
    for k in bag:
        if k < 3:
            bag.items.append(k + 2)
        x = x * k
    return x


@pytest.mark.parametrize("inlined", [True, False])
def test_loop_over_a_python_iter_sees_the_body_changes(fresh_terra_dyn, inlined):
    def f(x, bag):
        return _grow_and_scale(x, bag) + 1

    fn = f if inlined else _grow_and_scale
    x = torch.ones(2)
    ours_bag, eager_bag = _Growing(), _Growing()
    torch.testing.assert_close(terra_dyn.optimize(fn, backend="interpreter")(x, ours_bag), fn(x, eager_bag))
    assert ours_bag.items == eager_bag.items


class _Cache:
    """DynamicCache's truth: its Python __len__ counts the layers (`if cache and ...`)."""

    def __init__(self, n):
        self.layers = list(range(n))

    def __len__(self):
        return len(self.layers)


def test_truth_of_an_object_with_a_python_len_is_inlined(fresh_terra_dyn):
    def f(x, cache):
        return x + 1 if cache else x - 1

    fast = terra_dyn.optimize(f, backend="interpreter")
    x = torch.zeros(2)
    with report.recording() as rec:
        for n in (2, 0, 3):  # the guard on len(cache.layers) sees each change
            torch.testing.assert_close(fast(x, _Cache(n)), f(x, _Cache(n)))
    assert rec.report().break_count == 0


_ACTIVE = contextvars.ContextVar("terra_dyn_test_active", default=None)


def _with_active(x, table):
    token = _ACTIVE.set(table)  # transformers' output capturing, the kernels package
    try:
        return x * _ACTIVE.get()["scale"]
    finally:
        _ACTIVE.reset(token)


def _leave_active(x):
    _ACTIVE.set({"scale": 5})  # never reset: its effect outlives the call
    return x + 1


def test_context_var_set_and_reset_in_an_inlined_function_stay_in_the_graph(fresh_terra_dyn):
    def f(x):
        return _with_active(x, {"scale": 3}) + (_ACTIVE.get() is None)

    x = torch.randn(2)
    first, second, rep = _run(f, x)
    torch.testing.assert_close(first, f(x))
    assert rep.graph_count == 1 and rep.break_count == 0 and _ACTIVE.get() is None


def test_context_var_set_that_outlives_its_call_runs_natively(fresh_terra_dyn):
    def f(x):
        return _leave_active(x) * 2

    x = torch.randn(2)
    ours_context, eager_context = contextvars.copy_context(), contextvars.copy_context()
    ours = ours_context.run(terra_dyn.optimize(f, backend="interpreter"), x)
    torch.testing.assert_close(ours, eager_context.run(f, x))
    assert ours_context.run(_ACTIVE.get) == eager_context.run(_ACTIVE.get) == {"scale": 5}


def _first_or_default(items):
    try:
        return next(items)
    except KeyError:
        return "default"


def _raising_gen(d):
    yield d["missing"]  # raises KeyError on the first step
    yield "never"


def test_a_generator_that_raised_is_finished_for_its_consumer(fresh_terra_dyn):
    def f(x, d):
        gen = _raising_gen(d)
        first = _first_or_default(gen)
        rest = list(gen)  # nothing left: the generator ended when it raised
        return x + len(first), rest

    x = torch.zeros(1)
    first, second, rep = _run(f, x, {"a": 1})
    expected = f(x, {"a": 1})
    for ours in (first, second):
        torch.testing.assert_close(ours[0], expected[0])
        assert ours[1] == expected[1] == []
    assert rep.break_count == 0
