"""``--output-format json``: a JSON array, one object per finding. This is a contract.

Keys: ``path``, ``line``, ``column``, ``end_line``, ``end_column`` (all 1-based,
columns in code points, ``end_column`` exclusive), ``code``, ``name``,
``message``, ``severity``, ``fix`` (null or ``{applicability, message, edits:
[{line, column, end_line, end_column, content}]}``), ``related`` (``[{line,
column, end_line, end_column, message}]``) and ``confirmation`` (null, or
``{status, evidence, detail}`` once the runtime checker has run the code).
"""

from __future__ import annotations

import json
from typing import Any, TextIO

from torchlint.diagnostics import FileReport, Finding, Range
from torchlint.output import OutputOptions, confirmation_dict, findings_of


def _pos(r: Range) -> dict[str, int]:
    return {"line": r.line, "column": r.column + 1, "end_line": r.end_line, "end_column": r.end_column + 1}


def _cell(cell: int | None) -> dict[str, int]:
    return {} if cell is None else {"cell": cell}


def finding_dict(path: str, f: Finding) -> dict[str, Any]:
    pos = _pos(f.range)
    return {
        "path": path,
        **_cell(f.cell),
        **pos,
        "code": f.code,
        "name": f.name,
        "message": f.message,
        "severity": f.severity,
        "fix": None
        if f.fix is None
        else {
            "applicability": f.fix.applicability,
            "message": f.fix.message,
            "edits": [{**_cell(e.cell), **_pos(e.range), "content": e.content} for e in f.fix.edits],
        },
        "related": [{**_cell(r.cell), **_pos(r.range), "message": r.message} for r in f.related],
        "confirmation": confirmation_dict(f.confirmation),
    }


def dumps(reports: list[FileReport]) -> str:
    return json.dumps([finding_dict(r.path, f) for r, f in findings_of(reports)], indent=2, ensure_ascii=False)


def write(reports: list[FileReport], stream: TextIO, options: OutputOptions) -> None:
    stream.write(dumps(reports) + "\n")
