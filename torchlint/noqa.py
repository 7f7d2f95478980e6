"""Adding ``# noqa: TLNNN`` comments: a pure text edit, shared by the language
server's "Disable TL201 for this line" action and the CLI.

The comment goes on the line where the finding starts, or on the line where it
ends when the start line cannot take a comment (it ends inside a multi-line
string or with a backslash continuation). The engine honours ``# noqa`` on
either line (see ``engine.noqa_codes``).
"""

from __future__ import annotations

import io
import re
import tokenize
from collections.abc import Iterable

from torchlint.diagnostics import Edit, Finding, Range

# The one grammar of suppression comments: the engine reads them with
# noqa_comments, and the tests check that every comment written here suppresses the finding.
_NOQA = re.compile(
    r"#\s*noqa(?::[\s]?(?P<codes>[A-Z]+[0-9]+(?:[,\s]+[A-Z]+[0-9]+)*))?",
    re.IGNORECASE,
)
_LINE_BREAK = re.compile(r"\r\n|\r|\n")
# A syntax error is not a finding a comment can hide (the engine ignores noqa for it).
_UNSUPPRESSIBLE = frozenset({"TL001"})


def _lines(source: str) -> list[str]:
    return _LINE_BREAK.split(source)


def _comment_columns(source: str) -> dict[int, int] | None:
    """Line -> column where its comment starts, from the tokenizer; None if it cannot tokenize."""
    out: dict[int, int] = {}
    try:
        for tok in tokenize.generate_tokens(io.StringIO(source, newline=None).readline):
            if tok.type == tokenize.COMMENT:
                out[tok.start[0]] = tok.start[1]
    except (tokenize.TokenError, SyntaxError, IndentationError):
        return None
    return out


def noqa_comments(source: str, lines: list[str] | None = None) -> dict[int, re.Match[str]]:
    """Line -> its ``# noqa`` match, for matches in comments only (not in string literals).

    The tokenizer is needed only when a match might be string text: a quote
    before it on its line, or a string that may span lines somewhere in the file.
    If the file cannot be tokenized (half-typed code), matches are taken as
    they stand.
    """
    if "noqa" not in source.lower():
        return {}
    lines = _lines(source) if lines is None else lines
    found: dict[int, re.Match[str]] = {}
    # Strings that span lines: a line inside one has no quote before its '#'.
    doubtful = '"""' in source or "'''" in source or "\\\n" in source or "\\\r" in source
    for lineno, text in enumerate(lines, start=1):
        if "#" not in text:
            continue
        m = _NOQA.search(text)
        if m is not None:
            found[lineno] = m
            if not doubtful and ("'" in text[: m.start()] or '"' in text[: m.start()]):
                doubtful = True
    if not found or not doubtful:
        return found
    columns = _comment_columns(source)
    if columns is None:
        return found
    out: dict[int, re.Match[str]] = {}
    for lineno in found:
        start = columns.get(lineno)
        if start is None:
            continue
        m = _NOQA.search(lines[lineno - 1], start)
        if m is not None:
            out[lineno] = m
    return out


def _lines_ending_in_a_token(source: str) -> set[int]:
    """Lines whose end is inside a token (a triple-quoted string): a comment there would be string text."""
    if '"""' not in source and "'''" not in source:
        return set()
    blocked: set[int] = set()
    try:
        for tok in tokenize.generate_tokens(io.StringIO(source, newline=None).readline):
            if tok.end[0] > tok.start[0] and tok.type not in (tokenize.NEWLINE, tokenize.NL):
                blocked.update(range(tok.start[0], tok.end[0]))
    except (tokenize.TokenError, SyntaxError, IndentationError):
        # Half-typed code: the lines seen so far are classified, the rest are assumed fine.
        pass
    return blocked


def noqa_edits(source: str, findings: Iterable[Finding]) -> list[Edit]:
    """Edits that suppress each finding with a ``# noqa: CODE`` comment.

    Codes for the same line are merged into one comment; an existing
    ``# noqa: X`` is extended rather than duplicated. Findings that cannot be
    suppressed (a syntax error, a line with nowhere to put a comment) get no edit.
    """
    lines = _lines(source)
    blocked: set[int] | None = None
    existing: dict[int, re.Match[str]] | None = None
    wanted: dict[int, list[str]] = {}
    for f in findings:
        if f.code in _UNSUPPRESSIBLE:
            continue
        for line in dict.fromkeys((f.range.line, f.range.end_line)):
            if not 1 <= line <= len(lines):
                continue
            text = lines[line - 1]
            if text.rstrip().endswith("\\"):
                continue
            if blocked is None:
                blocked = _lines_ending_in_a_token(source)
            if line in blocked:
                continue
            codes = wanted.setdefault(line, [])
            if f.code not in codes:
                codes.append(f.code)
            break
    edits: list[Edit] = []
    for line, codes in sorted(wanted.items()):
        text = lines[line - 1]
        if existing is None:
            existing = noqa_comments(source, lines)
        m = existing.get(line)
        if m is not None and m.group("codes") is None:
            continue  # a bare noqa comment already silences everything on the line
        if m is not None:
            present = {c.upper() for c in re.split(r"[,\s]+", m.group("codes")) if c}
            new = [c for c in codes if c.upper() not in present]
            if new:
                end = m.end("codes")
                edits.append(Edit(Range(line, end, line, end), ", " + ", ".join(new)))
            continue
        keep = len(text.rstrip())
        edits.append(Edit(Range(line, keep, line, len(text)), "  # noqa: " + ", ".join(codes)))
    return edits


def add_noqa(source: str, findings: Iterable[Finding]) -> tuple[str, int]:
    """Return ``source`` with noqa comments for ``findings`` and the number of lines changed."""
    edits = noqa_edits(source, findings)
    if not edits:
        return source, 0
    lines = _LINE_BREAK.split(source)
    breaks = _LINE_BREAK.findall(source)
    for e in edits:
        text = lines[e.range.line - 1]
        lines[e.range.line - 1] = text[: e.range.column] + e.content + text[e.range.end_column :]
    out = "".join(line + brk for line, brk in zip(lines, breaks + [""]))
    return out, len(edits)


__all__ = ["add_noqa", "noqa_comments", "noqa_edits"]
