"""Opcode handlers: calls and function creation.

    3.11  [NULL|self-or-callable], callable, args..., [KW_NAMES] PRECALL n, CALL n -> result
    3.12  the same without PRECALL; 3.13: callable, NULL|self, args..., CALL n (opcodes_py312)

The work happens at CALL (PRECALL and KW_NAMES only record); a graph break at a call is
therefore "at CALL", and the rewritten code re-issues the call natively (seam native_call).
What calling a value means is calls.call_value.
"""
from . import calls, operators
from .errors import Unsupported
from .values import CellValue, DictValue, FunctionValue, NullValue, TupleValue


class CallOpcodes:
    def KW_NAMES(self, instr):
        """() -> ()   (names the last len(names) arguments of the next CALL)"""
        self.kw_names = instr.arg

    def PRECALL(self, instr):
        """() -> ()"""

    def CALL(self, instr):
        """NULL, callable (3.13: callable, NULL) | method, self; n args -> result"""
        kw_names, self.kw_names = self.kw_names or (), None
        self._call(instr.arg, kw_names)

    def pop_callable(self):
        """The two stack items under a call's arguments -> (callable, [self] or []). The
        NULL sits below the callable up to 3.12 and above it on 3.13; the method form
        [function, self] is the same on every version."""
        above = self.pop()
        below = self.pop()
        if isinstance(below, NullValue):
            return above, []
        if isinstance(above, NullValue):
            return below, []
        return below, [above]

    def _call(self, n, kw_names):
        args = self.popn(n)
        fn, bound = self.pop_callable()
        args = bound + args
        kwargs = {}
        if kw_names:
            kwargs = dict(zip(kw_names, args[len(args) - len(kw_names):]))
            args = args[: len(args) - len(kw_names)]
        self.direct_call = True
        self.push(calls.call_value(self, fn, list(args), kwargs))

    def CALL_FUNCTION_EX(self, instr):
        """NULL, callable, args tuple[, kwargs dict] -> result"""
        kwargs = self.pop() if instr.arg & 1 else None
        args = self.pop()
        fn, bound = self.pop_callable()
        if bound:
            raise Unsupported("CALL_FUNCTION_EX without NULL")
        arg_list = operators.unpack(self, args)
        kw = operators.dict_items(self, kwargs) if kwargs is not None else {}
        self.direct_call = True
        self.push(calls.call_value(self, fn, list(arg_list), dict(kw)))

    def MAKE_FUNCTION(self, instr):
        """[defaults, kwdefaults, annotations, closure], code -> function"""
        code = self.pop().as_python()
        flags = instr.arg
        parts = {flag: self.pop() for flag in (0x08, 0x04, 0x02, 0x01) if flags & flag}
        self.push(self.make_function(code, parts))

    def make_function(self, code, parts, base=None):
        """FunctionValue of `code` with MAKE_FUNCTION's flagged parts (0x08 closure tuple,
        0x04 annotations, 0x02 keyword defaults dict, 0x01 defaults tuple), over `base`'s."""
        defaults, kwdefaults, cells = (base.defaults, base.kwdefaults, base.closure) if base else (None, None, None)
        if 0x08 in parts:
            cells = list(parts[0x08].items)
            if not all(isinstance(c, CellValue) for c in cells):
                raise Unsupported("closure of unknown cells")
        annotations = parts.get(0x04, base.annotations if base else None)
        if annotations is not None and not isinstance(annotations, TupleValue):
            raise Unsupported("annotations are not a tuple")
        kwdefaults = parts.get(0x02, kwdefaults)
        defaults = parts.get(0x01, defaults)
        if defaults is not None and not isinstance(defaults, TupleValue):
            raise Unsupported("defaults are not a tuple")
        if kwdefaults is not None and not isinstance(kwdefaults, DictValue):
            raise Unsupported("keyword defaults are not a dict")
        return FunctionValue(code, self.f_globals, code.co_name, defaults, kwdefaults, cells, annotations)


