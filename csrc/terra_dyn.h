/* Declarations shared by the C files of terra_dyn._C (see docs/CONTRACTS.md section 1).
 *
 *   eval_frame.c  the PEP 523 hook: per-thread callback, hit / miss / skip decision
 *   cache.c       per-code-object state in co_extra (skip mark + CacheEntry list), reset
 *   guards.c      Guard: the checks a cache entry runs over a frame's argument slots
 *   guard_explain.c  Guard.explain: the failing check in words (guard_types.h: the layout)
 *   snapshot.c    the Guard's snapshot check: many facts about one object pinned by identity
 *   snapshot_batch.c  a Guard's memoized snapshots checked together (snapshot_memo.h)
 *   split_keys.c  3.13: a snapshot's facts about a split instance dict read by key index
 *   path_check.c  the Guard's paths check: facts along attribute / item chains, as a tree
 *   callables.c   OptimizedCallable / DisabledCallable: set the thread's callback per call
 *   moves.c       calls whose arguments the callee's frame owns alone (liveness at breaks)
 *   direct_call.c a hit whose rewritten code only calls the graph: the graph called from C
 *   module.c      the module object and its functions
 *
 * frame_api.h is the version seam: CPython 3.11 / 3.12 / 3.13 differences in the internal
 * frame API (frame layout, who clears a frame the hook answers itself).
 *
 * tensor_check.h is the capsule interface of the optional C++ module
 * terra_dyn._tensor_check (tensor_check.cpp), the fast path of guards.c's tensor checks.
 */
#ifndef TERRA_DYN_H
#define TERRA_DYN_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <structmember.h>

/* co_extra under its 3.12+ name (the 3.11 names are deprecated aliases there). */
#if PY_VERSION_HEX < 0x030C0000
#define PyUnstable_Eval_RequestCodeExtraIndex _PyEval_RequestCodeExtraIndex
#define PyUnstable_Code_GetExtra _PyCode_GetExtra
#define PyUnstable_Code_SetExtra _PyCode_SetExtra
#endif

/* A weak reference's referent, borrowed (safe under the GIL while the weakref reports it
   alive), or None once dead. PyWeakref_GET_OBJECT is deprecated from 3.13, where it still
   reads the same two fields with the GIL: read them here (PyWeakref_GetRef, a call and a
   reference count each, was ~25 instructions of the ~410 weakrefs a BERT-12 call reads). */
static inline PyObject *weak_referent(PyObject *ref) {
#if PY_VERSION_HEX >= 0x030D0000 && !defined(Py_GIL_DISABLED)
    PyObject *obj = ((PyWeakReference *)ref)->wr_object;
    return Py_REFCNT(obj) > 0 ? obj : Py_None;  /* 0: dying, its weakrefs not cleared yet */
#elif PY_VERSION_HEX >= 0x030D0000
    PyObject *referent;
    if (PyWeakref_GetRef(ref, &referent) <= 0) {
        PyErr_Clear();
        return Py_None;
    }
    Py_DECREF(referent);
    return referent;
#else
    return PyWeakref_GET_OBJECT(ref);
#endif
}

/* A dict's version tag (PEP 509). Deprecated from 3.12 (dict watchers replace it for new
   uses) but still maintained on every write through 3.13; guards.c's global_id check and
   snapshot_batch.c only compare it for equality with a tag they read themselves. */
static inline uint64_t dict_version_tag(PyObject *dict) {
#if defined(__GNUC__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"
#endif
    return ((PyDictObject *)dict)->ma_version_tag;
#if defined(__GNUC__)
#pragma GCC diagnostic pop
#endif
}

/* The part of a dict's tag that only writes change: from 3.12 its low bits hold which
   watchers watch it (PyDict_Watch sets them), 3.13 adds a count of watched mutations
   (pycore_dict.h: DICT_MAX_WATCHERS 8, DICT_WATCHED_MUTATION_BITS 4); every write gives
   a new tag above them. */
static inline uint64_t dict_write_tag(PyObject *dict) {
#if PY_VERSION_HEX >= 0x030D0000
    return dict_version_tag(dict) >> 12;
#elif PY_VERSION_HEX >= 0x030C0000
    return dict_version_tag(dict) >> 8;
#else
    return dict_version_tag(dict);
#endif
}

/* T's version tag, 0 when it holds none (3.13 no longer sets Py_TPFLAGS_VALID_VERSION_TAG:
   a tag of 0 is the invalid one there). Any write to T or a class on its MRO gives a new one. */
static inline unsigned int type_tag_now(PyTypeObject *t) {
#if PY_VERSION_HEX >= 0x030D0000
    return t->tp_version_tag;
#else
    return PyType_HasFeature(t, Py_TPFLAGS_VALID_VERSION_TAG) ? t->tp_version_tag : 0;
#endif
}

/* ---- cache.c ---- */
typedef struct {
    PyObject_HEAD
    PyObject *guard;     /* a Guard */
    PyObject *code;      /* the rewritten code object (flattened signature) */
    PyObject *function;  /* function made from `code`, reused when it has no free vars */
    PyObject *direct;    /* the code's direct-call spec (direct_call.c), or NULL */
    PyObject *closure;   /* the code's closure Guard (over the cells' values), or NULL */
} CacheEntry;

extern PyTypeObject CacheEntry_Type;
extern PyObject *terra_SKIP;  /* the SKIP marker */
extern PyObject *terra_OFF;   /* the OFF marker: run the frame and its callees with the hook off */
extern PyObject *terra_ABSENT;  /* global_id's obj for "the dict lacks the name" (None is a value) */

typedef struct CodeExtra CodeExtra;
int cache_init(void);
CodeExtra *cache_lookup(PyCodeObject *code);           /* NULL: never seen */
CodeExtra *cache_get_or_create(PyCodeObject *code);    /* NULL + exception on failure */
int cache_is_skipped(CodeExtra *extra);
int cache_mark_skipped(PyCodeObject *code);  /* SKIP from the callback: reset() clears it */
int cache_mark_always(PyCodeObject *code);   /* skip_code(): survives reset() */
int cache_append(PyCodeObject *code, PyObject *entry);
PyObject *cache_entries_list(CodeExtra *extra);        /* borrowed list, may be NULL */
void cache_clear_code(PyCodeObject *code);
void cache_reset_all(void);
int cache_set_direct(PyCodeObject *code, PyObject *spec);  /* the spec new entries of code copy */
int cache_set_closure(PyCodeObject *code, PyObject *guard);  /* the closure Guard they copy */

/* ---- direct_call.c ---- (a cache entry that only calls its graph, run without its frame) */
PyObject *direct_call_set(PyObject *module, PyObject *const *args, Py_ssize_t nargs);

/* ---- guards.c ---- */
extern PyTypeObject Guard_Type;
/* 1 pass, 0 fail, -1 error (exception set: only from the Python fallback) */
int guard_check(PyObject *guard, PyObject *const *args, Py_ssize_t nargs);
int guard_tensor_check(PyObject *guard, PyObject *value);  /* a one-check tensor Guard on value */
const void *guard_tensor_spec(PyObject *guard);  /* its fast TensorSpec, or NULL */
int guard_spec_matches(const void *spec, PyObject *value);  /* 1 / 0 / -1: cannot tell */
int guard_tensors_match(void *entries, Py_ssize_t n);  /* TensorEntry[n] (tensor_check.h): 1 / 0 / -1 */
int guards_init(void);
int lacks_instance_attr(PyObject *obj, PyObject *name);  /* 1: obj's instance dict lacks name (or it has none) */
PyObject *guards_set_fast(PyObject *module, PyObject *flag);
PyObject *guards_type_version_tag(PyObject *module, PyObject *type);  /* type_version_tag(T) */         /* set_fast_guards(flag) */
PyObject *guards_fast_status(PyObject *module, PyObject *unused);    /* fast_guards_status() */

/* ---- snapshot.c ---- */
/* 1 pass, 0 fail (never raises); validate: 0, or -1 with an exception */
typedef struct SnapshotMemo SnapshotMemo;  /* one snapshot check and what it read (snapshot.c) */
int snapshot_validate(PyObject *target, PyObject *cls, PyObject *tables);
SnapshotMemo *snapshot_memo_new(PyObject *target, PyObject *cls, PyObject *tables);  /* after validate */
void snapshot_memo_free(SnapshotMemo *memo);
int snapshot_check(SnapshotMemo *memo);
/* A Guard's memoized snapshots checked together (snapshot_batch.c, "the batch") */
typedef struct SnapshotBatch SnapshotBatch;
SnapshotBatch *snapshot_batch_new(SnapshotMemo **memos, Py_ssize_t n);  /* NULL + exception */
void snapshot_batch_free(SnapshotBatch *batch);
int snapshot_batch_check(SnapshotBatch *batch);  /* 1: every batched memo holds; 0: dropped */
void snapshot_batch_build(SnapshotBatch *batch);  /* after a full pass */
int snapshot_is_batched(const SnapshotMemo *memo);
Py_ssize_t snapshot_batch_size(const SnapshotBatch *batch);  /* snapshots in a valid batch */
Py_ssize_t snapshot_batch_held(const SnapshotBatch *batch);  /* ... held by a table checked before */

/* ---- path_check.c ---- */
typedef struct PathTree PathTree;  /* a paths check's tree (borrows from its spec tuple) */
PathTree *path_tree_new(PyObject *roots);  /* NULL + exception when malformed */
void path_tree_free(PathTree *tree);
/* 1 pass, 0 fail, -1 an exception that is not an Exception (set) */
int path_check(PathTree *tree, PyObject *const *args, Py_ssize_t nargs);

/* ---- callables.c ---- */
PyObject *same_state(PyObject *module, PyObject *const *args, Py_ssize_t nargs);  /* same_state.c */

extern PyTypeObject OptimizedCallable_Type;
PyObject *callables_entry_calls(PyObject *module, PyObject *unused);
extern PyTypeObject DisabledCallable_Type;

/* ---- moves.c ---- (calls whose arguments the callee's frame owns alone) */
PyObject *moves_call(PyObject *fn, PyObject **slots, Py_ssize_t n);  /* clears the n owned slots */
PyObject *moves_call_kw(PyObject *fn, PyObject **slots, Py_ssize_t nargs, PyObject *kwnames);
PyObject *moves_moved_args(PyObject *module, PyObject *const *args, Py_ssize_t nargs);
PyObject *moves_call_moved(PyObject *module, PyObject *const *args, Py_ssize_t nargs);
PyObject *moves_caller_locals(PyObject *module, PyObject *unused);
PyObject *moves_moved_continue(PyObject *module, PyObject *const *args, Py_ssize_t nargs);
extern PyTypeObject Continue_Type;
extern Py_ssize_t moves_waiting;  /* non-zero: moves_enter(frame) may have work */

/* ---- eval_frame.c ---- */
/* Swap this thread's callback (new reference or NULL in, owned reference out). */
PyObject *eval_frame_swap_callback(PyObject *callback);
/* This thread's callback, or while a callback is being asked (hook off), that one; borrowed. */
PyObject *eval_frame_current_callback(void);
/* How many frames the hook was asked about: while it is installed, any Python code that
   runs (a user __eq__, property, __del__) moves it. watch: install it if no thread has (1:
   installed, undone by unwatch). */
extern uint64_t eval_frame_entered;
int eval_frame_watch(void);
void eval_frame_unwatch(int installed);

#endif
