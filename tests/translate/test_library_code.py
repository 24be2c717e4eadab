"""Where code lives decides only what an optimized call runs as it is (code_location.py):
model code of an installed package is translated like a script's; terra_dyn, the stdlib,
torch and tooling packages are not; whatever is passed to optimize always is."""
import importlib
import os
import sys
import textwrap

import numpy
import torch

import terra_dyn
from terra_dyn import code_location, report

_LIB = textwrap.dedent("""
    import torch

    class Block(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = torch.nn.Linear(4, 4)

        def forward(self, x):
            return torch.relu(self.fc(x)) * 2

    def helper(x):
        y = x + 1
        n = y.sum().item()  # a break: the rest of helper and of its callers is one graph
        return y * 3 + n

    class Head(torch.nn.Module):
        def forward(self, x):
            return helper(x) * 2
""")


def _install_fake_library(tmp_path, monkeypatch):
    site = tmp_path / "site-packages"
    (site / "fakelib").mkdir(parents=True)
    (site / "fakelib" / "__init__.py").write_text(_LIB)
    monkeypatch.syspath_prepend(str(site))
    monkeypatch.delitem(sys.modules, "fakelib", raising=False)
    return importlib.import_module("fakelib")


def test_installed_library_model_is_translated(fresh_terra_dyn, tmp_path, monkeypatch):
    lib = _install_fake_library(tmp_path, monkeypatch)
    torch.manual_seed(0)
    block = lib.Block()
    x = torch.randn(2, 4)
    fast = terra_dyn.optimize(block, backend="interpreter")
    with report.recording() as rec:
        out = fast(x)
    torch.testing.assert_close(out, block(x))
    graphs = rec.report().graphs
    assert len(graphs) == 1 and "site-packages" in graphs[0].filename and graphs[0].op_count >= 3


def test_library_function_with_a_break_is_translated(fresh_terra_dyn, tmp_path, monkeypatch):
    lib = _install_fake_library(tmp_path, monkeypatch)

    def step(x):
        return lib.helper(x * 2) - 1

    x = torch.randn(5)
    fast = terra_dyn.optimize(step, backend="interpreter")
    with report.recording() as rec:
        out = fast(x)
    torch.testing.assert_close(out, step(x))
    # x * 2, y + 1, sum | y * 3, + n, - 1: the library's tensor work on both sides of its
    # break is in graphs (the caller's, which the break no longer splits at the call)
    assert sum(g.op_count for g in rec.report().graphs) >= 5, "the library function's work was not translated"


def test_a_break_inside_library_code_names_the_library_line_and_the_users_line(fresh_terra_dyn, tmp_path,
                                                                              monkeypatch):
    # issue 17's "bad input": a construct not captured (here .item()) in an installed model
    # library is a break at the library's own line, reported under the user's line that led there
    lib = _install_fake_library(tmp_path, monkeypatch)
    head = lib.Head()

    def step(x):
        y = x * 2
        return head(y) - 1

    x = torch.randn(5)
    fast = terra_dyn.optimize(step, backend="interpreter")
    with report.recording() as rec:
        out = fast(x)
    torch.testing.assert_close(out, step(x))
    r = rec.report()
    lib_line = _LIB.splitlines().index("    n = y.sum().item()  # a break: the rest of helper and of its callers is one graph") + 1
    user_line = step.__code__.co_firstlineno + 2
    innermost = [b for b in r.breaks if (b.filename, b.lineno) == (lib.__file__, lib_line)]
    assert innermost and all("item()" in b.reason for b in innermost)
    from_user = [b for b in innermost if b.user_site()[:2] == (__file__, user_line)]
    assert from_user and from_user[0].user_stack[0].startswith(f"{__file__}:{user_line} ")
    text = str(r)
    assert f"line {user_line}: return head(y) - 1" in text
    assert f"fakelib/__init__.py:{lib_line}: Tensor.item()" in text


def test_what_is_skipped_by_location():
    def here():
        return 1

    assert not code_location.is_library_code(here.__code__)
    assert code_location.is_library_code(os.path.join.__code__)  # stdlib
    assert code_location.is_library_code(torch.nn.functional.relu.__code__)  # torch, not a module forward
    assert not code_location.is_library_code(torch.nn.Linear.forward.__code__)
    assert code_location.is_library_code(code_location.is_library_code.__code__)  # terra_dyn itself
    assert code_location.is_library_code(numpy.linspace.__wrapped__.__code__)  # a tooling package


def test_what_is_passed_to_optimize_is_translated_wherever_it_lives(fresh_terra_dyn):
    stdlib_file = os.path.join(os.path.dirname(os.__file__), "terra_dyn_fake_stdlib.py")
    namespace = {"torch": torch}
    exec(compile("def scale(x):\n    return torch.sin(x) * 2\n", stdlib_file, "exec"), namespace)
    scale = namespace["scale"]
    assert code_location.is_library_code(scale.__code__)
    fast = terra_dyn.optimize(scale, backend="interpreter")
    assert not code_location.is_library_code(scale.__code__)
    x = torch.randn(3)
    with report.recording() as rec:
        torch.testing.assert_close(fast(x), torch.sin(x) * 2)
    assert rec.report().graph_count == 1
