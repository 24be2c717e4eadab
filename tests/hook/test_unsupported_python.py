"""On a Python the hook does not support, the package imports and the frontend says why."""
import pytest
import subprocess
import sys
import textwrap

PROGRAM = textwrap.dedent("""
    import sys
    sys.version_info = (3, 14, 0, "final", 0)   # what the version check reads
    import terra_dyn, terra_dyn.config           # the package still imports
    for attempt in ("import terra_dyn.eval_frame", "terra_dyn.optimize"):
        try:
            exec(attempt)
        except ImportError as error:
            print("ImportError:", error)
        else:
            print("no error from", attempt)
""")


def test_unsupported_version_message_is_clear():
    result = subprocess.run([sys.executable, "-c", PROGRAM], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.strip().splitlines()
    expected = ("ImportError: terra_dyn's frame hook supports CPython 3.11, 3.12, 3.13 (with the GIL) "
                "only; this is 3.14.")
    assert len(lines) == 2 and all(line.startswith(expected) for line in lines), result.stdout


def test_triton_backend_imports_without_the_frontend():
    # The GPU machine runs the backend alone (another Python); it must not need the hook.
    program = textwrap.dedent("""
        import sys
        import torch, triton  # before faking the version: their own imports read it
        sys.version_info = (3, 14, 0, "final", 0)
        import terra_dyn.backends, terra_dyn.backends.triton
        print(callable(terra_dyn.backends.lookup("triton")), "terra_dyn._C" in sys.modules,
              "terra_dyn.eval_frame" in sys.modules)
    """)
    result = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["True", "False", "False"], result.stdout


@pytest.mark.parametrize("version, implementation, free_threaded, shown", [
    ((3, 10, 13), "cpython", False, "3.10"),
    ((3, 14, 0), "cpython", False, "3.14"),
    ((3, 13, 0), "cpython", True, "3.13 (free-threaded build)"),
    ((3, 11, 7), "pypy", False, "3.11 (pypy)"),
])
def test_unsupported_interpreters_get_one_message(version, implementation, free_threaded, shown):
    from terra_dyn.pyversion import unsupported_reason

    reason = unsupported_reason(version, implementation, free_threaded)
    assert reason == (f"terra_dyn's frame hook supports CPython 3.11, 3.12, 3.13 (with the GIL) only; "
                      f"this is {shown}. terra_dyn.backends works without it; terra_dyn.optimize needs it.")


@pytest.mark.parametrize("version", [(3, 11, 7), (3, 12, 1), (3, 13, 0)])
def test_supported_interpreters_pass(version):
    from terra_dyn.pyversion import unsupported_reason

    assert unsupported_reason(version, "cpython", False) is None


def test_this_interpreter_is_supported():
    from terra_dyn.pyversion import unsupported_reason

    assert unsupported_reason() is None  # CI runs 3.11, 3.12 and 3.13 with the GIL
