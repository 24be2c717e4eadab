"""Tests of the C frame hook (csrc/) and its Python glue (terra_dyn/eval_frame.py)."""
