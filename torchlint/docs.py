"""The rules reference (docs/rules.md), rendered from the rules' own docstrings.

Regenerate with ``python -m torchlint.docs > docs/rules.md``; a test keeps the
file in sync. The language server links each diagnostic to its anchor here.
"""

from __future__ import annotations

import re

from torchlint.rules import all_rules

DOCS_URL = "https://github.com/torchlint/torchlint/blob/main/docs/rules.md"


def rule_url(code: str) -> str:
    return f"{DOCS_URL}#{code.lower()}"


def render_rules_markdown() -> str:
    rules = all_rules()
    out = [
        "# torchlint rules",
        "",
        "Generated from the rules' docstrings by `python -m torchlint.docs`; `torchlint rule CODE` prints the same text.",
        "",
        "Rules marked *off* in the Default column run only when selected (`extend-select = [\"TL701\"]`, a prefix, or `ALL`).",
        "",
        "| Code | Name | Fix | Confirmable | Default | Summary |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for code, rule in rules.items():
        summary = rule.documentation().split("## Why", 1)[0].replace("## What it does", "").strip().splitlines()
        text = " ".join(line.strip() for line in summary)
        first = re.split(r"(?<=[a-z)`])\.\s+(?=[A-Z])", text)[0].rstrip(".")
        fix = "yes" if "no automatic fix" not in rule.documentation().lower() else "no"
        out.append(
            f"| [{code}](#{code.lower()}) | `{rule.name}` | {fix} | {'yes' if rule.confirmable else 'no'} "
            f"| {'on' if rule.default_enabled else 'off'} | {first}. |"
        )
    for code, rule in rules.items():
        out += ["", f'<a id="{code.lower()}"></a>', "", f"## {code} `{rule.name}`", ""]
        if not rule.default_enabled:
            out += [f"*Off by default*: enable it with `extend-select = [\"{code}\"]`.", ""]
        # Demote the docstring's sections one level under the rule's heading.
        out += [("#" + line) if line.startswith("## ") else line for line in rule.documentation().splitlines()]
    return "\n".join(out) + "\n"


if __name__ == "__main__":
    print(render_rules_markdown(), end="")
