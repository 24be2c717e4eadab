"""ATen steps called through torch's bindings (cpu/fast_calls.py): same results as the op
overloads, and only the overloads whose binding parses the same arguments are replaced."""
import torch
import torch.nn.functional as F
from torch.fx.experimental.proxy_tensor import make_fx

from terra_dyn.backends.cpu.fast_calls import fast_module

from ..support import assert_same

aten = torch.ops.aten


def model(x, w, b, idx):
    h = F.gelu(F.linear(x, w, b)).view(2, 3, -1)               # addmm, gelu (torch._C._nn), view
    a, c = h.split(4, dim=-1)                                   # split: torch.split, Tensor.split
                                                                # are Python wrappers
    s = torch.softmax(a, -1) + torch.add(c, a, alpha=0.5)       # _softmax, add with a keyword
    t = s.transpose(1, 2).contiguous().sum(dim=[1], keepdim=True)
    loss = F.mse_loss(x, x * 2)                                  # the binding's default: no reduction
    return t * 2, torch.where(t > 0, t, torch.zeros_like(t)), h[idx], h.new_zeros(3), loss


def test_bindings_give_the_overloads_results():
    args = (torch.randn(6, 5), torch.randn(8, 5), torch.randn(8), torch.tensor([1, 0]))
    gm = make_fx(model)(*args)  # no decompositions: gelu stays an op (torch._C._nn.gelu)
    fast = fast_module(gm)
    targets = {n.target for n in fast.graph.nodes if n.op in ("call_function", "call_method")}
    assert torch.addmm in targets and "view" in targets and torch._C._nn.gelu in targets, targets
    assert aten.split.Tensor in targets, targets  # torch.split is not the binding: kept
    assert not any(isinstance(t, torch._ops.OpOverload) and t in (aten.addmm.default, aten.view.default)
                   for t in targets)
    assert torch._C._nn.mse_loss in targets, targets
    assert_same(list(fast(*args)), list(gm(*args)), atol=0, rtol=0)  # the loss a scalar, as eager


def test_an_omitted_argument_gets_the_schemas_default_not_the_bindings():
    # torch._C._nn.mse_loss(a, b) reduces nothing; the op's schema default is the mean
    fn = lambda a, b: (F.mse_loss(a, b), torch.sum(a, [0]))  # noqa: E731
    args = (torch.randn(3, 2), torch.randn(3, 2))
    gm = make_fx(fn)(*args)
    fast = fast_module(gm)
    assert torch._C._nn.mse_loss in {n.target for n in fast.graph.nodes}
    assert_same(list(fast(*args)), list(fn(*args)), atol=0, rtol=0)


def test_training_graph_halves_without_kernels_call_bindings(monkeypatch):
    import terra_dyn.config as config
    from terra_dyn.backends.cpu import compile_graph
    from ..support import trace
    monkeypatch.setattr(config, "cpu_min_elements", 1 << 30)  # no group becomes a kernel
    fn = lambda x, w, b: F.relu(F.linear(x, w, b)).sum()  # noqa: E731
    args = [torch.randn(4, 6), torch.randn(3, 6).requires_grad_(), torch.randn(3).requires_grad_()]
    compiled = compile_graph(trace(fn, 3), args)
    compiled(*args).backward()
    (joint,) = compiled.autograd_programs.values()
    (program,) = joint.forward.programs.values()
    code = program.run.__self__.code
    assert "torch.addmm" in code or "torch.relu" in code or "torch._C._nn.linear" in code, code
    grads = [a.grad for a in args[1:]]
    for a in args[1:]:
        a.grad = None
    fn(*args).backward()
    assert_same(grads, [a.grad for a in args[1:]])


def test_arguments_with_defaults_go_by_name_so_no_deprecated_signature_matches():
    # torch.sub(x, 2, 3) parses as the deprecated sub(input, alpha, other) and warns;
    # aten.sub.Scalar(x, 2, 3) means other=2, alpha=3
    import warnings

    def fn(x):
        return aten.sub.Scalar(x, 2, 3), aten.add.Scalar(x, 2), aten.mse_loss.default(x, x * 2), \
            aten.sum.dim_IntList(x, [1], True)
    x = torch.randn(3, 4)
    gm = make_fx(fn)(x)
    fast = fast_module(gm)
    assert "torch.sub(x_1, 2, alpha = 3)" in fast.code and "reduction = 1" in fast.code, fast.code
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert_same(list(fast(x)), list(gm(x)), atol=0, rtol=0)


def test_a_keyword_only_argument_passed_by_name_still_gets_the_binding():
    # matmul's copy of an expanded operand: clone(x, memory_format=contiguous_format), ~4 us
    # more a call as an overload (a 2-layer llama forward has 7)
    fn = lambda x: aten.clone.default(x.expand(2, 3, 4), memory_format=torch.contiguous_format)  # noqa: E731
    x = torch.randn(3, 4)
    fast = fast_module(make_fx(fn)(x))
    assert "torch.clone(" in fast.code, fast.code
    out = fast(x)
    assert_same(out, fn(x), atol=0, rtol=0)
    assert out.is_contiguous()
