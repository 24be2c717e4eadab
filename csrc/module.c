/* The module terra_dyn._C: its functions and types (docs/CONTRACTS.md section 1).
 *
 *   prev = set_eval_frame(callback)   # per thread; None turns the hook off
 *   ...                               # calls on this thread reach callback(frame)
 *   set_eval_frame(prev)
 */
#include "terra_dyn.h"

PyObject *terra_SKIP = NULL;
PyObject *terra_ABSENT = NULL;
PyObject *terra_OFF = NULL;

/* SKIP and OFF are the two instances of a tiny type, so that they print as themselves. */
static PyObject *skip_repr(PyObject *self) {
    return PyUnicode_FromString(self == terra_OFF ? "terra_dyn._C.OFF" : "terra_dyn._C.SKIP");
}

static PyTypeObject SkipMarker_Type = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "terra_dyn._C.SkipMarker",
    .tp_doc = "The type of SKIP ('never call me again for this code') and OFF ('run this frame "
              "and all it calls with the hook off'), a callback's answers.",
    .tp_basicsize = sizeof(PyObject),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_repr = skip_repr,
};

static PyObject *set_eval_frame(PyObject *module, PyObject *callback) {
    if (callback != Py_None && !PyCallable_Check(callback)) {
        PyErr_Format(PyExc_TypeError, "set_eval_frame expects a callable or None, got %.100s",
                     Py_TYPE(callback)->tp_name);
        return NULL;
    }
    PyObject *previous = eval_frame_swap_callback(callback == Py_None ? NULL : Py_NewRef(callback));
    return previous ? previous : Py_NewRef(Py_None);
}

static int as_code(PyObject *obj) {
    if (PyCode_Check(obj)) return 1;
    PyErr_Format(PyExc_TypeError, "expected a code object, got %.100s", Py_TYPE(obj)->tp_name);
    return 0;
}

static PyObject *skip_code(PyObject *module, PyObject *code) {
    if (!as_code(code)) return NULL;
    if (cache_mark_always((PyCodeObject *)code) < 0) return NULL;
    Py_RETURN_NONE;
}

static PyObject *clear_code(PyObject *module, PyObject *code) {
    if (!as_code(code)) return NULL;
    cache_clear_code((PyCodeObject *)code);
    Py_RETURN_NONE;
}

static PyObject *reset(PyObject *module, PyObject *unused) {
    cache_reset_all();
    Py_RETURN_NONE;
}

static PyObject *cache_entries(PyObject *module, PyObject *code) {
    if (!as_code(code)) return NULL;
    PyObject *entries = cache_entries_list(cache_lookup((PyCodeObject *)code));
    return entries ? PyList_GetSlice(entries, 0, PyList_GET_SIZE(entries)) : PyList_New(0);
}

static PyObject *is_skipped(PyObject *module, PyObject *code) {
    if (!as_code(code)) return NULL;
    return PyBool_FromLong(cache_is_skipped(cache_lookup((PyCodeObject *)code)));
}

static PyObject *current_callback(PyObject *module, PyObject *unused) {
    PyObject *cb = eval_frame_current_callback();
    return Py_NewRef(cb ? cb : Py_None);
}

/* A resume code reads its original's cell variables as free variables (they travel in its
   closure), and LOAD_DEREF of an empty free variable raises NameError; the original, reading
   its own cell, raised UnboundLocalError (test_funcattrs's test_set_cell). */
static PyObject *load_cell(PyObject *module, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 2 || !PyCell_Check(args[0]) || !PyUnicode_Check(args[1])) {
        PyErr_SetString(PyExc_TypeError, "load_cell(cell, name)");
        return NULL;
    }
    PyObject *value = PyCell_GET(args[0]);
    if (value == NULL) {
        PyErr_Format(PyExc_UnboundLocalError,
                     "cannot access local variable '%U' where it is not associated with a value", args[1]);
        return NULL;
    }
    return Py_NewRef(value);
}

/* referents(refs) -> tuple: each weakref's object (None once dead). A rewritten frame reads
   the parameters its graph takes, pinned weakly by the guard, with one call (a 12-layer BERT
   passes about 200) instead of one Python call of each weakref (codegen/graph_call.py). */
static PyObject *referents(PyObject *module, PyObject *refs) {
    if (!PyTuple_Check(refs)) {
        PyErr_SetString(PyExc_TypeError, "referents(refs: tuple of weakref.ref)");
        return NULL;
    }
    Py_ssize_t n = PyTuple_GET_SIZE(refs);
    PyObject *out = PyTuple_New(n);
    for (Py_ssize_t i = 0; out != NULL && i < n; i++) {
        PyObject *ref = PyTuple_GET_ITEM(refs, i);
        if (!PyWeakref_CheckRef(ref)) {
            Py_CLEAR(out);
            PyErr_SetString(PyExc_TypeError, "referents(refs: tuple of weakref.ref)");
            break;
        }
        PyTuple_SET_ITEM(out, i, Py_NewRef(weak_referent(ref)));
    }
    return out;
}

/* set_closure_guard(code, guard): hits of the rewritten `code` run only when `guard` passes on
   the frame's closure values, in co_freevars order (eval_frame.c); else the original code. */
static PyObject *set_closure_guard(PyObject *module, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 2 || !PyCode_Check(args[0]) || !PyObject_TypeCheck(args[1], &Guard_Type) ||
        ((PyCodeObject *)args[0])->co_nfreevars == 0) {
        PyErr_SetString(PyExc_TypeError, "set_closure_guard(code with free variables, guard: Guard)");
        return NULL;
    }
    if (cache_set_closure((PyCodeObject *)args[0], args[1]) < 0) return NULL;
    Py_RETURN_NONE;
}

static PyMethodDef module_functions[] = {
    {"moved_args", (PyCFunction)(void (*)(void))moves_moved_args, METH_FASTCALL,
     "moved_args(*values) -> tuple; clears the calling frame's plain local slots (a break hands them on)"},
    {"call_moved", (PyCFunction)(void (*)(void))moves_call_moved, METH_FASTCALL,
     "call_moved(fn, args: tuple) -> fn(*args), the items moved out of the tuple: fn's frame owns them alone"},
    {"moved_continue", (PyCFunction)(void (*)(void))moves_moved_continue, METH_FASTCALL,
     "moved_continue(fn, *values) -> Continue(fn, moved_args(*values))"},
    {"caller_locals", moves_caller_locals, METH_NOARGS,
     "caller_locals() -> locals() of the calling frame, not kept on the frame (3.11/3.12 keep it)"},
    {"set_direct_call", (PyCFunction)(void (*)(void))direct_call_set, METH_FASTCALL,
     "set_direct_call(code, (graph, slots, refs, k, allowed)): hits of code call the graph from C"},
    {"set_closure_guard", (PyCFunction)(void (*)(void))set_closure_guard, METH_FASTCALL,
     "set_closure_guard(code, guard): hits of code check guard on the frame's closure values first"},
    {"referents", referents, METH_O, "referents(refs) -> tuple of each weakref's object (None once dead)"},
    {"load_cell", (PyCFunction)(void (*)(void))load_cell, METH_FASTCALL,
     "load_cell(cell, name) -> contents; UnboundLocalError when empty, as the cell's own frame raises"},
    {"same_state", (PyCFunction)(void (*)(void))same_state, METH_FASTCALL,
     "same_state(a, b, identity_types) -> bool: a's whole state is b's (the deep-copy guard)"},
    {"type_version_tag", guards_type_version_tag, METH_O,
     "type_version_tag(T) -> int: T's version tag (0: none can be had); see Guard's type_version"},
    {"current_callback", current_callback, METH_NOARGS,
     "current_callback() -> this thread's callback, or the one being asked now (None: hook off)"},
    {"entry_calls", callables_entry_calls, METH_NOARGS,
     "entry_calls() -> int: calls of OptimizedCallables made from outside their callback so far"},
    {"set_eval_frame", set_eval_frame, METH_O, "set_eval_frame(callback) -> previous; None turns the hook off (this thread)"},
    {"skip_code", skip_code, METH_O, "skip_code(code): always run this code object unmodified (survives reset)"},
    {"clear_code", clear_code, METH_O, "clear_code(code): drop this code object's cache and skip mark"},
    {"reset", reset, METH_NOARGS, "reset(): drop every code object's cache and SKIP marks"},
    {"cache_entries", cache_entries, METH_O, "cache_entries(code) -> list of CacheEntry"},
    {"is_skipped", is_skipped, METH_O, "is_skipped(code) -> bool"},
    {"set_fast_guards", guards_set_fast, METH_O,
     "set_fast_guards(flag) -> previous: False makes Guards built afterwards use the Python-API path"},
    {"fast_guards_status", guards_fast_status, METH_NOARGS,
     "fast_guards_status() -> str: 'on', or why tensor / call_id checks use the Python-API path"},
    {NULL},
};

static struct PyModuleDef module_def = {
    PyModuleDef_HEAD_INIT, "terra_dyn._C",
    "terra_dyn's C core: the frame-evaluation hook, per-code cache and guards.", -1, module_functions,
};

PyMODINIT_FUNC PyInit__C(void) {
    if (cache_init() < 0 || guards_init() < 0) return NULL;
    PyObject *m = PyModule_Create(&module_def);
    if (m == NULL) return NULL;
    if (PyType_Ready(&SkipMarker_Type) < 0) goto fail;
    terra_SKIP = PyObject_New(PyObject, &SkipMarker_Type);
    if (terra_SKIP == NULL || PyModule_AddObjectRef(m, "SKIP", terra_SKIP) < 0) goto fail;
    terra_OFF = PyObject_New(PyObject, &SkipMarker_Type);
    if (terra_OFF == NULL || PyModule_AddObjectRef(m, "OFF", terra_OFF) < 0) goto fail;
    terra_ABSENT = PyObject_CallNoArgs((PyObject *)&PyBaseObject_Type);
    if (terra_ABSENT == NULL || PyModule_AddObjectRef(m, "ABSENT", terra_ABSENT) < 0) goto fail;
    PyTypeObject *types[] = {&Guard_Type, &CacheEntry_Type, &OptimizedCallable_Type, &DisabledCallable_Type,
                              &Continue_Type};
    for (size_t i = 0; i < sizeof(types) / sizeof(types[0]); i++) {
        if (PyModule_AddType(m, types[i]) < 0) goto fail;
    }
    return m;
fail:
    Py_DECREF(m);
    return NULL;
}
