"""Builds terra_dyn and its C extension terra_dyn._C.

The C sources are listed once, in csrc/sources.txt, which CMakeLists.txt reads too.
"""
import os
import shutil
import sys
import sysconfig

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

HERE = os.path.dirname(os.path.abspath(__file__))
SUPPORTED = ((3, 11),)

if sys.version_info[:2] not in SUPPORTED:
    sys.exit(
        "terra_dyn supports CPython %s only; this is %d.%d."
        % (", ".join("%d.%d" % v for v in SUPPORTED), *sys.version_info[:2])
    )


def c_sources():
    with open(os.path.join(HERE, "csrc", "sources.txt")) as f:
        return [line.strip() for line in f if line.strip() and not line.startswith("#")]


class BuildExtWithClearErrors(build_ext):
    """Fails with one clear message when no C compiler or no Python headers are installed."""

    def build_extensions(self):
        cc = self.compiler.compiler_so[0] if getattr(self.compiler, "compiler_so", None) else "cc"
        if shutil.which(cc) is None:
            sys.exit(
                f"terra_dyn: no C compiler found ('{cc}'). Install one (Debian: apt-get install gcc) "
                "and the Python headers, then retry."
            )
        # The hook includes CPython's internal headers (internal/pycore_frame.h), which
        # some distributions ship apart from the interpreter.
        include = sysconfig.get_paths()["include"]
        if not os.path.exists(os.path.join(include, "internal", "pycore_frame.h")):
            sys.exit(
                f"terra_dyn: CPython's headers are missing ({include}/internal/pycore_frame.h). "
                "Install them (Debian: apt-get install python3.11-dev), then retry."
            )
        super().build_extensions()


# --- zero-code-change startup (TERRA_DYN=1): owned by terra_dyn/auto.py -----------------
# The one-line scripts/terra_dyn_auto.pth goes to the root of the wheel, i.e. into
# site-packages, where site.py runs it at every start-up. Editable installs do not ship
# top-level files: scripts/setup.sh copies it for those.
from setuptools.command.build_py import build_py  # noqa: E402

STARTUP_PTH = "terra_dyn_auto.pth"


class BuildPyWithStartupPth(build_py):
    def run(self):
        super().run()
        if not self.editable_mode:
            self.copy_file(os.path.join(HERE, "scripts", STARTUP_PTH), os.path.join(self.build_lib, STARTUP_PTH))

    def get_outputs(self, include_bytecode=True):
        outputs = super().get_outputs(include_bytecode)
        if not self.editable_mode:
            outputs.append(os.path.join(self.build_lib, STARTUP_PTH))
        return outputs
# --- end of the startup piece ------------------------------------------------------------


setup(
    ext_modules=[
        Extension(
            "terra_dyn._C",
            sources=c_sources(),
            extra_compile_args=["-O2", "-std=c11", "-Wall", "-Wno-missing-braces"],
        )
    ],
    cmdclass={"build_ext": BuildExtWithClearErrors, "build_py": BuildPyWithStartupPth},
)
