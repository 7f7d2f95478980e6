"""Positions for the few nodes that have findings, without a whole-module codegen.

libcst's PositionProvider regenerates the entire module's code to learn where
each node is (and MetadataWrapper adds an empty full traversal on top), which
costs about twice the parse. Findings sit in a handful of top-level
statements, so we run the position-tracking codegen on just those, started at
the line where each statement's code begins. Those lines come from CPython's
``ast`` (a C parser, ~10x faster than the CST parse): a statement's code starts
``len(leading_lines)`` lines before its first token. Any inconsistency falls
back to the full provider, so the result is always exact.
"""

from __future__ import annotations

import ast
import bisect
import re
from collections.abc import Iterable, Mapping
from itertools import accumulate
from typing import TYPE_CHECKING

import libcst as cst
from libcst._nodes.internal import CodegenState
from libcst.metadata import CodePosition, CodeRange, MetadataWrapper, PositionProvider
from libcst.metadata.position_provider import NEWLINE_RE

if TYPE_CHECKING:
    from torchlint.incremental import ParseCache


_LF = re.compile("\n")


def full_positions(module: cst.Module) -> Mapping[cst.CSTNode, CodeRange]:
    return MetadataWrapper(module, unsafe_skip_copy=True).resolve(PositionProvider)


def _small_statement_count(stmt: cst.BaseStatement) -> int:
    return len(stmt.body) if isinstance(stmt, cst.SimpleStatementLine) else 1


def first_token_line(node: ast.stmt) -> int:
    """The line of a statement's first token (its first decorator's ``@`` if it has one)."""
    decorators = getattr(node, "decorator_list", None)
    if decorators:
        # ``@`` sits on the decorator expression's line.
        return min(d.lineno for d in decorators)
    return node.lineno


def statement_start_lines(module: cst.Module, source: str) -> list[int] | None:
    """Line where each top-level statement's code (leading comments included) starts."""
    from torchlint.incremental import python_ast

    try:
        tree = python_ast(source, keep=True)  # (the pre-checks parsed this text already)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return None
    starts: list[int] = []
    k = 0
    for stmt in module.body:
        if k >= len(tree.body):
            return None
        starts.append(first_token_line(tree.body[k]) - len(stmt.leading_lines))
        k += _small_statement_count(stmt)
    return starts if k == len(tree.body) else None


class StatementPositions:
    """Where the nodes of one top-level statement's code are, as its code was regenerated:
    token indexes per node, turned into a CodeRange only for the nodes asked about (a file
    with a hundred findings asks about a few hundred of its tens of thousands of nodes).

    The ranges are libcst's PositionProvider's: the same codegen, the same rules for which
    node's range wins (``record_syntactic_position`` over ``after_codegen``), the same
    newlines (``\\r\\n``, ``\\r``, ``\\n``, counted token by token).
    """

    __slots__ = ("_spans", "_offsets", "_line_starts")

    def __init__(self, spans: dict[int, tuple[int, int]], tokens: list[str]) -> None:
        self._spans = spans  # id(node) -> (first token, token after the last)
        self._offsets = [0, *accumulate(map(len, tokens))]  # token index -> character offset
        text = "".join(tokens)
        if "\r" in text:  # (a CR may end one token and an LF start the next: two newlines, as libcst counts)
            self._line_starts = [0]
            for token, offset in zip(tokens, self._offsets):
                if "\r" in token or "\n" in token:
                    self._line_starts.extend(offset + m.end() for m in NEWLINE_RE.finditer(token))
        else:
            self._line_starts = [0, *(m.end() for m in _LF.finditer(text))]

    def _position(self, token: int, first_line: int) -> CodePosition:
        offset = self._offsets[token]
        k = bisect.bisect_right(self._line_starts, offset) - 1
        return CodePosition(first_line + k, offset - self._line_starts[k])

    def range(self, node: cst.CSTNode, first_line: int) -> CodeRange | None:
        """``node``'s range with the statement's code starting at ``first_line``; None for a node outside it."""
        span = self._spans.get(id(node))
        if span is None:
            return None
        return CodeRange(self._position(span[0], first_line), self._position(span[1], first_line))


class _Syntactic:
    """``record_syntactic_position``'s context, without a generator per node."""

    __slots__ = ("state", "node", "start_node", "end_node", "start")

    def __init__(self, state: "_SpanState", node: cst.CSTNode, start_node: cst.CSTNode | None, end_node: cst.CSTNode | None) -> None:
        self.state, self.node, self.start_node, self.end_node = state, node, start_node, end_node

    def __enter__(self) -> None:
        self.start = len(self.state.tokens)

    def __exit__(self, *exc: object) -> None:
        spans = self.state.spans
        start = spans[id(self.start_node)][0] if self.start_node is not None else self.start
        end = spans[id(self.end_node)][1] if self.end_node is not None else len(self.state.tokens)
        spans[id(self.node)] = (start, end)


class _SpanState(CodegenState):
    """libcst's position-tracking codegen, recording token indexes instead of positions."""

    __slots__ = ("spans", "_stack")

    def __init__(self, default_indent: str, default_newline: str) -> None:
        super().__init__(default_indent=default_indent, default_newline=default_newline)
        self.spans: dict[int, tuple[int, int]] = {}
        self._stack: list[int] = []

    def before_codegen(self, node: cst.CSTNode) -> None:
        self._stack.append(len(self.tokens))

    def after_codegen(self, node: cst.CSTNode) -> None:
        start = self._stack.pop()
        if id(node) not in self.spans:  # a syntactic position already recorded wins
            self.spans[id(node)] = (start, len(self.tokens))

    def record_syntactic_position(  # type: ignore[override]
        self, node: cst.CSTNode, *, start_node: cst.CSTNode | None = None, end_node: cst.CSTNode | None = None
    ) -> _Syntactic:
        return _Syntactic(self, node, start_node, end_node)


def statement_positions(module: cst.Module, stmt: cst.BaseStatement) -> StatementPositions:
    state = _SpanState(module.default_indent, module.default_newline)
    stmt._codegen(state)
    return StatementPositions(state.spans, state.tokens)


def _index_ahead(module: cst.Module, index: Mapping[int, int], missing: set[int]) -> dict[int, int]:
    """The top-level statement of each node in ``missing``, found by walking the statements from the
    one the traversal is in (a walk is a small part of regenerating the whole module's code)."""
    from torchlint.walk import walk

    found: dict[int, int] = {}
    first = max((i for i in index.values()), default=0)
    for k in range(max(first, 0), len(module.body)):
        def note(node: cst.CSTNode, k: int = k) -> None:
            if id(node) in missing:
                found[id(node)] = k

        walk(module.body[k], note, _ignore)
        if len(found) == len(missing):
            break
    return found


def _ignore(node: cst.CSTNode) -> None:
    pass


def positions_for(
    module: cst.Module,
    source: str,
    nodes: Iterable[cst.CSTNode],
    top_level_index: Mapping[int, int],
    starts: list[int] | None = None,
    parse_cache: "ParseCache | None" = None,
    statements: dict[int, StatementPositions] | None = None,
) -> Mapping[cst.CSTNode, CodeRange]:
    """Ranges for ``nodes`` (all of the module's, when it falls back to libcst's provider).

    ``top_level_index`` maps ``id(node)`` to the index in ``module.body`` of the
    statement containing it, as recorded during the traversal. ``starts`` are
    the statements' first lines when the caller knows them. ``statements`` keeps
    the statements located so far, for the caller's next question. With a
    ``parse_cache``, a statement reused from an earlier parse reuses its
    positions too, at the line where the statement now starts.
    """
    nodes = list(nodes)
    wanted: dict[int, list[cst.CSTNode]] = {}
    ahead: dict[int, int] | None = None
    for node in nodes:
        index = top_level_index.get(id(node))
        if index is None:
            # Asked during the traversal about a node it has not reached yet.
            if ahead is None:
                ahead = _index_ahead(module, top_level_index, {id(n) for n in nodes if id(n) not in top_level_index})
            index = ahead.get(id(node))
        if index is None or index < 0:
            return full_positions(module)
        wanted.setdefault(index, []).append(node)
    if starts is None:
        starts = statement_start_lines(module, source)
        if starts is None:
            return full_positions(module)
    if statements is None:
        statements = {}
    out: dict[cst.CSTNode, CodeRange] = {}
    key = (module.default_indent, module.default_newline)
    for index, its_nodes in wanted.items():
        located = statements.get(index)
        if located is None:
            stmt = module.body[index]
            piece = parse_cache.piece_of(stmt) if parse_cache is not None else None
            if piece is None:
                located = statement_positions(module, stmt)
            else:
                located = piece.positions.get(key)
                if located is None:
                    located = piece.positions[key] = statement_positions(module, stmt)
            statements[index] = located
        for node in its_nodes:
            r = located.range(node, starts[index])
            if r is None:
                return full_positions(module)
            out[node] = r
    return out
