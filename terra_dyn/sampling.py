"""Where the time goes: a sampling pass over the main thread while a script runs.

A CPU-time interval timer (SIGPROF, every `interval` seconds of CPU) interrupts the main thread
between two bytecodes; the handler reads the current stack (its own thread's: safe, unlike
reading another thread's frames while the frame hook is inside a call) and files the time
since the previous sample under the innermost line of the user's own code, in one of three
states:

    translating  terra_dyn's callback is on the stack (translate, backend compile, codegen)
    graph        a compiled graph is running (FX-generated code or a terra_dyn backend)
    python       anything else: the user's Python, library calls, code run at graph breaks

    with Sampler() as sampler:          # `terra-dyn report` and TERRA_DYN_REPORT use it
        run_the_script()
    sampler.seconds()   # {("train.py", 84): {"python": 0.12, "graph": 0.03}, ...}

Time since the previous sample, not a count: a long C call (a matmul) delays the signal,
and its whole duration goes to the line that made it. The "python" time at a break's line
is the time the program spends outside graphs there: what the break costs at most.
SIGPROF, not SIGALRM: scripts use alarms, rarely profiling timers (and timers are not
inherited by forked workers). Only from the main thread, and only if nothing else has
claimed SIGPROF; otherwise the sampler does nothing and the report ranks by estimate.
"""
import os
import signal
import threading
import time

from .attribution import is_user_file

_TERRA_DIR = os.path.dirname(os.path.abspath(__file__)) + os.sep
# translation happens only inside convert_frame's callback (codegen's trampolines also run
# at run time, so their frames say nothing about the state)
_CALLBACK_FILES = (os.path.join(_TERRA_DIR, "convert_frame.py"),)
_BACKEND_DIR = os.path.join(_TERRA_DIR, "backends") + os.sep


class Sampler:
    """Samples the main thread from `start()` to `stop()`."""

    def __init__(self, interval=0.001):
        self.interval = interval
        self.times = {}  # (filename, lineno, state) -> seconds
        self.active = False
        self._last = 0.0
        self._previous = None

    def start(self):
        if threading.current_thread() is not threading.main_thread() or not hasattr(signal, "setitimer"):
            return self
        if signal.getsignal(signal.SIGPROF) not in (signal.SIG_DFL, None):
            return self  # another profiler's: leave it alone
        self._previous = signal.signal(signal.SIGPROF, self._sample)
        self._last = time.perf_counter()
        signal.setitimer(signal.ITIMER_PROF, self.interval, self.interval)
        self.active = True
        return self

    def stop(self):
        if not self.active:
            return self
        signal.setitimer(signal.ITIMER_PROF, 0, 0)
        if signal.getsignal(signal.SIGPROF) == self._sample:
            signal.signal(signal.SIGPROF, self._previous or signal.SIG_DFL)
        self.active = False
        return self

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    def _sample(self, signum, frame):
        now = time.perf_counter()
        key = classify(frame)
        self.times[key] = self.times.get(key, 0.0) + (now - self._last)
        self._last = now

    def seconds(self):
        """{(filename, lineno): {state: seconds}}; the unattributed go under ("", 0)."""
        out = {}
        for (filename, lineno, state), s in list(self.times.items()):
            per_state = out.setdefault((filename, lineno), {})
            per_state[state] = per_state.get(state, 0.0) + s
        return out


def classify(frame):
    """(user file, user line, state) for a stack whose innermost frame is `frame`."""
    user = None
    state = "python"
    while frame is not None:
        filename = frame.f_code.co_filename
        if filename.startswith(_CALLBACK_FILES):
            state = "translating"  # outermost wins: a backend compiling inside the callback
        elif state == "python" and (filename.startswith("<eval_with_key>") or filename.startswith(_BACKEND_DIR)):
            state = "graph"
        if user is None and frame.f_lineno and is_user_file(filename):
            user = (filename, frame.f_lineno or 0)
        frame = frame.f_back
    return (user or ("", 0)) + (state,)
