"""Every TorchFix rule has a torchlint equivalent that fires on code of that kind.

TorchFix (pytorch-labs/torchfix, as of its February 2025 sources) has the codes
below; TOR901 is internal to the pytorch/pytorch repository and has no user
equivalent. Each row: the TorchFix code, the torchlint code that must report
it, and a snippet of that kind (written for this test). Every equivalent rule
must be registered: none of these cases is skipped.
"""

from __future__ import annotations

import pytest

from torchlint.engine import LintOptions, lint_source
from torchlint.rules import all_rules

TORCHFIX_CODES = {
    "TOR001", "TOR002", "TOR003", "TOR004",
    "TOR101", "TOR102", "TOR103", "TOR104", "TOR105", "TOR106", "TOR107", "TOR108",
    "TOR201", "TOR202", "TOR203",
    "TOR401", "TOR402",
}  # fmt: skip

# (TorchFix code, torchlint code, snippet)
CASES: list[tuple[str, str, str]] = [
    # TOR001: use of a removed function.
    ("TOR001", "TL204", "import torch\nw, v = torch.symeig(a, eigenvectors=True)\n"),
    ("TOR001", "TL204", "import torch\nx, lu = torch.solve(b, a)\n"),
    ("TOR001", "TL204", "import torch\nsol = torch.lstsq(b, a)\n"),
    ("TOR001", "TL204", "import torch\nr = torch.matrix_rank(m)\n"),
    # TOR002: require_grad typo.
    ("TOR002", "TL206", "import torch\nfor p in net.parameters():\n    p.require_grad = False\n"),
    ("TOR002", "TL206", "import torch\nbias = torch.zeros(8, require_grad=True)\n"),
    # TOR003: checkpoint without use_reentrant.
    ("TOR003", "TL207", "from torch.utils.checkpoint import checkpoint\nh = checkpoint(layer, h)\n"),
    ("TOR003", "TL207", "import torch.utils.checkpoint as cp\nh = cp.checkpoint_sequential(blocks, 3, h)\n"),
    # TOR004: import of a removed function.
    ("TOR004", "TL204", "from torch import symeig\n"),
    ("TOR004", "TL204", "from torch import solve as torch_solve\n"),
    # TOR101: use of a deprecated function.
    ("TOR101", "TL203", "import torch\nm = torch.nn.utils.weight_norm(torch.nn.Linear(4, 4))\n"),
    ("TOR101", "TL203", "import torch\nwith torch.backends.cuda.sdp_kernel(enable_flash=False):\n    pass\n"),
    ("TOR101", "TL203", "import torch\ny = torch.chain_matmul(a, b, c)\n"),
    # torch.cholesky and torch.qr warn up to 2.13 and raise from 2.14 (the newest known, the default target): TL204.
    ("TOR101", "TL204", "import torch\nl = torch.cholesky(spd)\n"),
    ("TOR101", "TL204", "import torch\nq, r = torch.qr(a)\n"),
    ("TOR101", "TL203", "import torch\nsteps = torch.range(0, 9)\n"),
    ("TOR101", "TL203", "import torch\nwith torch.cuda.amp.autocast():\n    out = model(x)\n"),
    ("TOR101", "TL203", "import torch\nscaler = torch.cuda.amp.GradScaler()\n"),
    ("TOR101", "TL203", "import functorch\nbatched = functorch.vmap(f)(xs)\n"),
    ("TOR101", "TL203", "import torch.utils._pytree as pytree\npytree._register_pytree_node(Point, flatten, unflatten)\n"),
    # TOR102: torch.load without weights_only.
    ("TOR102", "TL205", "import torch\nsd = torch.load('w.pt')\n"),
    ("TOR102", "TL205", "from torch import load\nsd = load(buffer, map_location='cpu')\n"),
    # TOR103: import of a deprecated function.
    ("TOR103", "TL203", "from torch import chain_matmul\n"),
    ("TOR103", "TL203", "from torch.nn.utils import weight_norm\n"),
    ("TOR103", "TL203", "from functorch import vmap\n"),
    # TOR104: use of a non-public alias.
    ("TOR104", "TL203", "import torch\nbatch = torch.utils.data._utils.collate.default_collate(samples)\n"),
    ("TOR104", "TL203", "import torch\nx = torch.utils.data._utils.collate.default_convert(sample)\n"),
    # TOR105: import of a non-public alias.
    ("TOR105", "TL203", "from torch.utils.data._utils.collate import default_collate\n"),
    ("TOR105", "TL203", "from torch.utils.data._utils.collate import default_convert\n"),
    # TOR106-TOR108: numerics.
    ("TOR106", "TL601", "import torch\ny = torch.log(1 + x)\n"),
    ("TOR106", "TL601", "import torch\ny = torch.log(x + 1.0)\n"),
    ("TOR107", "TL602", "import torch\ny = torch.exp(x) - 1\n"),
    ("TOR107", "TL602", "import torch as th\ny = 3 * (th.exp(x) - 1.0)\n"),
    ("TOR108", "TL603", "import torch\ny = torch.log(torch.sum(torch.exp(x), 1))\n"),
    ("TOR108", "TL603", "import torch\ny = torch.log(torch.sum(torch.exp(x), dim=-1, keepdim=True))\n"),
    # TOR201: torchvision pretrained=.
    ("TOR201", "TL202", "from torchvision.models import resnet50\nnet = resnet50(pretrained=True)\n"),
    ("TOR201", "TL202", "import torchvision\nnet = torchvision.models.vgg11(pretrained=False)\n"),
    # TOR202: transforms v2 ToTensor.
    ("TOR202", "TL208", "from torchvision.transforms import v2\nt = v2.ToTensor()\n"),
    ("TOR202", "TL208", "from torchvision.transforms.v2 import ToTensor\nt = ToTensor()\n"),
    # TOR203: torchvision submodule imported as its own name.
    ("TOR203", "TL209", "import torchvision.models as models\n"),
    ("TOR203", "TL209", "import torchvision.datasets as datasets\n"),
    # TOR401: DataLoader with synchronous loading.
    ("TOR401", "TL701", "from torch.utils.data import DataLoader\ndl = DataLoader(ds, batch_size=4)\n"),
    ("TOR401", "TL701", "import torch\ndl = torch.utils.data.DataLoader(ds, num_workers=0)\n"),
    # TOR402: zero_grad(set_to_none=False).
    ("TOR402", "TL702", "import torch\nopt = torch.optim.Adam(params)\nopt.zero_grad(set_to_none=False)\n"),
    ("TOR402", "TL702", "import torch.nn as nn\nnet = nn.Conv2d(3, 8, 3)\nnet.zero_grad(False)\n"),
]


def test_every_torchfix_code_has_cases():
    covered = {tor for tor, _, _ in CASES}
    assert covered == TORCHFIX_CODES
    for tor in TORCHFIX_CODES:
        assert sum(1 for t, _, _ in CASES if t == tor) >= 2, tor


def test_every_equivalent_rule_is_registered():
    assert {code for _, code, _ in CASES} <= set(all_rules())


def test_the_mapped_rules_are_the_public_codes():
    # The codes and names are a public contract (issue #11).
    names = {code: rule.name for code, rule in all_rules().items()}
    expected = {
        "TL202": "torchvision-pretrained", "TL203": "deprecated-api", "TL204": "removed-api",
        "TL205": "torch-load-weights-only", "TL206": "require-grad-typo", "TL207": "checkpoint-use-reentrant",
        "TL208": "deprecated-to-tensor", "TL209": "torchvision-module-alias", "TL501": "nonexistent-attribute",
        "TL502": "unexpected-keyword", "TL601": "log1p", "TL602": "expm1", "TL603": "logsumexp",
        "TL701": "dataloader-num-workers", "TL702": "zero-grad-set-to-none",
    }  # fmt: skip
    for code, name in expected.items():
        assert names.get(code) == name, code


@pytest.mark.parametrize("tor,code,source", CASES, ids=[f"{t}-{c}-{i}" for i, (t, c, _) in enumerate(CASES)])
def test_torchlint_reports_torchfix_case(tor, code, source):
    # Every rule, the off-by-default ones included (TorchFix's TOR4xx are off by default too).
    report = lint_source(source, "case.py", LintOptions(codes=frozenset(all_rules())))
    assert report.errors == []
    assert code in {f.code for f in report.findings}, (tor, [(f.code, f.message) for f in report.findings])
