"""Line numbers for rules that need them before the engine computes positions.

The engine resolves positions after the traversal, only for files with
findings. A few rules need a line earlier: in a message ("moved on line 23"),
in ``data`` for the runtime checker, or to insert a whole line in a fix. They
call :func:`positions` only once they know they will report, so files without
findings never pay for it. Ranges come from :meth:`Context.ranges`, which the
engine and the other rules share, so no statement is located twice.
"""

from __future__ import annotations

import libcst as cst
from libcst.metadata import CodeRange

from torchlint.rules.base import Context
from torchlint.sources import python_lines

_KEY = "analysis.positions"


class Positions:
    def __init__(self, context: Context) -> None:
        self._context = context
        self._lines: list[str] | None = None  # (split only for a rule that asks for an indentation)

    def range(self, node: cst.CSTNode) -> CodeRange:
        return self._context.range_of(node)

    def line(self, node: cst.CSTNode) -> int:
        return self.range(node).start.line

    def end_line(self, node: cst.CSTNode) -> int:
        return self.range(node).end.line

    def statement_line(self, index: int) -> int:
        """The line of the first token of the module's top-level statement ``index``: from where its
        code starts (CPython's tree), without regenerating the statement's code as ``line`` does."""
        stmt = self._context.module.body[index]
        starts = self._context.statement_starts()
        if starts is None:
            return self.line(stmt)
        return starts[index] + len(stmt.leading_lines)

    def indent(self, node: cst.CSTNode) -> str:
        """The whitespace before ``node`` on its first line (the statement's indentation)."""
        start = self.range(node).start
        if self._lines is None:
            self._lines = python_lines(self._context.source)
        text = self._lines[start.line - 1] if start.line - 1 < len(self._lines) else ""
        prefix = text[: start.column]
        return prefix if prefix.strip() == "" else ""


def positions(context: Context) -> Positions:
    found = context.cache.get(_KEY)
    if not isinstance(found, Positions):
        found = Positions(context)
        context.cache[_KEY] = found
    return found
