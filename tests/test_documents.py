"""Notebooks, Markdown and RST: the Document layer, the CLI on documents, and byte-exact notebook fixes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from torchlint.documents import build, cell_sources, fence_language, neutralise
from torchlint.runner import fix_text, lint_text

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "fixtures" / "documents"


def run(*args: str, cwd: Path, stdin: str | None = None) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("FORCE_COLOR", "TORCHLINT_CACHE_DIR", "TORCHLINT_OUTPUT_FORMAT")}
    env["PYTHONPATH"] = str(ROOT)
    return subprocess.run(
        [sys.executable, "-m", "torchlint", *args], cwd=cwd, capture_output=True, text=True, env=env, input=stdin, timeout=120
    )


def notebook(*cells: tuple[str, str], indent: int | None = 1, ensure_ascii: bool = False, newline: bool = True, lists: bool = True) -> str:
    out = []
    for i, (kind, src) in enumerate(cells):
        source: object = src.splitlines(keepends=True) if lists else src
        cell = {"cell_type": kind, "id": f"id{i}", "metadata": {}, "source": source}
        if kind == "code":
            cell = {"cell_type": kind, "execution_count": None, "id": f"id{i}", "metadata": {}, "outputs": [], "source": source}
        out.append(cell)
    nb = {"cells": out, "metadata": {"language_info": {"name": "python"}}, "nbformat": 4, "nbformat_minor": 5}
    return json.dumps(nb, indent=indent, ensure_ascii=ensure_ascii) + ("\n" if newline else "")


BAD_CELLS = (
    ("markdown", "# Títle"),
    ("code", "import torch\nloader = torch.utils.data.DataLoader([1, 2])"),
    ("code", "it = iter(loader)\nbatch = it.next()"),
)


# --- notebooks -----------------------------------------------------------------------------------


def test_cells_are_linted_as_one_module_with_cell_positions():
    raw = notebook(*BAD_CELLS)
    report = lint_text(raw, "nb.ipynb", "notebook", None)
    assert [(f.cell, f.range.line, f.range.column, f.code) for f in report.findings] == [(3, 2, 8, "TL201")]


@pytest.mark.parametrize("style", [dict(indent=1), dict(indent=2), dict(indent=4, ensure_ascii=True), dict(indent=1, newline=False), dict(indent=None), dict(lists=False)])
def test_fix_rewrites_only_the_fixed_cell_byte_for_byte(style):
    cells = BAD_CELLS + (("code", "print('ünïcode ✓')"),)
    raw = notebook(*cells, **style)
    report, applied, error = fix_text(raw, "nb.ipynb", "notebook", None, unsafe=False)
    assert error is None and applied == 1
    expected_cells = list(cells)
    expected_cells[2] = ("code", "it = iter(loader)\nbatch = next(it)")
    assert report.source == notebook(*expected_cells, **style)


@pytest.mark.slow
def test_notebook_without_fixes_is_not_rewritten(tmp_path):
    nb = tmp_path / "clean.ipynb"
    nb.write_text(notebook(("code", "x = 1\n")), encoding="utf-8")
    before = nb.stat().st_mtime_ns
    p = run("check", "--no-cache", "--fix", "clean.ipynb", cwd=tmp_path)
    assert p.returncode == 0, p.stdout + p.stderr
    assert nb.stat().st_mtime_ns == before


@pytest.mark.slow
def test_cli_text_json_github_sarif_carry_the_cell(tmp_path):
    (tmp_path / "train.ipynb").write_text(notebook(*BAD_CELLS), encoding="utf-8")
    text = run("check", "--no-cache", "train.ipynb", cwd=tmp_path)
    assert text.returncode == 1
    assert text.stdout.startswith("train.ipynb:cell 3:2:9: TL201")
    assert "2 | batch = it.next()" in text.stdout  # the cell's own line in the snippet
    data = json.loads(run("check", "--no-cache", "--output-format", "json", "train.ipynb", cwd=tmp_path).stdout)
    assert (data[0]["cell"], data[0]["line"], data[0]["column"]) == (3, 2, 9)
    assert data[0]["fix"]["edits"][0]["cell"] == 3
    gh = run("check", "--no-cache", "--output-format", "github", "train.ipynb", cwd=tmp_path).stdout
    assert "title=torchlint (TL201) cell 3" in gh and "cell 3, line 2, column 9" in gh
    # The annotation's line is the line of the JSON that holds the cell's line.
    line = int(gh.split("line=")[1].split(":")[0].split(",")[0])
    assert "it.next()" in (tmp_path / "train.ipynb").read_text().splitlines()[line - 1]
    sarif = json.loads(run("check", "--no-cache", "--output-format", "sarif", "train.ipynb", cwd=tmp_path).stdout)
    loc = sarif["runs"][0]["results"][0]["locations"][0]
    assert loc["logicalLocations"][0]["name"] == "cell 3" and loc["properties"]["cell"] == 3


@pytest.mark.slow
def test_diff_is_per_cell(tmp_path):
    (tmp_path / "train.ipynb").write_text(notebook(*BAD_CELLS), encoding="utf-8")
    p = run("check", "--no-cache", "--diff", "train.ipynb", cwd=tmp_path)
    assert p.returncode == 1
    assert "--- train.ipynb:cell 3\n+++ train.ipynb:cell 3\n" in p.stdout
    assert "-batch = it.next()" in p.stdout and "+batch = next(it)" in p.stdout


def test_noqa_per_cell_line():
    cells = BAD_CELLS[:2] + (("code", "it = iter(loader)\nbatch = it.next()  # noqa: TL201\nb2 = it.next()"),)
    report = lint_text(notebook(*cells), "nb.ipynb", "notebook", None)
    assert [(f.cell, f.range.line) for f in report.findings] == [(3, 3)]


@pytest.mark.slow
@pytest.mark.parametrize(
    "content, message",
    [
        ("{not json", "not a Jupyter notebook: invalid JSON"),
        ('{"worksheets": [], "nbformat": 3}', "nbformat 3 notebooks are not supported"),
        ('{"nbformat": 4}', 'has no "cells" list'),
        ("[1, 2]", 'has no "cells" list'),
    ],
)
def test_unreadable_notebook_is_one_line_and_exit_2(tmp_path, content, message):
    (tmp_path / "bad.ipynb").write_text(content, encoding="utf-8")
    (tmp_path / "ok.py").write_text("x = 1\n", encoding="utf-8")
    p = run("check", "--no-cache", ".", cwd=tmp_path)
    assert p.returncode == 2
    assert "All checks passed" not in p.stdout + p.stderr
    assert "Traceback" not in p.stderr
    errors = [line for line in p.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and message in errors[0] and "bad.ipynb" in errors[0]


@pytest.mark.slow
def test_a_json_file_named_explicitly_is_not_a_false_pass(tmp_path):
    (tmp_path / "config.json").write_text('{"lr": 0.1}\n', encoding="utf-8")
    p = run("check", "--no-cache", "config.json", cwd=tmp_path)
    assert p.returncode == 2 and "All checks passed" not in p.stdout
    assert "config.json: not a file torchlint reads" in p.stderr
    mapped = run("check", "--no-cache", "--extension", "json:python", "config.json", cwd=tmp_path)
    assert mapped.returncode == 0


@pytest.mark.slow
def test_notebooks_are_found_when_walking_and_cached(tmp_path):
    (tmp_path / "train.ipynb").write_text(notebook(*BAD_CELLS), encoding="utf-8")
    (tmp_path / ".ipynb_checkpoints").mkdir()
    (tmp_path / ".ipynb_checkpoints" / "train-checkpoint.ipynb").write_text(notebook(*BAD_CELLS), encoding="utf-8")
    first = run("check", "--output-format", "json", cwd=tmp_path)
    assert [d["path"] for d in json.loads(first.stdout)] == ["train.ipynb"]
    cache = next((tmp_path / ".torchlint_cache").glob("results-*.json"))
    doc = json.loads(cache.read_text())
    entry = next(v for k, v in doc["entries"].items() if k.endswith("train.ipynb"))
    entry[1][0]["message"] = "from the cache"
    cache.write_text(json.dumps(doc))
    second = run("check", "--output-format", "json", cwd=tmp_path)
    d = json.loads(second.stdout)[0]
    assert d["message"] == "from the cache" and d["cell"] == 3


def test_magics_are_neutralised_and_other_cell_magics_skipped():
    lines, deltas, editable = neutralise(["%matplotlib inline", "files = !ls", "!pip install x", "model?", "??model", "%time y = f(1)", "z = 1"])
    assert lines[0] == "..." and lines[1] == "files = ..." and lines[2] == "..." and lines[3] == "..." and lines[4] == "..."
    assert lines[5] == "y = f(1)" and deltas[5] == len("%time ") and editable[5]
    assert lines[6] == "z = 1"
    assert neutralise(["%%bash", "echo hi"]) is None
    assert neutralise(["%%writefile a.py", "x = 1"]) is None
    body = neutralise(["%%timeit", "x = it.next()"])
    assert body is not None and body[0] == ["", "x = it.next()"]


def test_broken_cell_makes_rules_less_confident_not_more():
    # The helper that clears gradients lives in a cell that does not parse: its loop
    # must not be reported as never clearing them.
    cells = (
        ("code", "import torch\nmodel = torch.nn.Linear(2, 2)\noptimizer = torch.optim.SGD(model.parameters(), lr=0.1)"),
        ("code", "def clear_grads():\n    optimizer.zero_grad(\n"),
        ("code", "for x in [torch.ones(2)]:\n    clear_grads()\n    model(x).sum().backward()\n    optimizer.step()"),
    )
    report = lint_text(notebook(*cells), "nb.ipynb", "notebook", None)
    # (clear_grads too is unknown, not undefined: the broken cell may define it.)
    assert [(f.cell, f.code) for f in report.findings] == [(2, "TL001")]
    # Without the broken cell, the same loop is reported.
    report = lint_text(notebook(cells[0], cells[2]), "nb.ipynb", "notebook", None)
    assert "TL101" in [f.code for f in report.findings]


@pytest.mark.parametrize("kind", ["notebook", "markdown"])
def test_a_broken_cells_error_column_is_the_parsers_whatever_the_file_holds(kind, tmp_path):
    # CPython places a syntax error's column on the line it reads from the named file: a cell's
    # line 1 is not the file's line 1 (here "{" or "```python"), so no file name is given it.
    code = "learning_rate_schedule = "
    if kind == "notebook":
        raw = notebook(("code", code), ("code", "x = 1"))
    else:
        raw = "```python\n" + code + "\n```\n\n```python\nx = 1\n```\n"
    path = tmp_path / ("nb.ipynb" if kind == "notebook" else "t.md")
    path.write_text(raw, encoding="utf-8")
    (error,) = [f for f in lint_text(raw, str(path), kind, None).findings if f.code == "TL001"]
    try:
        compile(code + "\n", "<cell>", "exec")
    except SyntaxError as exc:
        column = exc.offset - 1
    start = 1 if kind == "notebook" else 2
    assert (error.range.line, error.range.column) == (start, column) and column == len(code)


def test_conventional_modules_let_rules_see_unimported_names():
    md = "```python\nnet = models.resnet18(pretrained=True)\n```\n"
    report = lint_text(md, "t.md", "markdown", None)
    assert sorted(f.code for f in report.findings) == ["TL002", "TL202"]
    tl002 = next(f for f in report.findings if f.code == "TL002")
    assert "add `from torchvision import models`" in tl002.message


@pytest.mark.slow
def test_conventional_imports_extend_from_config(tmp_path):
    (tmp_path / "pyproject.toml").write_text('[tool.torchlint]\nconventional-imports = { tv = "torchvision" }\n', encoding="utf-8")
    (tmp_path / "t.md").write_text("```python\nnet = tv.models.resnet18(pretrained=True)\n```\n", encoding="utf-8")
    p = run("check", "--no-cache", "--output-format", "concise", "t.md", cwd=tmp_path)
    assert "TL202" in p.stdout and "add `import torchvision as tv`" in p.stdout


def test_tl002_fix_adds_the_import_to_the_first_cell_and_round_trips(tmp_path):
    cells = (("code", "%matplotlib inline\nimport torch"), ("code", "y = F.relu(torch.ones(2))"))
    raw = notebook(*cells)
    report, applied, error = fix_text(raw, "nb.ipynb", "notebook", None, unsafe=False)
    assert applied == 1 and error is None
    assert cell_sources(report.source) == ["%matplotlib inline\nimport torch\nimport torch.nn.functional as F", "y = F.relu(torch.ones(2))"]
    assert report.findings == []


# --- Markdown and RST --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "info, lang",
    [
        ("python", "python"), ("py", "py"), ("python3", "python3"), ("ipython3", "ipython3"), (" python", "python"),
        ("{.python .input}", "python"), ('python title="train.py"', "python"), ("{code-cell} ipython3", "ipython3"),
        ("{python}", "python"), ("", ""), ("bash", "bash"), ("{r}", "r"),
    ],
)
def test_fence_languages(info, lang):
    assert fence_language(info) == lang


def test_markdown_fix_in_an_indented_block_keeps_its_indentation():
    md = "1. Step one:\n\n   ```python\n   import torch\n   y = F.relu(torch.ones(1))\n   ```\n"
    report, applied, _ = fix_text(md, "t.md", "markdown", None, unsafe=False)
    assert applied == 1
    assert report.source == "1. Step one:\n\n   ```python\n   import torch\n   import torch.nn.functional as F\n   y = F.relu(torch.ones(1))\n   ```\n"


def test_unlabelled_fence_that_opens_with_an_import_but_does_not_parse_is_code():
    md = "```\nimport torch\nx = torch.ones(\n```\n"
    doc = build(md, "t.md", "markdown")
    # Code: its TL001 is reported, and its import (the statement that parses) is kept.
    assert [c.state for c in doc.chunks] == ["code"] and doc.chunks[0].error is not None
    assert doc.chunks[0].lines[0] == "import torch"
    assert build("```\nSome prose (with a paren\n```\n", "t.md", "markdown").chunks == []


def test_rst_is_linted_when_named():
    report = lint_text((FIXTURES / "code_blocks.rst").read_text(), "code_blocks.rst", "rst", None)
    assert [f.range.line for f in report.findings] == [9, 14, 18, 26]


def test_d2l_tab_cells_and_load_ext():
    """d2lbook's `%%tab pytorch` blocks are Python; other frameworks' tabs are skipped; `%load_ext` may define names."""
    md = (
        "```{.python .input}\n%load_ext d2lbook.tab\ntab.interact_select(['mxnet', 'pytorch'])\n```\n\n"
        "```{.python .input}\n%%tab mxnet\nnet = gluon.model_zoo.vision.resnet18_v2(pretrained=True)\n```\n\n"
        "```{.python .input}\n%%tab pytorch\nimport torchvision\nnet = torchvision.models.resnet18(pretrained=True)\n```\n"
    )
    report = lint_text(md, "d2l.md", "markdown", None)
    assert [(f.range.line, f.code) for f in report.findings] == [(14, "TL202")]


def test_unlabelled_config_line_is_not_an_undefined_name():
    md = "```\nc.NotebookApp.contents_manager_class = 'x'\n```\n"
    assert lint_text(md, "t.md", "markdown", None).findings == []


# --- confirming documents (the runtime checker, real torch in the sandbox) ------------------------


@pytest.mark.torch
@pytest.mark.slow
def test_confirm_runs_a_markdown_tutorial_and_a_notebook(tmp_path):
    pytest.importorskip("torch")
    md = (
        "# Peek at a batch\n\n```python\nimport torch\nloader = torch.utils.data.DataLoader(torch.arange(8), batch_size=2)\n```\n\n"
        "Then:\n\n```python\nit = iter(loader)\nbatch = it.next()\n```\n"
    )
    (tmp_path / "t.md").write_text(md, encoding="utf-8")
    cells = (("markdown", "# Peek"), ("code", "%matplotlib inline\nimport torch\nloader = torch.utils.data.DataLoader(torch.arange(8), batch_size=2)"),
             ("code", "it = iter(loader)\nbatch = it.next()"))
    (tmp_path / "nb.ipynb").write_text(notebook(*cells), encoding="utf-8")
    p = run("check", "--no-cache", "--confirm", "--select", "TL201", "--output-format", "json", "t.md", "nb.ipynb", cwd=tmp_path)
    data = {d["path"]: d for d in json.loads(p.stdout)}
    for path, where in (("t.md", (None, 12)), ("nb.ipynb", (3, 2))):
        d = data[path]
        assert (d.get("cell"), d["line"]) == where
        assert d["confirmation"]["status"] == "confirmed", d["confirmation"]
        assert "has no attribute 'next'" in d["confirmation"]["evidence"]


def test_an_exercise_placeholder_does_not_hide_the_rest_of_its_cell():
    cells = (("code", "import torch\nloader = torch.utils.data.DataLoader([1])"),
             ("code", "dataiter = iter(loader)\nimages = dataiter.next()\n\n# TODO: compute the probabilities\nps = \n\nprint(ps)"))
    report = lint_text(notebook(*cells), "ex.ipynb", "notebook", None)
    assert [(f.cell, f.range.line, f.code) for f in report.findings] == [(2, 2, "TL201"), (2, 5, "TL001")]
