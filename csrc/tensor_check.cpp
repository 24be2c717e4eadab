/* terra_dyn._tensor_check: the fast path of the Guard's "tensor" and "call_id" checks.
 *
 *   guards.c                                       this module
 *   api = PyCapsule_Import("terra_dyn._tensor_check._C_API")
 *   api->spec_from_check(T, dtype, device, sizes, strides, requires_grad, &spec)   once
 *   api->tensor_matches(x, &spec)   -> 1 / 0 / -1 (cannot tell: use the Python path)
 *
 * Example: for ("tensor", 0, torch.Tensor, torch.float32, device("cpu"), (4, 3), (3, 1),
 * False), tensor_matches(x) compares x's at::TensorImpl scalar type, device type, sizes,
 * strides and requires_grad with the spec: a few ns, where reading x.dtype / x.shape /
 * x.stride() / x.requires_grad / x.is_cpu through the Python API costs ~250 ns.
 *
 * Exactness: the Python path reads attributes, so a tensor type whose attributes or
 * __torch_function__ / __torch_dispatch__ differ from torch.Tensor's could answer
 * differently: such checks stay on the Python path (spec_from_check refuses them), and so
 * does any tensor whose metadata is not plain (Python dispatch, symbolic sizes, nested,
 * non-strided layout): tensor_matches answers -1. One difference is deliberate: an active
 * TorchFunctionMode sees the Python path's attribute reads; this path reads the metadata.
 *
 * Built against torch's headers and libtorch_python; it refuses to load under another
 * torch version than the one it was compiled for (the layouts read here could differ).
 * Optional: without it, guards.c uses the Python-API path.
 */
#include "tensor_check.h"
#include "cxx_types.h"

#include <c10/core/DefaultDtype.h>
#include <c10/core/GradMode.h>
#include <torch/csrc/Device.h>
#include <torch/csrc/Dtype.h>
#include <c10/core/impl/LocalDispatchKeySet.h>
#include <torch/csrc/autograd/python_variable.h>
#include <torch/headeronly/version.h>

#include <cstdio>
#include <cstring>
#include <typeinfo>

namespace {

/* torch.Tensor's own attributes: a subclass that resolves any of them differently (a
   property `shape`, its own __torch_function__) keeps the Python path. */
const char *const kAttributes[] = {"dtype",  "shape",  "requires_grad",      "stride",
                                   "is_cpu", "device", "__torch_function__", "__torch_dispatch__"};
constexpr int kNumAttributes = sizeof(kAttributes) / sizeof(kAttributes[0]);
PyObject *attribute_names[kNumAttributes];
PyObject *tensor_attributes[kNumAttributes];  /* _PyType_Lookup(torch.Tensor, name), owned */
PyObject *disabled_torch_function = nullptr;  /* Parameter's __torch_function__ */
PyObject *is_grad_enabled_fn = nullptr;
PyObject *get_default_dtype_fn = nullptr;
PyObject *is_any_autocast_enabled_fn = nullptr;

bool same_attributes_as_tensor(PyTypeObject *type) {
    for (int i = 0; i < kNumAttributes; i++) {
        PyObject *found = _PyType_Lookup(type, attribute_names[i]);  /* borrowed, no binding */
        bool torch_function = std::strcmp(kAttributes[i], "__torch_function__") == 0;
        if (found != tensor_attributes[i] && !(torch_function && found == disabled_torch_function)) return false;
    }
    return true;
}

/* A tuple of Python ints into out[0..n); false if it is not one, or too long. */
bool int_tuple(PyObject *tuple, int64_t *out, int32_t *n) {
    if (!PyTuple_Check(tuple) || PyTuple_GET_SIZE(tuple) > TENSOR_SPEC_MAX_DIM) return false;
    *n = (int32_t)PyTuple_GET_SIZE(tuple);
    for (int32_t i = 0; i < *n; i++) {
        PyObject *item = PyTuple_GET_ITEM(tuple, i);
        if (!PyLong_Check(item)) return false;
        int overflow = 0;
        out[i] = PyLong_AsLongLongAndOverflow(item, &overflow);
        if (overflow || (out[i] == -1 && PyErr_Occurred())) {
            PyErr_Clear();
            return false;
        }
    }
    return true;
}

int spec_from_check(PyObject *type, PyObject *dtype, PyObject *device, PyObject *sizes, PyObject *strides,
                    PyObject *requires_grad, TensorSpec *spec) {
    if (!PyType_Check(type) || !THPVariableClass ||
        !PyType_IsSubtype((PyTypeObject *)type, (PyTypeObject *)THPVariableClass) ||
        !same_attributes_as_tensor((PyTypeObject *)type)) {
        return -1;
    }
    if (!THPDtype_Check(dtype) || !THPDevice_Check(device) || (requires_grad != Py_True && requires_grad != Py_False)) {
        return -1;
    }
    int32_t nstrides = -1;
    if (!int_tuple(sizes, spec->sizes, &spec->ndim) || !int_tuple(strides, spec->strides, &nstrides) ||
        nstrides != spec->ndim) {
        return -1;
    }
    spec->type = (PyTypeObject *)type;
    spec->scalar_type = (int8_t)((THPDtype *)dtype)->scalar_type;
    const c10::Device &d = ((THPDevice *)device)->device;
    spec->device_type = (int8_t)d.type();
    /* guards.c reads `is_cpu` for device("cpu") (any index), and compares `x.device` with
       every other device, index included. */
    spec->device_index = (d.type() == c10::DeviceType::CPU && !d.has_index()) ? -1 : (int16_t)d.index();
    spec->requires_grad = requires_grad == Py_True;
    return 0;
}

/* obj's TensorImpl, or nullptr where this path cannot read it as the Python path does (see
   the top of this file). */
const c10::TensorImpl *plain_impl(PyObject *obj) {
    if (!THPVariable_Check(obj)) return nullptr;
    const c10::TensorImpl *impl = THPVariable_Unpack(obj).unsafeGetTensorImpl();
    if (impl == nullptr || impl->is_python_dispatch() || impl->has_symbolic_sizes_strides() || impl->is_nested() ||
        impl->layout() != c10::kStrided) {
        return nullptr;
    }
    return impl;
}

/* The spec's dtype, requires_grad and device. */
bool same_kind(const c10::TensorImpl *impl, const TensorSpec *spec) {
    c10::Device device = impl->device();
    return (int8_t)impl->dtype().toScalarType() == spec->scalar_type &&
           impl->requires_grad() == (bool)spec->requires_grad && (int8_t)device.type() == spec->device_type &&
           (spec->device_index == -1 || device.index() == spec->device_index);
}

/* obj is of the spec's type and kind, and layout(impl): 1 / 0; -1 cannot tell here. */
template <typename Layout>
int matches(PyObject *obj, const TensorSpec *spec, Layout layout) noexcept {
    if (Py_TYPE(obj) != spec->type) return 0;
    try {
        const c10::TensorImpl *impl = plain_impl(obj);
        if (impl == nullptr) return -1;
        return same_kind(impl, spec) && (int64_t)impl->dim() == spec->ndim && layout(impl->sizes(), impl->strides(), impl);
    } catch (...) {
        PyErr_Clear();  /* a python_error leaves its exception set */
        return -1;
    }
}

int tensor_matches(PyObject *obj, const TensorSpec *spec) noexcept {
    return matches(obj, spec, [spec](c10::IntArrayRef sizes, c10::IntArrayRef strides, const c10::TensorImpl *) {
        for (int32_t i = 0; i < spec->ndim; i++) {
            if (sizes[i] != spec->sizes[i] || strides[i] != spec->strides[i]) return false;
        }
        return true;
    });
}

/* ---- tensors_match: a parameter's check by its raw fields ----
 *
 * tensor_matches is a function of: obj's type, the TensorImpl it holds, that impl's class
 * (its vtable: custom size, device and layout policies are virtual), the bytes from
 * data_type_ to key_set_ (dtype, device, the policy bitfields, the dispatch keys: python
 * dispatch, nested, layout), sizes_and_strides_, and requires_grad: the autograd meta's
 * class, requires_grad_ and grad_fn_ (AutogradMeta::requires_grad; a view's meta, which
 * also reads its base, is never recorded). When all of them are what they were when the
 * check last matched, it matches again. They are compared as they lie, with the impl and
 * the meta prefetched from the pointers recorded then: no chain of dependent reads, no
 * call but autograd_meta(). A field that differs (even a padding byte) sends the entry
 * to tensor_matches. What they are compared with (the spec's type, sizes and strides) is
 * copied into the record: the spec, a small allocation of its own per parameter, is not
 * read, and the records lie one after the other. */
struct ImplFields : c10::TensorImpl {  /* names protected members; never made */
    static auto data_type() { return &ImplFields::data_type_; }
    static auto key_set() { return &ImplFields::key_set_; }
    static auto sizes_and_strides() { return &ImplFields::sizes_and_strides_; }
};

ptrdiff_t region_offset = -1;  /* data_type_ .. key_set_ within a TensorImpl; -1: not known yet */
size_t region_size = 0;

const void *vtable_of(const void *object) { return *reinterpret_cast<const void *const *>(object); }

const char *region_of(const c10::TensorImpl *impl) {
    if (region_offset < 0) {
        const char *base = reinterpret_cast<const char *>(impl);
        const char *begin = reinterpret_cast<const char *>(&(impl->*ImplFields::data_type()));
        const char *end = reinterpret_cast<const char *>(&(impl->*ImplFields::key_set())) + sizeof(c10::DispatchKeySet);
        region_size = end > begin ? (size_t)(end - begin) : 0;
        region_offset = begin - base;
    }
    return reinterpret_cast<const char *>(impl) + region_offset;
}

/* 1: obj's fields are those in raw (so it matches spec); 0: something differs. */
bool same_fields(PyObject *obj, const TensorSpec *spec, const TensorRaw *raw) {
    if (!raw->valid || Py_TYPE(obj) != raw->type) return false;
    const c10::TensorImpl *impl = THPVariable_Unpack(obj).unsafeGetTensorImpl();
    if (impl != raw->impl || vtable_of(impl) != raw->impl_vtable ||
        std::memcmp(region_of(impl), raw->region, region_size) != 0) {
        return false;
    }
    const c10::impl::SizesAndStrides &ss = impl->*ImplFields::sizes_and_strides();
    const int64_t *sizes = ss.sizes_data(), *strides = ss.strides_data();
    int32_t ndim = raw->ndim >= 0 ? raw->ndim : spec->ndim;  /* the spec's, copied when it fits */
    const int64_t *want_sizes = raw->ndim >= 0 ? raw->dims : spec->sizes;
    const int64_t *want_strides = raw->ndim >= 0 ? raw->dims + raw->ndim : spec->strides;
    if ((int64_t)ss.size() != ndim) return false;
    for (int32_t i = 0; i < ndim; i++) {
        if (sizes[i] != want_sizes[i] || strides[i] != want_strides[i]) return false;
    }
    const auto *meta = static_cast<const torch::autograd::AutogradMeta *>(impl->autograd_meta());
    if (meta != raw->meta) return false;
    return meta == nullptr || (vtable_of(meta) == raw->meta_vtable && meta->requires_grad_ == (bool)raw->requires_grad &&
                               meta->grad_fn_.get() == raw->grad_fn);
}

/* After tensor_matches said 1: the fields it read, when they are all plain ones, and the
   spec's type, sizes and strides (equal to obj's then). */
void record(PyObject *obj, const TensorSpec *spec, TensorRaw *raw) noexcept {
    raw->valid = 0;
    const c10::TensorImpl *impl = THPVariable_Unpack(obj).unsafeGetTensorImpl();
    const char *region = region_of(impl);
    if (region_size > sizeof(raw->region) || typeid(*impl) != typeid(c10::TensorImpl)) return;
    const c10::AutogradMetaInterface *meta = impl->autograd_meta();
    if (meta != nullptr && typeid(*meta) != typeid(torch::autograd::AutogradMeta)) return;
    const auto *plain = static_cast<const torch::autograd::AutogradMeta *>(meta);
    raw->impl = impl;
    raw->impl_vtable = vtable_of(impl);
    std::memcpy(raw->region, region, region_size);
    raw->meta = meta;
    raw->meta_vtable = meta ? vtable_of(meta) : nullptr;
    raw->requires_grad = plain ? plain->requires_grad_ : 0;
    raw->grad_fn = plain ? plain->grad_fn_.get() : nullptr;
    raw->type = spec->type;
    raw->ndim = spec->ndim <= TENSOR_RAW_DIMS ? (int8_t)spec->ndim : -1;
    for (int32_t i = 0; i < raw->ndim; i++) {
        raw->dims[i] = spec->sizes[i];
        raw->dims[raw->ndim + i] = spec->strides[i];
    }
    raw->valid = 1;
}

constexpr Py_ssize_t kAhead = 6;

int tensors_match(TensorEntry *entries, Py_ssize_t n) noexcept {
    for (Py_ssize_t i = 0; i < n; i++) {
        if (i + kAhead < n) {
            const TensorEntry &next = entries[i + kAhead];
            __builtin_prefetch(next.obj);
            if (next.raw.valid) {
                const char *impl = static_cast<const char *>(next.raw.impl);
                __builtin_prefetch(impl);
                __builtin_prefetch(impl + region_offset);
                __builtin_prefetch(impl + region_offset - 64);  /* sizes_and_strides_, before it */
                __builtin_prefetch(next.raw.meta);
            }
        }
        TensorEntry &e = entries[i];
        if (same_fields(e.obj, e.spec, &e.raw)) continue;
        int r = tensor_matches(e.obj, e.spec);
        if (r != 1) return r;
        record(e.obj, e.spec, &e.raw);
    }
    return 1;
}

int ambient_from_check(PyObject *fn, PyObject *obj, AmbientSpec *spec) {
    if (fn == is_grad_enabled_fn && (obj == Py_True || obj == Py_False)) {
        *spec = AmbientSpec{AMBIENT_GRAD_ENABLED, obj == Py_True};
        return 0;
    }
    if (fn == is_any_autocast_enabled_fn && (obj == Py_True || obj == Py_False)) {
        *spec = AmbientSpec{AMBIENT_ANY_AUTOCAST, obj == Py_True};
        return 0;
    }
    if (fn == get_default_dtype_fn && THPDtype_Check(obj)) {
        *spec = AmbientSpec{AMBIENT_DEFAULT_DTYPE, (int)((THPDtype *)obj)->scalar_type};
        return 0;
    }
    return -1;
}

/* torch._C._is_any_autocast_enabled(), one TLS read: autocast is on for a device while its
   Autocast key is not excluded. The same devices as torch's own check (not MPS, MAIA). */
bool any_autocast_enabled() {
    static const c10::DispatchKeySet keys({c10::DispatchKey::AutocastCPU, c10::DispatchKey::AutocastCUDA,
                                           c10::DispatchKey::AutocastXPU, c10::DispatchKey::AutocastIPU,
                                           c10::DispatchKey::AutocastXLA, c10::DispatchKey::AutocastHPU,
                                           c10::DispatchKey::AutocastMTIA, c10::DispatchKey::AutocastPrivateUse1});
    return !c10::impl::tls_local_dispatch_key_set().excluded_.isSupersetOf(keys);
}

/* What torch._C.is_grad_enabled() / get_default_dtype() / _is_any_autocast_enabled() read, without the call. */
int ambient_matches(const AmbientSpec *spec) {
    switch (spec->kind) {
    case AMBIENT_ANY_AUTOCAST: return any_autocast_enabled() == (bool)spec->value;
    case AMBIENT_GRAD_ENABLED: return c10::GradMode::is_enabled() == (bool)spec->value;
    case AMBIENT_DEFAULT_DTYPE: return (int)c10::get_default_dtype_as_scalartype() == spec->value;
    }
    return 0;
}

/* ---- LayoutCheck: check_tensor_layout (translate/guard_checks.py) for one input ----------
 *
 *   LayoutCheck(fallback, T, dtype, device, sizes, strides, offset, requires_grad)(x) -> bool
 *
 * The guard of an input translated with symbolic sizes: each of `sizes`, `strides` is an int
 * or None (FREE: a symbol, any value >= 2), a size also Ellipsis (AT_LEAST_ONE: a symbol that
 * may be 1, any value >= 1); `strides` None: contiguous; `offset` an int,
 * None (FREE) or Ellipsis (not checked).
 * yolov3 checks ~90 of them a step: ~5 us each in Python, ~50 ns here. What this path cannot
 * decide like the Python one (see tensor_matches) calls `fallback(x, T, dtype, ...)`. */
constexpr int64_t kFree = -1, kUnchecked = -2, kAtLeastOne = -3;

struct LayoutCheck {
    PyObject_HEAD
    vectorcallfunc vectorcall;
    PyObject *fallback;  /* check_tensor_layout */
    PyObject *args;      /* its arguments after x */
    TensorSpec spec;     /* sizes / strides: kFree where FREE */
    bool fast;           /* spec filled (else every call takes the fallback) */
    bool contiguous;
    int64_t offset;      /* kFree, kUnchecked or the offset */
};

bool layout_items(PyObject *items, int64_t *out, int32_t *n) {
    if (!PyTuple_Check(items) || PyTuple_GET_SIZE(items) > TENSOR_SPEC_MAX_DIM) return false;
    *n = (int32_t)PyTuple_GET_SIZE(items);
    for (int32_t i = 0; i < *n; i++) {
        PyObject *item = PyTuple_GET_ITEM(items, i);
        if (item == Py_None || item == Py_Ellipsis) {
            out[i] = item == Py_None ? kFree : kAtLeastOne;
            continue;
        }
        if (!PyLong_Check(item)) return false;
        out[i] = PyLong_AsLongLong(item);
        if (out[i] < 0) {
            PyErr_Clear();
            return false;
        }
    }
    return true;
}

/* 1 matches, 0 differs, -1 cannot tell here */
int layout_matches(const LayoutCheck *c, PyObject *obj) noexcept {
    const TensorSpec *spec = &c->spec;
    return matches(obj, spec, [c, spec](c10::IntArrayRef sizes, c10::IntArrayRef strides, const c10::TensorImpl *impl) {
        for (int32_t i = 0; i < spec->ndim; i++) {
            int64_t want = spec->sizes[i];
            if (want == kFree ? sizes[i] < 2 : want == kAtLeastOne ? sizes[i] < 1 : sizes[i] != want) return false;
        }
        if (c->contiguous) {
            if (!impl->is_contiguous()) return false;
        } else {
            for (int32_t i = 0; i < spec->ndim; i++) {
                int64_t want = spec->strides[i];
                if (want == kAtLeastOne) return false;  /* sizes only */
                if (want == kFree ? strides[i] < 2 : strides[i] != want) return false;
            }
        }
        int64_t offset = impl->storage_offset();
        return c->offset == kUnchecked || (c->offset == kFree ? offset >= 2 : offset == c->offset);
    });
}

PyObject *layout_vectorcall(PyObject *self, PyObject *const *args, size_t nargsf, PyObject *kwnames) {
    LayoutCheck *c = (LayoutCheck *)self;
    Py_ssize_t nargs = PyVectorcall_NARGS(nargsf);
    if (nargs != 1 || kwnames != nullptr) {
        PyErr_SetString(PyExc_TypeError, "LayoutCheck(x) takes one tensor");
        return nullptr;
    }
    int r = c->fast ? layout_matches(c, args[0]) : -1;
    if (r >= 0) return PyBool_FromLong(r);
    PyObject *stack[9];
    Py_ssize_t n = PyTuple_GET_SIZE(c->args);
    stack[0] = args[0];
    for (Py_ssize_t i = 0; i < n; i++) stack[i + 1] = PyTuple_GET_ITEM(c->args, i);
    return PyObject_Vectorcall(c->fallback, stack, n + 1, nullptr);
}

PyObject *layout_new(PyTypeObject *type, PyObject *args, PyObject *kwargs) {
    PyObject *fallback, *cls, *dtype, *device, *sizes, *strides, *offset, *requires_grad;
    if (kwargs != nullptr || !PyArg_ParseTuple(args, "OOOOOOOO:LayoutCheck", &fallback, &cls, &dtype, &device, &sizes,
                                               &strides, &offset, &requires_grad)) {
        if (!PyErr_Occurred()) PyErr_SetString(PyExc_TypeError, "LayoutCheck takes positional arguments");
        return nullptr;
    }
    LayoutCheck *c = (LayoutCheck *)type->tp_alloc(type, 0);
    if (c == nullptr) return nullptr;
    c->vectorcall = layout_vectorcall;
    c->fallback = Py_NewRef(fallback);
    c->args = PyTuple_GetSlice(args, 1, 8);
    if (c->args == nullptr) {
        Py_DECREF(c);
        return nullptr;
    }
    /* the type, dtype, device and requires_grad as a tensor check reads them (no dims), then
       the sizes and strides with their FREE items */
    TensorSpec *spec = &c->spec;
    int32_t n = -1, nstrides = -1;
    PyObject *no_dims = PyTuple_New(0);
    c->contiguous = strides == Py_None;
    c->fast = no_dims != nullptr && PyType_Check(cls) &&
              spec_from_check(cls, dtype, device, no_dims, no_dims, requires_grad, spec) == 0 &&
              layout_items(sizes, spec->sizes, &n) &&
              (c->contiguous || (layout_items(strides, spec->strides, &nstrides) && nstrides == n));
    Py_XDECREF(no_dims);
    spec->ndim = n;
    c->offset = offset == Py_Ellipsis ? kUnchecked : offset == Py_None ? kFree
              : PyLong_Check(offset) ? PyLong_AsLongLong(offset) : kUnchecked - 1;
    c->fast = c->fast && c->offset >= kUnchecked;
    PyErr_Clear();
    return (PyObject *)c;
}

int layout_traverse(PyObject *self, visitproc visit, void *arg) {
    Py_VISIT(((LayoutCheck *)self)->fallback);
    Py_VISIT(((LayoutCheck *)self)->args);
    return 0;
}

int layout_clear(PyObject *self) {
    Py_CLEAR(((LayoutCheck *)self)->fallback);
    Py_CLEAR(((LayoutCheck *)self)->args);
    return 0;
}

void layout_dealloc(PyObject *self) {
    PyObject_GC_UnTrack(self);
    layout_clear(self);
    Py_TYPE(self)->tp_free(self);
}

PyTypeObject LayoutCheck_Type = {PyVarObject_HEAD_INIT(nullptr, 0)};

int lead_matches(const AmbientSpec *ambient, int n_ambient, const TensorSlot *tensors, int n_tensors,
                 PyObject *const *args, Py_ssize_t nargs) noexcept {
    for (int i = 0; i < n_ambient; i++) {
        if (!ambient_matches(&ambient[i])) return 0;
    }
    int result = 1;
    for (int i = 0; i < n_tensors; i++) {
        if (tensors[i].index >= nargs) return 0;
        int r = tensor_matches(args[tensors[i].index], tensors[i].spec);
        if (r == 0) return 0;
        if (r < 0) result = -1;
    }
    return result;
}

TensorCheckAPI api = {TENSOR_CHECK_API_VERSION, spec_from_check, tensor_matches, ambient_from_check,
                      ambient_matches, tensors_match, lead_matches};

/* The torch this module was compiled against must be the one imported. */
int check_torch_version(PyObject *torch) {
    PyObject *version = PyObject_GetAttrString(torch, "__version__");
    const char *text = version ? PyUnicode_AsUTF8(version) : nullptr;
    if (text == nullptr) {
        Py_XDECREF(version);
        return -1;
    }
    char expected[64];
    std::snprintf(expected, sizeof(expected), "%d.%d.%d", TORCH_VERSION_MAJOR, TORCH_VERSION_MINOR,
                  TORCH_VERSION_PATCH);
    size_t n = std::strlen(expected);
    bool same = std::strncmp(text, expected, n) == 0 && (text[n] == '\0' || text[n] == '+');
    if (!same) {
        PyErr_Format(PyExc_ImportError,
                     "terra_dyn._tensor_check was built for torch %s, not %s: rebuild terra_dyn", expected, text);
    }
    Py_DECREF(version);
    return same ? 0 : -1;
}

int init_references(PyObject *torch) {
    if (check_torch_version(torch) < 0) return -1;
    if (THPVariableClass == nullptr) {
        PyErr_SetString(PyExc_ImportError, "terra_dyn._tensor_check: torch.Tensor is not initialised");
        return -1;
    }
    PyObject *torch_C = PyObject_GetAttrString(torch, "_C");
    if (torch_C == nullptr) return -1;
    is_grad_enabled_fn = PyObject_GetAttrString(torch_C, "is_grad_enabled");
    get_default_dtype_fn = PyObject_GetAttrString(torch_C, "get_default_dtype");
    is_any_autocast_enabled_fn = PyObject_GetAttrString(torch_C, "_is_any_autocast_enabled");
    disabled_torch_function = PyObject_GetAttrString(torch_C, "_disabled_torch_function_impl");
    Py_DECREF(torch_C);
    if (!is_grad_enabled_fn || !get_default_dtype_fn || !is_any_autocast_enabled_fn || !disabled_torch_function)
        return -1;
    for (int i = 0; i < kNumAttributes; i++) {
        attribute_names[i] = PyUnicode_InternFromString(kAttributes[i]);
        if (attribute_names[i] == nullptr) return -1;
        tensor_attributes[i] = _PyType_Lookup((PyTypeObject *)THPVariableClass, attribute_names[i]);
        if (tensor_attributes[i] == nullptr) {
            PyErr_Format(PyExc_ImportError, "terra_dyn._tensor_check: torch.Tensor has no %s", kAttributes[i]);
            return -1;
        }
        Py_INCREF(tensor_attributes[i]);
    }
    return 0;
}

PyModuleDef module_def = {
    PyModuleDef_HEAD_INIT, "terra_dyn._tensor_check",
    "Fast path of terra_dyn's tensor guard checks (C API in the _C_API capsule; see csrc/tensor_check.h).",
    -1, nullptr,
};

}  // namespace

int kernel_call_register(PyObject *module);  /* kernel_call.cpp */
int graph_entry_register(PyObject *module);  /* graph_entry.cpp */

PyMODINIT_FUNC PyInit__tensor_check(void) {
    PyObject *torch = PyImport_ImportModule("torch");
    if (torch == nullptr) return nullptr;
    int rc = init_references(torch);
    Py_DECREF(torch);
    if (rc < 0) return nullptr;
    PyObject *m = PyModule_Create(&module_def);
    if (m == nullptr) return nullptr;
    if (add_vectorcall_type(m, &LayoutCheck_Type,
                            {"terra_dyn._tensor_check.LayoutCheck",
                             "LayoutCheck(fallback, T, dtype, device, sizes, strides, offset, requires_grad)(x) -> bool",
                             sizeof(LayoutCheck), offsetof(LayoutCheck, vectorcall), layout_new, layout_traverse,
                             layout_clear, layout_dealloc}) < 0 ||
        kernel_call_register(m) < 0 || graph_entry_register(m) < 0) {
        Py_DECREF(m);
        return nullptr;
    }
    PyObject *capsule = PyCapsule_New(&api, TENSOR_CHECK_CAPSULE, nullptr);
    if (capsule == nullptr || PyModule_AddObject(m, "_C_API", capsule) < 0) {
        Py_XDECREF(capsule);
        Py_DECREF(m);
        return nullptr;
    }
    return m;
}
