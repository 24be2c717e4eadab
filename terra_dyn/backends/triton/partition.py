"""Moved to terra_dyn/backends/fusion/partition.py (shared by the Triton and CPU backends)."""
from ..fusion.partition import FusionGroup, partition, shape_of  # noqa: F401
