"""The hook's callback: turn a frame into a cache entry (guard + rewritten code).

    hook (C) --miss--> callback(frame) --> translate.translate_frame --> backend --> codegen
                                      \\-> on any failure: fall back (SKIP / original code)

PLACEHOLDER (foundation issue): an identity translation, so that the whole path
call -> hook -> callback -> cache -> run is real before translation exists.
"""
import os
import types

import torch

from . import _C
from .codegen import flatten_signature

_LIBRARY_DIRS = tuple(
    os.path.dirname(os.path.abspath(m.__file__)) + os.sep
    for m in (os, torch)
)
_TERRA_DIR = os.path.dirname(os.path.abspath(__file__)) + os.sep


def is_library_code(code: types.CodeType) -> bool:
    """Frames of the stdlib, torch and terra_dyn itself are never entry points."""
    filename = code.co_filename
    return filename.startswith(_TERRA_DIR) or filename.startswith(_LIBRARY_DIRS)


def make_callback(backend="auto", fullgraph=False, strict=False):
    """The callback installed by `optimize` for one set of options."""

    def callback(frame):
        code = frame.f_code
        if is_library_code(code):
            return _C.SKIP
        return _C.CacheEntry(_C.Guard([]), flatten_signature(code))

    return callback
