"""Which frames an optimized call translates, by where their code lives.

    callback(frame) under optimize(...)
        code passed to optimize (an entry)            -> translate, wherever its file lives
        terra_dyn's own code, the stdlib, torch       -> SKIP (torch's nn module forwards
                                                         excepted: an optimized nn.Sequential
                                                         starts there)
        tooling packages (numpy, triton, sympy, ...)  -> SKIP: they are what runs graphs,
                                                         kernels and shape reasoning
        __getattribute__/__getattr__/__setattr__      -> SKIP (per-access hooks; inlined when
                                                         a translated frame reaches them)
        anything else, installed or not               -> translate: model code of an installed
                                                         library (transformers, timm, the
                                                         user's own package) is the user's code

Only frames that run natively reach this decision (a translated frame inlines what it
calls, wherever it lives); typically a library function whose call broke the caller's
graph, then runs and is translated on its own. The zero-change mode (auto.py) chooses its
entry points by file location separately: there, installed libraries are never entries.

Example: `optimize(AutoModelForCausalLM.from_config(cfg))` translates the model's
`forward` from site-packages/transformers, and a `LlamaAttention.forward` that runs
natively after a break is translated too.
"""
import os
import types
import weakref

import torch

_TERRA_DIR = os.path.dirname(os.path.abspath(__file__)) + os.sep
_STDLIB_DIR = os.path.dirname(os.path.abspath(os.__file__)) + os.sep
_TORCH_DIR = os.path.dirname(os.path.abspath(torch.__file__)) + os.sep
_TORCH_MODULES_DIR = os.path.join(_TORCH_DIR, "nn", "modules") + os.sep

# Installed packages that are tools, not models: the backends and torch run them while a
# graph or kernel executes (triton's launcher, sympy under symbolic sizes), and test
# runners call into them around user code. Their frames are never worth a translation.
TOOLING_PACKAGES = frozenset("""
    numpy triton sympy mpmath networkx jinja2 markupsafe filelock fsspec typing_extensions
    bytecode _pytest pytest pluggy hypothesis expecttest setuptools pkg_resources _distutils_hack
    functorch torchgen tqdm safetensors huggingface_hub tokenizers regex yaml packaging pydantic
    pydantic_core rich click typer httpx httpx2 httpcore httpcore2 anyio idna pygments
    sortedcontainers tomlkit kernels hf_xet
""".split())

# code objects passed to optimize (functions, module forwards), by identity: code objects
# compare equal by value, so a set would also match an equal copy
_entries = {}  # id(code) -> weakref to it

# Attribute-protocol hooks run on every attribute access of their objects (transformers'
# configs override __getattribute__): reached natively they hold no tensor work, and a
# translation per attribute name would only exhaust the recompile limit. Inlined, they
# are translated like any function.
_ATTRIBUTE_HOOKS = frozenset(("__getattribute__", "__getattr__", "__setattr__", "__delattr__"))


def mark_entry(fn_or_module):
    """Remember the code a user handed to optimize: always translated (see module doc)."""
    target = fn_or_module
    if isinstance(target, torch.nn.Module):
        target = type(target).forward
    code = getattr(getattr(target, "__func__", target), "__code__", None)
    if isinstance(code, types.CodeType):
        key = id(code)
        _entries[key] = weakref.ref(code, lambda _, key=key: _entries.pop(key, None))


def is_library_code(code: types.CodeType) -> bool:
    """True for frames an optimized call runs as they are (SKIP); see the module doc."""
    entry = _entries.get(id(code))
    if entry is not None and entry() is code:
        return False
    if code.co_name in _ATTRIBUTE_HOOKS:
        return True
    # normpath: a sys.path entry like "benchmarks/.." must not make our own frames look like
    # user code (they would then be translated, and translating the translator recurses).
    filename = os.path.normpath(code.co_filename)
    if code.co_name == "forward" and filename.startswith(_TORCH_MODULES_DIR):
        return False
    if filename == "<string>" and code.co_varnames[:1] == ("_cls",):
        return True  # collections.namedtuple's generated constructor
    return runs_as_written(filename)


def runs_as_written(filename: str) -> bool:
    """True for files whose frames are never translated: terra_dyn, torch, the stdlib, tooling."""
    filename = os.path.normpath(filename)
    if filename.startswith(("<frozen", "<eval_with_key>", "<terra_dyn")):
        return True
    if filename.startswith((_TERRA_DIR, _TORCH_DIR)):
        return True
    package = _installed_package(filename)
    if package is not None:
        return package in TOOLING_PACKAGES or package in ("torch", "terra_dyn")
    return filename.startswith(_STDLIB_DIR)


def _installed_package(filename):
    """The top-level package of a file under site-packages / dist-packages, else None."""
    parts = filename.split(os.sep)
    for marker in ("site-packages", "dist-packages"):
        if marker in parts:
            index = len(parts) - 1 - parts[::-1].index(marker)
            rest = parts[index + 1:]
            if not rest:
                return None
            return rest[0][:-3] if rest[0].endswith(".py") and len(rest) == 1 else rest[0]
    return None
