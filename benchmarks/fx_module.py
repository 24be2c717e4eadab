"""A module whose forward runs as a make_fx graph compiled by a terra_dyn backend, for the
benchmark mode "fx:triton": the Triton backend measured on the ten programs' real models
where the frame hook cannot run (the GPU machine's Python 3.12; see the GPU issue).

    model = FxCompiledModule(model, terra_dyn.backends.lookup("triton"))
    loss = model(images, targets)      # traced once per input signature, then compiled

The forward is traced with make_fx on fake tensors as a function of (parameters, buffers,
tensor arguments), once per input signature (tensor shapes/dtypes/devices, non-tensor
argument values, training flag, grad mode): a new signature traces again, so no shape is
ever baked in stale. Fake tracing refuses data-dependent Python (`.item()`, `nonzero` sizes,
branches on values): such a module runs eagerly, and `fallbacks` says why. This is not the
product's frontend (it captures nothing around the module: the training loop's Python runs
as written); the product's end-to-end figures need the frame hook on Python 3.12.
"""
import torch
from torch.fx.experimental.proxy_tensor import make_fx
from torch.utils import _pytree as pytree


def _leaf_key(value):
    if isinstance(value, torch.Tensor):
        return ("T", tuple(value.shape), value.stride(), value.dtype, value.device, value.requires_grad)
    try:
        hash(value)
        return (type(value), value)
    except TypeError:
        return (type(value), id(value))


def _python_attributes(module):
    """The plain numbers and strings every submodule holds (a drop probability, a step count):
    make_fx bakes them into the graph, so they are part of the signature."""
    return tuple((name, key, value) for name, m in module.named_modules() for key, value in vars(m).items()
                 if type(value) in (int, float, bool, str))


class FxCompiledModule(torch.nn.Module):
    MAX_SIGNATURES = 8  # then the module runs eagerly, like a recompile limit

    def __init__(self, module: torch.nn.Module, compile_graph):
        super().__init__()
        self.inner = module
        self.compile_graph = compile_graph
        self.entries = {}       # signature -> (compiled graph, output spec) or a fallback reason
        self.fallbacks = []

    def __getattr__(self, name):
        # the programs read their model's own attributes (config, heads, ...) through the wrapper
        try:
            return super().__getattr__(name)
        except AttributeError:
            return getattr(self._modules["inner"], name)

    def _state(self):
        named = list(self.inner.named_parameters()) + list(self.inner.named_buffers())
        return [n for n, _ in named], [t for _, t in named]

    def _trace(self, flat, spec):
        names, state = self._state()
        positions = [i for i, v in enumerate(flat) if isinstance(v, torch.Tensor)]
        holder = {}

        def forward(*xs):
            values = list(flat)
            for i, t in zip(positions, xs[len(state):]):
                values[i] = t
            args, kwargs = pytree.tree_unflatten(values, spec)
            out = torch.func.functional_call(self.inner, dict(zip(names, xs[:len(state)])), args, kwargs)
            leaves, holder["spec"] = pytree.tree_flatten(out)
            return leaves

        example = state + [flat[i] for i in positions]
        gm = make_fx(forward, tracing_mode="fake", _allow_non_fake_inputs=True)(*example)
        return self.compile_graph(gm, example), holder["spec"]

    def forward(self, *args, **kwargs):
        flat, spec = pytree.tree_flatten((args, kwargs))
        key = (spec, tuple(_leaf_key(v) for v in flat), torch.is_grad_enabled(), _python_attributes(self.inner))
        entry = self.entries.get(key)
        if entry is None and len(self.entries) >= self.MAX_SIGNATURES:
            if len(self.fallbacks) < 20:
                self.fallbacks.append(f"{type(self.inner).__name__}: more than {self.MAX_SIGNATURES} signatures")
            return self.inner(*args, **kwargs)
        if entry is None:
            saved = {m: dict(vars(m)) for m in self.inner.modules()}
            try:
                entry = self._trace(flat, spec)
            except Exception as exc:  # data-dependent Python in the model: it runs eagerly from now on
                for m, attributes in saved.items():  # a cache the trace filled holds fake tensors
                    vars(m).clear()
                    vars(m).update(attributes)
                entry = f"{type(self.inner).__name__}: make_fx failed ({type(exc).__name__}: {str(exc)[:200]})"
                self.fallbacks.append(entry)
                self.MAX_SIGNATURES = 0
            self.entries[key] = entry
        if isinstance(entry, str):
            return self.inner(*args, **kwargs)
        compiled, out_spec = entry
        _, state = self._state()
        out = compiled(*state, *[v for v in flat if isinstance(v, torch.Tensor)])
        return pytree.tree_unflatten(list(out), out_spec)
