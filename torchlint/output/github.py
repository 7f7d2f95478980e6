"""``--output-format github``: GitHub Actions workflow commands, one annotation per finding."""

from __future__ import annotations

from typing import TextIO

from torchlint.diagnostics import FileReport
from torchlint.output import OutputOptions, confirmation_line, findings_of

_LEVEL = {"error": "error", "warning": "warning", "info": "notice"}


def escape_data(s: str) -> str:
    return s.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def escape_property(s: str) -> str:
    return escape_data(s).replace(":", "%3A").replace(",", "%2C")


def write(reports: list[FileReport], stream: TextIO, options: OutputOptions) -> None:
    lines: dict[str, object] = {}
    for report, f in findings_of(reports):
        r = f.range
        if f.cell is None:
            where = [f"line={r.line}", f"col={r.column + 1}", f"endLine={r.end_line}", f"endColumn={r.end_column + 1}"]
            title = f"torchlint ({f.code})"
            message = f"{f.code} {f.message}"
        else:
            # The annotation goes on the line of the notebook's JSON that holds the cell's line.
            if report.path not in lines:
                from torchlint.documents import json_lines

                lines[report.path] = json_lines(report.source) if report.source else None
            table = lines[report.path]
            line = table.get((f.cell, r.line)) if isinstance(table, dict) else None
            where = [f"line={line}"] if line else []
            title = f"torchlint ({f.code}) cell {f.cell}"
            message = f"{f.code} cell {f.cell}, line {r.line}, column {r.column + 1}: {f.message}"
        props = ",".join([f"title={escape_property(title)}", f"file={escape_property(report.path)}", *where])
        if f.confirmation is not None:
            message += f" ({confirmation_line(f.confirmation)})"
        stream.write(f"::{_LEVEL.get(f.severity, 'error')} {props}::{escape_data(message)}\n")
