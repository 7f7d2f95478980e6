"""Runtime confirmation of TL103 and TL105 (issue #13) with real torch in the sandbox.

Positives: every flagged fixture of the rule is confirmed. Negatives: the same
claim put where the rule looks on the correct version of the code is not.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from conftest import FIXTURES
from torchlint.engine import LintOptions, lint_source
from torchlint.runtime.confirm import Claim, confirm_claim, confirm_findings, start_worker

torch = pytest.importorskip("torch")
pytestmark = [pytest.mark.torch, pytest.mark.slow]

RULES = {"TL103": "tl103_*", "TL105": "tl105_*"}


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
        if code == "TL103" and f.data["activation"] == "log_softmax":
            # Redundant, not wrong: the same loss and gradients with and without it.
            m = c.detail["measure"]
            assert abs(m["loss_written"] - m["loss_meant"]) < 1e-6 and "redundant" in c.evidence
        elif code == "TL103":
            m = c.detail["measure"]
            assert m["grad_written"] < m["grad_meant"]
            assert "x larger" in c.evidence


def _claim(source: str, code: str, needle: str, data: dict, occurrence: int = 0) -> Claim:
    hits = [(i, text.index(needle)) for i, text in enumerate(source.splitlines(), 1) if needle in text]
    line, column = hits[occurrence]
    return Claim(code, line, column, line, column + len(needle), data)


@pytest.mark.parametrize(
    ("fixture", "needle", "data"),
    [
        # The loss gets the logits; the softmax feeds the accuracy.
        ("clean_softmax_for_metrics.py", "criterion(logits, y)", {"activation": "softmax", "loss": "cross_entropy"}),
        # forward's softmax is for eval mode only: in training the loss sees the logits.
        ("clean_softmax_only_in_eval.py", "criterion(model(x), y)", {"activation": "softmax", "loss": "cross_entropy"}),
        # log_softmax into NLL: no softmax output (rows of exp(.) sum to 1, not the values themselves).
        ("clean_log_softmax_nll.py", "F.nll_loss(model(data), target)", {"activation": "softmax", "loss": "nll"}),
    ],
)
def test_tl103_logits_are_not_confirmed(worker, fixture, needle, data):
    source = (FIXTURES / "tl103_activation_before_loss" / fixture).read_text()
    c = confirm_claim(source, fixture, _claim(source, "TL103", needle, data), worker=worker)
    assert c.status == "not-reproduced", f"{c.status}: {c.evidence}"
    assert "is not a softmax's output" in c.evidence


@pytest.mark.parametrize(
    ("fixture", "needle", "occurrence", "expect_training", "evidence"),
    [
        # eval() through a helper before the validation pass: not in training mode there.
        ("clean_eval_in_helper.py", "model(x)", 1, True, "was False at every one"),
        # No dropout or batch norm: training mode, but both passes agree.
        ("clean_no_dropout_or_batchnorm.py", "model(x)", 1, True, "two passes agree"),
        # train() at the top of every epoch: the training call never sees eval mode.
        ("clean_train_at_top_of_epoch.py", "model(x)", 0, False, "was True at every one"),
        # train(False) is eval mode for the test pass.
        ("clean_train_false.py", "model(x)", 1, True, "was False at every one"),
    ],
)
def test_tl105_correct_modes_are_not_confirmed(worker, fixture, needle, occurrence, expect_training, evidence):
    source = (FIXTURES / "tl105_missing_eval" / fixture).read_text()
    claim = _claim(source, "TL105", needle, {"model": "model", "expect_training": expect_training}, occurrence)
    c = confirm_claim(source, fixture, claim, worker=worker)
    assert c.status == "not-reproduced", f"{c.status}: {c.evidence}"
    assert evidence in c.evidence
