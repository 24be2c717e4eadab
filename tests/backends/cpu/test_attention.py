"""Attention written out by hand becomes one scaled_dot_product_attention call in inference
Programs (fusion/attention.py); results equal eager's within rounding, and every variant
the fused kernel cannot express is left as written."""
import math

import torch
import torch.fx as fx
import torch.nn.functional as F

from terra_dyn.backends.cpu import compile_graph
from terra_dyn.backends.fusion.attention import fuse_attention

from ..support import assert_same
from .support import run_on_threads

TOL = {"atol": 1e-5, "rtol": 1e-5}
FLASH = "_scaled_dot_product_flash_attention_for_cpu"


def with_values(fn, *args) -> fx.GraphModule:
    """fn traced, each node carrying its value on `args` as the frontend's example_value."""
    gm = fx.symbolic_trace(fn)

    class Record(fx.Interpreter):
        def run_node(self, node):
            node.meta["example_value"] = result = super().run_node(node)
            return result
    Record(gm).run(*args)
    return gm


def heads(qkv, n=4, d=16):
    """q, k, v of shape [batch, n, seq, d // n] from a [batch, seq, 3 * d] projection."""
    parts = qkv.split(d, dim=-1)
    return [parts[i].view(qkv.shape[0], qkv.shape[1], n, d // n).transpose(1, 2) for i in range(3)]


def block_attention(qkv):
    q, k, v = heads(qkv)
    att = torch.softmax(q @ k.transpose(-2, -1) * (1.0 / math.sqrt(4)), -1)
    return (att @ v).transpose(1, 2).reshape(qkv.shape[0], qkv.shape[1], 16)


def divided_unscaled_and_method_forms(qkv):
    q, k, v = heads(qkv)
    a = F.softmax(q @ k.transpose(3, 2) / 8.0, dim=-1) @ v
    b = (q.matmul(k.transpose(-1, -2))).softmax(-1) @ v
    return a + b


def compiled_ops(fn, *args):
    gm = with_values(fn, *args)
    compiled = compile_graph(gm, list(args))
    run_on_threads(compiled, args, fn(*args), **TOL)
    return [str(n.target) for p in compiled.programs.values() for n in p.aten_gm.graph.nodes]


def test_hand_written_attention_runs_the_fused_kernel_and_equals_eager():
    for batch in (1, 3):
        ops = compiled_ops(block_attention, torch.randn(batch, 16, 48))
        assert any(FLASH in t for t in ops) and not any("bmm" in t for t in ops), ops


def test_division_no_scale_and_method_forms_are_fused():
    ops = compiled_ops(divided_unscaled_and_method_forms, torch.randn(2, 8, 48))
    assert sum(FLASH in t for t in ops) == 2 and not any("bmm" in t for t in ops), ops


def not_attention(qkv, mask):
    q, k, v = heads(qkv)
    scores = q @ k.transpose(-2, -1) * 0.25
    probs = torch.softmax(scores + mask, -1)            # a mask: not matched
    other = torch.softmax(scores, -1)                   # the scores have another user
    kept = torch.softmax(q @ k.transpose(-2, -1), -1)
    return probs @ v, other @ v, kept, torch.softmax(q @ k.transpose(-2, -1), -2) @ v  # not the last dim


def test_variants_the_kernel_cannot_express_stay_as_written():
    qkv, mask = torch.randn(2, 8, 48), torch.randn(8, 8)
    gm = with_values(not_attention, qkv, mask)
    assert fuse_attention(gm) is gm
    ops = compiled_ops(not_attention, qkv, mask)
    assert not any(FLASH in t for t in ops), ops


def attention_and_pointwise(qkv):
    return torch.tanh(block_attention(qkv) * 2) + qkv[..., :16]  # kernels: the pair is kept


def test_training_graph_runs_the_fused_kernel_forward_and_backward():
    qkv = torch.randn(2, 8, 48)
    gm = with_values(attention_and_pointwise, qkv)
    compiled = compile_graph(gm, [qkv.clone().requires_grad_()])
    for call in range(2):
        ours, theirs = qkv.clone().requires_grad_(), qkv.clone().requires_grad_()
        seed = torch.randn(2, 8, 16)
        compiled(ours).backward(seed)
        attention_and_pointwise(theirs).backward(seed)
        assert_same(ours.grad, theirs.grad, **TOL, what=f"call {call}")
    (joint,) = compiled.autograd_programs.values()
    assert FLASH in joint.forward_gm.code and FLASH + "_backward" in joint.backward_gm.code, compiled.describe()
    assert "bmm" not in joint.forward_gm.code


def test_attention_with_dropout_keeps_eager_autograd():
    fn = lambda q, k, v: F.scaled_dot_product_attention(q, k, v, dropout_p=0.5)  # noqa: E731
    args = [torch.randn(1, 2, 4, 8, requires_grad=True) for _ in range(3)]
    compiled = compile_graph(fx.symbolic_trace(fn), args)
    compiled(*args).sum().backward()
    assert all(a.grad is not None for a in args)
    assert compiled.joint_refused, compiled.notes  # random numbers (or the in-place dropout)


def test_the_attention_kernel_draws_random_numbers_only_with_dropout():
    from terra_dyn.backends.fusion.joint import draws_random_numbers
    aten = torch.ops.aten
    graph = fx.Graph()
    q = graph.placeholder("q")
    flash = aten._scaled_dot_product_flash_attention_for_cpu.default
    calls = [graph.call_function(flash, (q, q, q, 0.0, False)), graph.call_function(flash, (q, q, q)),
             graph.call_function(flash, (q, q, q), {"dropout_p": 0.1}), graph.call_function(flash, (q, q, q, 0.5)),
             graph.call_function(aten.bernoulli.default, (q,)), graph.call_function(aten.add.Tensor, (q, q))]
    assert [draws_random_numbers(n) for n in calls] == [False, False, True, True, True, False]


def test_symbolic_sizes_are_left_as_written():
    # comparing symbolic sizes would add guards to the frontend's shape environment
    from torch._subclasses.fake_tensor import FakeTensorMode
    from torch.fx.experimental.symbolic_shapes import ShapeEnv
    mode = FakeTensorMode(shape_env=ShapeEnv())
    qkv = mode.from_tensor(torch.randn(2, 8, 48), static_shapes=False)
    with mode:
        gm = with_values(block_attention, qkv)
    assert fuse_attention(gm) is gm
    static = with_values(block_attention, torch.randn(2, 8, 48))
    assert fuse_attention(static) is not static
