"""Tracebacks through graph breaks that read like eager ones: no terra_dyn frames, no
function listed twice.

A break splits `f` into its rewritten code (up to the break) and resume functions (after
it), run by codegen's trampoline. An exception raised after the break would otherwise show

    f        line 6   (rewritten code, at the break)
    run_function      (terra_dyn/codegen/resume.py)
    f        line 7   (resume function, at the raise)

`hide_internal_frames(exc)`, called by the trampoline as the exception passes, removes
terra_dyn's own entries, and every rewritten entry followed by its own continuation (a
resume function, or the original code re-run after a graph error), from the traceback
below it. The entry of the outermost rewritten frame is added by Python after the
trampoline has run: the C hook drops it when the entry below continues the same call
(`continues`, asked from csrc/eval_frame.c on that exception path only).
"""
import os
import weakref

_TERRA_DIR = os.path.dirname(os.path.abspath(__file__)) + os.sep
# id(rewritten code) -> weak references to it and to the code it was translated from (the
# source's cache holds the rewritten code: a strong one here would keep both alive); by id,
# as a code object with a dict among its constants cannot be hashed
_translated_from = {}


def note_translation(rewritten, source):
    """`rewritten` runs in place of `source`'s frames (a resume code is translated too)."""
    key = id(rewritten)
    _translated_from[key] = (weakref.ref(rewritten, lambda _: _translated_from.pop(key, None)),
                             weakref.ref(source))


def origin(code):
    """The user's code object that `code` runs a part of: through a translation, then
    through a cut (resume or step code); `code` itself for any other code."""
    from .codegen.resume import original_code

    refs = _translated_from.get(id(code))
    source = refs[1]() if refs is not None and refs[0]() is code else None
    source = source or code
    return original_code(source) or source


def continues(original, code):
    """Does `code` run the rest of a call of `original`?"""
    return origin(code) is original


def hide_internal_frames(exc):
    tb = exc.__traceback__
    entries = []
    while tb is not None:
        entries.append(tb)
        tb = tb.tb_next
    kept = [t for t in entries if not t.tb_frame.f_code.co_filename.startswith(_TERRA_DIR)]
    kept = [t for i, t in enumerate(kept) if not (i + 1 < len(kept) and _continued_by(t, kept[i + 1]))]
    for a, b in zip(kept, kept[1:]):
        a.tb_next = b
    if kept:
        kept[-1].tb_next = None
        exc.__traceback__ = kept[0]
    return exc


def _continued_by(entry, following):
    """`entry` runs a rewritten or resume code of the function that `following` continues:
    in a resume function, or in its original code (a graph that raised re-runs natively,
    codegen/graph_errors.py)."""
    a, b = entry.tb_frame.f_code, following.tb_frame.f_code
    source = origin(b)
    return a is not b and a is not source and a.co_filename == source.co_filename \
        and a.co_firstlineno == source.co_firstlineno and a.co_name == source.co_name
