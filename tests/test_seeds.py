"""The tutorial articles in the seeds directory (Markdown-ish text files) are what
torchlint is for: linting them as Markdown must find their known mistakes.

Found through TORCHLINT_SEEDS, else ../shared/seeds next to the checkout (or next to
the main checkout of a git worktree); skipped, saying what to set, when absent."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import ROOT, SEEDS, SEEDS_MISSING

# One lint of every article in a subprocess: the full run, not the inner loop.
pytestmark = [pytest.mark.skipif(SEEDS is None, reason=SEEDS_MISSING), pytest.mark.slow]


@pytest.fixture(scope="module")
def findings():
    files = sorted(str(p) for p in SEEDS.glob("*.txt"))
    assert files, f"{SEEDS} has no .txt articles"
    env = {k: v for k, v in os.environ.items() if k not in ("FORCE_COLOR", "TORCHLINT_CACHE_DIR")}
    env["PYTHONPATH"] = str(ROOT)
    p = subprocess.run(
        [sys.executable, "-m", "torchlint", "check", "--no-cache", "--extension", "txt:markdown",
         "--output-format", "json", *files],
        cwd=ROOT, capture_output=True, text=True, env=env, timeout=300,
    )
    assert "Traceback" not in p.stderr, p.stderr
    assert p.returncode == 1, p.stdout + p.stderr  # findings, and no errors
    data = json.loads(p.stdout)
    return [(Path(d["path"]).name, d["line"], d["code"], d) for d in data]


def lines_with(text: str) -> list[tuple[str, int]]:
    out = []
    for path in sorted(SEEDS.glob("*.txt")):
        for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
            if text in line:
                out.append((path.name, n))
    return out


def test_dataiter_next_is_flagged(findings):
    expected = lines_with("dataiter.next()")
    assert expected, "the seeds no longer contain dataiter.next()"
    flagged = {(name, line) for name, line, code, _ in findings if code == "TL201"}
    assert set(expected) <= flagged


def test_pretrained_true_is_flagged(findings):
    expected = lines_with("pretrained=True")
    assert expected, "the seeds no longer contain pretrained=True"
    flagged = {(name, line) for name, line, code, _ in findings if code == "TL202"}
    assert set(expected) <= flagged


def test_findings_point_into_the_documents(findings):
    texts = {p.name: p.read_text(encoding="utf-8").splitlines() for p in SEEDS.glob("*.txt")}
    for name, line, code, d in findings:
        src = texts[name][line - 1]
        if code == "TL201":
            assert src[d["column"] - 1 : d["end_column"] - 1].endswith(".next()")
        if code == "TL202":
            assert "pretrained" in src[d["column"] - 1 :]


@pytest.mark.parametrize("name, needle", [("F", "F.relu("), ("imshow", "imshow("), ("tensor", " tensor(")])
def test_undefined_names_are_reported(findings, name, needle):
    """TL002: the articles use `F` without importing it, an `imshow` helper they never show, and a bare `tensor(...)`."""
    reported = [(n, line, d) for n, line, code, d in findings if code == "TL002" and d["message"].startswith(f"`{name}`")]
    assert reported, f"no TL002 for {name}"
    for n, line, d in reported:
        src = (SEEDS / n).read_text(encoding="utf-8").splitlines()[line - 1]
        assert needle.strip() in src and src[d["column"] - 1 :].startswith(name)


@pytest.mark.slow
@pytest.mark.torch
def test_dataiter_next_is_confirmed_by_running_the_article():
    """--confirm runs a Markdown article's blocks as one program: `.next()` fails as it would for a reader."""
    pytest.importorskip("torch")
    files = sorted(str(p) for p in SEEDS.glob("*.txt"))
    env = {k: v for k, v in os.environ.items() if k not in ("FORCE_COLOR", "TORCHLINT_CACHE_DIR")}
    env["PYTHONPATH"] = str(ROOT)
    p = subprocess.run(
        [sys.executable, "-m", "torchlint", "check", "--no-cache", "--confirm", "--select", "TL201", "--extension", "txt:markdown",
         "--output-format", "json", *files],
        cwd=ROOT, capture_output=True, text=True, env=env, timeout=600,
    )
    data = [d for d in json.loads(p.stdout) if d["code"] == "TL201"]  # (TL001 is always on)
    assert {(Path(d["path"]).name, d["line"]) for d in data} == set(lines_with("dataiter.next()"))
    for d in data:
        assert d["confirmation"]["status"] == "confirmed", d
        assert "object has no attribute 'next'" in d["confirmation"]["evidence"]


@pytest.mark.torch
def test_confirm_every_article_with_statuses_a_reader_understands():
    """The issue #16 command: `.next()` confirmed, the unmoved test batch confirmed on the simulated GPU
    (its program gets past the `.next()` above it, which runs as its fix would), and every other finding a
    status that says why, not a generic failure."""
    pytest.importorskip("torch")
    files = sorted(str(p) for p in SEEDS.glob("*.txt"))
    env = {k: v for k, v in os.environ.items() if k not in ("FORCE_COLOR", "TORCHLINT_CACHE_DIR")}
    env["PYTHONPATH"] = str(ROOT)
    p = subprocess.run(
        [sys.executable, "-m", "torchlint", "check", "--no-cache", "--confirm", "--extension", "txt:markdown",
         "--output-format", "json", *files],
        cwd=ROOT, capture_output=True, text=True, env=env, timeout=600,
    )  # fmt: skip
    assert "Traceback" not in p.stderr and "confirmation failed" not in p.stderr, p.stderr
    data = json.loads(p.stdout)
    confirmed = [d for d in data if d.get("confirmation")]
    assert confirmed, "no finding was confirmed"
    unmoved = [d for d in data if d["code"] == "TL401"]
    assert unmoved, "the unmoved test batch is not flagged"
    assert {(Path(d["path"]).name, d["line"]) for d in unmoved} <= set(lines_with("outputs = net(images)"))
    for d in unmoved:
        c = d["confirmation"]
        assert c["status"] == "confirmed", c
        assert "Input type (torch.FloatTensor) and weight type (torch.cuda.FloatTensor)" in c["evidence"], c
        assert c["detail"]["device"] == "cuda (simulated on the CPU)"
    for d in data:
        if d["code"] == "TL201":
            assert d["confirmation"]["status"] == "confirmed", d
        c = d.get("confirmation")
        if c is None:
            continue
        for generic in ("failed before reaching", "failed for another reason", "torchlint could not", "was not reached"):
            assert generic not in c["evidence"], d
        if c["status"] == "could-not-run" and "torchvision" in c["evidence"]:
            assert "torchvision is not installed in the sandbox's Python" in c["evidence"], d
