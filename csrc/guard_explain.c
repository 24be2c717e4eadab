/* Guard.explain(*args): the first failing check, described for the recompile report.
 *
 *   Guard([("type", 0, int), ("eq", 1, "mean")]).explain(3, "sum")
 *     -> "check 1 ('eq', 1, 'mean') failed: args[1] is 'sum' (type str)"
 *
 * Runs the same checks as Guard.check (guards.c), then says which one failed without
 * running user code: a user object in a spec shows as <TypeName>, an argument's value only
 * when it is a builtin scalar. Only on a miss, never on the hot path.
 */
#include "guard_types.h"

/* repr() of a check's spec that runs no user code: a user object in it (an identity check's
   module subclass, whose repr reads attributes through its own __getattribute__: test_descr's
   test_module_subclasses) shows as <TypeName>. */
static PyObject *spec_repr(PyObject *x) {
    PyTypeObject *t = Py_TYPE(x);
    if (PyTuple_CheckExact(x)) {
        PyObject *parts = PyList_New(0), *sep = NULL, *joined = NULL, *text = NULL;
        if (parts == NULL) return NULL;
        for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(x); i++) {
            PyObject *part = spec_repr(PyTuple_GET_ITEM(x, i));
            if (part == NULL || PyList_Append(parts, part) < 0) {
                Py_XDECREF(part);
                Py_DECREF(parts);
                return NULL;
            }
            Py_DECREF(part);
        }
        sep = PyUnicode_FromString(", ");
        joined = sep ? PyUnicode_Join(sep, parts) : NULL;
        if (joined != NULL) {
            text = PyUnicode_FromFormat(PyTuple_GET_SIZE(x) == 1 ? "(%U,)" : "(%U)", joined);
        }
        Py_XDECREF(sep);
        Py_XDECREF(joined);
        Py_DECREF(parts);
        return text;
    }
    /* builtin scalars, exact classes, and objects of C types that hold no other object */
    if (x == Py_None || t == &PyLong_Type || t == &PyFloat_Type || t == &PyUnicode_Type ||
        t == &PyBool_Type || t == &PyType_Type ||
        (!(t->tp_flags & Py_TPFLAGS_HEAPTYPE) && !PyWeakref_Check(x) && !PyList_Check(x) &&
         !PyDict_Check(x) && !PyAnySet_Check(x) && !PyTuple_Check(x) && !PyType_Check(x))) {
        return PyObject_Repr(x);
    }
    return PyUnicode_FromFormat("<%s>", t->tp_name);
}

/* A readable description of the first failing check, or None if all pass. */
PyObject *guard_explain(Guard *self, PyObject *const *args, Py_ssize_t nargs) {
    for (Py_ssize_t i = 0; i < self->n; i++) {
        const Check *c = &self->checks[i];
        int r = guard_check_one(c, args, nargs);
        if (r < 0) return NULL;
        if (r) continue;
        if (c->kind == K_PATHS) {  /* the failing fact, as Python text (guard_paths.py) */
            PyObject *method = PyObject_GetAttrString(c->b, "explain");
            PyObject *why = method ? PyObject_Vectorcall(method, args, nargs, NULL) : NULL;
            Py_XDECREF(method);
            if (why != NULL && PyUnicode_Check(why)) {
                PyObject *text = PyUnicode_FromFormat("check %zd (paths) failed: %U", i, why);
                Py_DECREF(why);
                return text;
            }
            Py_XDECREF(why);
            PyErr_Clear();
        }
        PyObject *spec = spec_repr(PyTuple_GET_ITEM(self->spec, i)), *text;
        if (spec == NULL) return NULL;
        if (NO_SLOT(c->kind)) {
            text = PyUnicode_FromFormat("check %zd %U failed", i, spec);
        } else if (c->index >= nargs) {
            text = PyUnicode_FromFormat("check %zd %U failed: only %zd arguments", i, spec, nargs);
        } else if (c->kind == K_TENSOR) {
            /* The Python path names the field; it finds none when only the fast path saw the
               difference (an active TorchFunctionMode answering attribute reads). */
            const char *field = guard_tensor_mismatch(c, args[c->index]);
            text = PyUnicode_FromFormat("check %zd %U failed: args[%zd] differs in %s", i, spec,
                                        c->index, field ? field : "metadata");
        } else {
            /* the value only for plain builtin types: a user __repr__ must not run here */
            PyObject *x = args[c->index];
            PyTypeObject *t = Py_TYPE(x);
            if (t != &PyLong_Type && t != &PyFloat_Type && t != &PyUnicode_Type && t != &PyBool_Type &&
                x != Py_None) {
                text = PyUnicode_FromFormat("check %zd %U failed: args[%zd] has type %s", i, spec,
                                            c->index, t->tp_name);
            } else {
                text = PyUnicode_FromFormat("check %zd %U failed: args[%zd] is %.200R (type %s)", i,
                                            spec, c->index, x, t->tp_name);
            }
        }
        Py_DECREF(spec);
        return text;
    }
    int ok = self->fallback ? guard_check((PyObject *)self, args, nargs) : 1;
    if (ok < 0) return NULL;
    if (!ok) {
        return PyUnicode_FromFormat("fallback %R returned false", self->fallback);
    }
    Py_RETURN_NONE;
}
