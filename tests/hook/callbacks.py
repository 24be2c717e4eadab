"""Callbacks the hook tests install: identity translations that record what they saw.

    cb = RecordingCallback()                  # CacheEntry(Guard([]), flattened code) for
    fast = optimized_callable(f, cb)          # this test folder's code, SKIP for the rest
    fast(1); fast(2); assert cb.names == ["f"]
"""
import os

from terra_dyn import _C
from terra_dyn.codegen import flatten_signature

TEST_DIR = os.path.dirname(os.path.abspath(__file__))


def is_test_code(code):
    return os.path.dirname(os.path.abspath(code.co_filename)) == TEST_DIR


class RecordingCallback:
    """Identity translation of test code; records each frame's code name and locals."""

    def __init__(self, guard=None, answer=None):
        self.names = []
        self.locals = []
        self.guard = guard
        self.answer = answer  # overrides the CacheEntry (None means: make one)

    def __call__(self, frame):
        code = frame.f_code
        if not is_test_code(code):
            return _C.SKIP
        self.names.append(code.co_name)
        self.locals.append(dict(frame.f_locals))
        if self.answer is not None:
            return self.answer
        return _C.CacheEntry(self.guard or _C.Guard([]), flatten_signature(code))

    def __repr__(self):
        return f"RecordingCallback(names={self.names})"
