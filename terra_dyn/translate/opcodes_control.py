"""Opcode handlers: jumps, loops, returns, with blocks.

Branches are decided at translate time when the condition is known (a constant, a shape,
a container's length); a branch on a tensor's value raises Unsupported, which becomes a
graph break that runs the jump natively. FOR_ITER over a known iterator unrolls the loop;
over a real iterator (handed to a resume function) it is a break too.
"""
import torch

from . import operators
from .errors import Unsupported
from .values import (ConstValue, ContextValue, IteratorValue, MethodValue, ObjectValue,
                     OpaqueIterator)


class GradModeExit:
    """The `__exit__` a BEFORE_WITH on a grad-mode context pushes (translate-time marker)."""


class GradModeRestore:
    """The real `__exit__` a resume function receives when a break splits a
    `with torch.no_grad():` block: calling it (normal exit or exception) restores the grad
    mode the block was entered with. The translator treats a call of it as that restore."""

    __slots__ = ("previous",)

    def __init__(self, previous):
        self.previous = previous

    def __call__(self, *exc_info):
        torch._C._set_grad_enabled(self.previous)
        return False  # never swallows an exception

    def __repr__(self):
        return f"GradModeRestore(previous={self.previous})"


_restores = {True: GradModeRestore(True), False: GradModeRestore(False)}


def grad_mode_restore(previous):
    """One shared object per mode, so resume functions can guard it by identity."""
    return _restores[bool(previous)]


class ControlOpcodes:
    def RETURN_VALUE(self, instr):
        """value -> (frame ends)"""
        self.result = self.pop()
        self.done = True

    # -- jumps ----------------------------------------------------------------------
    def JUMP_FORWARD(self, instr):
        """() -> ()"""
        self.jump(instr.arg)

    JUMP_BACKWARD = JUMP_FORWARD
    JUMP_BACKWARD_NO_INTERRUPT = JUMP_FORWARD
    JUMP_NO_INTERRUPT = JUMP_FORWARD

    def _pop_jump(self, instr, when):
        cond = self.pop()
        if operators.truth(self, cond) == when:
            self.jump(instr.arg)

    def POP_JUMP_FORWARD_IF_TRUE(self, instr):
        """cond -> ()"""
        self._pop_jump(instr, True)

    def POP_JUMP_FORWARD_IF_FALSE(self, instr):
        """cond -> ()"""
        self._pop_jump(instr, False)

    POP_JUMP_BACKWARD_IF_TRUE = POP_JUMP_FORWARD_IF_TRUE
    POP_JUMP_BACKWARD_IF_FALSE = POP_JUMP_FORWARD_IF_FALSE

    def _none_jump(self, instr, when_none):
        value = self.pop()
        if operators.is_none(value) == when_none:
            self.jump(instr.arg)

    def POP_JUMP_FORWARD_IF_NONE(self, instr):
        """value -> ()"""
        self._none_jump(instr, True)

    def POP_JUMP_FORWARD_IF_NOT_NONE(self, instr):
        """value -> ()"""
        self._none_jump(instr, False)

    POP_JUMP_BACKWARD_IF_NONE = POP_JUMP_FORWARD_IF_NONE
    POP_JUMP_BACKWARD_IF_NOT_NONE = POP_JUMP_FORWARD_IF_NOT_NONE

    def JUMP_IF_TRUE_OR_POP(self, instr):
        """cond -> cond (jump) | () """
        if operators.truth(self, self.stack[-1]):
            self.jump(instr.arg)
        else:
            self.pop()

    def JUMP_IF_FALSE_OR_POP(self, instr):
        """cond -> cond (jump) | ()"""
        if not operators.truth(self, self.stack[-1]):
            self.jump(instr.arg)
        else:
            self.pop()

    # -- loops ----------------------------------------------------------------------
    def GET_ITER(self, instr):
        """iterable -> iterator"""
        self.push(operators.get_iter(self, self.pop()))

    def FOR_ITER(self, instr):
        """iterator -> iterator, next item | () at the end (jump)"""
        it = self.stack[-1]
        if isinstance(it, OpaqueIterator):
            raise operators.loop_break(Unsupported("loop over a run-time iterator (continued from a graph break)"))
        if not isinstance(it, IteratorValue):
            raise Unsupported(f"FOR_ITER over {it!r}")
        item = it.next_item()
        if item is None:
            self.pop()
            self.pc = self.info.for_iter_exit_pc(instr.arg)
        else:
            self.push(item)

    # -- with blocks ----------------------------------------------------------------
    def BEFORE_WITH(self, instr):
        """manager -> exit, manager.__enter__()"""
        manager = self.pop()
        from . import autocast, generator_cm

        if isinstance(manager, generator_cm.GeneratorCMValue):
            return generator_cm.enter(self, manager)
        if autocast.is_manager(manager):
            return autocast.enter(self, manager)
        if not isinstance(manager, ContextValue):
            return self._user_with(manager)
        manager.previous = torch.is_grad_enabled() if not self.ctx.grad_stack else self.ctx.grad_stack[-1]
        self.ctx.set_grad_enabled(manager.enabled)
        self.push(MethodValue(ConstValue(GradModeExit), manager))
        self.push(ConstValue(None))

    def _user_with(self, manager):
        """A context manager written in Python: __enter__ now, __exit__(None, None, None)
        on the normal exit path (the exception path is the handler, never translated)."""
        import types

        from . import attributes, calls

        cls = manager.cls if isinstance(manager, ObjectValue) else type(getattr(manager, "value", None))
        enter = getattr(cls, "__enter__", None)
        exit_ = getattr(cls, "__exit__", None)
        if not (isinstance(enter, types.FunctionType) and isinstance(exit_, types.FunctionType)) \
                or (getattr(cls, "__module__", "") or "").startswith("torch"):
            # torch's own managers (autocast, ...) switch global state in C: never inlined
            raise Unsupported(f"with block on {manager!r}", breakable=False)
        self.push(attributes.load_attr(self, manager, "__exit__"))
        self.push(calls.call_value(self, attributes.load_attr(self, manager, "__enter__"), [], {}))

    def exit_grad_mode(self, manager):
        self.ctx.restore_grad_enabled(manager.previous)

    # -- generators (inlined ones only: run to completion, see inline.py) -----------
    def RETURN_GENERATOR(self, instr):
        """() -> None (the value the first resumption sends)"""
        if getattr(self, "yielded", None) is None:
            raise Unsupported("generator frame", breakable=False)
        self.push(ConstValue(None))

    def YIELD_VALUE(self, instr):
        """value -> None (the value sent back)"""
        if getattr(self, "yielded", None) is None:
            raise Unsupported("yield outside an inlined generator", breakable=False)
        self.yielded.append(self.pop())
        self.push(ConstValue(None))
        if getattr(self, "suspend_at_yield", False):  # a contextmanager's __enter__ ends here
            self.suspended = True
            self.done = True
