/* What csrc/snapshot.c (a snapshot check and its memo), csrc/snapshot_batch.c (a Guard's
 * memoized snapshots checked together) and csrc/split_keys.c (3.13's split instance dicts
 * read by index) share: the entry kinds, the memo's layout and the dict watcher's epoch.
 * Private to those files; terra_dyn.h has the interface.
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
    uint64_t tag;         /* a dict's dict_write_tag when read in full (3.11: its version tag) */
    int order_live;       /* an OrderedDict whose key order is a fact */
} TableMemo;

/* 3.13: one fact of a snapshot read from a split instance dict (its values share the class's
   keys) by the key's index in those keys, with no hashed lookup (split_keys.c). */
enum { S_TUPLE = E_KINDS };  /* a slot's own kind: an exact tuple, of length `expected` unless NULL */

typedef struct {
    Py_ssize_t ix;        /* the key's index in the shared keys; -1: not among them (absent) */
    Py_ssize_t item;      /* -1: the value itself; k >= 0: item k of that value (a tuple) */
    long kind;            /* an entry kind, or S_TUPLE */
    PyObject *expected;   /* borrowed from the check tuple (a table's container: the memo's) */
} SplitSlot;

typedef struct {
    const void *keys;     /* the class's shared keys when recorded; NULL: not read by index */
    Py_ssize_t n_keys;    /* how many keys they held then */
    Py_ssize_t n, cap;
    SplitSlot *slots;     /* every fact of the instance dict, and which tables it holds */
} SplitRead;

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
    SplitRead split;                  /* 3.13, dict_live: its facts by index (split_keys.c) */
};


/* 1 when one entry holds; value: the container's item for the entry's key (borrowed), NULL
   when it has none (snapshot.c). */
int snapshot_entry_holds(long kind, PyObject *value, PyObject *expected);

/* 1: is the value one whose == and hash run no user code (None, int, float, bool, str,
   bytes: exact types) */
static inline int is_fixed_value(PyObject *v) {
    return v == Py_None || PyLong_CheckExact(v) || PyFloat_CheckExact(v) || PyBool_Check(v) ||
           PyUnicode_CheckExact(v) || PyBytes_CheckExact(v);
}

/* split_keys.c. record: after a full check of a split instance dict passed, its facts as
   slots (split->keys NULL where they cannot be read by index); 0, or -1 out of memory.
   holds: 1 every slot holds, 0 one does not, -1 cannot tell by index (the keys grew, the
   dict is no longer split, a value whose == may run user code). Runs no user code, never
   raises. */
int split_read_record(SnapshotMemo *m, PyObject *dict);
int split_read_holds(const SplitRead *r, PyObject *dict);

/* 3.13, the batch: the facts about a value itself (E_ID, E_TYPE, E_ABSENT), read at fixed
   addresses in the dict's values array in flat loops, once every such array is known to be
   the one recorded (~1,600 slots a BERT-12 call: a few instructions each instead of ~26). */
typedef struct {
    PyObject **at;       /* &values[ix] */
    PyObject *expected;  /* E_ID: the object; E_TYPE: the type */
} FlatSlot;

typedef struct {
    Py_ssize_t n_id, n_type, n_absent;
    FlatSlot *id, *type, *absent;  /* room for every slot of the batch each */
} FlatSlots;

/* split_keys.c. flatten (build): r's flat facts appended to flat, its others copied to rest in
   order (*n_rest of them); returns dict's values array, NULL when it has none (then every slot
   goes to rest). values_at (check): dict still holds that very array. */
const void *split_read_flatten(const SplitRead *r, PyObject *dict, FlatSlots *flat, SplitSlot *rest,
                               Py_ssize_t *n_rest);
int split_values_at(PyObject *dict, const void *values);

/* 3.13: a split instance dict's values held while user code may run during a check (a
   store through the object's inline values gives the dict no new tag and no event);
   split_keys.c. take: 0, or -1 out of memory; same: 1 the dict holds those very values
   (held, so none was freed and another put at its address); on 3.11 / 3.12 and for a
   dict that is not split, take records nothing and same answers 1 (its tag tells). */
typedef struct {
    int taken;
    const void *keys, *values;
    Py_ssize_t n;
    PyObject **held;
} SplitValues;

int split_values_take(SplitValues *s, PyObject *dict);
int split_values_same(const SplitValues *s, PyObject *dict);
void split_values_release(SplitValues *s);

#if PY_VERSION_HEX >= 0x030C0000
extern uint64_t snapshot_dict_epoch;  /* bumped on every event of a dict snapshot.c watches */
#endif

#endif
