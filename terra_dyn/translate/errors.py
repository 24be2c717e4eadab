"""Why a translation stopped: Unsupported and safe_repr live in terra_dyn/errors.py (codegen
raises Unsupported too, and codegen never imports translate); re-exported here for the
translator's modules."""
from ..errors import Unsupported, safe_repr  # noqa: F401
