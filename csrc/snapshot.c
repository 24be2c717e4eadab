/* Snapshot checks: many facts about one object that a guard already pins by identity (a
 * module and the dicts it keeps), checked in C on that object, with no source chain walked.
 *
 *   ("snapshot", target, cls, tables, info)      one Guard check (guards.c K_SNAPSHOT)
 *     target   weakref.ref to the object (a module: held weakly), or the object itself
 *     cls      type(object) must still be cls (`m.__class__ = Other` is a different forward)
 *     tables   tuple of (name, container_type, keys, entries):
 *                name None   the object's instance __dict__
 *                name str    the value of __dict__[name] ("_modules", "_parameters",
 *                            "_forward_hooks", a tuple attribute), of exactly container_type:
 *                            dict, OrderedDict or tuple
 *                keys        None; or for a dict the tuple of its keys in order; for a
 *                            tuple its length
 *                entries     tuple of (key, kind, expected); kind:
 *                              0 ID      the value is expected
 *                              1 ID_WEAK the value is expected(), a weakref.ref
 *                              2 TYPE    type(value) is expected
 *                              3 EQ      value == expected
 *                              4 ABSENT  the container lacks key
 *                              5 TENSOR  expected.check(value), a one-check Guard
 *                                        ("tensor", 0, T, dtype, ...): a parameter's
 *                                        metadata (`p.data = t` keeps the object)
 *     info     guard_snapshot.Snapshot, for descriptions (not read here)
 *
 * Example: a Linear `fc` held by `model` (both guarded by identity) becomes, on fc:
 *   (ref(fc), Linear, ((None, dict, None, (("forward", 4, None), ("in_features", 2, int), ...)),
 *                      ("_parameters", dict, ("weight", "bias"), (("weight", 1, ref(w)), ...)),
 *                      ("_forward_hooks", OrderedDict, (), ())), info)
 * What each entry says is what the Python expression it replaces said
 * (`a0._modules['fc']._parameters['weight'] is c3()`): guard_snapshot.py folds only facts
 * whose source reads these very dicts (standard attribute lookup, no data descriptor on the
 * class, whose version tag is guarded too). A check that passed remembers what it read, and
 * the next one reads only what may have changed since (the memo, below).
 */
#include "snapshot_memo.h"
#include "tensor_check.h"

/* ---- a check while user code may run ----
 *
 * Most facts are read with no code of the user's running: identities, types, a str or int
 * key compared with one of its own type (keys are exact str or int: snapshot_validate).
 * Some steps may run some: an EQ entry whose sides are not both int, float, bool, str,
 * bytes or None (a user __eq__), a tensor entry read through Python, a lookup in a dict
 * that is not split (a key of a user type whose hash collides: its __eq__), listing an
 * OrderedDict (3.11's collector: a finalizer). That code may change or free what the check
 * is reading. So a check holds the object, its instance dict and the table it reads, and
 * the value it compares; and when such a step ran, nothing the check relied on may have
 * changed (reading_holds): the object alive beyond the check, of its class, with the same
 * instance dict, whose version tag (3.13, a split dict: whose very values, held from
 * before the first such step: a store through the inline values gives no tag) and the
 * tags of the tables read so far are those read. If anything changed, the check fails
 * (the next one reads afresh), and nothing read before is read again: what it pointed to
 * may have been freed. */
typedef struct {
    PyObject *obj, *dict;  /* held for the check */
    uint64_t tag;          /* the dict's tag when the check began */
    int ran;               /* a step that may run user code ran */
    SplitValues split;     /* 3.13: the values, taken before the first such step */
} Reading;

static void reading_begin(Reading *r, PyObject *obj, PyObject *dict) {
    r->obj = Py_NewRef(obj);
    r->dict = Py_NewRef(dict);
    r->tag = dict_write_tag(dict);
    r->ran = 0;
    r->split.taken = 0;
}

/* Before a step that may run user code: 0, or -1 out of memory (the check fails). */
static int reading_prepare(Reading *r) {
    r->ran = 1;
    return r->split.taken ? 0 : split_values_take(&r->split, r->dict);
}

/* 1: nothing the check read changed; n_tables: the tables read so far (memo entries). */
static int reading_holds(const Reading *r, const SnapshotMemo *m, Py_ssize_t n_tables) {
    PyObject *now = PyWeakref_CheckRef(m->target) ? referent_of(m->target) : m->target;
    if (now != r->obj || Py_REFCNT(r->obj) < 2 || Py_TYPE(r->obj) != (PyTypeObject *)m->cls) return 0;
    if (instance_dict(r->obj) != r->dict || dict_write_tag(r->dict) != r->tag) return 0;
    if (!split_values_same(&r->split, r->dict)) return 0;
    /* the dict is untouched, so it still holds the tables (or r->split does) */
    for (Py_ssize_t i = 0; i < n_tables; i++) {
        PyObject *c = m->memo[i].container;
        if (c != NULL && PyDict_Check(c) && dict_write_tag(c) != m->memo[i].tag) return 0;
    }
    return 1;
}

static void reading_end(Reading *r) {
    split_values_release(&r->split);  /* releases may run finalizers: nothing is read after */
    Py_DECREF(r->dict);
    Py_DECREF(r->obj);
}

/* 1: the keys of `container` are `expected` (a tuple of exact str / int), in iteration
   order, each of the expected key's very type (a key == "a" of another type is another
   key to the code that read it). Runs no user code but listing an OrderedDict (r->ran). */
static int keys_match(Reading *r, PyObject *container, PyObject *expected) {
    Py_ssize_t n = PyTuple_GET_SIZE(expected);
    if (PyDict_GET_SIZE(container) != n) return 0;
    if (n == 0) return 1;
    if (PyDict_CheckExact(container)) {
        Py_ssize_t pos = 0, i = 0;
        PyObject *key, *value;
        while (i < n && PyDict_Next(container, &pos, &key, &value)) {
            PyObject *want = PyTuple_GET_ITEM(expected, i++);
            if (key != want && (Py_TYPE(key) != Py_TYPE(want) || PyObject_RichCompareBool(key, want, Py_EQ) != 1)) return 0;
        }
        return i == n;
    }
    /* an OrderedDict: its own order (move_to_end changes it, not the dict's) */
    if (reading_prepare(r) < 0) return 0;
    PyObject *list = PySequence_List(container);
    if (list == NULL) return 0;
    int ok = PyList_GET_SIZE(list) == n;
    for (Py_ssize_t i = 0; ok && i < n; i++) {
        PyObject *key = PyList_GET_ITEM(list, i), *want = PyTuple_GET_ITEM(expected, i);
        ok = key == want || (Py_TYPE(key) == Py_TYPE(want) && PyObject_RichCompareBool(key, want, Py_EQ) == 1);
    }
    Py_DECREF(list);
    return ok;
}

/* 1 when one entry holds. `value` is the container's item for the entry's key (borrowed),
   NULL when it has none. */
int snapshot_entry_holds(long kind, PyObject *value, PyObject *expected) {
    if (kind == E_ABSENT) return value == NULL;
    if (value == NULL) return 0;
    switch (kind) {
    case E_ID: return value == expected;
    case E_ID_WEAK: return value == referent_of(expected);
    case E_TYPE: return Py_TYPE(value) == (PyTypeObject *)expected;
    case E_EQ: return PyObject_RichCompareBool(value, expected, Py_EQ) == 1;
    case E_TENSOR: return guard_tensor_check(expected, value) == 1;
    }
    return 0;
}

/* ---- the memo: facts that cannot change while the dicts they read do not ----
 *
 * A cached call checks the same snapshot again and again, and almost always nothing
 * changed. After a check passes, the snapshot remembers the dicts it read (the instance
 * dict, its tables) and which entries could still change with those dicts untouched; a
 * later check whose dicts are provably untouched runs only those:
 *
 *   untouched   3.11: each dict's version tag (PEP 509: any write to a dict gives it a
 *               new, never reused tag) is the one read then;
 *               3.12+: no dict this module watches (PyDict_Watch) was written, cleared or
 *               freed since (`snapshot_dict_epoch`, bumped by the watcher). 3.13 writes
 *               `obj.x = v` into an instance dict that shares the object's inline values without a
 *               tag or an event (tests/hook/test_guards.py shows it): such a dict (split:
 *               ma_values set) is read again on every check, by index in the class's shared
 *               keys (csrc/split_keys.c) or else by lookups; only its tables are memoized.
 *   live        entries whose truth can change with the same object in the dict: TENSOR
 *               (`p.data = t`), TYPE unless the value's class cannot be reassigned (an
 *               immutable type, no module), EQ unless both sides are int, float, bool,
 *               str, bytes or None, and an OrderedDict's key order (move_to_end).
 *   the rest    ID, ID_WEAK (the dict holds the referent), ABSENT, a dict's keys, a
 *               tuple's length and items: fixed while the dicts are.
 * The memo holds no references: what it points to is kept alive by the untouched dicts. */

#if PY_VERSION_HEX >= 0x030C0000
static int watcher_id = -2;      /* -2: not asked yet; -1: none free (no memo: full checks) */
uint64_t snapshot_dict_epoch = 0;  /* bumped on every event of a watched dict */

static int on_dict_event(PyDict_WatchEvent event, PyObject *dict, PyObject *key, PyObject *value) {
    snapshot_dict_epoch++;
    return 0;
}

static int watch(PyObject *dict) {
    if (watcher_id == -2 && (watcher_id = PyDict_AddWatcher(on_dict_event)) < 0) {
        watcher_id = -1;
        PyErr_Clear();
    }
    if (watcher_id < 0 || PyDict_Watch(watcher_id, dict) < 0) {
        PyErr_Clear();
        return 0;
    }
    return 1;
}
#endif

/* 1: the entry's truth can change while the container holds the same value object. */
static int entry_is_live(long kind, PyObject *value, PyObject *expected) {
    if (value == NULL) return 0;
    switch (kind) {
    case E_TENSOR: return 1;
    case E_TYPE: return !PyType_HasFeature(Py_TYPE(value), Py_TPFLAGS_IMMUTABLETYPE) || PyModule_Check(value);
    case E_EQ: return !(is_fixed_value(value) && is_fixed_value(expected));
    }
    return 0;
}

static int add_live(SnapshotMemo *m, long kind, PyObject *value, PyObject *expected) {
    if (m->n_live == m->cap_live) {
        Py_ssize_t cap = m->cap_live ? 2 * m->cap_live : 4;
        LiveEntry *grown = PyMem_Realloc(m->live, cap * sizeof(LiveEntry));
        if (grown == NULL) return -1;
        m->live = grown;
        m->cap_live = cap;
    }
    m->live[m->n_live++] = (LiveEntry){kind, value, expected, kind == E_TENSOR ? guard_tensor_spec(expected) : NULL};
    return 0;
}

/* 1: comparing value with expected may run user code (a user __eq__, a tensor read
   through Python). A tensor's fast spec answers first where it can: *fast 1 / 0. */
static int entry_runs_code(long kind, PyObject *value, PyObject *expected, int *fast) {
    *fast = -1;
    if (value == NULL) return 0;
    if (kind == E_EQ) return !(is_fixed_value(value) && is_fixed_value(expected));
    if (kind != E_TENSOR) return 0;
    const void *spec = guard_tensor_spec(expected);
    if (spec != NULL) *fast = guard_spec_matches(spec, value);
    return *fast < 0;
}

/* One entry whose comparison may run user code (the value held across it): 1 it holds
   and nothing the check read changed (n_tables: the tables read so far). */
static int entry_holds_guarded(SnapshotMemo *m, Reading *r, Py_ssize_t n_tables, long kind, PyObject *value,
                               PyObject *expected) {
    if (reading_prepare(r) < 0) return 0;
    Py_INCREF(value);
    int ok = snapshot_entry_holds(kind, value, expected);
    Py_DECREF(value);  /* another still holds it, or reading_holds fails */
    return ok && reading_holds(r, m, n_tables);
}

/* 1 when every fact of one table holds. collect: also fill the table's memo and the live
   entries (a full check); 0: only read (3.13's split instance dict, on each check). The
   table is held while read (user code may drop it). */
static int table_holds(SnapshotMemo *m, Reading *r, Py_ssize_t index, int collect) {
    PyObject *table = PyTuple_GET_ITEM(m->tables, index);
    PyObject *name = PyTuple_GET_ITEM(table, 0), *type = PyTuple_GET_ITEM(table, 1);
    PyObject *keys = PyTuple_GET_ITEM(table, 2), *entries = PyTuple_GET_ITEM(table, 3);
    PyObject *container = r->dict;
    if (name != Py_None) {  /* an exact str looked up in the instance dict */
        if (((PyDictObject *)r->dict)->ma_values == NULL && reading_prepare(r) < 0) return 0;
        if ((container = PyDict_GetItemWithError(r->dict, name)) == NULL) return 0;
    }
    if (Py_TYPE(container) != (PyTypeObject *)type) return 0;
    int is_tuple = type == (PyObject *)&PyTuple_Type;
    Py_ssize_t n_read = index + 1;  /* reading_holds: the tables read, this one included */
    if (collect) {
        TableMemo *tm = &m->memo[index];
        tm->container = name == Py_None ? NULL : container;
        tm->order_live = keys != Py_None && !is_tuple && !PyDict_CheckExact(container) && PyTuple_GET_SIZE(keys) > 1;
        if (!is_tuple) tm->tag = dict_write_tag(container);  /* before any entry is read */
    } else {
        n_read = 0;  /* this memo's tables are not this reading's */
    }
    Py_INCREF(container);
    int ok = 1;
    if (keys != Py_None) {
        ok = is_tuple ? PyTuple_GET_SIZE(container) == PyLong_AsSsize_t(keys) : keys_match(r, container, keys);
    }
    /* lookups in a dict that is not split may run a colliding key's __eq__ (r->ran) */
    if (ok && !is_tuple && ((PyDictObject *)container)->ma_values == NULL && reading_prepare(r) < 0) ok = 0;
    Py_ssize_t n = PyTuple_GET_SIZE(entries);
    for (Py_ssize_t i = 0; ok && i < n; i++) {
        PyObject *entry = PyTuple_GET_ITEM(entries, i);
        PyObject *key = PyTuple_GET_ITEM(entry, 0), *expected = PyTuple_GET_ITEM(entry, 2);
        long kind = PyLong_AsLong(PyTuple_GET_ITEM(entry, 1));
        PyObject *value;
        if (is_tuple) {
            Py_ssize_t at = PyLong_AsSsize_t(key);
            value = at < PyTuple_GET_SIZE(container) ? PyTuple_GET_ITEM(container, at) : NULL;
        } else if ((value = PyDict_GetItemWithError(container, key)) == NULL && PyErr_Occurred()) {
            ok = 0;
            break;
        }
        int fast;
        if (entry_runs_code(kind, value, expected, &fast)) {
            /* then the container is untouched (its tag; a split dict: its held values): it
               still holds value */
            ok = entry_holds_guarded(m, r, n_read, kind, value, expected);
        } else {
            ok = fast >= 0 ? fast : snapshot_entry_holds(kind, value, expected);
        }
        if (ok && collect && entry_is_live(kind, value, expected) && add_live(m, kind, value, expected) < 0) ok = 0;
    }
    Py_DECREF(container);  /* held by the dict, or reading_holds fails */
    return ok;
}

#if PY_VERSION_HEX >= 0x030C0000
/* 3.13, a split instance dict read by lookups: its own entries and which tables it holds (a
   tuple read again: not watched, another may have been allocated where a freed one was). */
static int split_dict_holds(SnapshotMemo *m, Reading *r) {
    for (Py_ssize_t i = 0; i < m->n_tables; i++) {
        PyObject *table = PyTuple_GET_ITEM(m->tables, i), *name = PyTuple_GET_ITEM(table, 0);
        if (name == Py_None || PyTuple_GET_ITEM(table, 1) == (PyObject *)&PyTuple_Type) {
            if (!table_holds(m, r, i, 0)) return 0;
        } else if (PyDict_GetItemWithError(r->dict, name) != m->memo[i].container) {  /* split: str keys only */
            return 0;
        }
    }
    return 1;
}
#endif

/* The dicts read by the last check that passed are untouched (see the memo above). */
static int memo_holds(SnapshotMemo *m, Reading *r) {
    PyObject *dict = r->dict;
    if (!m->valid || dict != m->dict) return 0;
#if PY_VERSION_HEX >= 0x030C0000
    if (m->tag != snapshot_dict_epoch) return 0;
    if (m->dict_live) {  /* 3.13: by index in the shared keys where it can (split_keys.c) */
        int by_index = split_read_holds(&m->split, dict);
        if (by_index == 0) return 0;
        if (by_index < 0) {
            if (!split_dict_holds(m, r)) return 0;
            if (m->split.keys != NULL && split_read_record(m, dict) < 0) m->split.keys = NULL;  /* the keys grew */
        }
    }
#else
    if (dict_version_tag(dict) != m->tag) return 0;
    for (Py_ssize_t i = 0; i < m->n_tables; i++) {
        PyObject *c = m->memo[i].container;
        if (c != NULL && PyDict_Check(c) && dict_version_tag(c) != m->memo[i].tag) return 0;
    }
#endif
    for (Py_ssize_t i = 0; i < m->n_tables; i++) {
        TableMemo *tm = &m->memo[i];
        if (tm->order_live && !keys_match(r, tm->container, PyTuple_GET_ITEM(PyTuple_GET_ITEM(m->tables, i), 2))) return 0;
    }
    return 1;
}

/* Every fact, read in full; on success the memo describes this reading. */
static int check_in_full(SnapshotMemo *m, Reading *r) {
    PyObject *dict = r->dict;
    m->valid = 0;
    m->n_live = 0;
    m->dict = dict;
#if PY_VERSION_HEX >= 0x030C0000
    uint64_t epoch = snapshot_dict_epoch;  /* read first: a write while the entries are read shows */
    int cacheable = watch(dict);
#if PY_VERSION_HEX >= 0x030D0000
    m->dict_live = ((PyDictObject *)dict)->ma_values != NULL;
#endif
#else
    m->tag = dict_version_tag(dict);
    int cacheable = 1;
#endif
    for (Py_ssize_t i = 0; i < m->n_tables; i++) {
        /* 3.13's split instance dict is read in full on each check: none of its entries is
           a live one (a value replaced there unnoticed may be freed: no pointer to it kept) */
        int reread = m->dict_live && PyTuple_GET_ITEM(PyTuple_GET_ITEM(m->tables, i), 0) == Py_None;
        if (!table_holds(m, r, i, !reread)) return 0;
        PyObject *c = m->memo[i].container;  /* its tag: read by table_holds, before its entries */
        if (c == NULL || !PyDict_Check(c)) continue;
#if PY_VERSION_HEX >= 0x030D0000
        cacheable = cacheable && ((PyDictObject *)c)->ma_values == NULL && watch(c);
#elif PY_VERSION_HEX >= 0x030C0000
        cacheable = cacheable && watch(c);
#endif
    }
    if (r->ran && !reading_holds(r, m, m->n_tables)) return 0;
#if PY_VERSION_HEX >= 0x030C0000
    m->tag = epoch;
#endif
    m->split.keys = NULL;
    if (m->dict_live && cacheable && split_read_record(m, dict) < 0) m->split.keys = NULL;
    m->valid = cacheable;
    return 1;
}

/* The live entries of a memo that holds. */
static int live_entries_hold(SnapshotMemo *m, Reading *r) {
    for (Py_ssize_t i = 0; i < m->n_live; i++) {
        LiveEntry *e = &m->live[i];
        int fast = e->spec != NULL ? guard_spec_matches(e->spec, e->value) : -1;
        if (fast == 0) return 0;
        if (fast == 1) continue;
        int ok = entry_runs_code(e->kind, e->value, e->expected, &fast)
                     ? entry_holds_guarded(m, r, m->n_tables, e->kind, e->value, e->expected)
                     : snapshot_entry_holds(e->kind, e->value, e->expected);
        if (!ok) return 0;
    }
    return 1;
}

int snapshot_check(SnapshotMemo *m) {
    PyObject *obj = PyWeakref_CheckRef(m->target) ? referent_of(m->target) : m->target;
    if (obj == NULL || Py_TYPE(obj) != (PyTypeObject *)m->cls) return 0;
    m->obj = obj;
    if (m->n_tables == 0) return 1;
    PyObject *dict = instance_dict(obj);
    if (dict == NULL) return 0;
    Reading r;
    reading_begin(&r, obj, dict);
    int ok;
    if (memo_holds(m, &r)) {
        ok = live_entries_hold(m, &r) && (!r.ran || reading_holds(&r, m, m->n_tables));
        m->valid = ok;
    } else {
        ok = check_in_full(m, &r);
    }
    if (!ok) {
        m->valid = 0;
        PyErr_Clear();  /* a user __eq__ raised: the fact does not hold */
    }
    reading_end(&r);
    return ok;
}

SnapshotMemo *snapshot_memo_new(PyObject *target, PyObject *cls, PyObject *tables) {
    SnapshotMemo *m = PyMem_Calloc(1, sizeof(SnapshotMemo));
    if (m == NULL) return (SnapshotMemo *)PyErr_NoMemory();
    m->target = target;
    m->cls = cls;
    m->tables = tables;
    m->n_tables = PyTuple_GET_SIZE(tables);
    if (m->n_tables && (m->memo = PyMem_Calloc(m->n_tables, sizeof(TableMemo))) == NULL) {
        PyMem_Free(m);
        return (SnapshotMemo *)PyErr_NoMemory();
    }
    return m;
}

void snapshot_memo_free(SnapshotMemo *m) {
    if (m == NULL) return;
    PyMem_Free(m->memo);
    PyMem_Free(m->live);
    PyMem_Free(m->split.slots);
    PyMem_Free(m);
}

/* A key whose hash and == run no user code. */
static int is_plain_key(PyObject *key) { return PyUnicode_CheckExact(key) || PyLong_CheckExact(key); }

/* Checked once, when the Guard is built, so that snapshot_check may read without tests. */
int snapshot_validate(PyObject *target, PyObject *cls, PyObject *tables) {
    if (!PyType_Check(cls) || !PyTuple_Check(tables)) goto bad;
    for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(tables); i++) {
        PyObject *table = PyTuple_GET_ITEM(tables, i);
        if (!PyTuple_Check(table) || PyTuple_GET_SIZE(table) != 4) goto bad;
        PyObject *name = PyTuple_GET_ITEM(table, 0), *type = PyTuple_GET_ITEM(table, 1);
        PyObject *keys = PyTuple_GET_ITEM(table, 2), *entries = PyTuple_GET_ITEM(table, 3);
        if (name != Py_None && !PyUnicode_CheckExact(name)) goto bad;
        if (!PyType_Check(type) || !PyTuple_Check(entries)) goto bad;
        int is_tuple = type == (PyObject *)&PyTuple_Type;
        /* exact types: listing or reading them runs no user code */
        if (!is_tuple && type != (PyObject *)&PyDict_Type && type != (PyObject *)&PyODict_Type) goto bad;
        if (keys != Py_None && !(is_tuple ? PyLong_CheckExact(keys) : PyTuple_Check(keys))) goto bad;
        for (Py_ssize_t j = 0; !is_tuple && keys != Py_None && j < PyTuple_GET_SIZE(keys); j++) {
            if (!is_plain_key(PyTuple_GET_ITEM(keys, j))) goto bad;
        }
        for (Py_ssize_t j = 0; j < PyTuple_GET_SIZE(entries); j++) {
            PyObject *entry = PyTuple_GET_ITEM(entries, j);
            if (!PyTuple_Check(entry) || PyTuple_GET_SIZE(entry) != 3) goto bad;
            long kind = PyLong_AsLong(PyTuple_GET_ITEM(entry, 1));
            PyObject *expected = PyTuple_GET_ITEM(entry, 2);
            if (kind < 0 || kind >= E_KINDS) goto bad;
            if (is_tuple && (!PyLong_CheckExact(PyTuple_GET_ITEM(entry, 0)) ||
                             PyLong_AsSsize_t(PyTuple_GET_ITEM(entry, 0)) < 0)) goto bad;
            if (!is_tuple && !is_plain_key(PyTuple_GET_ITEM(entry, 0))) goto bad;
            if (kind == E_ID_WEAK && !PyWeakref_CheckRef(expected)) goto bad;
            if (kind == E_TYPE && !PyType_Check(expected)) goto bad;
            if (kind == E_TENSOR && !PyObject_TypeCheck(expected, &Guard_Type)) goto bad;
        }
    }
    return 0;
bad:
    if (!PyErr_Occurred()) PyErr_Format(PyExc_ValueError, "Guard: malformed snapshot of %R (see csrc/snapshot.c)", target);
    return -1;
}
