"""Line numbers for rules that need them before the engine computes positions.

The engine resolves positions after the traversal, only for files with
findings. A few rules need a line earlier: in a message ("moved on line 23"),
in ``data`` for the runtime checker, or to insert a whole line in a fix. They
call :func:`positions` only once they know they will report, so files without
findings never pay for it, and the result is cached in ``context.cache`` so
several rules share it.

When the engine publishes its top-level statement index in
``context.cache["top_level_index"]`` (``id(node)`` -> index in ``module.body``),
only the statements holding the asked-for nodes are re-generated
(:func:`torchlint.positions.positions_for`); otherwise the whole module's
positions are computed once.
"""

from __future__ import annotations

from collections.abc import Mapping

import libcst as cst
from libcst.metadata import CodeRange

from torchlint.positions import full_positions, positions_for
from torchlint.rules.base import Context

_KEY = "analysis.positions"


class Positions:
    def __init__(self, context: Context) -> None:
        self._context = context
        self._lines = context.source.splitlines()
        index = context.cache.get("top_level_index")
        self._index: Mapping[int, int] | None = index if isinstance(index, Mapping) else None
        self._map: dict[cst.CSTNode, CodeRange] = {}
        self._full: Mapping[cst.CSTNode, CodeRange] | None = None

    def range(self, node: cst.CSTNode) -> CodeRange:
        if self._full is not None:
            return self._full[node]
        found = self._map.get(node)
        if found is not None:
            return found
        ctx = self._context
        if self._index is not None and self._index.get(id(node), -1) >= 0:
            self._map.update(positions_for(ctx.module, ctx.source, [node], self._index))
            found = self._map.get(node)
            if found is not None:
                return found
        self._full = full_positions(ctx.module)
        return self._full[node]

    def line(self, node: cst.CSTNode) -> int:
        return self.range(node).start.line

    def end_line(self, node: cst.CSTNode) -> int:
        return self.range(node).end.line

    def indent(self, node: cst.CSTNode) -> str:
        """The whitespace before ``node`` on its first line (the statement's indentation)."""
        start = self.range(node).start
        text = self._lines[start.line - 1] if start.line - 1 < len(self._lines) else ""
        prefix = text[: start.column]
        return prefix if prefix.strip() == "" else ""


def positions(context: Context) -> Positions:
    found = context.cache.get(_KEY)
    if not isinstance(found, Positions):
        found = Positions(context)
        context.cache[_KEY] = found
    return found
