"""Which torch/torchvision object a local name holds, when the file leaves no doubt.

A rule mixes :class:`LocalTypes` in (its ``visit_``/``leave_`` methods join the
rule's single traversal) and asks :meth:`LocalTypes.defer` to judge an
expression once the whole module has been seen; the verdicts are delivered to
the rule's ``judge`` at ``leave_Module``. A name counts as holding an object of
a known class only when every binding of it in its scope is a call whose
result the knowledge base knows (``resnet = models.resnet18(...)`` twice is
fine; once from a function of the user's, a loop, a parameter, ``global``, a
comprehension, ... and the name is unknown). Attributes of such objects follow
the recorded children of a torchvision model (``resnet.fc`` is an
``nn.Linear``) unless the file assigns that attribute something else.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import libcst as cst

from torchlint.knowledge import Instance
from torchlint.names import target_names

_UNKNOWN = object()


@dataclass
class _Scope:
    parent: "_Scope | None"
    is_class: bool = False
    bindings: dict[str, list[Any]] = field(default_factory=dict)

    def bind(self, name: str, value: Any) -> None:
        self.bindings.setdefault(name, []).append(value)


@dataclass(frozen=True)
class Deferred:
    node: cst.CSTNode  # what the rule will report on
    scope: _Scope
    chain: tuple[str, ...]  # ("resnet", "fc"): a name then attributes
    base: Instance | None  # for a chain starting at a call: what the call returns
    payload: Any = None


def _names_in(target: cst.BaseExpression) -> Iterator[str]:
    yield from target_names(target)


class LocalTypes:
    """Mixin for a Rule: tracks bindings; see the module docstring."""

    _lt_scope: _Scope
    _lt_deferred: list[Deferred]
    # attribute name -> what the file assigns to ``<anything>.name``
    _lt_attr_assigned: dict[str, list[Any]]

    def _lt_init(self) -> None:
        if not hasattr(self, "_lt_scope"):
            self._lt_scope = _Scope(None)
            self._lt_deferred = []
            self._lt_attr_assigned = {}
            self._lt_tainted: set[str] = set()

    # -- what a call returns, with the resolver in the right scope (at visit time) --

    def _lt_value(self, value: cst.BaseExpression | None) -> Any:
        if isinstance(value, cst.Call):
            q = self.context.qualname(value.func)  # type: ignore[attr-defined]
            if q is not None:
                made = self.context.knowledge.returns(q)  # type: ignore[attr-defined]
                if made is not None:
                    return made
        return _UNKNOWN

    # -- bindings -----------------------------------------------------------------

    def visit_Module(self, node: cst.Module) -> None:
        self._lt_init()

    def visit_FunctionDef(self, node: cst.FunctionDef) -> None:
        self._lt_init()
        self._lt_scope.bind(node.name.value, _UNKNOWN)
        self._lt_scope = _Scope(self._lt_scope)
        params = node.params
        for p in (*params.posonly_params, *params.params, *params.kwonly_params):
            self._lt_scope.bind(p.name.value, _UNKNOWN)
        for star in (params.star_arg, params.star_kwarg):
            if isinstance(star, cst.Param):
                self._lt_scope.bind(star.name.value, _UNKNOWN)

    def leave_FunctionDef(self, node: cst.FunctionDef) -> None:
        self._lt_scope = self._lt_scope.parent or self._lt_scope

    def visit_Lambda(self, node: cst.Lambda) -> None:
        self._lt_init()
        self._lt_scope = _Scope(self._lt_scope)
        for p in (*node.params.posonly_params, *node.params.params, *node.params.kwonly_params):
            self._lt_scope.bind(p.name.value, _UNKNOWN)

    def leave_Lambda(self, node: cst.Lambda) -> None:
        self._lt_scope = self._lt_scope.parent or self._lt_scope

    def visit_ClassDef(self, node: cst.ClassDef) -> None:
        self._lt_init()
        self._lt_scope.bind(node.name.value, _UNKNOWN)
        self._lt_scope = _Scope(self._lt_scope, is_class=True)

    def leave_ClassDef(self, node: cst.ClassDef) -> None:
        self._lt_scope = self._lt_scope.parent or self._lt_scope

    def visit_Assign(self, node: cst.Assign) -> None:
        self._lt_init()
        single = len(node.targets) == 1 and isinstance(node.targets[0].target, (cst.Name, cst.Attribute))
        value = self._lt_value(node.value) if single else _UNKNOWN
        for t in node.targets:
            self._lt_target(t.target, value)

    def _lt_target(self, target: cst.BaseExpression, value: Any) -> None:
        if isinstance(target, cst.Attribute):
            self._lt_attr_assigned.setdefault(target.attr.value, []).append(value)
            return
        if isinstance(target, (cst.Tuple, cst.List)):
            for el in target.elements:
                self._lt_target(el.value, _UNKNOWN)
            return
        if isinstance(target, cst.StarredElement):
            self._lt_target(target.value, _UNKNOWN)
            return
        for name in _names_in(target):
            self._lt_scope.bind(name, value)

    def visit_AnnAssign(self, node: cst.AnnAssign) -> None:
        self._lt_init()
        self._lt_target(node.target, self._lt_value(node.value) if node.value is not None else _UNKNOWN)

    def visit_AugAssign(self, node: cst.AugAssign) -> None:
        self._lt_init()
        self._lt_target(node.target, _UNKNOWN)

    def visit_For(self, node: cst.For) -> None:
        self._lt_init()
        self._lt_target(node.target, _UNKNOWN)

    def visit_CompFor(self, node: cst.CompFor) -> None:
        self._lt_init()
        self._lt_target(node.target, _UNKNOWN)

    def visit_WithItem(self, node: cst.WithItem) -> None:
        self._lt_init()
        if node.asname is not None:
            self._lt_target(node.asname.name, _UNKNOWN)

    def visit_NamedExpr(self, node: cst.NamedExpr) -> None:
        self._lt_init()
        self._lt_target(node.target, self._lt_value(node.value))

    def visit_ExceptHandler(self, node: cst.ExceptHandler) -> None:
        self._lt_init()
        if node.name is not None:
            self._lt_target(node.name.name, _UNKNOWN)

    def visit_Del(self, node: cst.Del) -> None:
        self._lt_init()
        self._lt_target(node.target, _UNKNOWN)

    def visit_Global(self, node: cst.Global) -> None:
        self._lt_init()
        self._lt_tainted.update(n.name.value for n in node.names)

    def visit_Nonlocal(self, node: cst.Nonlocal) -> None:
        self._lt_init()
        self._lt_tainted.update(n.name.value for n in node.names)

    def visit_ImportAlias(self, node: cst.ImportAlias) -> None:
        self._lt_init()
        if node.asname is not None:
            self._lt_target(node.asname.name, _UNKNOWN)
        else:
            name = node.name
            while isinstance(name, cst.Attribute):
                name = name.value
            if isinstance(name, cst.Name):
                self._lt_scope.bind(name.value, _UNKNOWN)

    def visit_MatchAs(self, node: cst.MatchAs) -> None:
        self._lt_init()
        if node.name is not None:
            self._lt_scope.bind(node.name.value, _UNKNOWN)

    def visit_MatchStar(self, node: cst.MatchStar) -> None:
        self._lt_init()
        if node.name is not None:
            self._lt_scope.bind(node.name.value, _UNKNOWN)

    # -- judging ------------------------------------------------------------------

    def defer(self, node: cst.CSTNode, expr: cst.BaseExpression, payload: Any = None) -> bool:
        """Judge ``expr`` (a name, a call, attributes of them) at the end of the module."""
        self._lt_init()
        chain: list[str] = []
        while isinstance(expr, cst.Attribute):
            chain.append(expr.attr.value)
            expr = expr.value
        base: Instance | None = None
        if isinstance(expr, cst.Name):
            chain.append(expr.value)
        elif isinstance(expr, cst.Call):
            value = self._lt_value(expr)
            if value is _UNKNOWN:
                return False
            base = value
            chain.append("")
        else:
            return False
        self._lt_deferred.append(Deferred(node, self._lt_scope, tuple(reversed(chain)), base, payload))
        return True

    def leave_Module(self, node: cst.Module) -> None:
        self._lt_init()
        for d in self._lt_deferred:
            instance = self._lt_resolve(d)
            if instance is not None:
                self.judge(d, instance)  # type: ignore[attr-defined]

    def _lt_resolve(self, d: Deferred) -> Instance | None:
        head, *attrs = d.chain
        if d.base is not None:
            current: Instance | None = d.base
        else:
            current = self._lt_lookup(d.scope, head)
        for attr in attrs:
            if current is None:
                return None
            child = self.context.knowledge.child(current, attr)  # type: ignore[attr-defined]
            if child is None:
                return None
            # ``model.fc = nn.Linear(...)`` elsewhere keeps it a Linear; anything else: unknown.
            if any(v != child for v in self._lt_attr_assigned.get(attr, ())):
                return None
            current = child
        return current

    def _lt_lookup(self, scope: _Scope, name: str) -> Instance | None:
        if name in self._lt_tainted:
            return None
        s: _Scope | None = scope
        first = True
        while s is not None:
            if (first or not s.is_class) and name in s.bindings:
                values = s.bindings[name]
                if all(isinstance(v, Instance) for v in values) and len(set(values)) == 1:
                    return values[0]
                return None
            first = False
            s = s.parent
        return None
