"""Name bindings of a whole module, on CPython's tree: which names it binds where, and every read.

The question a notebook or a tutorial document raises ("is this name defined
when this line runs, or only later, or never?") is answered here, once per file
(:func:`module_bindings`, cached in ``context.cache``), for any rule that asks
(TL002 reports the answers). Module-level code runs in order, so a name read
there must be bound earlier; a function body runs when called, so a name it
reads only has to be bound somewhere. Names a function, lambda, comprehension
or class body binds are its own, and their reads of them are not listed.

Positions are ``(line, column in UTF-8 bytes)`` as CPython counts them: only
ever compared, and turned into a document's cell and line by the caller.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from typing import Any

from torchlint.incremental import python_ast

Pos = tuple[int, int]


@dataclass
class NameRead:
    """A name the module reads, outside the scope that binds it (if any does)."""

    name: str
    pos: Pos
    deferred: bool  # inside a function or lambda body: looked up when called, not in order


class ModuleBindings:
    """The module-level bindings of a file and its reads; see the module docstring."""

    def __init__(self, tree: ast.Module) -> None:
        found = _Collector()
        found.visit(tree)
        self.module: dict[str, list[Pos]] = found.module  # name -> where each binding takes effect
        self.everywhere: set[str] = found.everywhere  # declared ``global`` in a function: bound some time
        self.stars: list[Pos] = found.stars  # star imports (a chunk that did not parse counts as one)
        self.reads: list[NameRead] = found.reads  # in the order CPython's tree lists them
        self._starts = found.starts  # a binding's effective position -> where its statement starts

    def bound_at(self, read: NameRead) -> bool:
        """Is the name bound when the read runs? A star import may bind any name."""
        if read.name in self.everywhere:
            return True
        bound = self.module.get(read.name, [])
        if read.deferred:
            return bool(bound or self.stars)
        return any(p <= read.pos for p in bound) or any(p <= read.pos for p in self.stars)

    def later_binding(self, read: NameRead) -> Pos | None:
        """For a module-level read the name is not yet bound at: where a later statement binds it.

        A binding by the very statement that reads the name (``m = m.cuda()``) is no definition.
        """
        if read.deferred:
            return None
        bound = self.module.get(read.name, [])
        return min((p for p in bound if p[0] > read.pos[0] or self._starts.get(p, p) > read.pos), default=None)


_KEY = "analysis.bindings"


def module_bindings(context: Any) -> ModuleBindings | None:
    """The bindings of the text behind a rule ``Context``, built on first use and shared;
    None when CPython cannot parse it."""
    if _KEY not in context.cache:
        context.cache[_KEY] = bindings_of(context.source)
    return context.cache[_KEY]


def bindings_of(source: str) -> ModuleBindings | None:
    """The bindings of ``source``; None when CPython cannot parse it."""
    try:
        tree = python_ast(source, keep=True)  # (the document's own tree when building it parsed the text)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return None
    return ModuleBindings(tree)


class _Collector(ast.NodeVisitor):
    """Which names a module binds (and where), and every name it reads, with the scope it is read in.

    Module-level code runs in order, so a name read there must be bound earlier;
    a function body runs when called, so a name it reads only has to be bound
    somewhere. Names a function or comprehension binds are its own.
    """

    def __init__(self) -> None:
        self.module: dict[str, list[Pos]] = {}
        self.everywhere: set[str] = set()  # bound by `global` in a function: somewhere, some time
        self.stars: list[Pos] = []  # star imports (a chunk that did not parse is one)
        self.reads: list[NameRead] = []
        self.starts: dict[Pos, Pos] = {}  # a binding's effective position -> where its statement starts
        self._stack: list[set[str]] = []  # local names of the enclosing functions/comprehensions/classes
        self._deferred = 0

    # -- binding --
    def _bind(self, name: str, pos: Pos) -> None:
        if self._stack:
            self._stack[-1].add(name)
        else:
            self.module.setdefault(name, []).append(pos)

    def _bind_target(self, target: ast.AST, pos: Pos) -> None:
        for node in ast.walk(target):
            if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
                self._bind(node.id, pos)
            elif isinstance(node, ast.Starred):
                continue

    @staticmethod
    def _end(node: ast.AST) -> Pos:
        return (getattr(node, "end_lineno", 0) or 0, getattr(node, "end_col_offset", 0) or 0)

    # -- scopes --
    def _function(self, node: ast.AST, args: ast.arguments, body: list[ast.AST] | ast.AST) -> None:
        # Defaults and decorators run now; the body when called.
        for d in [*args.defaults, *(d for d in args.kw_defaults if d is not None)]:
            self.visit(d)
        local = _locals(node)
        self._stack.append(local)
        self._deferred += 1
        for stmt in body if isinstance(body, list) else [body]:
            self.visit(stmt)
        self._deferred -= 1
        self._stack.pop()

    def visit_FunctionDef(self, node: ast.FunctionDef | ast.AsyncFunctionDef) -> None:
        for d in node.decorator_list:
            self.visit(d)
        self._function(node, node.args, node.body)
        self._bind(node.name, self._end(node))

    visit_AsyncFunctionDef = visit_FunctionDef  # type: ignore[assignment]

    def visit_Lambda(self, node: ast.Lambda) -> None:
        self._function(node, node.args, node.body)

    def visit_ClassDef(self, node: ast.ClassDef) -> None:
        for d in [*node.decorator_list, *node.bases, *(k.value for k in node.keywords)]:
            self.visit(d)
        # A class body runs now, with its own names.
        self._stack.append(set())
        for stmt in node.body:
            self.visit(stmt)
        self._stack.pop()
        self._bind(node.name, self._end(node))

    def _comprehension(self, node: ast.AST, elts: list[ast.AST]) -> None:
        gens: list[ast.comprehension] = node.generators  # type: ignore[attr-defined]
        self.visit(gens[0].iter)  # evaluated in the enclosing scope
        local: set[str] = set()
        for g in gens:
            for n in ast.walk(g.target):
                if isinstance(n, ast.Name):
                    local.add(n.id)
        self._stack.append(local)
        for i, g in enumerate(gens):
            if i:
                self.visit(g.iter)
            for cond in g.ifs:
                self.visit(cond)
        for e in elts:
            self.visit(e)
        self._stack.pop()

    def visit_ListComp(self, node: ast.ListComp) -> None:
        self._comprehension(node, [node.elt])

    visit_SetComp = visit_ListComp  # type: ignore[assignment]
    visit_GeneratorExp = visit_ListComp  # type: ignore[assignment]

    def visit_DictComp(self, node: ast.DictComp) -> None:
        self._comprehension(node, [node.key, node.value])

    # -- statements that bind --
    def visit_Assign(self, node: ast.Assign) -> None:
        self.visit(node.value)
        self.starts[self._end(node)] = (node.lineno, node.col_offset)
        for t in node.targets:
            self._visit_target(t)
            self._bind_target(t, self._end(node))

    def _visit_target(self, t: ast.AST) -> None:
        # Subscripts and attributes in a target read their base: ``x[0] = 1`` needs ``x``.
        for n in ast.walk(t):
            if isinstance(n, (ast.Subscript, ast.Attribute)):
                self.visit(n)

    def visit_AugAssign(self, node: ast.AugAssign) -> None:
        self.visit(node.value)
        if isinstance(node.target, ast.Name):
            self._use(node.target.id, (node.target.lineno, node.target.col_offset))
        else:
            self.visit(node.target)
        self.starts[self._end(node)] = (node.lineno, node.col_offset)
        self._bind_target(node.target, self._end(node))

    def visit_AnnAssign(self, node: ast.AnnAssign) -> None:
        if node.value is not None:
            self.visit(node.value)
            self._visit_target(node.target)
            self._bind_target(node.target, self._end(node))

    def visit_NamedExpr(self, node: ast.NamedExpr) -> None:
        self.visit(node.value)
        # Binds in the enclosing function or the module, even from a comprehension.
        target = node.target.id
        for scope in self._stack:
            scope.add(target)
        self.module.setdefault(target, []).append(self._end(node))

    def visit_For(self, node: ast.For | ast.AsyncFor) -> None:
        self.visit(node.iter)
        self._visit_target(node.target)
        self._bind_target(node.target, self._end(node.target))
        for stmt in [*node.body, *node.orelse]:
            self.visit(stmt)

    visit_AsyncFor = visit_For  # type: ignore[assignment]

    def visit_With(self, node: ast.With | ast.AsyncWith) -> None:
        for item in node.items:
            self.visit(item.context_expr)
            if item.optional_vars is not None:
                self._visit_target(item.optional_vars)
                self._bind_target(item.optional_vars, self._end(item))
        for stmt in node.body:
            self.visit(stmt)

    visit_AsyncWith = visit_With  # type: ignore[assignment]

    def visit_ExceptHandler(self, node: ast.ExceptHandler) -> None:
        if node.type is not None:
            self.visit(node.type)
        if node.name:
            self._bind(node.name, (node.lineno, node.col_offset))
        for stmt in node.body:
            self.visit(stmt)

    def visit_Import(self, node: ast.Import) -> None:
        for alias in node.names:
            self._bind(alias.asname or alias.name.split(".")[0], self._end(node))

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        for alias in node.names:
            if alias.name == "*":
                self.stars.append(self._end(node))
            else:
                self._bind(alias.asname or alias.name, self._end(node))

    def visit_Global(self, node: ast.Global) -> None:
        self.everywhere.update(node.names)

    def visit_MatchAs(self, node: ast.MatchAs) -> None:
        if node.pattern is not None:
            self.visit(node.pattern)
        if node.name:
            self._bind(node.name, (node.lineno, node.col_offset))

    def visit_MatchStar(self, node: ast.MatchStar) -> None:
        if node.name:
            self._bind(node.name, (node.lineno, node.col_offset))

    def visit_MatchMapping(self, node: ast.MatchMapping) -> None:
        self.generic_visit(node)
        if node.rest:
            self._bind(node.rest, (node.lineno, node.col_offset))

    def visit_Delete(self, node: ast.Delete) -> None:
        for t in node.targets:
            if isinstance(t, ast.Name):
                self._use(t.id, (t.lineno, t.col_offset))
            else:
                self.visit(t)

    # -- reading --
    def visit_Name(self, node: ast.Name) -> None:
        if isinstance(node.ctx, ast.Load):
            self._use(node.id, (node.lineno, node.col_offset))

    def _use(self, name: str, pos: Pos) -> None:
        if any(name in s for s in self._stack):
            return
        self.reads.append(NameRead(name, pos, self._deferred > 0))

    # Annotations are not checked: often strings, often never evaluated.
    def visit_arg(self, node: ast.arg) -> None:
        return None


def _locals(node: ast.AST) -> set[str]:
    """Names a function (or lambda) binds: parameters and what its own body assigns or imports."""
    args: ast.arguments = node.args  # type: ignore[attr-defined]
    names = {a.arg for a in [*args.posonlyargs, *args.args, *args.kwonlyargs]}
    for star in (args.vararg, args.kwarg):
        if star is not None:
            names.add(star.arg)
    body = node.body if isinstance(node.body, list) else [node.body]  # type: ignore[attr-defined]
    declared: set[str] = set()
    stack = list(body)
    while stack:
        n = stack.pop()
        if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(n.name)
            stack.extend(getattr(n, "decorator_list", []))
            continue  # its body is its own scope
        if isinstance(n, ast.Lambda):
            continue
        if isinstance(n, (ast.Global, ast.Nonlocal)):
            declared.update(n.names)
        elif isinstance(n, ast.Name) and isinstance(n.ctx, (ast.Store, ast.Del)):
            names.add(n.id)
        elif isinstance(n, (ast.Import, ast.ImportFrom)):
            for alias in n.names:
                if alias.name != "*":
                    names.add(alias.asname or alias.name.split(".")[0])
        elif isinstance(n, ast.ExceptHandler) and n.name:
            names.add(n.name)
        elif isinstance(n, (ast.MatchAs, ast.MatchStar)) and n.name:
            names.add(n.name)
        elif isinstance(n, ast.MatchMapping) and n.rest:
            names.add(n.rest)
        stack.extend(ast.iter_child_nodes(n))
    return names - declared

__all__ = ["ModuleBindings", "NameRead", "Pos", "bindings_of", "module_bindings"]
