/* The PEP 523 frame-evaluation hook.
 *
 *   call f(...) -> CPython pushes f's frame -> terra_eval_frame(frame)
 *     no callback on this thread, generator/coroutine code, skip mark -> run the frame
 *     an entry whose guard passes -> (its closure Guard fails on the cells' values: run the frame)
 *                                    call entry.function(*argument slots), frame untouched
 *                                    (or, a graph call only, the graph itself: direct_call.c)
 *     miss -> callback(frame object) with the hook off on this thread, then:
 *          None -> run the frame;  SKIP -> mark the code, run the frame;
 *          OFF -> run the frame with the hook off on this thread (nothing it calls is asked);
 *          CacheEntry -> append to the code's cache, call it as on a hit
 *
 * The callback is per thread (a C thread-local); the hook itself is per interpreter and
 * installed while at least one thread has a callback, so a process that never calls
 * an optimized function keeps CPython's inlined Python-to-Python calls.
 *
 * CPython facts this relies on (3.11-3.13): an unstarted frame's argument slots are
 * localsplus[0..n) with MAKE_CELL / COPY_FREE_VARS not yet run, so they are the raw
 * argument values the rewritten function (with the same closure) expects. Who clears
 * and pops a frame the hook answers itself differs by version: frame_api.h.
 */
#include "frame_api.h"

static _Thread_local PyObject *thread_callback = NULL;  /* owned reference or NULL */
/* The callback being asked about a frame (borrowed; NULL when none): while it runs the hook
   is off, yet its guards must still compare against it (a cache entry belongs to the
   callback, i.e. the backend and options, that made it). */
static _Thread_local PyObject *asking_callback = NULL;
static Py_ssize_t threads_with_callback = 0;            /* guarded by the GIL */
uint64_t eval_frame_entered = 0;  /* frames the hook was asked about: Python code ran (GIL) */

static PyObject *terra_eval_frame(PyThreadState *tstate, _PyInterpreterFrame *frame, int throwflag);
void moves_enter(_PyInterpreterFrame *frame);  /* moves.c */
PyObject *direct_call_run(PyObject *spec, PyThreadState *tstate, _PyInterpreterFrame *frame, int *rerun);

static void install_hook(int on) {
    PyInterpreterState *interp = PyInterpreterState_Get();
    /* NULL (not _PyEval_EvalFrameDefault) when off: 3.11 only inlines Python-to-Python
       calls when interp->eval_frame is NULL. */
    _PyInterpreterState_SetEvalFrameFunc(interp, on ? terra_eval_frame : NULL);
}

PyObject *eval_frame_swap_callback(PyObject *callback) {
    PyObject *previous = thread_callback;
    thread_callback = callback;
    if ((previous == NULL) != (callback == NULL)) {
        threads_with_callback += callback ? 1 : -1;
        if (threads_with_callback == (callback ? 1 : 0)) install_hook(callback != NULL);
    }
    return previous;
}

/* Guard.check called from Python: the hook installed while it checks, so that Python code
   a check runs is counted (eval_frame_entered). 1: installed here (eval_frame_unwatch). */
int eval_frame_watch(void) {
    if (threads_with_callback) return 0;
    install_hook(1);
    return 1;
}

void eval_frame_unwatch(int installed) {
    if (installed && threads_with_callback == 0) install_hook(0);
}

PyObject *eval_frame_current_callback(void) {
    return thread_callback ? thread_callback : asking_callback;
}

static Py_ssize_t argument_slot_count(PyCodeObject *code) {
    return code->co_argcount + code->co_kwonlyargcount + !!(code->co_flags & CO_VARARGS) +
           !!(code->co_flags & CO_VARKEYWORDS);
}

/* Is `code` a continuation of `original` (its resume function or step code, translated
   or not, or the original itself re-run after a graph raised)? Asked only when the names,
   file and first line already match, i.e. on a few exception paths: the table of cuts and
   translations is Python's (terra_dyn/tracebacks.py). */
static int continues(PyCodeObject *original, PyCodeObject *code) {
    if (code == original) return 1;
    PyObject *module = PyImport_ImportModule("terra_dyn.tracebacks");
    PyObject *answer = module ? PyObject_CallMethod(module, "continues", "OO", original, code) : NULL;
    Py_XDECREF(module);
    int yes = answer == Py_True;
    Py_XDECREF(answer);
    return yes;
}

/* An exception leaving rewritten code after a break carries two entries for the user's
   function: the rewritten frame at the break, then the continuation at the raise (the
   trampoline's own frames are already gone, tracebacks.py). Keep the second, as eager
   shows one entry at the raise. */
static PyCodeObject *entry_code(PyTracebackObject *tb) {
    PyCodeObject *code = PyFrame_GetCode(tb->tb_frame);
    Py_DECREF(code);  /* borrowed: the entry's frame keeps it alive */
    return code;
}

static void drop_rewritten_entry(PyThreadState *tstate, PyCodeObject *original, PyCodeObject *rewritten) {
    PyTracebackObject *tb = (PyTracebackObject *)exception_traceback(tstate);
    if (tb == NULL || tb->tb_next == NULL || entry_code(tb) != rewritten) return;
    PyCodeObject *next = entry_code(tb->tb_next);
    if (next == rewritten || next->co_firstlineno != original->co_firstlineno ||
        PyUnicode_Compare(next->co_name, original->co_name) != 0 ||
        PyUnicode_Compare(next->co_filename, original->co_filename) != 0) {
        return;  /* (both are str: Compare cannot fail) */
    }
    PyObject *exc_type, *exc_value, *exc_tb;
    PyErr_Fetch(&exc_type, &exc_value, &exc_tb);
    int yes = continues(original, next);
    PyErr_Clear();
    PyErr_Restore(exc_type, exc_value, exc_tb);
    if (yes) exception_set_traceback(tstate, (PyObject *)tb->tb_next);
}

/* Call the entry's rewritten code with the frame's argument slots. */
static PyObject *run_entry(CacheEntry *entry, _PyInterpreterFrame *frame) {
    PyObject *fn = entry->function;
    PyCodeObject *code = (PyCodeObject *)entry->code;
    if (fn == NULL || ((PyFunctionObject *)fn)->func_globals != frame->f_globals) {
        fn = PyFunction_New(entry->code, frame->f_globals);
        if (fn == NULL) return NULL;
        PyObject *closure = frame_closure(frame);
        if (code->co_nfreevars && closure && PyFunction_SetClosure(fn, closure) < 0) {
            Py_DECREF(fn);
            return NULL;
        }
        /* Free variables belong to this call's closure: only closure-free code is reused. */
        if (code->co_nfreevars == 0) Py_XSETREF(entry->function, Py_NewRef(fn));
    } else {
        Py_INCREF(fn);
    }
    /* Moved, not copied: the original frame's slots are emptied once the rewritten frame
       holds the values (moves.c), so a `del x` there frees x as in the original; unless
       someone kept the frame's object (a callback), who may read its locals later. */
    Py_ssize_t nargs = argument_slot_count(frame_code(frame));
    PyObject *result = frame->frame_obj != NULL && Py_REFCNT(frame->frame_obj) > 1
                           ? PyObject_Vectorcall(fn, frame->localsplus, nargs, NULL)
                           : moves_call(fn, frame->localsplus, nargs);
    Py_DECREF(fn);
    if (result == NULL) drop_rewritten_entry(PyThreadState_Get(), frame_code(frame), code);
    return result;
}

/* Does the entry's code take this frame's argument slots and closure? A mismatch would
   make its COPY_FREE_VARS read past the closure: refuse it like a wrong answer. */
static int entry_fits(PyObject *entry, PyCodeObject *code) {
    PyCodeObject *rewritten = (PyCodeObject *)((CacheEntry *)entry)->code;
    if (rewritten->co_argcount == argument_slot_count(code) && rewritten->co_nfreevars == code->co_nfreevars) {
        return 1;
    }
    PyErr_Format(PyExc_TypeError,
                 "the CacheEntry's code takes %d arguments and %d free variables; the frame has "
                 "%zd argument slots and %d free variables",
                 rewritten->co_argcount, rewritten->co_nfreevars, argument_slot_count(code),
                 code->co_nfreevars);
    return 0;
}

/* The first entry whose guard passes (new reference), or NULL: a miss, or with an
   exception set, a KeyboardInterrupt (or other non-Exception) raised inside a guard. */
static PyObject *find_entry(CodeExtra *extra, _PyInterpreterFrame *frame) {
    PyObject *entries = cache_entries_list(extra);
    if (entries == NULL) return NULL;
    Py_ssize_t nargs = argument_slot_count(frame_code(frame));
    Py_INCREF(entries);  /* a guard's fallback may call reset() */
    PyObject *found = NULL;
    for (Py_ssize_t i = 0; i < PyList_GET_SIZE(entries) && found == NULL; i++) {
        CacheEntry *e = (CacheEntry *)Py_NewRef(PyList_GET_ITEM(entries, i));  /* held: see above */
        int ok = guard_check(e->guard, frame->localsplus, nargs);
        if (ok == 1) {
            found = (PyObject *)e;
        } else {
            Py_DECREF(e);
            if (ok < 0) break;
        }
    }
    Py_DECREF(entries);
    return found;
}

/* The entry's closure Guard on the frame's cell values, in co_freevars order (codegen left
   the check out of the rewritten code): 1 holds; 0 fails, or a cell is empty (the original
   code then runs, and raises NameError where the user reads it); -1 a Ctrl-C in a check.
   The values are held while it runs: a check's Python code may rebind a cell. */
static int closure_holds(CacheEntry *entry, _PyInterpreterFrame *frame) {
    PyObject *closure = frame_closure(frame);
    Py_ssize_t n = ((PyCodeObject *)entry->code)->co_nfreevars;
    if (closure == NULL || PyTuple_GET_SIZE(closure) != n) return 0;
    PyObject *small[8];
    PyObject **values = n <= 8 ? small : PyMem_Malloc(n * sizeof(PyObject *));
    if (values == NULL) return 0;
    Py_ssize_t held = 0;
    for (; held < n; held++) {
        PyObject *v = PyCell_GET(PyTuple_GET_ITEM(closure, held));
        if (v == NULL) break;
        values[held] = Py_NewRef(v);
    }
    int ok = held == n ? guard_check(entry->closure, values, n) : 0;
    for (Py_ssize_t i = 0; i < held; i++) Py_DECREF(values[i]);
    if (values != small) PyMem_Free(values);
    return ok;
}

/* terra_dyn.config.strict, read from sys.modules without importing (slow path only). */
static int strict_mode(void) {
    PyObject *name = PyUnicode_FromString("terra_dyn.config");
    PyObject *config = name ? PyImport_GetModule(name) : NULL;
    Py_XDECREF(name);
    PyObject *flag = config ? PyObject_GetAttrString(config, "strict") : NULL;
    int strict = flag ? PyObject_IsTrue(flag) == 1 : 0;
    Py_XDECREF(flag);
    Py_XDECREF(config);
    PyErr_Clear();
    return strict;
}

/* The callback failed (exception set) or returned `bad` (not NULL): warn and run the
   original frame, or, in strict mode, propagate. Returns 0 to fall back, -1 to raise. */
static int callback_failed(PyCodeObject *code, PyObject *bad) {
    if (bad != NULL) {
        PyErr_Format(PyExc_TypeError,
                     "the callback must return None, terra_dyn._C.SKIP, terra_dyn._C.OFF or a CacheEntry, not %.100s",
                     Py_TYPE(bad)->tp_name);
    }
    PyObject *type, *value, *tb;
    PyErr_Fetch(&type, &value, &tb);
    /* KeyboardInterrupt, SystemExit and other BaseExceptions that are not Exceptions are
       the user's, arriving while the translator happened to run: they propagate at once,
       strict or not (a warning would swallow a Ctrl-C and the loop would run on). */
    if (!PyErr_GivenExceptionMatches(type, PyExc_Exception) || strict_mode()) {
        PyErr_Restore(type, value, tb);
        return -1;
    }
    PyErr_NormalizeException(&type, &value, &tb);
    /* The warnings machinery is Python code: keep the hook off while it runs. */
    PyObject *saved = eval_frame_swap_callback(NULL);
    int rc = PyErr_WarnFormat(PyExc_RuntimeWarning, 1,
                              "terra_dyn could not optimize %U (%U:%d): %s: %S; running the original code",
                              code->co_qualname, code->co_filename, code->co_firstlineno,
                              ((PyTypeObject *)type)->tp_name, value ? value : Py_None);
    Py_XDECREF(eval_frame_swap_callback(saved));
    Py_XDECREF(type);
    Py_XDECREF(value);
    Py_XDECREF(tb);
    return rc;  /* -1 when warnings are errors: then the warning propagates */
}

/* Ask the callback about this frame, with the hook off on this thread while it runs.
   Returns a new reference: None, SKIP or a CacheEntry; NULL with an exception set. */
static PyObject *ask_callback(PyObject *callback, PyThreadState *tstate, _PyInterpreterFrame *frame) {
    PyFrameObject *f = frame_object(tstate, frame);
    if (f == NULL) return NULL;
    Py_INCREF(callback);
    PyObject *saved = eval_frame_swap_callback(NULL);
    PyObject *outer_asking = asking_callback;
    asking_callback = callback;
    frame_expose_locals(frame);  /* 3.13: f_locals reads the slots live (frame_api.h) */
    PyObject *result = PyObject_CallOneArg(callback, (PyObject *)f);
    frame_hide_locals(frame);
    frame_drop_locals_snapshot(f);  /* the callback's f_locals dict would keep the arguments */
    asking_callback = outer_asking;
    PyObject *ours = eval_frame_swap_callback(saved);
    Py_XDECREF(ours);  /* the callback may have set one itself */
    Py_DECREF(callback);
    return result;
}

/* The hook answers the frame itself (a hit, or an error before it ran): the frame is
   cleared and popped here on 3.12+ (frame_api.h); `result` is passed through. */
static PyObject *answered(PyThreadState *tstate, _PyInterpreterFrame *frame, PyObject *result) {
    frame_finish(tstate, frame);
    return result;
}

static PyObject *terra_eval_frame(PyThreadState *tstate, _PyInterpreterFrame *frame, int throwflag) {
    eval_frame_entered++;
    if (moves_waiting) moves_enter(frame);  /* the caller's copies of our arguments */
    PyObject *callback = thread_callback;
    PyCodeObject *code = frame_code(frame);
    /* Generators and coroutines outlive the call (their frame is copied into the generator
       object), and code without CO_OPTIMIZED (module, class body, exec) reads a locals
       dict a function call cannot pass: all of them run unmodified. */
    /* Under a trace function (coverage, pdb after set_trace) or a sys.monitoring tool for
       lines, instructions, jumps or branches (coverage's sys.monitoring core) the original
       code runs: its events are the user's lines, which a rewritten frame does not produce. */
    if (callback == NULL || throwflag || tstate->c_tracefunc != NULL ||
        monitored(tstate, code, MONITOR_LINES) ||
        (code->co_flags & (CO_GENERATOR | CO_COROUTINE | CO_ASYNC_GENERATOR | CO_ITERABLE_COROUTINE)) ||
        !(code->co_flags & CO_OPTIMIZED) || frame_started(frame) || stack_deep(tstate)) {
        return _PyEval_EvalFrameDefault(tstate, frame, throwflag);
    }
    CodeExtra *extra = cache_lookup(code);
    if (cache_is_skipped(extra)) return _PyEval_EvalFrameDefault(tstate, frame, throwflag);

    PyObject *entry = find_entry(extra, frame);
    if (entry == NULL && PyErr_Occurred()) return answered(tstate, frame, NULL);
    if (entry == NULL) {
        PyObject *answer = ask_callback(callback, tstate, frame);
        int is_entry = answer != NULL && PyObject_TypeCheck(answer, &CacheEntry_Type);
        if (is_entry && !entry_fits(answer, code)) {
            Py_CLEAR(answer);  /* entry_fits set the exception */
        }
        if (answer == NULL || (answer != Py_None && answer != terra_SKIP && answer != terra_OFF && !is_entry)) {
            int rc = callback_failed(code, answer);
            Py_XDECREF(answer);
            return rc < 0 ? answered(tstate, frame, NULL) : _PyEval_EvalFrameDefault(tstate, frame, throwflag);
        }
        if (answer == Py_None) {
            Py_DECREF(answer);
            return _PyEval_EvalFrameDefault(tstate, frame, throwflag);
        }
        if (answer == terra_OFF) {  /* torch.compiler.disable(recursive=True)'s body */
            Py_DECREF(answer);
            PyObject *saved = eval_frame_swap_callback(NULL);
            PyObject *result = _PyEval_EvalFrameDefault(tstate, frame, throwflag);
            PyObject *ours = eval_frame_swap_callback(saved);
            Py_XDECREF(ours);
            return result;
        }
        if (answer == terra_SKIP) {
            Py_DECREF(answer);
            if (cache_mark_skipped(code) < 0) return answered(tstate, frame, NULL);
            return _PyEval_EvalFrameDefault(tstate, frame, throwflag);
        }
        if (cache_append(code, answer) < 0) {
            Py_DECREF(answer);
            return answered(tstate, frame, NULL);
        }
        entry = answer;
    }
    if (((CacheEntry *)entry)->closure != NULL) {
        /* after the entry's guard, as the rewritten code's own check ran (its Python
           predicate's frames would make a re-check of the guard the rule, not the exception) */
        int ok = closure_holds((CacheEntry *)entry, frame);
        if (ok != 1) {
            Py_DECREF(entry);
            return ok < 0 ? answered(tstate, frame, NULL) : _PyEval_EvalFrameDefault(tstate, frame, throwflag);
        }
    }
    /* Only a graph call: the graph is called from here (direct_call.c); a profiler is
       shown the rewritten frame as before. */
    PyObject *direct = ((CacheEntry *)entry)->direct;
    if (direct != NULL && tstate->c_profilefunc == NULL) {
        int rerun = 0;
        PyObject *result = direct_call_run(direct, tstate, frame, &rerun);
        Py_DECREF(entry);
        if (rerun) return _PyEval_EvalFrameDefault(tstate, frame, throwflag);
        return answered(tstate, frame, result);
    }
    PyObject *result = run_entry((CacheEntry *)entry, frame);
    Py_DECREF(entry);
    return answered(tstate, frame, result);
}
