"""Compile generated kernels for a real GPU target without a GPU: proof that they build.

    results = compile_for_gpu([source, ...])     # sm_90 (H100) by default
    results[0].ptx_bytes, results[0].cubin_bytes # > 0 when Triton produced PTX and a cubin
    results[0].error                             # '' unless the compile failed

Uses only Triton's public compile API: triton.compile(ASTSource(fn, signature, constexprs),
target=GPUTarget("cuda", 90, 32)). Compiling runs in a child process
(`python -m terra_dyn.backends.triton.compile_check JOBS.json`) because a process that
imported Triton with TRITON_INTERPRET=1 holds interpreter versions of Triton's standard
library and cannot compile. Results are cached in memory and on disk next to the kernel
module (keyed like kernels, target "cuda:sm_90"), so a second run does not recompile.
"""
import json
import os
import subprocess
import sys
import tempfile
from dataclasses import dataclass

from .kernel_cache import atomic_write, kernel_cache, load_module
from .launch import candidates


@dataclass(frozen=True)
class CompileResult:
    name: str
    target: str
    ptx_bytes: int = 0
    cubin_bytes: int = 0
    shared_bytes: int = 0
    error: str = ""
    cached: bool = False

    def __repr__(self):
        if self.error:
            return f"CompileResult({self.name} for {self.target}: FAILED {self.error})"
        return (f"CompileResult({self.name} for {self.target}: ptx {self.ptx_bytes} B, cubin {self.cubin_bytes} B"
                f"{', cached' if self.cached else ''})")


_memory = {}


def compile_for_gpu(sources, capability: int = 90, warp_size: int = 32, cache=None, timeout: float = 600,
                    workers: int = 1):
    """Compile each KernelSource for CUDA compute capability `capability`; one result each."""
    cache = cache or kernel_cache()
    target = f"cuda:sm_{capability}"
    results, jobs = {}, []
    for source in sources:
        key = cache.key(source, target)
        if key in _memory:
            results[key] = _memory[key]
            continue
        saved = cache.read_json(source, target, ".compiled.json")
        if saved:
            results[key] = _memory[key] = CompileResult(**{**saved, "cached": True})
            continue
        if any(j["key"] == key for j in jobs):
            continue
        config = candidates(source, interpret=False)[0]
        constexprs = {"XBLOCK": config.XBLOCK}
        if source.is_reduction:
            constexprs["RBLOCK"] = config.RBLOCK
        jobs.append({"key": key, "path": cache.module_path(source, target), "name": source.name,
                     "signature": source.signature, "constexprs": constexprs, "num_warps": config.num_warps,
                     "capability": capability, "warp_size": warp_size, "target": target,
                     "out": cache.path(source, target, ".compiled.json")})
    if jobs:
        _run_jobs(jobs, timeout, workers, os.path.join(cache.directory, "triton"))
        for job in jobs:
            try:
                with open(job["out"]) as f:
                    result = CompileResult(**json.load(f))
            except (OSError, ValueError) as exc:
                result = CompileResult(job["name"], target, error=f"no result ({exc})")
            results[job["key"]] = result
            if not result.error:
                _memory[job["key"]] = result
    return [results[cache.key(s, target)] for s in sources]


def _run_jobs(jobs, timeout, workers, triton_cache_dir):
    env = dict(os.environ)
    env.pop("TRITON_INTERPRET", None)
    env.setdefault("TRITON_CACHE_DIR", triton_cache_dir)  # binaries next to our cache, not ~/.triton
    env.setdefault("TRITON_DEFAULT_FP_FUSION", "1")
    paths, procs = [], []
    try:
        for share in (jobs[i::workers] for i in range(max(1, workers))):
            if not share:
                continue
            fd, path = tempfile.mkstemp(suffix=".json", prefix="terra_dyn_compile_")
            with os.fdopen(fd, "w") as f:
                json.dump(share, f)
            paths.append(path)
            procs.append(subprocess.Popen([sys.executable, "-m", __name__, path], env=env,
                                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        for proc in procs:
            try:
                proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
    finally:
        for path in paths:
            os.unlink(path)


def _compile_job(job):
    import triton
    from triton.backends.compiler import GPUTarget
    from triton.compiler import ASTSource

    try:
        module = load_module(job["path"])
        fn = getattr(module, job["name"])
        compiled = triton.compile(ASTSource(fn, job["signature"], constexprs=job["constexprs"]),
                                  target=GPUTarget("cuda", job["capability"], job["warp_size"]),
                                  options={"num_warps": job["num_warps"]})
        asm = compiled.asm
        result = CompileResult(job["name"], job["target"], len(asm.get("ptx", "")), len(asm.get("cubin", b"")),
                               int(getattr(compiled.metadata, "shared", 0) or 0))
    except Exception as exc:  # reported to the parent as a failed result
        result = CompileResult(job["name"], job["target"], error=f"{type(exc).__name__}: {exc}"[:2000])
    fields = {k: v for k, v in result.__dict__.items() if k != "cached"}
    if result.error:
        fields["error"] = result.error
    atomic_write(job["out"], json.dumps(fields))


def main(argv):
    with open(argv[1]) as f:
        jobs = json.load(f)
    for job in jobs:
        _compile_job(job)


if __name__ == "__main__":
    main(sys.argv)
