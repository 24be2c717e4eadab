"""Gradients for graphs whose inputs require grad: a torch.autograd.Function whose forward
runs the graph's kernels and whose backward runs the compiled VJP graph (kernels too).

    forward:  outputs = Program(gm)(*inputs)                       (no autograd recording)
    backward: grads_in = CompiledGraph(make_fx(vjp))(*inputs, *grads_out)
              vjp(inputs, grads_out) = torch.autograd.grad(gm(inputs), inputs, grads_out)

The VJP graph is traced once per input signature with make_fx on fake tensors; it
recomputes the forward values it needs inside its own fused kernels instead of saving
activations (rematerialization: memory of inputs only, extra math in the backward).
Graphs that mutate inputs, return aliases of inputs or non-tensors use the plain eager path
(`EagerAutograd`), where autograd records ATen ops; so does double backward, because the
backward graph then runs eagerly under grad mode.
"""
import torch
from torch.fx.experimental.proxy_tensor import make_fx
from torch.utils import _pytree as pytree

from . import decompositions
from ..fusion.lowering import module_classes_untouched


class _GraphFunction(torch.autograd.Function):
    @staticmethod
    def forward(ctx, runner, *args):
        ctx.runner = runner
        ctx.save_for_backward(*[a if isinstance(a, torch.Tensor) else None for a in args])
        ctx.non_tensors = [None if isinstance(a, torch.Tensor) else a for a in args]
        with torch.no_grad():
            flat, spec = pytree.tree_flatten(runner.forward_program(*args))
        runner.out_spec = spec
        kept = runner.differentiable_outputs(args, len(flat))
        ctx.mark_non_differentiable(*[t for i, t in enumerate(flat)
                                      if not (t.is_floating_point() or t.is_complex()) or i not in kept])
        return tuple(flat)

    @staticmethod
    def backward(ctx, *grads):
        saved = ctx.saved_tensors
        args = [s if n is None else n for s, n in zip(saved, ctx.non_tensors)]
        grads_in = ctx.runner.backward(args, grads)
        return (None, *grads_in)


class AutogradProgram:
    """Forward kernels + compiled backward for one input signature (see module docstring)."""

    def __init__(self, gm, forward_program, args, compile_backward, on_fallback=lambda note: None):
        self.gm = gm
        self.on_fallback = on_fallback
        self.forward_program = forward_program
        self.diff = [i for i, a in enumerate(args) if isinstance(a, torch.Tensor) and a.requires_grad]
        self.compile_backward = compile_backward
        self.backward_graph = None
        self.out_spec = None
        self.differentiable = None  # output positions that require grad (differentiable_outputs)

    def __repr__(self):
        state = "built" if self.backward_graph else "not built"
        return f"AutogradProgram(differentiable inputs {self.diff}, backward {state})"

    def differentiable_outputs(self, args, count) -> set:
        """Positions of the outputs that require grad in eager (depend on an input that
        requires grad, not through detach() or no_grad): the others are marked
        non-differentiable, so that user code may call .numpy() on them as in eager
        (faster_rcnn's boxes). Found once per signature by running the graph on fake
        tensors; if that fails, every float output counts as differentiable."""
        if self.differentiable is None:
            self.differentiable = set(range(count))
            try:
                from torch._subclasses.fake_tensor import FakeTensorMode
                mode = FakeTensorMode(allow_non_fake_inputs=True)
                fakes = [mode.from_tensor(a).requires_grad_(a.requires_grad)
                         if isinstance(a, torch.Tensor) and a.is_floating_point() else
                         (mode.from_tensor(a) if isinstance(a, torch.Tensor) else a) for a in args]
                with mode, torch.enable_grad():
                    outs = pytree.tree_leaves(self.gm(*fakes))
                if len(outs) == count:
                    self.differentiable = {i for i, o in enumerate(outs)
                                           if isinstance(o, torch.Tensor) and o.requires_grad}
            except Exception as exc:  # noqa: BLE001 (a conservative default, noted)
                self.on_fallback(f"every float output counts as differentiable ({type(exc).__name__}: {exc})")
        return self.differentiable

    def __call__(self, *args):
        flat = _GraphFunction.apply(self, *args)
        return pytree.tree_unflatten(list(flat), self.out_spec)

    def _vjp(self, n):
        gm, diff = self.gm, self.diff

        def vjp(*flat):
            inputs, grads = flat[:n], flat[n:]
            with torch.enable_grad():
                leaves = [x.detach().requires_grad_(True) if i in diff else x for i, x in enumerate(inputs)]
                outs = pytree.tree_leaves(gm(*leaves))
                pairs = [(o, g) for o, g in zip(outs, grads) if isinstance(o, torch.Tensor) and o.requires_grad]
                got = torch.autograd.grad([o for o, _ in pairs], [leaves[i] for i in diff],
                                          [g for _, g in pairs], allow_unused=True)
            return [g if g is not None else torch.zeros_like(inputs[i]) for g, i in zip(got, diff)]
        return vjp

    def backward(self, args, grads):
        if self.backward_graph is None:
            plain = [a.detach() if isinstance(a, torch.Tensor) else a for a in args]
            example = plain + list(grads)
            try:
                with module_classes_untouched():
                    traced = make_fx(self._vjp(len(args)), tracing_mode="fake",
                                     decomposition_table=decompositions.table())(*example)
                self.backward_graph = self.compile_backward(traced, example)
            except Exception as exc:
                # the VJP graph cannot be traced: compute it eagerly (same math, ATen ops)
                self.backward_graph = self._vjp(len(args))
                self.on_fallback(f"backward runs eagerly: tracing the VJP failed ({type(exc).__name__}: {exc})")
        got = self.backward_graph(*args, *grads)
        result = [None] * len(args)
        for i, g in zip(self.diff, got):
            result[i] = g
        return result


def needs_autograd(args) -> bool:
    return torch.is_grad_enabled() and any(isinstance(a, torch.Tensor) and a.requires_grad for a in args)


def eager_only_reason(forward_program, args) -> str:
    """Why a graph keeps the eager autograd path ('' when AutogradProgram can handle it)."""
    from .lowering import is_inplace
    graph = forward_program.aten_gm.graph
    if any(is_inplace(n) for n in graph.nodes):
        return "the graph mutates a tensor"
    if any(torch.Tag.nondeterministic_seeded in getattr(n.target, "tags", ()) for n in graph.nodes):
        # the backward recomputes forward values: a dropout mask drawn again would differ
        # from the forward's, and the gradients would be silently wrong
        return "the graph draws random numbers"
    output = next(n for n in graph.nodes if n.op == "output")
    placeholders = {n for n in graph.nodes if n.op == "placeholder"}
    for out in pytree.tree_leaves(output.args[0]):
        if not hasattr(out, "meta") or not isinstance(out.meta.get("val"), torch.Tensor):
            return "an output is not a tensor"
        if out in placeholders or out.op == "call_function" and getattr(out.target, "is_view", False):
            return "an output aliases an input"
        if out.op == "call_function" and hasattr(out.target, "_schema") and any(
                r.alias_info is not None for r in out.target._schema.returns):
            return "an output aliases an input"
    return ""
