"""Which interpreters terra_dyn's frame hook supports, and the one message for the rest.

    unsupported_reason((3, 14), "cpython", False)  -> "terra_dyn's frame hook supports ..."
    unsupported_reason()                           -> None on a supported interpreter
    check_python_version()                         # raises ImportError with that message

The C core (csrc/frame_api.h) reads CPython's internal frame layout, which differs per
minor version: each supported version has its own branch there, and a version without one
must stop here with a clear message rather than crash. Free-threaded builds
(Py_GIL_DISABLED, e.g. python3.13t) change the object layout the C core relies on.
Pure function of its inputs, so the message logic is tested on any interpreter.
"""
import sys
import sysconfig

SUPPORTED_VERSIONS = ((3, 11), (3, 12), (3, 13))


def _free_threaded_build():
    return bool(sysconfig.get_config_var("Py_GIL_DISABLED"))


def unsupported_reason(version=None, implementation=None, free_threaded=None):
    """None when the hook supports this interpreter, else the error message (one line)."""
    version = tuple((sys.version_info if version is None else version)[:2])
    implementation = sys.implementation.name if implementation is None else implementation
    free_threaded = _free_threaded_build() if free_threaded is None else free_threaded
    supported = ", ".join("%d.%d" % v for v in SUPPORTED_VERSIONS)
    this = f"{version[0]}.{version[1]}"
    if implementation != "cpython":
        this += f" ({implementation})"
    elif free_threaded:
        this += " (free-threaded build)"
    if version in SUPPORTED_VERSIONS and implementation == "cpython" and not free_threaded:
        return None
    return (f"terra_dyn's frame hook supports CPython {supported} (with the GIL) only; this is "
            f"{this}. terra_dyn.backends works without it; terra_dyn.optimize needs it.")


def check_python_version():
    """Raise ImportError unless this interpreter is one the C hook supports."""
    reason = unsupported_reason()
    if reason is not None:
        raise ImportError(reason)
