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

import libcst as cst
from libcst.metadata import CodeRange, MetadataWrapper, PositionProvider
from libcst.metadata.position_provider import PositionProvidingCodegenState


def full_positions(module: cst.Module) -> Mapping[cst.CSTNode, CodeRange]:
    return MetadataWrapper(module, unsafe_skip_copy=True).resolve(PositionProvider)


def _small_statement_count(stmt: cst.BaseStatement) -> int:
    return len(stmt.body) if isinstance(stmt, cst.SimpleStatementLine) else 1


def _first_token_line(node: ast.stmt) -> int:
    decorators = getattr(node, "decorator_list", None)
    if decorators:
        # ``@`` sits on the decorator expression's line.
        return min(d.lineno for d in decorators)
    return node.lineno


def statement_start_lines(module: cst.Module, source: str) -> list[int] | None:
    """Line where each top-level statement's code (leading comments included) starts."""
    try:
        tree = ast.parse(source)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return None
    starts: list[int] = []
    k = 0
    for stmt in module.body:
        if k >= len(tree.body):
            return None
        starts.append(_first_token_line(tree.body[k]) - len(stmt.leading_lines))
        k += _small_statement_count(stmt)
    return starts if k == len(tree.body) else None


def positions_for(
    module: cst.Module,
    source: str,
    nodes: Iterable[cst.CSTNode],
    top_level_index: Mapping[int, int],
) -> Mapping[cst.CSTNode, CodeRange]:
    """Ranges for ``nodes`` (and everything in their top-level statements).

    ``top_level_index`` maps ``id(node)`` to the index in ``module.body`` of the
    statement containing it, as recorded during the traversal.
    """
    nodes = list(nodes)
    wanted: set[int] = set()
    for node in nodes:
        index = top_level_index.get(id(node))
        if index is None or index < 0:
            return full_positions(module)
        wanted.add(index)
    starts = statement_start_lines(module, source)
    if starts is None:
        return full_positions(module)
    provider = PositionProvider()
    for index in sorted(wanted):
        stmt = module.body[index]
        state = PositionProvidingCodegenState(
            default_indent=module.default_indent,
            default_newline=module.default_newline,
            provider=provider,
        )
        state.line, state.column = starts[index], 0
        stmt._codegen(state)
    computed = provider._computed
    if any(node not in computed for node in nodes):
        return full_positions(module)
    return computed
