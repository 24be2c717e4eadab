"""optimized_module: a module stays a module (same parameters, state_dict keys, hooks)."""
import pytest
import torch

from terra_dyn import _C
from terra_dyn.eval_frame import optimized_module

from .callbacks import RecordingCallback


class Net(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = torch.nn.Linear(4, 3)
        self.register_buffer("scale", torch.full((3,), 2.0))
        self.tag = "net"

    def forward(self, x):
        return torch.relu(self.fc(x)) * self.scale


@pytest.fixture(autouse=True)
def fresh_cache():
    _C.reset()
    yield
    _C.reset()


def test_module_stays_a_module_with_shared_state():
    torch.manual_seed(0)
    net = Net()
    cb = RecordingCallback()
    fast = optimized_module(net, cb)
    x = torch.randn(5, 4)
    assert torch.equal(fast(x), net(x)) and torch.equal(fast(x), net(x))
    assert isinstance(fast, Net) and isinstance(fast, torch.nn.Module)
    assert list(fast.state_dict()) == list(net.state_dict())
    assert fast.fc is net.fc and fast.scale is net.scale and fast.tag == "net"
    assert [p is q for p, q in zip(fast.parameters(), net.parameters())] == [True, True]
    assert repr(fast) == repr(net)
    assert cb.names == ["forward"]  # torch's own __call__ machinery was skipped


def test_training_updates_the_original_parameters():
    net = Net()
    fast = optimized_module(net, RecordingCallback())
    before = net.fc.weight.detach().clone()
    loss = fast(torch.randn(5, 4)).sum()
    loss.backward()
    torch.optim.SGD(fast.parameters(), lr=0.1).step()
    assert not torch.equal(net.fc.weight, before)


def test_hooks_still_fire():
    net = Net()
    fired = []
    net.register_forward_pre_hook(lambda m, args: fired.append("pre"))
    net.register_forward_hook(lambda m, args, out: fired.append("post"))
    fast = optimized_module(net, RecordingCallback())
    fast(torch.randn(2, 4))
    fast.fc.register_forward_hook(lambda m, args, out: fired.append("fc"))  # added after wrapping
    fast(torch.randn(2, 4))
    assert fired == ["pre", "post", "pre", "fc", "post"]


def test_submodule_attribute_assignment_is_shared():
    net = Net()
    fast = optimized_module(net, RecordingCallback())
    fast.fc = torch.nn.Linear(4, 3)
    assert net.fc is fast.fc  # _modules is the same dict


def test_optimized_module_shares_attributes_both_ways_with_the_original():
    import terra_dyn

    m = torch.nn.Linear(3, 3)
    fm = terra_dyn.optimize(m, backend="interpreter")
    x = torch.randn(2, 3)
    assert torch.equal(fm(x), m(x))
    m.extra = 5
    fm.other = 1
    assert fm.extra == 5 and m.other == 1
    m.weight = torch.nn.Parameter(torch.ones(3, 3))  # swapped on the original after optimize
    assert torch.equal(fm(x), m(x))
    m.eval()
    assert not fm.training
    assert list(fm.state_dict()) == list(m.state_dict())
