/* Path checks: guard facts about values reached along attribute and item chains, read
 * once per shared prefix and checked in C (translate/guard_paths.py builds the tree).
 *
 *   ("paths", roots, info)     one Guard check (guards.c K_PATHS)
 *     roots   tuple of (root_kind, root, facts, children)
 *               root_kind 0 SLOT   root is the argument slot's index (an int)
 *                         1 CONST  root is the object itself
 *                         2 WEAK   root is a weakref.ref (a module, a parameter); dead: fail
 *     child   (step, arg, facts, children): the value read from its parent by
 *               step 0 ATTR     getattr(parent, arg)
 *                    1 GENERIC  object.__getattribute__(parent, arg)
 *                    2 ITEM     parent[arg]
 *     facts   tuple of (kind, a, b) about the node's value v:
 *               0 ID v is a      1 ID_WEAK v is a()   2 TYPE type(v) is a   3 EQ v == a
 *               4 TENSOR a.check(v), a one-check Guard   5 LEN len(v) == a
 *               6 KEYS list(v.keys()) == list(a)          7 KEY_IN (a in v) is b
 *               8 NO_ATTR v's instance dict lacks a (`a not in v.__dict__`)
 *               9 CALL a(v, *b) is true (same_state, check_tensor_layout, ...)
 *              10 SAME (v is w) is b, w read along a = (root_kind, root, ((step, arg), ...))
 *                 (an alias: two sources that held one object, `a2['labels'] is a2['input_ids']`)
 *     info    guard_paths.PathChecks: the facts as Python text, for explanations
 *
 * A node's facts are checked before its children are read (a type fact guards the reads
 * below it, as the Python predicate's order did); each value is read once however many
 * facts share its path. Any exception fails the check, except one that is not an
 * Exception (Ctrl-C: the user's), which the guard passes on.
 *
 * Example: `a0.config.use_cache is True` and `type(a0.config.vocab_size) is int` become
 *   ((0, 0, (), ((0, "config", (), ((0, "use_cache", ((0, True, None),), ()),
 *                                    (0, "vocab_size", ((2, int, None),), ()))),)),)
 */
#include "terra_dyn.h"

enum { R_SLOT, R_CONST, R_WEAK };
enum { S_ATTR, S_GENERIC, S_ITEM };
enum { F_ID, F_ID_WEAK, F_TYPE, F_EQ, F_TENSOR, F_LEN, F_KEYS, F_KEY_IN, F_NO_ATTR, F_CALL, F_SAME, F_KINDS };

typedef struct {
    int kind;
    PyObject *a, *b;  /* borrowed from the spec */
    Py_ssize_t n;     /* LEN: the length; KEY_IN: b is True */
} Fact;

/* What fixes a value's reads and facts (the memo, below): the object, its class and
   that class's version tag (its attributes, on the whole MRO), a class's own tag, its
   instance dict and that dict's write tag, an exact dict's own write tag. */
typedef struct {
    PyObject *obj;            /* compared only: dereferenced once known to be the value */
    PyTypeObject *type;
    unsigned int type_tag, own_tag;
    PyObject *dict;           /* the instance dict (NULL: none) */
    uint64_t dict_tag, tag;
} Stamp;

typedef struct PathNode {
    int step;              /* a root: its root kind */
    PyObject *arg;         /* name, key, root object or weakref; borrowed */
    Py_ssize_t slot;       /* SLOT roots */
    Py_ssize_t nfacts, nchildren;
    Fact *facts;
    struct PathNode *children;
    /* the memo: used while its root's `memo_ok` */
    int memo_ok;           /* a root: its last check passed and ran no Python code */
    int stamped;           /* `stamp` is the value's when its facts and reads last passed */
    int facts_fixed;       /* ... and its facts hold on any value with that stamp */
    int plain;             /* the read from the parent is fixed by the parent's stamp */
    PyObject *value;       /* the value that read gave (borrowed: what the stamp pins holds it) */
    Stamp stamp;
} PathNode;

struct PathTree {
    Py_ssize_t nroots;
    PathNode *roots;
};

static PyObject *s_keys, *s_getattribute, *s_dict, *s_code, *s_defaults, *s_kwdefaults;
static PyObject *object_getattribute, *type_getattribute;  /* object's and type's __getattribute__ */

static void node_free(PathNode *n) {
    for (Py_ssize_t i = 0; i < n->nchildren; i++) node_free(&n->children[i]);
    PyMem_Free(n->children);
    PyMem_Free(n->facts);
}

void path_tree_free(PathTree *t) {
    if (t == NULL) return;
    for (Py_ssize_t i = 0; i < t->nroots; i++) node_free(&t->roots[i]);
    PyMem_Free(t->roots);
    PyMem_Free(t);
}

static int parse_fact(PyObject *spec, Fact *f) {
    if (!PyTuple_Check(spec) || PyTuple_GET_SIZE(spec) != 3) goto bad;
    f->kind = (int)PyLong_AsLong(PyTuple_GET_ITEM(spec, 0));
    if (f->kind < 0 || f->kind >= F_KINDS) goto bad;
    f->a = PyTuple_GET_ITEM(spec, 1);
    f->b = PyTuple_GET_ITEM(spec, 2);
    switch (f->kind) {
    case F_ID_WEAK: if (!PyWeakref_CheckRef(f->a)) goto bad; break;
    case F_TYPE: if (!PyType_Check(f->a)) goto bad; break;
    case F_TENSOR: if (!PyObject_TypeCheck(f->a, &Guard_Type)) goto bad; break;
    case F_LEN: if ((f->n = PyLong_AsSsize_t(f->a)) < 0) goto bad; break;
    case F_KEYS: if (!PyTuple_Check(f->a)) goto bad; break;
    case F_KEY_IN: f->n = f->b == Py_True; break;
    case F_NO_ATTR: if (!PyUnicode_Check(f->a)) goto bad; break;
    case F_CALL: if (!PyCallable_Check(f->a) || !PyTuple_Check(f->b)) goto bad; break;
    case F_SAME: {
        if (!PyTuple_Check(f->a) || PyTuple_GET_SIZE(f->a) != 3 || !PyTuple_Check(PyTuple_GET_ITEM(f->a, 2))) goto bad;
        long root = PyLong_AsLong(PyTuple_GET_ITEM(f->a, 0));
        if (root < R_SLOT || root > R_WEAK) goto bad;
        if (root == R_SLOT && (f->n = PyLong_AsSsize_t(PyTuple_GET_ITEM(f->a, 1))) < 0) goto bad;
        if (root == R_WEAK && !PyWeakref_CheckRef(PyTuple_GET_ITEM(f->a, 1))) goto bad;
        PyObject *steps = PyTuple_GET_ITEM(f->a, 2);
        for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(steps); i++) {
            PyObject *step = PyTuple_GET_ITEM(steps, i);
            if (!PyTuple_Check(step) || PyTuple_GET_SIZE(step) != 2) goto bad;
            long kind = PyLong_AsLong(PyTuple_GET_ITEM(step, 0));
            if (kind < S_ATTR || kind > S_ITEM || (kind != S_ITEM && !PyUnicode_Check(PyTuple_GET_ITEM(step, 1)))) goto bad;
        }
        break;
    }
    }
    return 0;
bad:
    if (!PyErr_Occurred()) PyErr_Format(PyExc_ValueError, "Guard: malformed path fact %R", spec);
    return -1;
}

/* spec: (step_or_root_kind, arg, facts, children) */
static int parse_node(PyObject *spec, PathNode *n, int is_root) {
    if (!PyTuple_Check(spec) || PyTuple_GET_SIZE(spec) != 4 || !PyTuple_Check(PyTuple_GET_ITEM(spec, 2)) ||
        !PyTuple_Check(PyTuple_GET_ITEM(spec, 3))) {
        PyErr_Format(PyExc_ValueError, "Guard: malformed path node %R", spec);
        return -1;
    }
    n->step = (int)PyLong_AsLong(PyTuple_GET_ITEM(spec, 0));
    n->arg = PyTuple_GET_ITEM(spec, 1);
    int bad = n->step < 0 || n->step > 2;
    if (!bad && is_root && n->step == R_SLOT) bad = (n->slot = PyLong_AsSsize_t(n->arg)) < 0;
    if (!bad && is_root && n->step == R_WEAK) bad = !PyWeakref_CheckRef(n->arg);
    if (!bad && !is_root && n->step != S_ITEM) bad = !PyUnicode_Check(n->arg);
    if (bad) {
        if (!PyErr_Occurred()) PyErr_Format(PyExc_ValueError, "Guard: malformed path node %R", spec);
        return -1;
    }
    PyObject *facts = PyTuple_GET_ITEM(spec, 2), *children = PyTuple_GET_ITEM(spec, 3);
    n->nfacts = PyTuple_GET_SIZE(facts);
    n->nchildren = PyTuple_GET_SIZE(children);
    n->facts = PyMem_Calloc(n->nfacts ? n->nfacts : 1, sizeof(Fact));
    n->children = PyMem_Calloc(n->nchildren ? n->nchildren : 1, sizeof(PathNode));
    if (n->facts == NULL || n->children == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    for (Py_ssize_t i = 0; i < n->nfacts; i++) {
        if (parse_fact(PyTuple_GET_ITEM(facts, i), &n->facts[i]) < 0) return -1;
    }
    for (Py_ssize_t i = 0; i < n->nchildren; i++) {
        if (parse_node(PyTuple_GET_ITEM(children, i), &n->children[i], 0) < 0) return -1;
    }
    return 0;
}

PathTree *path_tree_new(PyObject *roots) {
    if (s_keys == NULL) {
        s_keys = PyUnicode_InternFromString("keys");
        s_getattribute = PyUnicode_InternFromString("__getattribute__");
        s_dict = PyUnicode_InternFromString("__dict__");
        s_code = PyUnicode_InternFromString("__code__");
        s_defaults = PyUnicode_InternFromString("__defaults__");
        s_kwdefaults = PyUnicode_InternFromString("__kwdefaults__");
        if (s_keys == NULL || s_getattribute == NULL || s_dict == NULL || s_code == NULL || s_defaults == NULL ||
            s_kwdefaults == NULL) {
            return NULL;
        }
        object_getattribute = _PyType_Lookup(&PyBaseObject_Type, s_getattribute);  /* immortal enough: */
        type_getattribute = _PyType_Lookup(&PyType_Type, s_getattribute);         /* builtin types' */
    }
    if (!PyTuple_Check(roots)) {
        PyErr_Format(PyExc_TypeError, "Guard: path roots must be a tuple, got %R", roots);
        return NULL;
    }
    PathTree *t = PyMem_Calloc(1, sizeof(PathTree));
    if (t == NULL) return (PathTree *)PyErr_NoMemory();
    t->nroots = PyTuple_GET_SIZE(roots);
    t->roots = PyMem_Calloc(t->nroots ? t->nroots : 1, sizeof(PathNode));
    if (t->roots == NULL) {
        PyMem_Free(t);
        return (PathTree *)PyErr_NoMemory();
    }
    for (Py_ssize_t i = 0; i < t->nroots; i++) {
        if (parse_node(PyTuple_GET_ITEM(roots, i), &t->roots[i], 1) < 0) {
            path_tree_free(t);
            return NULL;
        }
    }
    return t;
}

/* ---- checking ---- */

/* key is want: the same type and equal (a key == "a" of another type is another key to
   the code that read it: guard_checks.keys_are, the Python reading). 1 / 0 / -1. */
static int key_is(PyObject *key, PyObject *want) {
    if (key == want) return 1;
    if (Py_TYPE(key) != Py_TYPE(want)) return 0;
    Py_INCREF(key);  /* its __eq__ may drop it from the dict */
    int eq = PyObject_RichCompareBool(key, want, Py_EQ);
    Py_DECREF(key);
    return eq;
}

/* The keys of v are want's, in order: a plain dict's own order; anything else through its
   keys(). A key's __eq__ may change v: its size is read again after each comparison. */
static int keys_are(PyObject *v, PyObject *want) {
    Py_ssize_t n = PyTuple_GET_SIZE(want);
    if (PyDict_CheckExact(v)) {
        if (PyDict_GET_SIZE(v) != n) return 0;
        Py_ssize_t pos = 0, i = 0;
        PyObject *key, *value;
        while (i < n && PyDict_Next(v, &pos, &key, &value)) {
            int eq = key_is(key, PyTuple_GET_ITEM(want, i++));
            if (eq != 1) return eq;
            if (PyDict_GET_SIZE(v) != n) return 0;
        }
        return i == n;
    }
    PyObject *keys = PyObject_CallMethodNoArgs(v, s_keys);
    PyObject *list = keys ? PySequence_List(keys) : NULL;
    Py_XDECREF(keys);
    if (list == NULL) return -1;
    int ok = PyList_GET_SIZE(list) == n;
    for (Py_ssize_t i = 0; ok == 1 && i < n && i < PyList_GET_SIZE(list); i++) {
        ok = key_is(PyList_GET_ITEM(list, i), PyTuple_GET_ITEM(want, i));
        if (ok == 1 && PyList_GET_SIZE(list) != n) ok = 0;
    }
    Py_DECREF(list);
    return ok;
}

static PyObject *read_other(const Fact *f, PyObject *const *args, Py_ssize_t nargs);

/* 1 holds, 0 not, -1 error */
static int fact_holds(const Fact *f, PyObject *v, PyObject *const *args, Py_ssize_t nargs) {
    switch (f->kind) {
    case F_ID: return v == f->a;
    case F_ID_WEAK: {
        PyObject *referent = weak_referent(f->a);
        return referent != Py_None && v == referent;
    }
    case F_TYPE: return Py_TYPE(v) == (PyTypeObject *)f->a;
    case F_EQ: {  /* `v == a` as Python reads it (no identity shortcut: a NaN is unequal) */
        PyObject *r = PyObject_RichCompare(v, f->a, Py_EQ);
        if (r == NULL) return -1;
        int ok = PyObject_IsTrue(r);
        Py_DECREF(r);
        return ok;
    }
    case F_TENSOR: return guard_tensor_check(f->a, v);
    case F_LEN: {
        Py_ssize_t n = PyObject_Length(v);
        return n < 0 ? -1 : n == f->n;
    }
    case F_KEYS: return keys_are(v, f->a);
    case F_KEY_IN: {
        int r = PySequence_Contains(v, f->a);
        return r < 0 ? -1 : r == f->n;
    }
    /* `a not in getattr(v, '__dict__', ())`, read where attribute lookup reads: the
       instance dict itself, not through a Python __getattribute__ (a transformers
       config's: ~1 us a read) or a `__dict__` property */
    case F_NO_ATTR: return lacks_instance_attr(v, f->a);
    case F_CALL: {
        Py_ssize_t nextra = PyTuple_GET_SIZE(f->b);
        PyObject *stack[8];
        if (nextra > 7) return -1;
        stack[0] = v;
        for (Py_ssize_t i = 0; i < nextra; i++) stack[i + 1] = PyTuple_GET_ITEM(f->b, i);
        PyObject *r = PyObject_Vectorcall(f->a, stack, nextra + 1, NULL);
        if (r == NULL) return -1;
        int ok = PyObject_IsTrue(r);
        Py_DECREF(r);
        return ok;
    }
    case F_SAME: {
        PyObject *w = read_other(f, args, nargs);
        if (w == NULL) return PyErr_Occurred() ? -1 : 0;
        int same = v == w;
        Py_DECREF(w);
        return same == (f->b == Py_True);
    }
    }
    return 0;
}

/* A function's __code__, __defaults__ or __kwdefaults__ (data descriptors of a type no one
   can patch) without the `object.__getattr__` audit event each raises: eager code never
   reads them here, and a Python audit hook (filelock's, on 3.12+) would be user code run by
   every check, which turns the memo off and makes the guard check itself twice (guards.c).
   NULL: another attribute. */
static PyObject *function_field(PyObject *f, PyObject *arg) {
    PyObject *v;
    if (arg == s_code) v = PyFunction_GET_CODE(f);
    else if (arg == s_defaults) v = PyFunction_GET_DEFAULTS(f);
    else if (arg == s_kwdefaults) v = PyFunction_GET_KW_DEFAULTS(f);
    else return NULL;
    return Py_NewRef(v ? v : Py_None);
}

static PyObject *read_step(int step, PyObject *arg, PyObject *parent) {
    if (step != S_ITEM && PyFunction_Check(parent)) {
        PyObject *interned = Py_NewRef(arg), *v;
        if (PyUnicode_CheckExact(interned)) PyUnicode_InternInPlace(&interned);
        v = function_field(parent, interned);
        Py_DECREF(interned);
        if (v != NULL) return v;
    }
    switch (step) {
    case S_ATTR: return PyObject_GetAttr(parent, arg);
    case S_GENERIC: return PyObject_GenericGetAttr(parent, arg);
    default: return PyObject_GetItem(parent, arg);
    }
}

/* A root's object (borrowed), or NULL when it has none: a missing slot, a dead referent. */
static PyObject *root_object(int kind, PyObject *root, Py_ssize_t slot, PyObject *const *args, Py_ssize_t nargs) {
    if (kind == R_SLOT) return slot < nargs ? args[slot] : NULL;
    if (kind == R_WEAK) {
        PyObject *obj = weak_referent(root);
        return obj == Py_None ? NULL : obj;
    }
    return root;
}

/* SAME: the other path's value (new reference), or NULL (an exception set, or none when
   its root has no object). */
static PyObject *read_other(const Fact *f, PyObject *const *args, Py_ssize_t nargs) {
    PyObject *root = root_object((int)PyLong_AsLong(PyTuple_GET_ITEM(f->a, 0)), PyTuple_GET_ITEM(f->a, 1), f->n,
                                 args, nargs);
    if (root == NULL) return NULL;
    PyObject *v = Py_NewRef(root), *steps = PyTuple_GET_ITEM(f->a, 2);
    for (Py_ssize_t i = 0; v != NULL && i < PyTuple_GET_SIZE(steps); i++) {
        PyObject *step = PyTuple_GET_ITEM(steps, i);
        PyObject *next = read_step((int)PyLong_AsLong(PyTuple_GET_ITEM(step, 0)), PyTuple_GET_ITEM(step, 1), v);
        Py_DECREF(v);
        v = next;
    }
    return v;
}

/* ---- the memo ----
 * A value whose stamp is what it was when its facts last held, read again, would give the
 * same answers: its facts where each is fixed by the stamp (ID, TYPE, EQ of an immutable
 * value, an exact dict's keys, length and membership, the instance dict's keys), and the
 * same child for each read that is "plain": an exact dict's item (its write tag), or an
 * attribute found by generic lookup in the instance dict or on the class as a plain value
 * (not a descriptor) with no data descriptor in front (the class's version tag covers the
 * MRO; a class object's own tag covers its attributes). A child so fixed is alive: the dict
 * the stamp pins holds it. Such values and subtrees are not read again. A root's memo is
 * used only after a check that passed and ran no Python code (eval_frame_entered: a user
 * __getattr__ or __eq__ may answer differently each time), and only for pinned roots and
 * slots whose identity is a fact (another slot's object may be a new one at a freed one's
 * address). 3.13: a dict sharing an
 * object's inline values takes writes with no new tag: never stamped. */

static int dict_taggable(PyObject *d) {
#if PY_VERSION_HEX >= 0x030D0000
    return ((PyDictObject *)d)->ma_values == NULL;
#else
    return 1;
#endif
}

/* v's instance dict without making one (3.13: never one over inline values); 0: none, 1:
   *dict, -1: cannot tell */
static int dict_of(PyObject *v, PyObject **dict) {
    *dict = NULL;
    if (PyType_Check(v)) return 0;  /* its own tag covers its __dict__ */
#if PY_VERSION_HEX >= 0x030D0000
    if (PyType_HasFeature(Py_TYPE(v), Py_TPFLAGS_MANAGED_DICT)) return -1;
#endif
    PyObject **ptr = _PyObject_GetDictPtr(v);
    if (ptr == NULL || *ptr == NULL) return 0;
    *dict = *ptr;
    return dict_taggable(*dict) ? 1 : -1;
}

static int stamp_take(PyObject *v, Stamp *s) {
    PyTypeObject *t = Py_TYPE(v);
    *s = (Stamp){v, t, type_tag_now(t), 0, NULL, 0, 0};
    if (s->type_tag == 0 || dict_of(v, &s->dict) < 0) return 0;
    if (PyType_Check(v) && (s->own_tag = type_tag_now((PyTypeObject *)v)) == 0) return 0;
    if (s->dict != NULL) s->dict_tag = dict_write_tag(s->dict);
    if (PyDict_CheckExact(v)) {
        if (!dict_taggable(v)) return 0;
        s->tag = dict_write_tag(v);
    }
    return 1;
}

static int stamp_holds(const Stamp *s, PyObject *v) {
    if (v != s->obj || Py_TYPE(v) != s->type || type_tag_now(s->type) != s->type_tag) return 0;
    if (s->own_tag != 0 && type_tag_now((PyTypeObject *)v) != s->own_tag) return 0;
    PyObject *dict;
    if (dict_of(v, &dict) < 0 || dict != s->dict || (dict != NULL && dict_write_tag(dict) != s->dict_tag)) return 0;
    return !PyDict_CheckExact(v) || dict_write_tag(v) == s->tag;
}

static int is_data_descriptor(PyObject *d) {
    return d != NULL && Py_TYPE(d)->tp_descr_get != NULL && Py_TYPE(d)->tp_descr_set != NULL;
}

/* Is `got`, read from parent by step, fixed by parent's stamp? (Asked right after the read,
   which ran no Python code.) */
static int read_is_plain(PyObject *parent, int step, PyObject *arg, PyObject *got) {
    PyTypeObject *t = Py_TYPE(parent);
    if (step == S_ITEM) return PyDict_CheckExact(parent) && (PyUnicode_CheckExact(arg) || PyLong_CheckExact(arg));
    if (!PyUnicode_CheckExact(arg)) return 0;
    if (PyType_Check(parent)) {  /* a class's attribute: type.__getattribute__ */
        if (step == S_ATTR && t->tp_getattro != PyType_Type.tp_getattro &&
            _PyType_Lookup(t, s_getattribute) != type_getattribute) return 0;
        if (step == S_GENERIC) return 0;
        PyObject *meta = _PyType_Lookup(t, arg), *attr = _PyType_Lookup((PyTypeObject *)parent, arg);
        if (is_data_descriptor(meta)) return 0;
        if (attr != NULL) return attr == got && Py_TYPE(attr)->tp_descr_get == NULL;
        return meta == got && meta != NULL && Py_TYPE(meta)->tp_descr_get == NULL;
    }
    if (step == S_ATTR && t->tp_getattro != PyObject_GenericGetAttr &&
        !(PyModule_CheckExact(parent) && t->tp_getattro == PyModule_Type.tp_getattro) &&
        _PyType_Lookup(t, s_getattribute) != object_getattribute) return 0;
    PyObject *descr = _PyType_Lookup(t, arg), *dict;
    if (dict_of(parent, &dict) < 0) return 0;
    if (is_data_descriptor(descr)) {  /* only `__dict__`, the instance dict itself */
        return dict != NULL && got == dict && PyUnicode_Compare(arg, s_dict) == 0 &&
               Py_IS_TYPE(descr, &PyGetSetDescr_Type);
    }
    if (dict != NULL) {
        PyObject *v = PyDict_GetItemWithError(dict, arg);  /* exact str key: no user code */
        if (v != NULL) return v == got;
        PyErr_Clear();
    }
    return descr != NULL && descr == got && Py_TYPE(descr)->tp_descr_get == NULL;
}

static int is_immutable(PyObject *v) {
    return v == Py_None || PyLong_CheckExact(v) || PyFloat_CheckExact(v) || PyBool_Check(v) ||
           PyUnicode_CheckExact(v) || PyBytes_CheckExact(v);
}

/* Every fact of n holds on any value with v's stamp (they all held on v). */
static int facts_fixed(const PathNode *n, PyObject *v) {
    for (Py_ssize_t i = 0; i < n->nfacts; i++) {
        const Fact *f = &n->facts[i];
        int fixed = 0;
        switch (f->kind) {
        case F_ID: case F_ID_WEAK: case F_TYPE: case F_NO_ATTR: fixed = 1; break;
        case F_EQ: fixed = is_immutable(v) && is_immutable(f->a); break;
        case F_KEYS: fixed = PyDict_CheckExact(v); break;
        case F_KEY_IN: fixed = PyDict_CheckExact(v) && (PyUnicode_CheckExact(f->a) || PyLong_CheckExact(f->a)); break;
        case F_LEN: fixed = PyDict_CheckExact(v) || PyTuple_CheckExact(v) || PyUnicode_CheckExact(v); break;
        }
        if (!fixed) return 0;
    }
    return 1;
}

/* use: 1 the root's memo may be used, 0 it is recorded, -1 neither (a slot's root) */
static int node_holds(PathNode *n, PyObject *v, PyObject *const *args, Py_ssize_t nargs, int use) {
    int same = use == 1 && n->stamped && stamp_holds(&n->stamp, v);
    if (!(same && n->facts_fixed)) {
        for (Py_ssize_t i = 0; i < n->nfacts; i++) {
            int r = fact_holds(&n->facts[i], v, args, nargs);
            if (r != 1) return r;
        }
    }
    /* stamped before its reads (which run no Python code when the memo is kept): a value
       that cannot be stamped (3.13's inline values) costs no plain-read test */
    if (!same && use >= 0) {
        n->stamped = stamp_take(v, &n->stamp);
        n->facts_fixed = n->stamped && facts_fixed(n, v);
    }
    for (Py_ssize_t i = 0; i < n->nchildren; i++) {
        PathNode *c = &n->children[i];
        PyObject *child;
        if (same && c->plain) {
            child = Py_NewRef(c->value);
        } else {
            if ((child = read_step(c->step, c->arg, v)) == NULL) return -1;
            c->value = child;
            c->plain = use >= 0 && n->stamped && read_is_plain(v, c->step, c->arg, child);
        }
        int r = node_holds(c, child, args, nargs, use);
        Py_DECREF(child);
        if (r != 1) return r;
    }
    return 1;
}

/* A slot's root with an identity fact is the very object the spec holds once that fact held,
   so its memo is as safe as a pinned root's: a stamp equal to the last one names that
   object (a transformers wrapper's closure: its `func` cell, ~40 reads a call). */
static int root_is_pinned(const PathNode *n) {
    if (n->step != R_SLOT) return 1;
    for (Py_ssize_t i = 0; i < n->nfacts; i++) {
        if (n->facts[i].kind == F_ID) return 1;
    }
    return 0;
}

/* 1 pass, 0 fail, -1 an exception that is not an Exception (left set) */
int path_check(PathTree *t, PyObject *const *args, Py_ssize_t nargs) {
    for (Py_ssize_t i = 0; i < t->nroots; i++) {
        PathNode *n = &t->roots[i];
        PyObject *root = root_object(n->step, n->arg, n->slot, args, nargs);
        if (root == NULL) return 0;
        Py_INCREF(root);  /* a read below may drop what held it */
        int pinned = root_is_pinned(n), use = pinned ? n->memo_ok : -1;
        uint64_t seen = eval_frame_entered;
        n->memo_ok = 0;
        int r = node_holds(n, root, args, nargs, use);
        Py_DECREF(root);
        if (r == 1) {
            n->memo_ok = pinned && eval_frame_entered == seen;
            continue;
        }
        if (r < 0 && PyErr_Occurred()) {
            if (!PyErr_ExceptionMatches(PyExc_Exception)) return -1;
            PyErr_Clear();
        }
        return 0;
    }
    return 1;
}
