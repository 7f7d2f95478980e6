"""Tests generated from every rule's VALID/INVALID examples (Fixit's convention)."""

from __future__ import annotations

import re

import libcst as cst
import pytest

from torchlint.engine import LintOptions, lint_source
from torchlint.fixes import fix_source
from torchlint.rules import all_rules

RULES = {code: rule for code, rule in all_rules().items() if code != "TL001"}
SECTIONS = ["## What it does", "## Why is this bad?", "## Example", "## Use instead", "## Fix safety"]


def _lint(code: str, rule_code: str):
    return lint_source(code, "example.py", LintOptions(codes=frozenset({rule_code})))


VALID_CASES = [pytest.param(code, rule, id=f"{code}-valid-{i}") for code, rule in RULES.items() for i, rule in enumerate(rule.VALID)]
INVALID_CASES = [pytest.param(code, case, id=f"{code}-invalid-{i}") for code, rule in RULES.items() for i, case in enumerate(rule.INVALID)]


@pytest.mark.parametrize("code,example", VALID_CASES)
def test_valid_examples_are_silent(code, example):
    report = _lint(example, code)
    assert report.errors == []
    assert [f for f in report.findings if f.code == code] == []


@pytest.mark.parametrize("code,case", INVALID_CASES)
def test_invalid_examples_are_flagged_and_fixed(code, case):
    report = _lint(case.code, code)
    assert report.errors == []
    found = [f for f in report.findings if f.code == code]
    assert len(found) == case.count, found
    if case.expected_fix is not None:
        fixed, applied, remaining = fix_source(case.code, lambda s: _lint(s, code).findings, unsafe=True)
        assert applied >= 1
        assert fixed == case.expected_fix
        cst.parse_module(fixed)
        assert [f for f in remaining if f.code == code] == []


@pytest.mark.parametrize("code", list(RULES))
def test_rule_has_complete_documentation(code):
    rule = RULES[code]
    doc = rule.documentation()
    positions = [doc.find(s) for s in SECTIONS]
    assert all(p >= 0 for p in positions), f"{code} docs lack a section: {SECTIONS} vs {positions}"
    assert positions == sorted(positions)
    assert re.fullmatch(r"TL\d{3}", rule.code)
    # Kebab-case; one word where TorchFix's name is one (``log1p``, ``expm1``).
    assert re.fullmatch(r"[a-z][a-z0-9]*(-[a-z0-9]+)*", rule.name)
    assert len(rule.VALID) >= 4 and len(rule.INVALID) >= 3
