"""The text report, within `width` columns: long lines wrap, nothing is cut.

    render(report) -> header (time: graphs / Python / translating; counts)
                   -> "What to fix first": report_views.problems(), costliest first, with fixes
                   -> per user function with tensor work: graphs, lines with breaks, recompiles
                   -> functions without tensor work, one line each (setup code)
                   -> verbose: each graph's code and op counts, the guards

Example (examples/train_realistic.py, abridged):

    What to fix first (time measured by sampling the run):
     1. examples/train_realistic.py:84 in train_step: 95 ms outside graphs
        16 breaks at meter.update(loss.item(), x.shape[0])
        - Tensor.item() needs its value (x16)
        fix: .item()/float() in the loop waits for the value and splits the graph: ...
"""
import textwrap
from typing import List

from .attribution import short_path
from .report_views import problems, recompile_causes

TOP = 5


def render(report, width=80, verbose=False) -> str:
    return _TextReport(report, width, verbose).render()


def seconds_text(s: float) -> str:
    return f"{s * 1000:.0f} ms" if s < 1 else f"{s:.2f} s"


def plural(n, word):
    return f"{n} {word}" + ("" if n == 1 else "s")


class _TextReport:
    def __init__(self, report, width, verbose):
        self.report, self.width, self.verbose = report, width, verbose
        self.lines: List[str] = []

    def line(self, text="", indent=0, hang=2):
        """`text` at `indent`, wrapped to the width; continuation lines indented by `hang`."""
        prefix = " " * indent
        room = max(self.width - indent, 20)
        if len(text) <= room:
            self.lines.append(prefix + text)
            return
        lead = len(text) - len(text.lstrip(" "))
        wrapped = textwrap.wrap(text, room, subsequent_indent=" " * (lead + hang), break_on_hyphens=False)
        self.lines += [prefix + t for t in wrapped]

    def render(self) -> str:
        r = self.report
        if r.title:
            self.line(f"terra_dyn report: {r.title}")
        self.header()
        self.top_problems()
        frames = r.frames()
        working = [f for f in frames if f.graphs or f.recompiles or f.fallbacks]
        for frame in working:
            self.frame(frame)
        if r.as_written:
            self.line()
            self.line("Run as written from a recompile on (no translation of theirs did tensor work):")
            for f in r.as_written:
                self.line(f"{f.code_name}  ({short_path(f.filename)}:{f.lineno}): {f.reason}", 2, hang=4)
        setup = [f for f in frames if f not in working]
        if setup:
            self.line()
            self.line("Functions without tensor work (run as Python; fine for setup code):")
            for frame in setup:
                self.setup_frame(frame)
        if self.verbose and r.guards:
            self.line()
            self.line("Guards of each translation:")
            for i, text in enumerate(r.guards):
                self.line(f"[{i}]", 2)
                for g in text.splitlines():
                    self.line(g, 4, hang=4)
        return "\n".join(self.lines)

    def header(self):
        r = self.report
        sites = len({(s.filename, s.lineno) for s in r.break_sites()})
        self.line(f"{plural(r.graph_count, 'graph')} ({r.op_count} ops), {plural(r.break_count, 'break')} at "
                  f"{plural(sites, 'site')}, {plural(len(r.recompiles), 'recompile')}, "
                  f"{plural(len(r.fallbacks), 'fallback')}")
        parts = []
        if r.sampled():
            parts += [f"in graphs {seconds_text(r.seconds_in('graph'))}",
                      f"Python outside graphs {seconds_text(r.seconds_in('python'))}"]
        parts += [f"translating {seconds_text(r.translate_seconds)}", f"compiling {seconds_text(r.compile_seconds)}"]
        lead = f"time: whole run {seconds_text(r.wall_seconds)}: " if r.wall_seconds else "time: "
        self.line(lead + ", ".join(parts))

    def top_problems(self):
        found = problems(self.report, TOP)
        if not found:
            return
        self.line()
        if self.report.sampled():
            self.line("What to fix first (time measured by sampling the run):")
        else:
            self.line("What to fix first (estimated: times recorded x ops in the function's graphs):")
        for i, p in enumerate(found, 1):
            cost = (f"{seconds_text(p.seconds)} " + ("translating" if p.kind == "recompiles" else "outside graphs")
                    if self.report.sampled() or p.kind == "recompiles" else f"cost {p.estimate}")
            self.line(f"{i:>2}. {short_path(p.filename)}:{p.lineno} in {p.frame.name}: {cost}", 0, hang=4)
            self.line(p.title, 4)
            for d in p.details[:4]:
                self.line(f"- {d}", 4)
            if len(p.details) > 4:
                self.line(f"- and {len(p.details) - 4} more (see {p.frame.name} below)", 4)
            if p.hint:
                self.line(f"fix: {p.hint}", 4, hang=5)

    def frame(self, frame):
        self.line()
        self.line(f"{frame.name}  ({short_path(frame.filename)}:{frame.lineno})")
        if frame.graphs:
            if len({g.lineno for g in frame.graphs}) > 1:
                ops = ", ".join(f"{g.op_count} ops from line {g.lineno}" for g in frame.graphs)
            else:
                ops = " + ".join(str(g.op_count) for g in frame.graphs) + " ops"
            self.line(f"graphs: {len(frame.graphs)} ({ops}); translating "
                      f"{seconds_text(frame.translate_seconds)}, compiling {seconds_text(frame.compile_seconds)}", 2)
            for g in frame.graphs:
                if g.note:
                    self.line(f"note: {g.note}", 4)
                if self.verbose:
                    self.graph(g)
        else:
            self.line("graphs: none", 2)
        self.break_lines(frame)
        if frame.recompiles:
            spent = f", {seconds_text(frame.recompile_seconds)} translating again" if frame.translations else ""
            self.line(f"recompiles x{len(frame.recompiles)}{spent}:", 2)
            for cause, _ in recompile_causes(frame.recompiles):
                self.line(cause, 4)
        for reason in dict.fromkeys(f.reason for f in frame.fallbacks):
            count = sum(1 for f in frame.fallbacks if f.reason == reason)
            self.line(f"ran as plain Python{f' x{count}' if count > 1 else ''}: {reason}", 2)

    def break_lines(self, frame):
        by_line = {}
        for site in frame.break_sites:
            by_line.setdefault((site.filename, site.lineno), []).append(site)
        for (filename, lineno), sites in by_line.items():
            where = f"line {lineno}" if filename == frame.filename else f"{short_path(filename)}:{lineno}"
            self.line(f"{where}: {sites[0].source_line.strip()}", 2, hang=4)
            own = [s for s in sites if not s.library]
            for s in own:
                self.line(f"break x{s.count}: {s.reason}", 4)
            inner = [s for s in sites if s.library]
            if inner:
                libs = ", ".join(sorted({s.library for s in inner}))
                n = sum(s.count for s in inner)
                native = not any(s.in_translated_library for s in inner)
                self.line(f"{plural(n, 'break')} inside {libs} (library code{', run as Python' if native else ''}):", 4)
                shown = inner if self.verbose else inner[:2]
                for s in shown:
                    located = s.in_translated_library or (self.verbose and s.inside != "terra_dyn")
                    where = f" at {short_path(s.inside)}" if located else ""
                    self.line(f"x{s.count}{where}: {s.reason}", 6, hang=4)
                if len(inner) > len(shown):
                    self.line(f"and {len(inner) - len(shown)} other reasons (--verbose lists them)", 6)
            if sites[0].seconds >= 0.001:
                self.line(f"{seconds_text(sites[0].seconds)} outside graphs at this line (measured)", 4)
            if len(sites[0].user_stack) > 1:
                chain = " -> ".join(e.rpartition(" in ")[2] or e for e in sites[0].user_stack)
                self.line(f"via {chain}", 4)

    def setup_frame(self, frame):
        count = sum(s.count for s in frame.break_sites)
        libs = sorted({s.library for s in frame.break_sites if s.library})
        lines = sorted({s.lineno for s in frame.break_sites})
        where = ", ".join(map(str, lines[:6])) + (f" and {len(lines) - 6} more" if len(lines) > 6 else "")
        inside = f", inside {', '.join(libs)}" if libs else ""
        self.line(f"{frame.name} ({short_path(frame.filename)}:{frame.lineno}): "
                  f"{plural(count, 'break')} at line{'s' if len(lines) > 1 else ''} {where}{inside}", 2, hang=4)

    def graph(self, g):
        self.line(f"graph at line {g.lineno} ({g.backend or 'backend ?'}), ops: "
                  + ", ".join(f"{name} x{n}" for name, n in g.op_counts().items()), 4, hang=4)
        for text in (g.graph_code() or g.graph_text()).splitlines():
            if text.strip():
                self.line(text, 6, hang=4)
