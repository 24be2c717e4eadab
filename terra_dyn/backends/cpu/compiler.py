"""The system C++ compiler, and the cache of the shared objects it builds (memory and disk).

    library = build_library(module_text, "graph")   # ctypes.CDLL, compiled at most once
    why_unavailable()                               # '' or the reason kernels cannot be built

One shared object per graph (all of its kernels in one module): one compiler start-up per
graph instead of one per kernel, which is most of the compile time. On disk:

    <cache_dir>/cpu_kernels/<hint>_<key>.so     the library
    <cache_dir>/cpu_kernels/<hint>_<key>.cpp    its source (for reading; not used to load)

The key hashes the module text, the compiler's version line, the flags and this CPU's
identity (-march=native code must never run on another CPU sharing a home directory), so
a compiler, flag or machine change never reuses a stale binary. The compiler writes to a
temporary name in the same directory and os.replace moves the result into place, so
processes building the same kernel at once each see a whole file. `stats` counts memory
hits, disk hits and compiles.

Background builds (`build_module_async`): a module not in memory or on disk is compiled by
a thread waiting for g++ (which holds no GIL meanwhile); the caller polls `done()` and runs
eagerly until then. The thread is not a daemon: the interpreter waits for it at exit, so no
half-written file is left. `wait_for_pending()` joins every build still running.

Vector math: glibc's libmvec has vector versions of expf, tanhf, erff... that g++ calls
from `simd` loops when the function is declared `simd`. The first module of a process is
built with those declarations and -lmvec; if it does not build or load (no libmvec, an
old glibc without some of them) but builds with scalar declarations, the process keeps to
scalar libm calls.
"""
import ctypes
import functools
import hashlib
import os
import platform
import shutil
import subprocess
import tempfile
import threading

from ... import config
from .cpp_ops import PRELUDE, math_declarations

# -mprefer-vector-width=512: AVX-512 machines use full-width vectors (softmax over rows of
# 1024: 0.88 -> 0.67 ms); elsewhere it changes nothing. Unrolling with variable expansion
# gives reductions several accumulators (layer norm 0.38 -> 0.34 ms). docs/CPU_BACKEND.md.
FLAGS = ("-O3", "-march=native", "-mprefer-vector-width=512", "-funroll-loops", "-fvariable-expansion-in-unroller",
         "-fopenmp", "-fno-math-errno", "-fno-trapping-math", "-std=c++17", "-shared", "-fPIC", "-w")


def compiler_path() -> str:
    """The compiler to run (config.cpu_cxx, looked up on PATH), or '' when there is none."""
    name = config.cpu_cxx
    return shutil.which(name) or (name if os.path.isabs(name) and os.access(name, os.X_OK) else "")


@functools.lru_cache(maxsize=None)
def _version(path: str) -> str:
    try:
        out = subprocess.run([path, "--version"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.SubprocessError) as exc:
        return f"error: {exc}"
    return out.stdout.splitlines()[0] if out.returncode == 0 and out.stdout else f"error: exit {out.returncode}"


@functools.lru_cache(maxsize=None)
def cpu_identity() -> str:
    """Model and feature flags of this CPU (part of the cache key, because of -march=native)."""
    wanted = []
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith(("model name", "flags")):
                    wanted.append(line.strip())
                if len(wanted) == 2:
                    break
    except OSError:
        pass
    return "\n".join(wanted) or platform.processor() or platform.machine()


def why_unavailable() -> str:
    """'' when C++ kernels can be built here, else why not (one line)."""
    path = compiler_path()
    if not path:
        return f"no C++ compiler ({config.cpu_cxx!r} not found; set TERRA_DYN_CXX)"
    version = _version(path)
    if version.startswith("error"):
        return f"the C++ compiler {path} does not run ({version})"
    return ""


class CompileError(RuntimeError):
    pass


class LibraryCache:
    def __init__(self, directory: str):
        self.directory = os.path.join(directory, "cpu_kernels")
        self.memory = {}
        self.lock = threading.Lock()
        self.stats = {"memory_hits": 0, "disk_hits": 0, "compiles": 0}
        self.vector_math = None  # does this machine's libmvec serve our declarations?

    def __repr__(self):
        return f"LibraryCache({self.directory!r}, {len(self.memory)} loaded, {self.stats})"

    def key(self, text: str, libs=()) -> str:
        digest = hashlib.sha256()
        for part in (text, _version(compiler_path()), " ".join(FLAGS + tuple(libs)), cpu_identity()):
            digest.update(part.encode())
            digest.update(b"\0")
        return digest.hexdigest()[:32]

    def build(self, text: str, hint: str, libs=()) -> ctypes.CDLL:
        """The loaded library for C++ `text`, compiling it unless memory or disk has it."""
        reason = why_unavailable()
        if reason:
            raise CompileError(reason)
        key = self.key(text, libs)
        with self.lock:
            if key in self.memory:
                self.stats["memory_hits"] += 1
                return self.memory[key]
            path = os.path.join(self.directory, f"{hint}_{key}.so")
            if os.path.exists(path):
                self.stats["disk_hits"] += 1
            else:
                self._compile(text, path, libs)
                self.stats["compiles"] += 1
            library = ctypes.CDLL(path)
            self.memory[key] = library
            return library

    def _compile(self, text, path, libs):
        os.makedirs(self.directory, exist_ok=True)
        fd, tmp_so = tempfile.mkstemp(dir=self.directory, prefix=".tmp-", suffix=".so")
        os.close(fd)
        src = tmp_so[:-3] + ".cpp"
        try:
            with open(src, "w") as f:
                f.write(text)
            cmd = [compiler_path(), *FLAGS, src, "-o", tmp_so, *libs]
            done = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
            if done.returncode != 0:
                raise CompileError(f"{' '.join(cmd[:2])} ... failed: {done.stderr.strip()[-2000:]}")
            os.replace(src, path[:-3] + ".cpp")
            os.replace(tmp_so, path)
        finally:
            for leftover in (src, tmp_so):
                if os.path.exists(leftover):
                    os.unlink(leftover)

    def build_module(self, kernels: str, hint: str) -> ctypes.CDLL:
        """The library of generated kernel functions `kernels`: the prelude and vector
        math declarations are added here. The first module tries libmvec (vector expf...);
        where that fails to build or load but scalar libm works, later modules skip it."""
        if self.vector_math is not False:
            try:
                library = self.build(PRELUDE + math_declarations(True) + kernels, hint, ("-lmvec",))
                self.vector_math = True
                return library
            except (CompileError, OSError):
                if self.vector_math:
                    raise  # libmvec worked before: this error is the module's own
        library = self.build(PRELUDE + math_declarations(False) + kernels, hint)
        self.vector_math = False  # scalar libm calls: slower, same results
        return library

    def build_module_async(self, kernels: str, hint: str):
        """build_module's library at once when memory or disk has it (or no compiler runs
        here: its error comes at once too), else a PendingBuild compiling it in the background."""
        vector = self.vector_math is not False  # the variant build_module tries first
        key = self.key(PRELUDE + math_declarations(vector) + kernels, ("-lmvec",) if vector else ())
        if key in self.memory or os.path.exists(os.path.join(self.directory, f"{hint}_{key}.so")) or why_unavailable():
            return self.build_module(kernels, hint)
        return PendingBuild(lambda: self.build_module(kernels, hint))


class PendingBuild:
    """A module compiling in a background thread: `done()` polls, `result()` waits and returns
    the library or raises the build's error."""

    def __init__(self, build):
        self._library = self._error = None
        self._thread = threading.Thread(target=self._run, args=(build,), name="terra_dyn cpu build")
        with _pending_lock:
            _pending.add(self)
        self._thread.start()

    def _run(self, build):
        try:
            self._library = build()
        except BaseException as exc:  # noqa: BLE001 (raised again by result(), in the caller's thread)
            self._error = exc
        finally:
            with _pending_lock:
                _pending.discard(self)

    def done(self) -> bool:
        return not self._thread.is_alive()

    def result(self):
        self._thread.join()
        if self._error is not None:
            raise self._error
        return self._library


_pending = set()
_pending_lock = threading.Lock()


def wait_for_pending():
    """Join every background build still running (benchmarks, tests)."""
    with _pending_lock:
        builds = list(_pending)
    for build in builds:
        build._thread.join()


_caches = {}


def library_cache(directory: str = None) -> LibraryCache:
    """The process-wide cache for `directory` (default: terra_dyn.config.cache_dir)."""
    directory = directory or config.cache_dir
    if directory not in _caches:
        _caches[directory] = LibraryCache(directory)
    return _caches[directory]
