"""Builds terra_dyn and its C extension terra_dyn._C.

The C sources are listed once, in csrc/sources.txt, which CMakeLists.txt reads too.
"""
import os
import shutil
import sys

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
    """Fails with one clear message when no C compiler is installed."""

    def build_extensions(self):
        cc = self.compiler.compiler_so[0] if getattr(self.compiler, "compiler_so", None) else "cc"
        if shutil.which(cc) is None:
            sys.exit(
                f"terra_dyn: no C compiler found ('{cc}'). Install one (Debian: apt-get install gcc) "
                "and the Python headers, then retry."
            )
        super().build_extensions()


setup(
    ext_modules=[
        Extension(
            "terra_dyn._C",
            sources=c_sources(),
            extra_compile_args=["-O2", "-std=c11", "-Wall", "-Wno-missing-braces"],
        )
    ],
    cmdclass={"build_ext": BuildExtWithClearErrors},
)
