"""Runtime confirmation of TL107-TL110 and TL403 (issue #13) with real torch in the sandbox.

Positives: every flagged fixture of the rule is confirmed. Negatives: the same
claim put on the correct version of the code is not.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from conftest import FIXTURES
from torchlint.engine import LintOptions, lint_source
from torchlint.runtime.confirm import Claim, confirm_claim, confirm_findings, start_worker

torch = pytest.importorskip("torch")
pytestmark = [pytest.mark.torch, pytest.mark.slow]

RULES = {"TL107": "tl107_*", "TL108": "tl108_*", "TL109": "tl109_*", "TL110": "tl110_*", "TL403": "tl403_*"}


@pytest.fixture(scope="module")
def worker():
    w = start_worker()
    yield w
    w.close()


POSITIVE = [(code, p) for code, pattern in RULES.items() for d in sorted(FIXTURES.glob(pattern)) for p in sorted(d.glob("flagged_*.py"))]


@pytest.mark.parametrize(("code", "path"), POSITIVE, ids=[f"{c}-{p.name}" for c, p in POSITIVE])
def test_flagged_fixtures_are_confirmed(worker, code: str, path: Path):
    source = path.read_text()
    report = lint_source(source, str(path), LintOptions(codes=frozenset({code})))
    mine = [f for f in report.findings if f.code == code]
    assert mine
    for f in confirm_findings(source, str(path), mine, worker=worker, context=report.findings):
        c = f.confirmation
        assert c is not None and c.status == "confirmed", f"line {f.line}: {c.status}: {c.evidence}"


def _claim(source: str, code: str, needle: str, data: dict) -> Claim:
    line = next(i for i, text in enumerate(source.splitlines(), 1) if needle in text)
    column = source.splitlines()[line - 1].index(needle)
    return Claim(code, line, column, line, column + len(needle), data)


def test_tl107_called_module_runs_its_hooks(worker):
    source = "import torch\nimport torch.nn as nn\nlayer = nn.Linear(3, 2)\ny = layer(torch.randn(1, 3))\n"
    c = confirm_claim(source, "prog.py", _claim(source, "TL107", "layer(torch", {"receiver_span": [4, 4, 4, 9]}), worker=worker)
    assert c.status == "not-reproduced", f"{c.status}: {c.evidence}"
    assert "1 pre, 1 post" in c.evidence


@pytest.mark.parametrize(
    ("source", "needle", "form"),
    [
        ("import torch\nimport torch.nn.functional as F\np = F.softmax(torch.randn(2, 3), dim=1)\n", "F.softmax", "functional"),
        ("import torch\nimport torch.nn as nn\nsm = nn.Softmax(dim=1)\n", "nn.Softmax(dim=1)", "module"),
    ],
)
def test_tl110_explicit_dim_does_not_warn(worker, source, needle, form):
    c = confirm_claim(source, "prog.py", _claim(source, "TL110", needle, {"form": form}), worker=worker)
    assert c.status == "not-reproduced", f"{c.status}: {c.evidence}"


def test_tl108_module_initialized_first_works(worker):
    source = (
        "import torch.nn as nn\n\nclass Net(nn.Module):\n    def __init__(self):\n        super().__init__()\n"
        "        self.fc = nn.Linear(4, 2)\n\nnet = Net()\n"
    )
    before = confirm_claim(source, "prog.py", _claim(source, "TL108", "self.fc = nn.Linear", {"kind": "before"}), worker=worker)
    assert before.status == "not-reproduced", f"{before.status}: {before.evidence}"
    never = confirm_claim(source, "prog.py", _claim(source, "TL108", "__init__(self)", {"kind": "never", "self_span": [6, 8, 6, 12]}), worker=worker)
    assert never.status == "not-reproduced", f"{never.status}: {never.evidence}"


def test_tl403_cpu_lengths_are_accepted_on_the_simulated_gpu(worker):
    source = (FIXTURES / "tl403_packed_lengths_on_device" / "clean_cpu_lengths.py").read_text()
    c = confirm_claim(source, "prog.py", _claim(source, "TL403", "lengths, batch_first", {}), worker=worker)
    assert c.status == "not-reproduced", f"{c.status}: {c.evidence}"
    assert "simulated CUDA" in c.evidence
