"""Opcode handlers: loads, stores, stack shuffles, operators, containers, attributes.

Each handler's stack effect is in its docstring, as in the `dis` documentation. Handlers
only move Values; what an operator or attribute *means* is in operators.py/attributes.py.
"""
import builtins

from bytecode import CellVar, FreeVar, Instr

from ..seam import rules
from . import attributes, operators
from .drops import _finalizes, _same
from .errors import Unsupported
from .function_values import SavedCellValue
from .values import (NULL, CellValue, ConstValue, DictValue, FormattedValue, Lazy, ListValue, NullValue,
                     ScalarValue, TensorValue, TupleValue)


def _var_name(arg):
    return arg.name if isinstance(arg, (CellVar, FreeVar)) else arg


class StackOpcodes:
    # -- no-ops and frame setup -----------------------------------------------------
    def NOP(self, instr):
        """(no effect)"""

    RESUME = NOP
    EXTENDED_ARG = NOP

    def COPY_FREE_VARS(self, instr):
        """(no effect here: the translator's cells are set up when the frame starts)"""

    def MAKE_CELL(self, instr):
        """(no effect) -> the local becomes a cell holding its current value"""
        name = _var_name(instr.arg)
        if name not in self.cells:
            value = self.locals.pop(name, None)
            self.cells[name] = CellValue(self.get_local_value(value) if value is not None else None)

    def get_local_value(self, value):
        return self.ctx.wrap(value.real, value.source) if isinstance(value, Lazy) else value

    # -- stack --------------------------------------------------------------------
    def POP_TOP(self, instr):
        """TOS -> ()"""
        self.check_drop(self.pop())

    def check_drop(self, value, name=None, held=None):
        """The frame lets go of `value` here (`del x`, `x = ...`, an unused result). An object
        whose class has `__del__` (a counter, a resource) may be finalized right here in
        plain Python, and what follows may observe it; the rewritten code would hold it (a
        resume call's argument) until the frame returns: the drop runs natively (a break
        here), unless the frame still holds the value elsewhere (`held`: by default the
        stack and the other names)."""
        if value is None:
            return
        if not _finalizes(value, 2):
            self._guard_harmless_drop(value)
            return
        if held is None:
            held = list(self.stack) + [v for n, v in self.locals.items() if n != name]
        if any(_same(v, value) for v in held):
            return
        from .frame import _inside_user_try

        if self.parent is None and (self.info.in_with[self.pc] or _inside_user_try(self.info, self.pc)):
            # inside a try body or a with block the break would run the drop in a step code,
            # whose arguments leave out a name only deleted there: run the frame plainly
            raise Unsupported("dropping a reference to an object whose class has __del__ inside a try or with "
                              "block", breakable=False)
        raise Unsupported("dropping a reference to an object whose class has __del__")

    def _guard_harmless_drop(self, value):
        """A drop judged harmless rests on the object's class having no `__del__`: a later
        call whose object has one must not reuse this translation (`del k` of an argument
        that was None, then a finalizing object, died at the return)."""
        real = value.real if isinstance(value, Lazy) else value.value if isinstance(value, ConstValue) else None
        source = getattr(value, "source", None)
        if source is None or not isinstance(value, (Lazy, ConstValue)):
            return
        cls = type(real)
        self.ctx.guards.type(source, cls)
        if cls.__flags__ & (1 << 9):  # a class statement's class: `Cls.__del__ = f` later
            self.ctx.guards.class_attributes(cls, "__del__")

    def PUSH_NULL(self, instr):
        """() -> NULL"""
        self.push(NULL)

    def push_callable(self, value):
        """() -> NULL, value (3.13: value, NULL): a callable as a call finds it"""
        if rules.null_before_callable:
            self.push(NULL)
            self.push(value)
        else:
            self.push(value)
            self.push(NULL)

    def COPY(self, instr):
        """(..., x, ...) -> (..., x, ..., x): copies the i-th item"""
        self.push(self.stack[-instr.arg])

    def SWAP(self, instr):
        """swap TOS with the i-th item"""
        i = instr.arg
        self.stack[-1], self.stack[-i] = self.stack[-i], self.stack[-1]

    # -- loads and stores -----------------------------------------------------------
    def LOAD_CONST(self, instr):
        """() -> const"""
        self.push(ConstValue(instr.arg))

    def LOAD_FAST(self, instr):
        """() -> local"""
        self.load_fast(instr.arg)

    def load_fast(self, name):
        value = self.locals.get(name)
        if isinstance(value, Lazy) and self._only_dropped_or_stored(name):
            # a resume function's stack item only dropped or stored (a `weakref.finalize`
            # made before the break, its result unused or kept in a local): unread, it needs
            # no guard; it is wrapped, and guarded, where a later load reads it
            self.stack.append(value)
            return
        self.push(self.get_local(name))

    def _only_dropped_or_stored(self, name):
        """The value LOAD_FAST `name` pushes goes, through a DELETE_FAST of `name` and forward
        jumps (a resume function's prologue), straight to POP_TOP or STORE_FAST."""
        pc, deleted = self.pc + 1, False
        for _ in range(16):
            instr = self.instrs[pc] if pc < len(self.instrs) else None
            kind = getattr(instr, "name", None)
            if instr is None or kind is not None and not isinstance(instr, Instr):
                return False  # the end, or a pseudo instruction the bytecode package names
            if kind is None or kind == "NOP":
                pc += 1
            elif kind in ("JUMP_FORWARD", "JUMP_NO_INTERRUPT"):
                pc = self.info.label_pc[instr.arg]
            elif kind == "DELETE_FAST" and instr.arg == name and not deleted:
                pc, deleted = pc + 1, True
            else:
                return kind in ("POP_TOP", "STORE_FAST")
        return False

    def STORE_FAST(self, instr):
        """value -> ()   (a NULL, from LOAD_FAST_AND_CLEAR, unbinds the local)"""
        old = self.locals.get(instr.arg)
        if old is not None and old is not self.stack[-1]:
            self.check_drop(old, instr.arg)
        self.store_local(instr.arg, self.pop())

    def store_local(self, name, value):
        if isinstance(value, NullValue):  # a comprehension's saved NULL (3.12+): its cell goes too
            self.locals.pop(name, None)
            self.cells.pop(name, None)
        elif isinstance(value, SavedCellValue):  # the frame's cell, set aside by the comprehension
            self.locals.pop(name, None)
            self.cells[name] = value.cell
        else:
            self.locals[name] = value

    def DELETE_FAST(self, instr):
        """() -> ()"""
        self.check_drop(self.locals.get(instr.arg), instr.arg)
        self.locals.pop(instr.arg, None)

    def LOAD_GLOBAL(self, instr):
        """() -> [NULL] global"""
        push_null, name = instr.arg
        value = self.load_global(name)
        if push_null:
            self.push_callable(value)
        else:
            self.push(value)

    def load_global(self, name):
        if self.f_globals is self.ctx.f_globals and name in self.ctx.global_overlay:
            return self.ctx.global_overlay[name]
        if name in self.f_globals:
            return self.ctx.wrap_global(self.f_globals, name)
        found = self.ctx.guard_builtin(self.f_globals, name)
        if found is not None:
            return ConstValue(found[0])
        raise Unsupported(f"name {name!r} is not defined")

    def LOAD_DEREF(self, instr):
        """() -> cell contents"""
        name = _var_name(instr.arg)
        cell = self.cells.get(name)
        if cell is None:
            raise Unsupported(f"closure variable {name!r} is not available")
        content = cell.content
        if content is None:
            raise Unsupported(f"closure variable {name!r} read before assignment")
        if isinstance(content, Lazy):
            content = cell.content = self.ctx.wrap(content.real, content.source)
        self.push(content)

    LOAD_CLASSDEREF = LOAD_DEREF

    def STORE_DEREF(self, instr):
        """value -> ()"""
        name = _var_name(instr.arg)
        cell = self.cells.get(name)
        if cell is not None and self.parent is None and name in self.code.co_freevars:
            # the frame's own closure: replayed with STORE_DEREF after the graph
            from .side_effects import StoreDeref

            cell.content = self.pop()
            self.ctx.record(StoreDeref(name, cell.content))
            return
        if cell is None or getattr(cell, "real", False):
            raise Unsupported(f"assignment to closure variable {name!r} of an outer frame")
        cell.content = self.pop()

    def STORE_GLOBAL(self, instr):
        """value -> ()"""
        if self.f_globals is not self.ctx.f_globals:
            raise Unsupported("assignment to a global of another module")
        from .side_effects import StoreGlobal

        value = self.pop()
        self.ctx.global_overlay[instr.arg] = value
        self.ctx.record(StoreGlobal(instr.arg, value))

    def LOAD_CLOSURE(self, instr):
        """() -> cell"""
        name = _var_name(instr.arg)
        cell = self.cells.get(name)
        if cell is None:
            raise Unsupported(f"closure cell {name!r} is not available")
        self.push(cell)

    def LOAD_BUILD_CLASS(self, instr):
        """() -> builtins.__build_class__   (calling it is a graph break)"""
        self.push(ConstValue(builtins.__build_class__))

    def LOAD_ASSERTION_ERROR(self, instr):
        """() -> AssertionError"""
        self.push(ConstValue(AssertionError))

    # -- attributes -----------------------------------------------------------------
    def LOAD_ATTR(self, instr):
        """obj -> obj.name"""
        self.push(attributes.load_attr(self, self.pop(), instr.arg))

    def LOAD_METHOD(self, instr):
        """obj -> NULL, obj.name   (the bound form; equivalent for calls)"""
        self.push_callable(attributes.load_attr(self, self.pop(), instr.arg))

    def STORE_ATTR(self, instr):
        """value, obj -> ()   (obj = TOS)"""
        obj = self.pop()
        value = self.pop()
        attributes.store_attr(self, obj, instr.arg, value)

    # -- operators ------------------------------------------------------------------
    def BINARY_OP(self, instr):
        """a, b -> a op b"""
        b = self.pop()
        a = self.pop()
        self.push(operators.binary(self, instr.arg, a, b))

    def COMPARE_OP(self, instr):
        """a, b -> a cmp b"""
        b = self.pop()
        a = self.pop()
        self.push(operators.compare(self, instr.arg, a, b))

    def IS_OP(self, instr):
        """a, b -> a is b (or is not)"""
        b = self.pop()
        a = self.pop()
        result = operators.is_same(a, b, self.ctx.guards)
        self.push(ConstValue(result != bool(instr.arg)))

    def CONTAINS_OP(self, instr):
        """a, b -> a in b (or not in)"""
        b = self.pop()
        a = self.pop()
        self.push(ConstValue(operators.contains(self, b, a) != bool(instr.arg)))

    def UNARY_NEGATIVE(self, instr):
        """a -> -a"""
        self.push(operators.unary(self, "neg", self.pop()))

    def UNARY_POSITIVE(self, instr):
        """a -> +a"""
        self.push(operators.unary(self, "pos", self.pop()))

    def UNARY_INVERT(self, instr):
        """a -> ~a"""
        self.push(operators.unary(self, "invert", self.pop()))

    def UNARY_NOT(self, instr):
        """a -> not a"""
        self.push(ConstValue(not operators.truth(self, self.pop())))

    def BINARY_SUBSCR(self, instr):
        """obj, key -> obj[key]"""
        key = self.pop()
        obj = self.pop()
        self.push(operators.getitem(self, obj, key))

    def STORE_SUBSCR(self, instr):
        """value, obj, key -> ()   (obj[key] = value)"""
        key = self.pop()
        obj = self.pop()
        value = self.pop()
        operators.setitem(self, obj, key, value)

    def DELETE_SUBSCR(self, instr):
        """obj, key -> ()"""
        key = self.pop()
        obj = self.pop()
        operators.delitem(self, obj, key)

    # -- containers -----------------------------------------------------------------
    def BUILD_TUPLE(self, instr):
        """n items -> tuple"""
        self.push(TupleValue(self.popn(instr.arg)))

    def BUILD_LIST(self, instr):
        """n items -> list"""
        self.push(ListValue(self.popn(instr.arg)))

    def BUILD_MAP(self, instr):
        """2n items (k, v, ...) -> dict"""
        items = self.popn(2 * instr.arg)
        self.push(DictValue({_key(k): v for k, v in zip(items[::2], items[1::2])}))

    def BUILD_CONST_KEY_MAP(self, instr):
        """n values, keys tuple -> dict"""
        keys = self.pop().as_python()
        values = self.popn(instr.arg)
        self.push(DictValue(dict(zip(keys, values))))

    def BUILD_SET(self, instr):
        """n items -> set (of constants)"""
        items = self.popn(instr.arg)
        value = ConstValue(set(operators.python_value(i) for i in items))
        value.fresh = True  # rebuilt per call after a break (reconstruct), never shared
        self.push(value)

    def SET_ADD(self, instr):
        """set(at i), value -> set"""
        value = self.pop()
        target = self.stack[-instr.arg]
        if not isinstance(target, ConstValue) or target.source is not None:
            raise Unsupported("set.add on a set from outside the frame")
        target.value.add(operators.python_value(value))

    def SET_UPDATE(self, instr):
        """set(at i), iterable -> set"""
        iterable = self.pop()
        target = self.stack[-instr.arg]
        if not isinstance(target, ConstValue) or target.source is not None:
            raise Unsupported("set.update on a set from outside the frame")
        target.value.update(operators.python_value(i) for i in operators.unpack(self, iterable))

    def BUILD_SLICE(self, instr):
        """start, stop[, step] -> slice"""
        self.push(self.make_slice(self.popn(instr.arg)))

    def make_slice(self, parts):
        if all(isinstance(p, ConstValue) for p in parts):
            return ConstValue(slice(*[p.value for p in parts]))
        return operators.build_slice(parts)

    def BUILD_STRING(self, instr):
        """n strings -> joined"""
        parts = self.popn(instr.arg)
        if any(isinstance(p, FormattedValue) for p in parts):
            pieces = []
            for p in parts:
                pieces += p.parts if isinstance(p, FormattedValue) else [p]
            self.push(FormattedValue(pieces))
            return
        self.push(ConstValue("".join(p.as_python() for p in parts)))

    def FORMAT_VALUE(self, instr):
        """value[, spec] -> formatted string"""
        flags = instr.arg
        spec = self.pop().as_python() if flags & 0x04 else ""
        self.push(self.format_part(self.pop(), flags & 0x03, spec))

    def format_part(self, value, conversion, spec):
        """One f-string part: format(value converted (0, 1 !s, 2 !r, 3 !a), spec)."""
        if isinstance(value, ScalarValue):
            # a number known only at run time: the string is built when the effect replays
            return FormattedValue([(value, conversion, spec)])
        if isinstance(value, TensorValue):
            raise Unsupported("formatting a tensor into a string needs its value")
        obj = operators.python_value(value)
        if conversion:
            obj = (str, repr, ascii)[conversion - 1](obj)
        return ConstValue(format(obj, spec))

    def LIST_APPEND(self, instr):
        """list(at i), value -> list"""
        value = self.pop()
        target = self.stack[-instr.arg]
        self.ctx.mutate(target)
        target.items.append(value)

    def LIST_EXTEND(self, instr):
        """list(at i), iterable -> list"""
        iterable = self.pop()
        target = self.stack[-instr.arg]
        self.ctx.mutate(target)
        target.items.extend(operators.unpack(self, iterable))

    def LIST_TO_TUPLE(self, instr):
        """list -> tuple"""
        self.push(TupleValue(self.pop().items))

    def MAP_ADD(self, instr):
        """dict(at i), key, value -> dict"""
        value = self.pop()
        key = self.pop()
        target = self.stack[-instr.arg]
        self.ctx.mutate(target)
        target.items[_key(key)] = value

    def DICT_UPDATE(self, instr):
        """dict(at i), mapping -> dict"""
        other = self.pop()
        target = self.stack[-instr.arg]
        self.ctx.mutate(target)
        target.items.update(operators.dict_items(self, other))

    def DICT_MERGE(self, instr):
        """dict(at i), mapping -> dict; the `**a, **b` of a call: a key twice, or one that is
        not a string, raises TypeError in Python, so such a call runs natively"""
        other = self.pop()
        target = self.stack[-instr.arg]
        items = operators.dict_items(self, other)
        if any(k in target.items or not isinstance(k, str) for k in items):
            raise Unsupported("f(**a, **b) with a repeated or non-string key (raises natively)")
        self.ctx.mutate(target)
        target.items.update(items)

    def UNPACK_SEQUENCE(self, instr):
        """seq -> n items (first item on top)"""
        items = operators.unpack(self, self.pop())
        if len(items) != instr.arg:
            raise Unsupported(f"unpacking {len(items)} values into {instr.arg}")
        for item in reversed(items):
            self.push(item)

    def UNPACK_EX(self, instr):
        """seq -> before, list of rest, after"""
        before, after = instr.arg & 0xFF, instr.arg >> 8
        items = operators.unpack(self, self.pop())
        if len(items) < before + after:
            raise Unsupported("not enough values to unpack")
        rest = ListValue(items[before:len(items) - after])
        out = items[:before] + [rest] + items[len(items) - after:]
        for item in reversed(out):
            self.push(item)


def _key(value):
    if not isinstance(value, ConstValue):
        raise Unsupported(f"dict key {value!r} is not a constant")
    return value.value


