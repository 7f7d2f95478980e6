"""Output formats for ``torchlint check``: text (full and concise), json, github, sarif.

Every format takes the same input, a list of :class:`~torchlint.diagnostics.FileReport`
whose ``source`` is the text the findings refer to, and every format can show a
finding's runtime ``confirmation`` when it has one.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import TextIO

from torchlint.diagnostics import Confirmation, FileReport, Finding

FORMATS = ("text", "full", "concise", "json", "github", "sarif")


@dataclass(frozen=True)
class OutputOptions:
    unsafe_fixes: bool = False
    color: bool = False
    show_fixes: bool = True  # mark fixable findings with [*]


def is_fixable(f: Finding, unsafe_fixes: bool) -> bool:
    return f.fix is not None and (f.fix.applicability == "safe" or unsafe_fixes)


def findings_of(reports: Iterable[FileReport]) -> list[tuple[FileReport, Finding]]:
    """Every finding, ordered by path then position."""
    out = [(r, f) for r in sorted(reports, key=lambda r: r.path) for f in r.findings]
    return out


CONFIRMATION_LABELS = {
    "confirmed": "confirmed at runtime",
    "not-reproduced": "not reproduced at runtime",
    "could-not-run": "could not be run to confirm",
}


def confirmation_line(c: Confirmation) -> str:
    label = CONFIRMATION_LABELS.get(c.status, c.status)
    return f"{label}: {c.evidence}" if c.evidence else label


def confirmation_dict(c: Confirmation | None) -> dict | None:
    if c is None:
        return None
    return {"status": c.status, "evidence": c.evidence, "detail": dict(c.detail)}


def write(
    fmt: str,
    reports: list[FileReport],
    stream: TextIO,
    options: OutputOptions = OutputOptions(),
    errors: Iterable[str] = (),
) -> None:
    """Write the findings of ``reports`` in ``fmt`` (summary lines are the CLI's job).

    ``errors``: problems not tied to a report (missing paths); formats that can
    carry errors (SARIF) include them with every report's own ``errors``.
    """
    if fmt in ("text", "full", "concise"):
        from torchlint.output import text

        text.write(reports, stream, options, concise=fmt == "concise")
    elif fmt == "json":
        from torchlint.output import json as json_format

        json_format.write(reports, stream, options)
    elif fmt == "github":
        from torchlint.output import github

        github.write(reports, stream, options)
    elif fmt == "sarif":
        from torchlint.output import sarif

        sarif.write(reports, stream, options, errors)
    else:  # pragma: no cover - argparse restricts the choices
        raise ValueError(f"unknown output format {fmt!r}")


__all__ = [
    "FORMATS",
    "OutputOptions",
    "confirmation_dict",
    "confirmation_line",
    "findings_of",
    "is_fixable",
    "write",
]
