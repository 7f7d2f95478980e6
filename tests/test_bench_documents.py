"""The notebook cost benchmark runs and reports what docs/documents.md quotes from it."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _notebook(*sources: str) -> str:
    cells = [{"cell_type": "code", "execution_count": None, "metadata": {}, "outputs": [], "source": s} for s in sources]
    return json.dumps({"cells": cells, "metadata": {}, "nbformat": 4, "nbformat_minor": 5})


def test_real_notebooks_are_reported_whole_and_by_whether_their_cells_parse(tmp_path):
    (tmp_path / "clean.ipynb").write_text(_notebook("import torch", "x = torch.ones(2)\nprint(x)"))
    (tmp_path / "exercise.ipynb").write_text(_notebook("import torch", "model = ", "it = iter([1])\nit.next()"))
    out = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "bench_documents.py"), "--notebooks", str(tmp_path), "--runs", "4"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0].startswith("2 files,") and "median of 4 runs" in lines[0]
    assert "1 files whose every code cell parses:" in lines
    assert any(line.startswith("1 files with cells that do not parse") for line in lines)
    ratios = re.findall(r"notebook lint +[\d.]+ ms +\(([\d.]+)x of \.py lint \+ JSON decode", out.stdout)
    assert len(ratios) == 3 and all(float(r) > 0 for r in ratios)
