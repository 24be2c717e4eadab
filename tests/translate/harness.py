"""Run a program eagerly and under terra_dyn on identical inputs, and compare everything a
user could observe: outputs, exceptions, mutated inputs, module state and Python side effects.

    eager:  build() -> program ----------------------------- call(inputs(seed)) -> Outcome
    ours:   build() -> program -> terra_dyn.optimize(...) -- call(inputs(seed)) -> Outcome + Capture
                                                              compare(eager, ours) -> mismatches

Every comparison is against eager PyTorch run in the same process on a fresh copy of the same
inputs; nothing is compared with stored values. Example:

    eager = call(fn, (x.clone(),), {})
    ours = call(fast_fn, (x.clone(),), {})
    assert not compare_outcomes(eager, ours)

`Capture` summarises the terra_dyn report records made during one call: how many graphs
(per frame), breaks, fallbacks and recompiles, and why.
"""
import dataclasses
import math
from collections import Counter
from typing import Any, List, Optional

import torch


# ----------------------------------------------------------------------------- copying

def clone_tree(obj):
    """Deep-copy the tensors of a nested structure (views stay independent copies)."""
    if isinstance(obj, torch.Tensor):
        out = obj.detach().clone()
        out.requires_grad_(obj.requires_grad)
        return out
    if isinstance(obj, tuple) and hasattr(obj, "_fields"):  # namedtuple
        return type(obj)(*[clone_tree(v) for v in obj])
    if isinstance(obj, (list, tuple)):  # also torch.Size and torch.return_types
        return type(obj)([clone_tree(v) for v in obj])
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return dataclasses.replace(obj, **{f.name: clone_tree(getattr(obj, f.name))
                                           for f in dataclasses.fields(obj) if f.init})
    if isinstance(obj, dict):
        return type(obj)((k, clone_tree(v)) for k, v in obj.items())
    return obj


def tensors_of(obj):
    """The tensors of a nested structure, in order (for aliasing checks)."""
    if isinstance(obj, torch.Tensor):
        return [obj]
    if isinstance(obj, (list, tuple)):
        return [t for v in obj for t in tensors_of(v)]
    if isinstance(obj, dict):
        return [t for v in obj.values() for t in tensors_of(v)]
    return []


# ----------------------------------------------------------------------------- comparing

def _float_close(a, b):
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    if isinstance(a, float) or isinstance(b, float):
        return math.isclose(a, b, rel_tol=1e-6, abs_tol=1e-6) or a == b
    return a == b


def compare_values(eager, ours, path="output", rtol=None, atol=None) -> List[str]:
    """Differences between two nested values, as readable lines (empty when equal)."""
    if isinstance(eager, torch.Tensor):
        if not isinstance(ours, torch.Tensor):
            return [f"{path}: expected a tensor, got {type(ours).__name__}"]
        problems = []
        for attr in ("dtype", "shape", "device", "layout", "requires_grad"):
            if getattr(eager, attr) != getattr(ours, attr):
                problems.append(f"{path}.{attr}: eager {getattr(eager, attr)} vs ours {getattr(ours, attr)}")
        if problems:
            return problems
        if eager.is_sparse or eager.layout != torch.strided:
            eager, ours = eager.to_dense(), ours.to_dense()
        if eager.is_quantized:
            eager, ours = eager.dequantize(), ours.dequantize()
        try:
            torch.testing.assert_close(ours.detach(), eager.detach(), equal_nan=True,
                                       rtol=rtol, atol=atol, check_stride=False)
        except AssertionError as err:
            detail = "; ".join(line.strip() for line in str(err).splitlines()[1:] if line.strip())
            return [f"{path}: values differ ({detail})"]
        return []
    if type(eager) is not type(ours):
        return [f"{path}: type eager {type(eager).__name__} vs ours {type(ours).__name__}"]
    if dataclasses.is_dataclass(eager) and not isinstance(eager, type):
        return [p for f in dataclasses.fields(eager)
                for p in compare_values(getattr(eager, f.name), getattr(ours, f.name), f"{path}.{f.name}", rtol, atol)]
    if isinstance(eager, (list, tuple)):
        if len(eager) != len(ours):
            return [f"{path}: length eager {len(eager)} vs ours {len(ours)}"]
        return [p for i, (a, b) in enumerate(zip(eager, ours)) for p in compare_values(a, b, f"{path}[{i}]", rtol, atol)]
    if isinstance(eager, dict):
        if list(eager.keys()) != list(ours.keys()):
            return [f"{path}: keys eager {list(eager)} vs ours {list(ours)}"]
        return [p for k in eager for p in compare_values(eager[k], ours[k], f"{path}[{k!r}]", rtol, atol)]
    if isinstance(eager, (int, float, bool, complex)):
        return [] if _float_close(eager, ours) else [f"{path}: eager {eager!r} vs ours {ours!r}"]
    if isinstance(eager, (str, bytes, type(None), torch.dtype, torch.device, torch.Size, torch.layout)):
        return [] if eager == ours else [f"{path}: eager {eager!r} vs ours {ours!r}"]
    try:
        same = eager == ours
        if isinstance(same, bool) and same:
            return []
    except Exception:
        pass
    if repr(eager) == repr(ours):  # objects without __eq__ (e.g. user classes): compare what prints
        return []
    return [f"{path}: eager {eager!r} vs ours {ours!r}"]


@dataclasses.dataclass
class Outcome:
    """What one call did: its value or its exception, the arguments after the call, which
    output tensors are (or view) which input tensors, and the program's state afterwards.
    Values are copied right after the call, so later calls cannot change what was seen."""

    value: Any = None
    error: Optional[BaseException] = None
    args: tuple = ()
    kwargs: dict = dataclasses.field(default_factory=dict)
    aliasing: list = dataclasses.field(default_factory=list)
    state: Any = None  # Python-side snapshot (counters, logs)
    module_state: Any = None  # parameters, buffers, training flag

    def __repr__(self):
        if self.error is not None:
            return f"<raised {type(self.error).__name__}: {self.error}>"
        return f"<returned {type(self.value).__name__}>"


def call(fn, args, kwargs, snapshot=None, module=None) -> Outcome:
    """Call fn(*args, **kwargs) and record everything observable about it. The user's
    exception is part of the outcome (BaseException subclasses such as KeyboardInterrupt
    are not caught)."""
    try:
        value, error = fn(*args, **kwargs), None
    except Exception as err:  # noqa: BLE001
        value, error = None, err
    aliasing = _alias_pattern(value, args, kwargs) if error is None else []
    return Outcome(
        value=clone_tree(value), error=error, args=clone_tree(args), kwargs=clone_tree(kwargs),
        aliasing=aliasing,
        state=clone_tree(snapshot()) if snapshot is not None else None,
        module_state=module_state(module) if module is not None else None,
    )


def module_state(module):
    return {
        "parameters": clone_tree(dict(module.named_parameters())),
        "buffers": clone_tree(dict(module.named_buffers())),
        "training": [m.training for m in module.modules()],
    }


def compare_outcomes(eager: Outcome, ours: Outcome, rtol=None, atol=None, check_aliasing=True) -> List[str]:
    """Differences in value or exception type, in the arguments after the call (mutation),
    in Python and module state, and in which outputs are the inputs themselves or views of them."""
    if eager.error is not None or ours.error is not None:
        if eager.error is None:
            return [f"ours raised {type(ours.error).__name__}: {ours.error}; eager returned"]
        if ours.error is None:
            return [f"eager raised {type(eager.error).__name__}: {eager.error}; ours returned"]
        if type(eager.error) is not type(ours.error):
            return [f"exception type: eager {type(eager.error).__name__}({eager.error}) "
                    f"vs ours {type(ours.error).__name__}({ours.error})"]
        problems = []
    else:
        problems = compare_values(eager.value, ours.value, "output", rtol, atol)
    problems += compare_values(eager.args, ours.args, "args after call", rtol, atol)
    problems += compare_values(eager.kwargs, ours.kwargs, "kwargs after call", rtol, atol)
    problems += compare_values(eager.state, ours.state, "python state", rtol, atol)
    problems += compare_values(eager.module_state, ours.module_state, "module", rtol, atol)
    if check_aliasing and not problems:
        problems += _compare_aliasing(eager.aliasing, ours.aliasing)
    return problems


def _alias_pattern(value, args, kwargs):
    inputs = tensors_of((args, kwargs))
    pattern = []
    for out in tensors_of(value):
        same = next((i for i, t in enumerate(inputs) if out is t), None)
        shares = next((i for i, t in enumerate(inputs)
                       if t.numel() and out.numel() and t.layout == torch.strided and out.layout == torch.strided
                       and t.untyped_storage().data_ptr() == out.untyped_storage().data_ptr()), None)
        pattern.append((same, shares))
    return pattern


def _compare_aliasing(eager, ours):
    problems = []
    for i, ((e_same, e_shares), (o_same, o_shares)) in enumerate(zip(eager, ours)):
        if e_same != o_same:
            problems.append(f"output tensor {i}: eager returns input tensor #{e_same} itself, ours #{o_same}")
        elif e_shares != o_shares:
            problems.append(f"output tensor {i}: eager shares storage with input tensor #{e_shares} (a view), "
                            f"ours with #{o_shares}")
    return problems


# ----------------------------------------------------------------------------- capture

@dataclasses.dataclass
class Capture:
    """The report records of one optimized call, and the verdict on whole-frame capture."""

    graphs: list
    breaks: list
    fallbacks: list
    recompiles: list

    @classmethod
    def of(cls, recorder):
        rep = recorder.report()
        return cls(rep.graphs, rep.breaks, rep.fallbacks, rep.recompiles)

    def graphs_per_frame(self):
        return Counter((g.filename, g.lineno, g.code_name) for g in self.graphs)

    def whole_per_frame(self):
        """Each translated frame ran as exactly one graph; nothing broke or fell back."""
        per_frame = self.graphs_per_frame()
        return bool(per_frame) and set(per_frame.values()) == {1} and not self.breaks and not self.fallbacks

    def one_graph(self):
        """The whole call was exactly one graph (no break, no fallback)."""
        return len(self.graphs) == 1 and not self.breaks and not self.fallbacks

    def quiet(self):
        """A cached call: no new translation, break, fallback or recompile."""
        return not (self.graphs or self.breaks or self.fallbacks or self.recompiles)

    def why(self):
        if not self.graphs and not self.breaks and not self.fallbacks:
            return "no graph captured (nothing was translated)"
        parts = [f"{len(self.graphs)} graph(s) over {len(self.graphs_per_frame())} frame(s)"]
        parts += [f"break {b.filename.rsplit('/', 1)[-1]}:{b.lineno}: {b.reason}" for b in self.breaks[:3]]
        parts += [f"fallback {f.code_name}: {f.reason}" for f in self.fallbacks[:3]]
        parts += [f"recompile {r.code_name}: {r.failed_guard}" for r in self.recompiles[:2]]
        return "; ".join(_one_line(p) for p in parts)


def _one_line(text, limit=200):
    """Reasons may embed multi-line reprs (a module); keep one short line per reason."""
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def optimized_call(fast, args, kwargs, snapshot=None, module=None):
    """Call an optimized callable and collect what terra_dyn recorded meanwhile."""
    from terra_dyn import report  # imported late: the torch.compile benchmark runs without terra_dyn

    with report.recording() as rec:
        outcome = call(fast, args, kwargs, snapshot, module)
    return outcome, Capture.of(rec)


def optimize(program):
    """The optimization under test: the reference interpreter backend, default fallbacks,
    every cache cleared first (so each program's first call is a fresh translation)."""
    import terra_dyn

    terra_dyn.reset()
    return terra_dyn.optimize(program, backend="interpreter")
