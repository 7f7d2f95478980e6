"""Runtime confirmation of TL206-TL208 and TL601-TL603 on programs that run.

Each positive runs the flagged line with real torch and must show the effect
the rule names (the TypeError, the unchanged ``requires_grad``, the warning,
the lost digits); each negative is a claim at the same place on code where the
effect does not happen, and must not be confirmed.
"""

from __future__ import annotations

import importlib.util

import pytest

from torchlint.engine import LintOptions, lint_source
from torchlint.runtime.confirm import (
    Claim,
    confirm_claim,
    confirm_findings,
    start_worker,
)

torch = pytest.importorskip("torch")
# Programs run in the sandbox with real torch: the full run, not the inner loop.
pytestmark = [pytest.mark.torch, pytest.mark.slow]


@pytest.fixture(scope="module")
def worker():
    w = start_worker()
    yield w
    w.close()


def confirmed(worker, source: str, code: str):
    report = lint_source(source, "prog.py", LintOptions(codes=frozenset({code})))
    findings = [f for f in report.findings if f.code == code]
    assert findings, "the rule should report this program"
    return [f.confirmation for f in confirm_findings(source, "prog.py", findings, worker=worker, context=report.findings)]


POSITIVE = {
    "TL601-tiny-rates": ("TL601", "import torch\nrates = torch.rand(50) * 1e-7\ngrowth = torch.log(1 + rates)\n", "relative difference"),
    "TL602-tiny-steps": ("TL602", "import torch\nt = torch.full((4,), 1e-9)\ny = torch.exp(t) - 1\n", "relative difference"),
    "TL603-large-logits": (
        "TL603",
        "import torch\nlogits = torch.tensor([[1000.0, 999.0], [5.0, 4.0]])\nlse = torch.log(torch.sum(torch.exp(logits), dim=1))\n",
        "inf/nan as written",
    ),
    "TL206-keyword": ("TL206", "import torch\nw = torch.zeros(3, require_grad=True)\n", "unexpected keyword argument 'require_grad'"),
    "TL206-attribute": (
        "TL206",
        "import torch\nlayer = torch.nn.Linear(4, 2)\nfor p in layer.parameters():\n    p.require_grad = False\n",
        "still True",
    ),
    "TL207-checkpoint": (
        "TL207",
        "import torch\nfrom torch.utils.checkpoint import checkpoint\nlayer = torch.nn.Linear(3, 3)\n"
        "x = torch.randn(2, 3, requires_grad=True)\ny = checkpoint(layer, x)\n",
        "use_reentrant",
    ),
}


@pytest.mark.parametrize("case", list(POSITIVE))
def test_positive_is_confirmed(worker, case):
    code, source, evidence = POSITIVE[case]
    for c in confirmed(worker, source, code):
        assert c is not None and c.status == "confirmed", f"{c.status}: {c.evidence}"
        assert evidence in c.evidence


def _claim(source: str, code: str, needle: str, data: dict | None = None) -> Claim:
    line = next(i for i, text in enumerate(source.splitlines(), 1) if needle in text)
    text = source.splitlines()[line - 1]
    column = text.index(needle)
    return Claim(code, line, column, line, column + len(needle), data or {})


NEGATIVE = {
    # Ordinary magnitudes: both forms agree to float32 rounding.
    "TL601-moderate": ("TL601", "import torch\nx = torch.rand(20) + 0.5\ny = torch.log(1 + x)\n", "torch.log(1 + x)", {"replacement": "torch.log1p(x)"}),
    "TL602-moderate": ("TL602", "import torch\nx = torch.linspace(0.5, 2.0, 8)\ny = torch.exp(x) - 1\n", "torch.exp(x) - 1", {"replacement": "torch.expm1(x)"}),
    "TL603-small-logits": (
        "TL603",
        "import torch\nz = torch.randn(4, 5)\ny = torch.log(torch.sum(torch.exp(z), 1))\n",
        "torch.log(torch.sum(torch.exp(z), 1))",
        {"replacement": "torch.logsumexp(z, 1)"},
    ),
    # The spelling torch reads: requires_grad does change.
    "TL206-correct-attribute": (
        "TL206",
        "import torch\nlayer = torch.nn.Linear(4, 2)\nfor p in layer.parameters():\n    p.requires_grad = False\n",
        "requires_grad",
        None,
    ),
    "TL207-explicit": (
        "TL207",
        "import torch\nfrom torch.utils.checkpoint import checkpoint\nlayer = torch.nn.Linear(3, 3)\n"
        "x = torch.randn(2, 3, requires_grad=True)\ny = checkpoint(layer, x, use_reentrant=False)\n",
        "checkpoint(layer, x, use_reentrant=False)",
        None,
    ),
}


@pytest.mark.parametrize("case", list(NEGATIVE))
def test_negative_is_not_confirmed(worker, case):
    code, source, needle, data = NEGATIVE[case]
    c = confirm_claim(source, "prog.py", _claim(source, code, needle, data), worker=worker)
    assert c.status == "not-reproduced", f"{c.status}: {c.evidence}"


def test_tl206_attribute_on_a_non_tensor_is_not_confirmed(worker):
    source = "import torch\n\nclass Opts:\n    pass\n\nopts = Opts()\nopts.require_grad = True\n"
    c = confirm_claim(source, "prog.py", _claim(source, "TL206", "require_grad"), worker=worker)
    assert c.status == "not-reproduced", f"{c.status}: {c.evidence}"
    assert "not a tensor" in c.evidence


def _has_torchvision() -> bool:
    try:
        return importlib.util.find_spec("torchvision") is not None
    except (ImportError, ValueError):
        return False


def test_tl208_torchvision_warning(worker):
    source = "import torch\nfrom torchvision.transforms import v2\nt = v2.ToTensor()\n"
    (c,) = confirmed(worker, source, "TL208")
    if not _has_torchvision():
        assert c.status == "could-not-run" and "torchvision is not installed" in c.evidence
        return
    assert c.status == "confirmed", f"{c.status}: {c.evidence}"
    assert "deprecated" in c.evidence


TRAIN = (
    "import torch\n"
    "model = torch.nn.Linear(4, 2)\n"
    "opt = torch.optim.SGD(model.parameters(), lr=0.1)\n"
    "for _ in range(3):\n"
    "    opt.zero_grad(set_to_none={flag})\n"
    "    model(torch.randn(8, 4)).sum().backward()\n"
    "    opt.step()\n"
)


def test_tl702_zero_filled_gradients_are_confirmed(worker):
    (c,) = confirmed(worker, TRAIN.format(flag="False"), "TL702")
    assert c.status == "confirmed", f"{c.status}: {c.evidence}"
    assert "2 of 2 parameters hold zero-filled" in c.evidence


def test_tl702_freed_gradients_are_not_confirmed(worker):
    source = TRAIN.format(flag="True")
    line = 5
    claim = Claim("TL702", line, 4, line, 33, {"receiver_span": [line, 4, line, 7]})
    c = confirm_claim(source, "prog.py", claim, worker=worker)
    assert c.status == "not-reproduced", f"{c.status}: {c.evidence}"
