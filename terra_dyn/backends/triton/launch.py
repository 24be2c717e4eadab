"""Running one generated kernel: output buffers, the launch grid, block sizes.

    launcher = Launcher(source, kernel, cache, device)
    outputs = launcher(input_tensors)          # fresh contiguous output tensors

Grid: one program per XBLOCK elements (pointwise) or per XBLOCK rows (reduction), so
grid = (cdiv(xnumel, XBLOCK),). Block sizes come from the shapes: a persistent reduction
holds its whole row (RBLOCK = next power of two >= the row length) and packs rows so that
a block holds about 4K elements; a looped reduction walks the row 1024 elements at a time,
except an outer one (x.sum(1) of [B, R, C]), whose block is wide in x and a few rows deep.
On a GPU with more than one plausible config, the first call times each candidate
(triton.testing.do_bench) and keeps the fastest; the choice is saved next to the cached
kernel so that later processes skip the timing. The CPU interpreter uses one config with
large blocks (fewer programs are faster there).
"""
from dataclasses import dataclass

import torch

from .codegen import KernelSource


def next_pow2(n: int) -> int:
    return 1 << max(0, (int(n) - 1).bit_length())


@dataclass(frozen=True)
class LaunchConfig:
    XBLOCK: int
    RBLOCK: int = 0
    num_warps: int = 4

    def __repr__(self):
        r = f", RBLOCK={self.RBLOCK}" if self.RBLOCK else ""
        return f"LaunchConfig(XBLOCK={self.XBLOCK}{r}, num_warps={self.num_warps})"


def _sixteen_bit(source: KernelSource) -> bool:
    """The kernel moves 16-bit values: a block of N elements moves half an f32 block's bytes."""
    return any(kind in ("*fp16", "*bf16") for kind in source.signature.values())


def candidates(source: KernelSource, interpret: bool) -> list:
    """Launch configs worth trying for `source`, the heuristic favourite first."""
    x, r = source.xnumel, source.rnumel
    if not source.is_reduction:
        if interpret:
            return [LaunchConfig(min(next_pow2(x), 4096))]
        if x < (1 << 16):
            return [LaunchConfig(min(max(next_pow2(x), 128), 1024), 0, 4)]
        configs = [LaunchConfig(1024, 0, 4), LaunchConfig(512, 0, 4), LaunchConfig(2048, 0, 8)]
        if _sixteen_bit(source):  # as many bytes in flight per block as the f32 configs move
            configs.append(LaunchConfig(4096, 0, 8))
        return configs
    if source.persistent:
        rblock = next_pow2(r)
        if interpret:
            return [LaunchConfig(min(next_pow2(x), max(1, 16384 // rblock)), rblock)]
        warps = 8 if rblock >= 2048 else 4 if rblock >= 512 else 2
        best = max(1, min(next_pow2(x), 4096 // rblock))
        configs = [LaunchConfig(best, rblock, warps)]
        if rblock >= 4096:  # long rows: more threads per row keep more loads in flight
            configs.append(LaunchConfig(best, rblock, 16))
        for xb in (max(1, best // 2), min(next_pow2(x), best * 2)):
            if LaunchConfig(xb, rblock, warps) not in configs and xb * rblock <= 16384:
                configs.append(LaunchConfig(xb, rblock, warps))
        return configs
    if source.outer:  # wide in x (coalesced loads along the kept innermost dim), narrow in r
        if interpret:
            return [LaunchConfig(min(next_pow2(x), 256), min(next_pow2(r), 64))]
        shapes = [(128, 16, 4), (64, 32, 4), (256, 8, 8), (128, 32, 8)] + ([(256, 16, 8)] if _sixteen_bit(source) else [])
        return [LaunchConfig(xb, rb, w) for xb, rb, w in shapes if xb <= max(next_pow2(x), 64)] or \
            [LaunchConfig(64, 16, 4)]
    if interpret:
        return [LaunchConfig(min(next_pow2(x), 8), 1024)]
    return [LaunchConfig(1, 1024, 4), LaunchConfig(1, 2048, 8), LaunchConfig(2, 1024, 8)]


class Launcher:
    """Calls one kernel on concrete tensors; chooses its config on the first call."""

    def __init__(self, source: KernelSource, kernel, cache, interpret: bool, target: str):
        self.source = source
        self.kernel = kernel
        self.cache = cache
        self.interpret = interpret
        self.target = target
        self.configs = candidates(source, interpret)
        self.config = self.configs[0] if len(self.configs) == 1 else None
        self.binary = None

    def __repr__(self):
        return f"Launcher({self.source.name}, {self.config or 'untuned'})"

    def allocate(self, device):
        return [torch.empty(lay.shape, dtype=lay.dtype, device=device) for lay in self.source.output_layouts]

    def launch(self, config: LaunchConfig, inputs, outputs):
        grid = (-(-self.source.xnumel // config.XBLOCK),)
        blocks = {"XBLOCK": config.XBLOCK}
        if self.source.is_reduction:
            blocks["RBLOCK"] = config.RBLOCK
        if not self.interpret:
            blocks["num_warps"] = config.num_warps
        # the compiled binary comes back from the launch: its registers and spills are facts
        # the GPU benchmark reports for kernels that miss their bandwidth target
        self.binary = self.kernel[grid](*inputs, *outputs, **blocks)

    def __call__(self, inputs):
        outputs = self.allocate(inputs[0].device)
        if self.config is None:
            self.config = self.tune(inputs, outputs)
        self.launch(self.config, inputs, outputs)
        return outputs

    def tune(self, inputs, outputs) -> LaunchConfig:
        """Time each candidate (outputs are scratch, inputs are only read) and keep the fastest."""
        saved = self.cache.read_json(self.source, self.target, ".json")
        if saved:
            return LaunchConfig(**saved)
        from triton.testing import do_bench
        timings = []
        for config in self.configs:
            try:
                ms = do_bench(lambda: self.launch(config, inputs, outputs), warmup=3, rep=10)
            except Exception:  # a config that does not compile (too many registers): skip it
                continue
            timings.append((ms, config))
        best = min(timings, key=lambda t: t[0])[1] if timings else self.configs[0]
        self.cache.write_json(self.source, self.target, ".json", best.__dict__)
        return best
