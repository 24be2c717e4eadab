"""Values rebuild themselves (translate/values.py's protocol, driven by codegen's
Reconstructor): every value kind says how it is rebuilt in emitted code (or raises
Unsupported saying why it cannot be), which values it is built from, and how it becomes an
FX argument. Adding a value kind means writing its methods, not editing ladders elsewhere.
"""
import importlib
import pkgutil
import types

import pytest
import torch
from bytecode import Bytecode, Instr

import terra_dyn.translate
from terra_dyn.codegen.reconstruct import Reconstructor
from terra_dyn.errors import Unsupported
from terra_dyn.seam import rules
from terra_dyn.translate.values import (CellValue, ConstValue, DictValue, FunctionValue, ListValue, ObjectValue,
                                        SliceValue, TensorValue, TupleValue, Value)


def _value_classes():
    for info in pkgutil.iter_modules(terra_dyn.translate.__path__):
        importlib.import_module(f"terra_dyn.translate.{info.name}")
    out, todo = [], [Value]
    while todo:
        cls = todo.pop()
        for sub in cls.__subclasses__():
            todo.append(sub)
            if sub.__module__.startswith("terra_dyn.translate."):
                out.append(sub)
    return sorted(set(out), key=lambda c: (c.__module__, c.__name__))


def test_every_value_kind_says_how_it_is_rebuilt():
    classes = _value_classes()
    assert len(classes) >= 20
    missing = [f"{c.__module__}.{c.__name__}" for c in classes if c.rebuild is Value.rebuild]
    assert missing == [], "implement rebuild(r), or raise Unsupported in it saying why"


def test_value_kinds_holding_values_name_their_children():
    for cls in (TupleValue, ListValue, DictValue, ObjectValue, FunctionValue, SliceValue):
        assert cls.children is not Value.children, cls


def _run(instrs):
    bc = Bytecode(rules.prologue(0) + instrs + rules.return_value())
    bc.name = "rebuilt"
    return types.FunctionType(bc.to_code(), {})()


def test_nested_containers_rebuild_to_equal_objects():
    r = Reconstructor({})
    v = TupleValue([ConstValue(1), ListValue([ConstValue("a")]), DictValue({"k": ConstValue(2.5)}),
                    SliceValue(ConstValue(None), ConstValue(3), ConstValue(None))])
    assert _run(r.push(v)) == (1, ["a"], {"k": 2.5}, slice(None, 3, None))


def test_a_list_made_in_the_frame_is_built_once():
    # `xs = []; return xs, xs`: both items are the same list
    xs = ListValue([ConstValue(1)])
    out = _run(Reconstructor({}).push(TupleValue([xs, xs])))
    assert out == ([1], [1]) and out[0] is out[1]


def test_a_recursive_closure_finds_its_cell_built():
    # def fact(n): return 1 if n <= 1 else n * fact(n - 1)   (fact closes over its own cell)
    def outer():
        def fact(n):
            return 1 if n <= 1 else n * fact(n - 1)
        return fact

    code = next(c for c in outer.__code__.co_consts if isinstance(c, types.CodeType))
    cell = CellValue()
    fn = FunctionValue(code, {}, "fact", closure=[cell])
    cell.content = fn
    assert _run(Reconstructor({}).push(fn))(5) == 120


def test_a_graph_output_loads_from_the_result_tuple():
    graph = torch.fx.Graph()
    node = graph.placeholder("x")
    instrs = Reconstructor({node: 1}).output(node)
    assert [i.name for i in instrs if isinstance(i, Instr)] == ["LOAD_FAST", "LOAD_CONST", "BINARY_SUBSCR"]
    with pytest.raises(Unsupported, match="not a graph output"):
        Reconstructor({}).output(node)


def test_values_become_fx_arguments():
    v = TupleValue([ConstValue(1), ListValue([ConstValue(torch.float32)]),
                    SliceValue(ConstValue(None), ConstValue(2), ConstValue(None))])
    assert v.as_fx_arg() == (1, [torch.float32], slice(None, 2, None))
    with pytest.raises(Unsupported, match="cannot pass object to a graph op"):
        ConstValue(object()).as_fx_arg()
    with pytest.raises(Unsupported, match="to a graph op"):
        DictValue({}).as_fx_arg()


def test_values_say_what_an_op_sees_at_translate_time():
    meta = torch.empty(2, 3, device="meta")
    t = TensorValue(torch.fx.Graph().placeholder("x"), meta, device=torch.device("cpu"))
    size = TupleValue([ConstValue(2), ConstValue(3)], cls=torch.Size)
    v = TupleValue([t, ListValue([ConstValue(4), size]), SliceValue(ConstValue(None), ConstValue(2), ConstValue(None))])
    seen = v.seen_by_op("meta")
    assert seen[0] is meta
    assert seen[1] == [4, torch.Size([2, 3])] and type(seen[1][1]) is torch.Size
    assert seen[2] == slice(None, 2, None)
    other = ObjectValue.__new__(ObjectValue)  # a kind without its own facts is passed as itself
    assert other.seen_by_op("meta") is other
