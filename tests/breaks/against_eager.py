"""Run a function optimized and plainly, call by call, and compare everything a user sees.

    reports = run_both(fn, make_args, log, calls_counter, calls=3, printed=None)

make_args(i) gives call i's arguments (fresh tensors each time); `log` (a list) and
`calls_counter` (a Counter) are the test module's own records of effects and of calls into
user code, cleared before each run; printed() returns the text printed since it was last
called (pytest's `capsys.readouterr().out`). Values, exception types and messages, the log,
the call counts and the printed text must be equal; returns the optimized calls' reports.
"""
import torch

import terra_dyn
from terra_dyn import report


def run_both(fn, make_args, log, calls_counter, calls=3, printed=None):
    fast = terra_dyn.optimize(fn, backend="interpreter")
    reports = []
    for i in range(calls):
        outcomes = []
        for runner in (fast, fn):
            log.clear()
            calls_counter.clear()
            with report.recording() as rec:
                try:
                    value, error = runner(*make_args(i)), None
                except Exception as exc:  # compared with eager's below
                    value, error = None, exc
            text = printed() if printed is not None else ""
            outcomes.append((value, error, text, list(log), dict(calls_counter)))
            if runner is fast:
                reports.append(rec.report())
        (ours, ours_err, *ours_effects), (eager, eager_err, *eager_effects) = outcomes
        assert type(ours_err) is type(eager_err) and str(ours_err) == str(eager_err)
        torch.testing.assert_close(ours, eager)
        assert ours_effects == eager_effects  # printed text, log, calls into user code
    return reports
