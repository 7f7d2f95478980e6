"""Applying fixes to text: the CLI's --fix/--diff and the tests use this; the
language server sends the same edits to the editor instead."""

from __future__ import annotations

from collections.abc import Iterable

from torchlint.diagnostics import Edit, Finding, Fix
from torchlint.sources import python_lines

MAX_PASSES = 10


def _offsets(source: str) -> list[int]:
    starts = [0]
    for line in python_lines(source, keepends=True):
        starts.append(starts[-1] + len(line))
    return starts


def _offset(starts: list[int], line: int, column: int) -> int:
    if line - 1 >= len(starts):
        return starts[-1]
    return starts[line - 1] + column


def fix_is_applicable(fix: Fix | None, unsafe: bool) -> bool:
    return fix is not None and (fix.applicability == "safe" or unsafe)


def apply_fixes(source: str, fixes: Iterable[Fix]) -> tuple[str, int]:
    """Apply every fix whose edits do not overlap an earlier one; return (text, fixes applied).

    Overlapping fixes are left for the next pass, after a re-lint, the way ruff
    does it. Identical insertions (two fixes adding the same import) apply once.
    """
    starts = _offsets(source)
    taken: list[tuple[int, int]] = []
    chosen: list[tuple[int, int, str]] = []
    seen_inserts: set[tuple[int, str]] = set()
    applied = 0
    for fix in fixes:
        spans = []
        for e in fix.edits:
            a = _offset(starts, e.range.line, e.range.column)
            b = _offset(starts, e.range.end_line, e.range.end_column)
            spans.append((a, b, e.content))
        spans = [s for s in spans if not (s[0] == s[1] and (s[0], s[2]) in seen_inserts)]
        if any(_overlaps(a, b, x, y) for a, b, _ in spans for x, y in taken):
            continue
        for a, b, content in spans:
            taken.append((a, b))
            chosen.append((a, b, content))
            if a == b:
                seen_inserts.add((a, content))
        applied += 1
    out = source
    # Right to left so earlier offsets stay valid; stable for same-point inserts.
    for a, b, content in sorted(chosen, key=lambda s: (s[0], s[1]), reverse=True):
        out = out[:a] + content + out[b:]
    return out, applied


def _overlaps(a: int, b: int, x: int, y: int) -> bool:
    if a == b or x == y:
        # An insertion conflicts only with a replacement that strictly contains its point.
        point, (lo, hi) = (a, (x, y)) if a == b else (x, (a, b))
        return lo < point < hi
    return a < y and x < b


def fix_source(source: str, lint, unsafe: bool = False, apply=None) -> tuple[str, int, list[Finding]]:
    """Lint and fix until nothing more applies. ``lint(source)`` returns findings.

    ``apply(source, fixes) -> (text, applied)`` defaults to :func:`apply_fixes`
    (a notebook's fixes are applied to its cells instead).
    Returns (fixed source, number of fixes applied, remaining findings).
    """
    apply = apply or apply_fixes
    total = 0
    findings = lint(source)
    for _ in range(MAX_PASSES):
        fixes = [f.fix for f in findings if fix_is_applicable(f.fix, unsafe)]
        if not fixes:
            break
        new, applied = apply(source, fixes)
        if applied == 0 or new == source:
            break
        source, total = new, total + applied
        findings = lint(source)
    return source, total, findings


__all__ = ["Edit", "apply_fixes", "fix_is_applicable", "fix_source"]
