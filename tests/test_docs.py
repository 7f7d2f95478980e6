from torchlint.docs import render_rules_markdown, rule_url
from torchlint.rules import all_rules

from conftest import ROOT


def test_rules_reference_is_in_sync():
    """docs/rules.md is generated; regenerate with `python -m torchlint.docs > docs/rules.md`."""
    assert (ROOT / "docs" / "rules.md").read_text(encoding="utf-8") == render_rules_markdown()


def test_every_rule_has_an_anchor_the_server_links_to():
    text = (ROOT / "docs" / "rules.md").read_text(encoding="utf-8")
    for code in all_rules():
        anchor = rule_url(code).rsplit("#", 1)[1]
        assert f'<a id="{anchor}"></a>' in text
