"""``--output-format sarif``: SARIF 2.1.0, for GitHub code scanning and other SARIF viewers.

Columns are reported in code points (``run.columnKind``), paths relative to the
working directory (``%SRCROOT%``), fixes as SARIF ``fixes``, related locations
as ``relatedLocations``, runtime confirmations in ``properties.confirmation``,
and problems that stopped a file from being linted as tool notifications.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any, TextIO
from urllib.parse import quote

import torchlint
from torchlint.diagnostics import FileReport, Range
from torchlint.output import OutputOptions, confirmation_dict, confirmation_line, findings_of
from torchlint.rules import all_rules

SCHEMA = "https://json.schemastore.org/sarif-2.1.0.json"
_LEVEL = {"error": "error", "warning": "warning", "info": "note"}


def _region(r: Range) -> dict[str, int]:
    return {
        "startLine": r.line,
        "startColumn": r.column + 1,
        "endLine": r.end_line,
        "endColumn": r.end_column + 1,
    }


def _artifact(path: str) -> dict[str, str]:
    if os.path.isabs(path):
        return {"uri": Path(path).as_uri()}
    return {"uri": quote(path.replace(os.sep, "/")), "uriBaseId": "%SRCROOT%"}


def _what_it_does(doc: str) -> str:
    m = re.search(r"## What it does\s*\n(.*?)(?:\n## |\Z)", doc, re.S)
    text = (m.group(1) if m else doc).strip()
    return " ".join(text.split())


def _rule_descriptor(rule: type) -> dict[str, Any]:
    from torchlint.docs import rule_url

    doc = rule.documentation()
    short = _what_it_does(doc) or rule.name
    descriptor: dict[str, Any] = {
        "id": rule.code,
        "name": rule.name,
        "shortDescription": {"text": short},
        "fullDescription": {"text": doc or short},
        "help": {"text": doc or short, "markdown": doc or short},
        "defaultConfiguration": {"level": _LEVEL.get(rule.severity, "error")},
        "properties": {"deprecated": bool(rule.deprecated), "tags": ["pytorch"]},
    }
    url = rule_url(rule.code)
    if url:
        descriptor["helpUri"] = url
    return descriptor


def build(reports: list[FileReport], options: OutputOptions = OutputOptions(), errors: Iterable[str] = ()) -> dict[str, Any]:
    rules = all_rules()
    descriptors = [_rule_descriptor(r) for r in rules.values()]
    index = {d["id"]: i for i, d in enumerate(descriptors)}
    results = []
    json_lines: dict[str, dict] = {}
    for report, f in findings_of(reports):
        if f.code not in index:  # a rule from outside the registry (plugins, tests)
            index[f.code] = len(descriptors)
            descriptors.append({"id": f.code, "name": f.name, "shortDescription": {"text": f.name}})
        text = f.message
        if f.confirmation is not None:
            text += f" ({confirmation_line(f.confirmation)})"
        location: dict[str, Any] = {"physicalLocation": {"artifactLocation": _artifact(report.path), "region": _region(f.range)}}
        if f.cell is not None:
            # A notebook: the region is the line of its JSON holding the cell's line; the cell,
            # and the position within it, are the logical location and properties.
            if report.path not in json_lines:
                from torchlint.documents import json_lines as lines_of

                json_lines[report.path] = lines_of(report.source) if report.source else {}
            line = json_lines[report.path].get((f.cell, f.range.line))
            location["physicalLocation"] = {"artifactLocation": _artifact(report.path)}
            if line:
                location["physicalLocation"]["region"] = {"startLine": line}
            text = f"cell {f.cell}, line {f.range.line}, column {f.range.column + 1}: {text}"
            location["logicalLocations"] = [{"name": f"cell {f.cell}", "kind": "module"}]
            location["properties"] = {"cell": f.cell, "cellRegion": _region(f.range)}
        result: dict[str, Any] = {
            "ruleId": f.code,
            "ruleIndex": index[f.code],
            "level": _LEVEL.get(f.severity, "error"),
            "message": {"text": text},
            "locations": [location],
        }
        if f.related and f.cell is not None:
            result["relatedLocations"] = [
                {"id": i, "message": {"text": f"cell {rel.cell}, line {rel.range.line}: {rel.message}"}}
                for i, rel in enumerate(f.related)
            ]
        elif f.related:
            result["relatedLocations"] = [
                {
                    "id": i,
                    "message": {"text": rel.message},
                    "physicalLocation": {"artifactLocation": _artifact(report.path), "region": _region(rel.range)},
                }
                for i, rel in enumerate(f.related)
            ]
        if f.fix is not None and f.cell is None:  # a cell's edits are not regions of the file
            result["fixes"] = [
                {
                    "description": {"text": f.fix.message + (" (unsafe)" if f.fix.applicability == "unsafe" else "")},
                    "artifactChanges": [
                        {
                            "artifactLocation": _artifact(report.path),
                            "replacements": [
                                {"deletedRegion": _region(e.range), "insertedContent": {"text": e.content}}
                                for e in f.fix.edits
                            ],
                        }
                    ],
                }
            ]
        props: dict[str, Any] = {"name": f.name}
        if f.cell is not None:
            props["cell"] = f.cell
        if f.fix is not None:
            props["fixApplicability"] = f.fix.applicability
        if f.confirmation is not None:
            props["confirmation"] = confirmation_dict(f.confirmation)
        result["properties"] = props
        results.append(result)

    notifications = [
        {"level": "error", "message": {"text": e}} for r in reports for e in r.errors
    ] + [{"level": "error", "message": {"text": e}} for e in errors]
    cwd = Path.cwd().as_uri().rstrip("/") + "/"
    run = {
        "tool": {
            "driver": {
                "name": "torchlint",
                "version": torchlint.__version__,
                "semanticVersion": torchlint.__version__,
                "rules": descriptors,
            }
        },
        "invocations": [
            {"executionSuccessful": not notifications, "toolExecutionNotifications": notifications}
        ],
        "originalUriBaseIds": {"%SRCROOT%": {"uri": cwd}},
        "columnKind": "unicodeCodePoints",
        "results": results,
    }
    return {"$schema": SCHEMA, "version": "2.1.0", "runs": [run]}


def write(reports: list[FileReport], stream: TextIO, options: OutputOptions, errors: Iterable[str] = ()) -> None:
    stream.write(json.dumps(build(reports, options, errors), indent=2, ensure_ascii=False) + "\n")
