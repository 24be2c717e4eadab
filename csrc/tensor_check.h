/* The interface between terra_dyn._C (C) and the optional terra_dyn._tensor_check (C++).
 *
 *   guards.c, at Guard construction:               at every Guard.check:
 *     api = PyCapsule_Import(TENSOR_CHECK_CAPSULE)
 *     api->spec_from_check(T, dtype, ..., &spec)     api->tensor_matches(args[i], &spec)
 *     api->ambient_from_check(fn, obj, &amb)         api->ambient_matches(&amb)
 *
 * The C++ side reads at::Tensor metadata (scalar type, device, sizes, strides,
 * requires_grad) straight from the THPVariable, without building Python objects; a
 * "tensor" check then costs a few ns instead of ~250 ns through the Python API.
 * Anything the fast path cannot decide exactly like the Python path (a tensor subclass
 * with its own __torch_function__, a sparse or nested tensor, symbolic sizes) is
 * reported as "cannot tell" (-1) or "unsupported", and guards.c uses the Python path.
 *
 * Plain C: this header is included by both the C core and the C++ module.
 */
#ifndef TERRA_DYN_TENSOR_CHECK_H
#define TERRA_DYN_TENSOR_CHECK_H

#include <Python.h>
#include <stdint.h>

#define TENSOR_CHECK_CAPSULE "terra_dyn._tensor_check._C_API"
#define TENSOR_CHECK_API_VERSION 5
#define TENSOR_SPEC_MAX_DIM 12  /* more dimensions: the Python path */

typedef struct {
    PyTypeObject *type;    /* borrowed from the check tuple (the Guard owns it) */
    int32_t ndim;
    int8_t scalar_type;    /* c10::ScalarType */
    int8_t device_type;    /* c10::DeviceType */
    int16_t device_index;  /* -1: any index (the check's device is "cpu", read as is_cpu) */
    int8_t requires_grad;
    int64_t sizes[TENSOR_SPEC_MAX_DIM];
    int64_t strides[TENSOR_SPEC_MAX_DIM];
} TensorSpec;

/* A call_id check the C++ side answers without calling Python: grad mode, default dtype,
   torch._C._is_any_autocast_enabled(). */
typedef struct {
    int kind;   /* AMBIENT_* */
    int value;  /* grad mode: 0/1; default dtype: c10::ScalarType */
} AmbientSpec;

enum { AMBIENT_GRAD_ENABLED = 1, AMBIENT_DEFAULT_DTYPE = 2, AMBIENT_ANY_AUTOCAST = 3 };

/* A tensor check of a guard's lead (csrc/guard_lead.c): args[index] against spec. */
typedef struct {
    Py_ssize_t index;
    const TensorSpec *spec;
} TensorSlot;

/* What a tensor check read when it last matched, as raw fields of the TensorImpl and its
   autograd metadata (tensor_check.cpp, tensors_match), and what it compared them with: the
   spec's type and, up to TENSOR_RAW_DIMS dimensions, its sizes and strides (a check that
   passes then reads no spec: ~2 memory lines a parameter). Opaque here; zeroed: none yet. */
#define TENSOR_RAW_DIMS 4
typedef struct {
    const void *impl, *impl_vtable, *meta, *meta_vtable, *grad_fn;
    PyTypeObject *type;  /* the spec's */
    uint64_t region[4];  /* the bytes from data_type_ to key_set_: dtype, device, policies, keys */
    int64_t dims[2 * TENSOR_RAW_DIMS];  /* sizes, then strides */
    int8_t ndim;         /* -1: more dimensions, compared with the spec */
    uint8_t requires_grad, valid;
} TensorRaw;

/* One check of many (a snapshot batch's parameters): obj must match spec. */
typedef struct {
    PyObject *obj;  /* borrowed: alive while what the caller checked before holds it */
    const TensorSpec *spec;
    TensorRaw raw;
} TensorEntry;

typedef struct {
    int version;  /* TENSOR_CHECK_API_VERSION */
    /* The items of ("tensor", i, T, dtype, device, sizes, strides, requires_grad).
       0: `spec` filled; -1: this check takes the Python path. Never sets an exception. */
    int (*spec_from_check)(PyObject *type, PyObject *dtype, PyObject *device, PyObject *sizes,
                           PyObject *strides, PyObject *requires_grad, TensorSpec *spec);
    /* 1 matches, 0 differs, -1 cannot tell here (use the Python path). Never raises. */
    int (*tensor_matches)(PyObject *obj, const TensorSpec *spec);
    /* ("call_id", fn, obj): 0 `spec` filled, -1 not a known builtin (call fn). */
    int (*ambient_from_check)(PyObject *fn, PyObject *obj, AmbientSpec *spec);
    /* 1 fn() would return obj, 0 it would not. */
    int (*ambient_matches)(const AmbientSpec *spec);
    /* tensor_matches over many entries: 1 all match, 0 one differs, -1 one cannot be told
       here. An entry whose fields are those recorded when it last matched matches again
       (tensor_matches reads nothing else); any other is checked by tensor_matches and
       recorded when it matches. Never raises. */
    int (*tensors_match)(TensorEntry *entries, Py_ssize_t n);
    /* Every ambient spec and every tensor slot at once (one call for a guard made only of
       such checks): 1 all match, 0 one differs, -1 cannot tell (check them one by one). */
    int (*lead_matches)(const AmbientSpec *ambient, int n_ambient, const TensorSlot *tensors, int n_tensors,
                        PyObject *const *args, Py_ssize_t nargs);
} TensorCheckAPI;

#endif
