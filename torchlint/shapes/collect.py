"""What the shape analysis needs to know about a file, gathered in the engine's traversal.

The collector's ``visit_*``/``leave_*`` methods are called by TL301 from the
engine's single traversal (or by :class:`StandaloneWalker` when the analysis
runs on its own). It records scopes, the names each scope binds (flow-
insensitively, with how: assigned, a loop target, a parameter, an import, a
def or a class), and every call, so that the analysis never walks the tree.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import libcst as cst

from torchlint.names import Scope as NameScope
from torchlint.names import dotted_name, function_scope
from torchlint.shapes.values import ClassInfo, FuncInfo


@dataclass(eq=False, repr=False)
class Binding:
    kind: str  # "assign" | "for" | "param" | "def" | "class" | "import" | "other"
    # Where the name sits in a destructuring target: (0, 1) is ``a`` in ``(_, (_, a)) = ...``.
    path: tuple[int, ...] | None
    value: Any  # the assigned expression, the loop's iterable, FuncInfo/ClassInfo, or param info
    node: cst.CSTNode
    # Order of appearance, and the branching statements (if/else/loop/try) around it.
    seq: int = 0
    block: tuple[cst.CSTNode, ...] = ()
    # Where the value is read: a loop target's iterable is read outside the loop.
    read_block: tuple[cst.CSTNode, ...] = ()


@dataclass(eq=False, repr=False)
class ScopeInfo:
    node: cst.CSTNode  # Module or FunctionDef
    parent: ScopeInfo | None
    names: NameScope  # import resolution (torchlint.names)
    bindings: dict[str, list[Binding]] = field(default_factory=dict)
    func: FuncInfo | None = None

    def bind(self, name: str, binding: Binding) -> None:
        self.bindings.setdefault(name, []).append(binding)


@dataclass(eq=False, repr=False)
class CallSite:
    node: cst.Call
    scope: ScopeInfo
    in_try: bool
    # Inside a method of a class (its own instance code, not top-level use).
    in_class: ClassInfo | None
    seq: int = 0
    block: tuple[cst.CSTNode, ...] = ()
    # Inside a comprehension or lambda, whose own variables the bindings do not know.
    in_comp: bool = False


def target_paths(target: cst.BaseExpression, prefix: tuple[int, ...] = ()):
    """(name, path) for every name a target binds; path None where starred."""
    if isinstance(target, cst.Name):
        yield target.value, prefix
    elif isinstance(target, (cst.Tuple, cst.List)):
        starred = any(isinstance(el, cst.StarredElement) for el in target.elements)
        for i, el in enumerate(target.elements):
            if starred:
                for name, _ in target_paths(el.value, ()):
                    yield name, None
            else:
                yield from target_paths(el.value, prefix + (i,))


class Collector:
    def __init__(self, module: cst.Module, module_names: NameScope) -> None:
        self.module = module
        self.module_scope = ScopeInfo(module, None, module_names)
        self.scope = self.module_scope
        self.classes: list[ClassInfo] = []
        self.functions: list[FuncInfo] = []
        self.calls: list[CallSite] = []
        self.sequential_assigns: list[tuple[str, cst.Assign, ScopeInfo]] = []
        # Attribute names assigned on something other than ``self`` (``model.fc = ...``),
        # and names whose items are assigned (``model[3] = ...``).
        self.foreign_attr_assigns: set[str] = set()
        self.subscript_assigns: set[str] = set()
        self._class_stack: list[ClassInfo | None] = []
        self._scope_stack: list[ScopeInfo] = []
        self._try_depth = 0
        self._method_class: list[ClassInfo | None] = [None]
        self._seq = 0
        self._comp_depth = 0
        self._block: tuple[cst.CSTNode, ...] = ()
        self._block_stack: list[tuple[cst.CSTNode, ...]] = []

    def _next(self) -> int:
        self._seq += 1
        return self._seq

    def _push_block(self, node: cst.CSTNode) -> None:
        self._block_stack.append(self._block)
        self._block = self._block + (node,)

    def _pop_block(self) -> None:
        self._block = self._block_stack.pop()

    # -- scopes --
    def visit_ClassDef(self, node: cst.ClassDef) -> None:
        info = ClassInfo(node, node.name.value, self.scope)
        for stmt in node.body.body if isinstance(node.body, cst.IndentedBlock) else ():
            if isinstance(stmt, cst.SimpleStatementLine):
                for small in stmt.body:
                    if isinstance(small, cst.Assign) and len(small.targets) == 1:
                        t = small.targets[0].target
                        if isinstance(t, cst.Name):
                            info.class_attrs[t.value] = small.value
        self.classes.append(info)
        self.scope.bind(node.name.value, Binding("class", (), info, node, self._next(), self._block, self._block))
        self._class_stack.append(info)

    def leave_ClassDef(self, node: cst.ClassDef) -> None:
        self._class_stack.pop()

    def visit_FunctionDef(self, node: cst.FunctionDef) -> None:
        owner = self._class_stack[-1] if self._class_stack else None
        scope = ScopeInfo(node, self.scope, function_scope(node))
        info = FuncInfo(node, node.name.value, scope, owner)
        scope.func = info
        self.functions.append(info)
        if owner is not None:
            owner.methods[node.name.value] = info
        else:
            self.scope.bind(node.name.value, Binding("def", (), info, node, self._next(), self._block, self._block))
        params = node.params
        for i, p in enumerate((*params.posonly_params, *params.params)):
            scope.bind(p.name.value, Binding("param", (), (i, p), p))
        for p in params.kwonly_params:
            scope.bind(p.name.value, Binding("param", (), (None, p), p))
        for star in (params.star_arg, params.star_kwarg):
            if isinstance(star, cst.Param):
                scope.bind(star.name.value, Binding("other", None, None, star))
        self._scope_stack.append(self.scope)
        self._block_stack.append(self._block)
        self._block = ()
        self.scope = scope
        self._class_stack.append(None)  # a class body's names are not visible in nested defs
        self._method_class.append(owner if owner is not None else self._method_class[-1])

    def leave_FunctionDef(self, node: cst.FunctionDef) -> None:
        self.scope = self._scope_stack.pop()
        self._block = self._block_stack.pop()
        self._class_stack.pop()
        self._method_class.pop()

    def _in_class_body(self) -> bool:
        return bool(self._class_stack) and self._class_stack[-1] is not None

    # -- bindings --
    def visit_Assign(self, node: cst.Assign) -> None:
        if self._in_class_body():
            return
        for t in node.targets:
            self._bind_target(t.target, "assign", node.value, node)
        if (
            len(node.targets) == 1
            and isinstance(node.targets[0].target, cst.Name)
            and isinstance(node.value, cst.Call)
            and (dotted_name(node.value.func) or "").endswith("Sequential")
        ):
            self.sequential_assigns.append((node.targets[0].target.value, node, self.scope))

    def _bind_target(self, target: cst.BaseExpression, kind: str, value: Any, node: cst.CSTNode) -> None:
        if isinstance(target, cst.Subscript):
            base = target.value
            while isinstance(base, cst.Subscript):
                base = base.value
            if isinstance(base, cst.Name):
                self.subscript_assigns.add(base.value)
            elif isinstance(base, cst.Attribute) and not (isinstance(base.value, cst.Name) and base.value.value == "self"):
                self.foreign_attr_assigns.add(base.attr.value)
            return
        if isinstance(target, cst.Attribute):
            if not (isinstance(target.value, cst.Name) and target.value.value == "self"):
                self.foreign_attr_assigns.add(target.attr.value)
            return
        seq = self._next()
        read_block = self._block[:-1] if kind == "for" else self._block
        for name, path in target_paths(target):
            self.scope.bind(name, Binding(kind if path is not None else "other", path, value, node, seq, self._block, read_block))
        if isinstance(target, (cst.Tuple, cst.List)):
            for el in target.elements:
                if isinstance(el.value, cst.Attribute):
                    self._bind_target(el.value, kind, None, node)

    def visit_AnnAssign(self, node: cst.AnnAssign) -> None:
        if self._in_class_body():
            return
        if node.value is not None:
            self._bind_target(node.target, "assign", node.value, node)

    def visit_AugAssign(self, node: cst.AugAssign) -> None:
        if self._in_class_body():
            return
        self._bind_target(node.target, "other", None, node)

    def visit_For(self, node: cst.For) -> None:
        self._push_block(node)
        self._bind_target(node.target, "for", node.iter, node)

    def leave_For(self, node: cst.For) -> None:
        self._pop_block()

    def visit_If(self, node: cst.If) -> None:
        self._push_block(node)

    def leave_If(self, node: cst.If) -> None:
        self._pop_block()

    def visit_Else(self, node: cst.Else) -> None:
        self._push_block(node)

    def leave_Else(self, node: cst.Else) -> None:
        self._pop_block()

    def visit_While(self, node: cst.While) -> None:
        self._push_block(node)

    def leave_While(self, node: cst.While) -> None:
        self._pop_block()

    def visit_Finally(self, node: cst.Finally) -> None:
        self._push_block(node)

    def leave_Finally(self, node: cst.Finally) -> None:
        self._pop_block()

    def visit_MatchCase(self, node: cst.CSTNode) -> None:
        self._push_block(node)

    def leave_MatchCase(self, node: cst.CSTNode) -> None:
        self._pop_block()

    def visit_WithItem(self, node: cst.WithItem) -> None:
        if node.asname is not None:
            self._bind_target(node.asname.name, "other", None, node)

    def visit_NamedExpr(self, node: cst.NamedExpr) -> None:
        self._bind_target(node.target, "other", None, node)

    def visit_ExceptHandler(self, node: cst.ExceptHandler) -> None:
        self._push_block(node)
        if node.name is not None:
            self._bind_target(node.name.name, "other", None, node)

    def leave_ExceptHandler(self, node: cst.ExceptHandler) -> None:
        self._pop_block()

    def visit_Import(self, node: cst.Import) -> None:
        if self._in_class_body():
            return
        for alias in node.names:
            if alias.asname is not None:
                name = dotted_name(alias.asname.name)  # type: ignore[arg-type]
            else:
                name = (dotted_name(alias.name) or "").split(".")[0]
            if name:
                self.scope.bind(name, Binding("import", (), None, node, self._next(), self._block, self._block))

    def visit_ImportFrom(self, node: cst.ImportFrom) -> None:
        if self._in_class_body() or isinstance(node.names, cst.ImportStar):
            return
        for alias in node.names:
            name = dotted_name(alias.asname.name) if alias.asname else dotted_name(alias.name)  # type: ignore[arg-type]
            if name:
                self.scope.bind(name, Binding("import", (), None, node, self._next(), self._block, self._block))

    def visit_Global(self, node: cst.Global) -> None:
        for item in node.names:
            self.module_scope.bind(item.name.value, Binding("other", None, None, node, self._next(), self._block, self._block))

    # -- uses --
    def visit_Try(self, node: cst.Try) -> None:
        self._try_depth += 1
        self._push_block(node)

    def leave_Try(self, node: cst.Try) -> None:
        self._try_depth -= 1
        self._pop_block()

    def visit_Call(self, node: cst.Call) -> None:
        self.calls.append(CallSite(node, self.scope, self._try_depth > 0, self._method_class[-1], self._next(),
                                   self._block, self._comp_depth > 0))

    def _enter_comp(self, node: cst.CSTNode) -> None:
        self._comp_depth += 1

    def _leave_comp(self, node: cst.CSTNode) -> None:
        self._comp_depth -= 1

    visit_ListComp = visit_SetComp = visit_DictComp = visit_GeneratorExp = visit_Lambda = _enter_comp
    leave_ListComp = leave_SetComp = leave_DictComp = leave_GeneratorExp = leave_Lambda = _leave_comp


# The node kinds a Collector visits and leaves: whoever drives it must forward exactly these.
VISITED = (
    "ClassDef", "FunctionDef", "Assign", "AnnAssign", "AugAssign", "For", "WithItem", "NamedExpr",
    "ExceptHandler", "Import", "ImportFrom", "Global", "Try", "Call", "If", "Else", "While", "Finally", "MatchCase",
    "ListComp", "SetComp", "DictComp", "GeneratorExp", "Lambda",
)
LEFT = (
    "ClassDef", "FunctionDef", "Try", "For", "If", "Else", "While", "Finally", "MatchCase", "ExceptHandler",
    "ListComp", "SetComp", "DictComp", "GeneratorExp", "Lambda",
)


class StandaloneWalker(cst.CSTVisitor):
    """Drives a Collector when the analysis runs outside the engine."""

    def __init__(self, collector: Collector) -> None:
        super().__init__()
        self.c = collector

    def on_visit(self, node: cst.CSTNode) -> bool:
        kind = type(node).__name__
        if kind in VISITED:
            getattr(self.c, "visit_" + kind)(node)
        return True

    def on_leave(self, original_node: cst.CSTNode) -> None:
        kind = type(original_node).__name__
        if kind in LEFT:
            getattr(self.c, "leave_" + kind)(original_node)
