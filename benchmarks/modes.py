"""The execution modes the runners compare: eager, terra_dyn with a backend, torch.compile.

    mode = make_mode("terra:interpreter")     # or "eager", "compile:inductor", "compile:eager"
    mode.prepare()                             # imports; raises ModeUnavailable with a reason
    fast = mode.wrap(step)                     # terra_dyn.optimize(step, backend=...) etc.
    with mode.counting():                      # graph/break counts of this call, accumulated
        fast(batch)
    mode.counts                                # Counts(graphs=1, breaks=2, recompiles=0, ...)

Counts come from terra_dyn's report (`terra_dyn.report.recording()`) and, for torch.compile,
from deltas of `torch._dynamo.utils.counters` around each call (graphs: "unique_graphs";
breaks: "graph_break" plus "unimplemented", where Dynamo files data-dependent branches) —
torch._dynamo is used here, in the benchmarks only, never inside terra_dyn. Modes can run
interleaved in one process.

torch.compile settings, applied once by `configure_torch_compile`: Inductor's
`fallback_random` is on so that dropout and randn draw the same numbers as eager (losses
are compared), and Dynamo's per-code recompile limit is multiplied by the number of
torch.compile modes sharing a code object (both modes cache entries on the same code).
"""
import contextlib
import dataclasses
import os

CPU_DEFAULT_MODES = ["eager", "terra:interpreter", "compile:inductor", "compile:eager"]
CUDA_DEFAULT_MODES = ["eager", "terra:interpreter", "terra:triton", "compile:inductor", "compile:eager"]
KNOWN_MODES = ["eager", "terra:interpreter", "terra:triton", "terra:cpu", "terra:auto", "compile:inductor", "compile:eager",
               "fx:triton", "fx:interpreter"]
DEBUG_MODES = ["debug:segfault"]  # for the runner's own tests: proves a crashing mode cannot end a run


class ModeUnavailable(Exception):
    """The mode cannot run here (terra_dyn does not import, no GPU for triton, ...)."""


@dataclasses.dataclass
class Counts:
    graphs: int = 0
    breaks: int = 0
    recompiles: int = 0
    fallbacks: int = 0
    frames: int = 0  # torch.compile: frames Dynamo translated (first compiles + recompiles)
    fallback_reasons: list = dataclasses.field(default_factory=list)
    # terra_dyn: "name (file:line)" -> translations of that code object in steps 3 and later
    # (issue 11's target: none; a code object still translating then is a recompile storm)
    late_translations: dict = dataclasses.field(default_factory=dict)

    def __repr__(self):
        return (f"Counts(graphs={self.graphs}, breaks={self.breaks}, recompiles={self.recompiles}, "
                f"fallbacks={self.fallbacks})")


class Mode:
    """Eager: runs the program as written."""

    kind = "eager"

    def __init__(self, name):
        self.name = name
        self.counts = Counts()

    def prepare(self):
        pass

    def wrap(self, fn_or_module):
        return fn_or_module

    @contextlib.contextmanager
    def counting(self):
        yield

    def __repr__(self):
        return f"<mode {self.name} {self.counts!r}>"


class TerraMode(Mode):
    """terra_dyn.optimize(unit, backend=...), counted from terra_dyn's report recorder."""

    kind = "terra"

    SETTLE_STEPS = 2  # translations in the first two steps are expected (first call, first change)

    def __init__(self, name, backend, strict=False):
        super().__init__(name)
        self.backend = backend
        self.strict = strict
        self.terra_dyn = None
        self.steps_seen = 0

    def prepare(self):
        try:
            import terra_dyn
            import terra_dyn.report  # noqa: F401
        except Exception as e:  # the frontend is missing or broken: report, never crash the run
            raise ModeUnavailable(f"import terra_dyn failed: {type(e).__name__}: {e}") from e
        if self.backend == "triton":
            import torch
            if not torch.cuda.is_available():
                raise ModeUnavailable("backend 'triton' needs a CUDA GPU")
        self.terra_dyn = terra_dyn

    def wrap(self, fn_or_module):
        return self.terra_dyn.optimize(fn_or_module, backend=self.backend, strict=self.strict)

    @contextlib.contextmanager
    def counting(self):
        with self.terra_dyn.report.recording() as recorder:
            try:
                yield
            finally:
                report = recorder.report()
                self.counts.graphs += len(report.graphs)
                self.counts.breaks += len(report.breaks)
                self.counts.recompiles += len(report.recompiles)
                self.counts.fallbacks += len(report.fallbacks)
                for f in report.fallbacks[:3]:
                    if len(self.counts.fallback_reasons) < 5:
                        self.counts.fallback_reasons.append(repr(f)[:300])
                if self.steps_seen >= self.SETTLE_STEPS:
                    late = self.counts.late_translations
                    for t in report.translations:
                        key = f"{t.code_name} ({os.path.basename(t.filename)}:{t.lineno})"
                        late[key] = late.get(key, 0) + 1
                self.steps_seen += 1


def configure_torch_compile(n_compile_modes):
    import torch._dynamo.config as dynamo_config
    import torch._inductor.config as inductor_config

    inductor_config.fallback_random = True
    for knob in ("recompile_limit", "cache_size_limit"):
        if hasattr(dynamo_config, knob):
            setattr(dynamo_config, knob, 8 * max(1, n_compile_modes))
            break


class CompileMode(Mode):
    """torch.compile(unit, backend=...), counted from torch._dynamo's counters."""

    kind = "compile"
    # Dynamo keeps no recompile counter: `recompiles` here counts frames it translated after
    # the first step (new guards failing, or a frame first reached later), see `counting`

    def __init__(self, name, backend):
        super().__init__(name)
        self.backend = backend
        self.steps_seen = 0

    def prepare(self):
        try:
            import torch._dynamo.utils  # noqa: F401
        except Exception as e:
            raise ModeUnavailable(f"torch.compile unavailable: {e}") from e

    def wrap(self, fn_or_module):
        import torch
        return torch.compile(fn_or_module, backend=self.backend)

    @staticmethod
    def _snapshot():
        from torch._dynamo.utils import counters
        return (counters["stats"]["unique_graphs"],
                sum(counters["graph_break"].values()) + sum(counters["unimplemented"].values()),
                counters["frames"]["total"])

    @contextlib.contextmanager
    def counting(self):
        before = self._snapshot()
        try:
            yield
        finally:
            after = self._snapshot()
            self.counts.graphs += after[0] - before[0]
            self.counts.breaks += after[1] - before[1]
            self.counts.frames += after[2] - before[2]
            if self.steps_seen:
                self.counts.recompiles += after[2] - before[2]
            self.steps_seen += 1


class FxMode(Mode):
    """Each module's forward as a make_fx graph compiled by a terra_dyn backend (unit "model"
    only): the backend's figures on the real models without the frame hook (see fx_module.py)."""

    kind = "fx"

    def __init__(self, name, backend):
        super().__init__(name)
        self.backend = backend
        self.wrapped = []

    def prepare(self):
        import torch
        if self.backend == "triton" and not torch.cuda.is_available():
            raise ModeUnavailable("backend 'triton' needs a CUDA GPU")

    def wrap(self, fn_or_module):
        import torch

        from benchmarks.fx_module import FxCompiledModule
        from benchmarks.gpu.common import import_backend
        if not isinstance(fn_or_module, torch.nn.Module):
            raise ModeUnavailable("fx modes wrap modules: run with --unit model")
        import_backend()  # the backends import even where the frontend does not
        from terra_dyn.backends import lookup
        wrapped = FxCompiledModule(fn_or_module, lookup(self.backend))
        self.wrapped.append(wrapped)
        return wrapped

    @contextlib.contextmanager
    def counting(self):
        try:
            yield
        finally:
            graphs = sum(not isinstance(e, str) for w in self.wrapped for e in w.entries.values())
            self.counts.graphs = graphs
            self.counts.fallbacks = sum(len(w.fallbacks) for w in self.wrapped)
            self.counts.fallback_reasons = [f for w in self.wrapped for f in w.fallbacks][:5]


class SegfaultMode(Mode):
    """Kills its process with SIGSEGV on the first step: tests the runner's crash isolation."""

    kind = "debug"

    def wrap(self, fn_or_module):
        def crash(*args, **kwargs):
            import os
            import signal
            os.kill(os.getpid(), signal.SIGSEGV)

        return crash


def make_mode(name):
    if name == "eager":
        return Mode(name)
    if name == "debug:segfault":
        return SegfaultMode(name)
    kind, _, backend = name.partition(":")
    if kind == "terra" and backend in ("interpreter", "triton", "cpu", "auto"):
        return TerraMode(name, backend)
    if kind == "compile" and backend:
        return CompileMode(name, backend)
    if kind == "fx" and backend in ("interpreter", "triton", "auto"):
        return FxMode(name, backend)
    raise ValueError(f"unknown mode {name!r}; known: {', '.join(KNOWN_MODES)}")


def default_modes(device):
    return list(CUDA_DEFAULT_MODES if str(device).startswith("cuda") else CPU_DEFAULT_MODES)
