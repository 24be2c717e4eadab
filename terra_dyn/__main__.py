"""`python -m terra_dyn report script.py` == `terra-dyn report script.py` (see cli.py)."""
import sys

from .cli import main

sys.exit(main())
