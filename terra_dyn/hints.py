"""The fix a user can make, where one is known, for a break reason or a recompile cause.

One table each, matched in order on the lowercased text; the first match wins:

    "Tensor.item() needs the value"  -> ".item() every call waits for the value and splits..."
    "x shape changed: (64, 32) -> (40, 32)" -> "the last batch is smaller: drop_last=True ..."

A hint is advice, never a promise: the report prints it under the site it is about.
"""

_BREAK_HINTS = [
    (("marked torch.compiler.disable", "marked terra_dyn.disable"),
     "runs as plain Python, as its decorator asks: remove the decorator to capture it"),
    (("item()", "float() of a tensor", "int() of a tensor", "tolist()", "needs its value", "needs the value",
      "needs a tensor value", "run-time number"),
     ".item()/float() in the loop waits for the value and splits the graph: keep "
     "the running sum as a tensor (total += loss.detach()) and read it every N steps"),
    (("bool() of a tensor", "branch on a tensor", "condition on a tensor", "tensor value in a condition",
      "data-dependent", "jump on a tensor"),
     "a Python `if` on a tensor's value: use torch.where(cond, a, b), or decide it "
     "outside the function"),
    (("numpy",),
     "numpy reads the tensor's data: use the torch op instead, or move the call out "
     "of the step (e.g. log every N steps)"),
    (("print of a tensor", "printing a tensor", "format of a tensor"),
     "printing a tensor needs its value: print shapes, or print every N steps"),
    (("dataloader", "iteration over", "for_iter over"),
     "data loading runs in Python, as it should: keep the loop outside the step "
     "function so the step itself is one graph"),
    (("constructing ",),
     "objects built here run as Python: fine if it runs once (setup code); in a "
     "step, build them once outside it"),
    (("generator",), "a generator runs as Python: return a list, or iterate outside"),
    (("backward",), "backward() runs autograd natively: fine, the forward is still a graph"),
]

_RECOMPILE_HINTS = [
    (("shape changed",),
     "a size changed (e.g. a smaller last batch): it stays symbolic from now on; "
     "DataLoader(drop_last=True) or padding avoids the extra translation"),
    (("' -> '",),
     "a string argument selects the code path: each value is its own translation; "
     "pass the choice once (e.g. functools.partial) or keep it constant"),
    (("grad mode",), "called both under torch.no_grad() and without: one translation each (expected)"),
    (("is another object",),
     "another object in the same place (e.g. a new module or optimizer each call): "
     "build it once and reuse it"),
    (("dtype changed", "device changed", "requires_grad changed"),
     "inputs of another dtype/device/requires_grad: one translation each (expected)"),
    ((" changed: ",),
     "a Python number that changes each call: make it a tensor (torch.tensor(x)) or a "
     "constant, so one translation serves every call"),
]


def _match(table, text):
    low = (text or "").lower()
    for needles, hint in table:
        if any(n in low for n in needles):
            return hint
    return ""


def is_expected(reason: str) -> bool:
    """A break that costs nothing to fix because nothing can be: backward() runs autograd,
    which is the work itself, not Python around it."""
    return "backward()" in reason.lower()


def for_break(reason: str) -> str:
    return _match(_BREAK_HINTS, reason)


def for_recompile(cause: str) -> str:
    return _match(_RECOMPILE_HINTS, cause)
