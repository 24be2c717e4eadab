/* terra_dyn._tensor_check.KernelCall: the calling function of one generated CPU kernel
 * (terra_dyn/backends/cpu/kernel.py), in C++.
 *
 *   call = KernelCall(address, n_inputs, outputs, checks, returns, slow, fallback, release_gil=True)
 *   out0, out1 = call(x, w)
 *
 * address: the module's `<kernel>_packed(void *const *pointers, int64_t nthreads)` entry
 * (cpu_ops.PRELUDE's AnyPtr unpacks the pointers into the kernel's typed arguments).
 * outputs: ((sizes, strides, dtype), ...) of the fresh output tensors; checks: ((index,
 * strides, on_mismatch), ...) for inputs whose strides the lowering only predicted;
 * returns: None (one output: it; several: a list) or a tuple of output indices, -1 for
 * None (a template's masked outputs). A call reads each input's data pointer from its
 * TensorImpl, allocates the outputs with at::detail::empty_strided_cpu (what
 * torch.empty_strided runs on CPU, without the Python binding and the dispatcher; a small
 * output reuses the storage of the last call's output when nothing references it: Spare), calls
 * the kernel with at::get_num_threads() (and the GIL released, unless release_gil is False:
 * a small kernel's few microseconds are not worth take_gil), and wraps the outputs:
 * the work of the Python calling function (`slow`) without its ctypes call and its
 * torch.empty_strided calls (~2-4 us at 1K elements, docs/CPU_BACKEND.md).
 *
 * Exactness: anything this path does not read as the Python path would goes to `slow`
 * with the same arguments: keyword arguments, another count, an input that is not
 * exactly torch.Tensor / Parameter (a subclass's data_ptr may differ), not a strided CPU
 * tensor, or whose data pointer cannot be read (C++ exceptions before the kernel runs).
 * A checked input with other strides calls its on_mismatch(*inputs); a nonzero return
 * (an integer division by zero) calls fallback(*inputs) (eager's ops raise eager's error).
 */
#include "cxx_types.h"

#include <ATen/EmptyTensor.h>
#include <ATen/Parallel.h>
#include <torch/csrc/autograd/python_variable.h>
#include <torch/csrc/Dtype.h>

#include <exception>
#include <vector>

namespace {

constexpr int kMaxPointers = 64;
typedef int (*PackedKernel)(void *const *, int64_t);

/* Outputs of at most this many bytes keep their storage for the next call (Spare). */
constexpr size_t kSpareMaxBytes = 1 << 18;

struct Output {
    std::vector<int64_t> sizes, strides;
    c10::ScalarType dtype;
    size_t nbytes = 0;
};

/* The storage of a small output's last tensor. A call that finds it unreferenced (no tensor,
 * view, Python storage object or weak reference left: use counts 1) and unchanged (the same
 * data pointer and deleter: not resized, shared, copy-on-write) builds its output on it
 * instead of allocating: glibc's posix_memalign and free, the StorageImpl and its size
 * computation were about half of a small kernel's call (docs/CPU_BACKEND.md, session 19). */
struct Spare {
    c10::intrusive_ptr<c10::StorageImpl> storage;
    void *data = nullptr;
    c10::DeleterFnPtr deleter = nullptr;

    bool free_for(size_t nbytes) const {
        return storage && storage.use_count() == 1 && storage.weak_use_count() == 1 &&
               storage->nbytes() == nbytes && storage->data_ptr().get() == data &&
               storage->data_ptr().get_deleter() == deleter;
    }

    void keep(const at::TensorBase &t) {
        c10::StorageImpl *impl = t.storage().unsafeGetStorageImpl();
        storage = c10::intrusive_ptr<c10::StorageImpl>::reclaim_copy(impl);
        data = impl->data_ptr().get();
        deleter = impl->data_ptr().get_deleter();
    }
};

struct Check {
    Py_ssize_t index;
    std::vector<int64_t> strides;
    PyObject *on_mismatch;  /* owned */
};

struct Spec {
    PackedKernel fn;
    Py_ssize_t n_inputs;
    std::vector<Output> outputs;
    std::vector<Spare> spares;  /* one per output; empty ones for outputs over kSpareMaxBytes */
    std::vector<Check> checks;
    std::vector<int> returns;  /* empty: the default structure */
    bool has_returns = false;
    bool release_gil = true;   /* false for small kernels: ~0.1-0.2 us a call (take_gil) */
};

struct KernelCall {
    PyObject_HEAD
    vectorcallfunc vectorcall;
    Spec *spec;
    PyObject *slow, *fallback;  /* owned */
    PyObject *dict;             /* __name__ / __module__ (an FX graph's call_function target) */
};

bool int_list(PyObject *obj, std::vector<int64_t> &out) {
    PyObject *seq = PySequence_Fast(obj, "KernelCall: expected a sequence of ints");
    if (seq == nullptr) return false;
    Py_ssize_t n = PySequence_Fast_GET_SIZE(seq);
    out.resize(n);
    for (Py_ssize_t i = 0; i < n; i++) {
        out[i] = PyLong_AsLongLong(PySequence_Fast_GET_ITEM(seq, i));
        if (out[i] == -1 && PyErr_Occurred()) {
            Py_DECREF(seq);
            return false;
        }
    }
    Py_DECREF(seq);
    return true;
}

PyObject *call_with(PyObject *fn, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames) {
    return PyObject_Vectorcall(fn, args, nargs, kwnames);
}

/* A fresh output tensor, on its Spare's storage when that is free. */
at::TensorBase new_output(const Output &o, Spare &spare) {
    if (o.nbytes > kSpareMaxBytes) return at::detail::empty_strided_cpu(o.sizes, o.strides, o.dtype);
    at::TensorBase t;
    if (spare.free_for(o.nbytes)) {
        /* what empty_strided_cpu does after allocating its storage */
        t = at::detail::make_tensor_base<c10::TensorImpl>(
            c10::Storage(spare.storage), c10::DispatchKeySet(c10::DispatchKey::CPU), c10::scalarTypeToTypeMeta(o.dtype));
        t.unsafeGetTensorImpl()->set_sizes_and_strides(o.sizes, o.strides);
    } else {
        t = at::detail::empty_strided_cpu(o.sizes, o.strides, o.dtype);
    }
    spare.keep(t);
    return t;
}

PyObject *kernel_call(PyObject *self_, PyObject *const *args, size_t nargsf, PyObject *kwnames) {
    auto *self = (KernelCall *)self_;
    Spec &s = *self->spec;
    Py_ssize_t nargs = PyVectorcall_NARGS(nargsf);
    if (kwnames != nullptr || nargs != s.n_inputs) return call_with(self->slow, args, nargs, kwnames);
    void *pointers[kMaxPointers];
    std::vector<at::TensorBase> outs;
    try {
        for (Py_ssize_t i = 0; i < nargs; i++) {
            if (!THPVariable_CheckExact(args[i])) return call_with(self->slow, args, nargs, nullptr);
            const at::Tensor &t = THPVariable_Unpack(args[i]);
            if (!t.is_cpu() || t.layout() != c10::kStrided) return call_with(self->slow, args, nargs, nullptr);
            pointers[i] = t.data_ptr();
        }
        for (const Check &c : s.checks) {
            if (THPVariable_Unpack(args[c.index]).strides() != c10::IntArrayRef(c.strides))
                return call_with(c.on_mismatch, args, nargs, nullptr);
        }
        outs.reserve(s.outputs.size());
        for (size_t j = 0; j < s.outputs.size(); j++) {
            const Output &o = s.outputs[j];
            outs.push_back(new_output(o, s.spares[j]));
            pointers[nargs + j] = outs.back().data_ptr();
        }
    } catch (const std::exception &) {
        return call_with(self->slow, args, nargs, nullptr);  /* it raises torch's own error, if any */
    }
    int64_t threads = at::get_num_threads();
    int rc;
    if (s.release_gil) {
        PyThreadState *state = PyEval_SaveThread();
        rc = s.fn(pointers, threads);
        PyEval_RestoreThread(state);
    } else {
        rc = s.fn(pointers, threads);
    }
    if (rc != 0) return call_with(self->fallback, args, nargs, nullptr);
    if (!s.has_returns && outs.size() == 1) return THPVariable_Wrap(std::move(outs[0]));
    Py_ssize_t n = s.has_returns ? (Py_ssize_t)s.returns.size() : (Py_ssize_t)outs.size();
    PyObject *result = s.has_returns ? PyTuple_New(n) : PyList_New(n);
    if (result == nullptr) return nullptr;
    for (Py_ssize_t i = 0; i < n; i++) {
        int which = s.has_returns ? s.returns[i] : (int)i;
        PyObject *item = which < 0 ? Py_NewRef(Py_None) : THPVariable_Wrap(outs[which]);
        if (item == nullptr) {
            Py_DECREF(result);
            return nullptr;
        }
        if (s.has_returns)
            PyTuple_SET_ITEM(result, i, item);
        else
            PyList_SET_ITEM(result, i, item);
    }
    return result;
}

bool parse(PyObject *address, Py_ssize_t n_inputs, PyObject *outputs, PyObject *checks, PyObject *returns,
           Spec &spec) {
    spec.fn = (PackedKernel)PyLong_AsVoidPtr(address);
    spec.n_inputs = n_inputs;
    if (PyErr_Occurred()) return false;
    PyObject *seq = PySequence_Fast(outputs, "KernelCall: outputs must be a sequence");
    if (seq == nullptr) return false;
    bool ok = true;
    for (Py_ssize_t j = 0; ok && j < PySequence_Fast_GET_SIZE(seq); j++) {
        PyObject *item = PySequence_Fast_GET_ITEM(seq, j);
        Output o;
        ok = PyTuple_Check(item) && PyTuple_GET_SIZE(item) == 3 && THPDtype_Check(PyTuple_GET_ITEM(item, 2)) &&
             int_list(PyTuple_GET_ITEM(item, 0), o.sizes) && int_list(PyTuple_GET_ITEM(item, 1), o.strides);
        if (ok) {
            o.dtype = ((THPDtype *)PyTuple_GET_ITEM(item, 2))->scalar_type;
            try {
                o.nbytes = at::detail::computeStorageNbytes(o.sizes, o.strides, c10::elementSize(o.dtype));
            } catch (const std::exception &) {
                ok = false;  /* negative or overflowing sizes */
                break;
            }
            spec.outputs.push_back(std::move(o));
        }
    }
    Py_DECREF(seq);
    spec.spares.resize(spec.outputs.size());
    if (!ok || (seq = PySequence_Fast(checks, "KernelCall: checks must be a sequence")) == nullptr) return false;
    for (Py_ssize_t j = 0; ok && j < PySequence_Fast_GET_SIZE(seq); j++) {
        PyObject *item = PySequence_Fast_GET_ITEM(seq, j);
        Check c{0, {}, nullptr};
        ok = PyTuple_Check(item) && PyTuple_GET_SIZE(item) == 3 &&
             (c.index = PyLong_AsSsize_t(PyTuple_GET_ITEM(item, 0))) >= 0 && c.index < n_inputs &&
             int_list(PyTuple_GET_ITEM(item, 1), c.strides);
        if (ok) {
            c.on_mismatch = Py_NewRef(PyTuple_GET_ITEM(item, 2));
            spec.checks.push_back(std::move(c));
        }
    }
    Py_DECREF(seq);
    if (!ok) return false;
    if (returns != Py_None) {
        std::vector<int64_t> indices;
        if (!int_list(returns, indices)) return false;
        for (int64_t i : indices) {
            if (i >= (int64_t)spec.outputs.size()) return false;
            spec.returns.push_back((int)i);
        }
        spec.has_returns = true;
    }
    return n_inputs >= 0 && n_inputs + (Py_ssize_t)spec.outputs.size() <= kMaxPointers;
}

void release(Spec *spec) {
    if (spec == nullptr) return;
    for (Check &c : spec->checks) Py_XDECREF(c.on_mismatch);
    delete spec;
}

PyObject *kernel_call_new(PyTypeObject *type, PyObject *args, PyObject *kwargs) {
    PyObject *address, *outputs, *checks, *returns, *slow, *fallback;
    Py_ssize_t n_inputs;
    int release_gil = 1;
    static const char *names[] = {"address", "n_inputs", "outputs", "checks", "returns", "slow", "fallback",
                                  "release_gil", nullptr};
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "OnOOOOO|p:KernelCall", (char **)names, &address, &n_inputs,
                                     &outputs, &checks, &returns, &slow, &fallback, &release_gil))
        return nullptr;
    Spec *spec = new Spec();
    spec->release_gil = release_gil;
    if (!parse(address, n_inputs, outputs, checks, returns, *spec) || spec->fn == nullptr) {
        release(spec);
        if (!PyErr_Occurred()) PyErr_SetString(PyExc_ValueError, "KernelCall: bad outputs, checks or returns");
        return nullptr;
    }
    auto *self = (KernelCall *)type->tp_alloc(type, 0);
    if (self == nullptr) {
        release(spec);
        return nullptr;
    }
    self->vectorcall = kernel_call;
    self->spec = spec;
    self->slow = Py_NewRef(slow);
    self->fallback = Py_NewRef(fallback);
    return (PyObject *)self;
}

using KernelCallRefs = OwnedRefs<KernelCall, &KernelCall::slow, &KernelCall::fallback, &KernelCall::dict>;

int kernel_call_traverse(PyObject *self_, visitproc visit, void *arg) {
    auto *self = (KernelCall *)self_;
    if (self->spec != nullptr)
        for (const Check &c : self->spec->checks) Py_VISIT(c.on_mismatch);
    return KernelCallRefs::traverse(self_, visit, arg);
}

int kernel_call_clear(PyObject *self_) {
    auto *self = (KernelCall *)self_;
    Spec *spec = self->spec;
    self->spec = nullptr;
    release(spec);
    return KernelCallRefs::clear(self_);
}

PyTypeObject KernelCall_Type = {PyVarObject_HEAD_INIT(nullptr, 0)};

}  // namespace

/* Called by PyInit__tensor_check: adds KernelCall to the module. */
int kernel_call_register(PyObject *module) {
    return add_vectorcall_type(
        module, &KernelCall_Type,
        {"terra_dyn._tensor_check.KernelCall", "KernelCall(address, n_inputs, outputs, checks, returns, slow, fallback, release_gil=True)(*inputs)",
         sizeof(KernelCall), offsetof(KernelCall, vectorcall), kernel_call_new, kernel_call_traverse, kernel_call_clear,
         gc_dealloc, offsetof(KernelCall, dict)});
}
