"""Moved to terra_dyn/backends/fusion/decompositions.py (shared by the Triton and CPU backends)."""
from ..fusion.decompositions import table  # noqa: F401
