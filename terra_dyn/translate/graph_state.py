"""The graph being built: FX nodes, graph inputs, fake tensors and recorded side effects.

    GraphState.input_tensor(real, source)  -> TensorValue (a placeholder; guards added)
    GraphState.call(kind, target, args)    -> Value (an FX node; facts from meta tensors)
    GraphState.side_effects                -> replayed in program order by the rewritten code
    GraphState.finish(live_values)         -> GraphModule whose outputs are the live tensors

Example: `torch.relu(x) + 1` on an input x adds placeholder x, call_function relu and
call_function operator.add, each with a meta tensor saying its shape and dtype.

Facts propagate on meta tensors, with the device tracked beside them (the rule FakeTensorMode
applies: the common device of the tensor arguments, CPU scalars aside, or an explicit
`device=`): several times cheaper per op than FakeTensorMode (no Python dispatch). Ops whose device or result
the meta device cannot tell (`.to`, `.cpu()`, data-dependent shapes, ops without meta
kernels, mixed devices) run under FakeTensorMode instead, as before.

Sizes that changed between calls (`a0.size()[0]` in the options' dynamic set) are symbolic:
those inputs and every op on them propagate under a FakeTensorMode with a ShapeEnv, and
check_symbolic() turns what the translation assumed (`a0.size()[0] == a1.size()[0]`) into
guards, or fails the attempt (DynamicShapesFailed) if it needed a size's value.
"""
import contextlib
import logging
import operator
import threading

import torch
import torch.fx as fx

from . import meta_propagation, node_effects, symbolic_rules, unit_sizes
from ..backends import interpreter
from .errors import Unsupported
from .guard_checks import AT_LEAST_ONE, FREE, UNCHECKED
from .meta_propagation import PURE_PYTHON_MODULES
from .size_exprs import DynamicShapesFailed, NumberSource, python_of, shape_env
from .sources import AttrSource, FreeVarSource
from .values import (SYMBOLIC_NUMBERS, ConstValue, ListValue, ScalarValue, SliceValue, TensorValue, TupleValue,
                     fx_arg, meta_like, seen_by_op)


class _QuietFakeErrors(logging.Filter):
    """Fake-tensor propagation failing is expected (it becomes a graph break): no log."""

    state = threading.local()

    def filter(self, record):
        return not getattr(self.state, "active", False)


_quiet = _QuietFakeErrors()
logging.getLogger("torch._subclasses.fake_tensor").addFilter(_quiet)


class GraphState:
    def __init__(self, guards, dynamic=(), static=()):
        self.guards = guards
        # "<input expr>.size()[d]": sizes that changed between calls, kept symbolic
        self.dynamic_sizes = {e for e in dynamic if e.endswith("]") and ".size()[" in e}
        # "size==8": a size that changed between calls; other inputs' dims of that size too
        # (convert_frame._like_sizes), except parameters
        self.like_sizes = {int(e[6:]) for e in dynamic if e.startswith("size==")}
        self.static_sizes = {e for e in static if ".size()[" in e}  # pinned: never a like size
        self.grow = unit_sizes.grow_scopes(dynamic)  # {a2['cache']: 1}: sizes 1 under it grow
        # sizes whose 1 the translation needed (unit_sizes): static when 1
        self.not_unit = {e[len(unit_sizes.NOT_UNIT):] for e in static if e.startswith(unit_sizes.NOT_UNIT)}
        self._symbolic = bool(dynamic)  # a ShapeEnv for symbolic sizes and int inputs
        self.inlined = 0  # inlined callees running (executor): their pins wait for the top level
        self._symbols = []  # (symbol, "<expr>.size()[d]" or "<expr>") of the symbolic numbers made
        self._number_symbols = set()  # those of number inputs (not sizes)
        self._attribute_symbols = set()  # those of number inputs read from an attribute
        self._relations = []  # ("<expr>.stride()[d]", formula of symbols): inferred strides
        self._outcomes = set()  # guards (sympy) a branch on a number input added: decide()
        self._unit_symbols = set()  # symbols of sizes that may be 1 (unit_sizes) ...
        self.unit_sources = set()  # ... and the sizes they stand for
        self._units_at_one = set()  # those of them that are 1 in this call
        self.graph = fx.Graph()
        self._fake_mode = None
        self.unbacked = False  # a static translation's fake mode made sizes from data (_sizes_from_data)
        self.inputs = []  # (Value, source) in placeholder order
        self._by_id = {}  # id(real input) -> Value (aliases share one placeholder)
        self._scalars = {}  # source expression -> ScalarValue of a number input
        self._keepalive = []
        self.side_effects = []  # SideEffect records, program order
        self.mutated = {}  # id(real container) -> the ListValue/DictValue to write back
        self.attr_overlay = {}  # (id(obj), name) -> Value stored during translation
        self._last_placeholder = None
        self.op_count = 0

    def release_user_objects(self):
        """At the translation's end (TranslationContext.close): the records of side effects,
        attribute writes and mutated containers were copied into the plan; holding them
        here would keep the frame's objects alive until the cyclic gc frees this state."""
        for table in (self.side_effects, self._keepalive, self.attr_overlay, self.mutated):
            table.clear()

    @property
    def fake_mode(self):
        if self._fake_mode is None:
            # imported here: fake tensors pull in sympy, which static meta propagation never needs
            from torch._subclasses.fake_tensor import FakeTensorMode

            if self._symbolic:
                self._fake_mode = FakeTensorMode(shape_env=shape_env())
                # fake tensors cache an op's output per ShapeEnv, i.e. per translation here, and
                # building an entry re-derives the symbolic output: a third of faster_rcnn's
                # symbolic retranslations (about 1 s each) went to entries never read again
                self._fake_mode.cache_enabled = False
            else:
                self._fake_mode = FakeTensorMode()
        return self._fake_mode

    # -- inputs ---------------------------------------------------------------------
    def _placeholder(self, name):
        if self._last_placeholder is None:
            first = next(iter(self.graph.nodes), None)
            ctx = self.graph.inserting_before(first) if first is not None else self.graph.inserting_after(None)
        else:
            ctx = self.graph.inserting_after(self._last_placeholder)
        with ctx:
            node = self.graph.placeholder(_clean(name))
        self._last_placeholder = node
        return node

    def input_tensor(self, real, source, by_identity=False):
        known = self._by_id.get(id(real))
        if known is not None:
            if source is not None and known.source is not None and source != known.source:
                # `f(x, x)`: the graph reads both through one placeholder, so a later call
                # with two different tensors must not reuse it
                self.guards.same_object(source, known.source, real)
            return known
        dims = [] if by_identity else self._symbolic_dims(real, source)
        strides = [] if by_identity or dims else self._like_base_strides(real, source)
        if by_identity:
            # the same parameter object can hold another tensor later (`p.data = torch.ones(4, 3)`
            # keeps the object): its metadata is guarded too, or shapes read at translation
            # (`w.shape`, a graph specialised to them) silently go stale
            self.guards.identity(source, real)
            self.guards.tensor(source, real)
        elif not dims and not strides:
            self.guards.tensor(source, real)
        node = self._placeholder(source.expr())
        if dims or strides:  # sizes that changed between calls: symbolic, every op under FakeTensorMode
            meta = self._symbolic_fake(real, source, dims, strides)
            value = TensorValue(node, meta, source)
            value.slow = True
        elif _meta_friendly(real):
            meta = meta_like(real)
            value = TensorValue(node, meta, source, device=real.device, owner=self)
        else:  # sparse, quantized, nested, subclasses: FakeTensorMode for every op on it
            meta = self.fake_mode.from_tensor(real)
            value = TensorValue(node, meta, source)
            value.slow = True
        node.meta["example_value"] = meta
        value.cls = type(real)
        value.real = real  # for attributes read from the real input (x.grad after backward)
        self._by_id[id(real)] = value
        self._keepalive.append(real)
        self.inputs.append((value, source))
        return value

    def _symbolic_dims(self, real, source):
        """Dims of a graph input to keep symbolic: those whose size changed between calls
        (convert_frame), when the size is at least 2 (sizes 0 and 1 behave differently: they
        stay static), or 1 on a contiguous input. On a plainly contiguous input each is a
        symbol that may be 1 (unit_sizes; _symbolic_fake)."""
        if not (self.dynamic_sizes or self.like_sizes or self.grow) or source is None or not _meta_friendly(real) \
                or isinstance(source.root(), FreeVarSource):  # closure guards name cells, not slots
            return []
        expr = source.expr()
        grows = unit_sizes.growing_dims(self.grow, real, expr, self.static_sizes | self.not_unit)
        like = self.like_sizes if not isinstance(real, torch.nn.Parameter) else ()
        # a 1 that changed between calls: a symbol that may be 1 (unit_sizes), on a plainly
        # contiguous input
        unit = unit_sizes.plainly_contiguous(real)
        return grows + [d for d in range(real.dim()) if d not in grows and (
            real.shape[d] >= 2 or real.shape[d] == 1 and unit and f"{expr}.size()[{d}]" not in self.not_unit) and (
            f"{expr}.size()[{d}]" in self.dynamic_sizes
            or real.shape[d] >= 2 and real.shape[d] in like and f"{expr}.size()[{d}]" not in self.static_sizes)]

    def grows_at(self, expr):
        """The counter value `expr` (a number under a grow scope) grows with, or None."""
        return unit_sizes.grows_at(self.grow, expr)

    def _like_base_strides(self, real, source):
        """Dims of a non-contiguous view whose strides to keep symbolic although none of its
        sizes changed: it slices its base along a dim of a like size (`size==8`, a size that
        changed between calls), so its base, and the strides that come from it, will differ later.
        gemma2's sliding-window cache at the second token is the last `window - 1` positions
        of the prompt's keys (a base of the prompt's length, input_ids' old length); from the
        third token on it is a slice of a `window`-long tensor: the same sizes, other strides
        (a retranslation otherwise). Only the strides torch cannot infer from the sizes and the
        strides after them are symbols; the others are their relations (guarded)."""
        if not self.like_sizes or source is None or isinstance(real, torch.nn.Parameter) \
                or not _meta_friendly(real) or not real._is_view() or real.is_contiguous() \
                or isinstance(source.root(), FreeVarSource) or real._base.dim() != real.dim() \
                or not any(b in self.like_sizes and b != n for b, n in zip(real._base.shape, real.shape)):
            return []  # only a slice along a dim of its base of a like size
        stride = real.stride()
        return [d for d in range(real.dim() - 1)
                if real.shape[d] > 1 and stride[d] != stride[d + 1] * real.shape[d + 1]]

    def _symbolic_fake(self, real, source, dims, free_strides=()):
        """A fake tensor with the sizes of `dims` symbolic, and its guard. A contiguous input
        stays contiguous (one check). A non-contiguous one (a slice or transpose: yolov3's
        `bbox_wh_iou` on a column slice of the targets) keeps the strides that changed between
        calls symbolic too: torch infers each from the sizes where it can (`a0.stride()[1] ==
        a0.size()[0]` for a transpose, guarded as that relation) and makes the others, and a
        storage offset of at least 2, symbols of their own."""
        from torch.fx.experimental.symbolic_shapes import DimDynamic, StatelessSymbolicContext

        expr, n = source.expr(), real.dim()
        contiguous = real.is_contiguous()
        base = None
        if real._is_view():  # a static base: its own sizes would be symbols no guard names
            base = StatelessSymbolicContext(dynamic_sizes=[DimDynamic.STATIC] * real._base.dim())
        context = StatelessSymbolicContext(
            dynamic_sizes=[DimDynamic.DYNAMIC if d in dims else DimDynamic.STATIC for d in range(n)],
            dynamic_strides=[DimDynamic.DYNAMIC if d in free_strides else DimDynamic.INFER_STRIDE
                             for d in range(n)],
            constraint_sizes=[None] * n, view_base_context=base)
        may_be_one = self.dynamic_sizes - self.not_unit if unit_sizes.plainly_contiguous(real) else ()  # a later 1
        units = [d for d in dims if real.shape[d] == 1 or f"{expr}.size()[{d}]" in may_be_one]
        if units:
            fake, symbols = unit_sizes.fake_tensor(self.fake_mode, real, context, units)
            self._unit_symbols |= symbols
        else:
            fake = self.fake_mode.from_tensor(real, symbolic_context=context)
        sizes = [self._layout_item(fake.shape[d], f"{expr}.size()[{d}]") for d in range(n)]
        offset = self._layout_item(fake.storage_offset(), f"{expr}.storage_offset()")
        if offset is not FREE:  # a constant offset: guarded only where read (offset_read)
            offset = UNCHECKED
        stride = None if contiguous else [self._layout_item(s, f"{expr}.stride()[{d}]")
                                          for d, s in enumerate(fake.stride())]
        self.guards.tensor_layout(source, real, sizes, stride, offset)
        return fake

    def _layout_item(self, item, expr):
        """A size, stride or offset of a symbolic input's fake tensor as the guard checks it:
        its int, or FREE for a new symbol (named `expr` for the guards that relate it);
        a formula of other symbols (an inferred stride) becomes a relation checked later."""
        if not isinstance(item, torch.SymInt):
            return int(item)
        sym = item.node.expr
        if sym.is_Symbol and all(sym != s for s, _ in self._symbols):
            self._symbols.append((sym, expr))
            if sym in self._unit_symbols:
                self.unit_sources.add(expr)
                if item.node.hint == 1:
                    self._units_at_one.add(expr)
                return AT_LEAST_ONE
            return FREE
        self._relations.append((expr, sym))
        return FREE

    def _offset_read(self):
        """A storage offset read as a number follows from the offsets of the inputs it views,
        which the tensor guards leave free: guard each input's (read on a contiguous input, it
        returned the first call's offset forever). A symbolic one is this call's already."""
        for value, source in self.inputs:
            if isinstance(value, TensorValue) and value.real is not None \
                    and not isinstance(value.facts.storage_offset(), torch.SymInt):
                self.guards.storage_offset(source, value.real.storage_offset())

    def check_symbolic(self):
        """Guard what the translation assumed about its symbolic sizes (`a0.size()[0] ==
        a1.size()[0]` for `x - y`); raise DynamicShapesFailed if it pinned one to a constant
        (read it as a number) or assumed something these guards cannot say."""
        if not self._symbols:
            return
        env = self.fake_mode.shape_env
        names = {sym: expr for sym, expr in self._symbols}
        facts = []
        self._stop_if_pinned()
        for sym, expr in self._symbols:
            target = env.replacements.get(sym)
            if target is not None:
                facts.append(f"{expr} == {python_of(target, names)}")
        for expr, formula in self._relations:  # inferred strides: `a0.stride()[1] == (a0.size()[0])`
            facts.append(f"{expr} == {python_of(formula, names)}")
        for guard in env.guards:
            facts.append(python_of(guard.expr, names))
        # and the clamps of slice bounds on symbolic sizes (symbolic_rules._guarded_sign)
        outcomes = {python_of(expr, names) for expr in self._outcomes | getattr(env, "terra_clamps", set())}
        for text in facts:
            self.guards.expression(text, outcome=text in outcomes)

    def stop_if_pinned(self):
        """_stop_if_pinned, outside inlined callees (executor checks after each top-level
        instruction)."""
        if not self.inlined:
            self._stop_if_pinned()

    def _stop_if_pinned(self):
        """Fail the attempt as soon as an op or branch pins a symbol to a constant, not at the
        end: the rest of the translation would be thrown away (mistral's second token pinned
        the cache counter at its 89th op; the whole attempt took 0.6 s)."""
        if not self._symbols:
            return
        replacements = self.fake_mode.shape_env.replacements
        pinned = {expr for sym, expr in self._symbols if getattr(replacements.get(sym), "is_number", False)}
        if pinned:
            raise DynamicShapesFailed(f"the translation depends on the value of {', '.join(sorted(pinned))}", pinned,
                                      unit=pinned <= self._units_at_one)

    def known_input(self, real):
        """The value of a real object already used as a graph input, or None."""
        return self._by_id.get(id(real)) if real is not None else None

    def input_scalar(self, real, source):
        """A number that varies between calls: a graph input instead of a constant. An int is
        symbolic (a ShapeEnv symbol named after its source), so that sizes computed from it
        (`torch.zeros(k)`) and branches on it are guarded by relation, not baked in."""
        known = self._scalars.get(source.expr())
        if known is not None:  # read twice (`self.step` in two places): one placeholder
            return known
        self.guards.type(source, type(real))
        node = self._placeholder(source.expr())
        example = real
        if type(real) is int and self._symbolic:
            from torch.fx.experimental.symbolic_shapes import DimDynamic

            env, name = self.fake_mode.shape_env, NumberSource(source.expr())
            symbol = env.create_unspecified_symbol(real, name, dynamic_dim=DimDynamic.DYNAMIC)
            example = env.create_symintnode(symbol, hint=real, source=name)
            self._symbols.append((symbol, source.expr()))
            self._number_symbols.add(symbol)
            if isinstance(source, AttrSource):
                self._attribute_symbols.add(symbol)
        node.meta["example_value"] = example
        value = self._scalars[source.expr()] = ScalarValue(node, example, source)
        self.inputs.append((value, source))
        return value

    def decide(self, number):
        """bool(number) for a branch the translation takes one way (its relation guarded).
        What a branch on a number input (`self.iteration % 10 == 0`) guards is its outcome,
        named as such (GuardSet.outcomes): convert_frame runs a call that flips it rarely as
        written instead of translating the other way."""
        if not isinstance(number, (torch.SymBool, torch.SymInt, torch.SymFloat)):
            return bool(number)
        env = self.fake_mode.shape_env
        before = len(env.guards)
        result = bool(number)
        if number.node.expr.free_symbols & self._number_symbols:
            self._outcomes.update(g.expr for g in env.guards[before:])
        self.stop_if_pinned()
        return result

    def only_sizes_in(self, number):
        """True when symbolic `number` depends on tensor sizes alone (no number input), or
        on numbers read from attributes: a counter an object keeps (a sliding-window cache's
        `cumulative_length`) crosses a threshold once, so a branch on it is guarded by its
        outcome, not broken on each call like a loop counter passed as an argument."""
        return not (number.node.expr.free_symbols & (self._number_symbols - self._attribute_symbols))

    def sizes(self, t):
        """t's sizes as Values: constants, and for symbolic sizes a `size` node (`n =
        x.shape[0]` stays symbolic, computed by the graph on each call)."""
        return [self.call("call_method", "size", [t, ConstValue(d)]) if isinstance(s, torch.SymInt)
                else ConstValue(int(s)) for d, s in enumerate(t.facts.shape)]

    # -- ops ------------------------------------------------------------------------
    def call(self, kind, target, args, kwargs=None):
        """Add one node; `kind` is "call_function" or "call_method"."""
        kwargs = kwargs or {}
        if _plain_int_scalar(list(args) + list(kwargs.values())) and (
                getattr(target, "__module__", None) not in PURE_PYTHON_MODULES or _has_tensor_value(args)):
            # its value is not tracked: a size made from it (`torch.zeros(k)`) would be baked in
            raise Unsupported(f"{getattr(target, '__name__', target)} of a run-time int that is not symbolic")
        node_args = tuple(fx_arg(a) for a in args)
        node_kwargs = {k: fx_arg(v) for k, v in kwargs.items()}
        name = target if kind == "call_method" else getattr(target, "__name__", None)
        if unit_sizes.layout_read(self.unit_sources, name, args, self._units_at_one):
            unit_sizes.at_least_two(self.fake_mode.shape_env, self._unit_symbols, self.unit_sources)
        if name == "storage_offset":
            self._offset_read()
        result, device = meta_propagation.propagate(kind, target, args, kwargs)
        if result is meta_propagation.SLOW:
            result, device = self._propagate_fake(kind, target, args, kwargs), None
        self.stop_if_pinned()  # by this op, or by a value read since (`range(n)`)
        if isinstance(result, (str, bytes)) and (_has_scalar_value(args) or _is_pure_python(target)):
            # `"A(%r)" % n`, `hex(n)`: the text of one example ("A(s2)" for a symbolic n) would be
            # baked in for every later value (test_descr's test_supers)
            raise Unsupported(f"{getattr(target, '__name__', target)} makes text from a run-time value")
        node = self.graph.create_node(kind, target, node_args, node_kwargs)
        self.op_count += 1
        mutated = node_effects.mutated_arg(kind, target, args, kwargs)
        if mutated is not None and isinstance(result, torch.Tensor):
            # an in-place op returns its argument: keep aliasing visible (`y += 1; y is x`)
            node.meta["example_value"] = result
            node.meta["in_place"] = True
            return mutated
        return self._wrap_result(node, result, device)

    def _propagate_fake(self, kind, target, args, kwargs):
        if self._symbols or self.unbacked:  # the ops of a growing cache: sizes by rule, no sympy per op
            result = symbolic_rules.propagate(self, kind, target, args, kwargs)
            if result is not None:
                return result
        fake_args = tuple(seen_by_op(a, "fake") for a in args)
        fake_kwargs = {k: seen_by_op(v, "fake") for k, v in kwargs.items()}
        _quiet.state.active = True
        try:
            try:
                return self._run_fake(kind, target, fake_args, fake_kwargs)
            except Exception as exc:
                if not self._sizes_from_data(exc, target, fake_args):
                    raise
            return self._run_fake(kind, target, fake_args, fake_kwargs)
        except Unsupported:
            raise
        except Exception as exc:  # a user error (shape mismatch) or a data-dependent op:
            # break here, so the real instruction runs natively and raises (or computes) as eager
            name = getattr(target, "__name__", target)
            raise Unsupported(f"{name}: {type(exc).__name__}: {str(exc).splitlines()[0][:200] if str(exc) else ''}")
        finally:
            _quiet.state.active = False

    def _run_fake(self, kind, target, fake_args, fake_kwargs):
        with self.fake_mode, self._dispatcher():
            if kind == "call_method":
                return getattr(fake_args[0], target)(*fake_args[1:], **fake_kwargs)
            return target(*fake_args, **fake_kwargs)

    def _sizes_from_data(self, exc, target, fake_args):
        """A selection by a bool mask (`px[m]`), `torch.where(c)` or `nonzero` in a translation
        without symbolic sizes: its fake mode gets a ShapeEnv now (inputs stay static), so the
        result's size is a symbol of its own (one per mask: `px[m]`, `tx[m]` equal) instead of
        a break; True to run the op again. yolov3's masked losses broke twice a line; faster_rcnn's
        sampler at each `torch.where`, and the resumed frames, static, were translated again
        when step 0's box counts came back (step 56: 6 translations, 0.4 s)."""
        from torch._subclasses.fake_tensor import DynamicOutputShapeException

        mode = self.fake_mode
        if not isinstance(exc, DynamicOutputShapeException) or self._symbolic or mode.shape_env is not None \
                or not (target is operator.getitem and _bool_index(fake_args[1:]) or _nonzero_like(target, fake_args)):
            return False
        mode.shape_env = shape_env()
        mode.cache_enabled = False  # as in symbolic translations (fake_mode)
        self.unbacked = True
        return True

    def data_dependent(self, exc):
        """Is exc a question about a size from data (`if len(px[m]):`), asked by the translator
        outside an op, in a translation that made such sizes (_sizes_from_data)? The executor
        breaks there, as a static translation did at the op that made the size."""
        if not self.unbacked:
            return False
        from torch.fx.experimental.symbolic_shapes import GuardOnDataDependentSymNode

        return isinstance(exc, GuardOnDataDependentSymNode)

    def _dispatcher(self):
        """Symbolic sizes go through torch's Python dispatcher, as torch.compile's tracing does:
        its decompositions of composite ops keep sizes symbolic where the C++ ones read them
        as ints (torch 2.11's matmul pinned a growing KV cache's length: a translation per
        token)."""
        if not self._symbolic:
            return contextlib.nullcontext()
        from torch._dispatch.python import enable_python_dispatcher

        return enable_python_dispatcher()

    def _wrap_result(self, node, result, device=None):
        if isinstance(result, torch.Tensor):
            node.meta["example_value"] = result
            if device is None:
                if (self._symbols or self.unbacked) and _meta_friendly_result(result) and not _symbolic_layout(result):
                    # sizes, strides and offset all ints (a decoder's attention output over a
                    # symbolic cache length): the ops after it propagate on meta tensors again,
                    # several times cheaper than under the ShapeEnv (mistral's symbolic
                    # retranslation ran 166 ops under FakeTensorMode, 63 of them symbolic)
                    meta = meta_like(result)
                    node.meta["example_value"] = meta
                    value = TensorValue(node, meta, device=result.device, owner=self)
                    value._fake = result  # an op handing back its input (`s.type_as(x)`): `is` sees it
                    return value
                value = TensorValue(node, result, owner=self)
                # may have symbolic sizes: no meta copy
                value.slow = bool(self._symbols) or self.unbacked and _symbolic_layout(result)
                return value
            return TensorValue(node, result, device=device, owner=self)
        if isinstance(result, (tuple, list)) and not isinstance(result, torch.Size):
            items = []
            for i, r in enumerate(result):
                sub = self.graph.call_function(operator.getitem, (node, i))
                items.append(self._wrap_result(sub, r, device))
            if isinstance(result, list):
                return ListValue(items)
            return TupleValue(items, cls=type(result))  # tuple or torch.return_types.*
        if isinstance(result, torch.Size):
            node.meta["example_value"] = result  # its symbolic items are not plain numbers
            return TupleValue([self._wrap_result(self.graph.call_function(operator.getitem, (node, i)), s)
                               if isinstance(s, torch.SymInt) else ConstValue(int(s))
                               for i, s in enumerate(result)], cls=torch.Size)
        if isinstance(result, SYMBOLIC_NUMBERS):
            if result.node.expr.is_number:  # `n - n`: the same for every value
                return ConstValue(result.node.pytype(result.node.expr))
            if _depends_on_plain_scalar(node):  # `n * p`, p a float input: its value would be baked in
                result = result.node.hint
            node.meta["example_value"] = result
            return ScalarValue(node, result)
        if isinstance(result, (int, float, bool)):
            if isinstance(node, fx.Node) and _depends_on_plain_scalar(node):
                node.meta["example_value"] = result
                return ScalarValue(node, result)
            return ConstValue(result)
        if result is None or isinstance(result, (torch.dtype, torch.device, str)):
            return ConstValue(result)
        raise Unsupported(f"op returned {type(result).__name__}")

    def record(self, effect):
        self.side_effects.append(effect)

    # -- finishing ------------------------------------------------------------------
    def finish(self, outputs):
        """A GraphModule returning `outputs` (graph values), or None for an empty graph."""
        # before the empty-graph exit: a frame that only reads a size and returns it as a number
        # (`lambda x: x.shape[0]`, transformers' Cache.get_seq_length) has no ops, yet its size
        # must pin
        self.check_symbolic()
        if not self.op_count and not outputs:
            return None
        nodes = tuple(v.node for v in outputs)
        self.graph.output(nodes)
        self.graph.eliminate_dead_code(is_impure_node=node_effects.is_impure)
        gm = fx.GraphModule(torch.nn.Module(), self.graph)
        gm.graph.lint()
        interpreter.code_is_fresh(gm)  # its code generated once, not again by the interpreter backend
        return gm

    def example_inputs(self):
        return [src for _, src in self.inputs]


def _nonzero_like(target, args):  # `torch.where(c)`, `torch.nonzero(x)`, `x.nonzero()`
    return target is torch.where and len(args) == 1 or target in (torch.nonzero, "nonzero")


def _bool_index(index):
    """A bool tensor among the index items of a getitem's arguments after the tensor."""
    items = index[0] if len(index) == 1 and isinstance(index[0], tuple) else index
    return any(isinstance(i, torch.Tensor) and i.dtype in (torch.bool, torch.uint8) for i in items)


def _symbolic_layout(t):
    """Has fake tensor t a symbolic size, stride or offset, or is it a view of one that has
    (an in-place op through the view changes what the base's facts say)?"""
    if any(isinstance(n, torch.SymInt) for n in (*t.shape, *t.stride(), t.storage_offset())):
        return True
    return t._is_view() and t._base is not None and _symbolic_layout(t._base)


def _meta_friendly_result(fake):
    return fake.layout is torch.strided and not fake.is_quantized and not fake.is_nested \
        and fake.device.type != "meta"


def _meta_friendly(real):
    return (type(real) in (torch.Tensor, torch.nn.Parameter) and real.layout is torch.strided
            and not real.is_quantized and not real.is_nested and real.device.type != "meta")


def _depends_on_plain_scalar(node):
    """An argument of node is a run-time number that is not symbolic (a float input, or
    arithmetic on one): results computed from its translate-time value hold only for it."""
    return any(isinstance(a, fx.Node) and not isinstance(a.meta.get("example_value"), _NOT_PLAIN) for a in node.args)


_NOT_PLAIN = (torch.Tensor, torch.Size) + SYMBOLIC_NUMBERS


def _plain_int_scalar(values):
    """A run-time number that is neither symbolic nor a Python float (an int made from a
    float input, a numpy integer) among `values`."""
    for v in values:
        if isinstance(v, ScalarValue) and not v.symbolic and not isinstance(v.example, float):
            return True
        if isinstance(v, (TupleValue, ListValue, SliceValue)) and _plain_int_scalar(v.children()):
            return True
    return False


def _has_tensor_value(args):
    return any(isinstance(a, TensorValue) for a in args)


def _has_scalar_value(values):
    return any(isinstance(v, ScalarValue) or isinstance(v, (TupleValue, ListValue, SliceValue))
               and _has_scalar_value(v.children()) for v in values)


def _is_pure_python(target):
    return getattr(target, "__module__", None) in PURE_PYTHON_MODULES


def _clean(name):
    out = "".join(c if c.isalnum() else "_" for c in name).strip("_")
    return out or "input"
