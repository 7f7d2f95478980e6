import re

from torchlint.docs import README_BEGIN, README_END, builtin_rules, render_rules_markdown, rule_url, update_readme

from conftest import ROOT


def test_rules_reference_is_in_sync():
    """docs/rules.md is generated; regenerate with `python -m torchlint.docs > docs/rules.md`."""
    assert (ROOT / "docs" / "rules.md").read_text(encoding="utf-8") == render_rules_markdown()


def test_every_rule_has_an_anchor_the_server_links_to():
    text = (ROOT / "docs" / "rules.md").read_text(encoding="utf-8")
    for code in builtin_rules():
        anchor = rule_url(code).rsplit("#", 1)[1]
        assert f'<a id="{anchor}"></a>' in text


def test_readme_rules_table_is_in_sync():
    """The README's table lists the built-in rules; regenerate with `python -m torchlint.docs --readme`."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert README_BEGIN in readme and README_END in readme
    assert update_readme(readme) == readme, "README.md's rules table is stale: run `python -m torchlint.docs --readme`"
    for code, rule in builtin_rules().items():
        assert f"| [{code}](docs/rules.md#{code.lower()}) | `{rule.name}` |" in readme


def test_readme_and_manual_link_only_to_files_that_exist():
    # The README is a short tour; the manual is docs/. A moved page must not leave a dead link.
    for doc in [ROOT / "README.md", ROOT / "CONTRIBUTING.md", *sorted((ROOT / "docs").glob("*.md"))]:
        text = doc.read_text(encoding="utf-8")
        text = re.sub(r"```.*?```|`[^`\n]*`", "", text, flags=re.S)  # code is not links
        for target in re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", text):
            if "://" in target:
                continue
            assert (doc.parent / target).exists(), f"{doc.relative_to(ROOT)} links to missing {target}"


def test_readme_keeps_its_two_commands_at_the_top():
    head = (ROOT / "README.md").read_text(encoding="utf-8").split("\n## ", 1)[0]
    assert "pip install . && torchlint check fixtures/" in head
    assert 'pip install -e ".[test]" torch==2.13.0 && python -m pytest' in head


def test_configuration_page_documents_every_config_key():
    from torchlint.config import KNOWN_KEYS

    page = (ROOT / "docs" / "configuration.md").read_text(encoding="utf-8")
    rows = [line for line in page.splitlines() if line.startswith("| `")]
    missing = [key for key in KNOWN_KEYS if not any(f"`{key}`" in row.split(" | ")[0] for row in rows)]
    assert missing == [], f"docs/configuration.md's key table lacks {missing}"


def test_usage_pages_document_every_check_option():
    import argparse

    from torchlint.cli import build_parser

    pages = "".join((ROOT / "docs" / name).read_text(encoding="utf-8") for name in ("usage.md", "runtime.md"))
    (sub,) = [a for a in build_parser(["check"])._actions if isinstance(a, argparse._SubParsersAction)]
    undocumented = [
        action.option_strings
        for action in sub.choices["check"]._actions
        if action.option_strings and "--help" not in action.option_strings
        and not any(re.search(rf"(?<![\w-]){re.escape(o)}(?![\w-])", pages) for o in action.option_strings)
    ]
    assert undocumented == [], f"`torchlint check` options missing from docs/usage.md: {undocumented}"
