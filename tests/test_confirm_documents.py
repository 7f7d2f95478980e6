"""Confirming the findings of notebooks and tutorials by running them (issue #16).

The quick tests check the pieces without a sandbox: the ``FILE:cell N:LINE``
target, the program a document becomes (imports TL002 would add, line numbers
kept), the other rules' findings that run as fixed on the way (a tutorial's
``dataiter.next()`` before an unmoved batch), and how verdicts are worded. The
slow ones run notebooks cell by cell in the real sandbox, on the CPU and on the
simulated CUDA device.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from torchlint.diagnostics import Confirmation
from torchlint.runner import lint_text
from torchlint.runtime.commands import _split_target, confirm_command
from torchlint.runtime.confirm import Claim, prepare, with_passes
from torchlint.runtime.confirmers import Options
from torchlint.runtime.documents import _explained, document_language, document_program
from torchlint.runtime.extract import render

ROOT = Path(__file__).resolve().parent.parent


def notebook(*cells: tuple[str, str]) -> str:
    out = []
    for i, (kind, src) in enumerate(cells):
        cell = {"cell_type": kind, "id": f"c{i}", "metadata": {}, "source": src.splitlines(keepends=True)}
        if kind == "code":
            cell.update(execution_count=None, outputs=[])
        out.append(cell)
    nb = {"cells": out, "metadata": {"language_info": {"name": "python"}}, "nbformat": 4, "nbformat_minor": 5}
    return json.dumps(nb, indent=1) + "\n"


# A notebook on the CPU: a shape mismatch in cell 2 (reached through cell 4's call, after cell 3's
# `.next()`), the `.next()` itself in cell 3.
CPU_CELLS = (
    ("markdown", "# Shapes"),
    ("code", "%matplotlib inline\nimport torch\nimport torch.nn as nn\nfrom torch.utils.data import DataLoader, TensorDataset"),
    ("code", "class Net(nn.Module):\n    def __init__(self):\n        super().__init__()\n        self.conv = nn.Conv2d(1, 4, 3)\n"
             "        self.fc = nn.Linear(4 * 20 * 20, 10)\n\n    def forward(self, x):\n        x = self.conv(x)\n"
             "        x = x.view(-1, 4 * 20 * 20)\n        return self.fc(x)"),
    ("code", "loader = DataLoader(TensorDataset(torch.randn(16, 1, 28, 28), torch.randint(0, 10, (16,))), batch_size=4)\n"
             "dataiter = iter(loader)\nimages, labels = dataiter.next()"),
    ("code", "net = Net()\nout = net(torch.randn(4, 1, 28, 28))"),
)  # fmt: skip

# A notebook for a GPU (simulated on the CPU): the batch of cell 4 never moved to the model's device,
# after cell 3's `.next()` and a shell escape; an `imshow` helper and a `make_loader` it never defines.
GPU_CELLS = (
    ("markdown", "# Regression on the GPU"),
    ("code", "import torch\nimport torch.nn as nn\nfrom torch.utils.data import DataLoader, TensorDataset"),
    ("code", "dataset = TensorDataset(torch.randn(64, 13), torch.randn(64, 1))\nloader = DataLoader(dataset, batch_size=8)\n"
             "model = nn.Sequential(nn.Linear(13, 32), nn.ReLU(), nn.Linear(32, 1)).cuda()"),
    ("code", "!nvidia-smi\ndataiter = iter(loader)\nfeatures, prices = dataiter.next()"),
    ("code", "predicted = model(features)\nloss = F.mse_loss(predicted, prices.cuda())"),
    ("code", "imshow(predicted)"),
    ("code", "batch = iter(make_loader()).next()"),
)  # fmt: skip

TUTORIAL = """# Evaluate

```python
import torch
import torch.nn as nn
from torch.utils.data import DataLoader, TensorDataset
device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
net = nn.Sequential(nn.Flatten(), nn.Linear(12, 3)).to(device)
testloader = DataLoader(TensorDataset(torch.randn(8, 3, 2, 2), torch.randint(0, 3, (8,))), batch_size=4)
```

Show a few images (the `imshow` helper is on the previous page):

```python
dataiter = iter(testloader)
images, labels = dataiter.next()
imshow(torchvision.utils.make_grid(images))
outputs = net(images)
```
"""


# --- quick: no sandbox ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("target", "expected"),
    [
        ("train.py", ("train.py", None, None)),
        ("train.py:29", ("train.py", None, 29)),
        ("nb.ipynb:cell 3", ("nb.ipynb", 3, None)),
        ("nb.ipynb:cell 3:2", ("nb.ipynb", 3, 2)),
        ("nb.ipynb:cell3:2", ("nb.ipynb", 3, 2)),
        ("dir:x/t.md:12", ("dir:x/t.md", None, 12)),
    ],
)
def test_targets(target, expected):
    assert _split_target(target) == expected


def test_a_cell_of_a_file_that_is_no_notebook_is_an_error(tmp_path, capsys, monkeypatch):
    (tmp_path / "t.md").write_text(TUTORIAL, encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    assert confirm_command(["t.md:cell 2:3"]) == 2
    assert "`:cell N` is for notebooks (.ipynb); t.md is read as markdown" in capsys.readouterr().err


def test_a_target_without_a_confirmable_finding_runs_nothing(tmp_path, capsys, monkeypatch):
    (tmp_path / "nb.ipynb").write_text(notebook(*CPU_CELLS), encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    assert confirm_command(["nb.ipynb:cell 4:1"]) == 0
    assert capsys.readouterr().err == "nb.ipynb:cell 4:1: no finding that can be confirmed by running\n"


def test_document_languages():
    assert [document_language(p) for p in ("a.ipynb", "A.IPYNB", "b.rst", "c.md", "d.qmd", "e.txt")] == [
        "notebook", "notebook", "rst", "markdown", "markdown", "markdown",
    ]  # fmt: skip


def test_a_notebook_program_supplies_the_imports_tl002_would_add_on_its_first_line():
    raw = notebook(*GPU_CELLS)
    doc, source, pairs, undefined = document_program(raw, "nb.ipynb", "notebook", frozenset({"TL401"}))
    lines = source.splitlines()
    assert lines[0] == "import torch.nn.functional as F; import torch"
    assert lines[1:3] == ["import torch.nn as nn", "from torch.utils.data import DataLoader, TensorDataset"]
    assert sorted(undefined) == ["F", "imshow", "make_loader"]
    assert (undefined["imshow"].cell, undefined["imshow"].range.line) == (6, 1)
    # The findings of TL401 and of the rules that run as fixed on the way (TL201), as shown and as run.
    assert sorted((m.code, m.cell, m.range.line) for _, m in pairs) == [("TL201", 4, 3), ("TL201", 7, 1), ("TL401", 5, 1)]


def test_a_markdown_program_puts_the_imports_on_a_blank_line_and_keeps_line_numbers():
    md = "Intro\n\n```python\nimport torch\nx = F.relu(torch.ones(2))\n```\n"
    _, source, _, undefined = document_program(md, "t.md", "markdown", frozenset({"TL401"}))
    assert source.splitlines()[:5] == ["", "", "import torch.nn.functional as F", "import torch", "x = F.relu(torch.ones(2))"]
    assert list(undefined) == ["F"]


def test_an_earlier_next_runs_as_fixed_on_the_way_to_an_unmoved_batch():
    """The seeds' case: TL401's program would stop at the TL201 `.next()` two lines above it."""
    _, source, pairs, _ = document_program(TUTORIAL, "t.md", "markdown", frozenset({"TL401"}))
    (tl401,) = [f for f, m in pairs if f.code == "TL401"]
    assert tl401.range.line == 18
    claim = Claim.from_finding(tl401)
    options = with_passes(Options(), claim, [Claim.from_finding(f) for f, _ in pairs])
    assert [p[4] for p in options.passes] == ["next"]
    job = prepare(source, "t.md", claim, options)
    assert not isinstance(job, Confirmation), job
    program = render(source, job.plan)
    assert "images, labels = _torchlint.next_(dataiter)" in program
    assert "imshow" not in program  # the flagged code does not need it: never run
    assert "the other flagged `.next()` call on line 16 ran as `next(...)` (TL201's fix)" in job.plan.notes
    # A .py file gets the same: its other rules' findings run as fixed on the way.
    py = "\n".join(line for line in TUTORIAL.splitlines() if line and not line.startswith(("#", "`", "Show")))
    findings = lint_text(py + "\n", "t.py", "python", None).findings
    (tl401,) = [f for f in findings if f.code == "TL401"]
    options = with_passes(Options(), Claim.from_finding(tl401), [Claim.from_finding(f) for f in findings])
    job = prepare(py + "\n", "t.py", Claim.from_finding(tl401), options)
    assert "images, labels = _torchlint.next_(dataiter)" in render(py + "\n", job.plan)


def test_a_name_the_document_never_defines_is_said_plainly():
    _, _, _, undefined = document_program(notebook(*GPU_CELLS), "nb.ipynb", "notebook", frozenset({"TL201"}))
    verdict = Confirmation("could-not-run", "failed before reaching cell 7, line 1: NameError: name 'make_loader' is not defined")
    said = _explained(verdict, undefined, "cell 7, line 1")
    assert said.status == "could-not-run"
    assert said.evidence == "`make_loader` is never defined in this document (TL002 at cell 7, line 1), so this line cannot run"
    assert said.detail["undefined_name"] == "make_loader"
    later = lint_text("```python\nprint(model)\n```\n\n```python\nmodel = 1\n```\n", "t.md", "markdown", None).findings
    assert "defined later" in later[0].message
    _, _, _, undefined = document_program("```python\nimport torch\nx = torch.ones(n)\n```\n\n```python\nn = 2\n```\n", "t.md", "markdown", frozenset({"TL201"}))
    verdict = Confirmation("could-not-run", "failed before reaching line 3: NameError: name 'n' is not defined (line 3)")
    assert _explained(verdict, undefined, "line 9").evidence == (
        "`n` is used before this document defines it (TL002 at line 3; it is defined later, in block 2, line 7), "
        "so line 9 cannot run"
    )
    other = Confirmation("could-not-run", "failed before reaching line 3: NameError: name 'zz' is not defined")
    assert _explained(other, undefined, "line 3") is other


def test_notebook_messages_name_cells_not_lines_of_the_joined_text():
    report = lint_text(notebook(*CPU_CELLS), "nb.ipynb", "notebook", None)
    (tl301,) = [f for f in report.findings if f.code == "TL301"]
    assert tl301.cell == 3 and tl301.message.endswith("for the input torch.randn(4, 1, 28, 28) (cell 5, line 2)")


# --- slow: the real sandbox --------------------------------------------------------------------------


torch_slow = [pytest.mark.torch, pytest.mark.slow]


@pytest.fixture(scope="module")
def worker():
    pytest.importorskip("torch")
    from torchlint.runtime.confirm import start_worker

    w = start_worker()
    yield w
    w.close()


@pytest.mark.torch
@pytest.mark.slow
def test_a_notebook_on_the_cpu_is_confirmed_cell_by_cell(worker):
    from torchlint.runtime.documents import confirm_document

    raw = notebook(*CPU_CELLS)
    report = lint_text(raw, "nb.ipynb", "notebook", None)
    seen = []
    done = confirm_document(raw, "nb.ipynb", report.findings, worker=worker, progress=lambda n, of, f: seen.append((n, of, f.cell)))
    verdicts = {(f.code, f.cell, f.range.line): f.confirmation for f in done}
    shape = verdicts[("TL301", 3, 9)]
    assert shape.status == "confirmed", shape
    assert shape.evidence == "RuntimeError: shape '[-1, 1600]' is invalid for input of size 10816"
    assert shape.detail["device"] == "cpu"
    nxt = verdicts[("TL201", 4, 3)]
    assert nxt.status == "confirmed", nxt
    assert "object has no attribute 'next'" in nxt.evidence
    assert seen == [(0, 2, 3), (1, 2, 4), (2, 2, 4)]


@pytest.mark.torch
@pytest.mark.slow
def test_a_gpu_notebook_is_confirmed_cell_by_cell_on_the_simulated_device(worker):
    from torchlint.runtime.documents import confirm_document

    raw = notebook(*GPU_CELLS)
    report = lint_text(raw, "nb.ipynb", "notebook", None)
    done = confirm_document(raw, "nb.ipynb", report.findings, worker=worker)
    verdicts = {(f.code, f.cell, f.range.line): f.confirmation for f in done if f.confirmation is not None}
    assert set(verdicts) == {("TL201", 4, 3), ("TL401", 5, 1), ("TL201", 7, 1)}
    moved = verdicts[("TL401", 5, 1)]
    assert moved.status == "confirmed", moved
    assert "Expected all tensors to be on the same device" in moved.evidence
    assert moved.detail["device"] == "cuda (simulated on the CPU)"
    assert any("ran as `next(...)`" in n for n in moved.detail["notes"])
    assert verdicts[("TL201", 4, 3)].status == "confirmed"
    undefined = verdicts[("TL201", 7, 1)]
    assert (undefined.status, undefined.evidence) == (
        "could-not-run", "`make_loader` is never defined in this document (TL002 at cell 7, line 1), so this line cannot run",
    )  # fmt: skip


@pytest.mark.torch
@pytest.mark.slow
def test_confirm_command_takes_a_cell_and_a_line(tmp_path):
    pytest.importorskip("torch")
    (tmp_path / "nb.ipynb").write_text(notebook(*GPU_CELLS), encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if k not in ("FORCE_COLOR", "TORCHLINT_CACHE_DIR", "TORCHLINT_OUTPUT_FORMAT")}
    env["PYTHONPATH"] = str(ROOT)
    p = subprocess.run(
        [sys.executable, "-m", "torchlint", "confirm", "nb.ipynb:cell 5:1", "--output-format", "json"],
        cwd=tmp_path, capture_output=True, text=True, env=env, timeout=300,
    )  # fmt: skip
    assert p.returncode == 1, p.stderr
    (d,) = json.loads(p.stdout)
    assert (d["code"], d["cell"], d["line"]) == ("TL401", 5, 1)
    assert d["confirmation"]["status"] == "confirmed"
    assert "same device" in d["confirmation"]["evidence"]


HUB = """# Fine-tune a pretrained model

```python
import torch
import torch.nn as nn
model = nn.Sequential(nn.Flatten(), nn.Linear(12, 3))
state = torch.hub.load_state_dict_from_url("https://download.pytorch.org/models/tiny-0123.pth")
model.load_state_dict(state)
model = model.cuda()
loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(torch.randn(8, 3, 2, 2), torch.arange(8)), batch_size=4)
for x, y in loader:
    out = model(x)
```
"""


@pytest.mark.torch
@pytest.mark.slow
def test_a_weights_download_on_the_way_is_random_weights_not_a_download_error(worker):
    """A tutorial's pretrained weights (a state dict from a URL, as torchvision's `weights=` fetches them)
    are random weights in the sandbox: the program goes on to the flagged line, no download is tried."""
    from torchlint.runtime.documents import confirm_document

    report = lint_text(HUB, "hub.md", "markdown", None)
    (done,) = [f for f in confirm_document(HUB, "hub.md", report.findings, worker=worker) if f.confirmation]
    assert (done.code, done.range.line, done.confirmation.status) == ("TL401", 12, "confirmed"), done.confirmation
    notes = done.confirmation.detail["notes"]
    assert "pretrained weights: random instead of https://download.pytorch.org/models/tiny-0123.pth (no network in the sandbox)" in notes
    assert "side_effects" not in done.confirmation.detail


def test_a_mistake_flagged_earlier_in_the_same_statement_is_named_as_what_fails_first():
    """`models.Sequential(transforms.TensorOfX(...))` (a seed article): the outer name fails before the inner
    one is looked up; the inner finding's verdict says so instead of "failed for another reason"."""
    from types import SimpleNamespace

    from torchlint.runtime.confirmers import api

    source = "import torch.nn as nn\nmodel = nn.Sequentail(\n    nn.Linaer(2, 3))\n"
    findings = [f for f in lint_text(source, "t.py", "python", None).findings if f.code == "TL501"]
    assert [f.range.line for f in findings] == [2, 3]
    outer, inner = (Claim.from_finding(f) for f in findings)
    job = prepare(source, "t.py", inner, Options(), [outer])
    assert job.config["earlier"] == [(2, api.expected(outer)[1])]
    exc = {"type": "AttributeError", "message": "module 'torch.nn' has no attribute 'Sequentail'", "line": 2, "user_lines": [2]}
    result = SimpleNamespace(status="ok", payload={"reached": True, "target_exception": exc, "warnings": []})
    verdict = api.interpret(job, result)
    assert (verdict.status, verdict.evidence) == (
        "could-not-run",
        "line 3 is not reached: the mistake flagged on line 2 fails first (AttributeError: module 'torch.nn' has no attribute 'Sequentail')",
    )
    assert api.interpret(prepare(source, "t.py", outer, Options(), [inner]), result).status == "confirmed"


@pytest.mark.torch
@pytest.mark.slow
def test_rst_and_doctest_blocks_are_confirmed_like_markdown(worker):
    from torchlint.runtime.documents import confirm_document

    rst = (
        "Peek\n====\n\n.. code-block:: python\n\n    import torch\n"
        "    loader = torch.utils.data.DataLoader(torch.arange(8), batch_size=2)\n\n"
        ".. doctest::\n\n    >>> it = iter(loader)\n    >>> batch = it.next()\n"
    )
    report = lint_text(rst, "peek.rst", "rst", None)
    (done,) = [f for f in confirm_document(rst, "peek.rst", report.findings, worker=worker) if f.confirmation]
    assert (done.code, done.range.line, done.confirmation.status) == ("TL201", 12, "confirmed"), done.confirmation
    assert "has no attribute 'next'" in done.confirmation.evidence
