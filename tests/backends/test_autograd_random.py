"""A training graph that draws random numbers keeps the eager autograd path: the compiled
backward recomputes forward values, and a dropout mask drawn again would differ from the
forward's, giving silently wrong gradients (found with the GPU programs, gpt2's dropout)."""
import torch
import torch.fx as fx

import terra_dyn.backends.triton as triton_backend


def dropout_loss(x, w):
    return torch.nn.functional.dropout(x * w, 0.5, True).sum()


def test_dropout_gradients_equal_eager():
    x = torch.randn(32, 32)
    w = torch.randn(32, requires_grad=True)
    compiled = triton_backend.compile_graph(fx.symbolic_trace(dropout_loss), [x, w])
    torch.manual_seed(0)
    compiled(x, w).backward()
    got = w.grad.clone()
    w.grad = None
    torch.manual_seed(0)
    dropout_loss(x, w).backward()
    assert torch.allclose(got, w.grad)
    assert any("draws random numbers" in note for note in compiled.notes)
