"""Measuring helpers shared by the runners: wall time, peak memory, per-step time limits.

    with PeakMemory(device) as mem, time_limit(600):
        t = timed(lambda: prog.run(batch), device)
    mem.peak_mb       # growth of the high-water mark over the level at entry, in MiB

Peak memory. CUDA: `torch.cuda.max_memory_allocated` after `reset_peak_memory_stats`, minus
what was allocated at entry. CPU: the process's resident high-water mark (VmHWM), reset at
entry by writing "5" to /proc/self/clear_refs (Linux), minus the RSS at entry; where that
is not possible, None. CPU RSS counts allocator caching too, so small figures are noisy.
"""
import contextlib
import os
import signal
import statistics
import sys
import time


def sync(device):
    if str(device).startswith("cuda"):
        import torch
        torch.cuda.synchronize()


def timed(fn, device, clock="wall"):
    """Seconds taken by fn() including device work it queued; clock "cpu": the process's CPU
    time instead (time.process_time: waiting for a core on a shared machine is not counted)."""
    if clock == "cpu" and device != "cpu":
        raise ValueError("--clock cpu times CPU runs only (device work is not the process's CPU time)")
    now = time.process_time if clock == "cpu" else time.perf_counter
    sync(device)
    t0 = now()
    result = fn()
    sync(device)
    return now() - t0, result


def median(values):
    return statistics.median(values) if values else None


def _status_kib(field):
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def _reset_hwm():
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


class PeakMemory:
    """Context manager: peak memory growth (MiB) of the block, or None where not measurable."""

    def __init__(self, device):
        self.cuda = str(device).startswith("cuda")
        self.peak_mb = None

    def __enter__(self):
        if self.cuda:
            import torch
            torch.cuda.reset_peak_memory_stats()
            self._base = torch.cuda.memory_allocated()
        else:
            self._ok = _reset_hwm()
            self._base = _status_kib("VmRSS")
        return self

    def __exit__(self, *exc):
        if self.cuda:
            import torch
            self.peak_mb = (torch.cuda.max_memory_allocated() - self._base) / 2**20
        elif self._ok and self._base is not None:
            hwm = _status_kib("VmHWM")
            if hwm is not None:
                self.peak_mb = max(0, hwm - self._base) / 1024
        return False


class StepTimeout(Exception):
    pass


@contextlib.contextmanager
def time_limit(seconds):
    """Raise StepTimeout in the main thread after `seconds` (no-op off the main thread / 0)."""
    if not seconds or not hasattr(signal, "SIGALRM"):
        yield
        return

    def on_alarm(signum, frame):
        raise StepTimeout(f"step took longer than {seconds} s")

    try:
        previous = signal.signal(signal.SIGALRM, on_alarm)
    except ValueError:  # not the main thread
        yield
        return
    signal.alarm(int(seconds))
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


def environment(device):
    """A few facts that make numbers comparable: versions, threads, device."""
    import platform

    import torch
    info = {"python": platform.python_version(), "torch": torch.__version__, "device": str(device),
            "threads": torch.get_num_threads(), "cpus": os.cpu_count()}
    if str(device).startswith("cuda") and torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name()
    # never import terra_dyn here: a process measuring torch.compile alone must stay without it
    terra_dyn = sys.modules.get("terra_dyn")
    info["terra_dyn"] = getattr(terra_dyn, "__version__", "?") if terra_dyn else "not loaded"
    return info
