"""terra_dyn benchmarks: training programs, the side-by-side runner and micro-benchmarks.

    python benchmarks/run.py --programs gpt2,dcgan --iters 5     # eager vs terra_dyn vs torch.compile
    python benchmarks/micro.py                                    # per-call overhead, first-call latency
    python benchmarks/breaks.py                                   # programs with graph breaks

Every runner prints one table with ratios side by side and keeps running when a mode fails.
"""
