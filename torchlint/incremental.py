"""Re-parse only the top-level statements whose text changed.

An editor sends the whole text after every keystroke, but an edit touches one
statement. libcst has no incremental parser, and its parse is most of a lint,
so the language server's analysis processes keep a :class:`ParseCache`: the
file is cut at top-level statement boundaries (found by CPython's ``ast``, ~10x
faster than the CST parse), each piece is looked up by its exact text, and only
the pieces not seen before are parsed. The module is then reassembled from the
statements.

The result has exactly the source's text and the same statements a whole-file
parse gives. Comment lines between two top-level statements may land in the
second statement's ``leading_lines`` instead of the first one's block footer;
no rule reads comments, and positions are computed from this same tree, so
findings and fixes are identical (``tests/test_incremental.py`` checks that
against whole-file lints, edit by edit). Anything unusual (mixed indentation
or line endings, a piece that does not parse on its own) falls back to a
whole-file parse.
"""

from __future__ import annotations

import ast
from collections import OrderedDict
from dataclasses import dataclass, field, replace
from typing import Any

import libcst as cst

from torchlint.positions import first_token_line
from torchlint.sources import python_lines


@dataclass
class _Piece:
    """One top-level statement (with its leading comments), parsed on its own."""

    statement: cst.BaseStatement
    header: tuple[cst.EmptyLine, ...]  # only for the file's first piece; merged otherwise
    footer: tuple[cst.EmptyLine, ...]
    indent: str | None  # the piece's default indent, if it has an indented block
    newline: str | None  # the piece's default newline, if it has one
    has_trailing_newline: bool
    encoding: str
    # The last document generation that used it (ParseCache.begin).
    generation: int = 0
    # Positions relative to the statement's first line, filled in by positions.py
    # for statements that had findings: an unchanged statement is not regenerated.
    positions: dict[tuple[str, str], Any] = field(default_factory=dict)


def _has_indentation(node: cst.CSTNode) -> bool:
    """Does the statement hold an INDENT token? Only then does its piece's default indent matter.

    Indented blocks and ``match`` (whose cases are indented) print with the
    module's default indent when their own is the default. Only a compound
    statement's suites can hold one (its body and those of its ``elif``,
    ``else``, ``except`` and ``finally`` clauses): expressions, decorators and
    parameters never do, and a one-line suite holds small statements only.
    """
    if isinstance(node, (cst.IndentedBlock, cst.Match)):
        return True
    if isinstance(node, (cst.BaseExpression, cst.SimpleStatementLine, cst.SimpleStatementSuite)):
        return False
    suites = [getattr(node, "body", None), getattr(node, "orelse", None), getattr(node, "finalbody", None)]
    suites.extend(getattr(node, "handlers", ()))
    return any(isinstance(s, cst.CSTNode) and _has_indentation(s) for s in suites)


# Held trees: (text, its tree, whether an equal text is the same text: see hold_ast).
_held: list[tuple[str, ast.Module, bool]] = []


def python_ast(source: str, keep: bool = False) -> ast.Module:
    """``ast.parse(source)``; one text is parsed once per lint by the CPython parser.

    ``keep``: hold the tree for the next call with this very text (the
    prescan of TL501/TL502 parses the text before the engine does); a call
    without ``keep`` takes a held tree and lets it go.
    """
    global _held
    for entry in _held:
        if entry[0] is source or (entry[2] and entry[0] == source):
            if not keep:
                _held = [e for e in _held if e is not entry]
            return entry[1]
    tree = ast.parse(source)
    _held = [(source, tree, False)] if keep else []
    return tree


def held_ast(source: str) -> ast.Module | None:
    """The tree held for this very text (see :func:`python_ast`), if any, without letting it go."""
    for entry in _held:
        if entry[0] is source or (entry[2] and entry[0] == source):
            return entry[1]
    return None


def hold_ast(*trees: tuple[str, ast.Module]) -> None:
    """Hold trees built some other way, (text, tree of the text) each, for :func:`python_ast` (as calls
    with ``keep`` would): a notebook's, which building the document parsed. Each serves any text equal
    to its own: a document's rules see its text plus its trigger imports, a string the engine makes anew
    for each lint (and the positions of findings, its text)."""
    global _held
    _held = [(text, tree, True) for text, tree in trees]


def release_held() -> None:
    """Hold no tree any longer (a lint is over: see torchlint.engine)."""
    global _held
    _held = []


def split_statements(source: str, tree: ast.Module) -> list[tuple[str, int]] | None:
    """The source cut into pieces of one top-level statement each: (text, first line).

    Small statements joined by ``;`` on one line stay together (libcst makes
    one statement line of them). Comment and blank lines go with the statement
    after them; lines after the last statement go with it.
    """
    if not tree.body:
        return None
    lines = python_lines(source, keepends=True)
    bounds: list[tuple[int, int]] = []  # 1-based first and last line of each statement group
    for node in tree.body:
        first, last = first_token_line(node), node.end_lineno or node.lineno
        if bounds and first <= bounds[-1][1]:
            bounds[-1] = (bounds[-1][0], max(last, bounds[-1][1]))
        else:
            bounds.append((first, last))
    pieces: list[tuple[str, int]] = []
    start = 1
    for k, (_, last) in enumerate(bounds):
        end = len(lines) if k == len(bounds) - 1 else last
        if end < start:
            return None
        pieces.append(("".join(lines[start - 1 : end]), start))
        start = end + 1
    return pieces


class ParseCache:
    """Parsed top-level statements by their exact text, most recently used kept."""

    # A parsed statement takes about 45 bytes per character of its text (plus
    # positions for those with findings): 400k characters, some 12,000 lines,
    # hold a few large files' worth of statements in about 20 MB.
    def __init__(self, max_chars: int = 400_000) -> None:
        self.max_chars = max_chars
        self.chars = 0
        self._pieces: OrderedDict[tuple[bool, str], _Piece] = OrderedDict()
        self._by_statement: dict[int, _Piece] = {}
        self.hits = 0
        self.misses = 0
        # Only the statements of the two documents linted last are kept (see begin()).
        self._document: object = None
        self._generation = 0
        self._previous = 0  # the generation of the document before this one
        self._switched = False

    def begin(self, document: object) -> None:
        """The next parses are of ``document`` (a path). A cache serving many files keeps the
        statements of the current document and of the one linted before it (typing in one
        file, looking at another), not those of every file opened: a server that opened 200
        files holds two files' statements, not 400,000 characters of them."""
        if document == self._document:
            return
        self._document = document
        self._previous = self._generation
        self._generation += 1
        self._switched = True

    def end(self) -> None:
        """Drop the statements that neither this document nor the one before used."""
        if not self._switched:
            return
        self._switched = False
        for key in [k for k, p in self._pieces.items() if p.generation < self._previous]:
            piece = self._pieces.pop(key)
            self._by_statement.pop(id(piece.statement), None)
            self.chars -= len(key[1])

    def peek(self, text: str, first: bool) -> _Piece | None:
        """The cached piece of this statement text, if any (no statistics, no reordering)."""
        return self._pieces.get((first, text))

    def statement(self, text: str, first: bool, last: bool) -> cst.BaseStatement | None:
        """The parsed statement of one piece of text (from the cache, else parsed and cached)."""
        piece = self._get(text, first, last, set())
        return None if piece is None else piece.statement

    def piece_of(self, statement: cst.CSTNode) -> _Piece | None:
        return self._by_statement.get(id(statement))

    def _parse_piece(self, text: str, first: bool, last: bool) -> _Piece | None:
        from torchlint.engine import parse  # (libcst's parse without re-validating what it built)

        try:
            module = parse(text)
        except Exception:  # noqa: BLE001 - any trouble: the caller parses the whole file
            return None
        if len(module.body) != 1 or (module.footer and not last):
            return None
        stmt = module.body[0]
        header = tuple(module.header)
        if header and not first:
            stmt = stmt.with_changes(leading_lines=(*header, *stmt.leading_lines))
            header = ()
        newline = module.default_newline if ("\n" in text or "\r" in text) else None
        return _Piece(
            statement=stmt,
            header=header,
            footer=tuple(module.footer),
            indent=module.default_indent if _has_indentation(stmt) else None,
            newline=newline,
            has_trailing_newline=module.has_trailing_newline,
            encoding=module.encoding,
        )

    def _get(self, text: str, first: bool, last: bool, used: set[int]) -> _Piece | None:
        key = (first, text)
        piece = self._pieces.get(key)
        if piece is not None and id(piece.statement) not in used:
            self.hits += 1
            self._pieces.move_to_end(key)
            piece.generation = self._generation
            return piece
        if piece is not None:
            # A repeated piece in one file gets its own nodes (node identity maps findings
            # to positions): a copy of the cached one, which is cheaper than a parse.
            self.hits += 1
            return replace(piece, statement=piece.statement.deep_clone(), positions={})
        self.misses += 1
        piece = self._parse_piece(text, first, last)
        if piece is None:
            return None
        piece.generation = self._generation
        if key not in self._pieces:
            # A repeated piece in one file gets its own nodes (node identity maps
            # findings to positions), and only the first copy is cached.
            self._pieces[key] = piece
            self._by_statement[id(piece.statement)] = piece
            self.chars += len(text)
            while self.chars > self.max_chars and len(self._pieces) > 1:
                (_, old_text), old = self._pieces.popitem(last=False)
                self._by_statement.pop(id(old.statement), None)
                self.chars -= len(old_text)
        return piece

    def parse(self, source: str, tree: ast.Module) -> tuple[cst.Module, list[int]] | None:
        """The module, and the line where each top-level statement's code starts; None: parse it whole."""
        if len(source) > self.max_chars // 2:
            return None  # it would push its own statements out of the cache
        split = split_statements(source, tree)
        if split is None:
            return None
        pieces: list[_Piece] = []
        used: set[int] = set()
        for k, (text, _) in enumerate(split):
            piece = self._get(text, k == 0, k == len(split) - 1, used)
            if piece is None:
                return None
            used.add(id(piece.statement))
            pieces.append(piece)
        # The whole file's defaults come from its first indented block and its
        # first line break; a piece that inferred other ones would print differently.
        indent = next((p.indent for p in pieces if p.indent is not None), None)
        if any(p.indent is not None and p.indent != indent for p in pieces):
            return None
        newline = next((p.newline for p in pieces if p.newline is not None), None)
        if any(p.newline is not None and p.newline != newline for p in pieces):
            return None
        first, last = pieces[0], pieces[-1]
        kwargs: dict[str, Any] = {
            "body": [p.statement for p in pieces],
            "header": first.header,
            "footer": last.footer,
            "encoding": first.encoding,
            "has_trailing_newline": last.has_trailing_newline,
        }
        if indent is not None:
            kwargs["default_indent"] = indent
        if newline is not None:
            kwargs["default_newline"] = newline
        module = cst.Module(**kwargs)
        starts = [start + (len(first.header) if k == 0 else 0) for k, (_, start) in enumerate(split)]
        return module, starts
