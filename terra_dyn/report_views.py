"""The report's records seen per user function and per user line, ranked by time lost.

    Report records --frames()--> FrameSummary per user function (graphs, recompiles, fallbacks,
                                 BreakSites: one per user line and reason)
                   --problems()--> Problem list, costliest first: a line with breaks, a
                                   function's recompiles, a function run as plain Python

Attribution: a break belongs to the innermost line of the user's own code on its stack
(attribution.py); the library or terra_dyn file it was recorded in is kept as `inside`,
never as the place to fix. Cost: with a sampled run, the seconds spent outside graphs at
that line (breaks), the seconds translating again (recompiles), or the seconds the
function's lines spent in Python (fallbacks); without samples (explain), count x ops.
"""
import linecache
import re
from dataclasses import dataclass, field
from typing import List

from . import hints
from .attribution import is_user_file, library_name, parse_stack_entry, short_path, source_line


def frame_name(code_name: str) -> str:
    """The user's function a code object belongs to: resume functions count as their frame
    (`__resume_at_42_train_step` or `train_step.<resume@42>` -> `train_step`)."""
    name = code_name
    if name.startswith("__resume"):
        parts = name[len("__resume"):].lstrip("_").split("_")
        while parts and (parts[0] == "at" or parts[0].isdigit()):
            parts.pop(0)
        name = "_".join(parts) or code_name
    for marker in (".<resume", "<resume"):
        if marker in name:
            name = name.split(marker)[0] or code_name
    return name


@dataclass
class BreakSite:
    """Every break recorded under one user line for one reason."""

    reason: str
    filename: str  # the user's file and line
    lineno: int
    source_line: str
    count: int = 0
    ops_around: int = 0  # ops in the graphs of the function the line is in
    user_stack: List[str] = field(default_factory=list)  # user entries only, outermost first
    frame: str = ""
    inside: str = ""  # "argparse.py:1395" when recorded inside a library (or "terra_dyn")
    library: str = ""  # "argparse", "torch", "terra_dyn"; "" for the user's own line
    seconds: float = 0.0  # measured time outside graphs at the line (0 when not sampled)

    @property
    def cost(self) -> int:
        return self.count * self.ops_around

    @property
    def user_location(self):
        return self.filename, self.lineno

    @property
    def hint(self) -> str:
        return "" if self.library else hints.for_break(self.reason)

    @property
    def in_translated_library(self) -> bool:
        """Recorded inside a library whose code is translated (transformers, the user's own
        package), not one that runs as written (torch, the stdlib): its file and line are a
        place to look, and its frame has a section of its own."""
        if not self.library or self.library == "terra_dyn":
            return False
        from .code_location import runs_as_written  # imports torch: only when asked

        return not runs_as_written(self.inside.rpartition(":")[0])

    def __repr__(self):
        where = f" (inside {self.library})" if self.library else ""
        return f"<{self.count}x break at {self.filename}:{self.lineno}{where}: {self.reason}>"

    def to_json(self):
        data = {f: getattr(self, f) for f in self.__dataclass_fields__}
        data.update(cost=self.cost, user_location="%s:%d" % self.user_location, hint=self.hint)
        return data


@dataclass
class FrameSummary:
    """What happened to one user function's frames (its resume functions included)."""

    name: str
    filename: str
    lineno: int
    graphs: list = field(default_factory=list)
    break_sites: List[BreakSite] = field(default_factory=list)
    recompiles: list = field(default_factory=list)
    fallbacks: list = field(default_factory=list)
    translations: list = field(default_factory=list)

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

    @property
    def recompile_seconds(self):
        """Time translating again: every translation of a code object but its first."""
        seen, total = set(), 0.0
        for t in self.translations:
            key = (t.code_name, t.lineno)
            if key in seen:
                total += t.seconds
            seen.add(key)
        return total

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
            "recompile_seconds": self.recompile_seconds,
        }


def frames(report) -> List[FrameSummary]:
    """Records grouped by the user function they belong to, in order of appearance.

    Graphs, recompiles, fallbacks and translations carry their code's first line, so two
    functions of one name in one file (two classes' `forward`) stay apart; a break belongs
    to the function of its user line: the one of that name whose first line is the closest
    above the line."""
    found = {}

    def frame_at(code_name, filename, first_line):
        key = (filename, frame_name(code_name), first_line)
        if key not in found:
            found[key] = FrameSummary(key[1], filename, first_line)
        return found[key]

    def frame_around(name, filename, line):
        above = [k for k in found if k[:2] == (filename, name) and k[2] <= line]
        if above:
            return found[max(above, key=lambda k: k[2])]
        return frame_at(name, filename, _def_line(filename, name, line))

    for g in report.graphs:
        frame_at(g.code_name, g.filename, g.lineno).graphs.append(g)
    for r in report.recompiles:
        frame_at(r.code_name, r.filename, r.lineno).recompiles.append(r)
    for f in report.fallbacks:
        frame_at(f.code_name, f.filename, f.lineno).fallbacks.append(f)
    for t in report.translations:
        if (t.filename, frame_name(t.code_name), t.lineno) in found:
            frame_at(t.code_name, t.filename, t.lineno).translations.append(t)
    sites = {}
    for b in report.breaks:
        site = _site_of(b)
        func = site.user_stack[-1].rpartition(" in ")[2].rpartition(".")[2] if site.user_stack else b.code_name
        frame = frame_around(frame_name(func or "<module>"), site.filename, site.lineno)
        key = (id(frame), site.filename, site.lineno, site.reason, site.library)
        if key not in sites:
            site.frame = frame.name
            sites[key] = site
            frame.break_sites.append(site)
        sites[key].count += 1
    for frame in found.values():
        for site in frame.break_sites:
            site.ops_around = frame.op_count
            site.seconds = _line_seconds(report, site.filename, site.lineno).get("python", 0.0)
    return list(found.values())


def _site_of(brk) -> BreakSite:
    filename, lineno, line = brk.user_site()
    user_stack = [e for e in brk.user_stack if is_user_file(parse_stack_entry(e)[0])]
    if not user_stack or parse_stack_entry(user_stack[-1])[:2] != (filename, lineno):
        user_stack.append(f"{filename}:{lineno} in {brk.code_name}")
    site = BreakSite(brk.reason, filename, lineno, (line or "").strip(), user_stack=user_stack)
    if (filename, lineno) != (brk.filename, brk.lineno) and not is_user_file(brk.filename):
        site.library = library_name(brk.filename)
        site.inside = "terra_dyn" if site.library == "terra_dyn" else f"{brk.filename}:{brk.lineno}"
    return site


_DEF = re.compile(r"^\s*(?:async\s+)?def\s+(\w+)\s*\(")


def _def_line(filename, name, line):
    """The first line (decorators included) of the `def name` at or above `line`."""
    for n in range(line, 0, -1):
        match = _DEF.match(_raw_line(filename, n))
        if match and match.group(1) == name:
            while n > 1 and _raw_line(filename, n - 1).lstrip().startswith("@"):
                n -= 1
            return n
    return line


def _raw_line(filename, n):
    return linecache.getline(filename, n)


def _line_seconds(report, filename, lineno):
    return report.line_seconds.get(f"{filename}:{lineno}", {})


# --------------------------------------------------------------------------- ranking


@dataclass
class Problem:
    """One thing to fix, with its measured (or estimated) cost."""

    kind: str  # "breaks", "recompiles", "fallback"
    frame: FrameSummary
    filename: str
    lineno: int
    seconds: float
    estimate: int  # count x ops when not sampled
    title: str
    details: List[str]
    hint: str = ""


def problems(report, limit=None, frame_list=None) -> List[Problem]:
    """Lines with breaks, functions that recompiled or ran as plain Python: costliest first."""
    out = []
    for frame in frame_list if frame_list is not None else report.frames():
        by_line = {}
        for site in frame.break_sites:
            by_line.setdefault((site.filename, site.lineno), []).append(site)
        for (filename, lineno), sites in by_line.items():
            if all(hints.is_expected(s.reason) and not s.library for s in sites):
                continue  # loss.backward(): autograd's own work, listed under its function only
            own = [s for s in sites if not s.library]
            count = sum(s.count for s in sites)
            details = [f"{s.reason}" + (f" (x{s.count})" if s.count > 1 else "") for s in own]
            libs = sorted({s.library for s in sites if s.library})
            inner = sum(s.count for s in sites if s.library)
            if inner:
                native = all(not s.in_translated_library for s in sites if s.library)
                details.append(f"{inner} inside {', '.join(libs)}: library code" + (" run as Python" if native else ""))
                details += [f"at {short_path(s.inside)}: {s.reason}" for s in sites if s.in_translated_library][:2]
            hint = next((s.hint for s in own if s.hint), "")
            out.append(Problem("breaks", frame, filename, lineno, sites[0].seconds, sum(s.cost for s in sites),
                               f"{count} break{'s' if count > 1 else ''} at {sites[0].source_line or 'this line'}",
                               details, hint))
        if frame.recompiles:
            causes = recompile_causes(frame.recompiles)
            first = frame.recompiles[0]
            n = len(frame.recompiles)
            out.append(Problem("recompiles", frame, frame.filename, first.line or frame.lineno,
                               frame.recompile_seconds, n * max(frame.op_count, 1),
                               f"{n} recompile{'s' if n > 1 else ''} of {frame.name}",
                               [c for c, _ in causes], _recompile_hint(n, causes)))
        for reason in dict.fromkeys(f.reason for f in frame.fallbacks):
            out.append(Problem("fallback", frame, frame.filename, frame.lineno, 0.0, max(frame.op_count, 1),
                               f"{frame.name} ran as plain Python", [reason]))
    out.sort(key=lambda p: (-p.seconds, -p.estimate, p.filename, p.lineno))
    return out[:limit] if limit else out


def _recompile_hint(count, causes):
    named = [c for c, _ in causes if not c.startswith("a value computed")] or [c for c, _ in causes]
    hint = hints.for_recompile(named[0] if named else "")
    if count <= 3 and not any("shape" in c for c in named):
        hint += ("; " if hint else "") + ("if this is setup code that runs a few times, "
                                          "@torch.compiler.disable keeps terra_dyn out of it")
    return hint


def recompile_causes(recompiles):
    """[(cause text, count)]: one entry per variable and kind of change, the latest example."""
    groups = {}
    for r in recompiles:
        for change in (r.changes or [r.failed_guard]):
            key = re.sub(r"changed: .*", "changed", change)
            groups.setdefault(key, []).append(change)
    return [(changes[-1] + (f" (x{len(changes)})" if len(changes) > 1 else ""), len(changes))
            for changes in groups.values()]
