"""A seeded differential fuzzer: generated programs, state changed between calls, every
optimized call compared with the same code run plainly.

    python -m tests.soundness.fuzz --cases 5000 --seed 0        # the long run (documented)
    python -m tests.soundness.fuzz --cases 200 --seed 3 -v      # print each case
    python -m tests.soundness.fuzz --only 1000004                # one case, by its case seed

A case is (value kind) x (source kind) x (mutations). Its program reads one value from the
source, hands it to a helper that turns any kind into a number (an isinstance ladder: type
guards), and returns `x * helper(v) + k`. Each case builds two copies of the same world
(module globals, objects, classes, closures, defaults) from the same seed: one is run
plainly, one through terra_dyn.optimize. After the first call, a list of mutations runs on
both worlds (same value, another value of the same kind, another kind, a container growing,
the helper's code replaced...), each followed by one call of each; results (value, type, or
the exception type) must match every time.

    value kinds   int, float, bool, str, None, numpy scalar, tuple, list, dict, tensor
    source kinds  argument, list item, nested dict item, attribute, global, closure cell,
                  default, class attribute via self, via type(self), module attribute,
                  nn.Module attribute, builtin (the world's own builtins dict)
    mutations     rebind to a new value (same kind / other kind), mutate a container in
                  place (a builtin: a global of that name appears, None half the time, or
                  goes), replace the helper's __code__, change the tensor argument's shape
"""
import argparse
import builtins
import random
import sys
import types
import warnings

import numpy as np
import torch

VALUE_KINDS = ["int", "float", "bool", "str", "none", "np", "tuple", "list", "dict", "tensor"]
SOURCE_KINDS = ["arg", "item", "nested", "attr", "global", "cell", "default", "class_self",
                "class_type", "module", "nn_attr", "builtin"]


def make_value(kind, rng):
    if kind == "int":
        return rng.randint(-3, 9)
    if kind == "float":
        return rng.choice([0.5, -1.25, 2.0, 3.75])
    if kind == "bool":
        return rng.random() < 0.5
    if kind == "str":
        return rng.choice(["a", "ab", "bcd", "", "abcde"])
    if kind == "none":
        return None
    if kind == "np":
        return rng.choice([np.int64(rng.randint(0, 5)), np.float32(rng.choice([0.5, 1.5]))])
    if kind == "tuple":
        return tuple(rng.randint(0, 4) for _ in range(rng.randint(0, 3)))
    if kind == "list":
        return [rng.randint(0, 4) for _ in range(rng.randint(0, 3))]
    if kind == "dict":
        return {k: rng.randint(0, 4) for k in rng.sample("abc", rng.randint(0, 3))}
    if kind == "tensor":
        return torch.full((rng.randint(1, 3),), float(rng.randint(0, 3)))
    raise ValueError(kind)


HELPER = '''
def use(v):
    if isinstance(v, torch.Tensor):
        return v.sum() + v.shape[0]
    if isinstance(v, (list, tuple)):
        return sum(v) + len(v) * 3
    if isinstance(v, dict):
        return sum(v.values()) + len(v) * 5
    if isinstance(v, str):
        return len(v) + (7 if v.startswith("a") else 0)
    if v is None:
        return -1
    return v * 2 + 1
'''

ALT_HELPER = '''
def alt(v):
    return 42
'''

# how the program reads the value, per source kind
READS = {
    "arg": ("def f(x, v):\n    return x * use(v) + 1\n", "f(x, v)"),
    "item": ("def f(x, box):\n    return x * use(box[0]) + len(box)\n", "f(x, box)"),
    "nested": ("def f(x, tree):\n    return x * use(tree['a'][0]) + 2\n", "f(x, tree)"),
    "attr": ("def f(x, holder):\n    return x * use(holder.v) + 3\n", "f(x, holder)"),
    "global": ("def f(x):\n    return x * use(V) + 4\n", "f(x)"),
    "cell": ("def outer(v):\n    def f(x):\n        return x * use(v) + 5\n"
             "    def set_v(n):\n        nonlocal v\n        v = n\n    return f, set_v\n", "f(x)"),
    "default": ("def f(x, v=None):\n    return x * use(v) + 6\n", "f(x)"),
    "class_self": ("class K:\n    v = None\n    def f(self, x):\n        return x * use(self.v) + 7\n",
                   "obj.f(x)"),
    "class_type": ("class K:\n    v = None\n    def f(self, x):\n        return x * use(type(self).v) + 8\n",
                   "obj.f(x)"),
    "module": ("def f(x):\n    return x * use(cfg.v) + 9\n", "f(x)"),
    "builtin": ("def f(x):\n    return x * use(V) + 11\n", "f(x)"),
    "nn_attr": ("class M(torch.nn.Module):\n    def forward(self, x):\n        return x * use(self.v) + 10\n",
                "obj(x)"),
}


class World:
    """One copy of a case's state: a module namespace holding the program and its sources."""

    def __init__(self, source_kind, value, optimize):
        self.kind = source_kind
        self.ns = {"torch": torch, "__name__": "fuzz_case"}
        if source_kind == "builtin":  # V is read from the builtins dict the functions name
            self.ns["__builtins__"] = dict(builtins.__dict__)
        exec(compile(HELPER + ALT_HELPER + READS[source_kind][0], "<fuzz case>", "exec"), self.ns)
        self.ns["__file__"] = "<fuzz case>"
        self.arg = None
        self.set(value)
        self.call_text = READS[source_kind][1]
        self.fn = self._entry(optimize)

    def _entry(self, optimize):
        ns, kind = self.ns, self.kind
        if kind == "cell":
            ns["f"], ns["set_v"] = ns["outer"](self._initial)
        if kind in ("class_self", "class_type"):
            ns["obj"] = ns["K"]()
            target = ns["obj"].f
        elif kind == "nn_attr":
            target = ns["obj"]
        else:
            target = ns["f"]
        return optimize(target) if optimize else target

    def set(self, value):
        """Rebind the source to `value`."""
        ns, kind = self.ns, self.kind
        if not hasattr(self, "_initial"):
            self._initial = value
        if kind == "arg":
            self.arg = value
        elif kind == "item":
            ns.setdefault("box", [None])[0] = value
        elif kind == "nested":
            ns.setdefault("tree", {"a": [None]})["a"][0] = value
        elif kind == "attr":
            ns.setdefault("holder", types.SimpleNamespace()).v = value
        elif kind == "global":
            ns["V"] = value
        elif kind == "cell":
            if "set_v" in ns:
                ns["set_v"](value)
        elif kind == "default":
            ns["f"].__defaults__ = (value,)
        elif kind in ("class_self", "class_type"):
            ns["K"].v = value
        elif kind == "module":
            ns.setdefault("cfg", types.ModuleType("cfg")).v = value
        elif kind == "builtin":
            ns["__builtins__"]["V"] = value
        elif kind == "nn_attr":
            if "obj" not in ns:
                ns["obj"] = ns["M"]()
            ns["obj"].v = value

    def grow(self):
        """Mutate a container source in place (a list grows) where there is one."""
        if self.kind == "item":
            self.ns["box"].append(1)
        elif self.kind == "nested":
            self.ns["tree"]["a"].insert(0, self.ns["tree"]["a"][0])
        elif self.kind == "builtin":  # a global shadows the builtin (None too), then goes
            if "V" in self.ns:
                del self.ns["V"]
            else:
                self.shadows = getattr(self, "shadows", 0) + 1
                self.ns["V"] = None if self.shadows % 2 else 3

    def replace_helper(self):
        self.ns["use"].__code__ = self.ns["alt"].__code__

    def call(self, x):
        env = dict(self.ns, x=x, v=self.arg, f=self.fn, obj=self.fn)
        if self.kind in ("class_self", "class_type"):
            return self.fn(x)
        return eval(self.call_text, env)


def outcome(world, x):
    try:
        out = world.call(x)
    except Exception as exc:  # the optimized call must raise the same
        return ("raises", type(exc).__name__)
    if isinstance(out, torch.Tensor):
        return ("tensor", out.dtype, tuple(out.shape), out.detach().double().nan_to_num(1e30).tolist())
    return ("value", type(out).__name__, out)


def make_case(seed):
    rng = random.Random(seed)
    value_kind = rng.choice(VALUE_KINDS)
    source_kind = rng.choice(SOURCE_KINDS)
    first = make_value(value_kind, rng)
    steps = []
    for _ in range(rng.randint(2, 5)):
        action = rng.choice(["same_kind", "same_kind", "other_kind", "same_value", "grow", "helper", "shape"])
        if action == "same_kind":
            steps.append(("set", make_value(value_kind, rng)))
        elif action == "other_kind":
            steps.append(("set", make_value(rng.choice(VALUE_KINDS), rng)))
        elif action == "same_value":
            steps.append(("same", None))
        else:
            steps.append((action, rng.randint(1, 4)))
    return value_kind, source_kind, first, steps


def _copy(value):
    return value.clone() if isinstance(value, torch.Tensor) else \
        list(value) if isinstance(value, list) else dict(value) if isinstance(value, dict) else value


def run_case(seed, optimize, verbose=False):
    """Returns a list of differences (empty: the case passed)."""
    value_kind, source_kind, first, steps = make_case(seed)
    plain = World(source_kind, _copy(first), None)
    fast = World(source_kind, _copy(first), optimize)
    x = torch.arange(3, dtype=torch.float32)
    diffs = []

    def compare(label):
        expected, got = outcome(plain, x), outcome(fast, x)
        if expected != got:
            diffs.append(f"seed {seed} ({value_kind} via {source_kind}) after {label}: "
                         f"plain {expected!r} != optimized {got!r}")

    compare("first call")
    compare("second call")
    for action, arg in steps:
        for world in (plain, fast):
            if action == "set":
                world.set(_copy(arg))
            elif action == "grow":
                world.grow()
            elif action == "helper":
                world.replace_helper()
        if action == "shape":
            x = torch.arange(arg + 1, dtype=torch.float32)
        compare(f"{action} {arg!r}")
    if verbose:
        print(f"seed {seed}: {value_kind} via {source_kind}, steps {steps}: {'ok' if not diffs else 'DIFF'}")
    return diffs


def run(cases, seed=0, verbose=False, backend="interpreter"):
    import terra_dyn

    def optimize(fn):
        return terra_dyn.optimize(fn, backend=backend)

    diffs = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # recompile-limit and fallback notes are expected
        for i in range(cases):
            diffs += run_case(seed * 1_000_003 + i, optimize, verbose)
            if i % 200 == 199:
                terra_dyn.reset()  # keep the process small over thousands of cases
    return diffs


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--cases", type=int, default=5000)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--only", type=int, default=None, help="run the one case with this case seed "
                   "(as printed in a difference)")
    p.add_argument("-v", "--verbose", action="store_true")
    args = p.parse_args(argv)
    import time

    t0 = time.time()
    if args.only is not None:
        import terra_dyn

        diffs = run_case(args.only, lambda fn: terra_dyn.optimize(fn, backend="interpreter"), True)
    else:
        diffs = run(args.cases, args.seed, args.verbose)
    for d in diffs:
        print(d)
    print(f"{args.cases} cases, seed {args.seed}: {len(diffs)} differences, {time.time() - t0:.0f} s")
    return 1 if diffs else 0


if __name__ == "__main__":
    sys.exit(main())
