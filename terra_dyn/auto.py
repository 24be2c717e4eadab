"""Zero code change: `TERRA_DYN=1 python script.py` optimizes the script's own functions.

A one-line `.pth` startup file in site-packages (scripts/terra_dyn_auto.pth, installed by
`pip install .` and by scripts/setup.sh) calls `install_from_env()` only when TERRA_DYN is
set to something other than "", 0, false, no or off; otherwise it imports nothing:

    python startup -> site.py -> terra_dyn_auto.pth -> (TERRA_DYN on?) -> install_from_env()
        -> enable(backend=TERRA_DYN_BACKEND, strict=TERRA_DYN_STRICT)
             hook on for the main thread, callback = entry_point_filter(make_callback(...))
        -> atexit: hook off; write the report to TERRA_DYN_REPORT (if set; sampled while
           the script runs; a process started by it writes `<name>.<pid>.json`)

Entry points are the script's own code: a frame is handed to the translator only if its
file is not in the standard library, site-packages/dist-packages, torch or terra_dyn (those
are inlined when an optimized user function calls them), and it is a function frame (module
and class bodies run once and keep their locals in a dict). `terra-dyn report script.py`
uses the same `enable()` so that both modes pick the same entry points. Example:

    $ TERRA_DYN=1 TERRA_DYN_REPORT=/tmp/r.json python examples/train_loop.py
"""
import atexit
import inspect
import os
import sys
import sysconfig
import time
import types

_start = time.perf_counter()
_installed = False  # the .pth may run twice in a venv (lib64 -> lib symlink)


def _library_dirs():
    """Directories whose code is never an entry point."""
    paths = sysconfig.get_paths()
    dirs = {paths.get(key) for key in ("stdlib", "platstdlib", "purelib", "platlib")}
    dirs.add(os.path.dirname(os.__file__))  # the base interpreter's stdlib, also inside a venv
    import torch  # an editable or source build of torch may live outside site-packages

    import terra_dyn
    for module in (torch, terra_dyn):
        dirs.add(os.path.dirname(module.__file__))
    return tuple(os.path.realpath(d) + os.sep for d in dirs if d)


_FUNCTION_FRAME = inspect.CO_OPTIMIZED | inspect.CO_NEWLOCALS
_PSEUDO_FILES_OF_MAIN = ("<string>", "<stdin>")  # python -c / an interactive session


class EntryPointFilter:
    """Decides, once per file, whether frames of that file are the user's own code."""

    def __init__(self, library_dirs=None):
        self.library_dirs = library_dirs if library_dirs is not None else _library_dirs()
        self._by_file = {}

    def is_user_file(self, filename: str) -> bool:
        known = self._by_file.get(filename)
        if known is None:
            known = self._classify(filename)
            self._by_file[filename] = known
        return known

    def _classify(self, filename):
        if filename.startswith("<"):  # <frozen importlib._bootstrap>, namedtuple's exec, ...
            return None  # decided per frame: see is_entry_point
        path = os.path.realpath(filename) if os.path.isabs(filename) else os.path.abspath(filename)
        parts = path.split(os.sep)
        if "site-packages" in parts or "dist-packages" in parts:
            return False
        return not path.startswith(self.library_dirs)

    def is_entry_point(self, frame: types.FrameType) -> bool:
        code = frame.f_code
        if code.co_flags & _FUNCTION_FRAME != _FUNCTION_FRAME:
            return False
        user = self.is_user_file(code.co_filename)
        if user is None:  # code made by exec: the script's own only when run as __main__
            return code.co_filename in _PSEUDO_FILES_OF_MAIN and frame.f_globals.get("__name__") == "__main__"
        return user

    def __repr__(self):
        return f"<EntryPointFilter: {len(self.library_dirs)} library dirs, {len(self._by_file)} files seen>"


def make_entry_point_callback(backend="auto", strict=False, entry_filter=None):
    """The translator's callback, called only for the script's own function frames."""
    from . import _C, convert_frame

    translate = convert_frame.make_callback(backend=backend, fullgraph=False, strict=strict)
    entry_filter = entry_filter or EntryPointFilter()
    skip = _C.SKIP

    def callback(frame):
        if not entry_filter.is_entry_point(frame):
            return skip
        return translate(frame)

    callback.entry_filter = entry_filter
    return callback


def _set_eval_frame(callback):
    from . import eval_frame

    setter = getattr(eval_frame, "set_eval_frame", None)
    if setter is None:  # the hook glue re-exports _C's setter; keep working if it does not
        from . import _C
        setter = _C.set_eval_frame
    return setter(callback)


def enable(backend=None, strict=None):
    """Turn the hook on for the calling thread with the entry-point callback.

    Returns the previous callback (pass it to `disable` to restore)."""
    from . import config

    backend = backend or config.backend
    strict = config.strict if strict is None else strict
    return _set_eval_frame(make_entry_point_callback(backend=backend, strict=strict))


def disable(previous=None):
    """Turn the hook off for the calling thread (or restore `previous`)."""
    _set_eval_frame(previous)


_OWNER_ENV = "TERRA_DYN_REPORT_OWNER"  # pid of the process that writes TERRA_DYN_REPORT itself
_sampler = None


def report_path_for_this_process(path, environ=os.environ, pid=None):
    """TERRA_DYN_REPORT for the first process; `<name>.<pid>.json` for every process it
    starts (multiprocessing spawn or fork, subprocesses), so none overwrites another's."""
    pid = pid or os.getpid()
    owner = environ.get(_OWNER_ENV)
    if owner is None:
        environ[_OWNER_ENV] = str(pid)  # inherited by children
        return path
    if owner == str(pid):
        return path
    stem, ext = os.path.splitext(path)
    return f"{stem}.{pid}{ext or '.json'}"


def write_report(path):
    """Write the process-wide report as JSON to `path` (TERRA_DYN_REPORT)."""
    from . import report

    result = report.global_report()
    result.title = " ".join(sys.argv)
    result.wall_seconds = time.perf_counter() - _start
    result.started = _start
    if _sampler is not None:
        result.add_samples(_sampler.seconds())
    text = result.dumps() + "\n"  # all of it first: a worker killed meanwhile leaves no half file
    with open(path, "w") as f:
        f.write(text)


def _stop_at_exit():
    """First thing at exit: hook and sampler off. The rest of shutdown (weakref callbacks,
    logging's handler cleanup) is not the user's program, and module globals are being
    cleared, so nothing may be translated any more."""
    disable()
    if _sampler is not None:
        _sampler.stop()


def _write_report_at_exit(path):
    _stop_at_exit()
    try:
        write_report(path)
    except Exception as exc:  # never turn a successful run into a failed exit
        print(f"terra_dyn: could not write the report to {path}: {exc}", file=sys.stderr)


def install_from_env():
    """Called by the .pth file when TERRA_DYN is on. Idempotent."""
    global _installed
    if _installed:
        return
    _installed = True
    try:
        from . import config
        enable(backend=config.backend, strict=config.strict)
    except Exception as exc:
        # A broken install must not stop the user's script: it runs as plain Python.
        print(f"terra_dyn: TERRA_DYN is set but terra_dyn could not start ({type(exc).__name__}: {exc}); "
              "running without it", file=sys.stderr)
        return
    if config.report_path:
        global _sampler
        from .sampling import Sampler

        _sampler = Sampler().start()
        atexit.register(_write_report_at_exit, report_path_for_this_process(config.report_path))
    else:
        atexit.register(_stop_at_exit)


def env_enabled(environ=os.environ) -> bool:
    """The same test as the .pth line (and as config's bool knobs)."""
    return environ.get("TERRA_DYN", "").strip().lower() not in ("", "0", "false", "no", "off")
