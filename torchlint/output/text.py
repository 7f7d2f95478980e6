"""ruff-style text: ``path:line:col: CODE [*] message``, then the code with the range underlined."""

from __future__ import annotations

import os
import re
import sys
import unicodedata
from typing import TextIO

from torchlint.diagnostics import FileReport, Finding
from torchlint.output import OutputOptions, confirmation_line, findings_of, is_fixable

MAX_SNIPPET_LINES = 6
# Python's line breaks (what positions count), not str.splitlines()'s longer list
# (form feed, U+2028, ...), which would shift every line after such a character.
_LINE_BREAK = re.compile(r"\r\n|\r|\n")
TAB = "    "


class Style:
    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled

    def _sgr(self, code: str, text: str) -> str:
        return f"\x1b[{code}m{text}\x1b[0m" if self.enabled and text else text

    def bold(self, t: str) -> str:
        return self._sgr("1", t)

    def red(self, t: str) -> str:
        return self._sgr("1;31", t)

    def cyan(self, t: str) -> str:
        return self._sgr("36", t)

    def blue(self, t: str) -> str:
        return self._sgr("1;34", t)

    def green(self, t: str) -> str:
        return self._sgr("1;32", t)

    def yellow(self, t: str) -> str:
        return self._sgr("1;33", t)


def use_color(stream: TextIO) -> bool:
    """NO_COLOR (non-empty) disables, FORCE_COLOR (non-empty) enables, else a TTY decides."""
    if os.environ.get("NO_COLOR"):
        return False
    if os.environ.get("FORCE_COLOR"):
        return True
    try:
        return stream.isatty() and os.environ.get("TERM") != "dumb"
    except (AttributeError, ValueError):
        return False


def _width(s: str) -> int:
    w = 0
    for ch in s:
        if unicodedata.combining(ch):
            continue
        w += 2 if unicodedata.east_asian_width(ch) in ("W", "F") else 1
    return w


def header(report: FileReport, f: Finding, options: OutputOptions, style: Style) -> str:
    mark = style.cyan("[*] ") if options.show_fixes and is_fixable(f, options.unsafe_fixes) else ""
    cell = f"cell {f.cell}{style.cyan(':')}" if f.cell is not None else ""
    location = (
        f"{style.bold(report.path)}{style.cyan(':')}{cell}{f.range.line}{style.cyan(':')}{f.range.column + 1}{style.cyan(':')}"
    )
    return f"{location} {style.red(f.code)} {mark}{f.message}"


_split: tuple[str, list[str]] | None = None


def _lines_of(source: str) -> list[str]:
    # Split once per file, not once per finding: a 2 MB file with 150,000 findings
    # spent minutes splitting itself again for each of them.
    global _split
    if _split is None or _split[0] is not source:
        _split = (source, _LINE_BREAK.split(source))
    return _split[1]


def snippet(source: str | None, f: Finding, style: Style) -> list[str]:
    """The flagged lines with a gutter and the range underlined (empty when the text is unknown)."""
    if source is None:
        return []
    lines = _lines_of(source)
    r = f.range
    if not (1 <= r.line <= len(lines)):
        return []
    last = min(max(r.end_line, r.line), len(lines))
    shown = list(range(r.line, last + 1))
    if len(shown) > MAX_SNIPPET_LINES:
        shown = shown[: MAX_SNIPPET_LINES - 2] + [-1] + shown[-1:]
    gutter = len(str(last))
    pad = " " * gutter
    bar = style.blue("|")
    out = [f"{pad} {bar}"]
    for n in shown:
        if n == -1:
            out.append(f"{style.blue('.' * gutter)} {bar} ...")
            continue
        text = lines[n - 1]
        shown_text = text.replace("\t", TAB)
        out.append(f"{style.blue(str(n).rjust(gutter))} {bar} {shown_text}".rstrip())
        start = r.column if n == r.line else len(text) - len(text.lstrip())
        end = r.end_column if n == r.end_line else len(text)
        start = min(start, len(text))
        end = min(max(end, start), len(text))
        lead = _width(text[:start].replace("\t", TAB))
        span = max(_width(text[start:end].replace("\t", TAB)), 1)
        marks = "^" * span
        label = f" {f.code}" if n == last else ""
        out.append(f"{pad} {bar} {' ' * lead}{style.red(marks + label)}")
    out.append(f"{pad} {bar}")
    return out


def notes(f: Finding, options: OutputOptions, style: Style, indent: str) -> list[str]:
    out = []
    eq = style.blue("=")
    for rel in f.related:
        cell = f"cell {rel.cell}:" if rel.cell is not None else ""
        out.append(f"{indent}{eq} {style.bold('note')}: {cell}{rel.range.line}:{rel.range.column + 1}: {rel.message}")
    if f.fix is not None:
        kind = "help" if f.fix.applicability == "safe" else "help (unsafe fix)"
        out.append(f"{indent}{eq} {style.bold(kind)}: {f.fix.message}")
    if f.confirmation is not None:
        label = style.green("runtime") if f.confirmation.status == "confirmed" else style.yellow("runtime")
        out.append(f"{indent}{eq} {label}: {confirmation_line(f.confirmation)}")
    return out


def _source_of(report: FileReport, f: Finding, cells: dict[str, list[str] | None]) -> str | None:
    """The text a finding's range is in: the file's, or its notebook cell's."""
    if f.cell is None:
        return report.source
    if report.path not in cells:
        from torchlint.documents import cell_sources

        cells[report.path] = cell_sources(report.source) if report.source else None
    sources = cells[report.path]
    return sources[f.cell - 1] if sources and 0 < f.cell <= len(sources) else None


def write(reports: list[FileReport], stream: TextIO, options: OutputOptions, concise: bool = False) -> None:
    style = Style(options.color)
    cells: dict[str, list[str] | None] = {}
    for report, f in findings_of(reports):
        stream.write(header(report, f, options, style) + "\n")
        if concise:
            if f.confirmation is not None:
                stream.write(f"    {style.blue('=')} runtime: {confirmation_line(f.confirmation)}\n")
            continue
        lines = snippet(_source_of(report, f, cells), f, style)
        gutter = " " * (len(str(max(f.range.end_line, f.range.line))) + 1)
        lines.extend(notes(f, options, style, gutter))
        for line in lines:
            stream.write(line + "\n")
        stream.write("\n")


def plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 'es' if word.endswith('x') else 's'}"


def summary(
    findings: list[Finding],
    options: OutputOptions,
    *,
    fixed: int = 0,
    fix_mode: bool = False,
    style: Style | None = None,
    errors: int = 0,
) -> list[str]:
    """ruff's closing lines: counts, and what --fix / --unsafe-fixes would do."""
    style = style or Style(False)
    remaining = len(findings)
    if remaining == 0 and fixed == 0:
        if errors:  # a file that failed was not checked: nothing "passed"
            return [f"No findings, but {plural(errors, 'error')} (above): not everything was checked."]
        return [style.green("All checks passed!")]
    lines: list[str] = []
    total = remaining + fixed
    if fix_mode and fixed:
        lines.append(f"Found {plural(total, 'error')} ({fixed} fixed, {remaining} remaining).")
    elif remaining:
        lines.append(f"Found {plural(remaining, 'error')}.")
    else:
        lines.append(f"Found {plural(total, 'error')} ({fixed} fixed, 0 remaining).")
    safe = sum(1 for f in findings if f.fix is not None and f.fix.applicability == "safe")
    unsafe = sum(1 for f in findings if f.fix is not None and f.fix.applicability == "unsafe")
    fixable = safe + (unsafe if options.unsafe_fixes else 0)
    hidden = 0 if options.unsafe_fixes else unsafe
    if hidden:
        hint = f"{plural(hidden, 'hidden fix')} can be enabled with the --unsafe-fixes option"
    if fixable and not fix_mode:
        line = f"{style.cyan('[*]')} {fixable} fixable with the --fix option"
        lines.append(f"{line} ({hint})." if hidden else f"{line}.")
    elif hidden:
        lines.append(f"No fixes available ({hint}).")
    return lines


def write_error(message: str, stream: TextIO | None = None) -> None:
    stream = stream or sys.stderr
    style = Style(use_color(stream))
    stream.write(f"{style.red('error')}: {message}\n")
