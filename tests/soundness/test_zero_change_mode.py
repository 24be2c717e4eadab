"""Soundness under `TERRA_DYN=1 python script.py`: a script that runs plainly runs the same.

Each script runs in a subprocess with and without TERRA_DYN=1; stdout and the exit status
must match, and stderr must hold no terra_dyn warning (shutdown included).
"""
import os
import subprocess
import sys
import textwrap

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _run(script, tmp_path, terra):
    path = tmp_path / "script.py"
    path.write_text(textwrap.dedent(script))
    env = {k: v for k, v in os.environ.items() if not k.startswith("TERRA_DYN")}
    if terra:
        env.update(TERRA_DYN="1", TERRA_DYN_BACKEND="interpreter")
    return subprocess.run([sys.executable, str(path)], capture_output=True, text=True, env=env,
                          cwd=ROOT, timeout=240)


SYS_MODULES = """
    import sys
    import torch
    names = [m for m in sys.modules if m.startswith("torch.nn")]
    def json_modules():
        import json
        return sorted(m for m in sys.modules if m.startswith("json"))
    print(len(names) > 0, json_modules())
    print(torch.relu(torch.tensor([-1.0, 2.0])).tolist())
"""


def test_comprehension_over_sys_modules_and_a_clean_shutdown(tmp_path):
    plain = _run(SYS_MODULES, tmp_path, terra=False)
    assert plain.returncode == 0, plain.stderr
    optimized = _run(SYS_MODULES, tmp_path, terra=True)
    assert optimized.returncode == 0, optimized.stderr
    assert optimized.stdout == plain.stdout
    assert "terra_dyn" not in optimized.stderr, optimized.stderr
