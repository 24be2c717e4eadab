"""Live logs through Python's `logging`: one `terra_dyn.<category>` logger per kind of event.

Like TORCH_LOGS: off by default, switched on per category by one env var or by the API,
printed to stderr as the program runs (the report is the summary after the run).

    TERRA_DYN_LOGS=breaks,recompiles python train.py     # or "all"; TERRA_DYN_VERBOSE=1 is
                                                         # graphs,breaks,recompiles,fallbacks
    terra_dyn.set_logs("breaks", "recompiles")           # the same from Python
    terra_dyn.set_logs()                                 # all off again

    [terra_dyn.breaks] break at train.py:84 in train_step: Tensor.item() needs the value
        meter.update(loss.item(), x.shape[0])

Who calls what: report.record_graph/_break/_recompile/_fallback/_guards (every record is
also a log line), convert_frame (the rewritten code), the Triton backend (kernels). Each
call is one `isEnabledFor` test when its category is off.

The loggers are ordinary ones: `logging.getLogger("terra_dyn.breaks").setLevel(logging.INFO)`
with your own handlers works too. A category switched on by set_logs/the env var prints
through one stderr handler on the `terra_dyn` logger, which then stops propagating, so a
script's own `logging.basicConfig` neither duplicates nor swallows the lines.
"""
import dis
import io
import logging
import sys

CATEGORIES = {
    "graphs": "each captured graph: where, op count, backend, time, its FX code",
    "breaks": "each graph break: file:line, reason, source line",
    "recompiles": "each recompile: the variable, its old and new value or shape, the line",
    "guards": "the guards of each translation",
    "code": "the rewritten bytecode of each translated function",
    "kernels": "each generated Triton kernel's source",
    "fallbacks": "each function that ran as plain Python, and why",
}
VERBOSE = ("graphs", "breaks", "recompiles", "fallbacks")  # what TERRA_DYN_VERBOSE=1 means

ROOT = logging.getLogger("terra_dyn")
_loggers = {name: logging.getLogger(f"terra_dyn.{name}") for name in CATEGORIES}
for _logger in _loggers.values():
    if _logger.level == logging.NOTSET:  # off by default, whatever the root logger's level
        _logger.setLevel(logging.WARNING)
_handler = None


class UnknownCategory(ValueError):
    pass


def parse(spec: str):
    """"breaks, recompiles" / "all" / "" -> a tuple of category names (unknown: one error)."""
    names = [s.strip().lower().lstrip("+") for s in (spec or "").replace(";", ",").split(",") if s.strip()]
    if "all" in names:
        return tuple(CATEGORIES)
    unknown = [n for n in names if n not in CATEGORIES]
    if unknown:
        raise UnknownCategory(f"unknown terra_dyn log categor{'y' if len(unknown) == 1 else 'ies'} "
                              f"{', '.join(map(repr, unknown))}; use any of {', '.join(CATEGORIES)} or all")
    return tuple(dict.fromkeys(names))


def set_logs(*categories, stream=None):
    """Switch the named categories on (INFO to stderr) and every other one off.

    `set_logs("breaks", "recompiles")`, `set_logs("all")`, `set_logs("breaks,guards")`;
    `set_logs()` switches all off. Returns the categories now on."""
    names = parse(",".join(categories))
    global _handler
    if _handler is None:
        _handler = logging.StreamHandler(stream or sys.stderr)
        _handler.setFormatter(logging.Formatter("[%(name)s] %(message)s"))
    elif stream is not None:
        _handler.setStream(stream)
    for name, logger in _loggers.items():
        logger.setLevel(logging.INFO if name in names else logging.WARNING)
    if names and _handler not in ROOT.handlers:
        ROOT.addHandler(_handler)
        ROOT.propagate = False
    elif not names and _handler in ROOT.handlers:
        ROOT.removeHandler(_handler)
        ROOT.propagate = True
    return names


def enabled(category: str) -> bool:
    return _loggers[category].isEnabledFor(logging.INFO)


def install_from_config():
    """At import: TERRA_DYN_LOGS, plus TERRA_DYN_VERBOSE's categories. A bad name warns once
    and is ignored: a typo in an env var must not stop the user's program."""
    from . import config

    try:
        names = parse(config.logs)
    except UnknownCategory as exc:
        print(f"terra_dyn: TERRA_DYN_LOGS: {exc}", file=sys.stderr)
        names = ()
    if config.verbose:
        names = tuple(dict.fromkeys(names + VERBOSE))
    if names:
        set_logs(*names)


# --------------------------------------------------------------------------- one call per event
# Each takes the record it logs (report.py's dataclasses) so the text is the report's text.


def graph(rec):
    if enabled("graphs"):
        code = rec.graph_code()
        _loggers["graphs"].info(
            "graph of %s (%s:%d): %d ops, backend %s, translated in %.1f ms, compiled in %.1f ms%s",
            rec.code_name, rec.filename, rec.lineno, rec.op_count, rec.backend or "?",
            rec.translate_seconds * 1e3, rec.compile_seconds * 1e3, ("\n" + _indent(code)) if code else "")


def graph_break(rec):
    if enabled("breaks"):
        filename, lineno, line = rec.user_site()
        inner = "" if (filename, lineno) == (rec.filename, rec.lineno) else f" (inside {rec.filename}:{rec.lineno})"
        _loggers["breaks"].info("break at %s:%d%s: %s%s", filename, lineno, inner, rec.reason,
                                ("\n    " + line.strip()) if line.strip() else "")


def recompile(rec):
    if enabled("recompiles"):
        _loggers["recompiles"].info("recompile %s (%s:%d): %s", rec.code_name, rec.filename, rec.lineno, rec.cause())


def fallback(rec):
    if enabled("fallbacks"):
        _loggers["fallbacks"].info("%s (%s:%d) ran as plain Python: %s", rec.code_name, rec.filename, rec.lineno,
                                   rec.reason)


def guards(descriptions):
    if enabled("guards"):
        _loggers["guards"].info("guards of a translation:\n%s", _indent("\n".join(descriptions)))


def generated_code(original, rewritten):
    """The rewritten code object of `original` (convert_frame calls this once per translation)."""
    if enabled("code"):
        out = io.StringIO()
        dis.dis(rewritten, file=out, depth=0)
        _loggers["code"].info("rewritten code of %s (%s:%d):\n%s", original.co_name, original.co_filename,
                              original.co_firstlineno, _indent(out.getvalue().rstrip()))


def kernel(title, source):
    """A generated Triton kernel (backends/triton calls this once per kernel built)."""
    if enabled("kernels"):
        _loggers["kernels"].info("%s\n%s", title, _indent(source.rstrip()))


def _indent(text, prefix="    "):
    return "\n".join(prefix + line for line in text.splitlines())
