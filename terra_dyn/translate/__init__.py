"""The translator: CPython 3.11 bytecode -> FX graph + guards + rewritten code.

    frame.translate_frame(frame, options) -> FrameTranslation        (entry point)
      context.TranslationContext   one attempt: graph, guards, effects, options
      executor.Translator          the symbolic interpreter, one per (inlined) frame
        ..bytecode_info            a code object's instructions, labels, try regions
        opcodes_stack / opcodes_control / opcodes_call    opcode handlers by family
        calls -> torch_ops, modules, builtins_ops, inline   what a call means
        operators, attributes      what an operator / `.name` means
      values, sources, wrap        abstract values, where they live at run time, wrapping
      graph_state, guards          the FX graph being built, the facts it relies on
      side_effects                 Python effects replayed after the graph (no break)
    then codegen (graph_call, reconstruct, resume) builds the code object.

Example:
    t = translate_code(f.__code__, {"x": x}, f.__globals__, TranslateOptions(backend))
    t.graphs[0].print_readable(); t.guard.check(x); types.FunctionType(t.code, f.__globals__)(x)
"""
from .errors import Unsupported
from .frame import FrameTranslation, FullgraphError, TranslateOptions, translate_code, translate_frame

__all__ = ["Unsupported", "FrameTranslation", "FullgraphError", "TranslateOptions",
           "translate_code", "translate_frame"]
