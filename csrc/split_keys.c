/* 3.13: a snapshot's facts about a split instance dict, read by index (csrc/snapshot.c's
 * memo and csrc/snapshot_batch.c call it; on 3.11 / 3.12 nothing is recorded).
 *
 * An instance dict of a class with inline values (3.13: every plain class's) is split: its
 * keys are the class's shared keys (`ht_cached_keys`, append-only, at most 30), its values
 * are the object's own array (`ma_values`), where key k's value lies at k's index in the
 * keys, NULL when the object has none. 3.13.0 stores `obj.x = v` into that array with no
 * new dict tag and no watcher event, so snapshot.c reads such a dict again on every check:
 * by hashed lookups, one per fact (~40 us for a 12-layer BERT's ~1,600). Here the index of
 * each key is found once, when a full check passed, and later checks read values[ix]:
 *
 *   recorded   the facts of the instance dict table (key, kind, expected), and for each
 *              other table the object it is (a dict: watched, so the same pointer is the
 *              same dict; a tuple: not watched, so its type, length and items are facts
 *              too: a tuple freed and another allocated at its address must fail);
 *   holds      while the dict still has values and the very keys recorded, which have not
 *              grown: a key absent from them then is absent now, and key k is at ix.
 *              The keys are the class's (checked when recorded): alive while the class is,
 *              which the check tuple holds, so no other keys object can be at that address.
 * Anything else (not split, other keys, the keys grew, a value whose == may run user code,
 * a tensor entry) answers -1: the caller reads by lookups, as before.
 */
#define Py_BUILD_CORE 1
#include "snapshot_memo.h"
#if PY_VERSION_HEX >= 0x030D0000
#include <internal/pycore_dict.h>

/* The index of key (an exact str) in the split keys dk, -1 when absent. */
static Py_ssize_t key_index(PyDictKeysObject *dk, PyObject *key) {
    PyDictUnicodeEntry *entries = DK_UNICODE_ENTRIES(dk);
    for (Py_ssize_t ix = 0; ix < dk->dk_nentries; ix++) {
        PyObject *k = entries[ix].me_key;
        if (k == key || (k != NULL && PyUnicode_CheckExact(k) && PyUnicode_Compare(k, key) == 0)) return ix;
    }
    return -1;
}

static int add_slot(SplitRead *r, Py_ssize_t ix, Py_ssize_t item, long kind, PyObject *expected) {
    if (r->n == r->cap) {
        Py_ssize_t cap = r->cap ? 2 * r->cap : 16;
        SplitSlot *grown = PyMem_Realloc(r->slots, cap * sizeof(SplitSlot));
        if (grown == NULL) return -1;
        r->slots = grown;
        r->cap = cap;
    }
    r->slots[r->n++] = (SplitSlot){ix, item, kind, expected};
    return 0;
}

/* 1: the slots of one table are recorded; 0: it cannot be read by index. */
static int record_table(SplitRead *r, PyDictKeysObject *dk, PyObject *table, PyObject *container) {
    PyObject *name = PyTuple_GET_ITEM(table, 0), *type = PyTuple_GET_ITEM(table, 1);
    PyObject *keys = PyTuple_GET_ITEM(table, 2), *entries = PyTuple_GET_ITEM(table, 3);
    Py_ssize_t n = PyTuple_GET_SIZE(entries);
    if (name == Py_None) {  /* the instance dict: its facts (its key order is never one) */
        if (keys != Py_None) return 0;
        for (Py_ssize_t j = 0; j < n; j++) {
            PyObject *entry = PyTuple_GET_ITEM(entries, j), *key = PyTuple_GET_ITEM(entry, 0);
            long kind = PyLong_AsLong(PyTuple_GET_ITEM(entry, 1));
            PyObject *expected = PyTuple_GET_ITEM(entry, 2);
            if (!PyUnicode_CheckExact(key) || kind == E_TENSOR || (kind == E_EQ && !is_fixed_value(expected))) return 0;
            if (add_slot(r, key_index(dk, key), -1, kind, expected) < 0) return -1;
        }
        return 1;
    }
    Py_ssize_t ix = key_index(dk, name);
    if (ix < 0) return 0;
    if (type != (PyObject *)&PyTuple_Type) return add_slot(r, ix, -1, E_ID, container) < 0 ? -1 : 1;
    if (add_slot(r, ix, -1, S_TUPLE, keys == Py_None ? NULL : keys) < 0) return -1;
    for (Py_ssize_t j = 0; j < n; j++) {
        PyObject *entry = PyTuple_GET_ITEM(entries, j);
        long kind = PyLong_AsLong(PyTuple_GET_ITEM(entry, 1));
        PyObject *expected = PyTuple_GET_ITEM(entry, 2);
        if (kind == E_TENSOR || (kind == E_EQ && !is_fixed_value(expected))) return 0;
        if (add_slot(r, ix, PyLong_AsSsize_t(PyTuple_GET_ITEM(entry, 0)), kind, expected) < 0) return -1;
    }
    return 1;
}

int split_read_record(SnapshotMemo *m, PyObject *dict) {
    SplitRead *r = &m->split;
    r->keys = NULL;
    r->n = 0;
    PyTypeObject *cls = (PyTypeObject *)m->cls;
    if (!PyDict_CheckExact(dict) || !PyType_HasFeature(cls, Py_TPFLAGS_HEAPTYPE)) return 0;
    PyDictObject *d = (PyDictObject *)dict;
    PyDictKeysObject *dk = d->ma_keys;
    if (d->ma_values == NULL || dk != ((PyHeapTypeObject *)cls)->ht_cached_keys || dk->dk_kind != DICT_KEYS_SPLIT) return 0;
    for (Py_ssize_t i = 0; i < m->n_tables; i++) {
        int ok = record_table(r, dk, PyTuple_GET_ITEM(m->tables, i), m->memo[i].container);
        if (ok != 1) {
            r->n = 0;
            return ok;
        }
    }
    r->keys = dk;
    r->n_keys = dk->dk_nentries;
    return 0;
}

int split_read_holds(const SplitRead *r, PyObject *dict) {
    PyDictObject *d = (PyDictObject *)dict;
    PyDictValues *values = d->ma_values;
    if (r->keys == NULL || values == NULL || (const void *)d->ma_keys != r->keys || d->ma_keys->dk_nentries != r->n_keys) return -1;
    Py_ssize_t capacity = values->capacity;
    for (Py_ssize_t i = 0; i < r->n; i++) {
        const SplitSlot *s = &r->slots[i];
        if (s->ix >= capacity) return -1;
        PyObject *v = s->ix < 0 ? NULL : values->values[s->ix];
        if (s->item >= 0)  /* an item of the tuple that its S_TUPLE slot, just before, found */
            v = v != NULL && PyTuple_CheckExact(v) && s->item < PyTuple_GET_SIZE(v) ? PyTuple_GET_ITEM(v, s->item) : NULL;
        switch (s->kind) {  /* the common kinds inline: ~1,600 slots for a 12-layer BERT */
        case E_ID: if (v != s->expected) return 0; break;
        case E_ABSENT: if (v != NULL) return 0; break;
        case E_TYPE: if (v == NULL || Py_TYPE(v) != (PyTypeObject *)s->expected) return 0; break;
        case E_ID_WEAK: if (v == NULL || v != referent_of(s->expected)) return 0; break;
        case S_TUPLE:
            if (v == NULL || !PyTuple_CheckExact(v)) return 0;
            if (s->expected != NULL && PyTuple_GET_SIZE(v) != PyLong_AsSsize_t(s->expected)) return 0;
            break;
        case E_EQ:
            if (v == NULL) return 0;
            if (!is_fixed_value(v)) return -1;
            /* fall through: int, float, str... compared with no user code */
        default:
            if (!snapshot_entry_holds(s->kind, v, s->expected)) return 0;
        }
    }
    return 1;
}

/* A slot read in split_read_holds' loop exactly as a flat one reads it: about the value itself, at
   an index the values array has room for (checked here once: the array's capacity is fixed). */
const void *split_read_flatten(const SplitRead *r, PyObject *dict, FlatSlots *flat, SplitSlot *rest,
                               Py_ssize_t *n_rest) {
    PyDictValues *values = ((PyDictObject *)dict)->ma_values;
    *n_rest = 0;
    for (Py_ssize_t i = 0; i < r->n; i++) {
        const SplitSlot *s = &r->slots[i];
        int plain = values != NULL && s->item < 0 && s->ix < values->capacity;
        if (plain && s->kind == E_ABSENT && s->ix < 0) continue;  /* not among the keys: absent while they are */
        if (plain && s->ix >= 0 && (s->kind == E_ID || s->kind == E_TYPE || s->kind == E_ABSENT)) {
            FlatSlot f = {&values->values[s->ix], s->expected};
            if (s->kind == E_ID) flat->id[flat->n_id++] = f;
            else if (s->kind == E_TYPE) flat->type[flat->n_type++] = f;
            else flat->absent[flat->n_absent++] = f;
        } else {
            rest[(*n_rest)++] = *s;
        }
    }
    return values;
}

int split_values_at(PyObject *dict, const void *values) {
    return (const void *)((PyDictObject *)dict)->ma_values == values;
}

int split_values_take(SplitValues *s, PyObject *dict) {
    PyDictObject *d = (PyDictObject *)dict;
    s->taken = 1;
    s->keys = s->values = NULL;
    s->n = 0;
    s->held = NULL;
    if (d->ma_values == NULL) return 0;
    Py_ssize_t n = d->ma_keys->dk_nentries;
    if (n > d->ma_values->capacity) n = d->ma_values->capacity;  /* keys grown by another instance */
    if (n > 0 && (s->held = PyMem_Malloc(n * sizeof(PyObject *))) == NULL) return -1;
    for (Py_ssize_t i = 0; i < n; i++) s->held[i] = Py_XNewRef(d->ma_values->values[i]);
    s->keys = d->ma_keys;
    s->values = d->ma_values;
    s->n = n;
    return 0;
}

int split_values_same(const SplitValues *s, PyObject *dict) {
    PyDictObject *d = (PyDictObject *)dict;
    if (!s->taken || s->values == NULL) return 1;  /* not split then: never split again, its tag tells */
    if ((const void *)d->ma_values != s->values || (const void *)d->ma_keys != s->keys) return 0;
    Py_ssize_t n = d->ma_keys->dk_nentries;
    if ((n > d->ma_values->capacity ? d->ma_values->capacity : n) != s->n) return 0;
    for (Py_ssize_t i = 0; i < s->n; i++) {
        if (d->ma_values->values[i] != s->held[i]) return 0;
    }
    return 1;
}

void split_values_release(SplitValues *s) {
    if (!s->taken) return;
    PyObject **held = s->held;
    Py_ssize_t n = s->n;
    s->held = NULL;
    s->n = 0;
    s->taken = 0;
    for (Py_ssize_t i = 0; i < n; i++) Py_XDECREF(held[i]);  /* may run a finalizer: read nothing after */
    PyMem_Free(held);
}

#else  /* 3.11, 3.12: instance dicts tell their writes (a tag, a watcher event) */
int split_values_take(SplitValues *s, PyObject *dict) {
    s->taken = 1;
    return 0;
}

int split_values_same(const SplitValues *s, PyObject *dict) { return 1; }

void split_values_release(SplitValues *s) { s->taken = 0; }

int split_read_record(SnapshotMemo *m, PyObject *dict) {
    m->split.keys = NULL;
    return 0;
}

int split_read_holds(const SplitRead *r, PyObject *dict) { return -1; }

const void *split_read_flatten(const SplitRead *r, PyObject *dict, FlatSlots *flat, SplitSlot *rest,
                               Py_ssize_t *n_rest) {
    *n_rest = 0;
    return NULL;
}

int split_values_at(PyObject *dict, const void *values) { return values == NULL; }
#endif
