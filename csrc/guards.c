/* Guard: the checks a cache entry runs, in C, over a frame's argument slots.
 *
 *   Guard(checks, fallback=None, batch=True)   checks: list of tuples, evaluated in order;
 *                        batch: its snapshot checks as one batch (csrc/snapshot_batch.c)
 *     ("type", i, T)   ("id", i, obj)   ("eq", i, value)   ("len", i, n)   (T in "type" and
 *                        "type_version" may be a weakref: a class made per call, not kept)
 *     ("tensor", i, T, dtype, device, sizes, strides, requires_grad)
 *     ("global_id", globals_dict, name, obj)   ("call_id", fn, obj)   obj ABSENT: no such name
 *     ("callback", cb)   this thread's frame callback is cb: the backend and options that
 *                        made the entry (eval_frame_current_callback)
 *     ("type_version", T, tag[, same])   T's version tag is still tag: no attribute of T or
 *                        of a class on its MRO was set or deleted since (CPython's method
 *                        cache relies on the same tag; type_version_tag() reads one). When
 *                        the tag moved, same() -> True says the class and its MRO hold what
 *                        they held (a write undone since: torch.fx patches nn.Module.__call__
 *                        for a trace and restores it): the check passes and keeps the new tag
 *     ("id_weak", i, ref)   args[i] is ref(), ref a weakref: the guard does not keep a module
 *                        or parameter alive (once it dies, the check fails for good)
 *     ("no_attr", i, name)   args[i]'s instance dict lacks name (a method or forward read
 *                        from the class is not shadowed on the instance since)
 *     ("no_attr_weak", ref, name)   the same for ref() (a module guarded by identity)
 *     ("func", fn, code, defaults, kwdefaults)   fn's __code__, __defaults__ and
 *                        __kwdefaults__ are these very objects (autoreload swaps __code__);
 *                        fn may be a weakref to it (a function made per call)
 *     ("snapshot", target, cls, tables, info)   many facts about one object pinned by
 *                        identity, checked on it (csrc/snapshot.c)
 *     ("paths", roots, info)   facts about values read along attribute and item chains
 *                        from slots or pinned objects, a tree read once per prefix
 *                        (csrc/path_check.c)
 *   then fallback(*args) -> bool, if given.
 *
 *   g = Guard([("type", 0, int), ("eq", 1, "mean")])
 *   g.check(3, "mean") -> True;  g.explain(3, "sum") -> "check 1 ('eq', 1, 'mean'): ..."
 *
 * Two paths for "tensor" and "call_id" checks:
 *   fast    the optional C++ module terra_dyn._tensor_check (csrc/tensor_check.cpp), found
 *           through a capsule the first time a Guard has such a check; each check's tuple
 *           becomes a TensorSpec / AmbientSpec once, at construction, and a check reads
 *           at::Tensor metadata directly (a few ns);
 *   Python  attribute lookups on interned names and one .stride() call (~250 ns a tensor),
 *           used when the module is missing, refuses a check (an unusual tensor type), or
 *           cannot tell for one argument (sparse, nested, Python-dispatch tensors), and
 *           always by explain(). TERRA_DYN_SLOW_GUARDS=1 or set_fast_guards(False)
 *           forces it for Guards built afterwards (tests run both paths).
 * So _C itself never links libtorch.
 */
#include "guard_types.h"

static const char *kind_names[] = {"type", "id", "eq", "len", "tensor", "global_id", "call_id", "callback",
                                   "type_version", "func", "id_weak", "no_attr", "no_attr_weak", "snapshot",
                                   "paths"};

/* ---- the fast path's module, loaded once ---- */

static const TensorCheckAPI *fast_api = NULL;
static PyObject *fast_error = NULL;  /* why the module could not be loaded (a str) */
static int fast_wanted = -1;         /* -1: not decided yet (TERRA_DYN_SLOW_GUARDS) */

static int fast_guards_wanted(void) {
    if (fast_wanted < 0) {
        const char *env = getenv("TERRA_DYN_SLOW_GUARDS");
        fast_wanted = !(env && env[0] && strcmp(env, "0") != 0);
    }
    return fast_wanted;
}

/* The C++ module's API, or NULL (never raises): imported on first use, because it loads
   libtorch, which a process using only the hook need not have. Never imports torch
   itself: until the program has, its guards hold no tensor checks worth the fast path. */
static const TensorCheckAPI *fast_api_get(void) {
    if (!fast_guards_wanted()) return NULL;
    if (fast_api != NULL || fast_error != NULL) return fast_api;
    PyObject *exc_type, *exc_value, *exc_tb;
    PyErr_Fetch(&exc_type, &exc_value, &exc_tb);
    /* The module links libtorch_python, found among the libraries torch loaded. */
    PyObject *name = PyUnicode_FromString("torch");
    PyObject *torch = name ? PyImport_GetModule(name) : NULL;
    Py_XDECREF(name);
    if (torch == NULL) {
        PyErr_Restore(exc_type, exc_value, exc_tb);  /* not yet: ask again for a later Guard */
        return NULL;
    }
    PyObject *module = PyImport_ImportModule("terra_dyn._tensor_check");
    PyObject *capsule = module ? PyObject_GetAttrString(module, "_C_API") : NULL;
    const TensorCheckAPI *api = capsule ? PyCapsule_GetPointer(capsule, TENSOR_CHECK_CAPSULE) : NULL;
    if (api != NULL && api->version != TENSOR_CHECK_API_VERSION) {
        PyErr_Format(PyExc_ImportError, "terra_dyn._tensor_check has API version %d, _C wants %d: rebuild",
                     api->version, TENSOR_CHECK_API_VERSION);
        api = NULL;
    }
    if (api == NULL) {
        PyObject *type, *value, *tb;
        PyErr_Fetch(&type, &value, &tb);
        fast_error = value ? PyObject_Str(value) : PyUnicode_FromString("unknown error");
        if (fast_error == NULL) fast_error = Py_NewRef(Py_None);
        Py_XDECREF(type);
        Py_XDECREF(value);
        Py_XDECREF(tb);
        PyErr_Clear();
    }
    fast_api = api;  /* the module stays imported (sys.modules), so the capsule stays valid */
    Py_XDECREF(capsule);
    Py_XDECREF(module);
    Py_XDECREF(torch);
    PyErr_Restore(exc_type, exc_value, exc_tb);
    return fast_api;
}

PyObject *guards_set_fast(PyObject *module, PyObject *flag) {
    int on = PyObject_IsTrue(flag);
    if (on < 0) return NULL;
    int previous = fast_guards_wanted();
    fast_wanted = on;
    return PyBool_FromLong(previous);
}

PyObject *guards_fast_status(PyObject *module, PyObject *unused) {
    if (!fast_guards_wanted()) return PyUnicode_FromString("off (TERRA_DYN_SLOW_GUARDS=1 or set_fast_guards(False))");
    if (fast_api_get() != NULL) return PyUnicode_FromString("on");
    if (fast_error == NULL) return PyUnicode_FromString("not loaded yet (torch is not imported)");
    return PyUnicode_FromFormat("unavailable: terra_dyn._tensor_check: %S", fast_error);
}

static PyObject *s_dtype, *s_shape, *s_device, *s_requires_grad, *s_stride, *s_is_cpu, *s_cpu;

int guards_init(void) {
    s_dtype = PyUnicode_InternFromString("dtype");
    s_shape = PyUnicode_InternFromString("shape");
    s_device = PyUnicode_InternFromString("device");
    s_requires_grad = PyUnicode_InternFromString("requires_grad");
    s_stride = PyUnicode_InternFromString("stride");
    s_is_cpu = PyUnicode_InternFromString("is_cpu");
    s_cpu = PyUnicode_InternFromString("cpu");
    return (s_dtype && s_shape && s_device && s_requires_grad && s_stride && s_is_cpu && s_cpu) ? 0 : -1;
}

/* getattr(obj, name) == expected; 1 equal, 0 not (lookup errors count as not equal). */
static int attr_equals(PyObject *obj, PyObject *name, PyObject *expected, int by_identity) {
    PyObject *value = PyObject_GetAttr(obj, name);
    if (value == NULL) {
        PyErr_Clear();
        return 0;
    }
    int ok = (value == expected) || (!by_identity && PyObject_RichCompareBool(value, expected, Py_EQ) == 1);
    Py_DECREF(value);
    PyErr_Clear();
    return ok;
}

/* Which tensor field differs: NULL when none (the names are for explain()). */
const char *guard_tensor_mismatch(const Check *c, PyObject *x) {
    if (Py_TYPE(x) != (PyTypeObject *)c->a) return "type";
    /* dtypes are singletons: identity. Cheapest fields first. */
    if (!attr_equals(x, s_dtype, c->b, 1)) return "dtype";
    if (!attr_equals(x, s_shape, c->d, 0)) return "sizes";
    if (!attr_equals(x, s_requires_grad, c->f, 0)) return "requires_grad";
    PyObject *strides = PyObject_CallMethodNoArgs(x, s_stride);
    int ok = strides != NULL && PyObject_RichCompareBool(strides, c->e, Py_EQ) == 1;
    Py_XDECREF(strides);
    PyErr_Clear();
    if (!ok) return "strides";
    /* torch.device objects are made anew on each read; for the common CPU case a bool
       getter says the same without an allocation. */
    if (c->length == 1 ? !attr_equals(x, s_is_cpu, Py_True, 1) : !attr_equals(x, s_device, c->c, 0)) {
        return "device";
    }
    return NULL;
}

/* 1: obj has no instance dict, or its dict lacks `name` (a str). */
int lacks_instance_attr(PyObject *obj, PyObject *name) {
    PyObject **dictptr = _PyObject_GetDictPtr(obj);
    if (dictptr == NULL || *dictptr == NULL) return 1;
    PyObject *v = PyDict_GetItemWithError(*dictptr, name);
    if (v == NULL) PyErr_Clear();
    return v == NULL;
}

/* 1 pass, 0 fail, -1 a Ctrl-C during a path check's reads (the user's: kept). Errors
   raised by user __eq__/__len__ count as a failure. */
int guard_check_one(const Check *c, PyObject *const *args, Py_ssize_t nargs) {
    PyObject *x = NULL;
    if (!NO_SLOT(c->kind)) {
        if (c->index >= nargs) return 0;
        x = args[c->index];
    }
    int ok = 0;
    switch (c->kind) {
    case K_TYPE: return (PyObject *)Py_TYPE(x) == (c->length ? weak_referent(c->a) : c->a);  /* length: weak */
    case K_ID: return x == c->a;
    case K_NO_ATTR: return lacks_instance_attr(x, c->a);
    case K_NO_ATTR_WEAK: {
        PyObject *referent = weak_referent(c->a);
        return referent != Py_None && lacks_instance_attr(referent, c->b);
    }
    case K_ID_WEAK: {
        PyObject *referent = weak_referent(c->a);  /* borrowed; None once dead */
        return referent != Py_None && x == referent;
    }
    case K_EQ:
        ok = PyObject_RichCompareBool(x, c->a, Py_EQ) == 1;
        break;
    case K_LEN:
        ok = PyObject_Length(x) == c->length;
        break;
    case K_TENSOR:
        if (c->fast != NULL) {
            int r = fast_api->tensor_matches(x, c->fast);
            if (r >= 0) return r;  /* else it cannot tell: ask the Python API */
        }
        return guard_tensor_mismatch(c, x) == NULL;
    case K_GLOBAL_ID: {
        /* A dict untouched since the check passed (same version tag: PEP 509, every write
           gives a new, never reused one) still maps the name to the same object. */
        uint64_t tag = dict_version_tag(c->a);
        if (c->tag_valid && tag == c->dict_tag) return 1;
        PyObject *v = PyDict_GetItemWithError(c->a, c->b);  /* borrowed; NULL when missing */
        ok = (v ? v : terra_ABSENT) == c->c;  /* `len = None` is not absent */
#if PY_VERSION_HEX >= 0x030D0000
        /* 3.13 writes `obj.x = v` into a dict sharing an object's inline values without a
           new tag (csrc/snapshot.c): such a dict is read every time */
        ((Check *)c)->tag_valid = ok && ((PyDictObject *)c->a)->ma_values == NULL;
#else
        ((Check *)c)->tag_valid = ok;
#endif
        ((Check *)c)->dict_tag = tag;
        break;
    }
    case K_CALLBACK: return eval_frame_current_callback() == c->a;
    case K_TYPE_VERSION: {  /* T held weakly: a class made per call */
        PyObject *t = PyWeakref_CheckRef(c->a) ? weak_referent(c->a) : c->a;
        return PyType_Check(t) && type_tag_holds(c, (PyTypeObject *)t);
    }
    case K_SNAPSHOT: return snapshot_check(c->snapshot);
    case K_PATHS: return path_check(c->paths, args, nargs);
    case K_FUNC: {
        /* a weakref for a function made per call: the guard must not keep it alive */
        PyObject *fn = PyWeakref_CheckRef(c->a) ? weak_referent(c->a) : c->a;
        if (!PyFunction_Check(fn)) return 0;  /* died (None) */
        PyFunctionObject *f = (PyFunctionObject *)fn;
        return f->func_code == c->b && (f->func_defaults ? f->func_defaults : Py_None) == c->c &&
               (f->func_kwdefaults ? f->func_kwdefaults : Py_None) == c->d;
    }
    case K_CALL_ID: {
        if (c->ambient.kind) return fast_api->ambient_matches(&c->ambient);
        if (c->registry) return (PyDict_GET_SIZE(c->registry) != 0) == (c->b == Py_True);
        PyObject *r = PyObject_CallNoArgs(c->a);
        ok = r == c->b;
        Py_XDECREF(r);
        break;
    }
    }
    PyErr_Clear();
    return ok;
}

/* The Python predicate after the C checks passed: 1 / 0, -1 a Ctrl-C (the user's: kept). */
static int fallback_holds(Guard *g, PyObject *const *args, Py_ssize_t nargs) {
    if (g->fallback == NULL) return 1;
    PyObject *r = PyObject_Vectorcall(g->fallback, args, nargs, NULL);
    int ok = r != NULL && PyObject_IsTrue(r) == 1;
    Py_XDECREF(r);
    if (PyErr_Occurred() && !PyErr_ExceptionMatches(PyExc_Exception)) return -1;
    PyErr_Clear();
    return ok;
}

/* After the batch was built: the checks it does not cover, in order (the batch reads no
   slot and runs no user code, so checking it first changes no answer). */
static void note_unbatched(Guard *g) {
    g->n_rest = -1;
    if (snapshot_batch_size(g->batch) == 0) return;
    if (g->rest == NULL && (g->rest = PyMem_Calloc(g->n, sizeof(Py_ssize_t))) == NULL) return;
    Py_ssize_t n = 0;
    for (Py_ssize_t i = 0; i < g->n; i++) {
        const Check *c = &g->checks[i];
        if (!(c->kind == K_SNAPSHOT && snapshot_is_batched(c->snapshot))) g->rest[n++] = i;
    }
    g->n_rest = n;
}

/* The C checks, in order: 1 / 0 / -1; *rebuild: the batch did not hold, every snapshot
   was checked (the batch is rebuilt if the whole guard passes). */
static int checks_hold(Guard *g, PyObject *const *args, Py_ssize_t nargs, int *rebuild) {
    /* the batch holds: only the checks it does not cover (a batch that holds is the one
       note_unbatched described: every build is followed by it, below) */
    if (g->batch != NULL && g->n_rest >= 0 && snapshot_batch_check(g->batch)) {
        for (Py_ssize_t k = 0; k < g->n_rest; k++) {
            int r = guard_check_one(&g->checks[g->rest[k]], args, nargs);
            if (r != 1) return r;
        }
        return 1;
    }
    /* the batch, checked where the first snapshot check is: 1 it holds (its snapshots are
       skipped), -1 it does not (every snapshot checked: rebuilt if the guard passes) */
    int batch = 0;
    Py_ssize_t start = 0;
    if (g->lead != NULL && guard_lead_check(g->lead, args, nargs, &start) == 0) return 0;
    for (Py_ssize_t i = start; i < g->n; i++) {
        const Check *c = &g->checks[i];
        if (c->kind == K_SNAPSHOT && g->batch != NULL) {
            if (batch == 0) batch = snapshot_batch_check(g->batch) ? 1 : -1;
            if (batch == 1 && snapshot_is_batched(c->snapshot)) continue;
        }
        int r = guard_check_one(c, args, nargs);
        if (r != 1) return r;
    }
    *rebuild = batch == -1;
    return 1;
}

static int guard_check_held(Guard *g, PyObject *const *args, Py_ssize_t nargs) {
    int rebuild = 0;
    uint64_t seen = eval_frame_entered;
    int ok = checks_hold(g, args, nargs, &rebuild);
    /* A check ran Python code (a user __eq__, __getattr__, property, __del__): it may have
       changed what an earlier check already passed. Once more, from the first check (each
       check guards itself against the code it runs: snapshot.c's Reading). */
    if (ok == 1 && eval_frame_entered != seen) ok = checks_hold(g, args, nargs, &rebuild);
    if (ok == 1) ok = fallback_holds(g, args, nargs);
    if (ok == 1 && rebuild) {
        snapshot_batch_build(g->batch);
        note_unbatched(g);
    }
    return ok;
}

/* The Guard is held while it checks: a user __eq__, a call_id's function or the fallback
   may drop the cache entry that owns it (reset(), a recompile), and the checks read it after. */
int guard_check(PyObject *guard, PyObject *const *args, Py_ssize_t nargs) {
    Py_INCREF(guard);
    int ok = guard_check_held((Guard *)guard, args, nargs);
    Py_DECREF(guard);
    return ok;
}

/* A one-check tensor Guard (a snapshot's or path check's TENSOR entry) on `value`: its
   fast spec read directly, without the check loop (~200 per BERT call); 1 / 0. */
int guard_tensor_check(PyObject *guard, PyObject *value) {
    Guard *g = (Guard *)guard;
    if (g->n == 1 && g->checks[0].fast != NULL && g->fallback == NULL) {
        int r = fast_api->tensor_matches(value, g->checks[0].fast);
        if (r >= 0) return r;
    }
    return guard_check(guard, &value, 1);
}

/* The fast spec of a one-check tensor Guard (a snapshot's parameter entry), or NULL: a
   memoized snapshot keeps it and asks guard_spec_matches directly on every check. */
const void *guard_tensor_spec(PyObject *guard) {
    Guard *g = (Guard *)guard;
    return g->n == 1 && g->checks[0].fast != NULL && g->fallback == NULL ? g->checks[0].fast : NULL;
}

/* 1 matches, 0 differs, -1 cannot tell (then guard_tensor_check). */
int guard_spec_matches(const void *spec, PyObject *value) {
    return fast_api->tensor_matches(value, (const TensorSpec *)spec);
}

/* Many parameters' checks (a snapshot batch's): tensors_match (tensor_check.h). The batch
   holds fast specs only, so the module is loaded. */
int guard_tensors_match(void *entries, Py_ssize_t n) {
    return n == 0 ? 1 : fast_api->tensors_match((TensorEntry *)entries, n);
}

/* ---- construction ---- */

static int parse_check(PyObject *t, Check *c) {
    static const Py_ssize_t arity[] = {3, 3, 3, 3, 8, 4, 3, 2, 3, 5, 3, 3, 3, 5, 3};
    if (!PyTuple_Check(t) || PyTuple_GET_SIZE(t) < 1 || !PyUnicode_Check(PyTuple_GET_ITEM(t, 0))) {
        PyErr_Format(PyExc_TypeError, "Guard: a check is a tuple (kind, ...), got %R", t);
        return -1;
    }
    const char *kind = PyUnicode_AsUTF8(PyTuple_GET_ITEM(t, 0));
    c->kind = -1;
    for (int k = 0; k <= K_PATHS; k++) {
        if (strcmp(kind, kind_names[k]) == 0) c->kind = k;
    }
    Py_ssize_t size = PyTuple_GET_SIZE(t);
    int optional_last = c->kind == K_TYPE_VERSION && size == arity[c->kind] + 1;  /* its `same` */
    if (c->kind < 0 || (size != arity[c->kind] && !optional_last)) {
        PyErr_Format(PyExc_ValueError, "Guard: malformed check %R (see docs/CONTRACTS.md)", t);
        return -1;
    }
    PyObject **item = &PyTuple_GET_ITEM(t, 1);
    PyObject **slots[] = {&c->a, &c->b, &c->c, &c->d, &c->e, &c->f};
    int first = 0;
    if (!NO_SLOT(c->kind)) {
        c->index = PyLong_AsSsize_t(item[0]);
        if (c->index < 0) {
            if (!PyErr_Occurred()) PyErr_Format(PyExc_ValueError, "Guard: negative index in %R", t);
            return -1;
        }
        first = 1;
    }
    for (Py_ssize_t i = first; i < PyTuple_GET_SIZE(t) - 1; i++) *slots[i - first] = item[i];
    if (c->kind == K_TYPE && PyWeakref_CheckRef(c->a)) c->length = 1;  /* a class made per call */
    if ((c->kind == K_TYPE || c->kind == K_TENSOR) && !PyType_Check(c->length ? weak_referent(c->a) : c->a)) {
        PyErr_Format(PyExc_TypeError, "Guard: %R needs a type", t);
        return -1;
    }
    if (c->kind == K_LEN && (c->length = PyLong_AsSsize_t(c->a)) < 0 && PyErr_Occurred()) return -1;
    if (c->kind == K_TENSOR) {
        /* length = 1: the expected device is the CPU (str(device) == "cpu"). */
        PyObject *name = PyObject_Str(c->c);
        if (name == NULL) return -1;
        c->length = PyUnicode_Compare(name, s_cpu) == 0;
        Py_DECREF(name);
    }
    if (c->kind == K_TYPE_VERSION) {
        if (!PyType_Check(PyWeakref_CheckRef(c->a) ? weak_referent(c->a) : c->a)) {
            PyErr_Format(PyExc_TypeError, "Guard: %R needs a type or a weakref to one", t);
            return -1;
        }
        c->length = (Py_ssize_t)PyLong_AsUnsignedLong(c->b);
        if (PyErr_Occurred()) return -1;
    }
    if ((c->kind == K_ID_WEAK || c->kind == K_NO_ATTR_WEAK) && !PyWeakref_CheckRef(c->a)) {
        PyErr_Format(PyExc_TypeError, "Guard: %R needs a weakref.ref", t);
        return -1;
    }
    if ((c->kind == K_NO_ATTR && !PyUnicode_Check(c->a)) || (c->kind == K_NO_ATTR_WEAK && !PyUnicode_Check(c->b))) {
        PyErr_Format(PyExc_TypeError, "Guard: %R needs an attribute name", t);
        return -1;
    }
    if (c->kind == K_FUNC && !PyFunction_Check(c->a) && !PyWeakref_CheckRef(c->a)) {
        PyErr_Format(PyExc_TypeError, "Guard: %R needs a Python function or a weakref to one", t);
        return -1;
    }
    if (c->kind == K_SNAPSHOT) {
        if (snapshot_validate(c->a, c->b, c->c) < 0) return -1;
        if ((c->snapshot = snapshot_memo_new(c->a, c->b, c->c)) == NULL) return -1;
    }
    if (c->kind == K_PATHS && (c->paths = path_tree_new(c->a)) == NULL) return -1;
    if (c->kind == K_CALL_ID && (c->b == Py_True || c->b == Py_False)) c->registry = registry_of(c->a);
    if (c->kind == K_GLOBAL_ID && !PyDict_Check(c->a)) {
        PyErr_Format(PyExc_TypeError, "Guard: %R needs a globals dict", t);
        return -1;
    }
    return 0;
}

/* Give the tensor and call_id checks that the C++ module accepts their fast spec. */
static int setup_fast_path(Guard *self) {
    Py_ssize_t n_tensor = 0, n_call = 0;
    for (Py_ssize_t i = 0; i < self->n; i++) {
        n_tensor += self->checks[i].kind == K_TENSOR;
        n_call += self->checks[i].kind == K_CALL_ID;
    }
    const TensorCheckAPI *api = (n_tensor || n_call) ? fast_api_get() : NULL;
    if (api == NULL) return 0;
    if (n_tensor && (self->specs = PyMem_Calloc(n_tensor, sizeof(TensorSpec))) == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    TensorSpec *next = self->specs;
    for (Py_ssize_t i = 0; i < self->n; i++) {
        Check *c = &self->checks[i];
        if (c->kind == K_TENSOR && api->spec_from_check(c->a, c->b, c->c, c->d, c->e, c->f, next) == 0) {
            c->fast = next++;
            self->n_fast++;
        } else if (c->kind == K_CALL_ID && api->ambient_from_check(c->a, c->b, &c->ambient) == 0) {
            self->n_fast++;
        }
    }
    self->lead = guard_lead_new(self->checks, self->n, api);
    return 0;
}

/* A batch for a Guard with several snapshot checks (a model's modules). */
static int setup_batch(Guard *self) {
    Py_ssize_t n = 0;
    for (Py_ssize_t i = 0; i < self->n; i++) n += self->checks[i].kind == K_SNAPSHOT;
    if (n < 2) return 0;
    SnapshotMemo **memos = PyMem_Calloc(n, sizeof(SnapshotMemo *));
    if (memos == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    n = 0;
    for (Py_ssize_t i = 0; i < self->n; i++) {
        if (self->checks[i].kind == K_SNAPSHOT) memos[n++] = self->checks[i].snapshot;
    }
    self->batch = snapshot_batch_new(memos, n);
    self->n_rest = -1;
    PyMem_Free(memos);
    return self->batch == NULL ? -1 : 0;
}

static PyObject *guard_new(PyTypeObject *type, PyObject *args, PyObject *kwargs) {
    static char *kwlist[] = {"checks", "fallback", "batch", NULL};
    int batch = 1;
    PyObject *checks, *fallback = Py_None;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "O|Op:Guard", kwlist, &checks, &fallback, &batch)) return NULL;
    Guard *self = (Guard *)type->tp_alloc(type, 0);
    if (self == NULL) return NULL;
    self->fallback = fallback == Py_None ? NULL : Py_NewRef(fallback);
    self->spec = PySequence_Tuple(checks);
    if (self->spec == NULL) goto fail;
    self->n = PyTuple_GET_SIZE(self->spec);
    self->checks = PyMem_Calloc(self->n ? self->n : 1, sizeof(Check));
    if (self->checks == NULL) {
        PyErr_NoMemory();
        goto fail;
    }
    for (Py_ssize_t i = 0; i < self->n; i++) {
        if (parse_check(PyTuple_GET_ITEM(self->spec, i), &self->checks[i]) < 0) goto fail;
    }
    if (setup_fast_path(self) < 0 || (batch && setup_batch(self) < 0)) goto fail;
    return (PyObject *)self;
fail:
    Py_DECREF(self);
    return NULL;
}

static int guard_traverse(Guard *self, visitproc visit, void *arg) {
    Py_VISIT(self->spec);
    Py_VISIT(self->fallback);
    return 0;
}

static int guard_clear(Guard *self) {
    snapshot_batch_free(self->batch);  /* before the memos it points to */
    self->batch = NULL;
    for (Py_ssize_t i = 0; i < self->n; i++) {
        snapshot_memo_free(self->checks[i].snapshot);  /* it borrows from spec too */
        self->checks[i].snapshot = NULL;
        path_tree_free(self->checks[i].paths);
        self->checks[i].paths = NULL;
        Py_CLEAR(self->checks[i].registry);
    }
    self->n = 0;  /* the checks borrow from spec */
    Py_CLEAR(self->spec);
    Py_CLEAR(self->fallback);
    return 0;
}

static void guard_dealloc(Guard *self) {
    PyObject_GC_UnTrack(self);
    guard_clear(self);
    PyMem_Free(self->checks);
    PyMem_Free(self->specs);
    guard_lead_free(self->lead);
    PyMem_Free(self->rest);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyObject *guard_repr(Guard *self) {
    if (self->fallback) return PyUnicode_FromFormat("Guard(%R, fallback=%R)", self->spec, self->fallback);
    return PyUnicode_FromFormat("Guard(%R)", self->spec);
}

static PyObject *guard_check_method(Guard *self, PyObject *const *args, Py_ssize_t nargs) {
    int installed = eval_frame_watch();  /* called from Python: the hook may be off */
    int ok = guard_check((PyObject *)self, args, nargs);
    eval_frame_unwatch(installed);
    return ok < 0 ? NULL : PyBool_FromLong(ok);
}

static PyMethodDef guard_methods[] = {
    {"check", (PyCFunction)(void (*)(void))guard_check_method, METH_FASTCALL,
     "check(*args) -> bool: do the argument slots pass?"},
    {"explain", (PyCFunction)(void (*)(void))guard_explain, METH_FASTCALL,
     "explain(*args) -> str | None: the first failing check, described"},
    {NULL},
};

static PyMemberDef guard_members[] = {
    {"checks", T_OBJECT, offsetof(Guard, spec), READONLY, "the check tuples"},
    {"fallback", T_OBJECT, offsetof(Guard, fallback), READONLY, "fallback(*args) -> bool, or None"},
    {"fast_checks", T_PYSSIZET, offsetof(Guard, n_fast), READONLY,
     "how many tensor / call_id checks take the C++ fast path"},
    {NULL},
};

static PyObject *guard_get_batched(Guard *self, void *c) { return PyLong_FromSsize_t(snapshot_batch_size(self->batch)); }
static PyObject *guard_get_held(Guard *self, void *c) { return PyLong_FromSsize_t(snapshot_batch_held(self->batch)); }

static PyGetSetDef guard_getset[] = {
    {"batched", (getter)guard_get_batched, NULL, "how many snapshot checks the batch holds now", NULL},
    {"batch_held", (getter)guard_get_held, NULL, "of those, how many a table read before holds", NULL},
    {NULL},
};

PyTypeObject Guard_Type = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "terra_dyn._C.Guard",
    .tp_doc = "Guard(checks, fallback=None, batch=True): checks over argument slots, evaluated in C.",
    .tp_basicsize = sizeof(Guard),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    .tp_new = guard_new,
    .tp_dealloc = (destructor)guard_dealloc,
    .tp_traverse = (traverseproc)guard_traverse,
    .tp_clear = (inquiry)guard_clear,
    .tp_repr = (reprfunc)guard_repr,
    .tp_methods = guard_methods,
    .tp_members = guard_members,
    .tp_getset = guard_getset,
};
