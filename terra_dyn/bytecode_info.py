"""A code object's instructions as the translator walks them and codegen cuts them (parsed
once per code object; neutral ground: translate and codegen both read it).

    info = code_info(f.__code__)
    info.instrs[pc]           # bytecode.Instr, Label, TryBegin or TryEnd
    info.label_pc[label]      # where a jump lands
    info.in_try[pc]           # inside a try/except or try/finally body (not a with block)
    info.in_with[pc]          # inside a with block's body

Example: for `for i in range(3): x = x + i`, FOR_ITER's argument is a Label and
`info.label_pc[instr.arg]` is the index of the instruction after the loop.
"""
import weakref

from bytecode import Bytecode, Instr, Label, TryBegin, TryEnd

from .seam import rules

_cache = {}  # id(code) -> CodeInfo
_registered = {}  # id(resume code) -> CodeInfo from the instructions it was made from


class CodeInfo:
    def __init__(self, code, bytecode=None):
        # weakly, and dropped from the caches when the code dies: a function made and
        # dropped in a loop must not leave its code behind here
        key = id(code)
        self._code = weakref.ref(code, lambda _, key=key, info=self, forget=_forget: forget(key, info))
        # keep the exception table's stack depths: resume functions reuse them as they are
        self.bytecode = bytecode if bytecode is not None else Bytecode.from_code(
            code, conserve_exception_block_stackdepth=True)
        self.instrs = list(self.bytecode)
        self.label_pc = {ins: i for i, ins in enumerate(self.instrs) if isinstance(ins, Label)}
        self.in_try = [False] * len(self.instrs)
        self.in_with = [False] * len(self.instrs)
        active = []
        for i, ins in enumerate(self.instrs):
            if isinstance(ins, TryBegin):
                active.append(ins)
            elif isinstance(ins, TryEnd):
                if ins.entry in active:
                    active.remove(ins.entry)
            for entry in active:
                if self._is_with_handler(entry):
                    self.in_with[i] = True
                else:
                    self.in_try[i] = True

    def _is_with_handler(self, entry):
        pc = self.label_pc.get(entry.target)
        names = []
        while pc is not None and pc < len(self.instrs) and len(names) < 2:
            ins = self.instrs[pc]
            if hasattr(ins, "name"):
                names.append(ins.name)
            pc += 1
        # a with block's handler, or compiler cleanup (a handler's own region, an inlined
        # comprehension's), is not a user try (the seam knows each version's spelling)
        return rules.handler_kind(names) != "user"

    def for_iter_exit_pc(self, label):
        """Where an exhausted FOR_ITER jumping to `label` goes on: past the instructions the
        version lays out there for it to skip (3.12: END_FOR; 3.13: END_FOR, POP_TOP)."""
        pc = self.label_pc[label]
        for _ in range(rules.for_iter_exit_skip):
            while not isinstance(self.instrs[pc], Instr):
                pc += 1
            pc += 1
        return pc

    def lineno(self, pc):
        for i in range(pc, -1, -1):
            ins = self.instrs[i]
            lineno = getattr(ins, "lineno", None)
            if type(lineno) is int and lineno:  # (bytecode's UNSET has no truth value)
                return lineno
        return self.code.co_firstlineno

    @property
    def code(self):
        return self._code()


def _forget(key, info, tables=(_cache, _registered)):
    for table in tables:
        if table.get(key) is info:
            del table[key]


def code_info(code) -> CodeInfo:
    info = _registered.get(id(code))
    if info is not None and info.code is code:
        return info
    info = _cache.get(id(code))
    if info is None or info.code is not code:
        info = CodeInfo(code)
        if len(_cache) > 2000:
            _cache.clear()
        _cache[id(code)] = info
    return info


def register(code, bytecode):
    """Use `bytecode` (the instructions `code` was made from) as `code`'s instructions:
    re-parsing would merge adjacent labels and shift the indexes resume functions use."""
    _registered[id(code)] = CodeInfo(code, bytecode)  # dropped when `code` dies
