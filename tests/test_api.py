"""The public API importable from ``torchlint`` itself (docs/api.md)."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

import torchlint
from torchlint import Finding, LintError, Rule

NEXT = "it = iter(loader)\nx = it.next()\n"
TWO = "import torchvision\nm = torchvision.models.resnet18(pretrained=True)\nit = iter(loader)\nx = it.next()\n"


def test_import_is_cheap_and_names_load_on_first_use():
    code = textwrap.dedent(
        """
        import sys
        import torchlint
        assert "libcst" not in sys.modules and "torchlint.engine" not in sys.modules, sorted(sys.modules)
        assert torchlint.lint_source("x = 1\\n") == []
        assert "torchlint.engine" in sys.modules
        print(sorted(torchlint.__all__))
        """
    )
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    assert {"lint_source", "fix_source", "lint_paths", "Rule", "Invalid", "FixSpec", "Finding"} <= set(eval(p.stdout))


def test_every_public_name_resolves_and_is_typed():
    for name in torchlint.__all__:
        assert getattr(torchlint, name) is not None
        assert name in dir(torchlint)
    with pytest.raises(AttributeError):
        torchlint.no_such_name  # noqa: B018
    from importlib.resources import files

    assert files("torchlint").joinpath("py.typed").is_file()


def test_lint_source_selects_like_the_command_line():
    assert [f.code for f in torchlint.lint_source(TWO, "t.py")] == ["TL202", "TL201"]
    assert [f.code for f in torchlint.lint_source(TWO, "t.py", select=["TL201"])] == ["TL201"]
    assert [f.code for f in torchlint.lint_source(TWO, "t.py", select="TL2", ignore="TL202")] == ["TL201"]
    assert [f.code for f in torchlint.lint_source(TWO, "t.py", select="TL1,TL202")] == ["TL202"]
    f = torchlint.lint_source(NEXT, "t.py")[0]
    assert isinstance(f, Finding) and (f.range.line, f.range.column, f.name) == (2, 4, "iterator-next-method")


def test_lint_source_honours_noqa_and_reports_syntax_errors():
    assert torchlint.lint_source(NEXT.replace("it.next()", "it.next()  # noqa: TL201")) == []
    assert [f.code for f in torchlint.lint_source("def f(:\n")] == ["TL001"]


def test_lint_source_reads_markdown_by_its_path():
    doc = "# Tutorial\n\n```python\nit = iter([1, 2])\nx = it.next()\n```\n"
    assert [(f.code, f.range.line) for f in torchlint.lint_source(doc, "tutorial.md")] == [("TL201", 5)]
    assert [f.code for f in torchlint.lint_source(doc, "tutorial.py")] == ["TL001"]


def test_unknown_selector_is_a_value_error():
    with pytest.raises(ValueError, match="unknown rule code or prefix: XX9"):
        torchlint.lint_source(NEXT, select=["XX9"])
    with pytest.raises(ValueError, match="XX9"):
        torchlint.lint_paths(["."], ignore=["XX9"])


def test_fix_source_applies_safe_fixes_unless_told_otherwise():
    loop = "for x, y in loader:\n    loss = loss_fn(model(x), y)\n    loss.backward()\n    optimizer.step()\n"
    text = NEXT + loop
    safe = torchlint.fix_source(text, "t.py")
    assert safe == text.replace("it.next()", "next(it)")  # TL101's fix is unsafe: not applied
    unsafe = torchlint.fix_source(text, "t.py", unsafe=True)
    assert unsafe == safe.replace("loader:\n", "loader:\n    optimizer.zero_grad()\n")
    assert torchlint.fix_source(text, "t.py", select="TL1") == text
    assert torchlint.fix_source("x = 1\n") == "x = 1\n"


def test_a_crashing_rule_raises_lint_error_with_the_other_findings():
    class Crashing(Rule):
        code, name, message = "XX901", "crashing-rule", "boom"

        def visit_Name(self, node):
            raise ZeroDivisionError("boom")

    from torchlint import api

    with pytest.MonkeyPatch.context() as mp:
        from torchlint import engine

        original = engine.LintOptions.active_rule_classes
        mp.setattr(engine.LintOptions, "active_rule_classes", lambda self, s, *a: [*original(self, s, *a), Crashing])
        with pytest.raises(LintError) as info:
            api.lint_source(NEXT, "t.py")
    assert "rule XX901 (crashing-rule) crashed" in info.value.errors[0]
    assert [f.code for f in info.value.findings] == ["TL201"]


def test_lint_paths_follows_the_project_config(tmp_path):
    (tmp_path / "pyproject.toml").write_text(
        '[tool.torchlint]\nignore = ["TL202"]\nper-file-ignores = { "legacy/*" = ["TL201"] }\n'
    )
    (tmp_path / "a.py").write_text(TWO)
    (tmp_path / "legacy").mkdir()
    (tmp_path / "legacy" / "b.py").write_text(TWO)
    (tmp_path / "clean.py").write_text("x = 1\n")
    (tmp_path / ".venv").mkdir()
    (tmp_path / ".venv" / "c.py").write_text(TWO)  # excluded, as by the CLI
    out = torchlint.lint_paths([tmp_path])
    codes = {p.replace(str(tmp_path), "").lstrip("/"): [f.code for f in fs] for p, fs in out.items()}
    assert codes == {"a.py": ["TL201"], "clean.py": [], "legacy/b.py": []}
    out = torchlint.lint_paths([tmp_path / "a.py"], select=["TL202"])
    assert [f.code for fs in out.values() for f in fs] == ["TL202"]


def test_lint_paths_raises_after_linting_what_it_can(tmp_path):
    (tmp_path / "a.py").write_text(NEXT)
    with pytest.raises(LintError) as info:
        torchlint.lint_paths([tmp_path / "a.py", tmp_path / "missing.py"])
    assert len(info.value.errors) == 1 and "missing.py" in info.value.errors[0]
    assert [f.code for fs in info.value.results.values() for f in fs] == ["TL201"]


def test_lint_paths_rejects_a_bad_config(tmp_path):
    (tmp_path / "pyproject.toml").write_text('[tool.torchlint]\nselectt = ["TL2"]\n')
    (tmp_path / "a.py").write_text(NEXT)
    with pytest.raises(ValueError, match="unknown key `selectt`"):
        torchlint.lint_paths([tmp_path])


def test_lint_source_reads_a_notebook_by_its_path():
    import json

    nb = {
        "cells": [
            {"cell_type": "markdown", "metadata": {}, "source": ["# Data"]},
            {"cell_type": "code", "metadata": {}, "execution_count": None, "outputs": [], "source": ["it = iter([1, 2])\n", "x = it.next()\n"]},
        ],
        "metadata": {"language_info": {"name": "python"}},
        "nbformat": 4,
        "nbformat_minor": 5,
    }
    found = torchlint.lint_source(json.dumps(nb, indent=1), "intro.ipynb")
    assert [f.code for f in found] == ["TL201"]
