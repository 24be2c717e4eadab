"""Facts of an op's result without running it on data: meta tensors and the device beside
them (GraphState.call). `propagate(kind, target, args, kwargs)` gives (result on meta tensors,
its device), or (SLOW, None) when FakeTensorMode must decide: device changes, data-dependent
results, ops without meta kernels, symbolic sizes, mixed devices and autocast."""
import torch

from . import autocast, meta_rules
from .values import ConstValue, ListValue, ScalarValue, SliceValue, TensorValue, TupleValue, seen_by_op

SLOW = object()  # "propagate this op under FakeTensorMode instead"

# ops whose result device is not the common device of their tensor arguments, or whose
# non-tensor result the meta device would get wrong
_DEVICE_OPS = frozenset({
    "to", "cuda", "cpu", "type", "type_as", "copy_", "get_device", "data_ptr", "pin_memory",
    "is_pinned", "share_memory_", "set_", "from_numpy",
    "frombuffer", "to_dense", "to_sparse", "untyped_storage", "storage", "numpy",
    "tolist", "item", "__bool__", "__int__", "__float__", "__index__", "__len__", "__iter__",
    "__array__", "equal", "allclose", "is_nonzero", "is_same_size", "_local_scalar_dense",
})
# calls whose int/bool results come from metadata, which meta tensors have right
_SHAPE_QUERIES = frozenset({
    "size", "dim", "ndimension", "numel", "nelement", "stride", "storage_offset", "element_size",
    "is_contiguous", "is_floating_point", "is_complex", "is_signed", "is_inference",
})


def propagate(kind, target, args, kwargs):
    """(result on meta tensors, its device), or (SLOW, None) when FakeTensorMode must decide."""
    name = target if kind == "call_method" else getattr(target, "__name__", "")
    if (name in _DEVICE_OPS and not _is_dtype_cast(kind, name, args, kwargs) and not _is_same_device_copy(name, args)) \
            or autocast.needs_fake_propagation():
        # autocast casts in the Autocast dispatch keys, which meta tensors lack
        return SLOW, None
    tensors = []
    if not _collect_tensors(args, tensors) or not _collect_tensors(kwargs.values(), tensors):
        return SLOW, None
    meta_kwargs = {k: seen_by_op(v, "meta") for k, v in kwargs.items()}
    if "device" in kwargs:
        requested = meta_kwargs["device"]
        if not isinstance(requested, (str, torch.device)):
            return SLOW, None
        device = torch.device(requested)
        if device.type == "meta":
            return SLOW, None
        meta_kwargs["device"] = "meta"
    elif tensors:
        device = _common_device(tensors)
        if device is None:
            return SLOW, None
    elif getattr(target, "__module__", None) in PURE_PYTHON_MODULES:
        device = None  # arithmetic on run-time numbers: no tensor in or out
    else:  # a factory: the default device; it runs on meta, asked for by keyword
        device = torch.get_default_device()
        meta_kwargs["device"] = "meta"
    meta_args = [seen_by_op(a, "meta") for a in args]
    try:
        # the common ops whose meta kernels are Python (they import sympy, torch._dynamo)
        result = meta_rules.infer(kind, target, meta_args, meta_kwargs, device)
        if result is None and kind == "call_method":
            result = getattr(meta_args[0], target)(*meta_args[1:], **meta_kwargs)
        elif result is None:
            result = target(*meta_args, **meta_kwargs)
    except Exception:  # no meta kernel, a data-dependent op, or a user error: FakeTensorMode
        return SLOW, None  # decides (and names the error)
    if device is None:
        return (SLOW, None) if _has_tensor(result) else (result, None)
    if not _meta_result_ok(result, name):
        return SLOW, None
    return result, device


def _is_dtype_cast(kind, name, args, kwargs):
    """`x.to(torch.float16)`: a cast on the same device, which meta tensors model (GPT-2's
    attention casts this way on every layer)."""
    return kind == "call_method" and name == "to" and len(args) == 2 and not kwargs \
        and isinstance(args[1], ConstValue) and isinstance(args[1].value, torch.dtype)


def _is_same_device_copy(name, args):
    """`row.copy_(w)` between tensors on one device: on meta tensors, so that a view written
    this way makes its base require grad as eager's does (under FakeTensorMode the view's
    fake copy was no view of the base's meta tensor: `buf.requires_grad` read False)."""
    if name != "copy_" or len(args) != 2 or not all(isinstance(a, TensorValue) and not a.slow for a in args):
        return False
    return args[0].device == args[1].device


PURE_PYTHON_MODULES = ("_operator", "operator", "math", "builtins")


def _has_tensor(result):
    if isinstance(result, (tuple, list)):
        return any(_has_tensor(r) for r in result)
    return isinstance(result, torch.Tensor)


def _collect_tensors(values, out):
    """Append the TensorValues in `values` (one level of lists/tuples); False if one needs
    FakeTensorMode."""
    for v in values:
        if isinstance(v, TensorValue):
            if v.slow:
                return False
            out.append(v)
        elif isinstance(v, ScalarValue) and v.symbolic or isinstance(v, SliceValue):
            return False  # sizes from symbolic numbers: only FakeTensorMode's ShapeEnv knows them
        elif isinstance(v, (TupleValue, ListValue)):
            if not _collect_tensors(v.items, out):
                return False
    return True


def _common_device(tensors):
    """The device eager would compute on: all tensors' device, CPU scalars aside; None when
    the devices differ (FakeTensorMode then raises eager's error or knows the exception)."""
    device = None
    cpu_scalar = False
    for t in tensors:
        d = t.device
        if d.type == "cpu" and t.meta.dim() == 0:
            cpu_scalar = True
            continue
        if device is None:
            device = d
        elif d != device:
            return None
    if device is None:
        return torch.device("cpu") if cpu_scalar else None
    return device


def _meta_result_ok(result, name):
    if isinstance(result, torch.Tensor):
        return result.device.type == "meta" and type(result) is torch.Tensor
    if isinstance(result, (tuple, list)) and not isinstance(result, torch.Size):
        return all(_meta_result_ok(r, name) for r in result)
    if result is None or isinstance(result, (torch.Size, torch.dtype)):
        return True
    if isinstance(result, (int, float, bool)):
        return name in _SHAPE_QUERIES
    return False
