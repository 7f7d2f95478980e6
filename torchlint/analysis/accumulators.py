"""Accumulators in loops (TL102, loss-accumulates-graph): the judgements that need no program model.

TL102 reports ``acc += value`` / ``acc.append(value)`` in a loop when the
program model says ``value`` carries an autograd graph. Whatever the model says,
a candidate is dismissed when the added value is a literal or a tensor turned into
numbers (:func:`never_a_tensor`), when the accumulator is rebound in the loop (it
holds one iteration: :func:`rebound_in`), or when it is meant to carry the graph
(it, or a name computed from it, reaches ``backward()``, ``autograd.grad``, a
return or a yield: :func:`feeds_graph`). :func:`read_as_number_only` decides the
fix's safety.

The same judgements are made on CPython's tree, before any libcst parse, by
:func:`may_report` (the rule's pre-check): a file none of whose candidates survives
is never parsed for TL102. It must never drop a candidate the rule keeps: every
judgement there is the rule's own or a weaker one (its ``feeds_graph`` looks at
fewer statements; anything in doubt is kept).
"""

from __future__ import annotations

import ast
import bisect
import re
from collections.abc import Iterator

import libcst as cst

from torchlint.gates import _first_line as first_line
from torchlint.gates import _overlaps as overlaps
from torchlint.gates import lines_matching, walk
from torchlint.sources import python_lines
from torchlint.walk import children as _children

# Uses of the accumulator after which a plain float is just as good (the fix is then safe).
_NUMERIC_USES = frozenset({"print", "float", "str", "round", "format"})


# -- on libcst's tree (the rule) ---------------------------------------------------


def _names(node: cst.CSTNode) -> set[str]:
    out: set[str] = set()
    stack = [node]
    while stack:
        cur = stack.pop()
        if isinstance(cur, cst.Name):
            out.add(cur.value)
        stack.extend(_children(cur))
    return out


def _walk(node: cst.CSTNode) -> Iterator[cst.CSTNode]:
    stack = [node]
    while stack:
        cur = stack.pop()
        yield cur
        stack.extend(_children(cur))


_LITERALS = (cst.Integer, cst.Float, cst.Imaginary, cst.SimpleString, cst.ConcatenatedString, cst.FormattedString,
             cst.List, cst.Tuple, cst.Dict, cst.Set, cst.ListComp, cst.SetComp, cst.DictComp)  # fmt: skip
_TO_PYTHON = frozenset({"item", "tolist"})


def never_a_tensor(value: cst.BaseExpression) -> bool:
    """A literal or a tensor turned into Python numbers: never a tensor that carries a graph."""
    if isinstance(value, cst.UnaryOperation):
        value = value.expression
    if isinstance(value, _LITERALS):
        return True
    return (
        isinstance(value, cst.Call) and isinstance(value.func, cst.Attribute)
        and value.func.attr.value in _TO_PYTHON and not value.args
    )  # fmt: skip


def rebound_in(loop: cst.CSTNode, acc: str) -> bool:
    """A plain ``acc = ...`` in the loop: each iteration starts a new accumulator."""
    for cur in _walk(loop.body):  # type: ignore[attr-defined]
        if isinstance(cur, cst.Assign) and any(isinstance(t.target, cst.Name) and t.target.value == acc for t in cur.targets):
            return True
    return False


def feeds_graph(scope: cst.CSTNode, acc: str) -> bool:
    """Does ``acc`` (or a name computed from it) reach backward(), autograd.grad, a return or a yield?"""
    derived = {acc}
    stmts = [n for n in _walk(scope) if isinstance(n, (cst.SimpleStatementLine, cst.Return))]
    for _ in range(3):  # names computed from names computed from acc
        for line in stmts:
            for small in getattr(line, "body", ()):
                if isinstance(small, cst.Assign) and _names(small.value) & derived:
                    derived |= {t.target.value for t in small.targets if isinstance(t.target, cst.Name)}
    for line in stmts:
        names = _names(line)
        if not names & derived:
            continue
        for cur in _walk(line):
            if isinstance(cur, (cst.Return, cst.Yield)):
                return True
            if isinstance(cur, cst.Call):
                func = cur.func
                name = func.attr.value if isinstance(func, cst.Attribute) else func.value if isinstance(func, cst.Name) else ""
                if name in ("backward", "grad", "manual_backward"):
                    return True
    return False


def read_as_number_only(scope: cst.CSTNode, acc: str, stmt: cst.CSTNode) -> bool:
    """Is every other read of ``acc`` inside print/float/str/round/format or an f-string?"""
    allowed: set[int] = set()
    for cur in _walk(scope):
        if cur is stmt:
            allowed |= {id(n) for n in _walk(cur)}
        elif isinstance(cur, cst.FormattedStringExpression):
            allowed |= {id(n) for n in _walk(cur)}
        elif isinstance(cur, cst.Call) and isinstance(cur.func, cst.Name) and cur.func.value in _NUMERIC_USES:
            allowed |= {id(n) for a in cur.args for n in _walk(a)}
        elif isinstance(cur, (cst.Assign, cst.AugAssign)):
            targets = cur.targets if isinstance(cur, cst.Assign) else [cur]
            for t in targets:
                if isinstance(t.target, cst.Name) and t.target.value == acc:
                    allowed.add(id(t.target))
    for cur in _walk(scope):
        if isinstance(cur, cst.Name) and cur.value == acc and id(cur) not in allowed:
            return False
    return True


# -- on CPython's tree (the rule's pre-check) ----------------------------------------


_CLASS = object()  # a class body
_NUMBERS = (int, float, complex, str, bytes)
_AST_LITERALS = (ast.JoinedStr, ast.List, ast.Tuple, ast.Dict, ast.Set, ast.ListComp, ast.SetComp, ast.DictComp)
_LOOPS = (ast.For, ast.AsyncFor, ast.While)
_DEFS = (ast.FunctionDef, ast.AsyncFunctionDef)
_TRIES = (ast.Try, ast.TryStar) if hasattr(ast, "TryStar") else (ast.Try,)
_GRAPH_CALLS = frozenset({"backward", "grad", "manual_backward"})
_APPEND = re.compile(r"\.\s*append\b")
_AUG_ADD = re.compile(r"\+=")


def may_report(tree: ast.Module, source: str) -> bool:
    """Could TL102 report anything in this file? False only where it surely cannot."""
    return bool(candidate_values(tree, source))


def candidate_values(tree: ast.Module, source: str) -> list[ast.expr]:
    """The added or appended values that TL102 may report (the model then says whether each
    carries a graph): none means the rule surely reports nothing in this file."""
    append_lines: set[int] = set()
    if "append" in source:
        append_lines = _lines_of(source, [m.start() for m in _APPEND.finditer(source)])
    finder = _Finder(source, append_lines)
    # A candidate is an ``acc += value`` or an ``.append`` call: statements on no line saying `+=`
    # or `.append` hold none (they are not walked).
    finder.hot = sorted(append_lines.union(lines_matching(source, _AUG_ADD)))
    finder.block(tree.body, None, [])
    out: list[ast.expr] = []
    judged: dict[tuple[int, int, str], bool] = {}
    scopes: dict[int, list] = {}  # a scope's statements, for each accumulator of it
    for value, acc, func, loop in finder.candidates:
        if _ast_never_a_tensor(value):
            continue
        if loop is None:
            out.append(value)  # the rule asks the model straight away
            continue
        scope = func if func is not None else tree
        key = (id(loop), id(scope), acc)
        silent = judged.get(key)
        if silent is None:
            silent = judged[key] = _ast_rebound_in(loop, acc) or _ast_feeds_graph(scope, acc, finder.lines, scopes)
        if not silent:
            out.append(value)
    return out


def _lines_of(source: str, offsets: list[int]) -> set[int]:
    """The (1-based) lines of ascending offsets, as Python counts lines."""
    if "\r" in source:
        starts = [0, *(m.end() for m in re.finditer(r"\r\n|\r|\n", source))]
        return {bisect.bisect_right(starts, o) for o in offsets}
    out, line, pos = set(), 1, 0
    for o in offsets:
        line += source.count("\n", pos, o)
        pos = o
        out.add(line)
    return out


class _Finder:
    """Walks statements in the rule's visiting order, noting each ``acc += value`` / ``acc.append(value)``
    in a loop, with where the program model will record it (its def, and the loop whose body holds it)."""

    def __init__(self, source: str, append_lines: set[int]) -> None:
        self.source = source
        self._lines: list[str] | None = None
        self.append_lines = append_lines
        self.depth = 0  # loops around, in any frame (the rule counts the same)
        self.hot: list[int] | None = None  # (ascending) lines that may hold a candidate: None, any
        # (added value, accumulator, enclosing def or None, the loop whose body holds it or None)
        self.candidates: list[tuple[ast.expr, str, object, ast.stmt | None]] = []

    def block(self, body: list[ast.stmt], func: object, loops: list[list]) -> None:
        hot = self.hot
        for stmt in body:
            if hot is not None and not overlaps(hot, first_line(stmt), stmt.end_lineno or stmt.lineno):
                continue
            self.statement(stmt, func, loops)

    def statement(self, stmt: ast.stmt, func: object, loops: list[list]) -> None:
        if isinstance(stmt, _DEFS):
            frame: list[list] = []
            for expr in (*stmt.decorator_list, *_defaults(stmt.args), stmt.returns):
                self.expr(expr, stmt, frame)
            self.block(stmt.body, stmt, frame)
            return
        if isinstance(stmt, ast.ClassDef):
            frame = []
            for expr in (*stmt.decorator_list, *stmt.bases, *(k.value for k in stmt.keywords)):
                self.expr(expr, _CLASS, frame)
            self.block(stmt.body, _CLASS, frame)
            return
        if isinstance(stmt, _LOOPS):
            self.depth += 1
            entry = [stmt, False]
            loops.append(entry)
            for expr in (stmt.test,) if isinstance(stmt, ast.While) else (stmt.target, stmt.iter):
                self.expr(expr, func, loops)
            entry[1] = True
            self.block(stmt.body, func, loops)
            entry[1] = False
            self.block(stmt.orelse, func, loops)
            loops.pop()
            self.depth -= 1
            return
        if isinstance(stmt, ast.If):
            self.expr(stmt.test, func, loops)
            self.block(stmt.body, func, loops)
            self.block(stmt.orelse, func, loops)
        elif isinstance(stmt, (ast.With, ast.AsyncWith)):
            for item in stmt.items:
                self.expr(item.context_expr, func, loops)
                self.expr(item.optional_vars, func, loops)
            self.block(stmt.body, func, loops)
        elif isinstance(stmt, _TRIES):
            self.block(stmt.body, func, loops)
            for handler in stmt.handlers:
                self.expr(handler.type, func, loops)
                self.block(handler.body, func, loops)
            self.block(stmt.orelse, func, loops)
            self.block(stmt.finalbody, func, loops)
        elif isinstance(stmt, ast.Match):
            self.expr(stmt.subject, func, loops)
            for case in stmt.cases:  # (patterns hold no calls)
                self.expr(case.guard, func, loops)
                self.block(case.body, func, loops)
        else:  # a simple statement
            if isinstance(stmt, ast.AugAssign) and self.depth and isinstance(stmt.op, ast.Add) and isinstance(stmt.target, ast.Name):
                self.candidates.append((stmt.value, stmt.target.id, func, self._loop(func, loops)))
            self.expr(stmt, func, loops)

    @staticmethod
    def _loop(func: object, loops: list[list]) -> ast.stmt | None:
        # Only in the body (not the iterable, test or else) of the innermost loop of a def
        # or the module is that loop the one the model records.
        return loops[-1][0] if loops and loops[-1][1] and func is not _CLASS else None

    def expr(self, node: ast.AST | None, func: object, loops: list[list]) -> None:
        """``x.append(...)`` calls inside an expression (only where a line of it says `.append`)."""
        if node is None or not self.depth or not self.append_lines:
            return
        first = getattr(node, "lineno", None)
        if first is not None:
            last = getattr(node, "end_lineno", None) or first
            if not any(line in self.append_lines for line in range(first, last + 1)):
                return
        for cur in ast.walk(node):
            if not (
                isinstance(cur, ast.Call) and isinstance(cur.func, ast.Attribute) and cur.func.attr == "append"
                and isinstance(cur.func.value, ast.Name) and len(cur.args) + len(cur.keywords) == 1
            ):  # fmt: skip
                continue
            if cur.args:
                arg = cur.args[0].value if isinstance(cur.args[0], ast.Starred) else cur.args[0]
            elif cur.keywords[0].arg is None:  # append(**kw): one argument to libcst too
                arg = cur.keywords[0].value
            else:
                continue
            # The rule wants the argument's text to mention a loss: its lines do, at least.
            text = "".join(self.lines[arg.lineno - 1 : (arg.end_lineno or arg.lineno)]).lower()
            if "loss" in text:
                self.candidates.append((arg, cur.func.value.id, func, self._loop(func, loops)))

    @property
    def lines(self) -> list[str]:
        if self._lines is None:
            self._lines = python_lines(self.source)
        return self._lines


def _defaults(args: ast.arguments) -> list[ast.expr]:
    out = [*args.defaults, *(d for d in args.kw_defaults if d is not None)]
    for a in (*args.posonlyargs, *args.args, *args.kwonlyargs, args.vararg, args.kwarg):
        if a is not None and a.annotation is not None:
            out.append(a.annotation)
    return out


def _ast_never_a_tensor(value: object) -> bool:
    """The rule's own test (a literal or ``.item()``/``.tolist()``), on CPython's tree."""
    if isinstance(value, ast.UnaryOp):
        value = value.operand
    if isinstance(value, ast.Constant):
        return type(value.value) in _NUMBERS  # (True and None are names to libcst)
    if isinstance(value, _AST_LITERALS):
        return True
    return (
        isinstance(value, ast.Call) and isinstance(value.func, ast.Attribute)
        and value.func.attr in ("item", "tolist") and not value.args and not value.keywords
    )  # fmt: skip


def _ast_rebound_in(loop: ast.stmt, acc: str) -> bool:
    """A plain ``acc = ...`` anywhere in the loop's body."""
    for stmt in loop.body:  # type: ignore[attr-defined]
        for cur in ast.walk(stmt):
            if isinstance(cur, ast.Assign) and any(isinstance(t, ast.Name) and t.id == acc for t in cur.targets):
                return True
    return False


def _ast_names(node: ast.AST) -> set[str]:
    out = set()
    for cur in walk(node):
        t = type(cur)
        if t is ast.Name:
            out.add(cur.id)  # type: ignore[attr-defined]
        elif t is ast.Attribute:
            out.add(cur.attr)  # type: ignore[attr-defined]
    return out


def _own_line(stmt: ast.stmt, lines: list[str]) -> bool:
    """Does the statement start its line (a statement line of its own, not a suite after ``:`` or ``;``)?"""
    if stmt.lineno > len(lines) or (stmt.lineno > 1 and lines[stmt.lineno - 2].endswith("\\")):
        return False  # (a continuation line: perhaps a suite's)
    return not lines[stmt.lineno - 1].encode("utf-8")[: stmt.col_offset].strip()


def _ast_feeds_graph(scope: ast.AST, acc: str, lines: list[str], scopes: dict[int, list] | None = None) -> bool:
    """The rule's test, on fewer statements: only those that begin a line, and every ``return``.
    (``scopes``: the statements of each scope and the names they read, kept for its other accumulators.)"""
    found = None if scopes is None else scopes.get(id(scope))
    if found is None:
        simple = [
            s for s in ast.walk(scope)
            if isinstance(s, ast.stmt) and not isinstance(s, (*_DEFS, ast.ClassDef, *_LOOPS, ast.If, ast.With, ast.AsyncWith, ast.Try, ast.Match))
            and (isinstance(s, ast.Return) or _own_line(s, lines))
        ]  # fmt: skip
        if hasattr(ast, "TryStar"):
            simple = [s for s in simple if not isinstance(s, ast.TryStar)]
        found = [(s, _ast_names(s), _ast_names(s.value) if isinstance(s, ast.Assign) else None) for s in simple]
        if scopes is not None:
            scopes[id(scope)] = found
    derived = {acc}
    for _ in range(3):
        for s, _names, value_names in found:
            if value_names is not None and value_names & derived:
                derived |= {t.id for t in s.targets if isinstance(t, ast.Name)}  # type: ignore[attr-defined]
    for s, names, _values in found:
        if not names & derived:
            continue
        for cur in walk(s):
            if isinstance(cur, (ast.Return, ast.Yield, ast.YieldFrom)):
                return True
            if isinstance(cur, ast.Call):
                func = cur.func
                name = func.attr if isinstance(func, ast.Attribute) else func.id if isinstance(func, ast.Name) else ""
                if name in _GRAPH_CALLS:
                    return True
    return False


__all__ = ["candidate_values", "feeds_graph", "may_report", "never_a_tensor", "read_as_number_only", "rebound_in"]
