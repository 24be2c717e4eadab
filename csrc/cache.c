/* The per-code-object cache, kept in co_extra, and the CacheEntry type.
 *
 *   code object --co_extra[index]--> CodeExtra { skip mark, [CacheEntry, ...] }
 *
 * Keyed by identity through co_extra, never by code equality: a rewritten code object
 * compares equal to its original, and a dict keyed by code would run it forever.
 * Every CodeExtra sits in one linked list so that reset() can reach them all; the
 * co_extra free function (called when the code object dies) unlinks it.
 *
 *   entry = CacheEntry(Guard([("type", 0, int)]), flatten_signature(f.__code__))
 */
#include "terra_dyn.h"

enum {
    SKIP_NONE = 0,
    SKIP_ASKED = 1,      /* the callback returned SKIP: cleared by reset() */
    SKIP_ALWAYS = 2,     /* skip_code() or rewritten code: survives reset() */
};

struct CodeExtra {
    int skip;
    PyObject *entries;           /* list of CacheEntry, or NULL */
    PyObject *direct;            /* a rewritten code's direct-call spec, or NULL (direct_call.c) */
    PyObject *closure;           /* a rewritten code's closure Guard, or NULL (eval_frame.c) */
    CodeExtra *prev, *next;      /* the registry reset() walks */
};

static Py_ssize_t extra_index = -1;
static CodeExtra registry = {0, NULL, NULL, NULL, &registry, &registry};

/* Called by CPython when the code object dies (or its extra is replaced). */
static void free_extra(void *ptr) {
    CodeExtra *extra = (CodeExtra *)ptr;
    /* CPython 3.11 calls every registered free function for each co_extra slot, set or
       not (gh-122491): once another user (torch.compile) takes an index, ours sees NULL. */
    if (extra == NULL) {
        return;
    }
    extra->prev->next = extra->next;
    extra->next->prev = extra->prev;
    Py_CLEAR(extra->entries);
    Py_CLEAR(extra->direct);
    Py_CLEAR(extra->closure);
    PyMem_Free(extra);
}

int cache_init(void) {
    extra_index = PyUnstable_Eval_RequestCodeExtraIndex(free_extra);
    if (extra_index < 0) {
        PyErr_SetString(PyExc_RuntimeError, "terra_dyn: no free co_extra index");
        return -1;
    }
    return 0;
}

CodeExtra *cache_lookup(PyCodeObject *code) {
    void *extra = NULL;
    /* PyUnstable_Code_GetExtra only fails for a non-code object or a bad index. */
    if (PyUnstable_Code_GetExtra((PyObject *)code, extra_index, &extra) < 0) {
        PyErr_Clear();
        return NULL;
    }
    return (CodeExtra *)extra;
}

CodeExtra *cache_get_or_create(PyCodeObject *code) {
    CodeExtra *extra = cache_lookup(code);
    if (extra != NULL) {
        return extra;
    }
    extra = PyMem_Calloc(1, sizeof(CodeExtra));
    if (extra == NULL) {
        PyErr_NoMemory();
        return NULL;
    }
    extra->next = registry.next;
    extra->prev = &registry;
    registry.next->prev = extra;
    registry.next = extra;
    if (PyUnstable_Code_SetExtra((PyObject *)code, extra_index, extra) < 0) {
        free_extra(extra);
        return NULL;
    }
    return extra;
}

/* The direct-call spec of a rewritten code: set by codegen before its CacheEntry is made,
   kept for the code's life (reset() drops entries, not what a code is). */
int cache_set_direct(PyCodeObject *code, PyObject *spec) {
    CodeExtra *extra = cache_get_or_create(code);
    if (extra == NULL) return -1;
    Py_XSETREF(extra->direct, Py_NewRef(spec));
    return 0;
}

static PyObject *cache_get_direct(PyCodeObject *code) {
    CodeExtra *extra = cache_lookup(code);
    return extra ? extra->direct : NULL;
}

/* The Guard over a rewritten code's closure values, checked by the hook with the frame's
   cells (codegen leaves the check out of the code then): set like the direct spec. */
int cache_set_closure(PyCodeObject *code, PyObject *guard) {
    CodeExtra *extra = cache_get_or_create(code);
    if (extra == NULL) return -1;
    Py_XSETREF(extra->closure, Py_NewRef(guard));
    return 0;
}

static PyObject *cache_get_closure(PyCodeObject *code) {
    CodeExtra *extra = cache_lookup(code);
    return extra ? extra->closure : NULL;
}

int cache_is_skipped(CodeExtra *extra) { return extra != NULL && extra->skip != SKIP_NONE; }

PyObject *cache_entries_list(CodeExtra *extra) { return extra ? extra->entries : NULL; }

static int mark(PyCodeObject *code, int how) {
    CodeExtra *extra = cache_get_or_create(code);
    if (extra == NULL) {
        return -1;
    }
    if (extra->skip < how) {
        extra->skip = how;
    }
    return 0;
}

int cache_mark_skipped(PyCodeObject *code) { return mark(code, SKIP_ASKED); }

int cache_mark_always(PyCodeObject *code) { return mark(code, SKIP_ALWAYS); }

int cache_append(PyCodeObject *code, PyObject *entry) {
    CacheEntry *e = (CacheEntry *)entry;
    /* The rewritten code must never reach the callback: it is what the callback made. */
    if (mark((PyCodeObject *)e->code, SKIP_ALWAYS) < 0) {
        return -1;
    }
    CodeExtra *extra = cache_get_or_create(code);
    if (extra == NULL) {
        return -1;
    }
    if (extra->entries == NULL && (extra->entries = PyList_New(0)) == NULL) {
        return -1;
    }
    return PyList_Append(extra->entries, entry);
}

void cache_clear_code(PyCodeObject *code) {
    CodeExtra *extra = cache_lookup(code);
    if (extra != NULL) {
        extra->skip = SKIP_NONE;
        Py_CLEAR(extra->entries);
    }
}

void cache_reset_all(void) {
    /* Dropping an entry list can free code objects, which unlinks their CodeExtra from
       the registry; so detach every list first and release them after the walk. */
    PyObject *dropped = PyList_New(0);
    for (CodeExtra *e = registry.next; e != &registry; e = e->next) {
        if (e->skip == SKIP_ASKED) {
            e->skip = SKIP_NONE;
        }
        if (e->entries != NULL) {
            PyObject *entries = e->entries;
            e->entries = NULL;
            if (dropped != NULL && PyList_Append(dropped, entries) == 0) {
                Py_DECREF(entries);
            } else {
                PyErr_Clear();  /* out of memory: leak it rather than free mid-walk */
            }
        }
    }
    Py_XDECREF(dropped);
}

/* ---- CacheEntry ---- */

static PyObject *entry_new(PyTypeObject *type, PyObject *args, PyObject *kwargs) {
    static char *kwlist[] = {"guard", "code", NULL};
    PyObject *guard, *code;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "O!O!:CacheEntry", kwlist, &Guard_Type,
                                     &guard, &PyCode_Type, &code)) {
        return NULL;
    }
    PyCodeObject *co = (PyCodeObject *)code;
    if (co->co_flags & (CO_VARARGS | CO_VARKEYWORDS) || co->co_kwonlyargcount) {
        PyErr_Format(PyExc_ValueError,
                     "CacheEntry: code %R must have a flattened signature (no *args, **kwargs "
                     "or keyword-only arguments; see terra_dyn.codegen.flatten_signature)",
                     code);
        return NULL;
    }
    CacheEntry *self = (CacheEntry *)type->tp_alloc(type, 0);
    if (self == NULL) {
        return NULL;
    }
    self->guard = Py_NewRef(guard);
    self->code = Py_NewRef(code);
    self->function = NULL;
    self->direct = Py_XNewRef(cache_get_direct(co));
    self->closure = Py_XNewRef(cache_get_closure(co));
    return (PyObject *)self;
}

static int entry_traverse(CacheEntry *self, visitproc visit, void *arg) {
    Py_VISIT(self->guard);
    Py_VISIT(self->code);
    Py_VISIT(self->function);
    Py_VISIT(self->direct);
    Py_VISIT(self->closure);
    return 0;
}

static int entry_clear(CacheEntry *self) {
    Py_CLEAR(self->guard);
    Py_CLEAR(self->code);
    Py_CLEAR(self->function);
    Py_CLEAR(self->direct);
    Py_CLEAR(self->closure);
    return 0;
}

static void entry_dealloc(CacheEntry *self) {
    PyObject_GC_UnTrack(self);
    entry_clear(self);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyObject *entry_repr(CacheEntry *self) {
    PyCodeObject *co = (PyCodeObject *)self->code;
    return PyUnicode_FromFormat("CacheEntry(%R, code=<%U at %U:%d>)", self->guard,
                                co->co_qualname, co->co_filename, co->co_firstlineno);
}

static PyMemberDef entry_members[] = {
    {"guard", T_OBJECT, offsetof(CacheEntry, guard), READONLY, "the Guard"},
    {"code", T_OBJECT, offsetof(CacheEntry, code), READONLY, "the rewritten code object"},
    {"direct", T_OBJECT, offsetof(CacheEntry, direct), READONLY,
     "the direct-call spec (the hook calls the graph itself; direct_call.c), or None"},
    {"closure", T_OBJECT, offsetof(CacheEntry, closure), READONLY,
     "the Guard over the closure's values the hook checks (eval_frame.c), or None"},
    {NULL},
};

PyTypeObject CacheEntry_Type = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "terra_dyn._C.CacheEntry",
    .tp_doc = "CacheEntry(guard, code): run `code` (flattened signature) when `guard` passes.",
    .tp_basicsize = sizeof(CacheEntry),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    .tp_new = entry_new,
    .tp_dealloc = (destructor)entry_dealloc,
    .tp_traverse = (traverseproc)entry_traverse,
    .tp_clear = (inquiry)entry_clear,
    .tp_repr = (reprfunc)entry_repr,
    .tp_members = entry_members,
};
