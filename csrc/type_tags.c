/* Class version tags: type_version_tag() and the Guard's ("type_version", T, tag[, same])
 * check (csrc/guards.c calls type_tag_holds). A tag is CPython's: it changes on any write
 * to T or a class on its MRO, and a write undone since gives a new one too.
 */
#include "guard_types.h"

/* type_version_tag(T) -> int: T's version tag, assigned now if it has none (0: CPython
   has run out of tags, or T cannot have one; a type_version check cannot be made). */
/* Does T hold a version tag? (terra_dyn.h type_tag_now) */
static int type_tag_valid(PyTypeObject *t) { return type_tag_now(t) != 0; }

/* T's tag, assigned now if it has none; 0: none to be had, -1: error. */
static long long assign_type_tag(PyTypeObject *t) {
    if (!type_tag_valid(t)) {
#if PY_VERSION_HEX >= 0x030C0000
        (void)PyUnstable_Type_AssignVersionTag(t);
#else
        /* A method-cache lookup assigns the tag (CPython 3.11 has no public call for it). */
        static PyObject *name = NULL;
        if (name == NULL && (name = PyUnicode_InternFromString("__terra_dyn_tag__")) == NULL) return -1;
        (void)_PyType_Lookup(t, name);
#endif
    }
    return type_tag_valid(t) ? (long long)t->tp_version_tag : 0;
}

PyObject *guards_type_version_tag(PyObject *module, PyObject *type) {
    if (!PyType_Check(type)) {
        PyErr_SetString(PyExc_TypeError, "type_version_tag expects a type");
        return NULL;
    }
    long long tag = assign_type_tag((PyTypeObject *)type);
    return tag < 0 ? NULL : PyLong_FromLongLong(tag);
}

/* A type_version check whose tag moved: ask its `same` (the class and its MRO still hold
   what the translation read, compared one by one); when they do, the check keeps the new
   tag and is one compare again until the next write. 1 / 0 / -1. */
static int type_tag_moved(const Check *c, PyTypeObject *t) {
    if (c->c == NULL || c->c == Py_None) return 0;
    PyObject *r = PyObject_CallNoArgs(c->c);
    if (r == NULL) return -1;
    int same = PyObject_IsTrue(r);
    Py_DECREF(r);
    long long tag = same == 1 ? assign_type_tag(t) : 0;
    if (tag < 0) return -1;
    if (tag > 0) ((Check *)c)->length = (Py_ssize_t)tag;
    return same;
}

/* ("type_version", T, tag[, same]): 1 holds, 0 fails, -1 error. */
int type_tag_holds(const Check *c, PyTypeObject *t) {
    if (type_tag_valid(t) && t->tp_version_tag == (unsigned int)c->length) return 1;
    return type_tag_moved(c, t);
}
