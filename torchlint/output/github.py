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
    for report, f in findings_of(reports):
        r = f.range
        props = ",".join(
            [
                f"title={escape_property(f'torchlint ({f.code})')}",
                f"file={escape_property(report.path)}",
                f"line={r.line}",
                f"col={r.column + 1}",
                f"endLine={r.end_line}",
                f"endColumn={r.end_column + 1}",
            ]
        )
        message = f"{f.code} {f.message}"
        if f.confirmation is not None:
            message += f" ({confirmation_line(f.confirmation)})"
        stream.write(f"::{_LEVEL.get(f.severity, 'error')} {props}::{escape_data(message)}\n")
