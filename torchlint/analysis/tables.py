"""The program model's tables: the scopes, classes, functions and calls of a file.

What a name *is* (a class of the file, a function, a method of which class, an
import, a binding of which scope) is answered here, once per file, for every
rule and analysis: the program model (:mod:`torchlint.analysis.model`) runs the
functions listed here, and the shape analysis (:mod:`torchlint.shapes`) reads the
same records. ``file_tables(context)`` builds them on first use and caches them
in ``context.cache``.

Two levels, each built when first asked:

- the definitions (a statement-level scan, no expression is visited): every
  :class:`ClassInfo` and :class:`FuncInfo` in source order, *every* definition of a
  name (``classes_named``), each one's enclosing scope, methods, class-level
  attributes and whether it sits in a ``try`` statement; a :class:`ScopeInfo` per
  function body (the names it binds, its imports) chained to its enclosing scope;
- the uses (one walk over the whole tree, only for an analysis that needs every
  call): each call with its scope and context (:class:`CallSite`: in a ``try``, in a
  method of which class, in a comprehension or lambda), the ``nn.Sequential``
  assignments, and the attributes and items assigned from outside a class
  (``model.fc = ...``, ``layers[3] = ...``); and, on first request, the layers a class
  stores on ``self`` (``self.sm = nn.Softmax()``: :meth:`FileTables.stored_on_self`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import libcst as cst

from torchlint.names import Scope as NameScope
from torchlint.names import dotted_name, function_scope
from torchlint.walk import _KIND, _ORDER, _fields, _kind
from torchlint.walk import children as _children


@dataclass(eq=False, repr=False)
class ScopeInfo:
    """A scope of the file: the module, or a function's body (class bodies are no scopes)."""

    node: cst.CSTNode  # Module or FunctionDef
    parent: ScopeInfo | None
    names: NameScope  # the names it binds, imports resolved (torchlint.names)
    func: FuncInfo | None = None

    def binding(self, name: str) -> tuple[ScopeInfo, object] | None:
        """The innermost scope from this one out that binds ``name``, with what it binds it to
        (a qualified name for an import, an opaque marker otherwise); None: bound nowhere."""
        s: ScopeInfo | None = self
        while s is not None:
            bound = s.names.bindings.get(name)
            if bound is not None:
                return s, bound
            s = s.parent
        return None

    def qualname(self, expr: cst.BaseExpression) -> str | None:
        """What a dotted expression refers to through the imports seen from this scope
        (``nn.Module`` -> ``torch.nn.Module``); None when a scope binds its head otherwise or
        nothing does (``object`` is ``builtins.object``)."""
        dotted = dotted_name(expr)
        if dotted is None:
            return None
        head, _, rest = dotted.partition(".")
        found = self.binding(head)
        if found is None:
            return "builtins.object" if dotted == "object" else None
        bound = found[1]
        if not isinstance(bound, str):
            return None
        return f"{bound}.{rest}" if rest else bound


@dataclass(eq=False, repr=False)
class ClassInfo:
    """A class statement. ``scope``: where it is defined; ``methods``: the defs of its body
    (the last one of a name); ``class_attrs``: ``x = ...`` statements directly in its body."""

    node: cst.ClassDef
    name: str
    scope: ScopeInfo
    in_try: bool = False
    methods: dict[str, FuncInfo] = field(default_factory=dict)
    class_attrs: dict[str, cst.BaseExpression] = field(default_factory=dict)

    def __repr__(self) -> str:
        return f"ClassInfo({self.name})"


@dataclass(eq=False, repr=False)
class FuncInfo:
    """A def. ``scope``: its own body's scope; ``owner``: the class it is a method of (``cls``
    its statement); ``chain``: the enclosing defs, outermost first; ``params``: positional
    parameters; ``locals``: the names its body binds."""

    node: cst.FunctionDef
    name: str
    scope: ScopeInfo
    owner: ClassInfo | None
    chain: tuple[cst.FunctionDef, ...]
    params: list[str]
    is_static: bool = False
    in_try: bool = False
    cls: cst.ClassDef | None = field(init=False)
    locals: dict[str, object] = field(init=False)
    _returns: bool | None = field(default=None, init=False)

    def __post_init__(self) -> None:
        self.cls = None if self.owner is None else self.owner.node
        self.locals = self.scope.names.bindings

    def __repr__(self) -> str:
        return f"FuncInfo({self.name})"

    @property
    def returns_value(self) -> bool:
        """Has a ``return <value>`` of its own (not counting nested defs and lambdas)."""
        if self._returns is None:
            self._returns = _returns_value(self.node.body)
        return self._returns


@dataclass(eq=False, repr=False)
class CallSite:
    """A call and where it is: ``scope`` the function (or module) whose code makes it;
    ``in_try`` inside a ``try`` statement (any of its parts); ``in_class`` inside a method of
    that class (or a def nested in one); ``in_comp`` inside a comprehension or a lambda."""

    node: cst.Call
    scope: ScopeInfo
    in_try: bool
    in_class: ClassInfo | None
    in_comp: bool = False


_COMPS = frozenset({cst.ListComp, cst.SetComp, cst.DictComp, cst.GeneratorExp, cst.Lambda})
# Subtrees that hold no call, assignment or definition.
_NOTHING = frozenset(
    {cst.Name, cst.Integer, cst.Float, cst.Imaginary, cst.SimpleString, cst.Import, cst.ImportFrom, cst.Pass, cst.Break,
     cst.Continue, cst.Global, cst.Nonlocal, cst.Ellipsis}
    # (Read from the MRO: issubclass on libcst's abstract bases runs the ABC machinery for
    # every class, a tenth of the rules' import time.)
    | {k for k in vars(cst).values() if isinstance(k, type)
       and any(b in k.__mro__ for b in (cst.BaseBinaryOp, cst.BaseBooleanOp, cst.BaseCompOp, cst.BaseUnaryOp, cst.BaseAugOp))}
)


class FileTables:
    """The tables of one file. Build with :func:`file_tables` (cached per file)."""

    def __init__(self, module: cst.Module, names: Any) -> None:
        self.module = module
        self.names = names
        self.module_scope = ScopeInfo(module, None, names.module_scope)
        self.classes: list[ClassInfo] = []  # every class statement, in source order
        self.functions: list[FuncInfo] = []  # every def, in source order
        self._class_of: dict[int, ClassInfo] = {}
        self._func_of: dict[int, FuncInfo] = {}
        self._named: dict[str, list[ClassInfo]] = {}
        # The resolver scans a function's scope when the traversal enters it: scanned once, here.
        self._resolver_scopes: dict[int, NameScope] | None = getattr(names, "_scopes", None)
        self._scan(module.body, self.module_scope, None, (), False)
        self._calls: list[CallSite] | None = None
        self._sequential: list[tuple[str, cst.Assign, ScopeInfo]] = []
        self._foreign: set[str] = set()
        self._subscripts: set[str] = set()
        self._by_name: dict[str, list[CallSite]] | None = None
        self._sites: dict[int, CallSite] | None = None
        self._self_stores: dict[int, tuple[str, str]] | None = None

    # ------------------------------------------------------------------ definitions
    def class_info(self, node: cst.CSTNode) -> ClassInfo | None:
        return self._class_of.get(id(node))

    def func_info(self, node: cst.CSTNode | None) -> FuncInfo | None:
        return None if node is None else self._func_of.get(id(node))

    def classes_named(self, name: str) -> list[ClassInfo]:
        """Every class statement of the file with this name, in source order."""
        return self._named.get(name, [])

    def scope_of(self, func: cst.CSTNode | None) -> ScopeInfo:
        """A def's own scope (None, or anything but a def of the file: the module's)."""
        info = None if func is None else self._func_of.get(id(func))
        return self.module_scope if info is None else info.scope

    def _scan(self, stmts, scope: ScopeInfo, owner: ClassInfo | None, chain: tuple, in_try: bool) -> None:
        """Defs and classes of a block, in source order, also inside if/try/with/for/while/match."""
        for stmt in stmts:
            t = type(stmt)
            if t is cst.FunctionDef:
                self._def(stmt, scope, owner, chain, in_try)
            elif t is cst.ClassDef:
                self._class(stmt, scope, chain, in_try)
            elif t is cst.SimpleStatementLine:
                continue
            elif isinstance(stmt, cst.BaseCompoundStatement):
                inner = in_try or t is cst.Try or t is cst.TryStar
                for block in _blocks(stmt):
                    self._scan(block, scope, owner, chain, inner)

    def _def(self, stmt: cst.FunctionDef, parent: ScopeInfo, owner: ClassInfo | None, chain: tuple, in_try: bool) -> None:
        known = self._resolver_scopes
        names = None if known is None else known.get(id(stmt))
        if names is None:
            names = function_scope(stmt)
            if known is not None:
                known[id(stmt)] = names
        scope = ScopeInfo(stmt, parent, names)
        p = stmt.params
        params = [x.name.value for x in (*p.posonly_params, *p.params)]
        static = any(isinstance(d.decorator, cst.Name) and d.decorator.value == "staticmethod" for d in stmt.decorators)
        info = FuncInfo(stmt, stmt.name.value, scope, owner, chain, params, static, in_try)
        scope.func = info
        self.functions.append(info)
        self._func_of[id(stmt)] = info
        if owner is not None:
            owner.methods[stmt.name.value] = info
        self._scan(_body(stmt.body), scope, None, (*chain, stmt), in_try)

    def _class(self, stmt: cst.ClassDef, scope: ScopeInfo, chain: tuple, in_try: bool) -> None:
        info = ClassInfo(stmt, stmt.name.value, scope, in_try)
        for s in _body(stmt.body):
            if isinstance(s, cst.SimpleStatementLine):
                for small in s.body:
                    if isinstance(small, cst.Assign) and len(small.targets) == 1:
                        t = small.targets[0].target
                        if isinstance(t, cst.Name):
                            info.class_attrs[t.value] = small.value
        self.classes.append(info)
        self._class_of[id(stmt)] = info
        self._named.setdefault(info.name, []).append(info)
        self._scan(_body(stmt.body), scope, info, chain, in_try)

    # ------------------------------------------------------------------ uses
    @property
    def calls(self) -> list[CallSite]:
        """Every call of the file, in source order, with its scope and context."""
        if self._calls is None:
            self._index()
        return self._calls  # type: ignore[return-value]

    @property
    def sequential_assigns(self) -> list[tuple[str, cst.Assign, ScopeInfo]]:
        """``name = ...Sequential(...)`` outside class bodies: (name, statement, scope)."""
        if self._calls is None:
            self._index()
        return self._sequential

    @property
    def foreign_attr_assigns(self) -> set[str]:
        """Attribute names assigned on something other than ``self`` (``model.fc = ...``)."""
        if self._calls is None:
            self._index()
        return self._foreign

    @property
    def subscript_assigns(self) -> set[str]:
        """Names whose items are assigned (``layers[3] = ...``)."""
        if self._calls is None:
            self._index()
        return self._subscripts

    def calls_named(self, name: str) -> list[CallSite]:
        """The calls ``name(...)`` of the file (a plain name as the callee), in source order."""
        if self._by_name is None:
            table: dict[str, list[CallSite]] = {}
            for site in self.calls:
                f = site.node.func
                if type(f) is cst.Name:
                    table.setdefault(f.value, []).append(site)
            self._by_name = table
        return self._by_name.get(name, [])

    def site(self, call: cst.Call) -> CallSite | None:
        """Where a call of the file is (its scope and context)."""
        if self._sites is None:
            self._sites = {id(s.node): s for s in self.calls}
        return self._sites.get(id(call))

    def stored_on_self(self, call: cst.Call) -> tuple[str, str] | None:
        """For a call whose result a class stores as ``self.<attr> = call`` (the sole target,
        anywhere in the class: a method, a def nested in one), ``(class name, attr)``; the
        innermost class counts. None for any other call."""
        if self._self_stores is None:
            stores: dict[int, tuple[str, str]] = {}
            for info in self.classes:
                stack: list[cst.CSTNode] = [info.node.body]
                while stack:
                    node = stack.pop()
                    if type(node) is cst.ClassDef:
                        continue  # its stores are its own
                    if type(node) is cst.Assign and type(node.value) is cst.Call and len(node.targets) == 1:
                        target = dotted_name(node.targets[0].target) or ""
                        if target.startswith("self.") and target.count(".") == 1:
                            stores[id(node.value)] = (info.name, target[5:])
                    stack.extend(_children(node))
            self._self_stores = stores
        return self._self_stores.get(id(call))

    def release_cycles(self) -> None:
        """Break the links between the file's scopes, classes and functions (each names the other), so
        that the tree goes as soon as the lint ends rather than by the cyclic collector."""
        for info in (self.module_scope, *self.classes, *self.functions):
            info.__dict__.clear()
        self.__dict__.clear()

    def _index(self) -> None:
        calls: list[CallSite] = []
        self._calls = calls
        order, kinds, func_of, nothing = _ORDER, _KIND, self._func_of, _NOTHING
        append = calls.append

        # ``class_body``: directly in a class body (its assignments are the class's own);
        # ``method``: the class whose method (or a def nested in one) the code is in.
        def visit(node, scope: ScopeInfo, in_try: bool, method: ClassInfo | None, comp: bool, class_body: bool) -> None:
            t = type(node)
            if t is cst.Attribute or t is cst.Arg:  # only their value can hold a call
                child = node.value
                if type(child) not in nothing:
                    visit(child, scope, in_try, method, comp, class_body)
                return
            if t is cst.Call:
                append(CallSite(node, scope, in_try, method, comp))
            elif t is cst.FunctionDef:
                info = func_of[id(node)]
                scope = info.scope
                if info.owner is not None:
                    method = info.owner
                class_body = False
            elif t is cst.ClassDef:
                class_body = True
            elif t is cst.Try or t is cst.TryStar:
                in_try = True
            elif t in _COMPS:
                comp = True
            elif t is cst.Assign:
                if not class_body:
                    self._assign(node, scope)
            elif t is cst.AnnAssign:
                if not class_body and node.value is not None:
                    self._target(node.target)
            elif t is cst.AugAssign:
                if not class_body:
                    self._target(node.target)
            for name in order.get(t) or _fields(node):
                child = getattr(node, name)
                c = type(child)
                k = kinds.get(c)
                if k is None:
                    k = _kind(c)
                if k == 1:
                    if c not in nothing:
                        visit(child, scope, in_try, method, comp, class_body)
                elif k == 2:
                    for item in child:
                        c = type(item)
                        k = kinds.get(c)
                        if k is None:
                            k = _kind(c)
                        if k == 1 and c not in nothing:
                            visit(item, scope, in_try, method, comp, class_body)

        try:
            visit(self.module, self.module_scope, False, None, False, False)
        finally:
            del visit  # the closure calls itself through its cell: a cycle that would hold the tree

    def _assign(self, node: cst.Assign, scope: ScopeInfo) -> None:
        for t in node.targets:
            self._target(t.target)
        if (
            len(node.targets) == 1
            and isinstance(node.targets[0].target, cst.Name)
            and isinstance(node.value, cst.Call)
            and (dotted_name(node.value.func) or "").endswith("Sequential")
        ):
            self._sequential.append((node.targets[0].target.value, node, scope))

    def _target(self, target: cst.BaseExpression) -> None:
        if isinstance(target, cst.Subscript):
            base = target.value
            while isinstance(base, cst.Subscript):
                base = base.value
            if isinstance(base, cst.Name):
                self._subscripts.add(base.value)
            elif isinstance(base, cst.Attribute) and not (isinstance(base.value, cst.Name) and base.value.value == "self"):
                self._foreign.add(base.attr.value)
        elif isinstance(target, cst.Attribute):
            if not (isinstance(target.value, cst.Name) and target.value.value == "self"):
                self._foreign.add(target.attr.value)
        elif isinstance(target, (cst.Tuple, cst.List)):
            for el in target.elements:
                if isinstance(el.value, cst.Attribute):
                    self._target(el.value)


def _blocks(stmt: cst.CSTNode):
    """The statement lists of a compound statement, in libcst's visiting order."""
    for attr in ("body", "handlers", "orelse", "finalbody", "cases"):
        child = getattr(stmt, attr, None)
        if child is None:
            continue
        if attr in ("handlers", "cases"):
            for h in child:
                yield _body(h.body)
        elif isinstance(child, cst.If):
            yield [child]
        elif isinstance(child, (cst.Else, cst.Finally)):
            yield _body(child.body)
        else:
            yield _body(child)


def _body(suite) -> list:
    if isinstance(suite, cst.IndentedBlock):
        return list(suite.body)
    return []


def _concrete(base: type) -> frozenset[type]:
    out, todo = set(), [base]
    while todo:
        cls = todo.pop()
        todo.extend(cls.__subclasses__())
        if not getattr(cls, "__abstractmethods__", None):
            out.add(cls)
    return frozenset(out)


# The node classes that are expressions (libcst's concrete classes are never subclassed).
_EXPRESSIONS = _concrete(cst.BaseExpression)


def _returns_value(node: cst.CSTNode) -> bool:
    """Does a function body hold a ``return <value>`` (not counting nested defs and lambdas)?"""
    stack: list[cst.CSTNode] = [node]
    while stack:
        cur = stack.pop()
        t = type(cur)  # (exact type tests: libcst's classes are ABCs, and isinstance on them is slow)
        if t is cst.Return and cur.value is not None:  # type: ignore[attr-defined]
            return True
        if t is cst.FunctionDef or t is cst.ClassDef or t in _EXPRESSIONS:  # (Lambda is one)
            continue
        stack.extend(_children(cur))
    return False


_KEY = "analysis.tables"


def file_tables(context: Any) -> FileTables:
    """The tables of the file behind a rule ``Context``: built on first use, then shared."""
    found = context.cache.get(_KEY)
    if not isinstance(found, FileTables):
        found = context.cache[_KEY] = FileTables(context.module, context.names)
    return found


__all__ = ["CallSite", "ClassInfo", "FileTables", "FuncInfo", "ScopeInfo", "file_tables"]
