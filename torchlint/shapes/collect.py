"""What the shape analysis needs to know about a file's structure, gathered in the engine's traversal.

The collector's ``visit_*``/``leave_*`` methods are called by TL301 from the
engine's single traversal (or by :class:`StandaloneWalker` when the analysis
runs on its own). It records the classes and functions (with their scopes, for
import resolution), every call with the context it is in, ``nn.Sequential``
assignments, and assignments that change a model from outside its class. What a
name holds at a read is not its business: the program model answers that
(:meth:`torchlint.analysis.model.ProgramModel.definitions`).
"""

from __future__ import annotations

from dataclasses import dataclass

import libcst as cst

from torchlint.names import Scope as NameScope
from torchlint.names import dotted_name, function_scope
from torchlint.shapes.values import ClassInfo, FuncInfo


@dataclass(eq=False, repr=False)
class ScopeInfo:
    node: cst.CSTNode  # Module or FunctionDef
    parent: ScopeInfo | None
    names: NameScope  # import resolution, and which names the scope binds (torchlint.names)
    func: FuncInfo | None = None


@dataclass(eq=False, repr=False)
class CallSite:
    node: cst.Call
    scope: ScopeInfo
    in_try: bool
    # Inside a method of a class (its own instance code, not top-level use).
    in_class: ClassInfo | None
    # Inside a comprehension or lambda.
    in_comp: bool = False


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
        self._comp_depth = 0

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
        self._scope_stack.append(self.scope)
        self.scope = scope
        self._class_stack.append(None)  # a class body's names are not visible in nested defs
        self._method_class.append(owner if owner is not None else self._method_class[-1])

    def leave_FunctionDef(self, node: cst.FunctionDef) -> None:
        self.scope = self._scope_stack.pop()
        self._class_stack.pop()
        self._method_class.pop()

    def _in_class_body(self) -> bool:
        return bool(self._class_stack) and self._class_stack[-1] is not None

    # -- assignments that change a model from outside --
    def visit_Assign(self, node: cst.Assign) -> None:
        if self._in_class_body():
            return
        for t in node.targets:
            self._target(t.target)
        if (
            len(node.targets) == 1
            and isinstance(node.targets[0].target, cst.Name)
            and isinstance(node.value, cst.Call)
            and (dotted_name(node.value.func) or "").endswith("Sequential")
        ):
            self.sequential_assigns.append((node.targets[0].target.value, node, self.scope))

    def _target(self, target: cst.BaseExpression) -> None:
        if isinstance(target, cst.Subscript):
            base = target.value
            while isinstance(base, cst.Subscript):
                base = base.value
            if isinstance(base, cst.Name):
                self.subscript_assigns.add(base.value)
            elif isinstance(base, cst.Attribute) and not (isinstance(base.value, cst.Name) and base.value.value == "self"):
                self.foreign_attr_assigns.add(base.attr.value)
        elif isinstance(target, cst.Attribute):
            if not (isinstance(target.value, cst.Name) and target.value.value == "self"):
                self.foreign_attr_assigns.add(target.attr.value)
        elif isinstance(target, (cst.Tuple, cst.List)):
            for el in target.elements:
                if isinstance(el.value, cst.Attribute):
                    self._target(el.value)

    def visit_AnnAssign(self, node: cst.AnnAssign) -> None:
        if not self._in_class_body() and node.value is not None:
            self._target(node.target)

    def visit_AugAssign(self, node: cst.AugAssign) -> None:
        if not self._in_class_body():
            self._target(node.target)

    # -- uses --
    def visit_Try(self, node: cst.Try) -> None:
        self._try_depth += 1

    def leave_Try(self, node: cst.Try) -> None:
        self._try_depth -= 1

    def visit_Call(self, node: cst.Call) -> None:
        self.calls.append(CallSite(node, self.scope, self._try_depth > 0, self._method_class[-1], self._comp_depth > 0))

    def _enter_comp(self, node: cst.CSTNode) -> None:
        self._comp_depth += 1

    def _leave_comp(self, node: cst.CSTNode) -> None:
        self._comp_depth -= 1

    visit_ListComp = visit_SetComp = visit_DictComp = visit_GeneratorExp = visit_Lambda = _enter_comp
    leave_ListComp = leave_SetComp = leave_DictComp = leave_GeneratorExp = leave_Lambda = _leave_comp


# The node kinds a Collector visits and leaves: whoever drives it must forward exactly these.
VISITED = (
    "ClassDef", "FunctionDef", "Assign", "AnnAssign", "AugAssign", "Try", "Call",
    "ListComp", "SetComp", "DictComp", "GeneratorExp", "Lambda",
)
LEFT = ("ClassDef", "FunctionDef", "Try", "ListComp", "SetComp", "DictComp", "GeneratorExp", "Lambda")


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
