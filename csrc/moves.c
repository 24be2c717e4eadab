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
 *   moved_args(*values)        (Python) the values as a tuple, and the calling frame's
 *                              plain local slots cleared: what a rewritten frame does at a
 *                              break right before it hands the tuple on
 *   call_moved(fn, tuple)      (Python) fn(*tuple), the tuple's items moved out of it
 *   caller_locals()            (Python) locals() of the calling frame, not kept on it
 *   moved_continue(fn, *values) (Python) Continue(fn, moved_args(*values)): a resume
 *                              function's return at a break (Continue is a C type here)
 *
 *   rewritten f:   ... return run_function(R1, moved_args(x, y))   f's slots now empty
 *   run_function:  r = call_moved(R1, args)                        args now []
 *   R1's frame:    owns x and y alone; `del x` frees x
 */
#include "frame_api.h"

typedef struct {
    PyObject **slots;  /* owned references to clear, or NULL */
    Py_ssize_t n;
    PyObject *code;    /* borrowed: fn's code, alive during the call */
} Pending;

/* One per thread (a single thread-local: one TLS lookup per use). moves_waiting counts the
   calls of all threads whose slots are not yet released (under the GIL), so that the hook
   reads no thread-local at all on the frames of plain calls. */
static _Thread_local Pending pending;
Py_ssize_t moves_waiting = 0;

static void release(PyObject **slots, Py_ssize_t n) {
    for (Py_ssize_t i = 0; i < n; i++) Py_CLEAR(slots[i]);
}

void moves_enter(_PyInterpreterFrame *frame) {
    Pending *p = &pending;
    if (p->slots == NULL || (PyObject *)frame_code(frame) != p->code) return;
    Pending mine = *p;
    p->slots = NULL;  /* first: clearing can run a __del__, which evaluates frames */
    moves_waiting--;
    release(mine.slots, mine.n);
}

PyObject *moves_call(PyObject *fn, PyObject **slots, Py_ssize_t n) {
    return moves_call_kw(fn, slots, n, NULL);
}

/* moves_call with keyword names: slots holds the positional arguments, then the keyword
   values (all owned). */
PyObject *moves_call_kw(PyObject *fn, PyObject **slots, Py_ssize_t nargs, PyObject *kwnames) {
    Py_ssize_t n = nargs + (kwnames ? PyTuple_GET_SIZE(kwnames) : 0);
    Pending *p = &pending;
    Pending outer = *p;
    p->slots = slots;
    p->n = n;
    p->code = PyFunction_Check(fn) ? PyFunction_GET_CODE(fn) : NULL;
    moves_waiting++;
    PyObject *result = PyObject_Vectorcall(fn, slots, nargs, kwnames);
    int entered = p->slots != slots;
    *p = outer;
    if (!entered) {  /* its frame never ran (an error before, no hook) */
        moves_waiting--;
        release(slots, n);
    }
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
    PyObject *tuple = PyTuple_New(nargs);  /* (_PyTuple_FromArray is not exported) */
    if (tuple == NULL) return NULL;
    for (Py_ssize_t i = 0; i < nargs; i++) PyTuple_SET_ITEM(tuple, i, Py_NewRef(args[i]));
    clear_caller_locals();
    return tuple;
}

/* The tuple's items are taken over, its slots left NULL (tuple deallocation and the
   collector allow that): its holders are terra_dyn's own (a moved_args result on the
   rewritten frame's stack, a Continue, the trampoline's argument), none of which reads it
   again. */
PyObject *moves_call_moved(PyObject *module, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 2 || !PyTuple_CheckExact(args[1])) {
        PyErr_SetString(PyExc_TypeError, "call_moved(fn, args: tuple)");
        return NULL;
    }
    PyObject *tuple = args[1];
    Py_ssize_t n = PyTuple_GET_SIZE(tuple);
    PyObject *small[16];
    PyObject **items = n <= 16 ? small : PyMem_Malloc(n * sizeof(PyObject *));
    if (items == NULL) return PyErr_NoMemory();
    for (Py_ssize_t i = 0; i < n; i++) {
        items[i] = PyTuple_GET_ITEM(tuple, i);
        ((PyTupleObject *)tuple)->ob_item[i] = NULL;
    }
    PyObject *result = moves_call(args[0], items, n);
    if (items != small) PyMem_Free(items);
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

/* Continue(fn, args): "call fn(*args) next", what a resume function's rewritten code returns
   to the trampoline (terra_dyn/codegen/resume.py). A C type: built once per break, in C. */
typedef struct {
    PyObject_HEAD
    PyObject *fn;
    PyObject *args;  /* a tuple */
} ContinueObject;

static int continue_traverse(ContinueObject *self, visitproc visit, void *arg) {
    Py_VISIT(self->fn);
    Py_VISIT(self->args);
    return 0;
}

static int continue_clear(ContinueObject *self) {
    Py_CLEAR(self->fn);
    Py_CLEAR(self->args);
    return 0;
}

static void continue_dealloc(ContinueObject *self) {
    PyObject_GC_UnTrack(self);
    continue_clear(self);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyObject *continue_make(PyObject *fn, PyObject *args) {  /* steals args */
    ContinueObject *self = PyObject_GC_New(ContinueObject, &Continue_Type);
    if (self == NULL) {
        Py_DECREF(args);
        return NULL;
    }
    self->fn = Py_NewRef(fn);
    self->args = args;
    PyObject_GC_Track(self);
    return (PyObject *)self;
}

static PyObject *continue_new(PyTypeObject *type, PyObject *args, PyObject *kwargs) {
    PyObject *fn, *fn_args;
    if (!PyArg_ParseTuple(args, "OO!:Continue", &fn, &PyTuple_Type, &fn_args)) return NULL;
    return continue_make(fn, Py_NewRef(fn_args));
}

static PyObject *continue_repr(ContinueObject *self) {
    PyObject *name = PyObject_GetAttrString(self->fn, "__name__");
    if (name == NULL) return NULL;
    PyObject *out = PyUnicode_FromFormat("Continue(%S, %zd args)", name, PyTuple_GET_SIZE(self->args));
    Py_DECREF(name);
    return out;
}

static PyMemberDef continue_members[] = {
    {"fn", T_OBJECT, offsetof(ContinueObject, fn), READONLY, "the function to call next"},
    {"args", T_OBJECT, offsetof(ContinueObject, args), READONLY, "its arguments (a tuple)"},
    {NULL},
};

PyTypeObject Continue_Type = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "terra_dyn._C.Continue",
    .tp_doc = "Continue(fn, args): 'call fn(*args) next', returned by a resume function to its trampoline",
    .tp_basicsize = sizeof(ContinueObject),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    .tp_new = continue_new,
    .tp_dealloc = (destructor)continue_dealloc,
    .tp_traverse = (traverseproc)continue_traverse,
    .tp_clear = (inquiry)continue_clear,
    .tp_repr = (reprfunc)continue_repr,
    .tp_members = continue_members,
};

/* moved_continue(fn, *values) -> Continue(fn, values): moved_args and the Continue in one
   call, what a resume function's rewritten code returns at a break. */
PyObject *moves_moved_continue(PyObject *module, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs < 1) {
        PyErr_SetString(PyExc_TypeError, "moved_continue(fn, *values)");
        return NULL;
    }
    PyObject *values = moves_moved_args(module, args + 1, nargs - 1);
    return values ? continue_make(args[0], values) : NULL;
}
