"""Compare one corpus model under a system (terra_dyn, torch.compile, ...) with eager.

    result = check_model(entry, wrap)         # wrap(model) -> the optimized model
    result.right, result.problems             # forward, training step, greedy generate
    result.graphs, result.breaks              # filled by the caller (what it captured)

Three checks, each against a fresh eager twin built from the same seed:
- forward: every tensor of the model's output (loss, logits, hidden states, cache tensors);
- one training step: the loss and the gradient of every parameter after `loss.backward()`;
- greedy `generate` of a few tokens (decoders only): the token ids, with the model's
  `forward` optimized (generate itself stays Python, as a user would run it).
Tolerances are float32's rounding of a reordered reduction: a graph runs the same ATen ops
as eager, so anything beyond them is a wrong result.
"""
import dataclasses
import warnings
from typing import List

import torch

RTOL, ATOL = 1e-4, 1e-5
NEW_TOKENS = 4


@dataclasses.dataclass
class CheckResult:
    name: str
    forward_ok: bool = False
    train_ok: bool = False
    generate_ok: bool = True  # stays True where not applicable (not a decoder)
    problems: List[str] = dataclasses.field(default_factory=list)

    @property
    def right(self):
        return self.forward_ok and self.train_ok and self.generate_ok


def tensors_of(value, prefix="out"):
    """(path, tensor) pairs of an output: tensors, tuples, dicts, ModelOutputs, caches."""
    if isinstance(value, torch.Tensor):
        return [(prefix, value)]
    if isinstance(value, dict) or hasattr(value, "to_tuple"):  # ModelOutput is an OrderedDict
        return [p for k, v in value.items() for p in tensors_of(v, f"{prefix}.{k}")]
    if isinstance(value, (tuple, list)):
        return [p for i, v in enumerate(value) for p in tensors_of(v, f"{prefix}[{i}]")]
    layers = getattr(value, "layers", None)  # DynamicCache: one layer object per block
    if isinstance(layers, list):
        found = []
        for i, layer in enumerate(layers):
            for attr in ("keys", "values"):
                t = getattr(layer, attr, None)
                if isinstance(t, torch.Tensor):
                    found.append((f"{prefix}.layers[{i}].{attr}", t))
        return found
    return []


def compare(expected, actual, what, problems):
    exp, act = tensors_of(expected), tensors_of(actual)
    if [p for p, _ in exp] != [p for p, _ in act]:
        problems.append(f"{what}: outputs differ in structure: {[p for p, _ in exp]} vs {[p for p, _ in act]}")
        return False
    for (path, e), (_, a) in zip(exp, act):
        if e.shape != a.shape or e.dtype != a.dtype:
            problems.append(f"{what}: {path} is {tuple(a.shape)} {a.dtype}, eager {tuple(e.shape)} {e.dtype}")
            return False
        if not torch.allclose(e.detach(), a.detach(), rtol=RTOL, atol=ATOL, equal_nan=True):
            diff = (e.detach().float() - a.detach().float()).abs().max().item()
            problems.append(f"{what}: {path} differs from eager by {diff:.3g}")
            return False
    return True


def _call(model, inputs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return model(**inputs)


def check_forward(eager, optimized, inputs, result):
    with torch.no_grad():
        expected = _call(eager, inputs)
        actual = _call(optimized, inputs)
    result.forward_ok = compare(expected, actual, "forward", result.problems)


def check_train_step(eager, eager_params, optimized, opt_params, inputs, result):
    """One step: loss and every parameter's gradient. The params are the two models' own
    (an optimized view shares its original's parameters)."""
    for params in (eager_params, opt_params):
        for p in params.values():
            p.grad = None
    loss_e = _call(eager, inputs).loss
    loss_e.backward()
    loss_o = _call(optimized, inputs).loss
    loss_o.backward()
    ok = compare(loss_e, loss_o, "train loss", result.problems)
    for name, p in eager_params.items():
        q = opt_params[name]
        if (p.grad is None) != (q.grad is None):
            result.problems.append(f"train: gradient of {name} is {'missing' if q.grad is None else 'extra'}")
            ok = False
        elif p.grad is not None and not compare(p.grad, q.grad, f"grad {name}", result.problems):
            ok = False
    result.train_ok = ok


def check_generate(eager, optimized_forward_model, inputs, result):
    """Greedy decoding of NEW_TOKENS tokens; the second model has its forward optimized."""
    ids = inputs["input_ids"][:1]
    kwargs = dict(max_new_tokens=NEW_TOKENS, do_sample=False, pad_token_id=0)
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        expected = eager.generate(ids, **kwargs)
        actual = optimized_forward_model.generate(ids, **kwargs)
    if expected.shape != actual.shape or not torch.equal(expected, actual):
        result.problems.append(f"generate: {actual.tolist()} vs eager {expected.tolist()}")
        result.generate_ok = False


def check_model(entry, wrap, wrap_forward=None):
    """Run the three checks for `entry` with `wrap(model) -> callable model`;
    `wrap_forward(model)` optimizes `model.forward` in place for generate (default: the
    same wrap applied to the bound forward)."""
    result = CheckResult(entry.name)
    eager, inputs = entry.build()
    model, _ = entry.build()
    optimized = wrap(model)
    try:
        check_forward(eager, optimized, inputs, result)
        check_train_step(eager, dict(eager.named_parameters()), optimized, dict(model.named_parameters()),
                         inputs, result)
        if entry.family == "decoder":
            gen_model, _ = entry.build()
            gen_model.forward = (wrap_forward or wrap)(gen_model.forward)
            check_generate(eager, gen_model, inputs, result)
    except Exception as exc:  # a crash is a wrong result, reported, not a harness error
        result.problems.append(f"raised {type(exc).__name__}: {str(exc)[:300]}")
        result.generate_ok = False if entry.family == "decoder" else result.generate_ok
    return result
