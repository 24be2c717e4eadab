"""A graph's example inputs as its backend sees them (the `example_inputs` of
`backend(gm, example_inputs)`), made only when a backend looks."""
from collections.abc import Sequence

from .values import ScalarValue, TensorValue


class ExampleInputs(Sequence):
    """A graph's example inputs for its backend, made on first use: fake tensors (and the
    numbers of ScalarValues). Making a fake tensor starts FakeTensorMode, which imports
    torch._dynamo's config and sympy; the interpreter backend never looks, and
    `tensor_facts()` answers the auto backend's questions without fakes. release() drops the
    translation's values (they hold the real inputs: a dropped model must be freed)."""

    def __init__(self, values):
        self._values = list(values)
        self._made = {}

    def __len__(self):
        return len(self._values)

    def __getitem__(self, i):
        if isinstance(i, slice):
            return [self[j] for j in range(len(self))[i]]
        i = range(len(self))[i]
        if i not in self._made:
            v = self._values[i]
            if isinstance(v, ScalarValue):
                self._made[i] = v.example
            elif isinstance(v, TensorValue):
                self._made[i] = v.fake
            else:  # released: (meta, device), in a fake mode of its own
                from torch._subclasses.fake_tensor import FakeTensorMode
                mode = FakeTensorMode()
                self._made[i] = mode.fake_tensor_converter.from_meta_and_device(mode, *v)
        return self._made[i]

    def tensor_facts(self):
        """(device, numel) of each tensor input."""
        return [(v.device, v.facts.numel()) if isinstance(v, TensorValue) else (v[1], v[0].numel())
                for v in self._values if isinstance(v, (TensorValue, tuple))]

    def release(self):
        for i, v in enumerate(self._values):
            if isinstance(v, TensorValue):
                # symbolic sizes: only its own fake mode knows them, so make that fake now
                self._values[i] = (self[i], v.device) if v.slow else (v.meta, v.device)
            elif isinstance(v, ScalarValue):
                self._values[i] = ScalarValue(None, v.example)
