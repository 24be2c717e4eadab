"""Inlining: a call to a Python function runs its bytecode in a child Translator.

    inline_function(tx, fn_value, args, kwargs)
        bind args to parameters (defaults, *args, **kwargs) -> child locals
        closure cells -> CellValues (real cells read lazily, guarded by their source)
        Translator(ctx, fn.__code__, fn.__globals__, locals, cells, parent=tx).run()

The child shares the graph and guards, so a module's forward, a helper and a lambda all
land in one graph. If the child hits something unsupported, the exception reaches the
top frame, which breaks inside the callee (nested_breaks.py) or, where that does not
qualify, at its own call site; the callee's frame is then translated separately when it
runs natively.

Example: `def f(x): return g(x) * 2` with `def g(y, k=3): return y + k` produces one
graph: add(x, 3) -> mul(_, 2).
"""
import inspect

from .errors import Unsupported
from .sources import ClosureCellSource, DefaultSource
from .values import CellValue, ConstValue, DictValue, FunctionValue, Lazy, TupleValue

_GENERATOR_FLAGS = inspect.CO_GENERATOR | inspect.CO_COROUTINE | inspect.CO_ASYNC_GENERATOR | \
    inspect.CO_ITERABLE_COROUTINE


def inline_function(tx, fn, args, kwargs, suspend_at_yield=False, chained=False):
    """`fn` is a ConstValue of a Python function or a FunctionValue. suspend_at_yield: a
    generator stops at its first yield and the child Translator is returned (generator_cm).
    chained: the callee's return value is the caller's CALL result as it is, so a break
    inside it may stay inside it (nested_breaks.py)."""
    if isinstance(fn, FunctionValue):
        code, f_globals, name = fn.code, fn.f_globals, fn.name
        defaults = list(fn.defaults.items) if fn.defaults is not None else []
        kwdefaults = dict(fn.kwdefaults.items) if fn.kwdefaults is not None else {}
        cells = {n: c for n, c in zip(code.co_freevars, fn.closure or [])}
    else:
        real = fn.value
        tx.ctx.guards.function(real)  # the code and defaults read here must stay the same
        code, f_globals, name = real.__code__, real.__globals__, real.__qualname__
        defaults = [_default(fn, i, d) for i, d in enumerate(real.__defaults__ or ())]
        kwdefaults = {k: _default(fn, k, d, kw=True) for k, d in (real.__kwdefaults__ or {}).items()}
        cells = {}
        for i, (var, cell) in enumerate(zip(code.co_freevars, real.__closure__ or ())):
            if id(cell) in getattr(tx.ctx, "real_cells", {}):  # the translated frame's own cell
                cells[var] = tx.ctx.real_cells[id(cell)]
                continue
            try:
                content = cell.cell_contents
            except ValueError:
                content = None
            if content is None:
                cells[var] = CellValue(ConstValue(None) if _cell_is_none(cell) else None)
            else:
                source = ClosureCellSource(fn.source, i) if fn.source is not None else None
                cells[var] = CellValue(Lazy(content, source) if source is not None else ConstValue(content))
            cells[var].real = True
    is_generator = bool(code.co_flags & inspect.CO_GENERATOR)
    if code.co_flags & _GENERATOR_FLAGS and not is_generator:
        raise Unsupported(f"call to coroutine function {name}")
    from .executor import Translator

    local_values = bind_arguments(code, name, args, kwargs, defaults, kwdefaults)
    child = Translator(tx.ctx, code, f_globals, local_values, cells, parent=tx, name=name)
    child.chained = chained and not is_generator
    if is_generator and not suspend_at_yield:
        # calling a generator function runs none of its body: each step of the iterator
        # resumes it (iterators.GeneratorIterator), in order with the consumer's own effects
        from .iterators import GeneratorIterator

        child.yielded = []
        child.suspend_at_yield = True
        child.suspended = False
        child.lazy = True
        root = tx
        while root.parent is not None:
            root = root.parent
        return GeneratorIterator(child, (root.pc, root.visits[root.pc]))
    try:
        if is_generator:  # a @contextmanager's __enter__: the body up to its first yield
            child.yielded = []
            child.suspend_at_yield = True
            child.suspended = False
            child.run()
            return child
        result = child.run()
        if tx.ctx.context_vars:
            from .context_vars import check_reset

            check_reset(tx, child)
        return result
    except Unsupported as exc:
        exc.breakable = True  # whatever the callee cannot do, the caller can call it natively
        raise


def _cell_is_none(cell):
    try:
        return cell.cell_contents is None
    except ValueError:
        return False


def _default(fn, key, real, kw=False):
    if fn.source is None:
        return ConstValue(real)
    return Lazy(real, DefaultSource(fn.source, key, kw))


def bind_arguments(code, name, args, kwargs, defaults, kwdefaults):
    """Map call arguments to the callee's local names, as CPython does."""
    nargs = code.co_argcount
    nkw = code.co_kwonlyargcount
    names = code.co_varnames
    has_varargs = bool(code.co_flags & inspect.CO_VARARGS)
    has_varkw = bool(code.co_flags & inspect.CO_VARKEYWORDS)
    pos_names = names[:nargs]
    kw_names = names[nargs:nargs + nkw]
    out = {}
    extra = []
    for i, a in enumerate(args):
        if i < nargs:
            out[pos_names[i]] = a
        else:
            extra.append(a)
    if extra and not has_varargs:
        raise Unsupported(f"{name}() takes {nargs} positional arguments but {len(args)} were given")
    extra_kw = {}
    for k, v in kwargs.items():
        if (k in pos_names[code.co_posonlyargcount:] or k in kw_names) and k not in out:
            out[k] = v
        elif has_varkw and k not in out:
            extra_kw[k] = v
        else:
            raise Unsupported(f"{name}() got an unexpected keyword argument {k!r}")
    first_default = nargs - len(defaults)
    for i, pname in enumerate(pos_names):
        if pname not in out:
            if i >= first_default:
                out[pname] = defaults[i - first_default]
            else:
                raise Unsupported(f"{name}() missing argument {pname!r}")
    for kname in kw_names:
        if kname not in out:
            if kname in kwdefaults:
                out[kname] = kwdefaults[kname]
            else:
                raise Unsupported(f"{name}() missing keyword argument {kname!r}")
    index = nargs + nkw
    if has_varargs:
        out[names[index]] = TupleValue(extra)
        index += 1
    if has_varkw:
        out[names[index]] = DictValue(extra_kw)
    return out
