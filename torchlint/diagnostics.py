"""The data every consumer shares: findings, their ranges and their fixes.

Positions follow libcst: lines are 1-based, columns are 0-based offsets in
characters (code points). Output formats convert (JSON: 1-based columns; LSP:
UTF-16 or UTF-8 units), so the analyzer never has to know who is listening.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from typing import Any, Literal

Applicability = Literal["safe", "unsafe"]
Severity = Literal["error", "warning", "info"]


def evolve(obj: Any, **changes: Any) -> Any:
    """``dataclasses.replace`` for these frozen dataclasses (no ``__post_init__``, no ``InitVar``),
    at the cost of one dict copy: a notebook's findings are each copied into cell coordinates."""
    new = object.__new__(type(obj))
    new.__dict__.update(obj.__dict__, **changes)
    return new


@dataclass(frozen=True, order=True)
class Range:
    line: int
    column: int
    end_line: int
    end_column: int


@dataclass(frozen=True)
class Edit:
    """Replace the text in ``range`` with ``content`` (an empty range inserts)."""

    range: Range
    content: str
    cell: int | None = None  # a notebook cell (1-based, among all cells); None for other files


@dataclass(frozen=True)
class Fix:
    applicability: Applicability
    message: str
    edits: tuple[Edit, ...]


@dataclass(frozen=True)
class Related:
    """A secondary location that explains a finding (e.g. a step of a shape chain)."""

    range: Range
    message: str
    cell: int | None = None


@dataclass(frozen=True)
class Confirmation:
    """What the runtime checker saw when it ran the flagged code."""

    status: Literal["confirmed", "not-reproduced", "could-not-run"]
    evidence: str
    detail: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Finding:
    code: str
    name: str
    message: str
    range: Range
    severity: Severity = "error"
    fix: Fix | None = None
    related: tuple[Related, ...] = ()
    deprecated: bool = False
    confirmation: Confirmation | None = None
    # Rule-specific facts other layers reuse (e.g. TL301's inferred input shape
    # for the runtime checker). Must stay JSON-serialisable.
    data: dict[str, Any] = field(default_factory=dict, compare=False)
    # In a notebook: the cell (1-based index among all cells, as the notebook shows
    # them); ``range`` is then within that cell's source.
    cell: int | None = None

    @property
    def line(self) -> int:
        return self.range.line

    @property
    def column(self) -> int:
        return self.range.column

    def with_confirmation(self, confirmation: Confirmation) -> "Finding":
        return replace(self, confirmation=confirmation)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Finding":
        fix = d.get("fix")
        conf = d.get("confirmation")
        return cls(
            code=d["code"],
            name=d["name"],
            message=d["message"],
            range=Range(**d["range"]),
            severity=d.get("severity", "error"),
            fix=None
            if fix is None
            else Fix(
                applicability=fix["applicability"],
                message=fix["message"],
                edits=tuple(Edit(Range(**e["range"]), e["content"], e.get("cell")) for e in fix["edits"]),
            ),
            related=tuple(Related(Range(**r["range"]), r["message"], r.get("cell")) for r in d.get("related", ())),
            deprecated=d.get("deprecated", False),
            confirmation=None if conf is None else Confirmation(**conf),
            data=d.get("data", {}),
            cell=d.get("cell"),
        )


@dataclass
class FileReport:
    """The result of linting one file: findings, or why it could not be linted."""

    path: str
    findings: list[Finding] = field(default_factory=list)
    # One-line problems that are not findings: unreadable file, crashed rule.
    errors: list[str] = field(default_factory=list)
    source: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "findings": [f.to_dict() for f in self.findings],
            "errors": list(self.errors),
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any], source: str | None = None) -> "FileReport":
        return cls(
            path=d["path"],
            findings=[Finding.from_dict(f) for f in d["findings"]],
            errors=list(d["errors"]),
            source=source,
        )
