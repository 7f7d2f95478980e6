"""Every fixture is linted with the default rules (plus its own directory's rule, which may be
off by default) and must produce exactly its ``# expect:`` findings."""

from __future__ import annotations

import re
from pathlib import Path

import libcst as cst
import pytest

from torchlint.engine import LintOptions, lint_source
from torchlint.fixes import fix_source
from torchlint.rules import all_rules, default_codes

from conftest import FIXTURES

EXPECT = re.compile(r"#\s*expect:\s*(?P<codes>TL\d{3}(?:\s*,\s*TL\d{3})*)")
FILES = sorted(p for p in FIXTURES.rglob("*.py"))


def expected_findings(source: str) -> list[tuple[int, str]]:
    out = []
    for lineno, line in enumerate(source.splitlines(), start=1):
        m = EXPECT.search(line)
        if m:
            out.extend((lineno, c.strip()) for c in m.group("codes").split(","))
    return sorted(out)


def _id(p: Path) -> str:
    return str(p.relative_to(FIXTURES))


def _options(path: Path) -> LintOptions:
    """The default set, plus the rule the fixture's directory (``tlNNN_*``) is about."""
    own = path.relative_to(FIXTURES).parts[0].split("_", 1)[0].upper()
    return LintOptions(codes=default_codes() | ({own} if own in all_rules() else set()))


@pytest.mark.parametrize("path", FILES, ids=_id)
def test_fixture_findings_match_expectations(path: Path):
    source = path.read_text(encoding="utf-8")
    report = lint_source(source, str(path), _options(path))
    assert report.errors == []
    actual = sorted((f.range.line, f.code) for f in report.findings)
    assert actual == expected_findings(source)
    if path.name.startswith("clean_"):
        assert actual == [], "clean fixtures must not expect findings"


@pytest.mark.parametrize("path", [p for p in FILES if p.name.startswith("flagged_")], ids=_id)
def test_fixture_fixes_apply_parse_and_are_idempotent(path: Path):
    source = path.read_text(encoding="utf-8")
    lint = lambda s: lint_source(s, str(path), _options(path)).findings  # noqa: E731
    before = lint(source)
    fixable = {f.code for f in before if f.fix is not None}
    fixed, applied, remaining = fix_source(source, lint, unsafe=True)
    if not fixable:
        assert applied == 0
        return
    assert applied >= 1
    cst.parse_module(fixed)
    compile(fixed, str(path), "exec")
    # Whatever had a fix is gone, and fixing again changes nothing.
    assert [f for f in remaining if f.fix is not None] == []
    again, applied_again, _ = fix_source(fixed, lint, unsafe=True)
    assert again == fixed and applied_again == 0
    for code in fixable:
        still = [f for f in remaining if f.code == code]
        assert len(still) < len([f for f in before if f.code == code])


def test_fixture_layout():
    """Each rule directory has at least 6 flagged and 6 clean fixtures (documents for document rules)."""
    kinds = (".py", ".ipynb", ".md", ".rst")
    for d in sorted(p for p in FIXTURES.iterdir() if p.is_dir() and re.match(r"tl\d{3}_", p.name)):
        flagged = [p for p in d.glob("flagged_*") if p.suffix in kinds]
        clean = [p for p in d.glob("clean_*") if p.suffix in kinds]
        assert len(flagged) >= 6 and len(clean) >= 6, (d.name, len(flagged), len(clean))


# --- documents: notebooks, Markdown, RST (``# expect:`` on the code's own line; a cell's line in a notebook) ---

DOCUMENTS = {".ipynb": "notebook", ".md": "markdown", ".rst": "rst"}
DOC_FILES = sorted(p for p in FIXTURES.rglob("*") if p.suffix in DOCUMENTS)


def _expected_in_document(path: Path) -> list[tuple[int | None, int, str]]:
    from torchlint.documents import cell_sources

    text = path.read_text(encoding="utf-8")
    if path.suffix != ".ipynb":
        return [(None, line, code) for line, code in expected_findings(text)]
    sources = cell_sources(text)
    assert sources is not None
    return sorted((i, line, code) for i, src in enumerate(sources, start=1) for line, code in expected_findings(src))


@pytest.mark.parametrize("path", DOC_FILES, ids=_id)
def test_document_fixture_findings_match_expectations(path: Path):
    from torchlint.runner import lint_text

    report = lint_text(path.read_text(encoding="utf-8"), str(path), DOCUMENTS[path.suffix], None)
    assert report.errors == []
    actual = sorted((f.cell, f.range.line, f.code) for f in report.findings if f.code != "TL001")
    assert actual == _expected_in_document(path)
