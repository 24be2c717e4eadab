"""The translator: CPython 3.11 bytecode -> FX graph + guards + rewritten code.

    frame.translate_frame(frame, options) -> FrameTranslation        (entry point)
      executor.Translator       the symbolic interpreter, one per (inlined) frame
        opcodes_stack / opcodes_control / opcodes_call    opcode handlers by family
        calls -> torch_ops, modules, builtins_ops, inline   what a call means
        operators, attributes                             what an operator / `.name` means
      values, sources, wrap     abstract values, where they live at run time, wrapping
      graph_state, guards       the FX graph being built, the facts it relies on
      side_effects              Python effects replayed after the graph (no break)
"""
from .errors import Unsupported
from .frame import FrameTranslation, FullgraphError, TranslateOptions, translate_code, translate_frame

__all__ = ["Unsupported", "FrameTranslation", "FullgraphError", "TranslateOptions",
           "translate_code", "translate_frame"]
