"""The kernel cache: memory hits in a process, disk reuse by a second process, and
concurrent processes sharing one cache directory."""
import json
import os
import subprocess
import sys
import textwrap

import pytest
import torch

from .support import check

pytestmark = [pytest.mark.filterwarnings("ignore::UserWarning"), pytest.mark.filterwarnings("ignore::RuntimeWarning")]

CHILD = textwrap.dedent("""
    import json, os, sys
    os.environ["TRITON_INTERPRET"] = "1"
    import torch
    from terra_dyn.backends.triton import compile_graph
    from terra_dyn.backends.triton.kernel_cache import kernel_cache
    fn = lambda x, w: torch.softmax(x * w, -1) + torch.tanh(x)
    x, w = torch.randn(8, 50), torch.randn(50)
    compiled = compile_graph(torch.fx.symbolic_trace(fn), [x, w])
    ok = torch.allclose(compiled(x, w), fn(x, w), atol=1e-5)
    print(json.dumps({"ok": ok, "kernels": len(compiled.kernels), "notes": compiled.notes,
                      **kernel_cache().stats}))
""")


def _child(cache_dir, wait=True):
    env = dict(os.environ, TERRA_DYN_CACHE_DIR=str(cache_dir), TRITON_INTERPRET="1")
    proc = subprocess.Popen([sys.executable, "-c", CHILD], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    if not wait:
        return proc
    return _result(proc)


def _result(proc):
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err[-3000:]
    return json.loads(out.strip().splitlines()[-1])


def test_second_process_reuses_kernels_from_disk(tmp_path):
    first = _child(tmp_path)
    assert first["ok"] and first["kernels"] >= 1 and not first["notes"], first
    assert first["writes"] == first["kernels"] and first["disk_hits"] == 0, first
    second = _child(tmp_path)
    assert second["ok"], second
    assert second["writes"] == 0 and second["disk_hits"] == first["kernels"], second
    files = [f for f in os.listdir(tmp_path / "triton_kernels") if f.endswith(".py")]
    assert len(files) == first["kernels"]


def test_concurrent_processes_share_one_cache_directory(tmp_path):
    procs = [_child(tmp_path, wait=False) for _ in range(3)]
    results = [_result(p) for p in procs]
    assert all(r["ok"] and not r["notes"] for r in results), results
    names = os.listdir(tmp_path / "triton_kernels")
    assert not [n for n in names if n.startswith(".tmp-")], names  # no half-written files left
    assert len([n for n in names if n.endswith(".py")]) == results[0]["kernels"]


def test_same_kernel_in_one_process_is_a_memory_hit():
    from terra_dyn.backends.triton.kernel_cache import kernel_cache
    fn = lambda x: torch.exp(x) * 3.0 - 1.0  # noqa: E731
    check(fn, torch.randn(6, 6))
    before = kernel_cache().stats["memory_hits"]
    check(fn, torch.randn(6, 6))
    assert kernel_cache().stats["memory_hits"] == before + 1


def test_cache_key_includes_triton_version_and_target():
    from terra_dyn.backends.triton.kernel_cache import kernel_cache
    compiled = check(lambda x: x * 2.0, torch.randn(3))
    source = compiled.kernels[0]
    cache = kernel_cache()
    assert cache.key(source, "interpreter") != cache.key(source, "cuda:sm_90")
