"""copy.deepcopy of a config-like object inside a forward (whisper's decoder; transformers'
get_text_config(decoder=True), run by every DynamicCache(config=...)): made at translate
time, the original's whole state guarded, writes to the copy done then. Each against eager."""
import copy

import torch

import terra_dyn
from terra_dyn import report


class Config:
    attribute_map = {"layers": "n_layers"}
    defaults = {"scale": 2.0}  # a mutable class attribute read through the copy

    def __init__(self):
        self.n_layers, self.decoder_width, self.names = 3, 4, {"a": 1}

    def __getattribute__(self, name):
        if name != "attribute_map" and name in object.__getattribute__(self, "attribute_map"):
            name = object.__getattribute__(self, "attribute_map")[name]
        return object.__getattribute__(self, name)

    def __setattr__(self, name, value):
        if name in self.attribute_map:
            name = self.attribute_map[name]
        object.__setattr__(self, name, value)


def text_config(config):
    cfg = copy.deepcopy(config)
    for key in copy.deepcopy(cfg.__dict__):
        if key.startswith("decoder_"):
            value = getattr(cfg, key)
            delattr(cfg, key)
            setattr(cfg, key[len("decoder_"):], value)
    cfg.layers = cfg.layers + 1
    return cfg


def f(x, config):
    cfg = text_config(config)
    return x * cfg.layers + cfg.width * cfg.defaults.get("scale", 0.0) + cfg.names["a"]


def _check(fn, *args):
    fast = terra_dyn.optimize(fn, backend="interpreter")
    with report.recording() as rec:
        got = fast(*args)
    torch.testing.assert_close(got, fn(*args))
    return fast, rec.report()


def test_copy_renamed_and_written_is_one_graph(fresh_terra_dyn):
    config, x = Config(), torch.randn(3)
    fast, rep = _check(f, x, config)
    assert (rep.graph_count, rep.break_count) == (1, 0)
    assert config.__dict__ == {"n_layers": 3, "decoder_width": 4, "names": {"a": 1}}  # the original untouched


def test_original_changed_after_translation(fresh_terra_dyn):
    config, x = Config(), torch.randn(3)
    fast, _ = _check(f, x, config)
    for change in (lambda c: setattr(c, "n_layers", 5), lambda c: c.names.update(a=7),
                   lambda c: setattr(c, "decoder_width", 1.5), lambda c: Config.defaults.update(scale=3.0)):
        change(config)
        torch.testing.assert_close(fast(x, config), f(x, config))
    Config.defaults["scale"] = 2.0


def test_copy_returned_is_new_per_call(fresh_terra_dyn):
    def g(x, config):
        cfg = text_config(config)
        return x + cfg.layers, cfg

    config, x = Config(), torch.randn(3)
    fast = terra_dyn.optimize(g, backend="interpreter")
    first = fast(x, config)[1]
    first.n_layers = 100  # the caller's own copy: the next call must not see it
    second = fast(x, config)
    assert second[1] is not first and second[1].__dict__ == g(x, config)[1].__dict__
    torch.testing.assert_close(second[0], g(x, config)[0])


def test_copy_of_an_object_holding_a_tensor_runs_natively(fresh_terra_dyn):
    class Holder:
        def __init__(self):
            self.t = torch.ones(2)

    def h(x, holder):
        c = copy.deepcopy(holder)
        c.t.add_(1)
        return x + c.t + holder.t

    holder, x = Holder(), torch.randn(2)
    _check(h, x, holder)
    torch.testing.assert_close(holder.t, torch.ones(2))


def test_copy_after_a_write_to_the_original_sees_it(fresh_terra_dyn):
    def k(x, config):
        config.layers = 7  # replayed after the graph: a copy made at translate time would miss it
        config.names["a"] = 5
        cfg = copy.deepcopy(config)
        return x * cfg.n_layers + cfg.names["a"]

    x = torch.randn(3)
    ours, theirs = Config(), Config()
    torch.testing.assert_close(terra_dyn.optimize(k, backend="interpreter")(x, ours), k(x, theirs))
    assert ours.__dict__ == theirs.__dict__


SHARED = [1]


def test_a_shared_list_stored_on_the_copy_is_not_changed_at_translate_time(fresh_terra_dyn):
    def g(x, config):
        cfg = copy.deepcopy(config)
        cfg.extra = SHARED
        cfg.extra.append(2)
        return x + len(SHARED)

    x = torch.randn(2)
    fast = terra_dyn.optimize(g, backend="interpreter")
    got = [fast(x, Config()) for _ in range(3)]
    SHARED[:] = [1]
    expected = [g(x, Config()) for _ in range(3)]
    for a, b in zip(got, expected):
        torch.testing.assert_close(a, b)
    SHARED[:] = [1]


class _Mode(__import__("enum").Enum):
    A = 1
    B = 2


class _Plain:
    def __init__(self, **kw):
        self.__dict__.update(kw)


def _states():
    """(object now, copy made at translation) pairs: alike and not."""
    base = dict(n=3, f=1.5, s="x", none=None, flag=True, dtype=torch.float16, mode=_Mode.A, fn=text_config,
                cls=Config, builtin=len, items=[1, (2, 3)], nested={"a": [1, {"b": 2}]})
    cases = [(Config(), Config()), (_Plain(**base), _Plain(**base))]
    for key, other in [("n", 4), ("n", 3.0), ("flag", 1), ("f", float("nan")), ("s", "y"), ("dtype", torch.float32),
                       ("mode", _Mode.B), ("fn", f), ("cls", _Plain), ("items", [1, (2, 4)]), ("items", [1]),
                       ("nested", {"a": [1, {"b": 3}]}), ("nested", {"a": [1, {"c": 2}]}), ("none", 0)]:
        cases.append((_Plain(**dict(base, **{key: other})), _Plain(**base)))
    cases.append((_Plain(**base), _Plain(**dict(reversed(list(base.items()))))))  # key order
    cases.append((_Plain(**dict(base, extra=1)), _Plain(**base)))
    cases.append((object(), object()))  # no __dict__: not the same state
    cases.append(([_Plain(a=1)], [_Plain(a=1)]))
    cases.append(({"a": 1}, {"a": True}))
    return cases


def test_same_state_in_c_reads_as_the_python_reading():
    from terra_dyn import _C
    from terra_dyn.translate.deep_copies import IDENTITY_TYPES, same_state

    for now, then in _states():
        try:
            expected = bool(same_state(now, then))
        except AttributeError:
            expected = False  # the guard's predicate reads an exception as False
        assert _C.same_state(now, then, IDENTITY_TYPES) is expected, (now, then)
    assert sum(_C.same_state(a, b, IDENTITY_TYPES) for a, b in _states()) == 3


def test_a_deep_copied_configs_nested_change_reaches_the_result(fresh_terra_dyn):
    config = Config()
    fast, _ = _check(f, torch.ones(2), config)
    for change in (lambda c: c.names.__setitem__("a", 5), lambda c: setattr(c, "n_layers", 1),
                   lambda c: c.names.__setitem__("z", 0), lambda c: setattr(c, "decoder_width", 2.5)):
        change(config)
        torch.testing.assert_close(fast(torch.ones(2), config), f(torch.ones(2), config))
