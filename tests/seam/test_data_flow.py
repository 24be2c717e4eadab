"""Data flows one way: hook -> translate -> backend -> codegen -> cache.

translate hands codegen a plan (CodePlan, BreakSite) whose values rebuild themselves and
whose side-effect records replay themselves; codegen never imports terra_dyn.translate.
What both need lives on neutral ground (terra_dyn/errors.py, terra_dyn/bytecode_info.py,
terra_dyn/seam), which imports neither. Checked on the source with `ast`, so an import
inside a function counts too.
"""
import ast
import pathlib

import pytest

import terra_dyn

PACKAGE = pathlib.Path(terra_dyn.__file__).parent


def _module_name(path):
    parts = ["terra_dyn"] + list(path.relative_to(PACKAGE).with_suffix("").parts)
    return ".".join(parts)


def _imported_modules(source, module_name, is_package=False):
    """Absolute names of every module `source` imports (`from X import y` gives X and X.y)."""
    package = module_name.split(".") if is_package else module_name.split(".")[:-1]
    out = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            out += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = package[:len(package) - node.level + 1] if node.level else []
            module = ".".join(base + ([node.module] if node.module else []))
            out += [module] + [f"{module}.{a.name}" for a in node.names]
    return out


def _offenders(files, forbidden):
    found = []
    for path in files:
        name = _module_name(path)
        is_package = path.name == "__init__.py"
        if is_package:
            name = name.rsplit(".", 1)[0]
        for imported in _imported_modules(path.read_text(), name, is_package):
            if any(imported == f or imported.startswith(f + ".") for f in forbidden):
                found.append(f"{path.relative_to(PACKAGE.parent)} imports {imported}")
    return found


def test_codegen_never_imports_translate():
    files = sorted((PACKAGE / "codegen").rglob("*.py"))
    assert files
    assert _offenders(files, ["terra_dyn.translate"]) == []


@pytest.mark.parametrize("neutral", ["errors.py", "bytecode_info.py", "seam"])
def test_neutral_modules_import_neither_translate_nor_codegen(neutral):
    path = PACKAGE / neutral
    files = sorted(path.rglob("*.py")) if path.is_dir() else [path]
    assert _offenders(files, ["terra_dyn.translate", "terra_dyn.codegen"]) == []


def test_the_check_resolves_relative_and_late_imports():
    source = ("from .. import translate\nfrom ..errors import Unsupported\n"
              "def f():\n    from ..translate.values import ConstValue\n")
    names = _imported_modules(source, "terra_dyn.codegen.graph_call")
    assert "terra_dyn.translate" in names and "terra_dyn.translate.values.ConstValue" in names
    assert "terra_dyn.errors" in names
    assert "terra_dyn.seam" in _imported_modules("from . import seam\n", "terra_dyn", is_package=True)
