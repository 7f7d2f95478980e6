"""Runtime confirmation of TL203, TL204, TL501 and TL502 (runtime/confirmers/api.py).

Positives run the flagged line with real torch and must show what the
knowledge base claims (the deprecation warning, the removal error, the
AttributeError, the TypeError); negatives put the same claim on code where it
does not happen and must not be confirmed.
"""

from __future__ import annotations

import pytest

from torchlint.engine import LintOptions, lint_source
from torchlint.runtime.confirm import Claim, confirm_claim, confirm_findings, start_worker

torch = pytest.importorskip("torch")
pytestmark = [pytest.mark.torch, pytest.mark.slow]


@pytest.fixture(scope="module")
def worker():
    w = start_worker()
    yield w
    w.close()


POSITIVE = {
    "TL203-cuda-amp": ("TL203", "import torch\nscaler = torch.cpu.amp.GradScaler()\n", "is deprecated"),
    "TL203-range": ("TL203", "import torch\nr = torch.range(0, 3)\n", "torch.range is deprecated"),
    "TL203-size-average": ("TL203", "import torch.nn as nn\nloss = nn.MSELoss(size_average=False)\n", "reduction="),
    "TL204-symeig": ("TL204", "import torch\nw = torch.symeig(torch.eye(2))\n", "is now removed"),
    "TL501-linear": ("TL501", "import torch\nlayer = torch.nn.Linear(2, 2)\nn = layer.in_files\n", "in_files"),
    "TL501-module": ("TL501", "import torch\nx = torch.nn.Sequencial()\n", "Sequencial"),
    "TL502-conv": ("TL502", "import torch.nn as nn\nconv = nn.Conv2d(3, 6, kernal_size=5)\n", "kernal_size"),
}


@pytest.mark.parametrize("case", list(POSITIVE))
def test_positive_is_confirmed(worker, case):
    code, source, evidence = POSITIVE[case]
    report = lint_source(source, "prog.py", LintOptions(codes=frozenset({code})))
    findings = [f for f in report.findings if f.code == code]
    assert findings, "the rule should report this program"
    for f in confirm_findings(source, "prog.py", findings, worker=worker, context=report.findings):
        c = f.confirmation
        assert c is not None and c.status == "confirmed", f"{c.status}: {c.evidence}"
        assert evidence in c.evidence


def _claim(source: str, code: str, needle: str, data: dict) -> Claim:
    line = next(i for i, text in enumerate(source.splitlines(), 1) if needle in text)
    column = source.splitlines()[line - 1].index(needle)
    return Claim(code, line, column, line, column + len(needle), data)


NEGATIVE = {
    "TL203-modern": ("TL203", "import torch\nscaler = torch.amp.GradScaler('cpu')\n", "torch.amp.GradScaler",
                     {"warning": "`torch.cpu.amp.GradScaler(args...)` is deprecated"}),
    "TL501-existing": ("TL501", "import torch\nlayer = torch.nn.Linear(2, 2)\nn = layer.in_features\n", "layer.in_features",
                       {"attribute": "in_features"}),
    "TL502-accepted": ("TL502", "import torch.nn as nn\nconv = nn.Conv2d(3, 6, kernel_size=5)\n", "kernel_size=5",
                       {"keyword": "kernel_size"}),
}


@pytest.mark.parametrize("case", list(NEGATIVE))
def test_negative_is_not_confirmed(worker, case):
    code, source, needle, data = NEGATIVE[case]
    c = confirm_claim(source, "prog.py", _claim(source, code, needle, data), worker=worker)
    assert c.status == "not-reproduced", f"{c.status}: {c.evidence}"
