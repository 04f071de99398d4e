"""Finding forbidden torch APIs in a student's file without running it, and the guard rules.

The scan follows imports and aliases (`import torch.nn.functional as F`,
`from torch.nn.functional import linear as lin`, `f = F.linear`), attribute chains,
`getattr(F, "lin" + "ear")`, `vars(F)["linear"]` and `__import__`/`importlib`, folding
constant strings. Each spelling is resolved to the real torch object and compared by
identity, so `torch._C._nn.linear` is caught as `torch.nn.functional.linear`; the method
forms of a forbidden function (`x.addmm(...)` for `torch.addmm`) and `torch.ops.aten.<op>`
are caught too. The child has a runtime guard (kit.grader.child.guard) for what no static
scan can see (strings built at run time).

Besides each assignment's list, GUARD_RULES and ATTRIBUTE_RULES are forbidden everywhere:
what turns that guard off, runs code where it cannot look, or searches the grading process
for kit's own objects. No honest submission needs any of them.
"""
from __future__ import annotations

import ast
import functools
import importlib
from dataclasses import dataclass, replace
from pathlib import Path


@dataclass(frozen=True)
class Hit:
    name: str  # the forbidden API, as the assignment names it
    line: int
    spelled: str  # how the student wrote it
    component: str | None  # the class it appears in, None at module level
    file: str = ""  # the submission's file it is in, relative to the submission folder


OFF = "turns kit's forbidden-API guard off"
ELSEWHERE = "runs code where kit's forbidden-API guard cannot see it"
SEARCH = "searches the grading process for kit's own objects"

# Forbidden in every assignment, with why; a name forbids everything under it. The child's guard trips
# on the same APIs at run time (kit.grader.child.guard.RULES).
GUARD_RULES: dict[str, str] = {
    **dict.fromkeys((
        "torch._C.DisableTorchFunction", "torch._C._set_torch_function_state", "torch._C._DisableTorchDispatch",
        "torch._C._ExcludeDispatchKeyGuard", "torch._C._SetExcludeDispatchKeyGuard", "torch._C._ForceDispatchKeyGuard",
        "torch._C._dispatch_tls_set_dispatch_key_excluded", "torch._C._dispatch_find_schema_or_throw",
        "torch._C._dispatch_call_boxed", "torch._ops.OpOverload.redispatch",
        "torch._C._pop_torch_function_stack", "torch._C._pop_torch_dispatch_stack",
        "torch.overrides._pop_mode", "torch.overrides._pop_mode_temporarily", "torch.utils._python_dispatch._pop_mode",
        "torch.utils._python_dispatch._pop_mode_temporarily", "torch.utils._python_dispatch._disable_current_modes",
        "torch.utils._mode_utils.no_dispatch",
    ), OFF),
    **dict.fromkeys((
        "threading", "_thread", "concurrent.futures", "multiprocessing.dummy", "multiprocessing.pool.ThreadPool",
        "torch.jit", "torch._C.CompilationUnit", "torch._C._jit_script_compile", "torch._C._jit_script_class_compile",
        "torch._C._create_function_from_graph", "torch._C._create_function_from_trace",
        "torch._C._create_function_from_trace_with_dict", "torch._C.import_ir_module",
        "torch._C.import_ir_module_from_buffer",
        "torch.library", "torch._library", "torch._custom_op", "torch._C._dispatch_library",
        "torch._ops._Ops.load_library", "torch.ops.load_library", "torch.classes.load_library",
        "torch.utils.cpp_extension", "ctypes", "_ctypes", "cffi",
        "torch.compile", "torch.compiler", "torch._dynamo", "torch.export", "torch._export", "torch._inductor",
    ), ELSEWHERE),
    **dict.fromkeys(("gc", "inspect", "sys._getframe", "sys._current_frames", "sys.modules", "kit"), SEARCH),
}
# Attribute names forbidden on anything (`f.__closure__`, `getattr(frame, "f_back")`), with why.
ATTRIBUTE_RULES: dict[str, str] = {
    "redispatch": OFF, "redispatch_boxed": OFF,
    **dict.fromkeys(("__closure__", "cell_contents", "__code__", "__globals__", "__subclasses__", "f_back", "f_locals",
                     "f_globals", "f_builtins", "tb_frame", "gi_frame", "cr_frame", "ag_frame"), SEARCH),
}
# What the child's guard reports that is not an API: a guard changed, a tensor subclass dispatching in Python.
RUNTIME_RULES: dict[str, str] = {
    "kit's guard": "its modes, tripwires or tables were changed, which is not allowed",
    "__torch_dispatch__": "a tensor subclass that dispatches in Python runs code where kit's forbidden-API guard "
                          "cannot see it",
}


def why(name: str) -> str | None:
    """Why a guard rule (`name` or what it is under) is forbidden everywhere; None for an assignment's own API."""
    if name in ATTRIBUTE_RULES or name in RUNTIME_RULES:
        return ATTRIBUTE_RULES.get(name) or RUNTIME_RULES[name]
    parts = name.split(".")
    return next((GUARD_RULES[p] for n in range(len(parts), 0, -1) if (p := ".".join(parts[:n])) in GUARD_RULES), None)


def describe(name: str, where: str) -> str:
    """A forbidden API or guard rule as a problem names it; `where` says where it was found."""
    reason = why(name)
    return f"{name} ({reason}; {where})" if reason else f"{name} ({where})"


@functools.lru_cache(maxsize=4096)
def resolve(dotted: str):
    """The torch object a dotted name refers to, or None."""
    parts = dotted.split(".")
    if parts[0] != "torch":
        return None
    import torch

    obj = torch
    for i, part in enumerate(parts[1:], start=1):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            try:
                obj = importlib.import_module(".".join(parts[: i + 1]))
            except Exception:  # noqa: BLE001 - any failure means: not a torch API
                return None
    return obj


def scan(source: str, forbidden: list[str], filename: str = "<student>") -> list[Hit]:
    """Every use of a forbidden API or guard rule in `source`; a syntax error is left to the import to report."""
    try:
        tree = ast.parse(source, filename)
    except SyntaxError:
        return []
    targets: dict[int, str] = {}
    methods: dict[str, str] = {}  # Tensor method -> what it is the method form of
    aten: set[str] = set()
    for name in forbidden:
        if name.startswith("aten."):
            aten.add(name.removeprefix("aten."))
            continue
        obj = resolve(name)
        if obj is not None:
            targets[id(obj)] = name
            if callable(obj) and not isinstance(obj, type):
                methods.update(_method_forms(name.rpartition(".")[2]))
    return _Scanner(tree, targets, methods, aten).run()


def _method_forms(attr: str) -> dict[str, str]:
    """torch.addmm's forms as a Tensor method: {"addmm": "torch.Tensor.addmm", "addmm_": "torch.Tensor.addmm_"}."""
    import torch

    return {m: f"torch.Tensor.{m}" for m in (attr, attr + "_") if callable(getattr(torch.Tensor, m, None))}


class _Scanner(ast.NodeVisitor):
    def __init__(self, tree: ast.Module, targets: dict[int, str], methods: dict[str, str], aten: set[str]) -> None:
        self.tree = tree
        self.targets = targets
        self.methods = methods
        self.aten = aten
        self.aliases: dict[str, str] = {}  # local name -> dotted torch path
        self.strings: dict[str, str] = {}  # local name -> constant string
        self.hits: dict[tuple[str, int], Hit] = {}
        self.component: str | None = None

    def run(self) -> list[Hit]:
        # Two passes: names may be bound after the function that uses them.
        for node in ast.walk(self.tree):
            self._learn(node)
        self._learn_assignments()
        self.visit(self.tree)
        return sorted(self.hits.values(), key=lambda h: h.line)

    def _learn(self, node: ast.AST) -> None:
        if isinstance(node, ast.Import):
            for a in node.names:
                if a.asname:
                    self.aliases[a.asname] = a.name
                else:
                    root = a.name.split(".")[0]
                    self.aliases[root] = root
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            for a in node.names:
                self.aliases[a.asname or a.name] = f"{node.module}.{a.name}"

    def _learn_assignments(self) -> None:
        for _ in range(3):  # aliases of aliases
            for node in ast.walk(self.tree):
                if isinstance(node, (ast.Assign, ast.AnnAssign)) and node.value is not None:
                    names = node.targets if isinstance(node, ast.Assign) else [node.target]
                    for target in names:
                        if isinstance(target, ast.Name):
                            text = self.fold(node.value)
                            if text is not None:
                                self.strings[target.id] = text
                            dotted = self.dotted(node.value)
                            if dotted is not None:
                                self.aliases[target.id] = dotted

    def fold(self, node: ast.AST) -> str | None:
        """The value of a constant string expression, or None."""
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            return node.value
        if isinstance(node, ast.Name):
            return self.strings.get(node.id)
        if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
            left, right = self.fold(node.left), self.fold(node.right)
            return left + right if left is not None and right is not None else None
        if isinstance(node, ast.JoinedStr):
            parts = []
            for value in node.values:
                inner = value.value if isinstance(value, ast.FormattedValue) else value
                text = self.fold(inner)
                if text is None:
                    return None
                parts.append(text)
            return "".join(parts)
        if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "join"
                and len(node.args) == 1 and isinstance(node.args[0], (ast.List, ast.Tuple))):
            sep = self.fold(node.func.value)
            items = [self.fold(e) for e in node.args[0].elts]
            if sep is not None and all(i is not None for i in items):
                return sep.join(items)
        if isinstance(node, ast.Subscript) and isinstance(node.slice, ast.Slice):
            text = self.fold(node.value)
            s = node.slice
            bounds = [self._int(x) for x in (s.lower, s.upper, s.step)]
            if text is not None and all(b is not False for b in bounds):
                return text[slice(*bounds)]
        return None

    @staticmethod
    def _int(node):
        if node is None:
            return None
        if isinstance(node, ast.Constant) and isinstance(node.value, int):
            return node.value
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub) and isinstance(node.operand, ast.Constant):
            return -node.operand.value
        return False

    def dotted(self, node: ast.AST) -> str | None:
        """The dotted torch path an expression refers to, or None."""
        if isinstance(node, ast.Name):
            return self.aliases.get(node.id)
        if isinstance(node, ast.Attribute):
            base = self.dotted(node.value)
            return f"{base}.{node.attr}" if base else None
        if isinstance(node, ast.Call):
            func = node.func
            name = func.id if isinstance(func, ast.Name) else self.dotted(func)
            if name == "getattr" and len(node.args) >= 2:
                base, attr = self.dotted(node.args[0]), self.fold(node.args[1])
                return f"{base}.{attr}" if base and attr is not None else None
            if name in ("__import__", "importlib.import_module") and node.args:
                module = self.fold(node.args[0])
                if module and name == "__import__" and not any(
                        k.arg == "fromlist" for k in node.keywords) and len(node.args) < 4:
                    return module.split(".")[0]
                return module
            if name == "vars" and len(node.args) == 1:
                return self.dotted(node.args[0])
        if isinstance(node, ast.Subscript):
            key = self.fold(node.slice)
            value = node.value
            if isinstance(value, ast.Attribute) and value.attr == "__dict__":
                value = value.value
            elif not (isinstance(value, ast.Call) and isinstance(value.func, ast.Name) and value.func.id == "vars"):
                return None
            base = self.dotted(value.args[0] if isinstance(value, ast.Call) else value)
            return f"{base}.{key}" if base and key is not None else None
        return None

    def visit_ClassDef(self, node: ast.ClassDef) -> None:
        outer, self.component = self.component, self.component or node.name
        for base in node.bases:
            self._check(base)
        for stmt in node.body:
            self.visit(stmt)
        self.component = outer

    def generic_visit(self, node: ast.AST) -> None:
        stored = isinstance(getattr(node, "ctx", None), ast.Store)
        if isinstance(node, (ast.Attribute, ast.Name, ast.Call, ast.Subscript)) and not stored and self._check(node):
            return
        attr = self._attribute(node)
        if attr in ATTRIBUTE_RULES:
            self._hit(attr, node)
        elif attr in self.methods and not stored:  # x.addmm(...): the method form of torch.addmm
            self._hit(self.methods[attr], node)
        super().generic_visit(node)

    def _attribute(self, node: ast.AST) -> str | None:
        """The attribute `node` reads or writes: `x.name`, or `getattr(x, "name")` and its kin."""
        if isinstance(node, ast.Attribute):
            return node.attr
        if (isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and len(node.args) >= 2
                and node.func.id in ("getattr", "setattr", "hasattr", "delattr")):
            return self.fold(node.args[1])
        return None

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        if node.module and node.level == 0:
            for a in node.names:
                self._report(f"{node.module}.{a.name}", node, f"from {node.module} import {a.name}")

    def visit_Import(self, node: ast.Import) -> None:
        for a in node.names:
            self._report(a.name, node, f"import {a.name}")

    def _check(self, node: ast.AST) -> bool:
        dotted = self.dotted(node)
        if dotted is None:
            return False
        return self._report(dotted, node, ast.unparse(node))

    def _report(self, dotted: str, node: ast.AST, spelled: str) -> bool:
        parts = dotted.split(".")
        # the longest prefix that is forbidden: `torch.optim._functional.adam` hits `torch.optim._functional`;
        # guard rules by name first (resolving `torch._dynamo...` would import it), then the assignment's by identity
        prefixes = [".".join(parts[:n]) for n in range(len(parts), 0, -1)]
        name = next((p for p in prefixes if p in GUARD_RULES), None)
        if name is None and parts[:3] == ["torch", "ops", "aten"] and len(parts) > 3:
            op = parts[3]
            name = f"aten.{op}" if op in self.aten else f"aten.{op[:-1]}" if op[:-1] in self.aten else None
        if name is None:
            name = next((self.targets[id(obj)] for p in prefixes[:-1]
                         if (obj := resolve(p)) is not None and id(obj) in self.targets), None)
        if name is None:
            return False
        self._hit(name, node, spelled)
        return True

    def _hit(self, name: str, node: ast.AST, spelled: str | None = None) -> None:
        spelled = ast.unparse(node) if spelled is None else spelled
        key = (name, node.lineno)
        if key not in self.hits:
            self.hits[key] = Hit(name, node.lineno, spelled if len(spelled) < 60 else spelled[:57] + "...",
                                 self.component)


def scan_files(folder: Path, files: list[str], forbidden: tuple[str, ...]) -> list[Hit]:
    """Every use of a forbidden API in these files of the submission (the graded one and what it imported)."""
    from .files import read_regular

    hits = []
    for rel in dict.fromkeys(files):
        try:
            source = read_regular(folder / rel, 1 << 20).decode("utf-8", "replace")
        except OSError:
            continue
        hits += [replace(h, file=rel) for h in scan(source, list(forbidden), rel)]
    return hits


def exists(name: str) -> bool:
    """Whether `name` (a dotted torch API, or aten.<op>) names something in the installed torch."""
    if name.startswith("aten."):
        import torch

        try:
            getattr(torch.ops.aten, name.removeprefix("aten."))
        except (AttributeError, RuntimeError):
            return False
        return True
    return resolve(name) is not None
