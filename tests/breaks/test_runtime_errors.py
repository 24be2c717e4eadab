"""Errors a compiled graph raises at run time keep eager semantics (codegen.graph_errors).

Fake tensors cannot see value-dependent errors (an out-of-range index tensor, a bad class
target), so the graph raises when it runs. The rewritten code then re-runs the segment
natively: the user's except/finally blocks run once, the error names the user's line, and
Python effects before the failing op happen once. Each test compares with eager on the
same inputs: values, exceptions, printed output, calls into user code, tensor state, RNG.
"""
import traceback

import pytest
import torch
import torch.nn.functional as F

import terra_dyn
from terra_dyn import report

GOOD, BAD = torch.tensor([1, 2]), torch.tensor([1, 10])


def _outcome(call):
    """(value, (exception type, message) or None)."""
    try:
        return call(), None
    except Exception as exc:  # noqa: BLE001 - the test compares whatever is raised
        return None, (type(exc), str(exc))


def _compare(fn, make_args, capsys, strict=False):
    """Run the cached optimized fn and eager fn on fresh copies of the args; assert the same
    value or error, printed text and argument state. Returns the report of the optimized call."""
    fast = terra_dyn.optimize(fn, backend="interpreter", strict=strict)
    fast(*make_args(GOOD))  # translate on good data; the failing call hits the cache
    capsys.readouterr()
    ours_args, eager_args = make_args(BAD), make_args(BAD)
    with report.recording() as rec:
        ours, ours_err = _outcome(lambda: fast(*ours_args))
    ours_out = capsys.readouterr().out
    eager, eager_err = _outcome(lambda: fn(*eager_args))
    eager_out = capsys.readouterr().out
    assert ours_err == eager_err
    assert ours_out == eager_out
    if eager_err is None:
        torch.testing.assert_close(ours, eager)
    for a, b in zip(ours_args, eager_args):
        if isinstance(a, torch.Tensor):
            torch.testing.assert_close(a, b)
        else:
            assert a == b
    assert not rec.report().recompiles  # the failing call ran the cached code
    return rec.report()


def _tensor_args(idx):
    return torch.arange(6.0), idx.clone()


def _reran(rep):
    return [f for f in rep.fallbacks if "re-run eagerly" in f.reason]


def test_except_around_bad_index_runs_once(fresh_terra_dyn, capsys):
    def f(x, idx):
        y = x * 2
        try:
            z = y[idx]
        except IndexError as e:
            print("caught:", e)
            z = y.sum()
        return z + 1

    rep = _compare(f, _tensor_args, capsys)
    assert len(_reran(rep)) == 1 and "IndexError" in _reran(rep)[0].reason


def test_finally_runs_once_and_error_propagates(fresh_terra_dyn, capsys):
    def f(x, idx):
        try:
            y = torch.index_select(x.cos(), 0, idx)
        finally:
            print("finally")
        return y

    _compare(f, _tensor_args, capsys)


def test_uncaught_error_names_the_user_line(fresh_terra_dyn):
    def f(x, idx):
        y = x.sin()
        return F.embedding(idx, y.view(3, 2))  # the failing line

    fast = terra_dyn.optimize(f, backend="interpreter")
    fast(torch.arange(6.0), torch.tensor([0, 2]))
    errors = []
    for fn in (fast, f):
        with pytest.raises(IndexError) as info:
            fn(torch.arange(6.0), torch.tensor([0, 7]))
        errors.append(info.value)
    assert str(errors[0]) == str(errors[1])
    ours, eager = ([t for t in traceback.extract_tb(e.__traceback__) if t.filename == __file__][-1]
                   for e in errors)
    assert (ours.lineno, ours.line) == (eager.lineno, eager.line) == (
        f.__code__.co_firstlineno + 2, "return F.embedding(idx, y.view(3, 2))  # the failing line")
    assert errors[0].__context__ is None  # the graph's own error is not chained in


def _pick(t, idx):  # inlined into the caller's graph
    return t[idx] * 2


def test_error_in_inlined_callee_is_caught_by_caller(fresh_terra_dyn, capsys):
    def f(x, idx):
        try:
            return _pick(x.exp(), idx)
        except IndexError as e:
            print("caller caught", type(e).__name__)
            return x

    _compare(f, _tensor_args, capsys)

    def g(x, idx):
        return _pick(x.exp(), idx) + 1

    fast = terra_dyn.optimize(g, backend="interpreter")
    fast(*_tensor_args(GOOD))
    with pytest.raises(IndexError) as info:
        fast(*_tensor_args(BAD))
    lines = [t.line for t in traceback.extract_tb(info.value.__traceback__) if t.filename == __file__]
    assert lines[-1] == "return t[idx] * 2" and "return _pick(x.exp(), idx) + 1" in lines


def test_error_in_resume_function_segment(fresh_terra_dyn, capsys):
    calls = []

    def f(x, idx):
        y = x * 3
        print("total", y.sum().item())  # break: the rest is a resume function
        calls.append(len(calls))
        try:
            z = y[idx].exp()
        except IndexError:
            print("caught")
            z = y
        finally:
            print("finally")
        return z - 1

    def make(idx):
        calls.clear()
        return _tensor_args(idx)

    fast = terra_dyn.optimize(f, backend="interpreter")
    fast(*make(GOOD))
    capsys.readouterr()
    with report.recording() as rec:
        ours = fast(*make(BAD))
    ours_out, ours_calls = capsys.readouterr().out, list(calls)
    eager = f(*make(BAD))
    assert capsys.readouterr().out == ours_out and calls == ours_calls == [0]
    torch.testing.assert_close(ours, eager)
    assert rec.report().break_count == 0  # cached: the failing call translated nothing


def test_uncaught_error_in_resume_function(fresh_terra_dyn, capsys):
    def f(x, idx):
        y = x + 1
        print(y.max().item())
        return y[idx] * 2

    _compare(f, _tensor_args, capsys)


def test_error_inside_loop_with_breaks(fresh_terra_dyn, capsys):
    log = []

    def f(x, idx):
        total = x.sum()
        for i in range(3):
            print("step", i)
            log.append(i)
            try:
                total = total + x[idx * i].sum()
            except IndexError:
                print("bad index at step", i)
                total = total - 1
        return total

    def make(idx):
        log.clear()
        return _tensor_args(idx)

    rep = _compare(f, make, capsys)
    assert log == [0, 1, 2] * 2  # both argument sets are made first: ours' steps, then eager's
    assert _reran(rep)


_SEEN = []


def _note(t):  # user code inlined into the graph's frame
    _SEEN.append(t.shape[0])
    return t * 2


def test_side_effects_before_failing_op_happen_once(fresh_terra_dyn, capsys):
    def f(x, idx):
        y = _note(x)
        _SEEN.append("before")
        return F.cross_entropy(y.view(1, 6), idx[:1])

    def make(idx):
        _SEEN.clear()
        return _tensor_args(idx)

    fast = terra_dyn.optimize(f, backend="interpreter")
    with report.recording() as rec:
        fast(*make(torch.tensor([3])))
    assert rec.report().graph_count == 1 and not rec.report().fallbacks
    with pytest.raises(IndexError) as ours:
        fast(*make(torch.tensor([9])))
    ours_seen = list(_SEEN)
    with pytest.raises(IndexError) as eager:
        f(*make(torch.tensor([9])))
    assert str(ours.value) == str(eager.value)
    assert ours_seen == _SEEN == [6, "before"]


def test_input_mutated_before_failing_op_is_not_applied_twice(fresh_terra_dyn, capsys):
    def f(x, idx):
        x.add_(1)
        print("mutated")  # replayed after the graph: lost, since no re-run is possible
        return x[idx]

    fast = terra_dyn.optimize(f, backend="interpreter")
    fast(*_tensor_args(GOOD))
    ours_x, eager_x = torch.arange(6.0), torch.arange(6.0)
    with report.recording() as rec:
        with pytest.raises(IndexError) as ours:
            fast(ours_x, BAD)
    with pytest.raises(IndexError) as eager:
        f(eager_x, BAD)
    assert str(ours.value) == str(eager.value)
    torch.testing.assert_close(ours_x, eager_x)  # added to once, as eager
    assert not _reran(rec.report()) and "not re-run" in rec.report().fallbacks[0].reason


def test_input_mutated_after_failing_op_reruns(fresh_terra_dyn, capsys):
    def f(x, idx):
        try:
            y = x[idx].sum()
        except IndexError:
            print("caught")
            y = x.sum()
        x.mul_(2)  # after the failing op in graph order: nothing applied yet
        return y

    rep = _compare(f, _tensor_args, capsys)
    assert _reran(rep)


@pytest.mark.parametrize("training", [True, False])
def test_batch_norm_running_stats_updated_once(fresh_terra_dyn, capsys, training):
    def make_model():
        torch.manual_seed(0)
        return torch.nn.BatchNorm1d(3).train(training)

    def f(bn, x, idx):
        y = bn(x)
        if training:  # the stats are written before the error: no re-run, so no except here
            return y[idx]
        try:
            return y[idx]
        except IndexError:
            print("caught")
            return y

    ours_bn, eager_bn = make_model(), make_model()
    fast = terra_dyn.optimize(f, backend="interpreter")
    x = torch.randn(4, 3, generator=torch.Generator().manual_seed(1))
    fast(ours_bn, x, GOOD)
    f(eager_bn, x, GOOD)
    capsys.readouterr()
    with report.recording() as rec:
        ours = _outcome(lambda: fast(ours_bn, x, BAD))
    ours_out = capsys.readouterr().out
    eager = _outcome(lambda: f(eager_bn, x, BAD))
    assert ours_out == capsys.readouterr().out and ours[1] == eager[1]
    if eager[1] is None:
        torch.testing.assert_close(ours[0], eager[0])
    torch.testing.assert_close(ours_bn.running_mean, eager_bn.running_mean)
    assert ours_bn.num_batches_tracked == eager_bn.num_batches_tracked
    assert bool(_reran(rec.report())) == (not training)  # training: the stats were written first


def test_functional_batch_norm_stats_written_once(fresh_terra_dyn, capsys):
    def f(x, idx, mean, var):
        y = F.batch_norm(x.view(2, 3), mean, var, training=True)
        return y.flatten()[idx]

    def make(idx):
        return _tensor_args(idx) + (torch.zeros(3), torch.ones(3))

    rep = _compare(f, make, capsys)  # compares the running stats too
    assert not _reran(rep)


def test_inplace_on_fresh_intermediate_still_reruns(fresh_terra_dyn, capsys):
    def f(x, idx):
        y = (x * 2).relu_()
        try:
            return y[idx]
        except IndexError:
            return y

    rep = _compare(f, _tensor_args, capsys)
    assert _reran(rep)


def test_random_op_after_failing_op_draws_once(fresh_terra_dyn, capsys):
    def f(x, idx):
        try:
            y = x[idx]
        except IndexError:
            y = x
        return F.dropout(y, 0.5, training=True)

    fast = terra_dyn.optimize(f, backend="interpreter")
    fast(*_tensor_args(GOOD))
    torch.manual_seed(5)
    ours = fast(*_tensor_args(BAD))
    ours_state = torch.get_rng_state()
    torch.manual_seed(5)
    eager = f(*_tensor_args(BAD))
    torch.testing.assert_close(ours, eager)
    assert torch.equal(ours_state, torch.get_rng_state())


def test_grad_mode_restored_after_error_in_no_grad_block(fresh_terra_dyn, capsys):
    def f(x, idx):
        with torch.no_grad():
            y = x[idx]
        return y

    _compare(f, _tensor_args, capsys)
    assert torch.is_grad_enabled()


def test_autocast_block_exited_before_rerun(fresh_terra_dyn, capsys):
    def f(x, idx):
        try:
            with torch.autocast("cpu", dtype=torch.bfloat16):
                y = (x.view(2, 3) @ x.view(3, 2)).flatten()[idx]
        except IndexError:
            print("caught")
            y = x
        return y.float() * 2

    rep = _compare(f, _tensor_args, capsys)
    assert _reran(rep) and not torch.is_autocast_enabled("cpu")


def test_strict_mode_surfaces_the_user_error(fresh_terra_dyn, capsys):
    def f(x, idx):
        try:
            return torch.gather(x.exp(), 0, idx)
        except RuntimeError:
            print("caught in strict")
            return x

    _compare(f, _tensor_args, capsys, strict=True)

    def g(x, idx):
        return torch.gather(x.exp(), 0, idx)

    _compare(g, _tensor_args, capsys, strict=True)


def test_closure_frame_reruns_with_its_cells(fresh_terra_dyn, capsys):
    scale = torch.tensor(3.0)

    def f(x, idx):
        try:
            return x[idx] * scale
        except IndexError:
            return x * scale

    _compare(f, _tensor_args, capsys)


def _opaque_backend(gm, example_inputs):
    """A backend whose callable is not the GraphModule's forward: the failing node is unknown."""
    def run(*args):
        return gm.forward(*args)
    return run


@pytest.mark.parametrize("backend", [_opaque_backend, lambda gm, example_inputs: gm])
def test_other_backends_rerun_pure_graphs(fresh_terra_dyn, capsys, backend):
    def f(x, idx):
        try:
            return x.cos()[idx]
        except IndexError:
            print("caught")
            return x

    fast = terra_dyn.optimize(f, backend=backend)
    fast(*_tensor_args(GOOD))
    capsys.readouterr()
    ours = fast(*_tensor_args(BAD))
    assert capsys.readouterr().out == "caught\n"
    torch.testing.assert_close(ours, f(*_tensor_args(BAD)))
    capsys.readouterr()


def test_opaque_backend_never_reruns_after_possible_effects(fresh_terra_dyn, capsys):
    def f(x, idx):
        y = x[idx]  # fails first, but an opaque backend cannot say so
        x.mul_(2)
        return y

    fast = terra_dyn.optimize(f, backend=_opaque_backend)
    fast(*_tensor_args(GOOD))
    ours_x, eager_x = torch.arange(6.0), torch.arange(6.0)
    with report.recording() as rec:
        with pytest.raises(IndexError):
            fast(ours_x, BAD)
    with pytest.raises(IndexError):
        f(eager_x, BAD)
    torch.testing.assert_close(ours_x, eager_x)
    assert "not re-run" in rec.report().fallbacks[0].reason


def test_repeated_errors_in_a_loop_keep_the_report_bounded(fresh_terra_dyn, capsys):
    def f(x, idx):
        try:
            return x[idx]
        except IndexError:
            return x

    fast = terra_dyn.optimize(f, backend="interpreter")
    fast(*_tensor_args(GOOD))
    with report.recording() as rec:
        for _ in range(50):
            torch.testing.assert_close(fast(*_tensor_args(BAD)), f(*_tensor_args(BAD)))
    assert 1 <= len(rec.report().fallbacks) <= 20
