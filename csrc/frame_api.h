/* The version seam of the C core: everything eval_frame.c needs from CPython's internal
 * frame API, for CPython 3.11, 3.12 and 3.13 from one source (docs/VERSIONS.md).
 *
 *   frame_code(frame)              the frame's code object (3.11/3.12 f_code, 3.13 f_executable)
 *   frame_closure(frame)           its function's closure (3.11 f_func, 3.12+ f_funcobj)
 *   frame_started(frame)           has it begun running (not a fresh call)
 *   frame_object(tstate, frame)    our _PyFrame_GetFrameObject for an unstarted frame
 *   frame_expose_locals / frame_hide_locals   around the callback (3.13's f_locals proxy)
 *   frame_drop_locals_snapshot(f)  forget the f_locals dict the callback made (3.11/3.12)
 *   frame_finish(tstate, frame)    clear and pop a frame the hook did not hand to
 *                                  _PyEval_EvalFrameDefault
 *   stack_deep(tstate)             has the thread used over an eighth of its Python
 *                                  recursion limit
 *   monitored(tstate, code, MONITOR_CALLS)   is a sys.monitoring tool (3.12+; 3.11: never)
 *   monitored(tstate, code, MONITOR_LINES)   set, for all code or this one, for CALL (which
 *                                  C_RETURN and C_RAISE are stored as) / LINE, INSTRUCTION,
 *                                  JUMP or BRANCH
 *   exception_traceback / exception_set_traceback   the raised exception's traceback
 *
 * Who clears an unstarted frame the hook answers itself (a cache hit, an error):
 *   3.11  _PyEval_Vector clears and pops it after the hook returns: nothing to do.
 *   3.12  _PyEval_Vector returns the hook's result as is; the evaluator clears and pops
 *         its frame at exit, so the hook must. CPython exports neither
 *         _PyEvalFrameClearAndPop nor what it calls (built with -fvisibility=hidden), so
 *         the three steps are done here, after Python/ceval.c and Objects/frame.c of 3.12.
 *   3.13  _PyEval_FrameClearAndPop is exported (PyAPI_FUNC): it is called.
 * Only frames owned by the thread reach these paths: generator code never leaves the
 * default evaluator (eval_frame.c).
 */
#ifndef TERRA_DYN_FRAME_API_H
#define TERRA_DYN_FRAME_API_H

#define Py_BUILD_CORE 1
#include "terra_dyn.h"
#include <internal/pycore_frame.h>
#include <internal/pycore_pystate.h>
#if PY_VERSION_HEX >= 0x030D0000
#include <internal/pycore_ceval.h>  /* _PyEval_FrameClearAndPop */
#endif

#if PY_VERSION_HEX < 0x030B0000 || PY_VERSION_HEX >= 0x030E0000
#error "terra_dyn's frame hook supports CPython 3.11, 3.12 and 3.13 only"
#endif
#ifdef Py_GIL_DISABLED
#error "terra_dyn does not support free-threaded CPython builds"
#endif

static inline PyCodeObject *frame_code(_PyInterpreterFrame *frame) {
#if PY_VERSION_HEX >= 0x030D0000
    return (PyCodeObject *)frame->f_executable;
#else
    return frame->f_code;
#endif
}

static inline PyObject *frame_closure(_PyInterpreterFrame *frame) {
#if PY_VERSION_HEX >= 0x030C0000
    return ((PyFunctionObject *)frame->f_funcobj)->func_closure;
#else
    return frame->f_func->func_closure;
#endif
}

/* Has the frame begun running (a resumed frame, never a fresh call)? 3.11/3.12 point an
   unstarted frame before its first instruction (lasti -1); 3.13 at it (lasti 0). */
static inline int frame_started(_PyInterpreterFrame *frame) {
#if PY_VERSION_HEX >= 0x030D0000
    return _PyInterpreterFrame_LASTI(frame) > 0;
#else
    return _PyInterpreterFrame_LASTI(frame) >= 0;
#endif
}

static inline _PyInterpreterFrame *thread_current_frame(PyThreadState *tstate) {
#if PY_VERSION_HEX >= 0x030D0000
    return tstate->current_frame;
#else
    return tstate->cframe->current_frame;
#endif
}

/* A new frame object for `frame`, as CPython's _PyFrame_New_NoTrack +
   _PyFrame_MakeAndSetFrameObject do (neither is exported). */
static inline PyFrameObject *new_frame_object(_PyInterpreterFrame *frame) {
    PyCodeObject *code = frame_code(frame);
    PyFrameObject *f = PyObject_GC_NewVar(PyFrameObject, &PyFrame_Type,
                                          code->co_nlocalsplus + code->co_stacksize);
    if (f == NULL) return NULL;
    f->f_back = NULL;
    f->f_trace = NULL;
    f->f_trace_lines = 1;
    f->f_trace_opcodes = 0;
    f->f_lineno = 0;
#if PY_VERSION_HEX >= 0x030D0000
    f->f_extra_locals = NULL;
    f->f_locals_cache = NULL;
#else
    f->f_fast_as_locals = 0;
#endif
    f->f_frame = frame;
    frame->frame_obj = f;
    return f;
}

/* The frame object of a frame not yet evaluated (borrowed; NULL + exception on failure). */
static inline PyFrameObject *frame_object(PyThreadState *tstate, _PyInterpreterFrame *frame) {
    if (frame->frame_obj != NULL) return frame->frame_obj;
    /* An unstarted frame has no `previous` link yet; f_back, and the hand-over of the
       frame's data to its frame object when it is cleared, read it. */
    frame->previous = thread_current_frame(tstate);
    return new_frame_object(frame);
}

/* An unstarted frame seen from Python. CPython reads a frame's cell and free slots as if
 * MAKE_CELL and COPY_FREE_VARS had run once the frame is "complete", and a frame object
 * that outlives its unstarted frame is made complete when it takes the frame's data
 * over. Before that, a cell variable's slot holds the raw argument (or nothing) and the
 * free variables' slots are empty: 3.13.0/3.13.1 read such a slot as a cell and crash
 * (gh-128396), 3.12 reads an empty free slot as a cell. So the prologue's effect is
 * applied first (frame_run_prologue), and where the frame then runs after all, undone:
 *   3.13  around the callback: frame.f_locals is a live proxy over the slots (PEP 667);
 *         undone after it (a cell argument's value taken from its cell, so a write
 *         through f_locals is kept), the frame being unstarted again.
 *   3.12+ when the hook clears a frame whose frame object someone still holds.
 * 3.11/3.12's f_locals (FastToLocals) copes with the unstarted state itself. */
#if PY_VERSION_HEX >= 0x030C0000
static inline void frame_run_prologue(_PyInterpreterFrame *frame) {
    PyCodeObject *code = frame_code(frame);
    PyObject *pending = PyErr_GetRaisedException();  /* the hook's result may be an error */
    int offset = code->co_nlocalsplus - code->co_nfreevars;
    for (int i = 0; i < offset; i++) {
        if (!(_PyLocals_GetKind(code->co_localspluskinds, i) & CO_FAST_CELL)) continue;
        PyObject *cell = PyCell_New(frame->localsplus[i]);  /* MAKE_CELL */
        if (cell == NULL) break;  /* out of memory: the rest stay raw */
        Py_XSETREF(frame->localsplus[i], cell);
    }
    PyObject *closure = frame_closure(frame);
    for (int i = 0; closure != NULL && i < code->co_nfreevars; i++) {  /* COPY_FREE_VARS */
        Py_XSETREF(frame->localsplus[offset + i], Py_NewRef(PyTuple_GET_ITEM(closure, i)));
    }
    PyErr_Clear();
    PyErr_SetRaisedException(pending);
}
#endif

#if PY_VERSION_HEX >= 0x030D0000
static inline void frame_undo_prologue(_PyInterpreterFrame *frame) {
    PyCodeObject *code = frame_code(frame);
    int offset = code->co_nlocalsplus - code->co_nfreevars;
    for (int i = 0; i < offset; i++) {
        PyObject *cell = frame->localsplus[i];
        if (!(_PyLocals_GetKind(code->co_localspluskinds, i) & CO_FAST_CELL) || cell == NULL ||
            !PyCell_Check(cell)) {
            continue;  /* PyCell_Check: only after an out-of-memory stop can a slot be raw */
        }
        frame->localsplus[i] = Py_XNewRef(PyCell_GET(cell));
        Py_DECREF(cell);
    }
    for (int i = 0; i < code->co_nfreevars; i++) Py_CLEAR(frame->localsplus[offset + i]);
}
static inline void frame_expose_locals(_PyInterpreterFrame *frame) { frame_run_prologue(frame); }
static inline void frame_hide_locals(_PyInterpreterFrame *frame) { frame_undo_prologue(frame); }
#else
static inline void frame_expose_locals(_PyInterpreterFrame *frame) { (void)frame; }
static inline void frame_hide_locals(_PyInterpreterFrame *frame) { (void)frame; }
#endif

/* 3.11/3.12: reading f_locals copies the slots into a dict kept on the frame; it would keep
   the arguments alive as long as the frame object lives (a traceback, an f_back chain).
   3.13's f_locals is a proxy over the slots: nothing to drop. */
static inline void frame_drop_locals_snapshot(PyFrameObject *f) {
#if PY_VERSION_HEX < 0x030D0000
    Py_CLEAR(f->f_frame->f_locals);
    f->f_fast_as_locals = 0;
#else
    (void)f;
#endif
}

#if PY_VERSION_HEX >= 0x030C0000 && PY_VERSION_HEX < 0x030D0000
/* 3.12's take_ownership (Objects/frame.c): a frame object that outlives its frame (the
   callback kept it, a traceback holds it) gets a copy of the frame's data. */
static inline void frame_give_data_to_object(PyFrameObject *f, _PyInterpreterFrame *frame) {
    Py_ssize_t size = ((char *)&frame->localsplus[frame->stacktop]) - (char *)frame;
    Py_INCREF(frame->f_code);
    memcpy((_PyInterpreterFrame *)f->_f_frame_data, frame, size);
    frame = (_PyInterpreterFrame *)f->_f_frame_data;
    f->f_frame = frame;
    frame->owner = FRAME_OWNED_BY_FRAME_OBJECT;
    if (_PyFrame_IsIncomplete(frame)) {
        /* Never started: present it as if its first RESUME ran, as CPython does. */
        frame->prev_instr = _PyCode_CODE(frame->f_code) + frame->f_code->_co_firsttraceable;
    }
    _PyInterpreterFrame *prev = _PyFrame_GetFirstComplete(frame->previous);
    frame->previous = NULL;
    if (prev != NULL) {
        PyFrameObject *back = prev->frame_obj ? prev->frame_obj : new_frame_object(prev);
        if (back == NULL) {
            PyErr_Clear();  /* out of memory: f_back stays None, as in CPython */
        } else {
            f->f_back = (PyFrameObject *)Py_NewRef(back);
        }
    }
    if (!PyObject_GC_IsTracked((PyObject *)f)) PyObject_GC_Track((PyObject *)f);
}

/* 3.12's _PyThreadState_PopFrame (Python/pystate.c). */
static inline void frame_pop(PyThreadState *tstate, _PyInterpreterFrame *frame) {
    PyObject **base = (PyObject **)frame;
    if (base == &tstate->datastack_chunk->data[0]) {
        _PyStackChunk *chunk = tstate->datastack_chunk;
        _PyStackChunk *previous = chunk->previous;
        tstate->datastack_top = &previous->data[previous->top];
        tstate->datastack_chunk = previous;
        PyObjectArenaAllocator arena;  /* what _PyObject_VirtualFree frees with */
        PyObject_GetArenaAllocator(&arena);
        arena.free(arena.ctx, chunk, chunk->size);
        tstate->datastack_limit = (PyObject **)(((char *)previous) + previous->size);
    } else {
        tstate->datastack_top = base;
    }
}
#endif

/* Has this thread used over an eighth of its Python recursion limit (125 frames of the
   default 1000)? A rewritten frame can cost three frames of the limit (its code, the
   trampoline, a resume function), so recursion that plain Python finishes would raise
   RecursionError: frames that deep run as plain Python, and a recursion as deep as 0.9
   of the limit still finishes (3.11 recursion_*, 3.12+ py_recursion_*). */
static inline int stack_deep(PyThreadState *tstate) {
#if PY_VERSION_HEX >= 0x030C0000
    return tstate->py_recursion_remaining < tstate->py_recursion_limit - tstate->py_recursion_limit / 8;
#else
    return tstate->recursion_remaining < tstate->recursion_limit - tstate->recursion_limit / 8;
#endif
}

#if PY_VERSION_HEX >= 0x030C0000
#define MONITOR_CALLS PY_MONITORING_EVENT_CALL, PY_MONITORING_EVENT_CALL
#define MONITOR_LINES PY_MONITORING_EVENT_LINE, PY_MONITORING_EVENT_BRANCH
#else
#define MONITOR_CALLS 0, 0
#define MONITOR_LINES 0, 0
#endif

/* Is a sys.monitoring tool set for any of the local events first..last (PY_START 0 ..
   STOP_ITERATION 9, the same numbers on 3.12 and 3.13) globally or for this code? The
   code's active set lags until it is next instrumented, so its local set is read too. */
static inline int monitored(PyThreadState *tstate, PyCodeObject *code, int first, int last) {
#if PY_VERSION_HEX >= 0x030C0000
    const uint8_t *global = tstate->interp->monitors.tools;
    _PyCoMonitoringData *own = code->_co_monitoring;
    for (int event = first; event <= last; event++) {
        if (global[event] || (own != NULL && (own->local_monitors.tools[event] | own->active_monitors.tools[event]))) {
            return 1;
        }
    }
#endif
    return 0;
}

/* The raised exception's traceback (borrowed, may be NULL) and its replacement: 3.11
   keeps the traceback beside the exception while it propagates, 3.12+ on it. */
static inline PyObject *exception_traceback(PyThreadState *tstate) {
#if PY_VERSION_HEX >= 0x030C0000
    PyObject *exc = tstate->current_exception;
    return exc ? ((PyBaseExceptionObject *)exc)->traceback : NULL;
#else
    return tstate->curexc_traceback;
#endif
}

static inline void exception_set_traceback(PyThreadState *tstate, PyObject *tb) {
#if PY_VERSION_HEX >= 0x030C0000
    PyException_SetTraceback(tstate->current_exception, tb);
#else
    Py_XSETREF(tstate->curexc_traceback, Py_XNewRef(tb));
#endif
}

/* Clear and pop a thread-owned frame that _PyEval_EvalFrameDefault never ran; call it
   exactly once on every path where the hook answers a frame itself (3.12+). Keeps the
   exception state of the caller's result (clearing can run finalizers). */
static inline void frame_finish(PyThreadState *tstate, _PyInterpreterFrame *frame) {
#if PY_VERSION_HEX >= 0x030C0000
    if (frame->frame_obj != NULL && Py_REFCNT(frame->frame_obj) > 1) frame_run_prologue(frame);
#endif
#if PY_VERSION_HEX >= 0x030D0000
    _PyEval_FrameClearAndPop(tstate, frame);
#elif PY_VERSION_HEX >= 0x030C0000
    /* clear_thread_frame + _PyFrame_ClearExceptCode (Python/ceval.c, Python/frame.c). */
    tstate->c_recursion_remaining--;
    PyFrameObject *f = frame->frame_obj;
    int handed_over = 0;
    if (f != NULL) {
        frame->frame_obj = NULL;
        if (Py_REFCNT(f) > 1) {
            frame_give_data_to_object(f, frame);
            handed_over = 1;
        }
        Py_DECREF(f);
    }
    if (!handed_over) {
        for (int i = 0; i < frame->stacktop; i++) Py_XDECREF(frame->localsplus[i]);
        Py_XDECREF(frame->f_locals);
        Py_DECREF(frame->f_funcobj);
    }
    Py_DECREF(frame->f_code);
    tstate->c_recursion_remaining++;
    frame_pop(tstate, frame);
#else
    (void)tstate;
    (void)frame;  /* 3.11: _PyEval_Vector clears and pops it after the hook returns */
#endif
}

#endif
