"""Calls into torch: torch.*, torch.nn.functional.*, Tensor methods -> FX nodes.

    call_torch(tx, fn, args, kwargs)          torch.relu(x) -> call_function torch.relu
    call_tensor_method(tx, name, t, ...)      x.view(2, -1) -> call_method view
    grad-mode context managers                torch.no_grad() -> ContextValue(False)
    autocast managers and state queries       torch.autocast("cpu") -> autocast.py

Results come from running the op on fake tensors, so shapes, dtypes and devices are known
without touching real data. Calls that need a tensor's value (x.item(), x.tolist(),
x.numpy(), x.backward(), torch.autograd.grad) raise Unsupported: a graph break.

Example: `x.size(0)` becomes ConstValue(4) (the fake tensor knows; the shape is guarded),
`x.sum(dim=1)` becomes call_method sum(x, dim=1).
"""
import types

import torch

from . import autocast
from .errors import Unsupported
from .values import ConstValue, ContextValue, ScalarValue, TensorValue

# Calls that need real tensor data or mutate global state: always a graph break.
_BREAK_METHODS = {
    "item", "tolist", "numpy", "backward", "register_hook", "data_ptr", "__bool__", "__int__",
    "__float__", "__index__", "__len__", "__iter__", "nonzero_static", "retain_grad",
    "__array__", "storage", "untyped_storage", "set_", "resize_", "record_stream",
}
_BREAK_FUNCTIONS = {
    torch.autograd.grad, torch.autograd.backward, torch.manual_seed, torch.seed, torch.save,
    torch.load, torch.set_default_dtype, torch.set_printoptions, torch.use_deterministic_algorithms,
    torch.set_grad_enabled.__init__,
}
_CONST_FUNCTIONS = {torch.is_grad_enabled, torch.get_default_dtype, torch.is_tensor,
                    torch.is_floating_point, torch.is_complex, torch.numel, torch.is_storage}


def is_torch_callable(fn):
    if isinstance(fn, (torch._C._VariableFunctionsClass, torch._ops.OpOverload, torch._ops.OpOverloadPacket)):
        return True
    if fn is autocast.BlockExit.__exit__ or autocast.is_manager_class(fn):
        return True  # call_torch hands them to autocast.py
    if isinstance(fn, type):
        return False
    module = getattr(fn, "__module__", None) or ""
    if module == "torch" or module.startswith("torch.nn.functional") or module == "torch._C._nn" \
            or module.startswith("torch._C._linalg") or module == "torch._C._special" \
            or module.startswith("torch.functional") or module.startswith("torch.fft") \
            or module.startswith("torch.linalg") or module.startswith("torch.special") \
            or module == "torch._C._VariableFunctions":
        return True
    if isinstance(fn, (types.BuiltinFunctionType,)) and getattr(fn, "__self__", None) is not None:
        owner = fn.__self__
        return isinstance(owner, types.ModuleType) and owner.__name__.startswith("torch")
    return False


def is_tensor_method(fn):
    """`torch.Tensor.add` and friends (method descriptors and Python methods of Tensor)."""
    name = getattr(fn, "__name__", None)
    return name is not None and getattr(torch.Tensor, name, None) is fn


_STATEFUL_PREFIXES = ("set_", "_set_", "_enter", "_exit", "_push", "_pop", "_increment", "_decrement",
                      "_clear", "_reset", "manual_seed", "seed", "_jit", "_dispatch", "_functorch",
                      "autocast_increment", "autocast_decrement", "clear_", "_cufft_clear")


def call_torch(tx, fn, args, kwargs):
    if fn is autocast.BlockExit.__exit__:  # the end of a `with torch.autocast(...)` block
        return autocast.exit(tx, args)
    if autocast.is_manager_class(fn):
        return autocast.construct(tx, fn, args, kwargs)
    if any(fn is q for q in autocast.QUERIES):
        return autocast.query(tx, fn, args, kwargs)
    name = getattr(fn, "__name__", "") or ""
    if name.startswith(_STATEFUL_PREFIXES) and fn is not torch.set_grad_enabled:
        # global-state switches would run at translate time under the fake mode too
        raise Unsupported(f"torch.{name} changes global state: called natively")
    if fn in (torch.no_grad, torch.enable_grad):
        return ContextValue(fn is torch.enable_grad)
    if fn is torch.set_grad_enabled:
        if _next_instruction(tx) != "BEFORE_WITH":
            # `torch.set_grad_enabled(False)` as a statement switches grad mode at once (its
            # constructor does, and the mode outlives the frame); a ContextValue switches it
            # only when a with block enters it: the ops after it were recorded with grad
            raise Unsupported("torch.set_grad_enabled() outside a with statement: run natively", breakable=False)
        return ContextValue(bool(args[0].as_python()))
    if fn in _BREAK_FUNCTIONS:
        raise Unsupported(f"torch.{getattr(fn, '__name__', fn)} is not captured")
    if fn in _CONST_FUNCTIONS and not any(isinstance(a, ScalarValue) for a in args):
        from .operators import python_value

        fake_args = [a.fake if isinstance(a, TensorValue) else python_value(a) for a in args]
        return ConstValue(fn(*fake_args))
    result = tx.ctx.graph.call("call_function", fn, args, kwargs)
    if isinstance(result, ConstValue) and not _runtime_values(list(args) + list(kwargs.values())):
        _guard_answer(tx, fn, args, kwargs, result.value)
    return result


_PLAIN_ANSWERS = (bool, int, float, complex, str, type(None), torch.dtype, torch.device)


class SameAnswer:
    """A library call still answers what it did: the answer of a torch call made of
    constants alone (`torch.get_num_threads()`, `torch.are_deterministic_algorithms_enabled()`)
    or of a library module's attribute read through its class (`torch.backends.cudnn.
    deterministic`, a getter of global state) is baked into the translation. Plain values
    compare by type and ==, anything else by identity. Run as ("call_id", SameAnswer(...), True)."""

    def __init__(self, fn, args, kwargs, answer):
        self.fn, self.args, self.kwargs, self.answer = fn, args, kwargs, answer
        self.__name__ = getattr(fn, "__name__", "torch call")  # what recompiles.py names

    def __call__(self):
        answer = self.fn(*self.args, **self.kwargs)
        if type(self.answer) in _PLAIN_ANSWERS:
            return type(answer) is type(self.answer) and answer == self.answer
        return answer is self.answer


def _next_instruction(tx):
    """The name of the instruction after the running one (None past the end)."""
    instrs, pc = getattr(tx, "instrs", ()), getattr(tx, "pc", len(getattr(tx, "instrs", ())))
    for instr in instrs[pc + 1:]:
        name = getattr(instr, "name", None)
        if name is not None:
            return name
    return None


def _runtime_values(values):
    """Does any of `values` (containers too) stand for a tensor or a run-time number? A
    torch call's constant answer about those is guarded through their facts."""
    return any(isinstance(v, (TensorValue, ScalarValue)) or hasattr(v, "children") and _runtime_values(v.children())
               for v in values)


def _guard_answer(tx, fn, args, kwargs, answer):
    from .operators import python_value

    if not args and not kwargs and (answer is None or type(answer) is bool):
        tx.ctx.guards.call_id(fn, answer)  # its own object: compared by identity, no wrapper
        return
    real_args = tuple(python_value(a) for a in args)  # raises Unsupported: runs natively
    real_kwargs = {k: python_value(v) for k, v in kwargs.items()}
    tx.ctx.guards.call_id(SameAnswer(fn, real_args, real_kwargs, answer), True)


def call_tensor_method(tx, name, self_value, args, kwargs):
    if name in _BREAK_METHODS:
        raise Unsupported(f"Tensor.{name}() needs the tensor's value")
    if not isinstance(self_value, TensorValue):
        raise Unsupported(f"Tensor.{name} on {self_value!r}")
    return tx.ctx.graph.call("call_method", name, [self_value] + list(args), kwargs)
