"""Where generated kernels can run: Triton present, a CUDA GPU of compute capability >= 7.0,
or Triton's CPU interpreter (TRITON_INTERPRET=1) for CPU tensors.

    is_available()                 -> False on this CPU-only machine
    kernel_blocker(device, dtypes) -> None, or the one-line reason a group runs as ATen ops
"""
import functools
import os

import torch

# dtypes a kernel loads, computes and stores; others (complex, fp8, quantized) stay ATen calls.
KERNEL_DTYPES = {
    torch.float16: "fp16", torch.bfloat16: "bf16", torch.float32: "fp32", torch.float64: "fp64",
    torch.int8: "i8", torch.int16: "i16", torch.int32: "i32", torch.int64: "i64",
    torch.uint8: "u8", torch.bool: "i1",
}
MIN_CAPABILITY = (7, 0)


def interpreting() -> bool:
    """True when Triton runs kernels with its CPU interpreter (read at each call, as triton does)."""
    return os.environ.get("TRITON_INTERPRET", "0").strip().lower() in ("1", "true", "yes", "on")


@functools.lru_cache(maxsize=None)
def triton_import_error() -> str:
    try:
        import triton  # noqa: F401
        import triton.language  # noqa: F401
    except Exception as exc:  # any import failure means: no kernels, ATen only
        return f"triton is not importable ({type(exc).__name__}: {exc})"
    return ""


def why_unavailable() -> str:
    """'' when kernels can run on a CUDA GPU here, else the reason."""
    if triton_import_error():
        return triton_import_error()
    if not torch.cuda.is_available():
        return "no CUDA GPU (torch.cuda.is_available() is False)"
    capability = torch.cuda.get_device_capability()
    if capability < MIN_CAPABILITY:
        return f"GPU compute capability {capability[0]}.{capability[1]} < 7.0"
    return ""


def is_available() -> bool:
    """Triton importable and a CUDA GPU (sm_70 or newer) present."""
    return why_unavailable() == ""


@functools.lru_cache(maxsize=None)
def _capability(index):
    return torch.cuda.get_device_capability(index)


def _interpreter_blocker():
    # Triton builds its standard library (tl.sum, tl.max) once, at import: for the CPU
    # interpreter, TRITON_INTERPRET=1 must already be set when triton is first imported.
    import triton.language.standard as standard
    if type(standard.zeros_like).__name__ != "InterpretedFunction":
        return "triton was imported before TRITON_INTERPRET=1 was set"
    return ""


def kernel_blocker(device: torch.device, dtypes) -> str:
    """'' when a group on `device` with tensors of `dtypes` can run as a Triton kernel, else why not."""
    if triton_import_error():
        return triton_import_error()
    for dtype in dtypes:
        if dtype not in KERNEL_DTYPES:
            return f"dtype {dtype} has no Triton lowering"
    if device.type == "cpu":
        if not interpreting():
            return "CPU tensors (set TRITON_INTERPRET=1 to run kernels on CPU)"
        return _interpreter_blocker()
    if device.type != "cuda":
        return f"device {device} is not CUDA"
    if interpreting():
        return "TRITON_INTERPRET=1 runs kernels on CPU tensors only"
    capability = _capability(device.index if device.index is not None else torch.cuda.current_device())
    if capability < MIN_CAPABILITY:
        return f"GPU compute capability {capability[0]}.{capability[1]} < 7.0"
    return ""
