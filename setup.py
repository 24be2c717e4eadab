"""Builds terra_dyn, its C extension terra_dyn._C and the optional C++ module
terra_dyn._tensor_check (the fast path of tensor guard checks; it links libtorch).

The sources are listed once, in csrc/sources.txt (C) and csrc/sources_cxx.txt (C++),
which CMakeLists.txt reads too. If the C++ module cannot be built (no C++ compiler, no
torch headers), the install still succeeds, with a warning: guards then read tensor
metadata through the Python API (slower, same answers).
"""
import os
import shutil
import sys
import sysconfig

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

HERE = os.path.dirname(os.path.abspath(__file__))


def _python_support_reason():
    """terra_dyn/pyversion.py's check, loaded alone (the package imports torch and more)."""
    import importlib.util

    path = os.path.join(HERE, "terra_dyn", "pyversion.py")
    spec = importlib.util.spec_from_file_location("_terra_dyn_pyversion", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.unsupported_reason()


_UNSUPPORTED = _python_support_reason()
if _UNSUPPORTED is not None:
    sys.exit(_UNSUPPORTED)


def listed_sources(name="sources.txt"):
    with open(os.path.join(HERE, "csrc", name)) as f:
        return [line.strip() for line in f if line.strip() and not line.startswith("#")]


TENSOR_CHECK = "terra_dyn._tensor_check"


def tensor_check_extension():
    """The optional C++ module, compiled against the installed torch (--no-build-isolation)."""
    try:
        import torch
        from torch.utils import cpp_extension
    except Exception as e:  # noqa: BLE001 - any failure only loses the fast path
        print(f"WARNING: terra_dyn: torch is not importable ({e}); building without the fast "
              "tensor guard checks (terra_dyn._tensor_check).", file=sys.stderr)
        return []
    libs = cpp_extension.library_paths()
    abi = int(torch.compiled_with_cxx11_abi())
    return [Extension(
        TENSOR_CHECK,
        sources=listed_sources("sources_cxx.txt"),
        include_dirs=[os.path.join(HERE, "csrc"), *cpp_extension.include_paths()],
        library_dirs=libs,
        runtime_library_dirs=libs,
        libraries=["c10", "torch", "torch_cpu", "torch_python"],
        extra_compile_args=["-O2", "-std=c++20", "-Wall", "-fvisibility=hidden",
                            f"-D_GLIBCXX_USE_CXX11_ABI={abi}"],
        language="c++",
        optional=True,
    )]


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
                f"Install them (Debian: apt-get install python{sys.version_info[0]}.{sys.version_info[1]}-dev), "
                "then retry."
            )
        super().build_extensions()

    def build_extension(self, ext):
        if ext.name != TENSOR_CHECK:
            return super().build_extension(ext)
        try:
            super().build_extension(ext)
        except Exception as e:  # noqa: BLE001 - optional: never fail the install for it
            print(f"WARNING: terra_dyn: could not build {TENSOR_CHECK} ({e}); tensor guard checks "
                  "will use the slower Python-API path. Install a C++ compiler (g++) and retry "
                  "for the fast path.", file=sys.stderr)


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
            sources=listed_sources(),
            extra_compile_args=["-O2", "-std=c11", "-Wall", "-Wno-missing-braces"],
        ),
        *tensor_check_extension(),
    ],
    cmdclass={"build_ext": BuildExtWithClearErrors, "build_py": BuildPyWithStartupPth},
)
