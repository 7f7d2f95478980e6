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
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING

import libcst as cst
from libcst.metadata import CodePosition, CodeRange, MetadataWrapper, PositionProvider
from libcst.metadata.position_provider import PositionProvidingCodegenState

if TYPE_CHECKING:
    from torchlint.incremental import ParseCache


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


def _codegen_positions(module: cst.Module, stmt: cst.BaseStatement, line: int) -> dict[cst.CSTNode, CodeRange]:
    provider = PositionProvider()
    state = PositionProvidingCodegenState(
        default_indent=module.default_indent,
        default_newline=module.default_newline,
        provider=provider,
    )
    state.line, state.column = line, 0
    stmt._codegen(state)
    return provider._computed


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


def _shifted(r: CodeRange, lines: int) -> CodeRange:
    return CodeRange(CodePosition(r.start.line + lines, r.start.column), CodePosition(r.end.line + lines, r.end.column))


def positions_for(
    module: cst.Module,
    source: str,
    nodes: Iterable[cst.CSTNode],
    top_level_index: Mapping[int, int],
    starts: list[int] | None = None,
    parse_cache: "ParseCache | None" = None,
) -> Mapping[cst.CSTNode, CodeRange]:
    """Ranges for ``nodes`` (and possibly other nodes of their top-level statements).

    ``top_level_index`` maps ``id(node)`` to the index in ``module.body`` of the
    statement containing it, as recorded during the traversal. ``starts`` are
    the statements' first lines when the caller knows them. With a
    ``parse_cache``, a statement reused from an earlier parse reuses its
    positions too, shifted to where the statement now starts.
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
    out: dict[cst.CSTNode, CodeRange] = {}
    key = (module.default_indent, module.default_newline)
    for index in sorted(wanted):
        stmt = module.body[index]
        piece = parse_cache.piece_of(stmt) if parse_cache is not None else None
        if piece is None:
            out.update(_codegen_positions(module, stmt, starts[index]))
            continue
        relative = piece.positions.get(key)
        if relative is None:
            relative = piece.positions[key] = _codegen_positions(module, stmt, 1)
        lines = starts[index] - 1
        for node in wanted[index]:
            r = relative.get(node)
            if r is not None:
                out[node] = _shifted(r, lines) if lines else r
    if any(node not in out for node in nodes):
        return full_positions(module)
    return out
