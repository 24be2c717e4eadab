"""Math functions a generated kernel calls as `dm.<name>(x)`, in two implementations.

On a GPU they are CUDA's libdevice functions. Triton's CPU interpreter (TRITON_INTERPRET=1)
cannot run libdevice (extern calls), so under the interpreter this module defines the same
functions with tl.* primitives, computed in float64 so that the cancellation in e.g.
`exp(x) - 1` stays below float32 rounding. The choice is made once, at import, like
Triton's own choice between compiling and interpreting. Kernel modules import it as

    from terra_dyn.backends.triton.device_math import dm
    y = dm.tanh(x)          # libdevice.tanh on sm_90, (1 - e) / (1 + e) on the interpreter

On a GPU `dm` is Triton's libdevice module itself: Triton maps that module to the
backend's implementation while compiling, which it would not do for functions re-exported
from another module.
"""
import types

import triton
import triton.language as tl

from .environment import interpreting

NAMES = ("tanh", "log1p", "expm1", "pow", "trunc", "nearbyint", "log10", "tan")
KIND = "interpreter" if interpreting() else "libdevice"

if KIND == "libdevice":
    from triton.language.extra import libdevice as dm
else:
    @triton.jit
    def tanh(x):
        d = x.to(tl.float64)
        e = tl.exp(-2.0 * tl.abs(d))
        t = (1.0 - e) / (1.0 + e)
        return tl.where(d < 0, -t, t).to(x.dtype)

    @triton.jit
    def log1p(x):
        return tl.log(1.0 + x.to(tl.float64)).to(x.dtype)

    @triton.jit
    def expm1(x):
        d = x.to(tl.float64)
        # exp(d) - 1 cancels for tiny d; the series is exact enough there.
        small = d + 0.5 * d * d + d * d * d / 6.0
        return tl.where(tl.abs(d) < 1e-5, small, tl.exp(d) - 1.0).to(x.dtype)

    @triton.jit
    def trunc(x):
        return tl.where(x < 0, tl.ceil(x), tl.floor(x))

    @triton.jit
    def nearbyint(x):
        # round half to even, as torch.round
        f = tl.floor(x)
        diff = x - f
        half_even = tl.where((f - 2.0 * tl.floor(f * 0.5)) == 0, f, f + 1.0)
        return tl.where(diff > 0.5, f + 1.0, tl.where(diff < 0.5, f, half_even))

    @triton.jit
    def log10(x):
        return (tl.log(x.to(tl.float64)) * 0.4342944819032518).to(x.dtype)

    @triton.jit
    def tan(x):
        d = x.to(tl.float64)
        return (tl.sin(d) / tl.cos(d)).to(x.dtype)

    @triton.jit
    def pow(x, y):
        d = x.to(tl.float64)
        e = y.to(tl.float64)
        mag = tl.exp2(e * tl.log2(tl.abs(d)))
        is_int = tl.floor(e) == e
        odd = is_int & ((e - 2.0 * tl.floor(e * 0.5)) == 1.0)
        neg = d < 0
        r = tl.where(neg & odd, -mag, mag)
        r = tl.where(neg & (is_int == 0), float("nan"), r)
        r = tl.where(e == 0, 1.0, r)
        return r.to(x.dtype)


    dm = types.ModuleType("terra_dyn_interpreter_math")
    for _name in NAMES:
        setattr(dm, _name, locals()[_name])
