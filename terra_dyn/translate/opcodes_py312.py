"""Opcode handlers for bytecode that CPython 3.12 and 3.13 added or changed.

    version_opcodes(version) -> the mixin the Translator adds on that version (none on 3.11)

3.12 (PEP 709 inlines list/set/dict comprehensions):
    LOAD_ATTR (method bit) obj -> obj.name | NULL, obj.name (3.13: obj.name, NULL)
    LOAD_FAST_AND_CLEAR    () -> local or NULL; the local is unbound (a comprehension saves it;
                           a cell slot saves its cell: SavedCellValue)
    STORE_FAST of a NULL   unbinds the local again, and drops the comprehension's own cell
    STORE_FAST of a saved cell  puts the frame's cell back (opcodes_stack.STORE_FAST)
    LOAD_SUPER_ATTR        super, class, self -> super(class, self).name (see super_calls.py)
    BINARY_SLICE / STORE_SLICE, RETURN_CONST, END_FOR, CALL_INTRINSIC_1 / _2,
    POP_JUMP_IF_* (the direction is the assembler's)
3.13:
    TO_BOOL, CALL_KW, LOAD_FAST_LOAD_FAST, STORE_FAST_LOAD_FAST, STORE_FAST_STORE_FAST,
    CONVERT_VALUE, FORMAT_SIMPLE, FORMAT_WITH_SPEC, MAKE_FUNCTION without flags and
    SET_FUNCTION_ATTRIBUTE

What the versions share (CALL's two orders of NULL, FOR_ITER's exit past END_FOR) is in
the common handlers, asking the seam. An opcode no handler knows is a graph break that
names it (executor.py), never a crash.

Example: `[x * 2 for x in xs]` on 3.12 runs LOAD_FAST_AND_CLEAR x, BUILD_LIST, FOR_ITER,
STORE_FAST x, LIST_APPEND ..., END_FOR (skipped), STORE_FAST x (the saved NULL: unbound).
"""
import torch
from bytecode import CellVar, Compare, FreeVar

from ..seam import rules
from . import attributes, operators, super_calls
from .errors import Unsupported
from .function_values import SavedCellValue
from .opcodes_control import ControlOpcodes
from .opcodes_stack import _var_name
from .values import NULL, SYMBOLIC_NUMBERS, ConstValue, ScalarValue

# CALL_INTRINSIC_1 functions that are 3.11 opcodes of their own
_INTRINSIC_1 = {"INTRINSIC_UNARY_POSITIVE": "UNARY_POSITIVE", "INTRINSIC_LIST_TO_TUPLE": "LIST_TO_TUPLE"}


class Py312Opcodes:
    def LOAD_ATTR(self, instr):
        """obj -> obj.name | (method bit) NULL, obj.name"""
        method, name = instr.arg
        value = attributes.load_attr(self, self.pop(), name)
        if method:
            self.push_callable(value)
        else:
            self.push(value)

    def LOAD_FAST_CHECK(self, instr):
        """() -> local   (unbound: a break, so the native instruction raises UnboundLocalError)"""
        self.push(self.get_local(instr.arg))

    def LOAD_FAST_AND_CLEAR(self, instr):
        """() -> local or NULL; the local becomes unbound (a cell slot: the cell itself, set
        aside until the comprehension's STORE_FAST puts it back)"""
        if instr.arg in self.cells:
            self.push(SavedCellValue(self.cells.pop(instr.arg)))
            return
        value = self.locals.pop(instr.arg, None)
        self.push(NULL if value is None else self.get_local_value(value))

    def RETURN_CONST(self, instr):
        """() -> (frame ends with the constant)"""
        self.result = ConstValue(instr.arg)
        self.done = True

    def BINARY_SLICE(self, instr):
        """obj, start, stop -> obj[start:stop]"""
        bounds = self.popn(2)
        obj = self.pop()
        self.push(operators.getitem(self, obj, self.make_slice(bounds)))

    def STORE_SLICE(self, instr):
        """value, obj, start, stop -> ()   (obj[start:stop] = value)"""
        bounds = self.popn(2)
        obj = self.pop()
        value = self.pop()
        operators.setitem(self, obj, self.make_slice(bounds), value)

    def END_FOR(self, instr):
        """iterator, item -> () (3.13: item -> ())   (an exhausted FOR_ITER skips it)"""
        self.popn(rules.end_for_pops)

    def CALL_INTRINSIC_1(self, instr):
        """value -> intrinsic(value)"""
        if instr.arg.name == "INTRINSIC_STOPITERATION_ERROR":
            return self._stopiteration_error()
        handler = _INTRINSIC_1.get(instr.arg.name)
        if handler is None:
            raise Unsupported(f"bytecode CALL_INTRINSIC_1 {instr.arg.name} is not supported")
        getattr(self, handler)(instr)

    def _stopiteration_error(self):
        """A generator's own handler: an exception leaving its body passes on unchanged,
        except StopIteration, which Python turns into RuntimeError (PEP 479): not modelled."""
        from .exceptions import ExceptionValue

        exc = self.stack[-1]
        if not isinstance(exc, ExceptionValue) or isinstance(exc.exception, (StopIteration, StopAsyncIteration)):
            raise Unsupported("a StopIteration leaving a generator (RuntimeError, PEP 479)")

    def CALL_INTRINSIC_2(self, instr):
        """a, b -> intrinsic(a, b)   (type parameters, except*: never captured)"""
        raise Unsupported(f"bytecode CALL_INTRINSIC_2 {instr.arg.name} is not supported")

    def LOAD_SUPER_ATTR(self, instr):
        """super, class, self -> super(class, self).name | (method bit) NULL, that

        The compiler loads zero-argument super()'s `__class__` cell and first argument
        itself, so both forms are super(class, self) (modelled as in super_calls.py)."""
        method, _two_args, name = instr.arg
        obj = self.pop()
        cls = self.pop()
        global_super = self.pop()
        if not (isinstance(global_super, ConstValue) and global_super.value is super):
            raise Unsupported("super is rebound: LOAD_SUPER_ATTR runs natively")
        value = attributes.load_attr(self, super_calls.make_super(self, [cls, obj], {}), name)
        if method:
            self.push_callable(value)
        else:
            self.push(value)

    POP_JUMP_IF_TRUE = ControlOpcodes.POP_JUMP_FORWARD_IF_TRUE
    POP_JUMP_IF_FALSE = ControlOpcodes.POP_JUMP_FORWARD_IF_FALSE
    POP_JUMP_IF_NONE = ControlOpcodes.POP_JUMP_FORWARD_IF_NONE
    POP_JUMP_IF_NOT_NONE = ControlOpcodes.POP_JUMP_FORWARD_IF_NOT_NONE


class Py313Opcodes(Py312Opcodes):
    def LOAD_FAST(self, instr):
        """() -> local | the cell of a cell or free variable (3.13's LOAD_CLOSURE)"""
        name = _var_name(instr.arg)
        if isinstance(instr.arg, (CellVar, FreeVar)) or name in self.cells and name not in self.locals:
            return self.LOAD_CLOSURE(instr)
        self.load_fast(name)

    def TO_BOOL(self, instr):
        """value -> bool(value)   (a tensor's truth: a break, the native TO_BOOL decides)

        A number known only at run time stays in the graph as `value != 0`, a bool, so the
        branch that follows is the break and runs natively (a break here would start the
        resume at the jump with a constant bool: one translation per outcome)."""
        value = self.pop()
        if _python_number(value) and operators.run_time_truth(self, value):
            self.push(value if _python_bool(value) else operators.compare(self, Compare.NE, value, ConstValue(0)))
            return
        self.push(ConstValue(operators.truth(self, value)))

    def COMPARE_OP(self, instr):
        """a, b -> a cmp b, made a bool when the argument says so (`if a < b:`)"""
        b = self.pop()
        a = self.pop()
        op = instr.arg
        result = operators.compare(self, Compare(op & 15), a, b)
        if op & 16 and not (_python_bool(result) and operators.run_time_truth(self, result)):
            result = ConstValue(operators.truth(self, result))  # else a bool the jump reads natively
        self.push(result)

    def CALL_KW(self, instr):
        """callable, NULL|self, n args, names tuple -> result"""
        names = self.pop().as_python()
        self._call(instr.arg, names)

    def LOAD_FAST_LOAD_FAST(self, instr):
        """() -> first local, second local"""
        for name in instr.arg:
            self.push(self.get_local(name))

    def STORE_FAST_LOAD_FAST(self, instr):
        """value -> local   (stores the first name, loads the second)"""
        store, load = instr.arg
        old = self.locals.get(store)
        if old is not None and old is not self.stack[-1]:
            try:
                self.check_drop(old, store)
            except Unsupported as exc:  # no break here (rules.not_breakable): the frame runs plainly
                raise Unsupported(str(exc), breakable=False) from None
        self.store_local(store, self.pop())
        self.push(self.get_local(load))

    def STORE_FAST_STORE_FAST(self, instr):
        """a, b -> ()   (b into the first name, a into the second). Each store may drop the
        last reference to an object with `__del__` (check_drop): then the break site runs
        both stores (frame._break_site)."""
        first, second = instr.arg
        a, b = self.stack[-2], self.stack[-1]
        old = self.locals.get(first)
        if old is not None and old is not b:
            self.check_drop(old, first)
        after = dict(self.locals, **{first: b})  # the locals once b is stored
        old = after.get(second)
        if old is not None and old is not a:
            self.check_drop(old, second, held=self.stack[:-1] + [v for n, v in after.items() if n != second])
        for name in instr.arg:
            self.store_local(name, self.pop())

    def CONVERT_VALUE(self, instr):
        """value -> str(value) | repr(value) | ascii(value)"""
        value = self.pop()
        if not isinstance(value, ConstValue):
            raise Unsupported("f-string conversion of a value known only at run time")
        self.push(self.format_part(value, int(instr.arg), ""))

    def FORMAT_SIMPLE(self, instr):
        """value -> format(value)"""
        self.push(self.format_part(self.pop(), 0, ""))

    def FORMAT_WITH_SPEC(self, instr):
        """value, spec -> format(value, spec)"""
        spec = self.pop().as_python()
        self.push(self.format_part(self.pop(), 0, spec))

    def MAKE_FUNCTION(self, instr):
        """code -> function   (its parts come from SET_FUNCTION_ATTRIBUTE)"""
        self.push(self.make_function(self.pop().as_python(), {}))

    def SET_FUNCTION_ATTRIBUTE(self, instr):
        """part, function -> function   (0x08 closure, 0x04 annotations, 0x02 kwdefaults, 0x01 defaults)"""
        fn = self.pop()
        part = self.pop()
        self.push(self.make_function(fn.code, {int(instr.arg): part}, base=fn))


class Py311Opcodes:
    """3.11 needs nothing beyond the common handlers."""


def version_opcodes(version):
    """The handler mixin for CPython `version` ((major, minor))."""
    return {(3, 12): Py312Opcodes, (3, 13): Py313Opcodes}.get(tuple(version[:2]), Py311Opcodes)




def _python_number(value):
    """A run-time int, float or bool (a numpy scalar's comparison is no bool: 3.13's jumps
    read only True and False)."""
    return isinstance(value, ScalarValue) and type(value.example) in (bool, int, float, *SYMBOLIC_NUMBERS)


def _python_bool(value):
    return isinstance(value, ScalarValue) and type(value.example) in (bool, torch.SymBool)
