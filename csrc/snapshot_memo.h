/* What csrc/snapshot.c (a snapshot check and its memo) and csrc/snapshot_batch.c (a
 * Guard's memoized snapshots checked together) share: the entry kinds, the memo's layout
 * and the dict watcher's epoch. Private to those two files; terra_dyn.h has the interface.
 */
#ifndef TERRA_DYN_SNAPSHOT_MEMO_H
#define TERRA_DYN_SNAPSHOT_MEMO_H

#include "terra_dyn.h"

enum { E_ID, E_ID_WEAK, E_TYPE, E_EQ, E_ABSENT, E_TENSOR, E_KINDS };

/* The referent of a weakref.ref, borrowed, or NULL once dead (never None: an entry may hold
   None, as a Linear without bias does). */
static inline PyObject *referent_of(PyObject *ref) {
    PyObject *obj = weak_referent(ref);
    return obj == Py_None ? NULL : obj;
}

/* The instance dict of obj, borrowed; NULL when it has none. */
static inline PyObject *instance_dict(PyObject *obj) {
    PyObject **dictptr = _PyObject_GetDictPtr(obj);
    return dictptr == NULL ? NULL : *dictptr;
}

typedef struct {
    PyObject *container;  /* the table (a dict or tuple) read then; NULL: the instance dict */
    uint64_t tag;         /* 3.11: its version tag then */
    int order_live;       /* an OrderedDict whose key order is a fact */
} TableMemo;

typedef struct {
    long kind;
    PyObject *value, *expected;
    const void *spec;  /* TENSOR: the Guard's fast spec, read without the Guard (or NULL) */
} LiveEntry;

struct SnapshotMemo {
    PyObject *target, *cls, *tables;  /* borrowed from the check tuple */
    int valid;                        /* the fields below describe a check that passed */
    int batched;                      /* its facts are in its Guard's batch */
    PyObject *obj;                    /* the target's referent when last read: a prefetch hint */
    PyObject *dict;                   /* the instance dict then */
    uint64_t tag;                     /* 3.11: its version tag then; 3.12+: dict_epoch then */
    int dict_live;                    /* 3.13: a split instance dict, read in full */
    Py_ssize_t n_tables;
    TableMemo *memo;                  /* one per table */
    Py_ssize_t n_live, cap_live;
    LiveEntry *live;
};


/* 1 when one entry holds; value: the container's item for the entry's key (borrowed), NULL
   when it has none (snapshot.c). */
int snapshot_entry_holds(long kind, PyObject *value, PyObject *expected);

#if PY_VERSION_HEX >= 0x030C0000
extern uint64_t snapshot_dict_epoch;  /* bumped on every event of a dict snapshot.c watches */
#endif

#endif
