"""Opcode handlers: calls and function creation.

    [NULL|self-or-callable], callable, args..., [KW_NAMES] PRECALL n, CALL n -> result

The work happens at CALL (PRECALL and KW_NAMES only record); a graph break at a call is
therefore "at CALL", and the rewritten code re-issues KW_NAMES + PRECALL + CALL natively.
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
        """NULL|x, callable, n args -> result"""
        n = instr.arg
        args = self.popn(n)
        fn = self.pop()
        first = self.pop()
        if not isinstance(first, NullValue):  # the method form: first is the callable
            fn, args = first, [fn] + args
        kw_names = self.kw_names or ()
        self.kw_names = None
        kwargs = {}
        if kw_names:
            kwargs = dict(zip(kw_names, args[len(args) - len(kw_names):]))
            args = args[: len(args) - len(kw_names)]
        self.push(calls.call_value(self, fn, list(args), kwargs))

    def CALL_FUNCTION_EX(self, instr):
        """NULL, callable, args tuple[, kwargs dict] -> result"""
        kwargs = self.pop() if instr.arg & 1 else None
        args = self.pop()
        fn = self.pop()
        null = self.pop()
        if not isinstance(null, NullValue):
            raise Unsupported("CALL_FUNCTION_EX without NULL")
        arg_list = operators.unpack(self, args)
        kw = operators.dict_items(self, kwargs) if kwargs is not None else {}
        self.push(calls.call_value(self, fn, list(arg_list), dict(kw)))

    def MAKE_FUNCTION(self, instr):
        """[defaults, kwdefaults, annotations, closure], code -> function"""
        code = self.pop().as_python()
        flags = instr.arg
        closure = self.pop() if flags & 0x08 else None
        if flags & 0x04:
            self.pop()  # annotations are not needed to call the function
        kwdefaults = self.pop() if flags & 0x02 else None
        defaults = self.pop() if flags & 0x01 else None
        cells = None
        if closure is not None:
            cells = list(closure.items)
            if not all(isinstance(c, CellValue) for c in cells):
                raise Unsupported("closure of unknown cells")
        if defaults is not None and not isinstance(defaults, TupleValue):
            raise Unsupported("defaults are not a tuple")
        if kwdefaults is not None and not isinstance(kwdefaults, DictValue):
            raise Unsupported("keyword defaults are not a dict")
        self.push(FunctionValue(code, self.f_globals, code.co_name, defaults, kwdefaults, cells))


