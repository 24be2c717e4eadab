/* The setup every vectorcall type of terra_dyn._tensor_check shares (LayoutCheck,
 * KernelCall, GraphEntry): one function instead of a dozen tp_* assignments per type, and
 * the GC slots of a type whose references are a few PyObject * members.
 *
 *   static PyTypeObject T = {PyVarObject_HEAD_INIT(nullptr, 0)};
 *   using Refs = OwnedRefs<S, &S::a, &S::b>;      // S owns a and b (either may be null)
 *   add_vectorcall_type(module, &T, {"terra_dyn._tensor_check.T", "T(...)(*args)", sizeof(S),
 *                                    offsetof(S, vectorcall), t_new, Refs::traverse, Refs::clear});
 */
#ifndef TERRA_DYN_CXX_TYPES_H
#define TERRA_DYN_CXX_TYPES_H

#include <Python.h>
#include <structmember.h>

#include <cstring>

/* tp_traverse and tp_clear of a type T owning the references `Members` (nullable). */
template <typename T, PyObject *T::*... Members>
struct OwnedRefs {
    static int traverse(PyObject *self, visitproc visit, void *arg) {
        for (PyObject *ref : {((T *)self)->*Members...}) Py_VISIT(ref);
        return 0;
    }
    static int clear(PyObject *self) {
        (clear_ref(((T *)self)->*Members), ...);
        return 0;
    }

  private:
    static void clear_ref(PyObject *&ref) { Py_CLEAR(ref); }
};

/* tp_dealloc of a GC type whose tp_clear drops everything it owns. */
inline void gc_dealloc(PyObject *self) {
    PyObject_GC_UnTrack(self);
    Py_TYPE(self)->tp_clear(self);
    Py_TYPE(self)->tp_free(self);
}

struct VectorcallTypeSpec {
    const char *name;  /* "terra_dyn._tensor_check.<Name>": the module attribute is <Name> */
    const char *doc;
    Py_ssize_t basicsize, vectorcall_offset;
    newfunc new_;
    traverseproc traverse;
    inquiry clear;
    destructor dealloc = gc_dealloc;
    Py_ssize_t dictoffset = 0;      /* a __dict__ (KernelCall: __name__ for FX) */
    PyMethodDef *methods = nullptr;
    PyMemberDef *members = nullptr;
};

/* Fills `type` (GC, vectorcall) from `spec`, readies it and adds it to `module`; -1 on error. */
inline int add_vectorcall_type(PyObject *module, PyTypeObject *type, const VectorcallTypeSpec &spec) {
    type->tp_name = spec.name;
    type->tp_doc = spec.doc;
    type->tp_basicsize = spec.basicsize;
    type->tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | Py_TPFLAGS_HAVE_VECTORCALL;
    type->tp_new = spec.new_;
    type->tp_call = PyVectorcall_Call;
    type->tp_vectorcall_offset = spec.vectorcall_offset;
    type->tp_traverse = spec.traverse;
    type->tp_clear = spec.clear;
    type->tp_dealloc = spec.dealloc;
    type->tp_dictoffset = spec.dictoffset;
    type->tp_methods = spec.methods;
    type->tp_members = spec.members;
    if (PyType_Ready(type) < 0) return -1;
    const char *dot = std::strrchr(spec.name, '.');
    return PyModule_AddObjectRef(module, dot ? dot + 1 : spec.name, (PyObject *)type);
}

#endif
