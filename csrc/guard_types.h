/* The Guard object's layout, shared by guards.c (construction, the hot check) and
 * guard_explain.c (explain(): which check failed, in words) and type_tags.c. Private to them.
 */
#ifndef TERRA_DYN_GUARD_TYPES_H
#define TERRA_DYN_GUARD_TYPES_H

#include "terra_dyn.h"

#include "tensor_check.h"

enum { K_TYPE, K_ID, K_EQ, K_LEN, K_TENSOR, K_GLOBAL_ID, K_CALL_ID, K_CALLBACK, K_TYPE_VERSION, K_FUNC,
       K_ID_WEAK, K_NO_ATTR, K_NO_ATTR_WEAK, K_SNAPSHOT, K_PATHS };
/* Checks on constant objects (no argument slot): facts about an object whose identity the
   translation already relies on. */
#define NO_SLOT(kind) ((kind) == K_GLOBAL_ID || (kind) == K_CALL_ID || (kind) == K_CALLBACK || \
                       (kind) == K_TYPE_VERSION || (kind) == K_FUNC || (kind) == K_NO_ATTR_WEAK || \
                       (kind) == K_SNAPSHOT || (kind) == K_PATHS)

typedef struct {
    int kind;
    Py_ssize_t index;    /* argument slot (all kinds but global_id / call_id) */
    Py_ssize_t length;   /* len: the length; tensor: 1 when the expected device is the CPU */
    PyObject *a, *b, *c, *d, *e, *f;  /* the tuple's remaining items, borrowed from `spec` */
    const TensorSpec *fast;  /* tensor: the fast path's spec, or NULL */
    AmbientSpec ambient;     /* call_id: kind 0 unless the fast path answers it */
    PyObject *registry;      /* call_id of partial(bool, d), d a dict: d (owned), read in C */
    SnapshotMemo *snapshot;  /* snapshot: the check and what its last pass read (owned) */
    PathTree *paths;         /* paths: the tree (owned; borrows from `spec`) */
    uint64_t dict_tag;       /* global_id: the globals dict's version tag when it last passed */
    int tag_valid;           /* ... and that tag is set */
} Check;

typedef struct GuardLead GuardLead;  /* guard_lead.c */

typedef struct {
    PyObject_HEAD
    PyObject *spec;      /* tuple of the check tuples: owns what Check borrows */
    PyObject *fallback;  /* callable or NULL */
    Py_ssize_t n;
    Check *checks;
    TensorSpec *specs;   /* one per tensor check on the fast path */
    SnapshotBatch *batch;  /* its snapshot checks together (csrc/snapshot_batch.c), or NULL */
    Py_ssize_t *rest, n_rest;  /* the checks the batch does not cover; n_rest -1: none listed */
    Py_ssize_t n_fast;   /* checks on the fast path (introspection) */
    GuardLead *lead;     /* its first checks in one C++ call (guard_lead.c), or NULL */
} Guard;

/* guard_lead.c */
GuardLead *guard_lead_new(const Check *checks, Py_ssize_t n, const TensorCheckAPI *api);  /* NULL: none */
void guard_lead_free(GuardLead *lead);
int guard_lead_check(const GuardLead *lead, PyObject *const *args, Py_ssize_t nargs, Py_ssize_t *covered);

/* guard_lead.c: d when fn is functools.partial(bool, d), d an exact dict or OrderedDict (new
   reference); else NULL, no exception */
PyObject *registry_of(PyObject *fn);

/* guards.c: 1 pass, 0 fail, -1 error; and which tensor field differs (NULL: none) */
int guard_check_one(const Check *c, PyObject *const *args, Py_ssize_t nargs);
const char *guard_tensor_mismatch(const Check *c, PyObject *x);

/* type_tags.c: a type_version check, 1 holds, 0 fails, -1 error */
int type_tag_holds(const Check *c, PyTypeObject *t);

/* guard_explain.c: Guard.explain(*args) */
PyObject *guard_explain(Guard *self, PyObject *const *args, Py_ssize_t nargs);

#endif
