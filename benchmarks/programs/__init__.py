"""Ten imperative PyTorch training programs modelled on the Terra paper's evaluation.

Each module defines a `Program` subclass and `build(config, device, seed=0) -> Program`
(see common.py for the interface). Look one up by name:

    from benchmarks import programs
    prog = programs.build("gpt2", "small", "cpu", seed=0)
    prog.optimize(terra_dyn.optimize)          # wraps what a user would wrap (the train step)
    losses = [prog.run(prog.make_batch(i)).item() for i in range(5)]
"""
import importlib

NAMES = [
    "dcgan",
    "resnet50",
    "faster_rcnn",
    "yolov3",
    "sdpoint",
    "bert_qa",
    "bert_cls",
    "gpt2",
    "dropblock",
    "music_transformer",
]


def build(name, config="small", device="cpu", seed=0):
    """Build program `name` with a fresh, seeded model and optimizer."""
    if name not in NAMES:
        raise KeyError(f"unknown program {name!r}; known: {', '.join(NAMES)}")
    module = importlib.import_module(f"{__name__}.{name}")
    return module.build(config, device, seed)
