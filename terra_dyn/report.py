"""What terra_dyn did and why: graphs, graph breaks, recompiles and time spent.

The translator and convert_frame *record*; explain(), the CLI and TERRA_DYN_REPORT *read*:

    convert_frame --record_graph/record_break/record_recompile/record_fallback--> Recorder
    explain(fn, *args) / `terra-dyn report script.py` / atexit JSON  <-- Recorder.report()

There is always a process-wide recorder; `recording()` installs a fresh one for a block
(explain uses it). Example:

    with recording() as rec:
        fast(x)
    print(rec.report())
"""
import contextlib
import dataclasses
import json
import threading
from dataclasses import dataclass, field
from typing import Any, List, Optional


@dataclass
class GraphRecord:
    """One captured graph: where it came from and what it holds."""

    code_name: str
    filename: str
    lineno: int
    op_count: int
    graph: Any = field(default=None, repr=False)  # torch.fx.GraphModule
    backend: str = ""
    translate_seconds: float = 0.0
    compile_seconds: float = 0.0
    note: str = ""  # e.g. why a backend fell back to the interpreter

    def __repr__(self):
        where = f"{self.filename}:{self.lineno}"
        return f"<graph {self.code_name} at {where}: {self.op_count} ops, backend={self.backend}>"

    def to_json(self):
        data = dataclasses.asdict(self)
        data["graph"] = str(self.graph.graph) if self.graph is not None else None
        return data


@dataclass
class GraphBreak:
    """A point where the graph was split and Python ran natively."""

    reason: str
    filename: str
    lineno: int
    source_line: str = ""
    user_stack: List[str] = field(default_factory=list)  # "file:line in func" outermost first
    code_name: str = ""

    def __repr__(self):
        return f"<break at {self.filename}:{self.lineno}: {self.reason}>"

    def to_json(self):
        return dataclasses.asdict(self)


@dataclass
class Recompile:
    """A new translation of a code object whose cached guards failed."""

    code_name: str
    filename: str
    lineno: int
    failed_guard: str

    def __repr__(self):
        return f"<recompile {self.code_name} ({self.filename}:{self.lineno}): {self.failed_guard}>"

    def to_json(self):
        return dataclasses.asdict(self)


@dataclass
class Fallback:
    """A frame that ran its original code because terra_dyn failed or gave up."""

    code_name: str
    filename: str
    lineno: int
    reason: str

    def __repr__(self):
        return f"<fallback {self.code_name} ({self.filename}:{self.lineno}): {self.reason}>"

    def to_json(self):
        return dataclasses.asdict(self)


@dataclass
class Report:
    graphs: List[GraphRecord] = field(default_factory=list)
    breaks: List[GraphBreak] = field(default_factory=list)
    recompiles: List[Recompile] = field(default_factory=list)
    fallbacks: List[Fallback] = field(default_factory=list)
    guards: List[str] = field(default_factory=list)  # readable guard descriptions

    @property
    def graph_count(self):
        return len(self.graphs)

    @property
    def break_count(self):
        return len(self.breaks)

    def to_json(self):
        return {
            "graphs": [g.to_json() for g in self.graphs],
            "breaks": [b.to_json() for b in self.breaks],
            "recompiles": [r.to_json() for r in self.recompiles],
            "fallbacks": [f.to_json() for f in self.fallbacks],
            "guards": list(self.guards),
        }

    def dumps(self):
        return json.dumps(self.to_json(), indent=2)

    def __str__(self):
        lines = [f"{len(self.graphs)} graph(s), {len(self.breaks)} break(s), "
                 f"{len(self.recompiles)} recompile(s), {len(self.fallbacks)} fallback(s)"]
        lines += [f"  {g!r}" for g in self.graphs]
        lines += [f"  {b!r}" for b in self.breaks]
        lines += [f"  {r!r}" for r in self.recompiles]
        lines += [f"  {f!r}" for f in self.fallbacks]
        return "\n".join(lines)


class Recorder:
    """Collects records; thread-safe appends."""

    def __init__(self):
        self._lock = threading.Lock()
        self._report = Report()

    def add(self, kind: str, record):
        with self._lock:
            getattr(self._report, kind).append(record)

    def report(self) -> Report:
        with self._lock:
            r = self._report
            return Report(list(r.graphs), list(r.breaks), list(r.recompiles), list(r.fallbacks), list(r.guards))


_global = Recorder()
_stack: List[Recorder] = []


def _targets():
    return [_global] + _stack


def record_graph(rec: GraphRecord):
    for r in _targets():
        r.add("graphs", rec)


def record_break(rec: GraphBreak):
    for r in _targets():
        r.add("breaks", rec)


def record_recompile(rec: Recompile):
    for r in _targets():
        r.add("recompiles", rec)


def record_fallback(rec: Fallback):
    for r in _targets():
        r.add("fallbacks", rec)


def record_guards(descriptions: List[str]):
    for r in _targets():
        r.add("guards", "\n".join(descriptions))


def global_report() -> Report:
    return _global.report()


def clear():
    global _global
    _global = Recorder()


@contextlib.contextmanager
def recording():
    """Collect the records made inside the block into a fresh Recorder."""
    rec = Recorder()
    _stack.append(rec)
    try:
        yield rec
    finally:
        _stack.remove(rec)
