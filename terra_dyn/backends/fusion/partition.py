"""Fusion groups: which ATen nodes of a lowered graph run together in one Triton kernel.

Every group iterates over one `full_shape`; a reduction group also names the `reduce_dims`
it reduces. Inside a reduction group a node is either *full-level* (one value per element
of full_shape: prologue and epilogue math) or *x-level* (one value per kept row: the
reductions themselves and math on their results, e.g. layer norm's rsqrt(var + eps)).

    partition(graph) -> [Step, ...] in an order that respects every data dependency
    Step = FusionGroup (a kernel) | fx.Node (an ATen call, a view, a getitem)

Rules, applied to nodes in graph order:
  a pointwise node joins the group of one of its inputs when its shape is that group's
      full shape, or the kept shape of a reduction group (x-level);
  a reduction joins the group of its input when the group iterates over the input's shape
      and reduces the same dims (several reductions over one row: softmax, layer norm);
  a join never creates a cycle between steps, and never crosses a mutation (barrier);
  everything else (matmul, conv, random ops, views, ops without a lowering) is an ATen step.

Example: softmax over [64, 1000] is one group:
    FusionGroup#0(reduction [64, 1000] dims (1,): amax sub exp sum div)
"""
import heapq
import math

import torch
import torch.fx as fx

from . import ops

from .lowering import is_inplace

# A reduction with few rows and very long rows would run on a handful of programs; ATen's
# split reductions are faster there, so it stays an ATen call.
MAX_ROW_FOR_FEW_ROWS = 1 << 16


def shape_of(node) -> tuple:
    return tuple(int(s) for s in node.meta["val"].shape)


class FusionGroup:
    """A set of nodes computed by one kernel; `nodes` stay in graph order."""

    def __init__(self, gid: int, full_shape: tuple, reduce_dims: tuple = ()):
        self.id = gid
        self.full_shape = full_shape
        self.reduce_dims = reduce_dims
        self.nodes = []
        self.closed = False
        self.epoch = 0  # mutations seen before the group began: groups merge only within one

    @property
    def is_reduction(self):
        return bool(self.reduce_dims)

    def kept_shape(self, keepdim=True):
        if keepdim:
            return tuple(1 if d in self.reduce_dims else s for d, s in enumerate(self.full_shape))
        return tuple(s for d, s in enumerate(self.full_shape) if d not in self.reduce_dims)

    def is_x_level(self, node) -> bool:
        return self.is_reduction and shape_of(node) != self.full_shape

    def outputs(self):
        """Nodes whose values leave the kernel (used by another step or the graph output)."""
        members = set(self.nodes)
        return [n for n in self.nodes if any(u not in members for u in n.users)]

    def inputs(self):
        """Tensor nodes the kernel loads (produced by other steps or graph inputs), in first-use order."""
        members, seen = set(self.nodes), {}
        for node in self.nodes:
            for arg in node.all_input_nodes:
                if arg not in members:
                    seen.setdefault(arg, None)
        return list(seen)

    def op_names(self):
        return [ops.op_name(n) for n in self.nodes]

    def __repr__(self):
        kind = f"reduction {list(self.full_shape)} dims {self.reduce_dims}" if self.is_reduction \
            else f"pointwise {list(self.full_shape)}"
        return f"FusionGroup#{self.id}({kind}: {' '.join(self.op_names())})"


def _pad(shape, rank):
    return (1,) * (rank - len(shape)) + tuple(shape)


def _kernel_dtypes_ok(node):
    vals = [node.meta["val"]] + [a.meta.get("val") for a in node.all_input_nodes]
    return all(isinstance(v, torch.Tensor) and v.dtype in ops.FUSIBLE_DTYPES for v in vals)


def _lowerable(node):
    if node.op != "call_function" or not isinstance(node.meta.get("val"), torch.Tensor):
        return None
    if not _kernel_dtypes_ok(node) or node.meta["val"].numel() == 0:
        return None
    for arg in list(node.args) + list(node.kwargs.values()):
        if isinstance(arg, (list, tuple)) and any(isinstance(a, fx.Node) for a in arg):
            return None
    if any(isinstance(v, fx.Node) for v in node.kwargs.values()):
        return None  # lowerings read tensors from positional arguments only
    reduction = ops.reduction_of(node)
    if reduction is not None:
        full = shape_of(reduction.source)
        rnumel = math.prod(full[d] for d in reduction.dims)
        xnumel = math.prod(full) // max(rnumel, 1)
        if rnumel <= 1 or (xnumel < 8 and rnumel > MAX_ROW_FOR_FEW_ROWS):
            return None
        return reduction
    return ops.spec_of(node)


class _Partitioner:
    def __init__(self, graph: fx.Graph):
        self.graph = graph
        self.order = {n: i for i, n in enumerate(graph.nodes)}
        self.group_of = {}
        self.groups = []
        self.next_id = 0

    def step(self, node):
        return self.group_of.get(node, node)

    def _reaches(self, start_nodes, target_group):
        """True when target_group is an ancestor step of any of start_nodes."""
        seen, stack = set(), list(start_nodes)
        while stack:
            node = stack.pop()
            step = self.step(node)
            if step is target_group:
                return True
            if id(step) in seen:
                continue
            seen.add(id(step))
            members = step.nodes if isinstance(step, FusionGroup) else [step]
            for member in members:
                stack.extend(member.all_input_nodes)
        return False

    def _acyclic(self, node, group):
        foreign = [a for a in node.all_input_nodes if self.group_of.get(a) is not group]
        return not self._reaches(foreign, group)

    def _fits_pointwise(self, node, group):
        shape = shape_of(node)
        members = [a for a in node.all_input_nodes if self.group_of.get(a) is group]
        if not group.is_reduction:
            return shape == group.full_shape
        if shape == group.full_shape:
            keep = group.kept_shape(True)
            return all(not group.is_x_level(a) or _pad(shape_of(a), len(shape)) == keep for a in members)
        if shape in (group.kept_shape(True), group.kept_shape(False)):
            return all(group.is_x_level(a) and _pad(shape_of(a), len(shape)) == shape for a in members)
        return False

    def _fits_reduction(self, reduction, group):
        source = reduction.source
        if shape_of(source) != group.full_shape or self.group_of.get(source) is not group:
            return False
        if group.is_reduction:
            return group.reduce_dims == reduction.dims and not group.is_x_level(source)
        return True

    def _mergeable(self, group, other, node):
        # side-by-side chains from one input (GELU's 0.5 * x and erf(x / sqrt 2)) share a kernel
        if other.is_reduction or other.full_shape != shape_of(node) or other.closed:
            return False
        members = set(group.nodes) | set(other.nodes) | {node}
        foreign = [i for n in members for i in n.all_input_nodes if i not in members]
        return not self._reaches(foreign, group) and not self._reaches(foreign, other)

    def _merge(self, group, other):
        for node in other.nodes:
            self.group_of[node] = group
        group.nodes = sorted(group.nodes + other.nodes, key=self.order.__getitem__)
        other.nodes = []
        self.groups.remove(other)

    def _new_group(self, node, full_shape, reduce_dims=()):
        group = FusionGroup(self.next_id, full_shape, reduce_dims)
        self.next_id += 1
        group.epoch = self.epoch
        self.groups.append(group)
        self._add(node, group)

    def _add(self, node, group):
        group.nodes.append(node)
        self.group_of[node] = group

    def run(self):
        self.epoch = 0
        for node in self.graph.nodes:
            if is_inplace(node):
                self.epoch += 1
                for group in self.groups:
                    group.closed = True  # nothing may move across a mutation
                continue
            lowering = _lowerable(node)
            if lowering is None:
                continue
            candidates = []
            for arg in node.all_input_nodes:
                group = self.group_of.get(arg)
                if group is not None and not group.closed and group not in candidates:
                    candidates.append(group)
            if isinstance(lowering, ops.Reduction):
                fits = [g for g in candidates if self._fits_reduction(lowering, g) and self._acyclic(node, g)]
                if fits:
                    fits[0].reduce_dims = lowering.dims
                    self._add(node, fits[0])
                else:
                    self._new_group(node, shape_of(lowering.source), lowering.dims)
            else:
                fits = [g for g in candidates if self._fits_pointwise(node, g) and self._acyclic(node, g)]
                if fits:
                    for other in candidates:
                        if other is not fits[0] and self._mergeable(fits[0], other, node):
                            self._merge(fits[0], other)
                    self._add(node, fits[0])
                else:
                    self._new_group(node, shape_of(node))
        self._merge_siblings()
        return self._schedule()

    def _merge_siblings(self):
        """Groups over the same iteration space that read a common input share one kernel
        (the input is read once: x.sum(1) and x.amax(1), or three outputs made from x)."""
        changed = True
        while changed:
            changed = False
            for a in list(self.groups):
                for b in list(self.groups):
                    if a is b or a not in self.groups or b not in self.groups:
                        continue
                    if (a.full_shape, a.reduce_dims, a.epoch) != (b.full_shape, b.reduce_dims, b.epoch):
                        continue
                    if not set(a.inputs()) & set(b.inputs()):
                        continue
                    members = set(a.nodes) | set(b.nodes)
                    foreign = [i for n in members for i in n.all_input_nodes if i not in members]
                    if self._reaches(foreign, a) or self._reaches(foreign, b):
                        continue
                    self._merge(a, b)
                    changed = True

    def _schedule(self):
        """Steps in a dependency order (Kahn's algorithm, earliest graph position first)."""
        steps, first = [], {}
        for node in self.graph.nodes:
            if node.op in ("placeholder", "output", "get_attr"):
                continue
            step = self.step(node)
            if id(step) not in first:
                first[id(step)] = (self.order[node], step)
                steps.append(step)
        deps = {id(s): set() for s in steps}
        users = {id(s): set() for s in steps}
        barrier_positions = [self.order[n] for n in self.graph.nodes if is_inplace(n)]
        for step in steps:
            members = step.nodes if isinstance(step, FusionGroup) else [step]
            for member in members:
                for arg in member.all_input_nodes:
                    if arg.op in ("placeholder", "get_attr"):
                        continue
                    src = self.step(arg)
                    if src is not step:
                        deps[id(step)].add(id(src))
                        users[id(src)].add(id(step))
        by_id = {id(s): s for s in steps}
        # mutations keep their place relative to every other step
        for pos in barrier_positions:
            barrier = id(self.step(self._node_at(pos)))
            for step in steps:
                if id(step) == barrier:
                    continue
                lo = first[id(step)][0]
                if lo < pos:
                    deps[barrier].add(id(step)); users[id(step)].add(barrier)
                else:
                    deps[id(step)].add(barrier); users[barrier].add(id(step))
        ready = [(first[k][0], k) for k, d in deps.items() if not d]
        heapq.heapify(ready)
        ordered = []
        while ready:
            _, key = heapq.heappop(ready)
            ordered.append(by_id[key])
            for user in users[key]:
                deps[user].discard(key)
                if not deps[user]:
                    heapq.heappush(ready, (first[user][0], user))
        if len(ordered) != len(steps):
            raise RuntimeError("partition produced a cycle between steps")
        return ordered

    def _node_at(self, pos):
        for node, i in self.order.items():
            if i == pos:
                return node
        raise KeyError(pos)


def partition(graph: fx.Graph) -> list:
    """The steps (FusionGroups and ATen nodes) of an ATen-level graph, in a runnable order."""
    return _Partitioner(graph).run()
