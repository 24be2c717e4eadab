/* OptimizedCallable and DisabledCallable: set this thread's callback around one call.
 *
 *   OptimizedCallable(fn, callback)(*a, **k)  ==  with callback installed: fn(*a, **k)
 *   OptimizedCallable(fn, callback, drop_self=True)(s, *a, **k)  ==  the same, s dropped
 *       (a module view's __call__: the original module is called, in C, no Python wrapper)
 *   DisabledCallable(fn)(*a, **k)             ==  with the hook off:       fn(*a, **k)
 *
 * C types (vectorcall) because they sit on every call of an optimized function; they
 * carry a __dict__ so functools.update_wrapper works, and bind like functions (__get__),
 * so they work as methods:
 *
 *   step = functools.update_wrapper(OptimizedCallable(step, callback), step)
 */
#include "frame_api.h"

typedef struct {
    PyObject_HEAD
    PyObject *fn;
    PyObject *callback;   /* NULL for DisabledCallable: the hook is off while fn runs */
    PyObject *dict;
    PyObject *weakrefs;
    vectorcallfunc vectorcall;
    int drop_self;        /* the first positional argument is not passed on */
} Wrapper;

/* Calls entering an optimized function from outside its callback (a training step, not each
   wrapped module inside it): convert_frame tells a rare branch outcome from a common one by
   them. Under the GIL. */
static unsigned long long entry_calls = 0;

PyObject *callables_entry_calls(PyObject *module, PyObject *unused) {
    return PyLong_FromUnsignedLongLong(entry_calls);
}

/* Called by the bytecode CALL of the running frame: `args` lie in its value stack, right
   after the callable (3.11: args[-1]; 3.12+: args[-1], or args[-2] with a NULL self slot
   between), and the frame decrefs them once we return. Plain Python moves a Python call's
   arguments into the callee's frame, so `del arg` there frees arg; here the caller would
   hold them for the whole call. A forwarding caller (a bound method's vectorcall writing self into args[-1],
   functools.partial) is not the frame's CALL: its slots are left alone; nor are they while
   a tracer, a profiler or a sys.monitoring tool for calls may read them after the call. */
static int called_by_frame(PyObject *self, PyObject *const *args, Py_ssize_t n) {
    PyThreadState *tstate = PyThreadState_Get();
    _PyInterpreterFrame *frame = thread_current_frame(tstate);
    if (frame == NULL || n == 0 || tstate->c_profilefunc != NULL || tstate->c_tracefunc != NULL) {
        return 0;  /* a profiler's or tracer's call events may read the arguments after */
    }
    PyCodeObject *code = frame_code(frame);
    /* 3.12+: sys.monitoring's C_RETURN / C_RAISE callbacks get the first argument read
       from the caller's stack after we return (the events share CALL's instrumentation) */
    if (monitored(tstate, code, MONITOR_CALLS)) return 0;
    PyObject *const *lo = frame->localsplus + code->co_nlocalsplus;
    PyObject *const *hi = lo + code->co_stacksize;
    if (args - 1 < lo || args + n > hi) return 0;
#if PY_VERSION_HEX >= 0x030C0000
    return args[-1] == self || (args - 2 >= lo && args[-1] == NULL && args[-2] == self);
#else  /* [NULL or the method, the callable or self, args...]: always right after us */
    return args[-1] == self;
#endif
}

/* fn(*args) with the arguments taken over from the calling frame's stack (None left in
   each slot for its decref): fn's frame then holds them alone (csrc/moves.c). */
static PyObject *call_taking_args(PyObject *fn, PyObject *const *args, size_t nargsf, PyObject *kwnames) {
    Py_ssize_t nargs = PyVectorcall_NARGS(nargsf);
    Py_ssize_t n = nargs + (kwnames ? PyTuple_GET_SIZE(kwnames) : 0);
    PyObject *small[16];
    PyObject **items = n <= 16 ? small : PyMem_Malloc(n * sizeof(PyObject *));
    if (items == NULL) return PyErr_NoMemory();
    PyObject **slots = (PyObject **)args;
    for (Py_ssize_t i = 0; i < n; i++) {
        items[i] = slots[i];
        slots[i] = Py_NewRef(Py_None);
    }
    PyObject *result = moves_call_kw(fn, items, nargs, kwnames);
    if (items != small) PyMem_Free(items);
    return result;
}

static PyObject *wrapper_vectorcall(PyObject *self, PyObject *const *args, size_t nargsf, PyObject *kwnames) {
    Wrapper *w = (Wrapper *)self;
    PyObject *const *own = args;  /* where the frame's CALL put the arguments */
    if (w->drop_self) {
        Py_ssize_t n = PyVectorcall_NARGS(nargsf);
        if (n < 1) {
            PyErr_SetString(PyExc_TypeError, "OptimizedCallable(drop_self=True) needs the instance argument");
            return NULL;
        }
        args++;
        nargsf = n - 1;  /* without PY_VECTORCALL_ARGUMENTS_OFFSET: args[-1] is the caller's */
    }
    PyObject *previous = eval_frame_swap_callback(Py_XNewRef(w->callback));
    entry_calls += w->callback != NULL && previous != w->callback;
    Py_ssize_t n = PyVectorcall_NARGS(nargsf) + (kwnames ? PyTuple_GET_SIZE(kwnames) : 0);
    PyObject *result = w->callback != NULL && PyFunction_Check(w->fn) &&
        called_by_frame(self, own, n + (args - own)) ? call_taking_args(w->fn, args, nargsf, kwnames)
                                                  : PyObject_Vectorcall(w->fn, args, nargsf, kwnames);
    PyObject *ours = eval_frame_swap_callback(previous);
    Py_XDECREF(ours);
    return result;
}

static PyObject *wrapper_make(PyTypeObject *type, PyObject *fn, PyObject *callback) {
    if (!PyCallable_Check(fn) || (callback && !PyCallable_Check(callback))) {
        PyErr_Format(PyExc_TypeError, "%s expects callables", type->tp_name);
        return NULL;
    }
    Wrapper *self = (Wrapper *)type->tp_alloc(type, 0);
    if (self == NULL) return NULL;
    self->fn = Py_NewRef(fn);
    self->callback = Py_XNewRef(callback);
    self->vectorcall = wrapper_vectorcall;
    return (PyObject *)self;
}

static PyObject *optimized_new(PyTypeObject *type, PyObject *args, PyObject *kwargs) {
    static char *kwlist[] = {"fn", "callback", "drop_self", NULL};
    PyObject *fn, *callback;
    int drop_self = 0;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "OO|p:OptimizedCallable", kwlist, &fn, &callback, &drop_self)) {
        return NULL;
    }
    PyObject *self = wrapper_make(type, fn, callback);
    if (self != NULL) ((Wrapper *)self)->drop_self = drop_self;
    return self;
}

static PyObject *disabled_new(PyTypeObject *type, PyObject *args, PyObject *kwargs) {
    static char *kwlist[] = {"fn", NULL};
    PyObject *fn;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "O:DisabledCallable", kwlist, &fn)) return NULL;
    return wrapper_make(type, fn, NULL);
}

static int wrapper_traverse(Wrapper *self, visitproc visit, void *arg) {
    Py_VISIT(self->fn);
    Py_VISIT(self->callback);
    Py_VISIT(self->dict);
    return 0;
}

static int wrapper_clear(Wrapper *self) {
    Py_CLEAR(self->fn);
    Py_CLEAR(self->callback);
    Py_CLEAR(self->dict);
    return 0;
}

static void wrapper_dealloc(Wrapper *self) {
    PyObject_GC_UnTrack(self);
    if (self->weakrefs) PyObject_ClearWeakRefs((PyObject *)self);
    wrapper_clear(self);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

/* Bind like a function, so an optimized function stored on a class is a method. */
static PyObject *wrapper_get(PyObject *self, PyObject *obj, PyObject *type) {
    if (obj == NULL || obj == Py_None) return Py_NewRef(self);
    return PyMethod_New(self, obj);
}

static PyObject *wrapper_repr(Wrapper *self) {
    if (self->callback) return PyUnicode_FromFormat("OptimizedCallable(%R, callback=%R)", self->fn, self->callback);
    return PyUnicode_FromFormat("DisabledCallable(%R)", self->fn);
}

/* `isinstance(obj, optimize(Cls))` and issubclass: answer as the wrapped class would. */
static PyObject *wrapper_instancecheck(Wrapper *self, PyObject *obj) {
    int r = PyObject_IsInstance(obj, self->fn);
    return r < 0 ? NULL : PyBool_FromLong(r);
}

static PyObject *wrapper_subclasscheck(Wrapper *self, PyObject *cls) {
    int r = PyObject_IsSubclass(cls, self->fn);
    return r < 0 ? NULL : PyBool_FromLong(r);
}

static PyMethodDef wrapper_methods[] = {
    {"__instancecheck__", (PyCFunction)wrapper_instancecheck, METH_O, "isinstance against the wrapped callable"},
    {"__subclasscheck__", (PyCFunction)wrapper_subclasscheck, METH_O, "issubclass against the wrapped callable"},
    {NULL},
};

static PyMemberDef wrapper_members[] = {
    {"fn", T_OBJECT, offsetof(Wrapper, fn), READONLY, "the wrapped callable"},
    {"callback", T_OBJECT, offsetof(Wrapper, callback), READONLY, "the frame callback (None: hook off)"},
    {"drop_self", T_INT, offsetof(Wrapper, drop_self), READONLY, "the first positional argument is not passed on"},
    {"__dictoffset__", T_PYSSIZET, offsetof(Wrapper, dict), READONLY},
    {"__weaklistoffset__", T_PYSSIZET, offsetof(Wrapper, weakrefs), READONLY},
    {"__vectorcalloffset__", T_PYSSIZET, offsetof(Wrapper, vectorcall), READONLY},
    {NULL},
};

static PyGetSetDef wrapper_getset[] = {
    {"__dict__", PyObject_GenericGetDict, PyObject_GenericSetDict},
    {NULL},
};

#define WRAPPER_TYPE(NAME, DOC, NEW)                                                     \
    {                                                                                    \
        PyVarObject_HEAD_INIT(NULL, 0)                                                   \
        .tp_name = "terra_dyn._C." NAME,                                                 \
        .tp_doc = DOC,                                                                   \
        .tp_basicsize = sizeof(Wrapper),                                                 \
        .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | Py_TPFLAGS_HAVE_VECTORCALL | \
                    Py_TPFLAGS_METHOD_DESCRIPTOR,                                        \
        .tp_new = NEW,                                                                   \
        .tp_dealloc = (destructor)wrapper_dealloc,                                       \
        .tp_traverse = (traverseproc)wrapper_traverse,                                   \
        .tp_clear = (inquiry)wrapper_clear,                                              \
        .tp_repr = (reprfunc)wrapper_repr,                                               \
        .tp_call = PyVectorcall_Call,                                                    \
        .tp_vectorcall_offset = offsetof(Wrapper, vectorcall),                           \
        .tp_dictoffset = offsetof(Wrapper, dict),                                        \
        .tp_weaklistoffset = offsetof(Wrapper, weakrefs),                                \
        .tp_descr_get = wrapper_get,                                                     \
        .tp_members = wrapper_members,                                                   \
        .tp_methods = wrapper_methods,                                                   \
        .tp_getset = wrapper_getset,                                                     \
    }

PyTypeObject OptimizedCallable_Type = WRAPPER_TYPE(
    "OptimizedCallable", "OptimizedCallable(fn, callback): call fn with callback installed on this thread.",
    optimized_new);
PyTypeObject DisabledCallable_Type = WRAPPER_TYPE(
    "DisabledCallable", "DisabledCallable(fn): call fn with the frame hook off on this thread.", disabled_new);
