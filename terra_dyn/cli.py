"""The `terra-dyn` command (also `python -m terra_dyn`).

    terra-dyn report [--json] [--html OUT] [--backend B] [--strict] [--verbose] script.py [args...]
    terra-dyn config

`report` runs the script in this process with terra_dyn enabled exactly as
`TERRA_DYN=1 python script.py` would (auto.enable: the same entry points), then prints per
frame: graphs and their op counts, breaks grouped by reason with counts and source lines,
recompiles with the variable that changed, time spent translating and compiling, and what
to fix first, ranked by time measured by sampling the run (sampling.py). With --json,
stdout holds only the JSON document (the script's own stdout is sent to stderr); --html
also writes one self-contained HTML page. The exit status is the script's own; a usage
error is one line on stderr and status 2:

    main(argv) -> run_script(path, args) -> auto.enable + Sampler -> exec in a fresh __main__
               -> auto.disable -> Report.render() / Report.dumps() / Report.to_html()

`config` prints every knob with its env var, current value and meaning.
"""
import argparse
import builtins
import contextlib
import importlib.machinery
import io
import os
import sys
import time
import traceback
import types

EXIT_NO_SCRIPT = 2  # what `python missing.py` exits with
EXIT_USAGE = 2  # argparse's status for a usage error


class UsageError(Exception):
    pass


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line (`terra-dyn: error: ...`), not usage + error."""

    def error(self, message):
        raise UsageError(f"{message} (see `{self.prog} --help`)")


def _parser():
    parser = _Parser(prog="terra-dyn", description="terra_dyn: imperative PyTorch as optimized graphs")
    commands = parser.add_subparsers(dest="command", required=True, metavar="command", parser_class=_Parser)
    report = commands.add_parser("report", help="run a script under terra_dyn and report graphs and breaks")
    report.add_argument("--json", action="store_true", help="print the report as JSON (script stdout -> stderr)")
    report.add_argument("--backend", default=None, help="backend: auto, cpu, cudagraphs, interpreter, triton (default: config)")
    report.add_argument("--strict", action="store_true", help="raise instead of falling back")
    report.add_argument("--verbose", action="store_true", help="also print each graph and the guards")
    report.add_argument("--html", metavar="OUT", default=None, help="also write the report as one HTML file")
    report.add_argument("script", help="the Python script to run")
    report.add_argument("args", nargs=argparse.REMAINDER, help="arguments passed to the script")
    commands.add_parser("config", help="print every configuration knob and its env var")
    return parser


def main(argv=None) -> int:
    try:
        args = _parser().parse_args(argv)
        if args.command == "report":
            _check_backend(args.backend)
    except UsageError as exc:
        print(f"terra-dyn: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    if args.command == "config":
        from . import config
        print(config.describe())
        return 0
    return report_command(args)


def _check_backend(name):
    if name is None:
        return
    from .backends import lookup

    try:
        lookup(name)
    except ValueError:
        import difflib

        from .backends import _BY_NAME
        close = difflib.get_close_matches(name, list(_BY_NAME), n=1)
        maybe = f" (did you mean {close[0]!r}?)" if close else ""
        raise UsageError(f"unknown backend {name!r}{maybe}; use one of {', '.join(sorted(_BY_NAME))}") from None


def report_command(args) -> int:
    if not os.path.isfile(args.script):
        print(f"terra-dyn: can't open file {args.script!r}: no such file", file=sys.stderr)
        return EXIT_NO_SCRIPT
    from . import report as report_module

    from .sampling import Sampler

    with _stdout_to_stderr() if args.json else contextlib.nullcontext():
        start = time.perf_counter()
        with report_module.recording() as recorder, Sampler() as sampler:
            status = run_script(args.script, args.args, backend=args.backend, strict=args.strict or None)
        result = recorder.report()
    result.wall_seconds = time.perf_counter() - start
    result.started = start
    result.add_samples(sampler.seconds())
    result.title = " ".join([args.script] + list(args.args))
    try:
        if args.html:
            with open(args.html, "w", encoding="utf-8") as f:
                f.write(result.to_html())
            print(f"terra-dyn: HTML report written to {args.html}", file=sys.stderr)
        if args.json:
            print(result.dumps())
        else:
            print("\n" + "=" * 80 + "\n" + result.render(verbose=args.verbose))
            if status:
                print(f"\n(the script exited with status {status})")
    except Exception as exc:  # a report bug must not hide the script's own status
        print(f"terra-dyn: could not write the report: {type(exc).__name__}: {exc}", file=sys.stderr)
    sys.stdout.flush()
    return status


def run_script(path, script_args, backend=None, strict=None) -> int:
    """Run `path` as __main__ with terra_dyn enabled; return its exit status."""
    from . import auto

    typed, path = path, os.path.abspath(path)
    try:
        with io.open_code(path) as f:
            code = compile(f.read(), path, "exec", dont_inherit=True)
    except SyntaxError as exc:  # as python reports it: no traceback of ours
        sys.stderr.write("".join(traceback.format_exception_only(type(exc), exc)))
        return 1
    saved_argv, saved_path = sys.argv[:], sys.path[:]
    sys.argv[:] = [typed] + list(script_args)  # argv[0] as typed, __file__ absolute: as python does
    sys.path.insert(0, os.path.dirname(path))  # as `python script.py` does
    main_module, saved_main = _fresh_main(path), sys.modules["__main__"]
    sys.modules["__main__"] = main_module  # pickle and `import __main__` see the script
    previous = auto.enable(backend=backend, strict=strict)
    try:
        exec(code, main_module.__dict__)
        return 0
    except SystemExit as exc:
        return _exit_status(exc)
    except KeyboardInterrupt:
        return 130
    except BaseException as exc:  # the script's own error: show it as Python would
        _print_user_traceback(exc, path)
        return 1
    finally:
        auto.disable(previous)
        sys.argv[:] = saved_argv
        sys.path[:] = saved_path
        sys.modules["__main__"] = saved_main


def _fresh_main(path):
    """A `__main__` module for the script, with the attributes `python script.py` sets."""
    module = types.ModuleType("__main__")
    module.__file__ = path
    module.__builtins__ = builtins
    module.__loader__ = importlib.machinery.SourceFileLoader("__main__", path)
    module.__spec__ = module.__package__ = module.__cached__ = None
    return module


def _exit_status(exc: SystemExit) -> int:
    code = exc.code
    if code is None:
        return 0
    if isinstance(code, int):
        return code
    print(code, file=sys.stderr)  # sys.exit("message") prints it and exits 1
    return 1


def _print_user_traceback(exc, script_path):
    """The traceback from the script's first frame on (terra-dyn's own frames left out)."""
    tb = exc.__traceback__
    while tb is not None and tb.tb_frame.f_code.co_filename != script_path:
        tb = tb.tb_next
    traceback.print_exception(type(exc), exc, tb or exc.__traceback__, file=sys.stderr)


@contextlib.contextmanager
def _stdout_to_stderr():
    """Point file descriptor 1 (so print() and C code too) at stderr for the block."""
    sys.stdout.flush()
    saved = os.dup(1)
    os.dup2(2, 1)
    try:
        yield
    finally:
        sys.stdout.flush()
        os.dup2(saved, 1)
        os.close(saved)


if __name__ == "__main__":
    sys.exit(main())
