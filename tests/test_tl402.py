"""TL402 discarded-move: only known tensors, never modules; the fix's safety; documents' displayed values."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from torchlint.testing import RuleTester

RULE = RuleTester("TL402")


def test_fix_is_safe_for_names_and_unsafe_for_attributes():
    code = "import torch\nfrom torch.utils.data import DataLoader\nfor batch in DataLoader(ds):\n    batch.cuda()\n    batch.x.cuda()\n"
    name, attr = RULE.findings(code)
    assert name.fix.applicability == "safe" and attr.fix.applicability == "unsafe"
    assert RULE.fixed(code, unsafe=True).splitlines()[3:] == ["    batch = batch.cuda()", "    batch.x = batch.x.cuda()"]
    assert name.data == {"tensor": "batch", "method": "cuda"}


def test_modules_and_unknown_values_are_never_reported():
    assert RULE.lines("import torch\nm = torch.nn.Linear(2, 2)\nm.cuda()\nm.half()\nm.to('cuda')\n") == []
    assert RULE.lines("import torch\nm = torch.nn.Linear(2, 2).cuda()\nh = m.half()\nh.float()\n") == []
    assert RULE.lines("x = load()\nx.cuda()\n") == []


@pytest.mark.slow
def test_a_document_block_ending_with_the_call_displays_it(tmp_path):
    doc = tmp_path / "t.md"
    doc.write_text("```python\nimport torch\nx = torch.randn(3)\nx.cuda()\n```\n\n```python\ny = torch.randn(2)\ny.float()\nprint(y)\n```\n")
    out = subprocess.run(
        [sys.executable, "-m", "torchlint", "check", "--select", "TL402", "--output-format", "json", str(doc)],
        capture_output=True, text=True, check=False,
    )
    found = json.loads(out.stdout)
    assert [f["line"] for f in found] == [9], out.stdout  # not line 4: that block shows x.cuda()
