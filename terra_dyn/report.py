"""What terra_dyn did and why: the records (graphs, breaks, recompiles, fallbacks, translations).

The translator and convert_frame *record*; explain(), the CLI and TERRA_DYN_REPORT *read*:

    convert_frame --record_graph/_break/_recompile/_fallback/_as_written/_translation--> Recorder (+ a log line)
    explain(fn)(*args) / `terra-dyn report script.py` / atexit JSON  <-- Recorder.report()
    Report --report_views.frames()--> per user function and user line --> text / HTML / JSON

There is always a process-wide recorder; `recording()` installs a fresh one for a block
(explain uses it). Example:

    with recording() as rec:
        fast(x)
    print(rec.report())            # per user function: graphs, breaks by line, recompiles, time

Every record is also a log line of its category when that category is on (logs.py).
The JSON form (`Report.to_json`, `SCHEMA_VERSION`) is documented in docs/REPORT_SCHEMA.md.
"""
import contextlib
import json
import os
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Dict, List

from . import logs
from .attribution import short_path, source_line, user_location  # noqa: F401  (short_path: re-exported)

SCHEMA_VERSION = 3
WIDTH = 80


@dataclass
class GraphRecord:
    """One captured graph: where it came from and what it holds."""

    code_name: str
    filename: str
    lineno: int
    op_count: int
    graph: Any = field(default=None, repr=False)  # torch.fx.GraphModule (a str after from_json)
    backend: str = ""
    translate_seconds: float = 0.0
    compile_seconds: float = 0.0
    note: str = ""  # e.g. why a backend fell back to the interpreter

    def __repr__(self):
        return f"<graph {self.code_name} at {self.filename}:{self.lineno}: {self.op_count} ops, backend={self.backend}>"

    def graph_text(self) -> str:
        """The FX graph, node by node (`str(fx.Graph)`)."""
        graph = getattr(self.graph, "graph", self.graph)  # GraphModule -> fx.Graph
        return "" if graph is None else str(graph)

    def graph_code(self) -> str:
        """The graph as readable Python (the GraphModule's generated forward)."""
        code = getattr(self.graph, "code", None)
        if isinstance(code, str):
            return code.strip("\n")
        return self.graph if isinstance(self.graph, str) else ""

    def op_counts(self) -> Dict[str, int]:
        """{op name: how many}, most frequent first."""
        graph = getattr(self.graph, "graph", None)
        counts = {}
        for node in getattr(graph, "nodes", ()):
            if node.op in ("call_function", "call_method", "call_module"):
                name = node.target if isinstance(node.target, str) else getattr(node.target, "__name__", str(node.target))
                counts[name] = counts.get(name, 0) + 1
        return dict(sorted(counts.items(), key=lambda kv: -kv[1]))

    def to_json(self):
        # Not dataclasses.asdict: it would deep-copy the GraphModule.
        data = {f: getattr(self, f) for f in self.__dataclass_fields__}
        data["graph"] = self.graph_text() or (self.graph if isinstance(self.graph, str) else None)
        data["code"] = self.graph_code()
        data["op_counts"] = self.op_counts()
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

    def user_site(self):
        """(file, line, source line) of the user's own line this break happened under."""
        filename, lineno = user_location(self.filename, self.lineno, self.user_stack)
        if (filename, lineno) == (self.filename, self.lineno) and self.source_line:
            return filename, lineno, self.source_line
        return filename, lineno, source_line(filename, lineno)

    def to_json(self):
        return _fields(self)


@dataclass
class Recompile:
    """A new translation of a code object whose cached guards failed."""

    code_name: str
    filename: str
    lineno: int
    failed_guard: str  # the guard's own words (kept for debugging)
    changes: List[str] = field(default_factory=list)  # "x shape changed: (8, 16) -> (4, 16) (line 3)"
    variable: str = ""  # the first change's variable
    line: int = 0  # where that variable is first read

    def cause(self) -> str:
        return "; ".join(self.changes) or self.failed_guard

    def __repr__(self):
        return f"<recompile {self.code_name} ({self.filename}:{self.lineno}): {self.cause()}>"

    def to_json(self):
        return _fields(self)


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
        return _fields(self)


@dataclass
class Translation:
    """One translation of one code object, timed (translate + backend compile)."""

    code_name: str
    filename: str
    lineno: int
    seconds: float
    graphs: int = 0
    at: float = 0.0  # time.perf_counter() when it finished (the HTML timeline)

    def to_json(self):
        return _fields(self)


def _fields(record):
    return {f: (list(v) if isinstance(v, list) else v)
            for f, v in ((f, getattr(record, f)) for f in record.__dataclass_fields__)}


@dataclass
class Report:
    """Everything recorded during a run: the records, views over them (frames(),
    costliest_breaks(), summary()), text (render/str), HTML (to_html) and JSON."""

    graphs: List[GraphRecord] = field(default_factory=list)
    breaks: List[GraphBreak] = field(default_factory=list)
    recompiles: List[Recompile] = field(default_factory=list)
    fallbacks: List[Fallback] = field(default_factory=list)
    guards: List[str] = field(default_factory=list)  # readable guard descriptions
    translations: List[Translation] = field(default_factory=list)
    # functions run as written once a recompile showed translating them gains nothing
    as_written: List[Fallback] = field(default_factory=list)
    title: str = ""  # what ran: "explain(step)" or the script's command line
    wall_seconds: float = 0.0  # the whole run, translation included
    # measured by sampling (sampling.py): "file:line" -> {"python"|"graph"|"translating": s}
    line_seconds: Dict[str, Dict[str, float]] = field(default_factory=dict)
    pid: int = 0
    started: float = 0.0  # time.perf_counter() when the run began (0: unknown)

    @property
    def graph_count(self):
        return len(self.graphs)

    @property
    def break_count(self):
        return len(self.breaks)

    @property
    def op_count(self):
        return sum(g.op_count for g in self.graphs)

    @property
    def translate_seconds(self):
        if self.translations:
            return sum(t.seconds for t in self.translations) - self.compile_seconds
        return sum(g.translate_seconds for g in self.graphs)

    @property
    def compile_seconds(self):
        return sum(g.compile_seconds for g in self.graphs)

    def sampled(self) -> bool:
        return bool(self.line_seconds)

    def seconds_in(self, state: str) -> float:
        return sum(s.get(state, 0.0) for s in self.line_seconds.values())

    def frames(self):
        from .report_views import frames

        return frames(self)

    def break_sites(self):
        return [site for frame in self.frames() for site in frame.break_sites]

    def costliest_breaks(self, n=5):
        """The break sites to remove first: most time outside graphs at their line when
        the run was sampled, else count x ops in their function's graphs."""
        sites = sorted(self.break_sites(), key=lambda s: (-s.seconds, -s.cost, -s.count, s.filename, s.lineno))
        return sites[:n]

    def summary(self):
        return {
            "graphs": self.graph_count, "ops": self.op_count, "breaks": self.break_count,
            "break_sites": len(self.break_sites()), "recompiles": len(self.recompiles),
            "fallbacks": len(self.fallbacks), "as_written": len(self.as_written), "translate_seconds": self.translate_seconds,
            "compile_seconds": self.compile_seconds, "wall_seconds": self.wall_seconds,
            "graph_seconds": self.seconds_in("graph"), "python_seconds": self.seconds_in("python"),
            "sampled": self.sampled(),
        }

    def to_json(self):
        return {
            "schema_version": SCHEMA_VERSION,
            "title": self.title,
            "pid": self.pid,
            "started": self.started,
            "summary": self.summary(),
            "graphs": [g.to_json() for g in self.graphs],
            "breaks": [b.to_json() for b in self.breaks],
            "recompiles": [r.to_json() for r in self.recompiles],
            "fallbacks": [f.to_json() for f in self.fallbacks],
            "translations": [t.to_json() for t in self.translations],
            "as_written": [f.to_json() for f in self.as_written],
            "guards": list(self.guards),
            "line_seconds": self.line_seconds,
            "frames": [f.to_json() for f in self.frames()],
            "costliest_breaks": [s.to_json() for s in self.costliest_breaks()],
        }

    @classmethod
    def from_json(cls, data) -> "Report":
        """Inverse of to_json (graphs come back as their printed text)."""
        def graph(g):
            g = {k: v for k, v in g.items() if k not in ("code", "op_counts")}
            return GraphRecord(**g)

        return cls(
            graphs=[graph(g) for g in data.get("graphs", [])],
            breaks=[GraphBreak(**b) for b in data.get("breaks", [])],
            recompiles=[Recompile(**r) for r in data.get("recompiles", [])],
            fallbacks=[Fallback(**f) for f in data.get("fallbacks", [])],
            translations=[Translation(**t) for t in data.get("translations", [])],
            as_written=[Fallback(**f) for f in data.get("as_written", [])],
            guards=list(data.get("guards", [])),
            title=data.get("title", ""),
            wall_seconds=data.get("summary", {}).get("wall_seconds", 0.0),
            line_seconds=dict(data.get("line_seconds", {})),
            pid=data.get("pid", 0),
            started=data.get("started", 0.0),
        )

    def dumps(self):
        return json.dumps(self.to_json(), indent=2, default=str)

    def render(self, width=WIDTH, verbose=False) -> str:
        """The text report; `verbose` adds each graph's code and the guards."""
        from .report_text import render

        return render(self, width, verbose)

    def to_html(self) -> str:
        """One self-contained HTML page (report_html.py)."""
        from .report_html import render_html

        return render_html(self)

    def add_samples(self, seconds_by_line):
        """Merge a sampler's {(file, line): {state: s}} into `line_seconds`."""
        for (filename, lineno), states in seconds_by_line.items():
            slot = self.line_seconds.setdefault(f"{filename}:{lineno}", {})
            for state, s in states.items():
                slot[state] = slot.get(state, 0.0) + s

    def __str__(self):
        return self.render()

    def __repr__(self):
        title = f" {self.title}" if self.title else ""
        return (f"<Report{title}: {self.graph_count} graphs, {self.break_count} breaks, "
                f"{len(self.recompiles)} recompiles, {len(self.fallbacks)} fallbacks>")


# --------------------------------------------------------------------------- recording


class Recorder:
    """Collects records; thread-safe appends. `limit`: keep only the newest `limit` records
    of each kind (the process-wide recorder: a program that makes functions in a loop must
    not grow without bound; each graph record holds its GraphModule)."""

    def __init__(self, limit=None):
        self._lock = threading.Lock()
        self._report = Report()
        self.limit = limit

    def add(self, kind: str, record):
        with self._lock:
            items = getattr(self._report, kind)
            items.append(record)
            if self.limit is not None and len(items) > self.limit:
                del items[0]

    def report(self) -> Report:
        with self._lock:
            r = self._report
            return Report(list(r.graphs), list(r.breaks), list(r.recompiles), list(r.fallbacks), list(r.guards),
                          list(r.translations), as_written=list(r.as_written), pid=os.getpid())


GLOBAL_LIMIT = 1000  # records of each kind kept by the process-wide recorder
_global = Recorder(GLOBAL_LIMIT)
_stack: List[Recorder] = []


def _add(kind, record):
    _global.add(kind, record)
    for r in list(_stack):
        r.add(kind, record)


def record_graph(rec: GraphRecord):
    _add("graphs", rec)
    logs.graph(rec)


def record_break(rec: GraphBreak):
    _add("breaks", rec)
    logs.graph_break(rec)


def record_recompile(rec: Recompile):
    _add("recompiles", rec)
    logs.recompile(rec)


def record_fallback(rec: Fallback):
    _add("fallbacks", rec)
    logs.fallback(rec)


def record_as_written(rec: Fallback):
    """A function terra_dyn chose to run as written from now on: translating it gains nothing."""
    _add("as_written", rec)
    logs.fallback(rec)


def record_guards(descriptions: List[str]):
    _add("guards", "\n".join(descriptions))
    logs.guards(descriptions)


def record_translation(code, result):
    """One finished translation of `code` (convert_frame): its time, and its code for the log."""
    _add("translations", Translation(code.co_name, code.co_filename, code.co_firstlineno,
                                     result.translate_seconds + result.compile_seconds, len(result.graphs),
                                     time.perf_counter()))
    logs.generated_code(code, result.code)


def global_report() -> Report:
    return _global.report()


def clear():
    global _global
    _global = Recorder(GLOBAL_LIMIT)


@contextlib.contextmanager
def recording():
    """Collect the records made inside the block into a fresh Recorder."""
    rec = Recorder()
    _stack.append(rec)
    try:
        yield rec
    finally:
        _stack.remove(rec)
