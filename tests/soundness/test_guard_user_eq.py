"""A guard whose comparison runs a user's `__eq__` that changes or frees the dict the
guard is reading (tests/soundness/user_eq_cases.py has the cases and what they change).

Each group of cases runs in its own interpreter with PYTHONMALLOC=debug (freed memory is
overwritten, so a read of it crashes instead of answering by luck): a crash is this test's
failure, not a dead pytest. Before csrc/snapshot.c held what it read and checked it again
after such a comparison, and csrc/path_check.c bounded its key loop, 10 of the 18 cases
crashed on 3.11 (segfault, abort; snapshots and paths on) and 6 more answered wrongly: a
guard that passed on a dict whose keys changed under it, and `Key("a") == "a"` accepted as
the key "a" that the translation had read (`type(k) is str` then differs)."""
import os
import subprocess
import sys

import pytest

from tests.soundness import user_eq_cases

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
END_TO_END = [c for c in user_eq_cases.CASES if c.startswith(("arg_", "module_"))]
C_ONLY = [c for c in user_eq_cases.CASES if c not in END_TO_END]


def _run(cases, mode):
    script = ("import sys\nfrom tests.soundness.user_eq_cases import main\n"
              f"for case in {cases!r}:\n"
              "    print('case', case, flush=True)\n"
              f"    main([case, {mode!r}])\n")
    env = dict(os.environ, PYTHONMALLOC="debug", PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    out = subprocess.run([sys.executable, "-X", "faulthandler", "-c", script], capture_output=True, text=True,
                         timeout=600, cwd=ROOT, env=env)
    last = [line for line in out.stdout.splitlines() if line.startswith("case ")][-1:]
    assert out.returncode == 0, f"{last} rc={out.returncode}\n{out.stderr[-3000:]}"
    assert out.stdout.count("ok ") == len(cases), out.stdout


def test_cases_are_found():
    assert len(END_TO_END) >= 8 and len(C_ONLY) >= 8


@pytest.mark.parametrize("mode", ["snapshots+paths", "snapshots", "paths", "expressions"])
def test_end_to_end_against_plain_python(mode):
    _run(END_TO_END, mode)


def test_c_checks_alone():
    _run(C_ONLY, "snapshots+paths")
