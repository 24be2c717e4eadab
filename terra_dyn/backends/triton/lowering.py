"""Moved to terra_dyn/backends/fusion/lowering.py (shared by the Triton and CPU backends)."""
from ..fusion.lowering import VIEW_OPS, is_inplace, lower_to_aten  # noqa: F401
