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
 * class, whose version tag is guarded too).
 */
#include "terra_dyn.h"

enum { E_ID, E_ID_WEAK, E_TYPE, E_EQ, E_ABSENT, E_TENSOR, E_KINDS };

/* The referent of a weakref.ref, borrowed, or NULL once dead (never None: an entry may hold
   None, as a Linear without bias does). */
static PyObject *referent_of(PyObject *ref) {
    PyObject *obj = weak_referent(ref);
    return obj == Py_None ? NULL : obj;
}

/* The instance dict of obj, borrowed; NULL when it has none. */
static PyObject *instance_dict(PyObject *obj) {
    PyObject **dictptr = _PyObject_GetDictPtr(obj);
    return dictptr == NULL ? NULL : *dictptr;
}

/* 1: the keys of `container` are `expected` (a tuple), in iteration order. */
static int keys_match(PyObject *container, PyObject *expected) {
    Py_ssize_t n = PyTuple_GET_SIZE(expected);
    if (PyDict_GET_SIZE(container) != n) return 0;
    if (n == 0) return 1;
    if (PyDict_CheckExact(container)) {
        Py_ssize_t pos = 0, i = 0;
        PyObject *key, *value;
        while (PyDict_Next(container, &pos, &key, &value)) {
            PyObject *want = PyTuple_GET_ITEM(expected, i++);
            if (key != want && PyObject_RichCompareBool(key, want, Py_EQ) != 1) return 0;
        }
        return 1;
    }
    /* an OrderedDict: its own order (move_to_end changes it, not the dict's) */
    PyObject *list = PySequence_List(container);
    if (list == NULL) return 0;
    int ok = PyList_GET_SIZE(list) == n;
    for (Py_ssize_t i = 0; ok && i < n; i++) {
        PyObject *key = PyList_GET_ITEM(list, i), *want = PyTuple_GET_ITEM(expected, i);
        ok = key == want || PyObject_RichCompareBool(key, want, Py_EQ) == 1;
    }
    Py_DECREF(list);
    return ok;
}

/* 1 when one entry holds. `value` is the container's item for the entry's key (borrowed),
   NULL when it has none. */
static int entry_holds(long kind, PyObject *value, PyObject *expected) {
    if (kind == E_ABSENT) return value == NULL;
    if (value == NULL) return 0;
    switch (kind) {
    case E_ID: return value == expected;
    case E_ID_WEAK: return value == referent_of(expected);
    case E_TYPE: return Py_TYPE(value) == (PyTypeObject *)expected;
    case E_EQ: return PyObject_RichCompareBool(value, expected, Py_EQ) == 1;
    case E_TENSOR: return guard_check(expected, &value, 1) == 1;
    }
    return 0;
}

static int table_holds(PyObject *dict, PyObject *table) {
    PyObject *name = PyTuple_GET_ITEM(table, 0), *type = PyTuple_GET_ITEM(table, 1);
    PyObject *keys = PyTuple_GET_ITEM(table, 2), *entries = PyTuple_GET_ITEM(table, 3);
    PyObject *container = dict;
    if (name != Py_None && (container = PyDict_GetItemWithError(dict, name)) == NULL) return 0;
    if (Py_TYPE(container) != (PyTypeObject *)type) return 0;
    int is_tuple = type == (PyObject *)&PyTuple_Type;
    if (keys != Py_None) {
        if (is_tuple ? PyTuple_GET_SIZE(container) != PyLong_AsSsize_t(keys) : !keys_match(container, keys)) return 0;
    }
    Py_ssize_t n = PyTuple_GET_SIZE(entries);
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *entry = PyTuple_GET_ITEM(entries, i);
        PyObject *key = PyTuple_GET_ITEM(entry, 0);
        PyObject *value;
        if (is_tuple) {
            Py_ssize_t index = PyLong_AsSsize_t(key);
            value = index < PyTuple_GET_SIZE(container) ? PyTuple_GET_ITEM(container, index) : NULL;
        } else if ((value = PyDict_GetItemWithError(container, key)) == NULL && PyErr_Occurred()) {
            return 0;
        }
        if (!entry_holds(PyLong_AsLong(PyTuple_GET_ITEM(entry, 1)), value, PyTuple_GET_ITEM(entry, 2))) return 0;
    }
    return 1;
}

int snapshot_check(PyObject *target, PyObject *cls, PyObject *tables) {
    PyObject *obj = PyWeakref_CheckRef(target) ? referent_of(target) : target;
    if (obj == NULL || Py_TYPE(obj) != (PyTypeObject *)cls) return 0;
    Py_ssize_t n = PyTuple_GET_SIZE(tables);
    if (n == 0) return 1;
    PyObject *dict = instance_dict(obj);
    if (dict == NULL) return 0;
    for (Py_ssize_t i = 0; i < n; i++) {
        if (!table_holds(dict, PyTuple_GET_ITEM(tables, i))) {
            PyErr_Clear();  /* a user __eq__ raised: the fact does not hold */
            return 0;
        }
    }
    return 1;
}

/* Checked once, when the Guard is built, so that snapshot_check may read without tests. */
int snapshot_validate(PyObject *target, PyObject *cls, PyObject *tables) {
    if (!PyType_Check(cls) || !PyTuple_Check(tables)) goto bad;
    for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(tables); i++) {
        PyObject *table = PyTuple_GET_ITEM(tables, i);
        if (!PyTuple_Check(table) || PyTuple_GET_SIZE(table) != 4) goto bad;
        PyObject *name = PyTuple_GET_ITEM(table, 0), *type = PyTuple_GET_ITEM(table, 1);
        PyObject *keys = PyTuple_GET_ITEM(table, 2), *entries = PyTuple_GET_ITEM(table, 3);
        if (name != Py_None && !PyUnicode_Check(name)) goto bad;
        if (!PyType_Check(type) || !PyTuple_Check(entries)) goto bad;
        int is_tuple = type == (PyObject *)&PyTuple_Type;
        if (!is_tuple && !PyType_IsSubtype((PyTypeObject *)type, &PyDict_Type)) goto bad;
        if (keys != Py_None && !(is_tuple ? PyLong_CheckExact(keys) : PyTuple_Check(keys))) goto bad;
        for (Py_ssize_t j = 0; j < PyTuple_GET_SIZE(entries); j++) {
            PyObject *entry = PyTuple_GET_ITEM(entries, j);
            if (!PyTuple_Check(entry) || PyTuple_GET_SIZE(entry) != 3) goto bad;
            long kind = PyLong_AsLong(PyTuple_GET_ITEM(entry, 1));
            PyObject *expected = PyTuple_GET_ITEM(entry, 2);
            if (kind < 0 || kind >= E_KINDS) goto bad;
            if (is_tuple && (!PyLong_CheckExact(PyTuple_GET_ITEM(entry, 0)) ||
                             PyLong_AsSsize_t(PyTuple_GET_ITEM(entry, 0)) < 0)) goto bad;
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
