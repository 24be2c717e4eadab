"""Live logs: one `terra_dyn.<category>` logger per kind of event, switched on by
TERRA_DYN_LOGS / TERRA_DYN_VERBOSE or `terra_dyn.set_logs`, each line naming the user's
file and line. One test per category, on a real optimized call."""
import io
import logging
import os
import subprocess
import sys
import threading

import pytest
import torch

import terra_dyn
from terra_dyn import logs

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@pytest.fixture
def log_to():
    """set_logs(*categories) into a StringIO; all off again afterwards."""
    stream = io.StringIO()

    def switch(*categories):
        logs.set_logs(*categories, stream=stream)
        return stream

    terra_dyn.reset()
    yield switch
    logs.set_logs()
    terra_dyn.reset()


def item_step(x):
    y = x * 2
    v = y.sum().item()  # a break
    return y + v


def test_breaks_category_logs_file_line_reason_and_source(log_to):
    out = log_to("breaks")
    terra_dyn.optimize(item_step, backend="interpreter")(torch.ones(3))
    text = out.getvalue()
    line = item_step.__code__.co_firstlineno + 2
    assert f"[terra_dyn.breaks] break at {__file__}:{line}:" in text and "item()" in text
    assert "v = y.sum().item()  # a break" in text
    assert "[terra_dyn.graphs]" not in text  # only the category asked for


def test_graphs_category_logs_each_graph_with_its_code(log_to):
    out = log_to("graphs")
    terra_dyn.optimize(item_step, backend="interpreter")(torch.ones(3))
    text = out.getvalue()
    assert text.count("[terra_dyn.graphs] graph of ") == 2, text
    assert "backend interpreter" in text and "def forward" in text and "mul" in text


def test_recompiles_category_names_variable_old_new_and_line(log_to):
    out = log_to("recompiles")

    def scale(x, factor):
        return x * factor

    fast = terra_dyn.optimize(scale, backend="interpreter")
    fast(torch.ones(2), 2)
    fast(torch.ones(2, 5), 2)
    text = out.getvalue()
    line = scale.__code__.co_firstlineno + 1
    assert f"[terra_dyn.recompiles] recompile scale ({__file__}:{line - 1}): " \
           f"x shape changed: (2,) -> (2, 5) (line {line})" in text, text


def test_guards_category_logs_the_guards_of_each_translation(log_to):
    out = log_to("guards")
    terra_dyn.optimize(lambda x: x + 1, backend="interpreter")(torch.ones(4))
    text = out.getvalue()
    assert "[terra_dyn.guards] guards of a translation:" in text and "(4,)" in text, text


def test_code_category_logs_the_rewritten_bytecode(log_to):
    out = log_to("code")
    terra_dyn.optimize(item_step, backend="interpreter")(torch.ones(3))
    text = out.getvalue()
    assert "[terra_dyn.code] rewritten code of item_step" in text
    assert "CALL" in text and "RETURN_VALUE" in text


def test_fallbacks_category_says_why_a_function_ran_as_python(log_to):
    out = log_to("fallbacks")
    lock = threading.Lock()

    def locked(x):
        with lock:  # a C context manager around the work: the frame runs eagerly
            y = x * 2
        return y / x.sum().item()

    terra_dyn.optimize(locked, backend="interpreter")(torch.ones(3))
    text = out.getvalue()
    assert "[terra_dyn.fallbacks] locked (" in text and "ran as plain Python: " in text, text


def test_kernels_category_logs_each_generated_kernel(kernel_run):
    result, _ = kernel_run  # TERRA_DYN_LOGS=kernels, Triton interpreted on CPU (conftest.py)
    assert "[terra_dyn.kernels] triton kernel for" in result.stderr and "@triton.jit" in result.stderr


def test_env_var_switches_categories_on_and_verbose_means_graphs_breaks_recompiles():
    program = ("import torch, terra_dyn\n"
               "def f(x):\n    y = x * 2\n    print(y.sum().item())\n    return y\n"
               "terra_dyn.optimize(f, backend='interpreter')(torch.ones(2))\n")
    def run(**env):
        full = dict(os.environ, **env)
        for k in ("TERRA_DYN_LOGS", "TERRA_DYN_VERBOSE", "TERRA_DYN"):
            full.pop(k, None) if k not in env else None
        return subprocess.run([sys.executable, "-c", program], cwd=ROOT, env=full, capture_output=True,
                              text=True, timeout=120)

    breaks = run(TERRA_DYN_LOGS="breaks")
    assert "[terra_dyn.breaks] break at <string>:4" in breaks.stderr, breaks.stderr
    assert "[terra_dyn.graphs]" not in breaks.stderr
    verbose = run(TERRA_DYN_VERBOSE="1")
    assert "[terra_dyn.breaks]" in verbose.stderr and "[terra_dyn.graphs]" in verbose.stderr
    quiet = run()
    assert "[terra_dyn" not in quiet.stderr
    typo = run(TERRA_DYN_LOGS="braeks")
    assert typo.returncode == 0 and "unknown terra_dyn log category 'braeks'" in typo.stderr


def test_logs_do_not_leak_into_a_scripts_own_root_logging(log_to, caplog):
    """A script's logging.basicConfig(level=INFO) must not print terra_dyn's lines twice,
    nor print them at all when no category is on."""
    with caplog.at_level(logging.INFO):
        terra_dyn.optimize(item_step, backend="interpreter")(torch.ones(3))
    assert not [r for r in caplog.records if r.name.startswith("terra_dyn")]
    out = log_to("breaks")
    with caplog.at_level(logging.INFO):
        terra_dyn.reset()
        terra_dyn.optimize(item_step, backend="interpreter")(torch.ones(3))
    assert "[terra_dyn.breaks]" in out.getvalue()
    assert not [r for r in caplog.records if r.name.startswith("terra_dyn")]  # not propagated


def test_a_scripts_info_root_logger_does_not_switch_categories_on():
    program = ("import logging, torch, terra_dyn\n"
               "logging.basicConfig(level=logging.INFO)\n"
               "def f(x):\n    y = x * 2\n    print(y.sum().item())\n    return y\n"
               "terra_dyn.optimize(f, backend='interpreter')(torch.ones(2))\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("TERRA_DYN")}
    result = subprocess.run([sys.executable, "-c", program], cwd=ROOT, env=env, capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 0 and "terra_dyn" not in result.stderr, result.stderr


def test_set_logs_parses_lists_all_and_rejects_unknown_names():
    try:
        assert logs.set_logs("breaks, recompiles") == ("breaks", "recompiles")
        assert logs.enabled("breaks") and not logs.enabled("graphs")
        assert set(logs.set_logs("all")) == set(logs.CATEGORIES)
        with pytest.raises(ValueError, match="unknown terra_dyn log category 'brakes'"):
            logs.set_logs("brakes")
    finally:
        assert logs.set_logs() == ()
    assert not any(logs.enabled(c) for c in logs.CATEGORIES)
