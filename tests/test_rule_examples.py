"""Tests generated from every built-in rule's VALID/INVALID examples (Fixit's convention).

The runner is torchlint.testing, the same kit plugins use for their rules.
"""

from __future__ import annotations

import re

import pytest

from torchlint.docs import builtin_rules
from torchlint.testing import rule_tests

RULES = {code: rule for code, rule in builtin_rules().items() if code != "TL001"}

test_valid_examples_are_silent, test_invalid_examples_are_flagged_and_fixed, test_rule_has_complete_documentation = (
    rule_tests(*RULES.values())
)


@pytest.mark.parametrize("code", list(RULES))
def test_builtin_rules_keep_the_house_standard(code):
    # Stricter than what plugins are held to: TL codes, and enough examples to pin down the silences.
    rule = RULES[code]
    assert re.fullmatch(r"TL\d{3}", rule.code)
    # Kebab-case; one word where TorchFix's name is one (``log1p``, ``expm1``).
    assert re.fullmatch(r"[a-z][a-z0-9]*(-[a-z0-9]+)*", rule.name)
    assert len(rule.VALID) >= 4 and len(rule.INVALID) >= 3
