"""Exact pre-checks on CPython's tree: which files can a rule report on at all?

libcst's parse is most of a lint, and most files of a large tree hold nothing a
rule reports. A rule that reports only on code referring to certain qualified
names (``torch.load``, ``torch.nn.functional.softmax``) declares them as
``Rule.qualified_triggers``; a file none of whose dotted names can resolve to one
of them is skipped without a CST. The answer over-approximates
:class:`torchlint.names.NameResolver` (which resolves through imports only):
every import of the file, in any scope, counts, whatever else binds the name.
"""

from __future__ import annotations

import ast
import re
from functools import lru_cache

from torchlint.incremental import python_ast

_BLOCKS = ("body", "orelse", "finalbody")


class ImportTable:
    """Every name an import of the file binds (any scope), with each module it may stand for."""

    def __init__(self) -> None:
        self.bindings: dict[str, set[str]] = {}
        self.stars: set[str] = set()

    def bind(self, name: str, qualified: str) -> None:
        self.bindings.setdefault(name, set()).add(qualified)

    def chains(self, qualified: str) -> set[str]:
        """The dotted texts that NameResolver may resolve to ``qualified``."""
        out = set()
        for local, targets in self.bindings.items():
            for target in targets:
                if qualified == target:
                    out.add(local)
                elif qualified.startswith(target + "."):
                    out.add(local + qualified[len(target) :])
        for module in self.stars:  # `from m import *`: any free name may be m's
            if qualified.startswith(module + "."):
                out.add(qualified[len(module) + 1 :])
        return out


    def resolve(self, dotted: str) -> set[str]:
        """Every qualified name NameResolver may give ``dotted`` (it gives at most one of them, or None)."""
        head, _, rest = dotted.partition(".")
        bases = set(self.bindings.get(head, ())) | {f"{m}.{head}" for m in self.stars}
        return {f"{b}.{rest}" if rest else b for b in bases}


def dotted_text(node: ast.AST) -> str | None:
    """``a.b.c`` for a Name/Attribute chain on CPython's tree, else None."""
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if not isinstance(node, ast.Name):
        return None
    parts.append(node.id)
    return ".".join(reversed(parts))


def statements(body: list[ast.stmt]):
    """Every statement under ``body``, in nested blocks, defs and classes too (expressions are not walked)."""
    for stmt in body:
        yield stmt
        for attr in _BLOCKS:
            block = getattr(stmt, attr, None)
            if block:
                yield from statements(block)
        for handler in getattr(stmt, "handlers", ()):
            yield from statements(handler.body)
        for case in getattr(stmt, "cases", ()):
            yield from statements(case.body)


def _scan(body: list[ast.stmt], table: ImportTable) -> None:
    for stmt in body:
        if isinstance(stmt, ast.Import):
            for alias in stmt.names:
                if alias.asname:
                    table.bind(alias.asname, alias.name)
                else:
                    top = alias.name.split(".")[0]
                    table.bind(top, top)
        elif isinstance(stmt, ast.ImportFrom):
            module = "." * stmt.level + (stmt.module or "")
            for alias in stmt.names:
                if alias.name == "*":
                    table.stars.add(module)
                else:
                    table.bind(alias.asname or alias.name, f"{module}.{alias.name}" if module else alias.name)
        else:
            for attr in _BLOCKS:
                block = getattr(stmt, attr, None)
                if block:
                    _scan(block, table)
            for handler in getattr(stmt, "handlers", ()):
                _scan(handler.body, table)
            for case in getattr(stmt, "cases", ()):
                _scan(case.body, table)


_last: tuple[str, ImportTable | None] | None = None


def import_table(source: str) -> ImportTable | None:
    """The file's imports (None when CPython cannot parse it: then nothing may be skipped)."""
    global _last
    if _last is not None and _last[0] is source:
        return _last[1]
    try:
        tree = python_ast(source, keep=True)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        table = None
    else:
        table = ImportTable()
        _scan(tree.body, table)
    _last = (source, table)
    return table


# Between the parts of a dotted name: spaces, line breaks, backslash continuations, comments.
_GAP = r"(?:\s|\\\n|#[^\n]*)*"


@lru_cache(maxsize=4096)
def _chain_pattern(chain: str) -> re.Pattern[str]:
    parts = [re.escape(p) for p in chain.split(".")]
    return re.compile(r"(?<![\w.])" + (_GAP + r"\." + _GAP).join(parts) + r"(?!\w)")


def may_reference(source: str, qualified: frozenset[str]) -> bool:
    """Might some dotted name of ``source`` resolve to one of ``qualified`` (or below one)?"""
    table = import_table(source)
    if table is None:
        return True
    for name in qualified:
        for chain in table.chains(name):
            if _chain_pattern(chain).search(source):
                return True
    return False
