"""`Fn.apply(*args)` of a torch.autograd.Function subclass with grad mode off.

    class GeLUFunction(torch.autograd.Function):      # transformers' BloomGelu, on every
        @staticmethod                                 # forward, in eval and in training
        def forward(ctx, x):
            ctx.save_for_backward(x)
            return bloom_gelu_forward(x)

    GeLUFunction.apply(x)   ->   forward inlined with a ctx that records nothing

With grad mode off (guarded for every translation: GuardSet.ambient) autograd's C apply
builds no node: it runs `forward` (grad off) and hands back its outputs. What a ctx is
asked to save or mark is never read again, so the ctx here is an object whose methods do
nothing and whose `needs_input_grad` is all False, as C apply sets it. Two differences
remain, both refused: an input tensor returned as it is comes back as a view of it (a new
tensor object), and a class with `setup_context` runs it after forward (not modelled).
With grad mode on the call is not captured (a break; the native apply records the node).
"""
import types

import torch

from .errors import Unsupported
from .values import ConstValue, ObjectValue, TensorValue, TupleValue

_APPLY = torch.autograd.Function.apply.__func__


class NoGradFunctionCtx:
    """The ctx of a Function applied with grad mode off: nothing is recorded."""

    def save_for_backward(self, *tensors):
        pass

    def save_for_forward(self, *tensors):
        pass

    def mark_dirty(self, *tensors):
        pass

    def mark_non_differentiable(self, *tensors):
        pass

    def set_materialize_grads(self, value):
        pass


def function_class(f):
    """The Function subclass if `f` is its bound `apply`, else None."""
    if isinstance(f, types.MethodType) and f.__func__ is _APPLY and isinstance(f.__self__, type):
        return f.__self__
    return None


def apply(tx, cls, args, kwargs):
    if torch.is_grad_enabled():
        raise Unsupported(f"{cls.__qualname__}.apply with grad mode on (autograd records a node)")
    forward = cls.__dict__.get("forward")
    if not isinstance(forward, staticmethod) or not isinstance(forward.__func__, types.FunctionType):
        raise Unsupported(f"{cls.__qualname__}.forward is not a Python staticmethod")
    if torch.autograd.function._is_setup_context_defined(cls.setup_context):
        raise Unsupported(f"{cls.__qualname__} defines setup_context")
    tx.ctx.guards.class_attributes(cls)  # forward read from the class: it stays
    needs_grad = TupleValue([ConstValue(False) for _ in args])
    ctx = ObjectValue(NoGradFunctionCtx, {"needs_input_grad": needs_grad})
    from . import inline

    out = inline.inline_function(tx, ConstValue(forward.__func__), [ctx] + list(args), kwargs)
    inputs = [a for a in list(args) + list(kwargs.values()) if isinstance(a, TensorValue)]
    outputs = out.items if isinstance(out, TupleValue) else [out]
    if any(o is i for o in outputs for i in inputs):
        raise Unsupported(f"{cls.__qualname__}.forward returned an input (apply gives a view of it)")
    return out
