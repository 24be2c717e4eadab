"""hasattr() of an object built inside the translation (an ObjectValue) answers as Python
does: a property's getter decides (test_descr's test_properties: a getter reading a missing
`self.__x` makes hasattr False), and so do `__getattr__` / `__getattribute__`. Before, the
class's having the name made it True. Each case compares with the plain run."""
import pytest
import torch

import terra_dyn


class _Prop:
    def getx(self):
        return self.__x

    def setx(self, value):
        self.__x = value

    x = property(getx, setx)


class _Dynamic:
    def __getattr__(self, name):
        if name == "virtual":
            return 1
        raise AttributeError(name)


class _Plain:
    k = 3

    def method(self):
        return 1


def _property_unset(x):
    return x + 1, hasattr(_Prop(), "x")


def _property_set(x):
    p = _Prop()
    p.x = 2
    return x + 1, hasattr(p, "x")


def _getattr_hook(x):
    d = _Dynamic()
    return x + 1, hasattr(d, "virtual"), hasattr(d, "other")


def _plain(x):
    p = _Plain()
    p.own = 1
    return x + 1, hasattr(p, "own"), hasattr(p, "k"), hasattr(p, "method"), hasattr(p, "missing")


@pytest.mark.parametrize("fn", [_property_unset, _property_set, _getattr_hook, _plain], ids=lambda f: f.__name__)
def test_hasattr_of_an_object_built_in_the_frame(fn, fresh_terra_dyn):
    x = torch.ones(2)
    eager = fn(x)
    fast = terra_dyn.optimize(fn, backend="interpreter")
    for _ in range(2):
        ours = fast(x)
        torch.testing.assert_close(ours[0], eager[0])
        assert ours[1:] == eager[1:]
