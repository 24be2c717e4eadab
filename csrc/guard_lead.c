/* A guard's lead: its first checks, when each is the callback, an ambient call_id or a
 * tensor on the C++ fast path (the whole guard of a small function: `x + y` has callback,
 * grad mode, default dtype, autocast, x, y), checked in one C++ call instead of one
 * guard_check_one and one cross-library call each.
 *
 *   Guard([callback, call_id..., tensor..., <others>])
 *     lead = checks[0..n): callback here, the rest in api->lead_matches(ambient, tensors)
 *     guard_check: lead passes -> the loop starts at n; fails -> 0; cannot tell (an
 *                  unusual tensor) -> the loop checks them all one by one, as before.
 * Order does not matter inside the lead: its checks read nothing but the slots and the
 * thread's state, and raise nothing.
 */
#include "guard_types.h"

struct GuardLead {
    Py_ssize_t n;          /* checks covered: checks[0..n) */
    PyObject *callback;    /* borrowed from the Guard's spec, or NULL */
    int n_ambient, n_tensors;
    AmbientSpec *ambient;  /* into `storage` */
    TensorSlot *tensors;
    const TensorCheckAPI *api;
};

static int in_lead(const Check *c, PyObject **callback) {
    if (c->kind == K_CALLBACK && *callback == NULL) return (*callback = c->a) != NULL;
    return (c->kind == K_CALL_ID && c->ambient.kind) || (c->kind == K_TENSOR && c->fast != NULL);
}

GuardLead *guard_lead_new(const Check *checks, Py_ssize_t n, const TensorCheckAPI *api) {
    PyObject *callback = NULL;
    Py_ssize_t k = 0;
    int n_ambient = 0, n_tensors = 0;
    while (k < n && api != NULL && in_lead(&checks[k], &callback)) {
        n_ambient += checks[k].kind == K_CALL_ID;
        n_tensors += checks[k].kind == K_TENSOR;
        k++;
    }
    if (k < 2) return NULL;  /* nothing to gain */
    GuardLead *lead = PyMem_Calloc(1, sizeof(GuardLead) + n_ambient * sizeof(AmbientSpec) +
                                          n_tensors * sizeof(TensorSlot));
    if (lead == NULL) return NULL;  /* the loop checks them instead */
    lead->n = k;
    lead->callback = callback;
    lead->api = api;
    lead->tensors = (TensorSlot *)(lead + 1);
    lead->ambient = (AmbientSpec *)(lead->tensors + n_tensors);
    for (Py_ssize_t i = 0; i < k; i++) {
        if (checks[i].kind == K_CALL_ID) lead->ambient[lead->n_ambient++] = checks[i].ambient;
        if (checks[i].kind == K_TENSOR) {
            lead->tensors[lead->n_tensors++] = (TensorSlot){checks[i].index, checks[i].fast};
        }
    }
    return lead;
}

void guard_lead_free(GuardLead *lead) {
    PyMem_Free(lead);
}

/* 1: checks[0..n) pass (*covered = n); 0: one fails; -1 cannot tell (*covered = 0). */
int guard_lead_check(const GuardLead *lead, PyObject *const *args, Py_ssize_t nargs, Py_ssize_t *covered) {
    *covered = 0;
    if (lead->callback != NULL && eval_frame_current_callback() != lead->callback) return 0;
    int r = lead->api->lead_matches(lead->ambient, lead->n_ambient, lead->tensors, lead->n_tensors, args, nargs);
    if (r == 1) *covered = lead->n;
    return r;
}

/* The torch.nn hook registries (translate/modules.py guards each empty, as
   ("call_id", partial(bool, registry), False)): bool() of an exact dict or OrderedDict is
   its size, read in C instead of calling the partial (~190 instructions; 9 a module call).
   The partial is terra_dyn's own; the registry is held, so its size is always readable. */
PyObject *registry_of(PyObject *fn) {
    static PyObject *partial_type = NULL;
    if (partial_type == NULL) {
        PyObject *functools = PyImport_ImportModule("functools");
        partial_type = functools ? PyObject_GetAttrString(functools, "partial") : NULL;
        Py_XDECREF(functools);
        if (partial_type == NULL) {
            PyErr_Clear();
            return NULL;
        }
    }
    if ((PyObject *)Py_TYPE(fn) != partial_type) return NULL;
    PyObject *func = PyObject_GetAttrString(fn, "func"), *args = PyObject_GetAttrString(fn, "args");
    PyObject *keywords = PyObject_GetAttrString(fn, "keywords"), *registry = NULL;
    if (func == (PyObject *)&PyBool_Type && args && PyTuple_CheckExact(args) && PyTuple_GET_SIZE(args) == 1 &&
        keywords && PyDict_Check(keywords) && PyDict_GET_SIZE(keywords) == 0) {
        PyObject *d = PyTuple_GET_ITEM(args, 0);
        if (PyDict_CheckExact(d) || Py_IS_TYPE(d, &PyODict_Type)) registry = Py_NewRef(d);
    }
    Py_XDECREF(func);
    Py_XDECREF(args);
    Py_XDECREF(keywords);
    PyErr_Clear();
    return registry;
}
