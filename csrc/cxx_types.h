/* The setup every vectorcall type of terra_dyn._tensor_check shares (LayoutCheck,
 * KernelCall, GraphEntry): one function instead of a dozen tp_* assignments per type.
 *
 *   static PyTypeObject T = {PyVarObject_HEAD_INIT(nullptr, 0)};
 *   add_vectorcall_type(module, &T, {"terra_dyn._tensor_check.T", "T(...)(*args)", sizeof(S),
 *                                    offsetof(S, vectorcall), t_new, t_traverse, t_clear, t_dealloc});
 */
#ifndef TERRA_DYN_CXX_TYPES_H
#define TERRA_DYN_CXX_TYPES_H

#include <Python.h>
#include <structmember.h>

#include <cstring>

struct VectorcallTypeSpec {
    const char *name;  /* "terra_dyn._tensor_check.<Name>": the module attribute is <Name> */
    const char *doc;
    Py_ssize_t basicsize, vectorcall_offset;
    newfunc new_;
    traverseproc traverse;
    inquiry clear;
    destructor dealloc;
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
