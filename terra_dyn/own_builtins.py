"""terra_dyn's own modules read builtins from a snapshot taken when terra_dyn is imported.

A program may replace a builtin after importing terra_dyn (`builtins.len = ...`: a test
double, a shim, `mock.patch("builtins.len")`). Its own code must see the replacement, and the
translator guards and inlines it as it does any global. The translator's own code must not:
it folds `len(t)` of a constant tuple by calling len, and a `len` that answers for the program
(100 for one tuple) was folded into the graph as the builtin's answer, a silent wrong result;
a guard whose Python check called it failed on every call (100 translations, then eager).

Since Python 3.10 a function reads builtins from the `__builtins__` of the globals it was
created in, so each terra_dyn submodule is executed with `__builtins__` set to the snapshot
(a loader that differs from the standard one in that one line). The package's `__init__`
installs it before importing anything else of its own."""
import builtins
import importlib.machinery
import sys

SNAPSHOT = dict(builtins.__dict__)


class _SnapshotLoader(importlib.machinery.SourceFileLoader):
    def exec_module(self, module):
        module.__dict__["__builtins__"] = SNAPSHOT
        super().exec_module(module)


class _SnapshotFinder:
    """Finds terra_dyn's submodules as the path finder does, with the snapshot's loader."""

    def __init__(self, package):
        self.prefix = package + "."

    def find_spec(self, name, path=None, target=None):
        if not name.startswith(self.prefix):
            return None
        spec = importlib.machinery.PathFinder.find_spec(name, path, target)
        if spec is not None and type(spec.loader) is importlib.machinery.SourceFileLoader:
            spec.loader = _SnapshotLoader(spec.loader.name, spec.loader.path)
        return spec

    def invalidate_caches(self):
        pass


def install(package):
    if not any(isinstance(f, _SnapshotFinder) for f in sys.meta_path):
        sys.meta_path.insert(0, _SnapshotFinder(package))
