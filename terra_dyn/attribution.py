"""Whose code is this line? The user's, a library's, or terra_dyn's own.

A report speaks about the user's code: a break recorded deep inside argparse, torch or
terra_dyn is shown under the user's line that called into it (the innermost user entry
of the break's stack), and the library's file only as where, inside that call, it broke.

    "/venv/.../argparse.py:1395 in _registry_get"   -> library "argparse"
    "/home/me/train.py:84 in train_step"             -> user: ("/home/me/train.py", 84)
    "/src/terra_dyn/backends/__init__.py:59"         -> library "terra_dyn" (never shown)

User files are what zero-change mode treats as entry points (auto.EntryPointFilter): not
the standard library, site-packages/dist-packages, torch or terra_dyn, and not code made by
exec (`<frozen os>`, `<eval_with_key>.3`) except `<string>` / `<stdin>` (python -c).
"""
import functools
import linecache
import os
import sys
import sysconfig

_TERRA_DIR = os.path.dirname(os.path.abspath(__file__)) + os.sep
_PSEUDO_USER_FILES = ("<string>", "<stdin>")


@functools.lru_cache(maxsize=None)
def _library_dirs():
    paths = sysconfig.get_paths()
    dirs = {paths.get(k) for k in ("stdlib", "platstdlib", "purelib", "platlib")}
    dirs.add(os.path.dirname(os.__file__))
    torch = sys.modules.get("torch")
    if torch is not None:
        dirs.add(os.path.dirname(os.path.abspath(torch.__file__)))
    return tuple(os.path.realpath(d) + os.sep for d in dirs if d)


@functools.lru_cache(maxsize=4096)
def is_user_file(filename: str) -> bool:
    if filename.startswith("<"):
        return filename in _PSEUDO_USER_FILES
    path = os.path.normpath(os.path.abspath(filename))
    if path.startswith(_TERRA_DIR) or os.path.realpath(path).startswith(_TERRA_DIR):
        return False
    parts = path.split(os.sep)
    if "site-packages" in parts or "dist-packages" in parts:
        return False
    return not os.path.realpath(path).startswith(_library_dirs())


def is_terra_dyn_file(filename: str) -> bool:
    return os.path.normpath(os.path.abspath(filename)).startswith(_TERRA_DIR)


@functools.lru_cache(maxsize=4096)
def library_name(filename: str) -> str:
    """The library a file belongs to, as a user knows it: "argparse", "torch", "terra_dyn"."""
    if is_terra_dyn_file(filename):
        return "terra_dyn"
    if filename.startswith("<frozen "):
        return filename[len("<frozen "):-1].split(".")[0]
    if filename.startswith("<"):
        return "generated code"
    parts = os.path.normpath(filename).split(os.sep)
    for marker in ("site-packages", "dist-packages"):
        if marker in parts:
            rest = parts[parts.index(marker) + 1:]
            return os.path.splitext(rest[0])[0] if rest else marker
    for root in _library_dirs():
        if filename.startswith(root):
            rest = filename[len(root):].split(os.sep)
            return os.path.splitext(rest[0])[0] if rest[0] else os.path.basename(filename)
    return os.path.splitext(os.path.basename(filename))[0]


def parse_stack_entry(entry: str):
    """"train.py:12 in step" -> ("train.py", 12, "step")."""
    where, sep, func = entry.rpartition(" in ")
    if not sep:
        where, func = entry, ""
    filename, _, line = where.rpartition(":")
    return (filename, int(line), func) if filename and line.isdigit() else (entry, 0, func)


def user_location(filename, lineno, user_stack):
    """(file, line) of the innermost user entry of a stack ("file:line in func", outermost
    first), ending at (filename, lineno); the outermost entry when no entry is the user's."""
    entries = [parse_stack_entry(e)[:2] for e in user_stack] + [(filename, lineno)]
    for where in reversed(entries):
        if is_user_file(where[0]):
            return where
    return entries[0]


def source_line(filename, lineno) -> str:
    return linecache.getline(filename, lineno).strip() if lineno else ""


def short_path(filename: str) -> str:
    """A filename as short as still clear: relative to the working directory, or its tail."""
    if filename.startswith("<"):
        return filename
    try:
        rel = os.path.relpath(filename)
    except ValueError:
        rel = filename
    if not rel.startswith(".."):
        return rel
    parts = filename.split(os.sep)
    return os.sep.join(["..."] + parts[-2:]) if len(parts) > 3 else filename
