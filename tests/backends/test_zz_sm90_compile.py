"""Every kernel the backend tests generated also compiles for an H100 (sm_90) with
triton.compile(ASTSource(...), target=GPUTarget("cuda", 90, 32)): runs last in this
directory (file name); run alone, it compiles a small corpus.

Deduplication: kernels whose sources differ only in integer literals (sizes, strides,
block sizes) and have the same argument types and block-size class (more or fewer than
2048 elements a block) compile through the same code paths; one of each such class is
compiled. The full suite generates ~1000 kernels in ~600 classes (compiling every kernel
took about 4 minutes on 2 cores; the classes take about 2). Kernels that differ in
structure, dtypes, masks, loops or int64 indexing are all compiled.
"""
import re

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


def _structure(source):
    """Kernels equal up to integer literals (sizes, strides, block sizes), with the same
    argument types and the same block-size class, compile through the same code paths."""
    from terra_dyn.backends.triton.launch import candidates
    config = candidates(source, interpret=False)[0]
    body = "\n".join(line for line in source.text.splitlines() if not line.strip().startswith("#"))
    big_block = config.XBLOCK * max(config.RBLOCK, 1) > 2048
    return re.sub(r"\b\d+\b", "N", body), tuple(source.signature.items()), big_block


def test_every_generated_kernel_compiles_for_sm90():
    from terra_dyn.backends.triton.compile_check import compile_for_gpu
    if len(GENERATED) < 5:
        _corpus()
    classes = {}
    for source in GENERATED.values():
        classes.setdefault(_structure(source), source)
    sources = list(classes.values())
    results = compile_for_gpu(sources, capability=90, workers=2)
    failed = [r for r in results if r.error]
    assert not failed, failed[:5]
    assert all(r.ptx_bytes > 0 and r.cubin_bytes > 0 for r in results)
    assert len(results) == len(sources)
    print(f"\n{len(GENERATED)} generated kernels, {len(sources)} distinct up to integer literals, compiled for "
          f"sm_90 ({sum(r.cached for r in results)} from the compile cache)")
