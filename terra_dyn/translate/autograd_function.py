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
With grad mode on, autograd must record the node, which only the real apply does: the
graph gets one node that calls `Fn.apply` itself (backward then runs Fn.backward as eager
does). Its outputs' facts come from running apply on meta or fake tensors at translation,
so forward is first inlined on trial and the node is made only if that trial had no effect
beyond tensor ops on fresh results (no print, no store, no in-place op, no break); the
trial's nodes are then dropped.
"""
import types

import torch

from ..eval_frame import hook_off
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
    forward = cls.__dict__.get("forward")
    if not isinstance(forward, staticmethod) or not isinstance(forward.__func__, types.FunctionType):
        raise Unsupported(f"{cls.__qualname__}.forward is not a Python staticmethod")
    if torch.autograd.function._is_setup_context_defined(cls.setup_context):
        raise Unsupported(f"{cls.__qualname__} defines setup_context")
    tx.ctx.guards.class_attributes(cls)  # forward and backward read from the class: they stay
    if torch.is_grad_enabled():
        return _apply_node(tx, cls, forward.__func__, args, kwargs)
    out = _inline_forward(tx, forward.__func__, args, kwargs, [False] * len(args))
    inputs = [a for a in list(args) + list(kwargs.values()) if isinstance(a, TensorValue)]
    outputs = out.items if isinstance(out, TupleValue) else [out]
    if any(o is i for o in outputs for i in inputs):
        raise Unsupported(f"{cls.__qualname__}.forward returned an input (apply gives a view of it)")
    return out


def _inline_forward(tx, forward, args, kwargs, needs_input_grad):
    from . import inline

    needs_grad = TupleValue([ConstValue(n) for n in needs_input_grad])
    ctx = ObjectValue(NoGradFunctionCtx, {"needs_input_grad": needs_grad})
    return inline.inline_function(tx, ConstValue(forward), [ctx] + list(args), kwargs)


def _apply_node(tx, cls, forward, args, kwargs):
    """One graph node calling the real `cls.apply`, after a trial inlining of forward that
    shows it has no effect a node run later could reorder (module docstring)."""
    graph, ctx = tx.ctx.graph, tx.ctx
    if not all(isinstance(a, (TensorValue, ConstValue)) for a in list(args) + list(kwargs.values())):
        raise Unsupported(f"{cls.__qualname__}.apply with grad mode on of a non-tensor, non-constant argument")
    before = (len(graph.side_effects), len(graph.attr_overlay), len(ctx.mutated))
    last = graph.graph._root.prev  # the newest node: the trial's nodes come after it
    needs = [isinstance(a, TensorValue) and bool(a.facts.requires_grad) for a in args]
    _inline_forward(tx, forward, args, kwargs, needs)
    trial = _nodes_after(graph.graph, last)
    if (len(graph.side_effects), len(graph.attr_overlay), len(ctx.mutated)) != before:
        raise Unsupported(f"{cls.__qualname__}.forward has Python side effects (grad mode on)")
    if any(n.meta.get("in_place") for n in trial):
        raise Unsupported(f"{cls.__qualname__}.forward changes a tensor in place (grad mode on)")
    for node in reversed(trial):
        graph.graph.erase_node(node)
    return graph.call("call_function", _applier(cls), list(args), dict(kwargs))


def _nodes_after(graph, last):
    nodes, node = [], last.next
    while node is not graph._root:
        if node.op != "placeholder":  # an input the trial read (a global tensor) stays
            nodes.append(node)
        node = node.next
    return nodes


def _applier(cls):
    """A function calling `cls.apply` with the hook off (forward and backward are the
    graph's own run, not frames to translate), named for the graph's code (fx would name
    the bound method after torch.autograd.function)."""
    def apply(*args, **kwargs):
        return cls.apply(*args, **kwargs)

    apply.__name__ = apply.__qualname__ = f"apply_{cls.__name__}"
    return hook_off(apply)
