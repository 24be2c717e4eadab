"""Generated kernels, cached in memory per process and on disk across processes.

    cache = kernel_cache()                 # one per process, rooted at config.cache_dir
    fn = cache.load(source, interpret)     # a triton JITFunction (or InterpretedFunction)

Key: sha256 of the kernel module text, the Triton version and the target ("interpreter" or
"cuda:sm_90"), so a Triton upgrade or another GPU never reuses a stale entry. On disk:

    <cache_dir>/triton_kernels/<name>_<key>.py      the module (Triton needs a real file to
                                                     read the kernel's source)
    <cache_dir>/triton_kernels/<name>_<key>.json     the launch config chosen by autotuning
    <cache_dir>/triton/                              Triton's own binary cache (TRITON_CACHE_DIR,
                                                     unless the user set it), so a second
                                                     process skips PTX/cubin compilation too

Files are written to a temporary name and moved into place with os.replace, so concurrent
processes never see half a file. `stats` counts memory hits, disk hits and writes.
"""
import hashlib
import importlib.util
import json
import os
import sys
import tempfile

from .codegen import KernelSource, module_text


def _triton_version():
    import triton
    return triton.__version__


def atomic_write(path: str, text: str):
    """Write `text` to `path` so that readers see the old file or the whole new one."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=os.path.dirname(path), prefix=".tmp-", suffix=os.path.basename(path))
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


class KernelCache:
    def __init__(self, directory: str):
        self.directory = directory
        self.kernel_dir = os.path.join(directory, "triton_kernels")
        self.memory = {}
        self.stats = {"memory_hits": 0, "disk_hits": 0, "writes": 0}

    def __repr__(self):
        return f"KernelCache({self.directory!r}, {len(self.memory)} in memory, {self.stats})"

    def key(self, source: KernelSource, target: str) -> str:
        digest = hashlib.sha256()
        for part in (module_text(source), _triton_version(), target):
            digest.update(part.encode())
            digest.update(b"\0")
        return digest.hexdigest()[:32]

    def path(self, source: KernelSource, target: str, suffix=".py") -> str:
        return os.path.join(self.kernel_dir, f"{source.name}_{self.key(source, target)}{suffix}")

    def module_path(self, source: KernelSource, target: str) -> str:
        """The cached module file for `source`, written if missing (counts a disk hit or a write)."""
        path = self.path(source, target)
        text = module_text(source)
        try:
            with open(path) as f:
                if f.read() == text:
                    self.stats["disk_hits"] += 1
                    return path
        except OSError:
            pass
        atomic_write(path, text)
        self.stats["writes"] += 1
        return path

    def load(self, source: KernelSource, interpret: bool, target: str = None):
        """The kernel function of `source`, loaded from the disk cache (and kept in memory)."""
        target = target or ("interpreter" if interpret else "cuda")
        key = (self.key(source, target), interpret)
        if key in self.memory:
            self.stats["memory_hits"] += 1
            return self.memory[key]
        if not interpret:
            os.environ.setdefault("TRITON_CACHE_DIR", os.path.join(self.directory, "triton"))
        module = load_module(self.module_path(source, target))
        fn = getattr(module, source.name)
        self.memory[key] = fn
        return fn

    def read_json(self, source, target, suffix):
        try:
            with open(self.path(source, target, suffix)) as f:
                return json.load(f)
        except (OSError, ValueError):
            return None

    def write_json(self, source, target, suffix, data):
        atomic_write(self.path(source, target, suffix), json.dumps(data, sort_keys=True))


def load_module(path: str):
    """Import a generated kernel module from its cache file."""
    name = "terra_dyn_kernel_" + os.path.splitext(os.path.basename(path))[0]
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # triton resolves the kernel's globals through its module
    spec.loader.exec_module(module)
    return module


_caches = {}


def kernel_cache(directory: str = None) -> KernelCache:
    """The process-wide cache for `directory` (default: terra_dyn.config.cache_dir)."""
    if directory is None:
        from ... import config
        directory = config.cache_dir
    if directory not in _caches:
        _caches[directory] = KernelCache(directory)
    return _caches[directory]
