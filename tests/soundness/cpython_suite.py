"""CPython's own regression tests for the language features the translator models, with
every test method optimized, compared per test with a plain run.

    python -m tests.soundness.cpython_suite                       # every module below
    python -m tests.soundness.cpython_suite test_scope test_with  # some of them

Each module runs in two subprocesses: plainly, and with each test method of each TestCase
replaced (on the instance) by `terra_dyn.optimize(method, backend="interpreter")` before it
runs. Outcomes (ok, FAIL, ERROR, skip, expected failure, unexpected success) are compared
test by test; a difference is a test whose outcome changed. Doctest-based tests run plainly
in both (they are not methods). The target is no difference.
"""
import json
import os
import subprocess
import sys
import time

MODULES = [
    "test_scope", "test_with", "test_unpack", "test_unpack_ex", "test_augassign", "test_keywordonlyarg",
    "test_decorators", "test_funcattrs", "test_listcomps", "test_setcomps", "test_dictcomps",
    "test_genexps", "test_generators", "test_exceptions", "test_class", "test_property", "test_super",
    "test_contextlib", "test_patma", "test_descr", "test_dataclasses",
    # language features added in the twelfth session
    "test_grammar", "test_raise", "test_named_expressions", "test_global", "test_opcodes",
    "test_except_star", "test_exception_variations", "test_baseexception", "test_richcmp",
    "test_compare", "test_bool", "test_iter", "test_contains", "test_slice", "test_unary",
    "test_dictviews", "test_isinstance", "test_positional_only_arg", "test_yield_from",
    "test_generator_stop", "test_typechecks", "test_exception_hierarchy", "test_syntax",
]
FAST = ["test_scope", "test_with", "test_unpack_ex", "test_keywordonlyarg", "test_decorators", "test_property"]
_MARK = "@@terra_dyn_outcomes@@"


def _child(module, optimized):
    """Runs in the subprocess: print {test id: outcome} as JSON after a marker."""
    import importlib
    import unittest
    import warnings

    if optimized:
        import terra_dyn

    class Outcomes(unittest.TestResult):
        def __init__(self):
            super().__init__()
            self.outcomes = {}

        def addSuccess(self, test):
            self.outcomes[test.id()] = "ok"

        def addFailure(self, test, err):
            self.outcomes[test.id()] = "FAIL"

        def addError(self, test, err):
            self.outcomes[test.id()] = "ERROR"

        def addSkip(self, test, reason):
            self.outcomes[test.id()] = "skip"

        def addExpectedFailure(self, test, err):
            self.outcomes[test.id()] = "xfail"

        def addUnexpectedSuccess(self, test):
            self.outcomes[test.id()] = "xpass"

        def addSubTest(self, test, subtest, err):
            if err is not None:
                self.outcomes[subtest.id()] = "FAIL" if issubclass(err[0], self.failureException) else "ERROR"

    def optimize_methods(suite):
        for test in suite:
            if isinstance(test, unittest.TestSuite):
                optimize_methods(test)
            elif optimized and isinstance(test, unittest.TestCase) and \
                    type(test).__module__ != "doctest" and hasattr(test, "_testMethodName"):
                name = test._testMethodName
                method = getattr(test, name, None)
                if method is not None and hasattr(method, "__func__"):
                    setattr(test, name, terra_dyn.optimize(method, backend="interpreter"))

    mod = _import_as_user_code(module)
    suite = unittest.TestLoader().loadTestsFromModule(mod)
    optimize_methods(suite)
    result = Outcomes()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        suite.run(result)
    if optimized:  # how much really ran translated: entries made, frames that fell back
        from terra_dyn import convert_frame, report

        fallbacks = len(report.global_report().fallbacks)
        result.outcomes["@translations"] = sum(s.entries for s in convert_frame._states.values())
        result.outcomes["@fallbacks"] = fallbacks
    print(_MARK + json.dumps(result.outcomes))


def _import_as_user_code(module):
    """The module copied out of the stdlib directory (frames of stdlib files are never entry
    points, so they would run plainly) into a temporary directory, imported from there."""
    import importlib
    import shutil
    import tempfile

    import test

    source = os.path.join(os.path.dirname(test.__file__), module)
    where = tempfile.mkdtemp(prefix="terra_dyn_cpython_suite_")
    if os.path.isdir(source):
        shutil.copytree(source, os.path.join(where, module))
    else:
        shutil.copy(source + ".py", where)
    sys.path.insert(0, where)
    return importlib.import_module(module)


def run_module(module, optimized, timeout=600):
    env = {k: v for k, v in os.environ.items() if not k.startswith("TERRA_DYN")}
    code = f"from tests.soundness.cpython_suite import _child; _child({module!r}, {optimized!r})"
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    try:
        proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                              cwd=root, timeout=timeout)
    except subprocess.TimeoutExpired:
        return None, "timed out"
    for line in proc.stdout.splitlines():
        if line.startswith(_MARK):
            return json.loads(line[len(_MARK):]), ""
    return None, (proc.stderr or proc.stdout)[-2000:]


def compare(module, timeout=600):
    """(number of tests, [differences], {translations, fallbacks}) for one module."""
    plain, why = run_module(module, False, timeout)
    if plain is None:
        return 0, [f"{module}: the plain run failed: {why}"], {}
    fast, why = run_module(module, True, timeout)
    if fast is None:
        return len(plain), [f"{module}: the optimized run failed: {why}"], {}
    stats = {k: fast.pop(k, 0) for k in ("@translations", "@fallbacks")}
    diffs = [f"{test}: plain {plain.get(test)} optimized {fast.get(test)}"
             for test in sorted(set(plain) | set(fast)) if plain.get(test) != fast.get(test)]
    return len(plain), diffs, stats


def _unknown(modules):
    """The names that are not modules of CPython's test package here."""
    import test

    where = os.path.dirname(test.__file__)
    return [m for m in modules if not (os.path.isdir(os.path.join(where, m)) or
                                       os.path.isfile(os.path.join(where, m + ".py")))]


def main(argv=None):
    modules = (argv if argv is not None else sys.argv[1:]) or MODULES
    unknown = _unknown(modules)
    if unknown:
        print(__doc__.split("\n\n")[1], file=sys.stderr)
        print(f"not a module of CPython's test package: {', '.join(unknown)}", file=sys.stderr)
        return 2
    total_tests, total_diffs = 0, 0
    for module in modules:
        t0 = time.time()
        n, diffs, stats = compare(module)
        total_tests += n
        total_diffs += len(diffs)
        print(f"{module}: {n} tests, {len(diffs)} differences; {stats.get('@translations', 0)} translations, "
              f"{stats.get('@fallbacks', 0)} frames run plainly ({time.time() - t0:.0f} s)", flush=True)
        for d in diffs:
            print("   ", d)
    print(f"{len(modules)} modules, {total_tests} tests, {total_diffs} differences")
    return 1 if total_diffs else 0


if __name__ == "__main__":
    sys.exit(main())
