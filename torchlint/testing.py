"""The rule test kit: what torchlint's own rule tests use, for plugins too.

A rule's ``VALID`` and ``INVALID`` examples are its tests (Fixit's convention).
In a test module::

    from torchlint.testing import RuleTester, rule_tests
    from my_plugin import MyRule

    # Three parametrized tests: every VALID example is silent, every INVALID one
    # is flagged (and fixed as its ``expected_fix`` says), the docs are complete.
    test_valid, test_invalid, test_documentation = rule_tests(MyRule)

    def test_something_specific():
        assert RuleTester(MyRule).lines("import torch\\ntorch.load(p)\\n") == [2]

The rule runs alone and need not be installed: the tester hands the class to
the engine directly. Snippets are dedented first, so they can be indented
triple-quoted strings. Needs pytest only for :func:`rule_tests`.
"""

from __future__ import annotations

import re
import textwrap
from collections.abc import Callable
from typing import TYPE_CHECKING

from torchlint.diagnostics import Finding
from torchlint.rules.base import Invalid, Rule

if TYPE_CHECKING:
    from torchlint.engine import LintOptions

__all__ = [
    "DOC_SECTIONS",
    "RuleTester",
    "check_documentation",
    "check_invalid",
    "check_valid",
    "rule_tests",
]

# ruff's documentation form, in this order.
DOC_SECTIONS = ("## What it does", "## Why is this bad?", "## Example", "## Use instead", "## Fix safety")


class RuleTester:
    """Lint and fix snippets with one rule only (a class, or the code of an installed rule)."""

    def __init__(self, rule: type[Rule] | str, path: str = "t.py") -> None:
        if isinstance(rule, str):
            from torchlint.rules import get_rule

            found = get_rule(rule)
            if found is None:
                raise ValueError(f"no rule {rule!r} is installed")
            rule = found
        self.rule = rule
        self.path = path

    @property
    def options(self) -> "LintOptions":
        from torchlint.engine import LintOptions

        # No registry rules, just this one: it need not be installed, and runs even if deselected.
        return LintOptions(codes=frozenset(), extra_rules=(self.rule,))

    def _lint(self, code: str) -> list[Finding]:
        from torchlint.engine import lint_source

        options = self.options
        if self.rule.documents_only:
            # A rule for documents (TL002) sees the snippet as a document's one code block.
            from dataclasses import replace

            from torchlint.documents import python_facts

            options = replace(options, document=python_facts(code))
        report = lint_source(code, self.path, options)
        assert report.errors == [], report.errors
        return [f for f in report.findings if f.code == self.rule.code]

    def findings(self, code: str) -> list[Finding]:
        """The rule's findings in ``code`` (dedented); fails the test if the rule crashed."""
        return self._lint(textwrap.dedent(code))

    def lines(self, code: str) -> list[int]:
        """The lines of those findings."""
        return [f.range.line for f in self.findings(code)]

    def fixed(self, code: str, unsafe: bool = False) -> str:
        """``code`` (dedented) after applying the rule's fixes to a fixpoint (``unsafe``: those too)."""
        return self._fix(textwrap.dedent(code), unsafe)[0]

    def _fix(self, code: str, unsafe: bool) -> tuple[str, int, list[Finding]]:
        from torchlint.fixes import fix_source

        return fix_source(code, self._lint, unsafe=unsafe)


def check_valid(rule: type[Rule], example: str) -> None:
    """A VALID example: the rule reports nothing (taken verbatim, not dedented)."""
    found = RuleTester(rule, "example.py")._lint(example)
    assert found == [], f"{rule.code} flagged a VALID example:\n{example}\n{found}"


def check_invalid(rule: type[Rule], case: Invalid) -> None:
    """An INVALID example: ``case.count`` findings; with ``expected_fix``, every fix (unsafe included) gives it."""
    import libcst as cst

    tester = RuleTester(rule, "example.py")
    found = tester._lint(case.code)
    assert len(found) == case.count, f"{rule.code}: expected {case.count} finding(s) in:\n{case.code}\ngot {found}"
    if case.expected_fix is not None:
        fixed, applied, remaining = tester._fix(case.code, unsafe=True)
        assert applied >= 1, f"{rule.code}: no fix was applied to:\n{case.code}"
        assert fixed == case.expected_fix, f"{rule.code}: the fix of\n{case.code}\ngave\n{fixed}\nexpected\n{case.expected_fix}"
        cst.parse_module(fixed)  # the fix leaves valid code
        assert remaining == [], f"{rule.code} still fires after its fix: {remaining}"


def check_documentation(rule: type[Rule], code_pattern: str = r"[A-Z]+[0-9]+") -> None:
    """The docstring has ruff's sections in order; code, name and examples are well-formed."""
    doc = rule.documentation()
    positions = [doc.find(s) for s in DOC_SECTIONS]
    assert all(p >= 0 for p in positions), f"{rule.code} docs lack a section: {list(zip(DOC_SECTIONS, positions))}"
    assert positions == sorted(positions), f"{rule.code} docs sections are out of order"
    assert re.fullmatch(code_pattern, rule.code), f"code {rule.code!r} does not match {code_pattern}"
    assert re.fullmatch(r"[a-z][a-z0-9]*(-[a-z0-9]+)*", rule.name), f"name {rule.name!r} is not kebab-case"
    assert rule.VALID and rule.INVALID, f"{rule.code} needs VALID and INVALID examples"
    assert all(isinstance(case, Invalid) for case in rule.INVALID)


def rule_tests(*rules: type[Rule]) -> tuple[Callable[..., None], Callable[..., None], Callable[..., None]]:
    """Three parametrized pytest tests over the rules' examples and docs; assign them to ``test_*`` names."""
    import pytest

    valid = [pytest.param(r, ex, id=f"{r.code}-valid-{i}") for r in rules for i, ex in enumerate(r.VALID)]
    invalid = [pytest.param(r, case, id=f"{r.code}-invalid-{i}") for r in rules for i, case in enumerate(r.INVALID)]

    @pytest.mark.parametrize("rule,example", valid)
    def test_valid(rule: type[Rule], example: str) -> None:
        check_valid(rule, example)

    @pytest.mark.parametrize("rule,case", invalid)
    def test_invalid(rule: type[Rule], case: Invalid) -> None:
        check_invalid(rule, case)

    @pytest.mark.parametrize("rule", [pytest.param(r, id=r.code) for r in rules])
    def test_documentation(rule: type[Rule]) -> None:
        check_documentation(rule)

    return test_valid, test_invalid, test_documentation
