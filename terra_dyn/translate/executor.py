"""The symbolic interpreter: walks one code object's bytecode over abstract values.

    Translator.run()
        for each instruction at pc:
            stop here?  (ctx.stop_at: the break point chosen by a previous attempt)
                -> raise StopTranslation(self)       the frame's state becomes a break
            handler = getattr(self, instr.name)     one method per opcode (opcodes_*.py)
            handler(instr)                          pops/pushes Values, adds FX nodes
        RETURN_VALUE -> self.result

The opcode handlers live in mixins by family (opcodes_stack, opcodes_control,
opcodes_call), with the running version's own opcodes first (opcodes_py312); what a call
does with its callee is in calls.py. An inlined function runs
in a child Translator sharing the context (graph, guards); its Unsupported propagates to
the caller, which is where a graph break then splits (the caller's call site).

try/except and try/finally bodies are translated along their normal path; the handlers
run natively when an exception is raised, except in inlined functions, where an exception
known at translate time goes to its handler translated (exceptions.py). Shapes are checked at translate time; an op that
raises only at run time (an index out of range) makes the rewritten code re-run the
segment natively (codegen/graph_errors.py), so the handler runs at the user's line. A break
inside a try body or a Python with block runs the breaking instruction in a step code that
keeps the original exception table, then resumes in translated code (codegen/resume.py).

Example: for `def f(x): return x.relu() + 1`, run() leaves result = TensorValue(add) and
ctx.graph holds placeholder x -> call_method relu -> call_function add.
"""
import collections
import sys
import time

from bytecode import Label, SetLineno, TryBegin, TryEnd

from ..bytecode_info import code_info
from .errors import Unsupported
from .exceptions import ExceptionOpcodes, KnownRaise, unwind
from .opcodes_call import CallOpcodes
from .opcodes_control import ControlOpcodes
from .opcodes_import import ImportOpcodes
from .opcodes_py312 import version_opcodes
from .opcodes_stack import StackOpcodes
from .values import Lazy, Value

MAX_INLINE_DEPTH = 24  # transformers: model, layer, attention, wrappers, a config's __getattribute__
MAX_STEPS = 200_000  # unrolled loops beyond this are not worth a graph
# A frame whose translation takes longer than this runs as plain Python: a translation
# pays off over many calls, and one that takes tens of seconds (a loop walking a 2000-deep
# structure, each level a new guard) never does. The largest benchmark program's frame
# translates in about 1 s here. Counted in the translating thread's CPU time
# (time.thread_time), not wall-clock: on a loaded machine the wall clock runs several times
# faster than the translation's own work, and what is translated must not depend on load
# (resnet50's whole-step translation crossed a 10 s wall-clock budget at load 10).
MAX_SECONDS = 10.0


class StopTranslation(Exception):
    """Raised at the chosen break point; carries the top-level translator's state."""

    def __init__(self, tx):
        super().__init__("stop")
        self.tx = tx


class Translator(version_opcodes(sys.version_info), StackOpcodes, ControlOpcodes, CallOpcodes, ImportOpcodes,
                 ExceptionOpcodes):
    def __init__(self, ctx, code, f_globals, local_values, cells, parent=None, name=None):
        self.ctx = ctx
        self.code = code
        self.info = code_info(code)
        self.instrs = self.info.instrs
        self.f_globals = f_globals
        self.locals = local_values  # name -> Value | Lazy
        self.cells = cells  # name -> CellValue (cell and free variables)
        self.parent = parent
        self.depth = 0 if parent is None else parent.depth + 1
        self.name = name or code.co_name
        self.stack = []
        self.pc = 0
        self.kw_names = None
        self.visits = collections.Counter()
        self.result = None
        self.done = False
        # nested breaks (translate/nested_breaks.py): whether this callee's return value is
        # its caller's CALL result as it is (calls.py), and the CALL handler's flag saying so
        self.chained = False
        self.direct_call = False
        self.instr_step = 0  # ctx.steps when the current instruction began
        if self.depth > MAX_INLINE_DEPTH:
            raise Unsupported("inlining too deep (recursion?)")

    # -- the loop -------------------------------------------------------------------
    def run(self):
        if self.parent is None:
            return self._run()
        # a pin inside an inlined callee stops the attempt only once the top-level instruction
        # that called it is done: an Unsupported later in the callee breaks at that CALL, and
        # attempt 2 (the callee run natively) never pins (yolov3's `enumerate(ious.t())` in
        # build_targets, whose `.item()`s break train_step at `self.model(...)`)
        graph = self.ctx.graph
        graph.inlined += 1
        try:
            return self._run()
        finally:
            graph.inlined -= 1

    def _run(self):
        ctx = self.ctx
        while not self.done:
            instr = self.instrs[self.pc]
            if isinstance(instr, (Label, SetLineno, TryBegin, TryEnd)):
                self.pc += 1
                continue
            ctx.steps += 1
            if ctx.steps > MAX_STEPS:
                raise Unsupported("too many instructions (a very long unrolled loop)", breakable=False)
            self.instr_step = ctx.steps
            if ctx.stop_step == ctx.steps:  # a break inside inlined callees (nested_breaks.py)
                raise StopTranslation(self)
            if not ctx.steps & 255 and time.thread_time() > ctx.deadline:
                raise Unsupported(f"translation took over {MAX_SECONDS:g} s of CPU time (budget, "
                                  f"{ctx.steps} translator steps): the frame runs as plain Python",
                                  breakable=False)
            if self.parent is None:
                self.visits[self.pc] += 1
                if ctx.stop_at == (self.pc, self.visits[self.pc]):
                    raise StopTranslation(self)
            handler = getattr(self, instr.name, None)
            try:
                if handler is None:
                    raise Unsupported(f"bytecode {instr.name} is not supported")
                pc_before = self.pc
                handler(instr)
                if self.pc == pc_before:
                    self.pc += 1
                if self.parent is None:
                    ctx.graph.stop_if_pinned()
            except KnownRaise as exc:
                if self.parent is None or not unwind(self, exc):  # a handler here catches it
                    self._annotate(exc, instr)
                    raise
            except Unsupported as exc:
                self._annotate(exc, instr)
                raise
            except Exception as exc:
                if not ctx.graph.data_dependent(exc):
                    raise
                unsupported = Unsupported(f"{type(exc).__name__}: {str(exc).splitlines()[0][:200]}")
                self._annotate(unsupported, instr)
                raise unsupported from exc
        return self.result

    def _annotate(self, exc, instr):
        # each level the exception passes, innermost first: where a nested break may stop
        levels = exc.__dict__.setdefault("levels", [])
        levels.append((self.depth, self.instr_step, self.chained, self.code))
        exc.locate(self.code.co_filename, self.lineno(), self.name)
        if not exc.source_line:
            exc.source_line = _source_line(self.code.co_filename, self.lineno())
        if self.parent is None and not hasattr(exc, "at"):
            exc.at = (self.pc, self.visits[self.pc])
            exc.instr = instr

    def lineno(self):
        return self.info.lineno(self.pc)

    # -- stack helpers --------------------------------------------------------------
    def push(self, value):
        assert isinstance(value, Value), value
        self.stack.append(value)

    def pop(self):
        return self.stack.pop()

    def popn(self, n):
        if n == 0:
            return []
        items = self.stack[-n:]
        del self.stack[-n:]
        return items

    def jump(self, label):
        self.pc = self.info.label_pc[label]

    # -- locals ---------------------------------------------------------------------
    def get_local(self, name):
        value = self.locals.get(name)
        if value is None:
            raise Unsupported(f"local variable {name!r} read before assignment")
        if isinstance(value, Lazy):
            value = self.ctx.wrap(value.real, value.source)
            self.locals[name] = value
        return value

    def realize_locals(self):
        for name in list(self.locals):
            self.get_local(name)


def _source_line(filename, lineno):
    import linecache

    return linecache.getline(filename, lineno).strip()
