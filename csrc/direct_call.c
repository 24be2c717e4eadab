/* The direct call: a cache entry whose rewritten code only calls its graph and returns one
 * of the graph's outputs is run here, without the rewritten Python frame.
 *
 *   rewritten code (codegen/graph_call.py)     direct spec (set_direct_call(code, spec))
 *     ___graph_out = graph(x, y, *pinned)        spec = (graph, (0, 1), refs or None, k,
 *     return ___graph_out[k]                             allowed)
 *     except: if allowed(exc): run the original
 *
 * The spec lives on the rewritten code (cache.c's CodeExtra) and is copied into each
 * CacheEntry made for that code. On a hit the hook calls graph(*slots, *referents(refs))
 * with the frame's argument slots (borrowed: the frame, not started, still holds them, as
 * the plain call's frame would), and returns item k of the result. A graph that raises is
 * handled as the rewritten code's handler does: if allowed(exc) says the segment may run
 * again, the original frame itself runs natively (*rerun = 1); else the exception
 * propagates with the user's function in its traceback. A profiler (sys.setprofile) sees
 * the rewritten frame instead: the hook takes the Python path then (eval_frame.c).
 */
#include "frame_api.h"

/* spec: (callable, tuple of slot indexes, tuple of weakref.ref or None, int, callable) */
static int spec_valid(PyObject *spec) {
    if (!PyTuple_CheckExact(spec) || PyTuple_GET_SIZE(spec) != 5) return 0;
    PyObject *slots = PyTuple_GET_ITEM(spec, 1), *refs = PyTuple_GET_ITEM(spec, 2);
    if (!PyCallable_Check(PyTuple_GET_ITEM(spec, 0)) || !PyTuple_CheckExact(slots) ||
        !PyLong_CheckExact(PyTuple_GET_ITEM(spec, 3)) || !PyCallable_Check(PyTuple_GET_ITEM(spec, 4))) {
        return 0;
    }
    for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(slots); i++) {
        PyObject *s = PyTuple_GET_ITEM(slots, i);
        if (!PyLong_CheckExact(s) || PyLong_AsSsize_t(s) < 0) return 0;
    }
    if (refs == Py_None) return 1;
    if (!PyTuple_CheckExact(refs)) return 0;
    for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(refs); i++) {
        if (!PyWeakref_CheckRef(PyTuple_GET_ITEM(refs, i))) return 0;
    }
    return 1;
}

/* set_direct_call(code, spec): codegen's statement that `code` is a plain graph call. */
PyObject *direct_call_set(PyObject *module, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 2 || !PyCode_Check(args[0]) || !spec_valid(args[1])) {
        PyErr_SetString(PyExc_TypeError,
                        "set_direct_call(code, (graph, slots: tuple of int, refs: tuple of weakref.ref "
                        "or None, output index, allowed))");
        return NULL;
    }
    PyCodeObject *code = (PyCodeObject *)args[0];
    Py_ssize_t nslots = code->co_argcount;
    PyObject *slots = PyTuple_GET_ITEM(args[1], 1);
    for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(slots); i++) {
        if (PyLong_AsSsize_t(PyTuple_GET_ITEM(slots, i)) >= nslots) {
            PyErr_SetString(PyExc_ValueError, "set_direct_call: a slot index past the code's arguments");
            return NULL;
        }
    }
    if (cache_set_direct(code, args[1]) < 0) return NULL;
    Py_RETURN_NONE;
}

/* The graph raised (exception set): 1 when allowed(exc) lets the original frame run again
   (exception cleared), 0 to propagate it (still set). */
static int may_rerun(PyObject *allowed, PyThreadState *tstate, _PyInterpreterFrame *frame) {
    if (!PyErr_ExceptionMatches(PyExc_Exception)) return 0;  /* Ctrl-C: the user's, at once */
    PyObject *type, *value, *tb;
    PyErr_Fetch(&type, &value, &tb);
    PyErr_NormalizeException(&type, &value, &tb);
    if (tb != NULL && value != NULL) PyException_SetTraceback(value, tb);  /* allowed() reads it */
    PyObject *answer = value ? PyObject_CallOneArg(allowed, value) : NULL;
    int yes = answer == Py_True;
    Py_XDECREF(answer);
    if (answer == NULL) {
        PyErr_Clear();  /* the handler itself failed: the graph's error is what the user sees */
    }
    if (yes) {
        Py_XDECREF(type);
        Py_XDECREF(value);
        Py_XDECREF(tb);
        return 1;
    }
    /* the user's function shows in the traceback, as the rewritten frame did */
    PyFrameObject *f = frame_object(tstate, frame);  /* borrowed */
    if (f == NULL) PyErr_Clear();
    PyErr_Restore(type, value, tb);
    if (f != NULL) PyTraceBack_Here(f);
    return 0;
}

PyObject *direct_call_run(PyObject *spec, PyThreadState *tstate, _PyInterpreterFrame *frame, int *rerun) {
    PyObject *fn = PyTuple_GET_ITEM(spec, 0);
    PyObject *slots = PyTuple_GET_ITEM(spec, 1);
    PyObject *refs = PyTuple_GET_ITEM(spec, 2);
    Py_ssize_t ns = PyTuple_GET_SIZE(slots);
    Py_ssize_t nr = refs == Py_None ? 0 : PyTuple_GET_SIZE(refs);
    PyObject *small[16];
    PyObject **args = ns + nr <= 16 ? small : PyMem_Malloc((ns + nr) * sizeof(PyObject *));
    if (args == NULL) return PyErr_NoMemory();
    for (Py_ssize_t i = 0; i < ns; i++) {
        args[i] = frame->localsplus[PyLong_AsSsize_t(PyTuple_GET_ITEM(slots, i))];  /* borrowed */
    }
    Py_ssize_t held = 0;
    for (; held < nr; held++) {
        PyObject *referent = weak_referent(PyTuple_GET_ITEM(refs, held));
        if (referent == Py_None) break;  /* died since the guard: run the frame as written */
        args[ns + held] = Py_NewRef(referent);
    }
    PyObject *out = NULL;
    if (held < nr) {
        *rerun = 1;
    } else if (Py_EnterRecursiveCall(" in a graph call")) {
        /* counted as the rewritten frame would be: the hook's C recursion stays bounded */
    } else {
        PyObject *result = PyObject_Vectorcall(fn, args, ns + nr, NULL);
        Py_LeaveRecursiveCall();
        if (result == NULL) {
            *rerun = may_rerun(PyTuple_GET_ITEM(spec, 4), tstate, frame);
        } else {
            Py_ssize_t k = PyLong_AsSsize_t(PyTuple_GET_ITEM(spec, 3));
            if (PyTuple_CheckExact(result) && k < PyTuple_GET_SIZE(result)) {
                out = Py_NewRef(PyTuple_GET_ITEM(result, k));
            } else {
                out = PyObject_GetItem(result, PyTuple_GET_ITEM(spec, 3));
            }
            Py_DECREF(result);
        }
    }
    for (Py_ssize_t i = 0; i < held; i++) Py_DECREF(args[ns + i]);
    if (args != small) PyMem_Free(args);
    return out;
}
