"""Every terra_dyn knob, in one place: its env var, default and one-line meaning.

Read once at import from the environment; change at run time by assignment
(`terra_dyn.config.strict = True`). `describe()` prints the table (used by the CLI).

    >>> import terra_dyn
    >>> terra_dyn.config.recompile_limit
    8
"""
import os
import sys
from dataclasses import dataclass


@dataclass(frozen=True)
class Knob:
    name: str
    env: str
    default: object
    meaning: str

    def read(self):
        raw = os.environ.get(self.env)
        if raw is None:
            return self.default
        if isinstance(self.default, bool):
            return raw.strip().lower() not in ("", "0", "false", "no", "off")
        if isinstance(self.default, int):
            return int(raw)
        return raw


KNOBS = [
    Knob("enabled", "TERRA_DYN", False, "optimize an unmodified script's own functions (zero code change)"),
    Knob("backend", "TERRA_DYN_BACKEND", "auto", "default backend: auto, cpu, cudagraphs, interpreter, triton"),
    Knob("strict", "TERRA_DYN_STRICT", False, "raise instead of falling back to the original code"),
    Knob("report_path", "TERRA_DYN_REPORT", "", "write the JSON report to this path at exit"),
    Knob("recompile_limit", "TERRA_DYN_RECOMPILE_LIMIT", 8, "translations kept per code object before running it eagerly"),
    Knob("rare_outcome_calls", "TERRA_DYN_RARE_OUTCOME_CALLS", 4,
         "a number branch's other outcome within this many calls of its last flip is translated; rarer runs as written"),
    Knob("verbose", "TERRA_DYN_VERBOSE", False,
         "log each graph, break, recompile and fallback to stderr (= TERRA_DYN_LOGS=graphs,breaks,recompiles,fallbacks)"),
    Knob("logs", "TERRA_DYN_LOGS", "",
         "live log categories to print to stderr: graphs,breaks,recompiles,guards,code,kernels,fallbacks or all"),
    Knob("print_kernels", "TERRA_DYN_PRINT_KERNELS", False, "print generated Triton and C++ kernel source"),
    Knob("cpu_cxx", "TERRA_DYN_CXX", "g++", "C++ compiler of the cpu backend's kernels (name on PATH or a path)"),
    Knob("cpu_async_compile", "TERRA_DYN_CPU_ASYNC", True,
         "cpu backend (by name or auto): g++ builds a graph's kernels in the background while its calls run eagerly"),
    Knob("cpu_min_elements", "TERRA_DYN_CPU_MIN_ELEMENTS", 4096,
         "cpu backend: auto skips graphs without a tensor this big (eager is as fast); 0: every group a kernel"),
    Knob("guard_snapshots", "TERRA_DYN_GUARD_SNAPSHOTS", True,
         "check facts about a module pinned by identity in C on the module (translate/guard_snapshot.py)"),
    Knob("guard_paths", "TERRA_DYN_GUARD_PATHS", True,
         "check guard facts along attribute / item chains as one tree in C (translate/guard_paths.py)"),
    Knob("direct_calls", "TERRA_DYN_DIRECT_CALLS", True,
         "a cache hit whose code only calls its graph calls the graph from C, without a Python frame"),
    Knob("nested_breaks", "TERRA_DYN_NESTED_BREAKS", True,
         "a break inside inlined callees stays there: callers are not split at their calls"),
    Knob("slow_guards", "TERRA_DYN_SLOW_GUARDS", False, "check tensor guards through the Python API, not the C++ fast path (read by _C)"),
    Knob("cache_dir", "TERRA_DYN_CACHE_DIR", os.path.join(os.path.expanduser("~"), ".cache", "terra_dyn"),
         "on-disk kernel cache directory"),
]

_module = sys.modules[__name__]
for _knob in KNOBS:
    setattr(_module, _knob.name, _knob.read())


def describe(width=80) -> str:
    """Every knob with its env var, current value and meaning, within `width` columns."""
    import textwrap

    rows = []
    for knob in KNOBS:
        value = getattr(_module, knob.name)
        rows.append(f"{knob.env}   (terra_dyn.config.{knob.name})")
        for text in (f"= {value!r}", knob.meaning):
            rows += textwrap.wrap(text, width, initial_indent="    ", subsequent_indent="      ",
                                  break_on_hyphens=False)
    return "\n".join(rows)
