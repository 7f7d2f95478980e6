"""Findings to LSP: positions in the client's encoding, diagnostics, text edits.

The analyzer's columns are code points; LSP columns are UTF-16 units unless the
client negotiated UTF-8 or UTF-32 (``general.positionEncodings``). Every
position that leaves the server goes through :class:`LineIndex` for the exact
text the findings were computed on.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable, Sequence

from lsprotocol import types as lsp

from torchlint.diagnostics import Edit, Finding, Range

SOURCE = "torchlint"

_LINE_BREAK = re.compile(r"\r\n|\r|\n")

_SEVERITY = {
    "error": lsp.DiagnosticSeverity.Error,
    "warning": lsp.DiagnosticSeverity.Warning,
    "info": lsp.DiagnosticSeverity.Information,
}



def split_lines(source: str) -> list[str]:
    """Lines the way LSP counts them (``\\n``, ``\\r\\n`` and ``\\r`` only; not ``str.splitlines``)."""
    return _LINE_BREAK.split(source)


def _units(text: str, encoding: str) -> int:
    if encoding == lsp.PositionEncodingKind.Utf32 or text.isascii():
        return len(text)
    if encoding == lsp.PositionEncodingKind.Utf8:
        return len(text.encode("utf-8", "surrogatepass"))
    return len(text.encode("utf-16-le", "surrogatepass")) // 2


class LineIndex:
    """Converts between code-point columns and the client's units for one text."""

    def __init__(self, source: str, encoding: str = lsp.PositionEncodingKind.Utf16) -> None:
        self.lines = split_lines(source)
        self.encoding = encoding

    def position(self, line: int, column: int) -> lsp.Position:
        """1-based line, code-point column -> LSP position."""
        idx = line - 1
        if idx < 0:
            return lsp.Position(0, 0)
        if idx >= len(self.lines):
            last = len(self.lines) - 1
            return lsp.Position(last, _units(self.lines[last], self.encoding))
        text = self.lines[idx]
        return lsp.Position(idx, _units(text[: max(column, 0)], self.encoding))

    def range(self, r: Range) -> lsp.Range:
        return lsp.Range(self.position(r.line, r.column), self.position(r.end_line, r.end_column))

    def to_code_points(self, pos: lsp.Position) -> tuple[int, int]:
        """LSP position -> (1-based line, code-point column), clamped to the text."""
        if pos.line >= len(self.lines):
            last = len(self.lines)
            return last, len(self.lines[-1])
        text = self.lines[pos.line]
        if self.encoding == lsp.PositionEncodingKind.Utf32 or text.isascii():
            return pos.line + 1, min(pos.character, len(text))
        units = 0
        for i, ch in enumerate(text):
            if units >= pos.character:
                return pos.line + 1, i
            units += _units(ch, self.encoding)
        return pos.line + 1, len(text)

    def text_edit(self, edit: Edit) -> lsp.TextEdit:
        return lsp.TextEdit(range=self.range(edit.range), new_text=edit.content)


def lsp_range_overlaps(a: lsp.Range, b: lsp.Range) -> bool:
    """Do two ranges touch? (A cursor at either end of a finding counts as on it.)"""
    a0, a1 = (a.start.line, a.start.character), (a.end.line, a.end.character)
    b0, b1 = (b.start.line, b.start.character), (b.end.line, b.end.character)
    return a0 <= b1 and b0 <= a1


class DiagnosticStyle:
    """What the client can show, from its capabilities (publish or pull)."""

    def __init__(self, related_information: bool = True, tags: Sequence[int] = (1, 2), code_description: bool = True) -> None:
        self.related_information = related_information
        self.tags = frozenset(int(t) for t in tags)
        self.code_description = code_description


def confirmation_note(finding: Finding) -> str | None:
    c = finding.confirmation
    if c is None:
        return None
    label = {
        "confirmed": "confirmed by running",
        "not-reproduced": "not reproduced when run",
        "could-not-run": "could not run",
    }.get(c.status, c.status)
    evidence = " ".join(c.evidence.split())
    return f"{label}: {evidence}" if evidence else label


# Code -> documentation URL, as an analysis process reported it (set_rule_urls): the
# server process itself does not load the rules.
_RULE_URLS: dict[str, str | None] = {}


def set_rule_urls(urls: dict[str, str | None]) -> None:
    _RULE_URLS.update(urls)


def rule_url(code: str) -> str | None:
    if code in _RULE_URLS:
        return _RULE_URLS[code]
    # torchlint.docs imports the rule registry (libcst, every rule): only where no
    # analysis process has said (the embedding program's rules, lints in this process).
    from torchlint.docs import rule_url

    return rule_url(code)


def to_diagnostic(finding: Finding, index: LineIndex, uri: str, style: DiagnosticStyle) -> lsp.Diagnostic:
    rng = index.range(finding.range)
    message = finding.message
    related: list[lsp.DiagnosticRelatedInformation] = []
    for r in finding.related:
        if style.related_information:
            related.append(
                lsp.DiagnosticRelatedInformation(lsp.Location(uri, index.range(r.range)), r.message)
            )
        else:
            message += f"\n  line {r.range.line}: {r.message}"
    note = confirmation_note(finding)
    if note is not None:
        message = f"{message} [{note}]"
        if style.related_information:
            related.append(lsp.DiagnosticRelatedInformation(lsp.Location(uri, rng), note))
    tags = None
    if finding.deprecated and int(lsp.DiagnosticTag.Deprecated) in style.tags:
        tags = [lsp.DiagnosticTag.Deprecated]
    return lsp.Diagnostic(
        range=rng,
        message=message,
        severity=_SEVERITY.get(finding.severity, lsp.DiagnosticSeverity.Error),
        code=finding.code,
        code_description=lsp.CodeDescription(href=url) if style.code_description and (url := rule_url(finding.code)) else None,
        source=SOURCE,
        tags=tags,
        related_information=related or None,
        data={"name": finding.name},
    )


def notice_diagnostic(message: str, severity: lsp.DiagnosticSeverity = lsp.DiagnosticSeverity.Information) -> lsp.Diagnostic:
    """A diagnostic that is not a finding (the file cannot be linted): at the top of the file."""
    return lsp.Diagnostic(
        range=lsp.Range(lsp.Position(0, 0), lsp.Position(0, 0)),
        message=message,
        severity=severity,
        source=SOURCE,
    )


def diff_edits(old: str, new: str, index: LineIndex) -> list[lsp.TextEdit]:
    """Line-granular edits turning ``old`` into ``new`` (small edits keep the editor's cursor and marks)."""
    a = old.splitlines(keepends=True)
    b = new.splitlines(keepends=True)
    # ``splitlines`` also breaks on form feeds etc.; fall back to one edit if
    # that makes its line numbers disagree with LSP's.
    if len(a) != len(index.lines) - (1 if old.endswith(("\n", "\r")) or not old else 0):
        return [lsp.TextEdit(index.range(Range(1, 0, len(index.lines), len(index.lines[-1]))), new)]
    edits: list[lsp.TextEdit] = []
    matcher = difflib.SequenceMatcher(None, a, b, autojunk=False)
    for tag, i1, i2, j1, j2 in matcher.get_opcodes():
        if tag == "equal":
            continue
        start = index.position(i1 + 1, 0)
        end = index.position(i2 + 1, 0)
        text = "".join(b[j1:j2])
        if i2 >= len(a) and a and not a[-1].endswith(("\n", "\r")):
            end = index.position(len(a), len(a[-1]))
        edits.append(lsp.TextEdit(lsp.Range(start, end), text))
    return edits


def text_edits(edits: Iterable[Edit], index: LineIndex) -> list[lsp.TextEdit]:
    return [index.text_edit(e) for e in edits]
