"""super(), function-level imports, enum members and torch.jit.is_tracing() in translated
code (transformers' model code uses each on every forward), each compared with eager."""
import enum
import sys
import textwrap

import torch

import terra_dyn
from terra_dyn import report


def _run(fn, *args, fullgraph=False):
    fast = terra_dyn.optimize(fn, backend="interpreter", fullgraph=fullgraph)
    with report.recording() as rec:
        first = fast(*args)
        second = fast(*args)
    return first, second, rec.report()


class _Scaled(torch.nn.LayerNorm):
    def forward(self, x):
        return super().forward(x) * 2


def test_zero_argument_super_is_inlined_into_one_graph(fresh_terra_dyn):
    m = _Scaled(4)
    x = torch.randn(3, 4)
    first, second, rep = _run(m, x, fullgraph=True)
    torch.testing.assert_close(first, m(x))
    torch.testing.assert_close(second, m(x))
    assert rep.graph_count == 1 and rep.break_count == 0


class _Base(torch.nn.Module):
    def forward(self, x):
        return x * 2

    @property
    def helper(self):
        return lambda t: t * 3


class _AfterBreak(_Base):
    def forward(self, x):
        y = x + 1
        n = int(y.sum().item() > -1e9)  # a break: the rest runs in a resume function
        return super().forward(y) - n


class _NativeResume(_Base):
    def forward(self, x):
        y = x + 1
        n = int(y.sum().item() > -1e9)
        # super().helper is a property: the resume function cannot be translated and runs
        # natively, where zero-argument super() must still find self
        return super().helper(y) + super().forward(y) - n


def test_zero_argument_super_after_a_break_matches_eager(fresh_terra_dyn):
    for cls in (_AfterBreak, _NativeResume):
        m = cls()
        x = torch.randn(5)
        first, second, rep = _run(m, x)
        torch.testing.assert_close(first, m(x))
        torch.testing.assert_close(second, m(x))
        assert rep.break_count >= 1  # the .item() break really happened


class _Record:
    def __init__(self):
        self.seen = []


class _Recorder(_Record):
    def __init__(self):
        super().__init__()  # an ObjectValue made in the graph: inlines _Record.__init__


def test_super_init_of_an_object_made_in_the_frame(fresh_terra_dyn):
    def f(x):
        r = _Recorder()
        r.seen.append(1)
        return x * len(r.seen)

    x = torch.randn(3)
    first, second, rep = _run(f, x, fullgraph=True)
    torch.testing.assert_close(first, f(x))
    assert rep.break_count == 0


def test_function_level_imports_of_imported_modules_stay_in_the_graph(fresh_terra_dyn):
    def f(x):
        import math
        import torch.nn.functional as F
        from torch.nn import functional as G
        from os import path  # noqa: F401
        return F.relu(x) * math.pi + G.gelu(x)

    x = torch.randn(4)
    first, second, rep = _run(f, x, fullgraph=True)
    torch.testing.assert_close(first, f(x))
    assert rep.graph_count == 1 and rep.break_count == 0


def test_import_of_a_module_not_imported_yet_runs_natively(fresh_terra_dyn, tmp_path, monkeypatch):
    (tmp_path / "terra_dyn_probe_mod.py").write_text("FACTOR = 3\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "terra_dyn_probe_mod", raising=False)

    def f(x):
        import terra_dyn_probe_mod
        return x * terra_dyn_probe_mod.FACTOR

    x = torch.randn(4)
    first, second, rep = _run(f, x)
    torch.testing.assert_close(first, x * 3)
    torch.testing.assert_close(second, x * 3)
    assert any("not imported yet" in b.reason for b in rep.breaks)


class _Mode(enum.Enum):
    DOUBLE = 1
    NEGATE = 2


def test_enum_members_are_guarded_by_identity(fresh_terra_dyn):
    def f(x, mode):
        if mode == _Mode.DOUBLE:
            return x * 2
        return -x

    fast = terra_dyn.optimize(f, backend="interpreter")
    x = torch.randn(3)
    with report.recording() as rec:
        torch.testing.assert_close(fast(x, _Mode.DOUBLE), x * 2)
        torch.testing.assert_close(fast(x, _Mode.NEGATE), -x)  # the guard fails: retranslated
        torch.testing.assert_close(fast(x, _Mode.DOUBLE), x * 2)
    rep = rec.report()
    assert rep.break_count == 0 and rep.graph_count == 2


def test_is_tracing_and_is_scripting_checks_are_constants(fresh_terra_dyn):
    def f(x):
        if torch.jit.is_tracing() or torch.jit.is_scripting():
            return x - 1
        return x + 1

    x = torch.randn(3)
    first, second, rep = _run(f, x, fullgraph=True)
    torch.testing.assert_close(first, x + 1)
    assert rep.graph_count == 1 and rep.break_count == 0


class _Cache:
    def update(self, x, *args, **kwargs):
        y = x * 2
        n = y.sum().item()  # the callee breaks: the caller's CALL_FUNCTION_EX runs natively
        return y + kwargs.get("k", 0) + n


class _Layer(torch.nn.Module):
    def forward(self, x, k=0):
        y = x * 2
        return y + k + y.sum().item()


def test_method_called_with_star_args_whose_callee_breaks(fresh_terra_dyn):
    cache, layer = _Cache(), _Layer()

    def f(x, *args, **kwargs):
        return cache.update(x, *args, **kwargs) + layer(x, *args, **kwargs)

    x = torch.randn(3)
    first, second, rep = _run(lambda x: f(x, k=1), x)
    torch.testing.assert_close(first, f(x, k=1))
    torch.testing.assert_close(second, f(x, k=1))
    assert rep.break_count >= 2
