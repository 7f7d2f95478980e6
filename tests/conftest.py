import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "fixtures"
sys.path.insert(0, str(ROOT))


class RuleTester:
    """Lint and fix snippets (dedented) with one rule only, for that rule's tests."""

    def __init__(self, code: str) -> None:
        from torchlint.engine import LintOptions

        self.options = LintOptions(codes=frozenset({code}))

    def findings(self, code: str):
        import textwrap

        from torchlint.engine import lint_source

        report = lint_source(textwrap.dedent(code), "t.py", self.options)
        assert report.errors == []
        return report.findings

    def lines(self, code: str) -> list[int]:
        return [f.range.line for f in self.findings(code)]

    def fixed(self, code: str, unsafe: bool = False) -> str:
        import textwrap

        from torchlint.engine import lint_source
        from torchlint.fixes import fix_source

        out, _, _ = fix_source(textwrap.dedent(code), lambda s: lint_source(s, "t.py", self.options).findings, unsafe=unsafe)
        return out
