"""PyTorch's own test databases as translation workloads: the CPU float32 samples of op_db
(torch.testing._internal.common_methods_invocations) and module_db (common_modules), a few
per op or module, each run through a small user function under terra_dyn and compared with
eager on the first and on the cached call.

    op_cases() / module_cases()                  which samples (seeded, capped, skips justified)
      -> run_case(case, fast_call)               eager vs ours on clones of each sample
      -> CaseResult(problems, captured samples)  used by test_op_db.py, test_module_db.py and
                                                 benchmarks/capture_coverage.py (torch.compile side)

The wrappers are what a user would write around an op or a module:

    def call_op(inp, *args, **kwargs):            def call_module(module, *args, **kwargs):
        return OP(inp, *args, **kwargs)               return module(*args, **kwargs)

Caps (env vars, so CI time stays bounded): TERRA_DYN_TEST_OP_SAMPLES (default 3 per op),
TERRA_DYN_TEST_MODULE_SAMPLES (default 3 per module). The torch.compile reference counts in
the tests hold for the default caps only.
"""
import dataclasses
import os
import warnings
from typing import Callable, List

import torch

from . import harness

OP_SAMPLES = int(os.environ.get("TERRA_DYN_TEST_OP_SAMPLES", "3"))
MODULE_SAMPLES = int(os.environ.get("TERRA_DYN_TEST_MODULE_SAMPLES", "3"))
DEFAULT_CAPS = OP_SAMPLES == 3 and MODULE_SAMPLES == 3
SAMPLE_SEED = 0  # torch.manual_seed before generating each op's / module's samples
CALL_SEED = 42  # torch.manual_seed before each call: lazy modules and dropout draw alike

# Ops whose eager result is not a function of the inputs, so no two runs can be compared:
SKIPPED_OPS = {
    # return uninitialized memory (measured: two eager runs give different values)
    "empty": "uninitialized memory",
    "empty_like": "uninitialized memory",
    "new_empty": "uninitialized memory",
    "new_empty_strided": "uninitialized memory",
    "empty_strided": "uninitialized memory",
    "empty_permuted": "uninitialized memory",
    # flagged has_nondeterministic_output in op_db, and CUDA-only kernels besides
    "torch.ops.aten._flash_attention_forward": "nondeterministic output, CUDA kernel",
    "torch.ops.aten._efficient_attention_forward": "nondeterministic output, CUDA kernel",
}
# Random ops (bernoulli, normal, dropout, rand_like, multinomial, ...) are *not* skipped:
# op_db wraps each in torch.manual_seed(42) (wrapper_set_seed), so their eager output is
# reproducible and terra_dyn must give the same values. Nothing is skipped for time: the
# slowest op's eager samples take about 0.25 s here (svd_lowrank, pca_lowrank).


def _skip_reason(op):
    if op.name in SKIPPED_OPS:
        return SKIPPED_OPS[op.name]
    if op.name.startswith("jiterator_"):
        return "CUDA-only (jiterator compiles CUDA source at call time)"
    return None


# Modules need no skip: the random ones (dropout inside transformer layers, lazy modules'
# first-call initialisation) are run with the same RNG seed for eager and ours.
SKIPPED_MODULES = {}


@dataclasses.dataclass
class Case:
    """One op or module, and how to get its capped list of samples (args, kwargs)."""

    name: str
    samples: Callable[[], list]  # -> [(args, kwargs), ...], freshly generated, seeded
    make_target: Callable[[], Callable]  # -> the op, or a freshly built module (seeded)
    is_module: bool = False

    def __repr__(self):
        return f"<case {self.name}>"


def op_cases() -> List[Case]:
    from torch.testing._internal.common_methods_invocations import op_db

    cases = []
    for op in op_db:
        if torch.float32 not in op.supported_dtypes("cpu") or _skip_reason(op):
            continue
        name = op.name + (f".{op.variant_test_name}" if op.variant_test_name else "")

        def samples(op=op):
            torch.manual_seed(SAMPLE_SEED)
            out = []
            for s in op.sample_inputs("cpu", torch.float32, requires_grad=False):
                out.append(((s.input,) + tuple(s.args), dict(s.kwargs)))
                if len(out) >= OP_SAMPLES:
                    break
            return out

        cases.append(Case(name, samples, lambda op=op: op.op))
    return cases


def module_cases() -> List[Case]:
    from torch.testing._internal.common_modules import module_db

    cases = []
    for info in module_db:
        if info.name in SKIPPED_MODULES:
            continue

        def samples(info=info):
            torch.manual_seed(SAMPLE_SEED)
            inputs = info.module_inputs_func(info, device="cpu", dtype=torch.float32,
                                             requires_grad=False, training=True)
            inputs = [m for m in inputs if m.forward_input is not None][:MODULE_SAMPLES]
            return [((m.constructor_input, ) + tuple(m.forward_input.args), dict(m.forward_input.kwargs))
                    for m in inputs]

        cases.append(Case(info.name, samples, lambda info=info: info.module_cls, is_module=True))
    return cases


def make_op_caller(op):
    def call_op(inp, *args, **kwargs):
        return op(inp, *args, **kwargs)
    return _own_code(call_op)


def make_module_caller():
    def call_module(module, *args, **kwargs):
        return module(*args, **kwargs)
    return _own_code(call_module)


def _own_code(fn):
    """Give each sample's wrapper a code object of its own: terra_dyn keeps per-code state
    (cache entries, recompile counts), and samples of different ops must not share it, or
    the order of the cases would decide what gets translated."""
    fn.__code__ = fn.__code__.replace()
    return fn


def build_module(module_cls, constructor_input):
    torch.manual_seed(SAMPLE_SEED)
    return module_cls(*constructor_input.args, **constructor_input.kwargs)


@dataclasses.dataclass
class CaseResult:
    case: Case
    problems: List[str]  # correctness differences, "sample i call j: ..."
    captured: List[bool]  # per sample: whole in one graph on the first call, cached on the second
    why: List[str]  # per sample: why not captured

    @property
    def sample_count(self):
        return len(self.captured)


def run_case(case: Case, optimize: Callable, capture_of: Callable) -> CaseResult:
    """Run every sample of a case eagerly and through `optimize(wrapper)`, twice each.

    `optimize(fn) -> fast_fn`; `capture_of(fast_fn, args, kwargs) -> (Outcome, verdict)` where
    verdict is a harness.Capture-like object with one_graph(), quiet() and why(); the test
    passes terra_dyn's, the benchmark torch.compile's."""
    problems, captured, why = [], [], []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        target = case.make_target()
        for i, (args, kwargs) in enumerate(case.samples()):
            if case.is_module:  # args = (constructor input, *forward args); the module goes first
                eager_module, ours_module = build_module(target, args[0]), build_module(target, args[0])
                wrapper = make_module_caller()
                eager_args, ours_args = (eager_module,) + args[1:], (ours_module,) + args[1:]
            else:
                eager_module = ours_module = None
                wrapper = make_op_caller(target)
                eager_args = ours_args = args
            fast = optimize(wrapper)
            verdicts = []
            for call_index in range(2):
                torch.manual_seed(CALL_SEED)
                eager = harness.call(wrapper, _fresh(eager_args, case), harness.clone_tree(kwargs),
                                     module=eager_module)
                torch.manual_seed(CALL_SEED)
                ours, verdict = capture_of(fast, _fresh(ours_args, case), harness.clone_tree(kwargs), ours_module)
                verdicts.append(verdict)
                problems += [f"sample {i} call {call_index + 1}: {p}"
                             for p in harness.compare_outcomes(eager, ours)]
            mine = [p for p in problems if p.startswith(f"sample {i} ")]
            whole = verdicts[0].one_graph() and verdicts[1].quiet()
            captured.append(whole and not mine)
            if whole and not mine:
                why.append("")
            elif not verdicts[0].one_graph():
                why.append("first call: " + verdicts[0].why())
            elif not verdicts[1].quiet():
                why.append("second call: " + verdicts[1].why())
            else:
                why.append("wrong result: " + mine[0])
    return CaseResult(case, problems, captured, why)


def _fresh(args, case):
    """Clone the tensors of a sample; a module (first argument of a module case) is kept."""
    if case.is_module:
        return (args[0],) + harness.clone_tree(tuple(args[1:]))
    return harness.clone_tree(tuple(args))


def terra_dyn_capture(fast, args, kwargs, module=None):
    """capture_of for terra_dyn: the report records of one call."""
    return harness.optimized_call(fast, args, kwargs, module=module)


def terra_dyn_optimize(fn):
    return harness.optimize(fn)  # resets terra_dyn: every sample's first call is a fresh translation


# ----------------------------------------------------------------------------- shared by the tests
_RESULTS = {}


def result_of(case):
    """run_case(case) under terra_dyn, once per session (the match test and the count share it)."""
    if case.name not in _RESULTS:
        _RESULTS[case.name] = run_case(case, terra_dyn_optimize, terra_dyn_capture)
    return _RESULTS[case.name]


def check_capture_count(suite, cases, measured):
    """Print terra_dyn's whole-capture count beside torch.compile's and why samples were missed;
    with the default caps, assert the sample set is the one measured and ours is not lower.
    measured: torch version ("2.13") -> torch.compile's (captured, samples) on that torch."""
    import collections

    version = ".".join(torch.__version__.split(".")[:2])
    assert version in measured, (f"torch.compile's {suite} counts were never measured on torch {version}: "
                                 f"run benchmarks/capture_coverage.py --suite {suite} --only torch_compile")
    their_captured, their_samples = measured[version]
    results = [result_of(c) for c in cases]
    samples = sum(r.sample_count for r in results)
    captured = sum(sum(r.captured) for r in results)
    print(f"\n{suite}: terra_dyn captured {captured}/{samples} samples whole; torch.compile "
          f"{their_captured}/{their_samples} (default caps: {DEFAULT_CAPS})")
    missed = [(r.case.name, w) for r in results for c, w in zip(r.captured, r.why) if not c]
    reasons = collections.Counter(why[:60] for _, why in missed)
    print("  missed by reason: " + "; ".join(f"{n} x {why}" for why, n in reasons.most_common(10)))
    for name, why in missed[:40]:
        print(f"  not captured: {name}: {why}")
    if DEFAULT_CAPS:
        assert samples == their_samples, "sample set changed: re-measure torch.compile"
        assert captured >= their_captured
