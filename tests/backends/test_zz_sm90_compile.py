"""Every kernel the backend tests generated also compiles for an H100 (sm_90) with
triton.compile(ASTSource(...), target=GPUTarget("cuda", 90, 32)): runs last in this
directory (file name), deduplicated by source, two compile processes; run alone, it
compiles a small corpus. About 1000 kernels, 2.5 to 4 minutes on 2 cores."""
import pytest
import torch
import torch.nn.functional as F

from .support import GENERATED, check

pytestmark = [pytest.mark.filterwarnings("ignore::UserWarning"), pytest.mark.filterwarnings("ignore::RuntimeWarning")]


def _corpus():
    w = torch.randn(64)
    check(lambda x: torch.softmax(x, -1), torch.randn(4, 100))
    check(lambda x: torch.softmax(x, -1), torch.randn(2, 5000))
    check(lambda x, w: F.layer_norm(x, (64,), w, w), torch.randn(3, 64), w, atol=1e-5, rtol=1e-5)
    check(lambda x: (torch.tanh(x) ** 1.5, torch.log1p(x.abs()), x.argmax(0)), torch.randn(9, 7).abs())
    check(lambda x: (x.to(torch.float16) * 2).sum(1), torch.randn(5, 33).to(torch.bfloat16),
          atol=0.1, rtol=2e-2)


def test_every_generated_kernel_compiles_for_sm90():
    from terra_dyn.backends.triton.compile_check import compile_for_gpu
    if len(GENERATED) < 5:
        _corpus()
    sources = list(GENERATED.values())  # keyed by source text: each distinct kernel once
    results = compile_for_gpu(sources, capability=90, workers=2)
    failed = [r for r in results if r.error]
    assert not failed, failed[:5]
    assert all(r.ptx_bytes > 0 and r.cubin_bytes > 0 for r in results)
    assert len(results) == len(sources)
    print(f"\n{len(sources)} generated kernels compiled for sm_90 ({sum(r.cached for r in results)} from the "
          "compile cache)")
