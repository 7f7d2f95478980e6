"""Qualified names from imports: a light pass instead of libcst's metadata stack.

libcst's ScopeProvider/QualifiedNameProvider cost several times a parse; rules
only need to know what a dotted name refers to (``models.resnet18`` ->
``torchvision.models.resnet18``). So we read the import statements and the
names each scope binds, and answer ``None`` whenever a name is bound in a way
we cannot follow (assigned, a parameter, imported twice differently): a rule
that gets ``None`` stays silent.
"""

from __future__ import annotations

import builtins
from collections.abc import Iterable, Iterator, Mapping

import libcst as cst

_BUILTINS = frozenset(dir(builtins))
_AMBIGUOUS = object()
# A document's chunk that does not parse (or an IPython ``%run``) stands in the
# linted text as ``from __torchlint_unknown__ import *``: names bound nowhere else
# resolve into this module, so rules treat them as unknown code, not as absent.
UNKNOWN_MODULE = "__torchlint_unknown__"


def dotted_name(node: cst.BaseExpression) -> str | None:
    """``a.b.c`` for a Name/Attribute chain, else None."""
    parts: list[str] = []
    # Exact type tests: libcst's classes are ABCs, and isinstance on them is slow.
    while type(node) is cst.Attribute:
        parts.append(node.attr.value)  # type: ignore[attr-defined]
        node = node.value  # type: ignore[attr-defined]
    if type(node) is not cst.Name:
        return None
    parts.append(node.value)
    return ".".join(reversed(parts))


def _module_name(node: cst.BaseExpression | None) -> str:
    return "" if node is None else (dotted_name(node) or "")


def _statements(body: Iterable[cst.CSTNode]) -> Iterator[cst.BaseSmallStatement | cst.BaseCompoundStatement]:
    """Every statement of a block, descending into if/try/with/for/while but not into defs or classes."""
    for stmt in body:
        if isinstance(stmt, cst.SimpleStatementLine):
            yield from stmt.body
            continue
        yield stmt
        if isinstance(stmt, (cst.FunctionDef, cst.ClassDef)):
            continue
        yield from _compound_children(stmt)


def _compound_children(stmt: cst.CSTNode) -> Iterator[cst.CSTNode]:
    blocks: list[cst.BaseSuite] = []
    for attr in ("body", "orelse", "finalbody"):
        child = getattr(stmt, attr, None)
        if isinstance(child, cst.BaseSuite):
            blocks.append(child)
        elif isinstance(child, (cst.Else, cst.If, cst.Finally)):
            if isinstance(child, cst.If):
                yield child
                yield from _compound_children(child)
                continue
            blocks.append(child.body)
    for handler in getattr(stmt, "handlers", ()) or ():
        blocks.append(handler.body)
    for cases in getattr(stmt, "cases", ()) or ():
        blocks.append(cases.body)
    for block in blocks:
        if isinstance(block, cst.IndentedBlock):
            yield from _statements(block.body)
        elif isinstance(block, cst.SimpleStatementSuite):
            yield from block.body


def target_names(target: cst.BaseExpression) -> Iterator[str]:
    """Names an assignment target binds (``a``, ``a, *b``, ``[a, (b, c)]``)."""
    if isinstance(target, cst.Name):
        yield target.value
    elif isinstance(target, (cst.Tuple, cst.List)):
        for el in target.elements:
            yield from target_names(el.value)
    elif isinstance(target, cst.StarredElement):
        yield from target_names(target.value)


class Scope:
    """Names bound in one scope: imported ones map to a qualified name, others to _AMBIGUOUS."""

    def __init__(self) -> None:
        self.bindings: dict[str, object] = {}
        self.star_modules: list[str] = []
        self.unknown = False  # holds a chunk whose code is unknown (see UNKNOWN_MODULE)

    def bind(self, name: str, qualified: object) -> None:
        old = self.bindings.get(name)
        if old is None:
            self.bindings[name] = qualified
        elif old != qualified:
            self.bindings[name] = _AMBIGUOUS

    def scan(self, body: Iterable[cst.CSTNode], package: str = "") -> "Scope":
        for stmt in _statements(body):
            t = type(stmt)  # (exact type tests: see dotted_name)
            if t is cst.Import:
                for alias in stmt.names:
                    full = _module_name(alias.name)
                    if alias.asname is not None:
                        self.bind(_alias_target(alias), full)
                    else:
                        # ``import a.b`` binds ``a`` to the package ``a``.
                        top = full.split(".")[0]
                        self.bind(top, top)
            elif t is cst.ImportFrom:
                module = _module_name(stmt.module)
                if stmt.relative:
                    module = "." * len(stmt.relative) + module
                if isinstance(stmt.names, cst.ImportStar):
                    if module == UNKNOWN_MODULE:
                        self.unknown = True
                    else:
                        self.star_modules.append(module)
                    continue
                for alias in stmt.names:
                    name = _module_name(alias.name)
                    local = _alias_target(alias) if alias.asname else name
                    self.bind(local, f"{module}.{name}" if module else name)
            elif t is cst.FunctionDef or t is cst.ClassDef:
                self.bind(stmt.name.value, _AMBIGUOUS)
            elif t is cst.Assign:
                for t in stmt.targets:
                    for n in target_names(t.target):
                        self.bind(n, _AMBIGUOUS)
            elif t is cst.AnnAssign or t is cst.AugAssign:
                for n in target_names(stmt.target):
                    self.bind(n, _AMBIGUOUS)
            elif t is cst.For:
                for n in target_names(stmt.target):
                    self.bind(n, _AMBIGUOUS)
            elif t is cst.With:
                for item in stmt.items:
                    if item.asname is not None:
                        for n in target_names(item.asname.name):
                            self.bind(n, _AMBIGUOUS)
            elif isinstance(stmt, cst.Try):
                for h in stmt.handlers:
                    if h.name is not None:
                        for n in target_names(h.name.name):
                            self.bind(n, _AMBIGUOUS)
            elif isinstance(stmt, (cst.Global, cst.Nonlocal)):
                for item in stmt.names:
                    self.bind(item.name.value, _AMBIGUOUS)
        return self


def _alias_target(alias: cst.ImportAlias) -> str:
    assert alias.asname is not None
    return _module_name(alias.asname.name)  # type: ignore[arg-type]


def function_scope(func: cst.FunctionDef) -> Scope:
    scope = Scope()
    params = func.params
    for p in (*params.posonly_params, *params.params, *params.kwonly_params):
        scope.bind(p.name.value, _AMBIGUOUS)
    for star in (params.star_arg, params.star_kwarg):
        if isinstance(star, cst.Param):
            scope.bind(star.name.value, _AMBIGUOUS)
    body = func.body.body if isinstance(func.body, cst.IndentedBlock) else func.body.body
    return scope.scan(body)


class NameResolver:
    """Resolves dotted names against the module scope and the enclosing function scopes."""

    def __init__(self, module: cst.Module, fallback: "Mapping[str, str] | None" = None) -> None:
        self.module_scope = Scope().scan(module.body)
        self._stack: list[Scope] = []
        # Documents: names used but bound nowhere -> their conventional module (``F`` -> torch.nn.functional).
        self.fallback = fallback or {}
        # A function's scope is the same every time it is entered (the program model enters
        # functions many times): scanned once.
        self._scopes: dict[int, Scope] = {}

    def push_function(self, func: cst.FunctionDef) -> None:
        scope = self._scopes.get(id(func))
        if scope is None:
            scope = self._scopes[id(func)] = function_scope(func)
        self._stack.append(scope)

    def pop_function(self) -> None:
        self._stack.pop()

    def lookup(self, name: str) -> str | None:
        for scope in reversed(self._stack):
            if name in scope.bindings:
                bound = scope.bindings[name]
                return bound if isinstance(bound, str) else None
        bound = self.module_scope.bindings.get(name)
        if bound is not None:
            return bound if isinstance(bound, str) else None
        if name in _BUILTINS:
            return f"builtins.{name}"
        stars = [m for s in (self.module_scope, *self._stack) for m in s.star_modules]
        if len(stars) == 1:
            return f"{stars[0]}.{name}"
        if not stars and name in self.fallback:
            return self.fallback[name]
        if self.module_scope.unknown:
            return f"{UNKNOWN_MODULE}.{name}"
        return None

    def qualname(self, node: cst.BaseExpression) -> str | None:
        """The qualified name an expression refers to, or None when it cannot be known."""
        dotted = dotted_name(node)
        if dotted is None:
            return None
        head, _, rest = dotted.partition(".")
        base = self.lookup(head)
        if base is None:
            return None
        return f"{base}.{rest}" if rest else base

    def is_bound_locally(self, name: str) -> bool:
        """True when ``name`` is bound in any scope (so it is not a builtin)."""
        return any(name in s.bindings for s in (self.module_scope, *self._stack))
