/* terra_dyn._tensor_check.GraphEntry: what the frontend calls for a kernel backend's
 * compiled graph (fusion/compiled.py, FusedGraph.entry), so that a call repeating the last
 * signature reaches its Program without the compiled graph's Python __call__.
 *
 *   entry = GraphEntry(graph, failed)     entry(*args) == graph(*args); entry.graph is graph
 *   entry.set(check, run, grad_off)       then: check(*args) is True (and, with grad_off,
 *                                         grad mode is off) -> run(*args); else graph(*args)
 *   entry.set(None, None, False)          graph(*args) again
 *
 * check is the bound `check` of the last Program's exact guard, run its run function: the
 * Python fast path of FusedGraph.__call__ (`last`), which sets this slot whenever it
 * changes. A run raising an Exception (not a BaseException such as KeyboardInterrupt)
 * empties the slot and calls failed(*args) instead, which forgets the Program and takes
 * the signature path (an eager rerun, a note), as FusedGraph.__call__ did in Python.
 *
 * Measured (notes/s26e.md): the Python __call__ of CpuCompiledGraph and FusedGraph cost
 * 1.5-2.5 us of a softmax over 1024 floats (eager: ~5 us).
 */
#include "cxx_types.h"

#include <c10/core/GradMode.h>

namespace {

struct GraphEntry {
    PyObject_HEAD
    vectorcallfunc vectorcall;
    PyObject *graph, *failed;  /* owned */
    PyObject *check, *run;     /* owned, both or neither */
    bool grad_off;
};

PyObject *entry_call(PyObject *self_, PyObject *const *args, size_t nargsf, PyObject *kwnames) {
    auto *self = (GraphEntry *)self_;
    Py_ssize_t nargs = PyVectorcall_NARGS(nargsf);
    if (self->run != nullptr && kwnames == nullptr && !(self->grad_off && c10::GradMode::is_enabled())) {
        PyObject *run = Py_NewRef(self->run);  /* a call may reset the slot: hold what is called */
        PyObject *passed = PyObject_Vectorcall(self->check, args, nargs, nullptr);
        if (passed == nullptr) {
            Py_DECREF(run);
            return nullptr;
        }
        int ok = passed == Py_True;
        Py_DECREF(passed);
        if (ok) {
            PyObject *result = PyObject_Vectorcall(run, args, nargs, nullptr);
            Py_DECREF(run);
            if (result != nullptr || !PyErr_ExceptionMatches(PyExc_Exception)) return result;
            PyErr_Clear();
            return PyObject_Vectorcall(self->failed, args, nargs, nullptr);
        }
        Py_DECREF(run);
    }
    return PyObject_Vectorcall(self->graph, args, nargsf, kwnames);
}

PyObject *entry_set(PyObject *self_, PyObject *const *args, Py_ssize_t nargs) {
    auto *self = (GraphEntry *)self_;
    if (nargs != 3) {
        PyErr_SetString(PyExc_TypeError, "GraphEntry.set(check, run, grad_off)");
        return nullptr;
    }
    bool empty = args[0] == Py_None || args[1] == Py_None;
    int grad_off = PyObject_IsTrue(args[2]);
    if (grad_off < 0) return nullptr;
    PyObject *check = self->check, *run = self->run;
    self->check = empty ? nullptr : Py_NewRef(args[0]);
    self->run = empty ? nullptr : Py_NewRef(args[1]);
    self->grad_off = grad_off;
    Py_XDECREF(check);
    Py_XDECREF(run);
    Py_RETURN_NONE;
}

PyObject *entry_new(PyTypeObject *type, PyObject *args, PyObject *kwargs) {
    PyObject *graph, *failed;
    static const char *names[] = {"graph", "failed", nullptr};
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "OO:GraphEntry", (char **)names, &graph, &failed)) return nullptr;
    auto *self = (GraphEntry *)type->tp_alloc(type, 0);
    if (self == nullptr) return nullptr;
    self->vectorcall = entry_call;
    self->graph = Py_NewRef(graph);
    self->failed = Py_NewRef(failed);
    return (PyObject *)self;
}

using EntryRefs = OwnedRefs<GraphEntry, &GraphEntry::graph, &GraphEntry::failed, &GraphEntry::check, &GraphEntry::run>;

PyMethodDef entry_methods[] = {
    {"set", (PyCFunction)(void (*)(void))entry_set, METH_FASTCALL,
     "set(check, run, grad_off): the fast path (None, None, False: none)"},
    {nullptr},
};

PyMemberDef entry_members[] = {
    {"graph", T_OBJECT, offsetof(GraphEntry, graph), READONLY, "the compiled graph (the slow path)"},
    {nullptr},
};

PyTypeObject GraphEntry_Type = {PyVarObject_HEAD_INIT(nullptr, 0)};

}  // namespace

/* Called by PyInit__tensor_check: adds GraphEntry to the module. */
int graph_entry_register(PyObject *module) {
    return add_vectorcall_type(module, &GraphEntry_Type,
                               {"terra_dyn._tensor_check.GraphEntry", "GraphEntry(graph, failed)(*args)",
                                sizeof(GraphEntry), offsetof(GraphEntry, vectorcall), entry_new, EntryRefs::traverse,
                                EntryRefs::clear, gc_dealloc, 0, entry_methods, entry_members});
}
