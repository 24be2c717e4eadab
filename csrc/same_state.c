/* same_state(a, b, identity_types) -> bool: the deep-copy state guard, in C.
 *
 * A translation that ran `copy.deepcopy(obj)` (t5's and whisper's DynamicCache copy their
 * config) kept a copy of obj's whole state; each call checks obj against that copy
 * (translate/deep_copies.py same_state is the reading this mirrors, and the one used
 * without the C core):
 *
 *   type(a) is not type(b)                         -> False
 *   dict                                           -> the same keys in order, values alike
 *   list, tuple                                    -> the same length, items alike
 *   of a subclass of one of identity_types (classes, functions, builtins, torch.dtype, Enum
 *   members; plain classes, read through type(a)'s MRO)  -> a is b
 *   int, float, bool, complex, str, bytes, None    -> a == b
 *   anything else                                  -> their instance dicts alike
 *
 *   same_state(config, copy_made_at_translation, (type, FunctionType, ...)) -> True
 * transformers' T5Config (37 entries): 33 us in Python, 0.8 us here.
 */
#include "terra_dyn.h"

static int is_atomic(PyObject *a) {
    return a == Py_None || PyLong_Check(a) || PyFloat_Check(a) || PyComplex_Check(a) || PyUnicode_Check(a) ||
           PyBytes_Check(a);  /* bool is an int */
}

/* Exact builtin atomic types: no instance of them is one of identity_types. */
static int is_exact_atomic(PyTypeObject *t) {
    return t == &PyLong_Type || t == &PyFloat_Type || t == &PyBool_Type || t == &PyUnicode_Type ||
           t == Py_TYPE(Py_None) || t == &PyBytes_Type || t == &PyComplex_Type;
}

/* type(a) is a subclass of one of identity_types: plain classes, read by their MRO (isinstance
   would ask each class's __instancecheck__, a bound-method call per class). */
static int is_identity_type(PyTypeObject *t, PyObject *identity_types) {
    for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(identity_types); i++) {
        PyObject *cls = PyTuple_GET_ITEM(identity_types, i);
        if (PyType_Check(cls) && PyType_IsSubtype(t, (PyTypeObject *)cls)) return 1;
    }
    return 0;
}

/* 1 alike, 0 not, -1 error (a user __eq__ raised, no __dict__, too deep). */
static int alike(PyObject *a, PyObject *b, PyObject *identity_types) {
    PyTypeObject *kind = Py_TYPE(a);
    if (kind != Py_TYPE(b)) return 0;
    if (Py_EnterRecursiveCall(" in terra_dyn same_state")) return -1;
    int ok = 1;
    if (kind == &PyDict_Type) {
        ok = PyDict_GET_SIZE(a) == PyDict_GET_SIZE(b);
        Py_ssize_t pa = 0, pb = 0;
        PyObject *ka, *va, *kb, *vb;
        while (ok == 1 && PyDict_Next(a, &pa, &ka, &va) && PyDict_Next(b, &pb, &kb, &vb)) {
            Py_INCREF(va), Py_INCREF(vb), Py_INCREF(ka), Py_INCREF(kb);  /* a user __eq__ may mutate */
            ok = ka == kb ? 1 : PyObject_RichCompareBool(ka, kb, Py_EQ);
            if (ok == 1) ok = alike(va, vb, identity_types);
            Py_DECREF(va), Py_DECREF(vb), Py_DECREF(ka), Py_DECREF(kb);
            if (ok == 1 && PyDict_GET_SIZE(a) != PyDict_GET_SIZE(b)) ok = 0;
        }
    } else if (kind == &PyList_Type || kind == &PyTuple_Type) {
        ok = Py_SIZE(a) == Py_SIZE(b);
        for (Py_ssize_t i = 0; ok == 1 && i < Py_SIZE(a) && i < Py_SIZE(b); i++) {
            PyObject *x = PySequence_Fast_GET_ITEM(a, i), *y = PySequence_Fast_GET_ITEM(b, i);
            Py_INCREF(x), Py_INCREF(y);
            ok = alike(x, y, identity_types);
            Py_DECREF(x), Py_DECREF(y);
            ok = ok == 1 && Py_SIZE(a) != Py_SIZE(b) ? 0 : ok;
        }
    } else if (is_exact_atomic(kind)) {  /* first: isinstance against the classes is slower */
        ok = PyObject_RichCompareBool(a, b, Py_EQ);
    } else if ((ok = is_identity_type(kind, identity_types)) == 1) {
        ok = a == b;
    } else if (ok == 0 && is_atomic(a)) {
        ok = PyObject_RichCompareBool(a, b, Py_EQ);
    } else if (ok == 0) {
        static PyObject *dict_name = NULL;
        if (dict_name == NULL && (dict_name = PyUnicode_InternFromString("__dict__")) == NULL) {
            ok = -1;
        } else {
            /* object.__getattribute__: not a config's own __getattribute__ */
            PyObject *da = PyObject_GenericGetAttr(a, dict_name);
            PyObject *db = da ? PyObject_GenericGetAttr(b, dict_name) : NULL;
            ok = db ? alike(da, db, identity_types) : -1;
            Py_XDECREF(da);
            Py_XDECREF(db);
        }
    }
    Py_LeaveRecursiveCall();
    return ok;
}

PyObject *same_state(PyObject *module, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 3 || !PyTuple_Check(args[2])) {
        PyErr_SetString(PyExc_TypeError, "same_state(a, b, identity_types: tuple)");
        return NULL;
    }
    int ok = alike(args[0], args[1], args[2]);
    if (ok < 0) {
        if (!PyErr_ExceptionMatches(PyExc_Exception)) return NULL;  /* a KeyboardInterrupt is the user's */
        PyErr_Clear();
        ok = 0;
    }
    return PyBool_FromLong(ok);
}
