/* A Guard's memoized snapshot checks (csrc/snapshot.c) checked together: the batch.
 * The memo's layout is shared through snapshot_memo.h.
 */
#include "snapshot_memo.h"
#include "tensor_check.h"

/* ---- the batch: every memoized snapshot of one Guard, checked in flat loops ----
 *
 * A cached call of a 12-layer BERT checks ~210 snapshots whose memos all hold; each memo
 * check is a chain of dependent reads (memo, weakref, module, its dict, each table, each
 * parameter) through objects scattered over the heap: one cache miss after the other. The
 * batch copies what the memos read into flat arrays, read in passes whose loads do not
 * depend on each other and are prefetched a few entries ahead:
 *   objects   each target's referent (none for an object a table checked before holds:
 *             "held objects" below), class and instance dict; 3.11: then that dict's tag,
 *             and each of its table dicts' tags (the untouched instance dict keeps them alive);
 *   split     3.13: each split instance dict's facts and the tables it holds, by index in
 *             the class's shared keys (split_keys.c), once every object is known to hold
 *             its dict (an epoch unchanged: none of those dicts was freed); the facts about
 *             a value itself (identity, type, absence) last, in flat loops over addresses
 *             in the values arrays, once each dict is known to hold the array recorded;
 *   live      the live TYPE entries, read once every table is known untouched (they keep
 *             the values alive);
 *   tensors   the parameters (TENSOR entries), last: each compared by the raw fields its
 *             check read when it last matched, prefetched from the pointers recorded then
 *             (tensor_check.cpp, tensors_match; a field that differs: the full check).
 * It states nothing the memos do not: it is built right after a Guard check that checked
 * every snapshot and passed, from the memos that passed then, and holds while each of its
 * reads is what it was then. Left out (checked one by one): memos not cacheable, 3.13's
 * split instance dicts not read by index, an OrderedDict's key order, a live EQ entry (a user __eq__ could
 * free what a later pass reads) and a tensor without a fast spec (its Python path may run
 * user code). A batch that fails is dropped: every snapshot is checked by its memo, and the
 * batch is rebuilt after the next full pass. */

typedef struct {
    PyObject *target, *obj;  /* obj: the referent then (compared; dereferenced only once
                                target says it is alive, or a table checked before holds it) */
    PyTypeObject *cls;
    PyObject *dict;          /* the instance dict then; NULL: a snapshot with no tables */
    uint64_t tag;            /* 3.11: that dict's version tag then */
    int held;                /* a table of an object before it holds obj: its weakref is not read */
    Py_ssize_t n_tables;     /* 3.11: its tables' tags, next in the batch's tables */
} BatchObject;

typedef struct {
    PyObject *dict;
    uint64_t tag;
} BatchTable;

typedef struct {
    PyObject *dict;      /* a split instance dict (3.13) */
    SplitRead read;      /* the memo's, the slots not in the flat passes copied into the batch's */
    const void *values;  /* its values array then: the flat slots' addresses point into it */
} BatchSplit;

struct SnapshotBatch {
    Py_ssize_t n_memos;
    SnapshotMemo **memos;  /* the Guard's snapshot memos (not owned) */
    int valid, disabled;   /* disabled: a fast spec could not tell once; memos one by one */
    uint64_t epoch;        /* 3.12+: snapshot_dict_epoch when built */
    Py_ssize_t n_obj, n_table, n_live, n_tensor, cap_obj, cap_table, cap_live, cap_tensor;
    Py_ssize_t n_split, n_slot, cap_split, cap_slot;
    BatchObject *objs;
    BatchTable *tables;
    BatchSplit *splits;
    SplitSlot *slots;
    FlatSlots flat;       /* 3.13: the split facts read at fixed addresses (split_keys.c) */
    Py_ssize_t cap_flat;
    LiveEntry *live;      /* the live entries but parameters */
    TensorEntry *tensors; /* the parameters: checked by their raw fields (tensor_check.h) */
};

#define BATCH_AHEAD 4
#define TABLES_AHEAD 12  /* ~3 objects' tables ahead */

SnapshotBatch *snapshot_batch_new(SnapshotMemo **memos, Py_ssize_t n) {
    SnapshotBatch *b = PyMem_Calloc(1, sizeof(SnapshotBatch));
    if (b == NULL || (n && (b->memos = PyMem_Calloc(n, sizeof(SnapshotMemo *))) == NULL)) {
        PyMem_Free(b);
        return (SnapshotBatch *)PyErr_NoMemory();
    }
    memcpy(b->memos, memos, n * sizeof(SnapshotMemo *));
    b->n_memos = n;
    return b;
}

static void batch_drop(SnapshotBatch *b) {
    b->valid = 0;
    for (Py_ssize_t i = 0; i < b->n_memos; i++) b->memos[i]->batched = 0;
}

void snapshot_batch_free(SnapshotBatch *b) {
    if (b == NULL) return;
    PyMem_Free(b->memos);
    PyMem_Free(b->objs);
    PyMem_Free(b->tables);
    PyMem_Free(b->splits);
    PyMem_Free(b->slots);
    PyMem_Free(b->flat.id);
    PyMem_Free(b->flat.type);
    PyMem_Free(b->flat.absent);
    PyMem_Free(b->live);
    PyMem_Free(b->tensors);
    PyMem_Free(b);
}

int snapshot_is_batched(const SnapshotMemo *m) { return m->batched; }

Py_ssize_t snapshot_batch_size(const SnapshotBatch *b) { return b != NULL && b->valid ? b->n_obj : 0; }

Py_ssize_t snapshot_batch_held(const SnapshotBatch *b) {
    Py_ssize_t n = 0;
    for (Py_ssize_t i = 0; i < snapshot_batch_size(b); i++) n += b->objs[i].held;
    return n;
}

/* 1 when every batched snapshot still holds; 0 (the batch dropped) otherwise. Never raises. */
int snapshot_batch_check(SnapshotBatch *b) {
    if (!b->valid) return 0;
#if PY_VERSION_HEX >= 0x030C0000
    if (b->epoch != snapshot_dict_epoch) goto fail;
#endif
    /* objects in order, each with its tables: a held object's holder was checked before it */
    for (Py_ssize_t i = 0, t = 0; i < b->n_obj; i++) {
        if (i + BATCH_AHEAD < b->n_obj) {
            const BatchObject *f = &b->objs[i + BATCH_AHEAD];
            if (!f->held) __builtin_prefetch(f->target);
            __builtin_prefetch(f->obj);
            __builtin_prefetch(f->dict);
        }
        if (t + TABLES_AHEAD < b->n_table) __builtin_prefetch(b->tables[t + TABLES_AHEAD].dict);
        const BatchObject *o = &b->objs[i];
        PyObject *obj = o->held ? o->obj : PyWeakref_CheckRef(o->target) ? referent_of(o->target) : o->target;
        if (obj != o->obj || Py_TYPE(obj) != o->cls) goto fail;
        if (o->dict == NULL) continue;
        if (instance_dict(obj) != o->dict) goto fail;
#if PY_VERSION_HEX < 0x030C0000
        if (dict_version_tag(o->dict) != o->tag) goto fail;
        /* the instance dict is untouched: it still holds its tables */
        for (Py_ssize_t end = t + o->n_tables; t < end; t++) {
            if (dict_version_tag(b->tables[t].dict) != b->tables[t].tag) goto fail;
        }
#endif
    }
    for (Py_ssize_t i = 0; i < b->n_split; i++) {
        const BatchSplit *s = &b->splits[i];
        if (i + BATCH_AHEAD < b->n_split) __builtin_prefetch(b->splits[i + BATCH_AHEAD].dict);
        if (!split_values_at(s->dict, s->values) || split_read_holds(&s->read, s->dict) != 1) goto fail;
    }
    /* every values array is the one recorded: the flat slots point into live arrays */
    for (Py_ssize_t i = 0; i < b->flat.n_id; i++) {
        if (*b->flat.id[i].at != b->flat.id[i].expected) goto fail;
    }
    for (Py_ssize_t i = 0; i < b->flat.n_absent; i++) {
        if (*b->flat.absent[i].at != NULL) goto fail;
    }
    for (Py_ssize_t i = 0; i < b->flat.n_type; i++) {
        PyObject *v = *b->flat.type[i].at;
        if (v == NULL || Py_TYPE(v) != (PyTypeObject *)b->flat.type[i].expected) goto fail;
    }
    for (Py_ssize_t i = 0; i < b->n_live; i++) {
        const LiveEntry *e = &b->live[i];
        if (!snapshot_entry_holds(e->kind, e->value, e->expected)) goto fail;
    }
    /* the parameters last, once every table is known untouched (they keep them alive) */
    int r = guard_tensors_match(b->tensors, b->n_tensor);
    if (r < 0) b->disabled = 1;
    if (r != 1) goto fail;
    return 1;
fail:
    batch_drop(b);
    return 0;
}

/* Every fact the memo's next check would read again can be copied into the batch. */
static int memo_batchable(const SnapshotMemo *m) {
    if (m->obj == NULL) return 0;
    if (m->n_tables == 0) return 1;
    if (!m->valid || (m->dict_live && m->split.keys == NULL)) return 0;
#if PY_VERSION_HEX >= 0x030C0000
    if (m->tag != snapshot_dict_epoch) return 0;
#endif
    for (Py_ssize_t i = 0; i < m->n_tables; i++) {
        if (m->memo[i].order_live) return 0;
    }
    for (Py_ssize_t i = 0; i < m->n_live; i++) {
        if (m->live[i].kind == E_EQ || (m->live[i].kind == E_TENSOR && m->live[i].spec == NULL)) return 0;
    }
    return 1;
}

static int grow(void **array, Py_ssize_t *cap, Py_ssize_t need, size_t size) {
    if (need <= *cap) return 0;
    void *grown = PyMem_Realloc(*array, need * size);
    if (grown == NULL) return -1;
    *array = grown;
    *cap = need;
    return 0;
}

static int grow_flat(FlatSlots *f, Py_ssize_t *cap, Py_ssize_t need) {
    Py_ssize_t old = *cap;
    if (grow((void **)&f->id, &old, need, sizeof(FlatSlot)) < 0) return -1;
    old = *cap;
    if (grow((void **)&f->type, &old, need, sizeof(FlatSlot)) < 0) return -1;
    old = *cap;
    if (grow((void **)&f->absent, cap, need, sizeof(FlatSlot)) < 0) return -1;
    return 0;
}

/* ---- held objects: no weakref read ----
 * A module's children are values of its `_modules` table (an E_ID / E_ID_WEAK entry). Once
 * that table is known untouched in a pass (3.11: its tag, read after its holder's; 3.12+:
 * the epoch, and the watcher saw no write to it and did not see it freed), it still holds
 * the child: the child is alive and at the address recorded, and its weakref need not be
 * read (~210 memory lines a BERT-12 call). Only a holder before the child in the pass counts. */
typedef struct {
    PyObject *value;
    Py_ssize_t holder;  /* its index in the batch's objects */
} HeldValue;

static int held_cmp(const void *a, const void *b) {
    const HeldValue *x = a, *y = b;
    if (x->value != y->value) return (uintptr_t)x->value < (uintptr_t)y->value ? -1 : 1;
    return x->holder < y->holder ? -1 : x->holder > y->holder;
}

/* Appends to `out` (room for every entry) the values m's dict tables hold by identity. */
static Py_ssize_t held_values(const SnapshotMemo *m, Py_ssize_t holder, HeldValue *out) {
    Py_ssize_t n = 0;
    for (Py_ssize_t i = 0; i < m->n_tables; i++) {
        PyObject *c = m->memo[i].container;
        if (c == NULL || !PyDict_Check(c)) continue;
        PyObject *entries = PyTuple_GET_ITEM(PyTuple_GET_ITEM(m->tables, i), 3);
        for (Py_ssize_t j = 0; j < PyTuple_GET_SIZE(entries); j++) {
            PyObject *entry = PyTuple_GET_ITEM(entries, j), *expected = PyTuple_GET_ITEM(entry, 2);
            long kind = PyLong_AsLong(PyTuple_GET_ITEM(entry, 1));
            PyObject *value = kind == E_ID ? expected : kind == E_ID_WEAK ? referent_of(expected) : NULL;
            if (value != NULL) out[n++] = (HeldValue){value, holder};
        }
    }
    return n;
}

static Py_ssize_t table_entries(const SnapshotMemo *m) {
    Py_ssize_t n = 0;
    for (Py_ssize_t i = 0; i < m->n_tables; i++) n += PyTuple_GET_SIZE(PyTuple_GET_ITEM(PyTuple_GET_ITEM(m->tables, i), 3));
    return n;
}

/* Marks the batch's objects held by a table of an object before them. */
static void mark_held(SnapshotBatch *b) {
    Py_ssize_t cap = 0;
    for (Py_ssize_t k = 0; k < b->n_memos; k++) {
        if (b->memos[k]->batched) cap += table_entries(b->memos[k]);
    }
    HeldValue *values = cap ? PyMem_Malloc(cap * sizeof(HeldValue)) : NULL;
    if (values == NULL) return;  /* every weakref read: as sound, only slower */
    Py_ssize_t n = 0;
    for (Py_ssize_t k = 0, i = 0; k < b->n_memos; k++) {
        if (b->memos[k]->batched) n += held_values(b->memos[k], i++, values + n);
    }
    qsort(values, n, sizeof(HeldValue), held_cmp);
    for (Py_ssize_t i = 0; i < b->n_obj; i++) {
        HeldValue key = {b->objs[i].obj, -1};  /* below every holder: the first of its value */
        Py_ssize_t lo = 0, hi = n;
        while (lo < hi) {
            Py_ssize_t mid = (lo + hi) / 2;
            if (held_cmp(&values[mid], &key) < 0) lo = mid + 1; else hi = mid;
        }
        b->objs[i].held = lo < n && values[lo].value == key.value && values[lo].holder < i;
    }
    PyMem_Free(values);
}

/* After a Guard check that checked every snapshot and passed: the batch from the memos
   (each just checked). Never raises (no memory: no batch). */
void snapshot_batch_build(SnapshotBatch *b) {
    batch_drop(b);
    if (b->disabled) return;
    Py_ssize_t n_obj = 0, n_table = 0, n_live = 0, n_split = 0, n_slot = 0;
    for (Py_ssize_t k = 0; k < b->n_memos; k++) {
        const SnapshotMemo *m = b->memos[k];
        if (!memo_batchable(m)) continue;
        n_obj++;
        n_table += m->n_tables;
        n_live += m->n_live;
        if (m->n_tables && m->dict_live) {
            n_split++;
            n_slot += m->split.n;
        }
    }
    if (n_obj == 0 || grow((void **)&b->objs, &b->cap_obj, n_obj, sizeof(BatchObject)) < 0 ||
        grow((void **)&b->tables, &b->cap_table, n_table, sizeof(BatchTable)) < 0 ||
        grow((void **)&b->live, &b->cap_live, n_live, sizeof(LiveEntry)) < 0 ||
        grow((void **)&b->tensors, &b->cap_tensor, n_live, sizeof(TensorEntry)) < 0 ||
        grow((void **)&b->splits, &b->cap_split, n_split, sizeof(BatchSplit)) < 0 ||
        grow((void **)&b->slots, &b->cap_slot, n_slot, sizeof(SplitSlot)) < 0 ||
        grow_flat(&b->flat, &b->cap_flat, n_slot) < 0) {
        return;
    }
    b->flat.n_id = b->flat.n_type = b->flat.n_absent = 0;
    b->n_obj = b->n_table = b->n_live = b->n_tensor = b->n_split = b->n_slot = 0;
    for (Py_ssize_t k = 0; k < b->n_memos; k++) {
        SnapshotMemo *m = b->memos[k];
        if (!memo_batchable(m)) continue;
        m->batched = 1;
        BatchObject *o = &b->objs[b->n_obj++];
        *o = (BatchObject){m->target, m->obj, (PyTypeObject *)m->cls, m->n_tables ? m->dict : NULL, 0, 0, 0};
        if (m->n_tables == 0) continue;
        if (m->dict_live) {
            BatchSplit *s = &b->splits[b->n_split++];
            *s = (BatchSplit){m->dict, m->split, NULL};
            s->read.slots = b->slots + b->n_slot;
            s->values = split_read_flatten(&m->split, m->dict, &b->flat, s->read.slots, &s->read.n);
            b->n_slot += s->read.n;
        }
#if PY_VERSION_HEX < 0x030C0000
        o->tag = m->tag;
        for (Py_ssize_t i = 0; i < m->n_tables; i++) {
            PyObject *c = m->memo[i].container;
            if (c != NULL && PyDict_Check(c)) {
                b->tables[b->n_table++] = (BatchTable){c, m->memo[i].tag};
                o->n_tables++;
            }
        }
#endif
        for (Py_ssize_t i = 0; i < m->n_live; i++) {
            const LiveEntry *e = &m->live[i];
            if (e->kind == E_TENSOR) {  /* its raw fields are recorded by its first check */
                b->tensors[b->n_tensor++] = (TensorEntry){e->value, e->spec, {0}};
            } else {
                b->live[b->n_live++] = *e;
            }
        }
    }
    mark_held(b);
#if PY_VERSION_HEX >= 0x030C0000
    b->epoch = snapshot_dict_epoch;
#endif
    b->valid = 1;
}

