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
        # in the order CPython's tree lists them
        self.reads: list[NameRead] = [NameRead(*r) for r in found.reads if r is not None]
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


class _Collector:
    """Which names a module binds (and where), and every name it reads, with the scope it is read in.

    Module-level code runs in order, so a name read there must be bound earlier;
    a function body runs when called, so a name it reads only has to be bound
    somewhere. Names a function or comprehension binds are its own.

    One walk of the tree, dispatched on the node's type (``_ON``). The scope sets
    on the stack grow as the walk binds names, so they answer in order (a class
    body sees only its earlier names). A function's own names (its parameters
    and whatever its body stores, deletes, imports or defines, outside nested
    function bodies and lambdas, less its ``global``/``nonlocal`` names) hold
    for its whole body, but are only all known once the body has been walked: a
    read there that no scope on the stack answers yet waits in the function's
    ``pending`` list, and is dropped, or handed to the enclosing function, then.
    """

    def __init__(self) -> None:
        self.module: dict[str, list[Pos]] = {}
        self.everywhere: set[str] = set()  # bound by `global` in a function: somewhere, some time
        self.stars: list[Pos] = []  # star imports (a chunk that did not parse is one)
        self.reads: list[tuple[str, Pos, bool] | None] = []  # None: a read its function turned out to bind
        self.starts: dict[Pos, Pos] = {}  # a binding's effective position -> where its statement starts
        # per enclosing function/comprehension/class: the names it has bound so far (a comprehension: its targets)
        self._stack: list[set[str]] = []
        self._pending: list[int] | None = None  # reads (indexes) the innermost function body may bind
        # The innermost function's own names and its global/nonlocal ones, while the walk is where they are
        # taken from: its body, less nested functions' bodies and defaults, classes' bodies and bases, and
        # lambdas (all of them walked with None).
        self._local: set[str] | None = None
        self._declared: set[str] | None = None

    def visit(self, node: ast.AST) -> None:
        _ON[type(node)](self, node)

    def generic_visit(self, node: ast.AST) -> None:
        on = _ON
        for field in _CHILDREN[type(node)]:
            value = getattr(node, field, None)
            if type(value) is list:
                for item in value:
                    if isinstance(item, ast.AST):
                        on[type(item)](self, item)
            elif isinstance(value, ast.AST):
                on[type(value)](self, value)

    def _visit_outside(self, nodes: list[Any]) -> None:
        """Visit nodes that run in this scope but that the function's own names are not taken from."""
        local, declared = self._local, self._declared
        self._local = self._declared = None
        for n in nodes:
            if n is not None:
                _ON[type(n)](self, n)
        self._local, self._declared = local, declared

    # -- binding --
    def _bind(self, name: str, pos: Pos, own: bool = True) -> None:
        if self._stack:
            self._stack[-1].add(name)
        else:
            self.module.setdefault(name, []).append(pos)
        if own and self._local is not None:
            self._local.add(name)

    def _target(self, target: ast.AST, pos: Pos, visit: bool = True) -> None:
        """An assignment target: (``visit``) read each subscript and attribute in it, as often as
        ``ast.walk`` meets one (``x[0] = 1`` needs ``x``; ``a.b.c = 1`` reads ``a`` twice), then bind
        the names it stores, in ``ast.walk``'s order."""
        kind = type(target)
        # The common shapes first, doing what the general walk below does.
        if kind is ast.Name:
            self._bind(target.id, pos)  # type: ignore[attr-defined]
            return
        if kind is ast.Attribute and type(target.value) is ast.Name:  # type: ignore[attr-defined]
            if visit:
                self.visit_Attribute(target)  # type: ignore[arg-type]
            return
        elts = target.elts if kind is ast.Tuple or kind is ast.List else None  # type: ignore[attr-defined]
        if elts is not None and all(type(e) is ast.Name for e in elts):
            for e in elts:
                self._bind(e.id, pos)
            return
        walked = _walk(target)
        if visit:
            for n, in_lambda in walked:
                if type(n) is ast.Subscript or type(n) is ast.Attribute:
                    if in_lambda:
                        self._visit_outside([n])
                    else:
                        _ON[type(n)](self, n)
        for n, in_lambda in walked:
            if type(n) is ast.Name and type(n.ctx) is ast.Store:  # type: ignore[attr-defined]
                self._bind(n.id, pos, own=not in_lambda)  # type: ignore[attr-defined]

    @staticmethod
    def _end(node: ast.AST) -> Pos:
        return (getattr(node, "end_lineno", 0) or 0, getattr(node, "end_col_offset", 0) or 0)

    # -- scopes --
    def _function(self, node: ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda, body: list[ast.stmt]) -> None:
        # Defaults (and decorators) run now; the body when called.
        args = node.args
        self._visit_outside([*args.defaults, *args.kw_defaults])
        local = {a.arg for a in args.posonlyargs}
        local.update(a.arg for a in args.args)
        local.update(a.arg for a in args.kwonlyargs)
        for star in (args.vararg, args.kwarg):
            if star is not None:
                local.add(star.arg)
        declared: set[str] = set()
        pending: list[int] = []
        outer = self._local, self._declared, self._pending
        self._local, self._declared, self._pending = local, declared, pending
        self._stack.append(set())
        for stmt in body:
            _ON[type(stmt)](self, stmt)
        self._stack.pop()
        self._local, self._declared, self._pending = outer
        # Its reads of its own names are no reads; the others may still be its enclosing function's.
        own = local - declared if declared else local
        reads, enclosing = self.reads, outer[2]
        for i in pending:
            if reads[i][0] in own:  # type: ignore[index]
                reads[i] = None
            elif enclosing is not None:
                enclosing.append(i)

    def visit_FunctionDef(self, node: ast.FunctionDef | ast.AsyncFunctionDef) -> None:
        for d in node.decorator_list:
            _ON[type(d)](self, d)
        self._function(node, node.body)
        self._bind(node.name, self._end(node))

    visit_AsyncFunctionDef = visit_FunctionDef

    def visit_Lambda(self, node: ast.Lambda) -> None:
        self._function(node, [node.body])  # type: ignore[list-item]

    def visit_ClassDef(self, node: ast.ClassDef) -> None:
        for d in node.decorator_list:
            _ON[type(d)](self, d)
        # Bases and the body run now; the body with its own names (no function's own names).
        local, declared = self._local, self._declared
        self._local = self._declared = None
        for d in [*node.bases, *(k.value for k in node.keywords)]:
            _ON[type(d)](self, d)
        self._stack.append(set())
        for stmt in node.body:
            _ON[type(stmt)](self, stmt)
        self._stack.pop()
        self._local, self._declared = local, declared
        self._bind(node.name, self._end(node))

    def _comprehension(self, node: ast.AST, elts: list[ast.expr]) -> None:
        gens: list[ast.comprehension] = node.generators  # type: ignore[attr-defined]
        self.visit(gens[0].iter)  # evaluated in the enclosing scope
        names: set[str] = set()  # every name in the targets, stored or not
        for g in gens:
            if type(g.target) is ast.Name:
                names.add(g.target.id)
            else:
                names.update(n.id for n, _ in _walk(g.target) if type(n) is ast.Name)  # type: ignore[attr-defined]
            if self._local is not None:  # the stored ones are the enclosing function's own names too
                self._local.update(_stored(g.target))
        self._stack.append(names)
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
        _ON[type(node.value)](self, node.value)
        end = self._end(node)
        self.starts[end] = (node.lineno, node.col_offset)
        for t in node.targets:
            self._target(t, end)

    def visit_AugAssign(self, node: ast.AugAssign) -> None:
        self.visit(node.value)
        target = node.target
        if type(target) is ast.Name:
            self._use(target.id, (target.lineno, target.col_offset))
        else:
            self.visit(target)
        end = self._end(node)
        self.starts[end] = (node.lineno, node.col_offset)
        self._target(target, end, visit=False)

    def visit_AnnAssign(self, node: ast.AnnAssign) -> None:
        # Nothing in the annotation is read, nor is a target without a value; what they store is still
        # the function's own.
        if self._local is not None:
            self._local.update(_stored(node.annotation))
            if node.value is None:
                self._local.update(_stored(node.target))
        if node.value is not None:
            self.visit(node.value)
            self._target(node.target, self._end(node))

    def visit_NamedExpr(self, node: ast.NamedExpr) -> None:
        self.visit(node.value)
        # Binds in the enclosing function or the module, even from a comprehension.
        target = node.target.id
        for scope in self._stack:
            scope.add(target)
        self.module.setdefault(target, []).append(self._end(node))
        if self._local is not None:
            self._local.add(target)

    def visit_For(self, node: ast.For | ast.AsyncFor) -> None:
        self.visit(node.iter)
        self._target(node.target, self._end(node.target))
        for stmt in node.body:
            _ON[type(stmt)](self, stmt)
        for stmt in node.orelse:
            _ON[type(stmt)](self, stmt)

    visit_AsyncFor = visit_For

    def visit_With(self, node: ast.With | ast.AsyncWith) -> None:
        for item in node.items:
            self.visit(item.context_expr)
            if item.optional_vars is not None:
                self._target(item.optional_vars, self._end(item))  # (a withitem has no position: (0, 0))
        for stmt in node.body:
            _ON[type(stmt)](self, stmt)

    visit_AsyncWith = visit_With

    def visit_ExceptHandler(self, node: ast.ExceptHandler) -> None:
        if node.type is not None:
            self.visit(node.type)
        if node.name:
            self._bind(node.name, (node.lineno, node.col_offset))
        for stmt in node.body:
            _ON[type(stmt)](self, stmt)

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
        if self._declared is not None:
            self._declared.update(node.names)

    def visit_Nonlocal(self, node: ast.Nonlocal) -> None:
        if self._declared is not None:
            self._declared.update(node.names)

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
            if type(t) is ast.Name:
                self._use(t.id, (t.lineno, t.col_offset))
                if self._local is not None:
                    self._local.add(t.id)
            else:
                self.visit(t)

    # -- reading --
    def visit_Name(self, node: ast.Name) -> None:
        if type(node.ctx) is ast.Load:
            self._use(node.id, (node.lineno, node.col_offset))
        elif self._local is not None:  # stored or deleted: the function's own
            self._local.add(node.id)

    def _use(self, name: str, pos: Pos) -> None:
        for scope in self._stack:
            if name in scope:
                return
        if self._pending is None:
            self.reads.append((name, pos, False))
        else:
            self._pending.append(len(self.reads))
            self.reads.append((name, pos, True))

    # The most common nodes, without the generic loop.
    def visit_Constant(self, node: ast.Constant) -> None:
        return None

    def visit_Attribute(self, node: ast.Attribute) -> None:
        _ON[type(node.value)](self, node.value)

    def visit_Call(self, node: ast.Call) -> None:
        on = _ON
        on[type(node.func)](self, node.func)
        for a in node.args:
            on[type(a)](self, a)
        for k in node.keywords:
            on[type(k.value)](self, k.value)

    # Annotations are not checked: often strings, often never evaluated.
    def visit_arg(self, node: ast.arg) -> None:
        return None


class _Dispatch(dict):  # type: ignore[type-arg]
    """Node type -> the _Collector method for it (``visit_<class name>``, else ``generic_visit``)."""

    def __missing__(self, kind: type) -> Any:
        self[kind] = getattr(_Collector, "visit_" + kind.__name__, _Collector.generic_visit)
        return self[kind]


class _Children(dict):  # type: ignore[type-arg]
    """Node type -> its fields that may hold nodes to visit (a ``ctx`` is nothing to visit)."""

    def __missing__(self, kind: type) -> tuple[str, ...]:
        self[kind] = tuple(f for f in kind._fields if f != "ctx")
        return self[kind]


_ON: dict[type, Any] = _Dispatch()
_CHILDREN: dict[type, tuple[str, ...]] = _Children()


def _stored(node: ast.AST) -> list[str]:
    """The names stored in ``node``, lambdas in it left out."""
    if type(node) is ast.Name:
        return [node.id] if type(node.ctx) is ast.Store else []
    if type(node) is ast.Constant:
        return []
    return [n.id for n, in_lambda in _walk(node)  # type: ignore[attr-defined]
            if type(n) is ast.Name and type(n.ctx) is ast.Store and not in_lambda]  # type: ignore[attr-defined]


def _walk(node: ast.AST) -> list[tuple[ast.AST, bool]]:
    """``ast.walk(node)``'s nodes in its order, each with whether it lies in a lambda under ``node``
    (a function's own names are not taken from a lambda in it)."""
    out = [(node, False)]
    for n, in_lambda in out:  # (appending while iterating: breadth first, as ast.walk)
        inner = in_lambda or type(n) is ast.Lambda
        for child in ast.iter_child_nodes(n):
            out.append((child, inner))
    return out


__all__ = ["ModuleBindings", "NameRead", "Pos", "bindings_of", "module_bindings"]
