"""Code generation: rewritten code objects that call compiled graphs (see docs/CONTRACTS.md)."""
from .signature import flatten_signature, argument_slot_names

__all__ = ["flatten_signature", "argument_slot_names"]
