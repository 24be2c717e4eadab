"""What terra_dyn did and why: graphs, graph breaks, recompiles and time spent.

The translator and convert_frame *record*; explain(), the CLI and TERRA_DYN_REPORT *read*:

    convert_frame --record_graph/record_break/record_recompile/record_fallback--> Recorder
    explain(fn, *args) / `terra-dyn report script.py` / atexit JSON  <-- Recorder.report()
    Report --frames()--> FrameSummary (graphs, BreakSites, recompiles) --render()--> text

There is always a process-wide recorder; `recording()` installs a fresh one for a block
(explain uses it). Example:

    with recording() as rec:
        fast(x)
    print(rec.report())            # per frame: graphs, breaks by reason, recompiles, time

A break's *cost* ranks what to fix first: how often it was recorded times the ops in the
graphs of its frame (the tensor work it splits); the ranking names the innermost line of
the user's own code (a break deep in a library names the user's call). Text fits 80 columns.
"""
import contextlib
import json
import os
import textwrap
import threading
from dataclasses import dataclass, field
from typing import Any, List

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
        where = f"{self.filename}:{self.lineno}"
        return f"<graph {self.code_name} at {where}: {self.op_count} ops, backend={self.backend}>"

    def graph_text(self) -> str:
        graph = getattr(self.graph, "graph", self.graph)  # GraphModule -> fx.Graph
        return "" if graph is None else str(graph)

    def to_json(self):
        # Not dataclasses.asdict: it would deep-copy the GraphModule.
        data = {f: getattr(self, f) for f in self.__dataclass_fields__}
        data["graph"] = self.graph_text() or None
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
        return _fields(self)


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


def _fields(record):
    return {f: (list(v) if isinstance(v, list) else v)
            for f, v in ((f, getattr(record, f)) for f in record.__dataclass_fields__)}


# --------------------------------------------------------------------------- summaries


@dataclass
class BreakSite:
    """Every break recorded at one file:line for one reason."""

    reason: str
    filename: str
    lineno: int
    source_line: str
    count: int
    ops_around: int  # ops in the graphs of the frame the break splits
    user_stack: List[str] = field(default_factory=list)
    frame: str = ""

    @property
    def cost(self) -> int:
        return self.count * self.ops_around

    @property
    def user_location(self):
        """(file, line) of the innermost user-code entry of the stack: what the user can edit."""
        for entry in reversed(self.user_stack):
            filename, line = _stack_location(entry)
            if not _is_library_file(filename):
                return filename, line
        return self.filename, self.lineno

    def __repr__(self):
        return f"<{self.count}x break at {self.filename}:{self.lineno}: {self.reason} (cost {self.cost})>"

    def to_json(self):
        data = _fields(self)
        data["cost"] = self.cost
        data["user_location"] = "%s:%d" % self.user_location
        return data


class _GraphTotals:
    """Totals over `self.graphs`, shared by a frame's summary and the whole report."""

    @property
    def op_count(self):
        return sum(g.op_count for g in self.graphs)

    @property
    def translate_seconds(self):
        return sum(g.translate_seconds for g in self.graphs)

    @property
    def compile_seconds(self):
        return sum(g.compile_seconds for g in self.graphs)


@dataclass
class FrameSummary(_GraphTotals):
    """What happened to one function's frames (its resume functions included)."""

    name: str
    filename: str
    lineno: int
    graphs: List[GraphRecord] = field(default_factory=list)
    break_sites: List[BreakSite] = field(default_factory=list)
    recompiles: List[Recompile] = field(default_factory=list)
    fallbacks: List[Fallback] = field(default_factory=list)

    def __repr__(self):
        return (f"<frame {self.name} at {self.filename}:{self.lineno}: {len(self.graphs)} graphs, "
                f"{sum(s.count for s in self.break_sites)} breaks>")

    def to_json(self):
        return {
            "name": self.name, "filename": self.filename, "lineno": self.lineno,
            "graph_ops": [g.op_count for g in self.graphs],
            "breaks": [s.to_json() for s in self.break_sites],
            "recompiles": [r.to_json() for r in self.recompiles],
            "fallbacks": [f.to_json() for f in self.fallbacks],
            "translate_seconds": self.translate_seconds, "compile_seconds": self.compile_seconds,
        }


def frame_name(code_name: str) -> str:
    """The user's function a code object belongs to: resume functions count as their frame.

    The translator names continuation code objects after the function they continue
    (e.g. `__resume_at_42_train_step` or `train_step.<resume@42>`)."""
    name = code_name
    if name.startswith("__resume"):
        rest = name[len("__resume"):].lstrip("_")
        parts = rest.split("_")
        # __resume_at_<offset>_<name>: drop "at" and the numbers
        while parts and (parts[0] == "at" or parts[0].isdigit()):
            parts.pop(0)
        name = "_".join(parts) or code_name
    for marker in (".<resume", "<resume"):
        if marker in name:
            name = name.split(marker)[0] or code_name
    return name


@dataclass
class Report(_GraphTotals):
    """Everything recorded during a run: the records, then views over them (frames(),
    costliest_breaks(), summary()), text (render/str) and JSON (to_json/from_json)."""

    graphs: List[GraphRecord] = field(default_factory=list)
    breaks: List[GraphBreak] = field(default_factory=list)
    recompiles: List[Recompile] = field(default_factory=list)
    fallbacks: List[Fallback] = field(default_factory=list)
    guards: List[str] = field(default_factory=list)  # readable guard descriptions
    title: str = ""  # what ran: "explain(step)" or the script's command line
    wall_seconds: float = 0.0  # the whole run, translation included

    @property
    def graph_count(self):
        return len(self.graphs)

    @property
    def break_count(self):
        return len(self.breaks)

    def frames(self) -> List[FrameSummary]:
        """Records grouped by the user function they belong to, in order of appearance.

        Graphs, recompiles and fallbacks carry their code's first line, so two functions of
        one name in one file (two classes' `forward`) stay apart; a break belongs to the
        function of that name whose first line is the closest above the break."""
        frames = {}

        def frame_at(code_name, filename, first_line):
            key = (filename, frame_name(code_name), first_line)
            if key not in frames:
                frames[key] = FrameSummary(key[1], filename, first_line)
            return frames[key]

        def frame_around(code_name, filename, line):
            name = frame_name(code_name)
            above = [k for k in frames if k[:2] == (filename, name) and k[2] <= line]
            return frames[max(above, key=lambda k: k[2])] if above else frame_at(code_name, filename, line)

        for g in self.graphs:
            frame_at(g.code_name, g.filename, g.lineno).graphs.append(g)
        for r in self.recompiles:
            frame_at(r.code_name, r.filename, r.lineno).recompiles.append(r)
        for f in self.fallbacks:
            frame_at(f.code_name, f.filename, f.lineno).fallbacks.append(f)
        sites = {}
        for b in self.breaks:
            # A break inside an inlined callee belongs to the frame being translated: the
            # outermost entry of its user stack ("file:line in func").
            frame_file, frame_line = _stack_location(b.user_stack[0]) if b.user_stack else (b.filename, b.lineno)
            frame = frame_around(b.code_name or "<unknown>", frame_file, frame_line)
            key = (id(frame), b.filename, b.lineno, b.reason)
            if key not in sites:
                sites[key] = BreakSite(b.reason, b.filename, b.lineno, b.source_line, 0, 0,
                                       list(b.user_stack), frame.name)
                frame.break_sites.append(sites[key])
            sites[key].count += 1
        for frame in frames.values():
            for site in frame.break_sites:
                site.ops_around = frame.op_count
        return list(frames.values())

    def break_sites(self) -> List[BreakSite]:
        return [site for frame in self.frames() for site in frame.break_sites]

    def costliest_breaks(self, n=5) -> List[BreakSite]:
        """The break sites to remove first: highest count x ops around them."""
        sites = sorted(self.break_sites(), key=lambda s: (-s.cost, -s.count, s.filename, s.lineno))
        return sites[:n]

    def summary(self):
        return {
            "graphs": self.graph_count, "ops": self.op_count, "breaks": self.break_count,
            "break_sites": len(self.break_sites()), "recompiles": len(self.recompiles),
            "fallbacks": len(self.fallbacks), "translate_seconds": self.translate_seconds,
            "compile_seconds": self.compile_seconds, "wall_seconds": self.wall_seconds,
        }

    def to_json(self):
        return {
            "title": self.title,
            "summary": self.summary(),
            "graphs": [g.to_json() for g in self.graphs],
            "breaks": [b.to_json() for b in self.breaks],
            "recompiles": [r.to_json() for r in self.recompiles],
            "fallbacks": [f.to_json() for f in self.fallbacks],
            "guards": list(self.guards),
            "frames": [f.to_json() for f in self.frames()],
            "costliest_breaks": [s.to_json() for s in self.costliest_breaks()],
        }

    @classmethod
    def from_json(cls, data) -> "Report":
        """Inverse of to_json (graphs come back as their printed text)."""
        return cls(
            graphs=[GraphRecord(**g) for g in data.get("graphs", [])],
            breaks=[GraphBreak(**b) for b in data.get("breaks", [])],
            recompiles=[Recompile(**r) for r in data.get("recompiles", [])],
            fallbacks=[Fallback(**f) for f in data.get("fallbacks", [])],
            guards=list(data.get("guards", [])),
            title=data.get("title", ""),
            wall_seconds=data.get("summary", {}).get("wall_seconds", 0.0),
        )

    def dumps(self):
        return json.dumps(self.to_json(), indent=2, default=str)

    def render(self, width=WIDTH, verbose=False) -> str:
        """The text report; `verbose` adds each graph's FX code and the guards."""
        return _TextReport(self, width, verbose).render()

    def __str__(self):
        return self.render()

    def __repr__(self):
        title = f" {self.title}" if self.title else ""
        return (f"<Report{title}: {self.graph_count} graphs, {self.break_count} breaks, "
                f"{len(self.recompiles)} recompiles, {len(self.fallbacks)} fallbacks>")


_STDLIB_DIR = os.path.dirname(os.__file__) + os.sep


def _is_library_file(filename: str) -> bool:
    parts = filename.split(os.sep)
    return "site-packages" in parts or "dist-packages" in parts or filename.startswith(_STDLIB_DIR)


def _stack_location(entry: str):
    """"train.py:12 in step" -> ("train.py", 12)."""
    where = entry.rpartition(" in ")[0] or entry
    filename, _, line = where.rpartition(":")
    return (filename, int(line)) if filename and line.isdigit() else (entry, 0)


# --------------------------------------------------------------------------- text rendering


def short_path(filename: str) -> str:
    """A filename as short as still clear: relative to the working directory, or its tail."""
    if filename.startswith("<"):
        return filename
    try:
        rel = os.path.relpath(filename)
    except ValueError:
        rel = filename
    if not rel.startswith(".."):
        return rel
    parts = filename.split(os.sep)
    return os.sep.join(["..."] + parts[-2:]) if len(parts) > 3 else filename


def _short_stack_entry(entry: str) -> str:
    """"/long/path/train.py:12 in step" -> "train.py:12 in step"."""
    where, sep, func = entry.rpartition(" in ")
    filename, colon, line = (where if sep else entry).rpartition(":")
    if not colon:
        return entry
    return f"{short_path(filename)}:{line}" + (f" in {func}" if sep else "")


def _seconds(s: float) -> str:
    return f"{s * 1000:.0f} ms" if s < 1 else f"{s:.2f} s"


def _plural(n, word):
    return f"{n} {word}" + ("" if n == 1 else "s")


class _TextReport:
    """Lays a Report out in `width` columns: summary, costliest breaks, then each frame."""

    def __init__(self, report: Report, width: int, verbose: bool):
        self.report, self.width, self.verbose = report, width, verbose
        self.lines: List[str] = []

    def line(self, text="", indent=0, wrap=False):
        prefix = " " * indent
        room = max(self.width - indent, 20)
        if wrap and len(text) > room:
            # long guard descriptions: three lines unless verbose
            wrapped = textwrap.wrap(text, room, subsequent_indent="  ", max_lines=None if self.verbose else 3,
                                    placeholder=" ...")
            self.lines += [prefix + t for t in wrapped]
        else:
            self.lines.append(prefix + (text if len(text) <= room else text[: room - 3] + "..."))

    def render(self) -> str:
        r = self.report
        if r.title:
            self.line(f"terra_dyn report: {r.title}")
        self.line(f"{_plural(r.graph_count, 'graph')} ({r.op_count} ops), {_plural(r.break_count, 'break')} at "
                  f"{_plural(len(r.break_sites()), 'site')}, {_plural(len(r.recompiles), 'recompile')}, "
                  f"{_plural(len(r.fallbacks), 'fallback')}", wrap=True)
        timing = f"time: translating {_seconds(r.translate_seconds)}, compiling {_seconds(r.compile_seconds)}"
        if r.wall_seconds:
            timing += f", whole run {_seconds(r.wall_seconds)}"
        self.line(timing)
        self.costliest()
        frames = r.frames()  # frames that hold tensor work first, each group in order of appearance
        for frame in [f for f in frames if f.graphs] + [f for f in frames if not f.graphs]:
            self.frame(frame)
        if self.verbose and r.guards:
            self.line()
            self.line("Guards of each translation:")
            for i, text in enumerate(r.guards):
                self.line(f"[{i}]", 2)
                for g in text.splitlines():
                    self.line(g, 4)
        return "\n".join(self.lines)

    def costliest(self):
        sites = [s for s in self.report.costliest_breaks() if s.count]
        if not sites:
            return
        self.line()
        self.line("Costliest breaks (times recorded x ops in the frame's graphs):")
        for s in sites:
            filename, lineno = s.user_location
            self.line(f"{s.cost:>6}  {s.count}x{s.ops_around:<5} {short_path(filename)}:{lineno}  {s.reason}", 2)

    def frame(self, frame: FrameSummary):
        self.line()
        self.line(f"{frame.name}  ({short_path(frame.filename)}:{frame.lineno})")
        if frame.graphs:
            if len({g.lineno for g in frame.graphs}) > 1:
                ops = ", ".join(f"{g.op_count} ops from line {g.lineno}" for g in frame.graphs)
            else:
                ops = " + ".join(str(g.op_count) for g in frame.graphs) + " ops"
            self.line(f"graphs: {len(frame.graphs)} ({ops}); translating "
                      f"{_seconds(frame.translate_seconds)}, compiling {_seconds(frame.compile_seconds)}", 2, wrap=True)
            for g in frame.graphs:
                if g.note:
                    self.line(f"note: {g.note}", 4, wrap=True)
                if self.verbose and g.graph is not None:
                    self.line(f"graph at line {g.lineno} ({g.backend or 'backend ?'}):", 4)
                    for text in g.graph_text().splitlines():
                        self.line(text, 6)
        else:
            self.line("graphs: none", 2)
        by_reason = {}
        for site in frame.break_sites:
            by_reason.setdefault(site.reason, []).append(site)
        for reason, sites in by_reason.items():
            self.line(f"break x{sum(s.count for s in sites)}: {reason}", 2, wrap=True)
            for s in sites:
                where = f"line {s.lineno}" if s.filename == frame.filename else f"{short_path(s.filename)}:{s.lineno}"
                self.line(f"{where}: {s.source_line.strip()}", 6)
                if len(s.user_stack) > 1:  # inside an inlined callee: show how we got there
                    stack = s.user_stack
                    if len(stack) > 4 and not self.verbose:
                        stack = stack[:2] + [f"... {len(stack) - 3} more"] + stack[-1:]
                    for entry in stack:
                        self.line(f"from {_short_stack_entry(entry)}", 8)
        for guard, count in _counted(r.failed_guard for r in frame.recompiles):
            self.line(f"recompile{_times(count)}: {guard}", 2, wrap=True)
        for reason, count in _counted(f.reason for f in frame.fallbacks):
            self.line(f"fallback{_times(count)} (ran as plain Python): {reason}", 2, wrap=True)


def _counted(items):
    """(item, count) in order of first appearance."""
    counts = {}
    for item in items:
        counts[item] = counts.get(item, 0) + 1
    return counts.items()


def _times(count):
    return f" x{count}" if count > 1 else ""


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
            return Report(list(r.graphs), list(r.breaks), list(r.recompiles), list(r.fallbacks), list(r.guards))


GLOBAL_LIMIT = 1000  # records of each kind kept by the process-wide recorder
_global = Recorder(GLOBAL_LIMIT)
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
