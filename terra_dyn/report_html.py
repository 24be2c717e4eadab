"""The report as one self-contained HTML page (`terra-dyn report --html out.html`).

No external resource: inline CSS, no script needed to read it, internal links only.

    render_html(report)
      header      title, counts, a bar of where the time went (graphs / Python / translating)
      timeline    every translation on the run's time axis (when, how long, which function)
      fix first   report_views.problems(), each linking to its marked line below
      functions   per user function: its source, with break lines (class "brk") and the
                  recompile line (class "rcp") marked and annotated; then its graphs
                  (readable FX code, op counts, time)

Anchors: a marked line is `id="L{n}-{lineno}"` (n: the function's index), a function is
`id="F{n}"`, a graph `id="G{n}-{k}"`; tests/report/test_html.py checks every `href="#..."`
resolves, in Python and in a headless browser.
"""
import ast
import functools
import html
import linecache

from .attribution import short_path
from .report_text import seconds_text
from .report_views import problems, recompile_causes

_CSS = """
body{font:14px/1.45 system-ui,sans-serif;margin:0 auto;max-width:1100px;padding:16px;color:#1d1d1f}
h1{font-size:20px} h2{font-size:17px;margin-top:28px;border-bottom:1px solid #ddd}
h3{font-size:15px;margin:18px 0 6px}
code,pre{font:12.5px/1.4 ui-monospace,Menlo,Consolas,monospace}
.bar{display:flex;height:18px;border-radius:4px;overflow:hidden;margin:6px 0}
.bar span{display:block;height:100%}
.graph{background:#2e7d32}.python{background:#f9a825}.translating{background:#c62828}
.compiling{background:#6a1b9a}.other{background:#bbb}
.legend span{display:inline-block;margin-right:14px}.legend i{display:inline-block;width:10px;height:10px;margin-right:4px}
table{border-collapse:collapse}td,th{padding:2px 8px;text-align:left;border-bottom:1px solid #eee}
.src{border:1px solid #ddd;border-radius:4px;overflow-x:auto;background:#fafafa}
.src div{white-space:pre;padding:0 8px}.src .n{display:inline-block;width:44px;color:#999;user-select:none}
.src .brk{background:#ffe0e0}.src .rcp{background:#fff2c6}.src .brk.rcp{background:#ffd0a0}
.note{white-space:normal;margin:0 0 2px 52px;padding:2px 8px;border-left:3px solid #c62828;background:#fff;font:13px system-ui,sans-serif}
.note.r{border-left-color:#b28704}.fix{color:#1b5e20}
.timeline{position:relative;height:26px;background:#f0f0f0;border-radius:4px;margin:4px 0 18px}
.timeline span{position:absolute;top:3px;height:20px;background:#c62828;opacity:.8;min-width:2px}
ol li{margin-bottom:8px} .muted{color:#777}
"""


def render_html(report) -> str:
    frames = report.frames()
    index = {id(f): i for i, f in enumerate(frames)}
    parts = [f"<!DOCTYPE html><html lang=en><head><meta charset=utf-8>"
             f"<title>terra_dyn report{_e(': ' + report.title if report.title else '')}</title>"
             f"<style>{_CSS}</style></head><body>",
             f"<h1>terra_dyn report{_e(': ' + report.title if report.title else '')}</h1>"]
    parts += _summary(report)
    parts += _timeline(report, frames, index)
    parts += _fix_first(report, frames, index)
    parts.append("<h2>Functions</h2>")
    for frame in frames:
        parts += _frame(report, frame, index[id(frame)])
    parts.append("</body></html>")
    return "\n".join(parts)


def _e(text) -> str:
    return html.escape(str(text), quote=True)


def _summary(report):
    s = report.summary()
    out = [f"<p id=summary>{s['graphs']} graphs ({s['ops']} ops), {s['breaks']} breaks at "
           f"{s['break_sites']} sites, {s['recompiles']} recompiles, {s['fallbacks']} fallbacks.</p>"]
    parts = [("graph", "in graphs", report.seconds_in("graph")), ("python", "Python outside graphs",
                                                                   report.seconds_in("python")),
             ("translating", "translating", report.translate_seconds), ("compiling", "compiling",
                                                                       report.compile_seconds)]
    if not report.sampled():
        parts = parts[2:]
    total = max(report.wall_seconds, sum(p[2] for p in parts), 1e-9)
    bar = "".join(f"<span class={c} style='width:{100 * v / total:.2f}%' title='{_e(label)}'></span>"
                  for c, label, v in parts if v > 0)
    legend = "".join(f"<span><i class={c}></i>{_e(label)} {seconds_text(v)}</span>" for c, label, v in parts)
    whole = f"whole run {seconds_text(report.wall_seconds)}" if report.wall_seconds else ""
    how = "measured by sampling the run" if report.sampled() else "not sampled: costs below are estimates"
    out += [f"<div class=bar id=timebar>{bar}</div>", f"<div class=legend>{legend} <span class=muted>{whole}; "
            f"{how}</span></div>"]
    return out


def _timeline(report, frames, index):
    spans = [t for t in report.translations if t.at]
    if not spans:
        return []
    start = report.started or min(t.at - t.seconds for t in spans)
    end = max([t.at for t in spans] + [start + report.wall_seconds])
    width = max(end - start, 1e-9)
    frame_of = {}
    for f in frames:
        for t in f.translations:
            frame_of[id(t)] = f
    out = ["<h2>Timeline of translations</h2>",
           f"<p class=muted>{len(spans)} translations over the run's {seconds_text(width)} (red: translating and "
           "compiling; hover for the function)</p><div class=timeline id=timeline>"]
    for t in spans:
        left = 100 * max(t.at - t.seconds - start, 0) / width
        frame = frame_of.get(id(t))
        link = f" onclick=\"location.hash='F{index[id(frame)]}'\"" if frame is not None else ""
        out.append(f"<span style='left:{left:.2f}%;width:{100 * t.seconds / width:.2f}%' "
                   f"title='{_e(t.code_name)} ({short_path(t.filename)}:{t.lineno}): {seconds_text(t.seconds)}'"
                   f"{link}></span>")
    out.append("</div>")
    return out


def _fix_first(report, frames, index):
    found = problems(report, 10, frames)
    if not found:
        return []
    how = "time measured by sampling" if report.sampled() else "estimated: count x ops"
    out = [f"<h2>What to fix first <span class=muted>({how})</span></h2><ol id=fixfirst>"]
    for p in found:
        n = index[id(p.frame)]
        cost = (f"{seconds_text(p.seconds)} {'translating' if p.kind == 'recompiles' else 'outside graphs'}"
                if report.sampled() or p.kind == "recompiles" else f"cost {p.estimate}")
        details = "".join(f"<li>{_e(d)}</li>" for d in p.details)
        fix = f"<div class=fix>fix: {_e(p.hint)}</div>" if p.hint else ""
        target = f"F{n}" if p.kind == "fallback" else f"L{n}-{p.lineno}"
        out.append(f"<li><a href='#{target}'>{_e(short_path(p.filename))}:{p.lineno}</a> in "
                   f"<b>{_e(p.frame.name)}</b>: {_e(cost)}<br>{_e(p.title)}<ul>{details}</ul>{fix}</li>")
    out.append("</ol>")
    return out


def _frame(report, frame, n):
    out = [f"<h3 id=F{n}>{_e(frame.name)} <span class=muted>({_e(short_path(frame.filename))}:{frame.lineno})"
           f"</span></h3>"]
    graphs = ", ".join(f"<a href='#G{n}-{k}'>{g.op_count} ops</a>" for k, g in enumerate(frame.graphs))
    out.append(f"<p>graphs: {len(frame.graphs)}{' (' + graphs + ')' if graphs else ''}; translating "
               f"{seconds_text(frame.translate_seconds)}, compiling {seconds_text(frame.compile_seconds)}"
               + (f"; {len(frame.recompiles)} recompiles, {seconds_text(frame.recompile_seconds)} translating again"
                  if frame.recompiles else "") + "</p>")
    notes = _line_notes(frame)
    lines = _function_lines(frame.filename, frame.lineno, notes)
    if lines:
        out.append("<div class=src>")
        for lineno in lines:
            text = linecache.getline(frame.filename, lineno).rstrip("\n")
            kinds = " ".join(sorted({k for k, _ in notes.get(lineno, [])}))
            attrs = f" id=L{n}-{lineno} class='{kinds}'" if kinds else ""
            out.append(f"<div{attrs}><span class=n>{lineno}</span>{_e(text)}</div>")
            for kind, note in notes.get(lineno, []):
                out.append(f"<div class='note{' r' if kind == 'rcp' else ''}'>{note}</div>")
        out.append("</div>")
    else:  # no source (a notebook cell, a deleted file): the notes alone
        for lineno, items in sorted(notes.items()):
            for i, (kind, note) in enumerate(items):
                anchor = f" id=L{n}-{lineno}" if i == 0 else ""
                out.append(f"<div{anchor} class='note{' r' if kind == 'rcp' else ''}'>line {lineno}: {note}</div>")
    for k, g in enumerate(frame.graphs):
        counts = "".join(f"<tr><td>{_e(name)}</td><td>{c}</td></tr>" for name, c in g.op_counts().items())
        out.append(f"<details id=G{n}-{k} open><summary>graph {k + 1}: {g.op_count} ops, backend "
                   f"{_e(g.backend or '?')}, translated in {seconds_text(g.translate_seconds)}, compiled in "
                   f"{seconds_text(g.compile_seconds)}</summary>"
                   + (f"<table><tr><th>op</th><th>count</th></tr>{counts}</table>" if counts else "")
                   + f"<pre>{_e(g.graph_code() or g.graph_text())}</pre></details>")
    for f in frame.fallbacks:
        out.append(f"<p class=note>ran as plain Python: {_e(f.reason)}</p>")
    return out


def _line_notes(frame):
    """{lineno: [(css class, html)]}: breaks ("brk") and the recompile cause ("rcp")."""
    notes = {}
    by_line = {}
    for site in frame.break_sites:
        if site.filename == frame.filename:
            by_line.setdefault(site.lineno, []).append(site)
    for lineno, sites in by_line.items():
        for s in sites:
            where = f" (inside {_e(s.library)})" if s.library else ""
            time = f" &middot; {seconds_text(s.seconds)} outside graphs" if s.seconds >= 0.001 else ""
            fix = f"<div class=fix>fix: {_e(s.hint)}</div>" if s.hint else ""
            notes.setdefault(lineno, []).append(("brk", f"break x{s.count}{where}: {_e(s.reason)}{time}{fix}"))
    if frame.recompiles:
        line = frame.recompiles[0].line or frame.lineno
        causes = "<br>".join(_e(c) for c, _ in recompile_causes(frame.recompiles))
        notes.setdefault(line, []).append(("rcp", f"recompiles x{len(frame.recompiles)}: {causes}"))
    return notes


def _function_lines(filename, first_line, notes):
    """The line numbers of the function starting at `first_line` (decorators included),
    extended to cover every annotated line; [] without source."""
    if not linecache.getline(filename, first_line):
        return []
    end = _function_end(filename, first_line) or first_line
    end = max([end] + [n for n in notes if n >= first_line])
    return list(range(first_line, end + 1))


def _function_end(filename, first_line):
    for node in _functions(filename):
        start = min([node.lineno] + [d.lineno for d in node.decorator_list])
        if start == first_line or node.lineno == first_line:
            return node.end_lineno
    return 0


@functools.lru_cache(maxsize=64)
def _functions(filename):
    try:
        tree = ast.parse("".join(linecache.getlines(filename)))
    except (SyntaxError, ValueError):
        return ()
    return tuple(n for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef)))
