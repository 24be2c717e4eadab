"""On a Python the hook does not support, the package imports and the frontend says why."""
import subprocess
import sys
import textwrap

PROGRAM = textwrap.dedent("""
    import sys
    sys.version_info = (3, 12, 1, "final", 0)   # what the version check reads
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
    expected = "ImportError: terra_dyn's frame hook supports CPython 3.11 only; this is 3.12."
    assert len(lines) == 2 and all(line.startswith(expected) for line in lines), result.stdout


def test_triton_backend_imports_without_the_frontend():
    # The GPU machine runs the backend alone (another Python); it must not need the hook.
    program = textwrap.dedent("""
        import sys
        import torch, triton  # before faking the version: their own imports read it
        sys.version_info = (3, 12, 1, "final", 0)
        import terra_dyn.backends, terra_dyn.backends.triton
        print(callable(terra_dyn.backends.lookup("triton")), "terra_dyn._C" in sys.modules,
              "terra_dyn.eval_frame" in sys.modules)
    """)
    result = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["True", "False", "False"], result.stdout
