/* Moved arguments: calls whose arguments end up owned by the callee's frame alone.
 *
 * Plain Python frees an object when its last frame lets go of it (`del x`, a rebinding,
 * the loop that consumed an iterator), so a weakref dies and `__del__` runs right there.
 * A frame that terra_dyn splits is a chain of calls: the hook calls the rewritten code
 * with the original frame's argument slots, a break hands the live values to a resume
 * function through the trampoline. Each caller would keep its copy of every value until
 * the callee returns, so `del x; gc.collect()` in the callee freed nothing (CPython's
 * test_scope testCellLeak, test_exceptions test_unraisable, test_descr test_weakrefs).
 * Here the caller's copies are dropped as soon as the callee's frame holds its own:
 *
 *   moves_call(fn, slots, n)   call fn(*slots); the `n` owned references in `slots` are
 *                              cleared when fn's frame is entered (terra_eval_frame calls
 *                              moves_enter first thing), or after the call if it never was
 *   moved_args(*values)        (Python) [values...] as a list, and the calling frame's
 *                              plain local slots cleared: what a rewritten frame does at a
 *                              break right before it hands the list on
 *   call_moved(fn, list)       (Python) fn(*list), the list emptied (its items moved)
 *   caller_locals()            (Python) locals() of the calling frame, not kept on it
 *
 *   rewritten f:   ... return run_function(R1, moved_args(x, y))   f's slots now empty
 *   run_function:  r = call_moved(R1, args)                        args now []
 *   R1's frame:    owns x and y alone; `del x` frees x
 */
#include "frame_api.h"

_Thread_local PyObject **moves_pending = NULL;
static _Thread_local Py_ssize_t pending_n = 0;
static _Thread_local PyObject *pending_code = NULL;  /* borrowed: fn's code, alive during the call */

static void release(PyObject **slots, Py_ssize_t n) {
    for (Py_ssize_t i = 0; i < n; i++) Py_CLEAR(slots[i]);
}

void moves_enter(_PyInterpreterFrame *frame) {
    if ((PyObject *)frame_code(frame) != pending_code) return;
    PyObject **slots = moves_pending;
    Py_ssize_t n = pending_n;
    moves_pending = NULL;  /* first: clearing can run a __del__, which evaluates frames */
    pending_n = 0;
    pending_code = NULL;
    release(slots, n);
}

PyObject *moves_call(PyObject *fn, PyObject **slots, Py_ssize_t n) {
    PyObject **outer = moves_pending;
    Py_ssize_t outer_n = pending_n;
    PyObject *outer_code = pending_code;
    moves_pending = slots;
    pending_n = n;
    pending_code = PyFunction_Check(fn) ? PyFunction_GET_CODE(fn) : NULL;
    PyObject *result = PyObject_Vectorcall(fn, slots, n, NULL);
    int entered = moves_pending != slots;
    moves_pending = outer;
    pending_n = outer_n;
    pending_code = outer_code;
    if (!entered) release(slots, n);  /* its frame never ran (an error before, no hook) */
    return result;
}

/* The plain local slots of the frame calling us (cells and free variables stay: they are
   shared with the resume function, which receives them in its closure). */
static void clear_caller_locals(void) {
    _PyInterpreterFrame *frame = thread_current_frame(PyThreadState_Get());
    if (frame == NULL) return;
    PyCodeObject *code = frame_code(frame);
    for (int i = 0; i < code->co_nlocalsplus; i++) {
        if (_PyLocals_GetKind(code->co_localspluskinds, i) & (CO_FAST_CELL | CO_FAST_FREE)) continue;
        Py_CLEAR(frame->localsplus[i]);
    }
}

PyObject *moves_moved_args(PyObject *module, PyObject *const *args, Py_ssize_t nargs) {
    PyObject *list = PyList_New(nargs);
    if (list == NULL) return NULL;
    for (Py_ssize_t i = 0; i < nargs; i++) PyList_SET_ITEM(list, i, Py_NewRef(args[i]));
    clear_caller_locals();
    return list;
}

PyObject *moves_call_moved(PyObject *module, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 2 || !PyList_CheckExact(args[1])) {
        PyErr_SetString(PyExc_TypeError, "call_moved(fn, args: list)");
        return NULL;
    }
    PyListObject *list = (PyListObject *)args[1];
    PyObject **items = list->ob_item;  /* taken over whole: the list is left empty */
    Py_ssize_t n = Py_SIZE(list);
    list->ob_item = NULL;
    list->allocated = 0;
    Py_SET_SIZE(list, 0);
    PyObject *result = moves_call(args[0], items, n);
    PyMem_Free(items);
    return result;
}

/* 3.11/3.12's locals() keeps the dict it returns on the frame (frame->f_locals): a step
   code's frame, kept by an exception's traceback, would keep every local alive with it. */
PyObject *moves_caller_locals(PyObject *module, PyObject *unused) {
#if PY_VERSION_HEX >= 0x030D0000
    return PyEval_GetFrameLocals();  /* a fresh snapshot (PEP 667) */
#else
    PyObject *locals = PyEval_GetLocals();
    if (locals == NULL) return NULL;
    Py_INCREF(locals);
    _PyInterpreterFrame *frame = thread_current_frame(PyThreadState_Get());
    if (frame != NULL && frame->f_locals == locals) {
        frame->f_locals = NULL;
        Py_DECREF(locals);
    }
    return locals;
#endif
}
