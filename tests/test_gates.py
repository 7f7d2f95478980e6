"""The CPython-tree pre-checks (torchlint/gates.py, TL102's and TL108's) skip files, never findings.

Each case is linted with the pre-checks and with the rule forced to run; a case
the pre-check skips must be one where the forced rule reports nothing, and the
cases that exist to be reported must not be skipped.
"""

from __future__ import annotations

import ast

import pytest

from torchlint.engine import LintOptions, lint_source
from torchlint.gates import import_table, may_reference
from torchlint.rules import all_rules


def _active(code: str, source: str) -> bool:
    return any(r.code == code for r in LintOptions(codes=frozenset({code})).active_rule_classes(source, "x.py"))


def _forced(code: str, source: str, mp: pytest.MonkeyPatch) -> list[int]:
    cls = all_rules()[code]
    mp.setattr(cls, "qualified_triggers", frozenset())
    mp.setattr(cls, "applies_to", classmethod(lambda c, s: True))
    return [f.range.line for f in lint_source(source, "x.py", LintOptions(codes=frozenset({code}))).findings if f.code == code]


def test_import_table_reads_every_import_in_every_scope():
    src = (
        "import torch as T\nimport torch.nn.functional\nfrom torch import load as L\nfrom . import sib\n"
        "from torch.utils.data import *\ndef f():\n    import numpy as np\n    try:\n        from json import load\n"
        "    except ImportError:\n        pass\nclass C:\n    import os\n"
    )
    table = import_table(src)
    assert table is not None
    assert table.bindings["T"] == {"torch"} and table.bindings["torch"] == {"torch"}
    assert table.bindings["L"] == {"torch.load"} and table.bindings["np"] == {"numpy"}
    assert table.bindings["load"] == {"json.load"} and table.bindings["sib"] == {"..sib"}
    assert table.stars == {"torch.utils.data"}
    assert table.chains("torch.load") == {"T.load", "torch.load", "L"}
    assert table.resolve("T.nn.Module") == {"torch.nn.Module", "torch.utils.data.T.nn.Module"}  # (the star may bind T)
    assert "DataLoader" in table.chains("torch.utils.data.DataLoader")


@pytest.mark.parametrize(
    "source, expected",
    [
        ("import torch\nx = torch.load(f)\n", True),
        ("import torch\nx = torch . load(f)\n", True),
        ("import torch\nx = (torch  # the module\n     .load)(f)\n", True),
        ("import torch as th\nth.load(f)\n", True),
        ("from torch import load as restore\nrestore(f)\n", True),
        ("from torch import *\nload(f)\n", True),
        ("import torch.serialization\ntorch.serialization.load(f)\n", False),  # another name (TL205 lists both)
        # Nothing of these can resolve to torch.load.
        ("import json\nimport torch\njson.load(f)\n", False),
        ("import torch\nimport pickle\npickle.load(f)\nmodel.load(f)\n", False),
        ("import torch\n# torch.load(f) in a comment is text, but it can only make the file pass\nx = 1\n", True),
        ("import torch\nself.torch.load(f)\n", False),
        ("torch.load(f)\n", False),  # torch never imported: NameResolver gives None
        ("import torch\ntorch.loader(f)\n", False),
    ],
)
def test_may_reference_torch_load(source, expected):
    assert may_reference(source, frozenset({"torch.load"})) is expected


@pytest.mark.parametrize("code", ["TL205", "TL601", "TL602", "TL603", "TL701", "TL109", "TL110", "TL207", "TL208", "TL403"])
def test_qualified_triggers_never_skip_a_rules_own_examples(code):
    cls = all_rules()[code]
    assert cls.qualified_triggers, code
    for example in cls.INVALID:
        assert _active(code, example.code), (code, example.code)


# (source, TL102 reports it)
TL102_CASES = [
    ("total = 0\nfor x, y in loader:\n    loss = criterion(model(x), y)\n    loss.backward()\n    total += loss\n", True),
    ("total = 0\nwhile True:\n    loss = criterion(model(x), y)\n    loss.backward()\n    total += loss\n", True),
    ("hist = []\nfor x, y in loader:\n    loss = criterion(model(x), y)\n    loss.backward()\n    hist.append(\n        loss\n    )\n", True),
    # A def inside a loop: the rule asks the model with no loop of its own.
    ("for x in loader:\n    def f(total):\n        total += criterion(model(x), y)\n", None),
    # What the rule drops without the model.
    ("n = 0\nfor x, y in loader:\n    n += 1\n    n += -1\n    n += 'a' 'b'\n    n += f'{x}'\n    n += [x]\n", False),
    ("total = 0\nfor x, y in loader:\n    loss = criterion(model(x), y)\n    total += loss.item()\n", False),
    ("for x, y in loader:\n    total = 0\n    total += criterion(model(x), y)\n", False),
    ("total = 0\nfor x, y in loader:\n    total += criterion(model(x), y)\ntotal.backward()\n", False),
    ("def f():\n    total = 0\n    for x, y in loader:\n        total += criterion(model(x), y)\n    return total\n", False),
    ("hist = []\nfor x, y in loader:\n    hist.append(model(x))\n", False),  # no loss in the text
    # True and None are names to libcst, not literals: kept.
    ("t = 0\nfor x in loader:\n    t += True\n", None),
    # A backward() in a one-line suite is not a statement line to the rule: it does not silence it.
    ("total = 0\nfor x, y in loader:\n    loss = criterion(model(x), y)\n    loss.backward()\n    total += loss\nif x: total.backward()\n", True),
    # The pre-check walks only statements on lines saying `+=` or `.append`: a candidate deep in a
    # class, a decorated def, a try and a with is still found; one only a string holds is none.
    ("import torch\n@torch.no_grad\ndef g(): pass\nclass T:\n    @staticmethod\n    def run(loader):\n"
     "        total = 0\n        for x, y in loader:\n            try:\n                with ctx():\n"
     "                    loss = criterion(model(x), y)\n                    loss.backward()\n"
     "                    total += loss\n            except E:\n                pass\n        print(total)\n", True),
    ("for x, y in loader:\n    loss = criterion(model(x), y)\n    s = 'total += loss'\n", False),
    ("for x, y in loader:\n    loss = criterion(model(x), y)\n    total \\\n        += loss\n", True),
]  # fmt: skip


@pytest.mark.parametrize("source, reported", TL102_CASES)
def test_tl102_precheck(source, reported, monkeypatch):
    ast.parse(source)
    gate = _active("TL102", source)
    forced = _forced("TL102", source, monkeypatch)
    if forced:
        assert gate, "the pre-check skipped a file the rule reports on"
    if reported is not None:
        assert bool(forced) is reported
        assert gate is reported


# (source, TL108 reports it)
TL108_CASES = [
    ("import torch.nn as nn\nclass Net(nn.Module):\n    def __init__(self):\n        self.fc = nn.Linear(2, 2)\n", True),
    ("from torch import nn as tnn\nclass Base(tnn.Module):\n    pass\nclass Net(Base):\n    def __init__(self):\n        self.n = 1\n", True),
    ("import pytorch_lightning as pl\nclass M(pl.LightningModule):\n    def __init__(self):\n        self.fc = make()\n", True),
    # Not torch modules, whatever __init__ does.
    ("class Config(object):\n    def __init__(self):\n        self.fc = make()\n", False),
    ("import flax.linen as nn\nclass Net(nn.Module):\n    def __init__(self):\n        self.fc = nn.Dense(2)\n", False),
    ("from enum import Enum\nclass E(Enum):\n    def __init__(self, v):\n        self.v = v\n", False),
    ("class A(B):\n    pass\nclass B(A):\n    def __init__(self):\n        self.x = f()\n", False),  # a cycle of bases
]


@pytest.mark.parametrize("source, reported", TL108_CASES)
def test_tl108_precheck(source, reported, monkeypatch):
    gate = _active("TL108", source)
    forced = _forced("TL108", source, monkeypatch)
    assert bool(forced) is reported
    assert gate is reported


# (rule, source, the rule reports it): calls the pre-checks look at on CPython's tree.
CALL_CASES = [
    # .next() on what may be an iterator (analysis/value_flows.py, IteratorFlow) ...
    ("TL201", "it = iter(loader)\nx = it.next()\n", True),
    ("TL201", "class C:\n    def __init__(self, loader):\n        self.it = iter(loader)\n    def get(self):\n        return self.it.next()\n", True),
    ("TL201", "import itertools\nb = itertools.cycle(xs)\nb.next()\n", True),
    ("TL201", "def batches(d):\n    return zip(d, d)\npairs = batches(data)\nfirst = pairs.next()\n", True),
    # ... not on a cursor, a tokenizer or a parameter nobody passes an iterator.
    ("TL201", "cur = db.cursor()\nrow = cur.next()\n", False),
    ("TL201", "def f(tok):\n    return tok.next()\nit = iter(loader)\n", False),
    ("TL403", "import torch\nfrom torch.nn.utils.rnn import pack_padded_sequence\np = pack_padded_sequence(x, torch.tensor([3, 2]).cuda())\n", True),
    ("TL403", "import torch\nfrom torch.nn.utils.rnn import pack_padded_sequence\np = pack_padded_sequence(x, lengths=torch.tensor([3, 2]).cuda())\n", True),
    ("TL403", "import torch\nRULES = {'torch.nn.utils.rnn.pack_padded_sequence': 1}\nx = torch.tensor([3, 2]).cuda()\n", False),
    ("TL403", "import torch\nfrom torch.nn.utils.rnn import pack_padded_sequence as pps\nlengths = torch.tensor([3, 2]).cuda()\np = pps(x, lengths)\n", True),
    # torchvision builders are known through imports; the word in a string is none.
    ("TL202", "from torchvision.models import resnet18 as rn\nm = rn(True)\n", True),
    ("TL202", "import torch\nm = torch.hub.load('pytorch/vision', 'resnet18', pretrained=True)\n", True),
    ("TL202", "import torch\nOPS = ['torchvision::roi_align']\nm = resnet18(pretrained=True)\n", False),
    ("TL205", "import torch\nstate = torch.load(path)\n", True),
    ("TL205", "import torch\nstate = torch.load(path, weights_only=True)\n", False),
    ("TL205", "import torch\nstate = torch.load(path, **opts)\n", False),
    ("TL205", "import json, torch\nstate = json.load(f)\nx = torch.zeros(1)\n", False),
    ("TL207", "from torch.utils.checkpoint import checkpoint\ny = checkpoint(f, x)\n", True),
    ("TL207", "from torch.utils.checkpoint import checkpoint\ny = checkpoint(f, x, use_reentrant=False)\n", False),
    ("TL110", "import torch.nn.functional as F\np = F.softmax(x)\n", True),
    ("TL110", "import torch.nn.functional as F\np = F.softmax(x, dim=None)\n", True),
    ("TL110", "import torch.nn.functional as F\np = F.softmax(x, None)\n", True),
    ("TL110", "import torch.nn as nn\nsm = nn.Softmax()\n", True),
    ("TL110", "import torch.nn.functional as F\np = F.softmax(x, dim=1)\n", False),
    ("TL110", "import torch.nn.functional as F\np = F.softmax(x, 1)\n", False),
    ("TL110", "import torch.nn as nn\nsm = nn.Softmax(dim=1)\n", False),
    ("TL110", "import torch.nn.functional as F\np = F.softmax(*args)\n", False),
    ("TL109", "import torch.nn as nn\nimport torch.nn.functional as F\nclass Net(nn.Module):\n    def forward(self, x):\n        return F.dropout(x, 0.5)\n", True),
    ("TL109", "import torch.nn as nn\nimport torch.nn.functional as F\nclass Net(nn.Module):\n    if True:\n        def forward(self, x):\n            return F.dropout(x, 0.5)\n", True),
    ("TL109", "import torch.nn as nn\nimport torch.nn.functional as F\nclass Net(nn.Module):\n    def forward(self, x):\n        return F.dropout(x, 0.5, self.training)\n", False),
    ("TL109", "import torch.nn as nn\nimport torch.nn.functional as F\nclass Net(nn.Module):\n    def forward(self, x):\n        def inner(y):\n            return F.dropout(y)\n        return inner(x)\n", False),
    ("TL109", "import torch.nn.functional as F\nclass Net(object):\n    def forward(self, x):\n        return F.dropout(x)\n", False),
    ("TL109", "import torch.nn.functional as F\ndef forward(x):\n    return F.dropout(x)\n", False),
]


# (rule, source, the rule reports it, the pre-check lets it through)
API_CASES = [
    ("TL203", "import torch\nwith torch.cuda.amp.autocast():\n    pass\n", True, True),
    ("TL203", "from torch.cuda import amp\nscaler = amp.GradScaler()\n", True, True),
    ("TL203", "from torch.cuda.amp import autocast\nwith autocast():\n    pass\n", True, True),
    ("TL203", "import torch.nn.functional as F\nl = F.cross_entropy(x, y, size_average=False)\n", True, True),
    # A comment or a docstring naming the old API is no use of it.
    ("TL203", "import torch\n# torch.cuda.amp.autocast() is deprecated: we use torch.amp\nwith torch.amp.autocast('cuda'):\n    pass\n", False, False),
    ("TL203", "import torch\n\ndef f():\n    \"\"\"Like torch.cuda.amp.autocast().\"\"\"\n", False, False),
    ("TL203", "import torch\nwith torch.amp.autocast('cuda'):\n    pass\n", False, False),
    ("TL203", "import torch\nfrom mylib import autocast\nwith autocast():\n    pass\nf(size_average=2)\n", False, False),
    ("TL204", "from torch._six import string_classes\n", True, True),
    ("TL204", "import torch._six\n", True, True),
    ("TL204", "import torch\nx = torch._six.inf\n", False, True),  # (a module's attribute: not reported, yet it names the module)
    ("TL204", "import torch\nsix = '_six'\nx = torch.zeros(1)\n", False, False),
]


@pytest.mark.parametrize("code, source, reported, passes", API_CASES)
def test_api_prechecks(code, source, reported, passes, monkeypatch):
    _gate_and_rule(code, source, reported, passes, monkeypatch)


def _gate_and_rule(code, source, reported, passes, monkeypatch):
    """The pre-check passes (or skips) the source, and the rule forced on reports (or not) there."""
    gate = _active(code, source)
    forced = _forced(code, source, monkeypatch)
    assert bool(forced) is reported
    assert gate is passes
    return gate, forced


MATH_CASES = [
    ("TL601", "import torch\ny = torch.log(1 + x)\n", True),
    ("TL601", "import torch\ny = torch.log(input=x + 1)\n", True),
    ("TL601", "import torch\ny = torch.log(x)\nz = 1 + x\n", False),
    ("TL602", "import torch\ny = torch.exp(x) - 1\n", True),
    ("TL602", "import torch\ny = torch.exp(x) + torch.exp(z) - 1\n", False),
    ("TL602", "import torch\ny = 1 - torch.exp(x)\n", False),
    ("TL603", "import torch\ny = torch.log(torch.exp(x).sum(dim=1))\n", True),
    ("TL603", "import torch\ny = torch.log(torch.sum(torch.exp(x), dim=1))\n", True),
    ("TL603", "import torch\ny = torch.exp(x)\nz = torch.log(y.sum(1))\n", False),
    ("TL603", "import torch\nz = torch.exp(x).sum(1)\nw = torch.log(z)\n", False),  # summed, then logged elsewhere
    ("TL603", "import torch\nz = (\n    torch.exp(x).sum(dim=0)\n).log()\n", True),
]


MODEL_CASES = [
    ("TL103", "import torch.nn as nn\nimport torch.nn.functional as F\ncriterion = nn.CrossEntropyLoss()\nloss = criterion(F.softmax(model(x), dim=1), y)\n", True),
    ("TL103", "import torch.nn.functional as F\nloss = F.nll_loss(F.softmax(model(x), dim=1), y)\n", True),
    ("TL103", "import torch.nn.functional as F\nloss = criterion(F.softmax(model(x), dim=1), y)\n", False),  # criterion: a loss, of no known kind
    # The activation only in a docstring (torch's own loss classes document their inputs so).
    ("TL103", 'import torch.nn.functional as F\ndef nll(x, y):\n    """x: the output of log_softmax, or Softmax then log."""\n'
              "    return F.nll_loss(x, y)\n", False),
    ("TL103", "import torch.nn as nn\nmodel = nn.Sequential(nn.Linear(2, 3), nn.Softmax(dim=1))\nloss = nn.CrossEntropyLoss()(model(x), y)\n", True),
    ("TL107", "import torch.nn as nn\nlayer = nn.Linear(2, 2)\ny = layer.forward(x)\n", True),
    ("TL107", "import torch.nn as nn\nclass Net(nn.Module):\n    def forward(self, x):\n        return x\nnet = Net()\ny = net.forward(x)\n", True),
    ("TL107", "y = model.forward(x)\n", False),  # a name is no known class
    ("TL107", "import torch.nn as nn\nlayer = nn.Linear(2, 2)\ny = make().forward(x)\n", False),
    ("TL107", "from mylib import Block\nblock = Block()\ny = block.forward(x)\n", False),
]


LOOP_CASES = [
    ("TL101", "for x, y in loader:\n    loss = criterion(model(x), y)\n    loss.backward()\n    optimizer.step()\n", True),
    ("TL101", "while True:\n    loss = criterion(model(x), y)\n    loss.backward()\n    optimizer.step()\n", True),
    ("TL101", "loss.backward()\noptimizer.step()\nfor x in xs:\n    print(x)\n", False),
    ("TL106", "for x, y in loader:\n    scheduler.step()\n    loss = criterion(model(x), y)\n    optimizer.zero_grad()\n    loss.backward()\n    optimizer.step()\n", True),
    ("TL106", "for epoch in range(3):\n    optimizer.zero_grad()\n    optimizer.step()\n    loss = criterion(model(x), y)\n    loss.backward()\n", True),
    ("TL106", "for x, y in loader:\n    optimizer.step()\nscheduler.step()\n", False),
    ("TL106", "while True:\n    scheduler.step()\n    optimizer.step()\n", True),
    ("TL106", "for x in loader:\n    optimizer.step()\nfor x in loader:\n    scheduler.step()\n", False),
]


@pytest.mark.parametrize("code, source, reported", LOOP_CASES)
def test_loop_prechecks(code, source, reported, monkeypatch):
    gate = _active(code, source)
    forced = _forced(code, source, monkeypatch)
    assert bool(forced) is reported
    if reported:
        assert gate


_RUN = "def run(net, data):\n    net.eval()\n    for x, y in data:\n        out = net(x)\n"
_EVAL_MODEL = "import torch\nmodel = torch.nn.Linear(2, 2)\nmodel.eval()\n"
EVAL_CASES = [
    ("TL104", "import torch\nmodel = torch.nn.Linear(2, 2)\nfor x, y in test_loader:\n    out = model(x)\n", True),
    ("TL104", "import torch\nfrom torch.utils.data import DataLoader as DL\nmodel = torch.nn.Linear(2, 2)\nmodel.eval()\nfor x, y in DL(ds):\n    out = model(x)\n", True),
    ("TL104", "import torch\nmodel = torch.nn.Linear(2, 2)\nmodel.eval()\n# a DataLoader would be nice here\nfor x, y in batches:\n    out = model(x)\n", False),
    ("TL105", "import torch\nmodel = torch.nn.Dropout(0.5)\ndef evaluate(xs):\n    with torch.no_grad():\n        for x in xs:\n            model(x)\n", True),
    ("TL105", "import torch\nmodel = torch.nn.Dropout(0.5)\nfor x, y in val_loader:\n    with torch.no_grad():\n        model(x)\n", True),
    ("TL105", "import torch\n# the loader comes later\nmodel = torch.nn.Dropout(0.5)\ndef run(xs):\n    with torch.no_grad():\n        for x in xs:\n            model(x)\n", False),
] + [
    # The loader reaches the loop through a parameter, an attribute, functools.partial, a return,
    # a renamed tqdm, enumerate(tqdm(iterable=...)) (analysis/value_flows.py) ...
    ("TL104", "import torch\n" + _RUN + "run(torch.nn.Linear(2, 2), test_loader)\n", True),
    ("TL104", "import torch\nclass Evaluator:\n    def __init__(self, data):\n        self.data = data\n    def run(self, net):\n"
              "        net.eval()\n        for x, y in self.data:\n            out = net(x)\nEvaluator(test_loader).run(torch.nn.Linear(2, 2))\n", True),
    ("TL104", "import torch\nimport functools\n" + _RUN + "functools.partial(run, torch.nn.Linear(2, 2), test_loader)()\n", True),
    ("TL104", _EVAL_MODEL + "from torch.utils.data import DataLoader\ndef batches():\n    return DataLoader(ds)\nfor x, y in batches():\n    out = model(x)\n", True),
    ("TL104", _EVAL_MODEL + "from tqdm import tqdm as progress\nfor x, y in progress(test_loader):\n    out = model(x)\n", True),
    ("TL104", _EVAL_MODEL + "from tqdm import tqdm\nfor i, (x, y) in enumerate(tqdm(iterable=test_loader)):\n    out = model(x)\n", True),
    # ... but not to a loop over something else, whatever the file calls a loader (an import
    # loader, torch inductor's make_loader closures).
    ("TL104", "import torch\n" + _RUN + "run(torch.nn.Linear(2, 2), batches)\n", False),
    ("TL104", _EVAL_MODEL + "import importlib.util\nloader = importlib.util.find_spec('m').loader\nfor x in range(3):\n    out = model(x)\n", False),
    ("TL104", _EVAL_MODEL + "def make_loader(t):\n    def inner(i):\n        return t[i]\n    return inner\nloader = make_loader(w)\n"
              "for i in range(4):\n    out = model(loader(i))\n", False),
    # An evaluation function calls a module of known mode: one it is given, built from torch.nn ...
    ("TL105", "import torch\ndef evaluate(net, xs):\n    with torch.no_grad():\n        for x in xs:\n            net(x)\n"
              "evaluate(torch.nn.Dropout(0.5), data)\n", True),
    # ... not a module only named so (its mode is unknown), nor a validation helper calling a callback.
    ("TL105", "import torch\nclass Net(torch.nn.Module):\n    pass\ndef evaluate(model, xs):\n    with torch.no_grad():\n"
              "        for x in xs:\n            model(x)\n", False),
    ("TL105", "import torch\nclass Block(torch.nn.Module):\n    pass\ndef _validate_inputs(fn, args):\n    return fn(*args)\n", False),
]

_LENET = (
    "import torch\nimport torch.nn as nn\n\nclass Net(nn.Module):\n    def __init__(self):\n        super().__init__()\n"
    "        self.conv = nn.Conv2d(3, 6, 5)\n        self.fc = nn.Linear(6 * 5 * 5, 10)\n\n    def forward(self, x):\n"
    "        return self.fc(self.conv(x).view(-1, 6 * 5 * 5))\n\nNet()(torch.randn(1, 3, 32, 32))\n"
)
SHAPE_CASES = [
    ("TL301", _LENET, True),
    ("TL301", "import torch\nfrom torch import nn\nmodel = nn.Sequential(\n    nn.Flatten(),\n    nn.Linear(784, 10),\n)\nmodel(torch.randn(2, 1, 28, 27))\n", True),
    # A multi-line class statement.
    ("TL301", _LENET.replace("class Net(nn.Module):", "class Net(\n    nn.Module\n):"), True),
    # The same model, only in a docstring (library code documenting one): nothing to check.
    ("TL301", 'import torch\ndef f(x):\n    """' + _LENET.replace("\\", "") + '"""\n    return x.view(-1)\n', False),
    # A class statement in a string, a Linear in code.
    ("TL301", "import torch.nn as nn\nDOC = 'class Net(nn.Module): ...'\nlayer = nn.Linear(4, 2)\nother = nn.Linear(3, 5)\nlayer(other(x))\n", False),
]


@pytest.mark.parametrize("code, source, reported", CALL_CASES + MATH_CASES + MODEL_CASES + EVAL_CASES + SHAPE_CASES)
def test_precheck_passes_exactly_where_the_forced_rule_reports(code, source, reported, monkeypatch):
    gate = _active(code, source)
    forced = _forced(code, source, monkeypatch)
    assert bool(forced) is reported
    assert gate is reported


WORDS_TEXTS = [
    "to", "xto", "to_", "TO", "(to)", "a.to(b)", "\rto\n  to\r\n", "aToZ\nnetwork", "İto to\nMODEL",
    "x = 1\ny = Net()\nz = 2\n", "# model\n'x'\ncuda\n", "ſ loſs\nK\n", "ʻto", "tó to",
]


@pytest.mark.parametrize("text", WORDS_TEXTS)
def test_words_find_the_lines_of_their_alternation(text):
    import re

    from torchlint.gates import Words, lines_matching

    words = Words(("model", "net", "loss", "cuda"), bounded=("to",))
    alternation = re.compile(r"(?i)model|net|loss|cuda|\bto\b")
    assert lines_matching(text, words) == lines_matching(text, alternation)


def _reference_statements(body):
    for stmt in body:
        yield stmt
        for attr in ("body", "orelse", "finalbody"):
            yield from _reference_statements(getattr(stmt, attr, None) or [])
        for handler in getattr(stmt, "handlers", ()):
            yield from _reference_statements(handler.body)
        for case in getattr(stmt, "cases", ()):
            yield from _reference_statements(case.body)


def test_all_statements_lists_every_statement_once():
    """Each statement before those it holds, its blocks in the order body, else, finally, handlers, cases."""
    from pathlib import Path

    from torchlint.gates import all_statements

    root = Path(__file__).resolve().parent.parent
    texts = [p.read_text(encoding="utf-8") for p in sorted((root / "torchlint").rglob("*.py"))[:60]]
    texts.append("match x:\n    case 1:\n        a = 1\n    case _:\n        try:\n            b\n        except E:\n            c; d\n        else:\n            e\n        finally:\n            f\n")
    for text in texts:
        tree = ast.parse(text)
        listed = all_statements(tree)
        assert listed == list(_reference_statements(tree.body))
        assert sorted(map(id, listed)) == sorted(id(n) for n in ast.walk(tree) if isinstance(n, ast.stmt))


# (code, source, reported by the forced rule, passed by the pre-check): the pre-checks of TL702
# and TL206 look for what the rule can report on CPython's tree, not for a substring.
_OPT = "import torch\nopt = torch.optim.SGD(params, lr=0.1)\n"
_T = "import torch\n"
WORD_GATE_CASES = [
    ("TL702", _OPT + "opt.zero_grad(set_to_none=False)\n", True, True),
    ("TL702", _OPT + "opt.zero_grad(False)\n", True, True),
    ("TL702", _OPT + "opt.\\\n    zero_grad(\n        # keep them\n        set_to_none=(False),\n    )\n", True, True),
    ("TL702", _OPT + "for _ in range(3):\n    if True:\n        opt.zero_grad(set_to_none=False)\n", True, True),
    # A bare call is reported where the project targets torch < 2.0: the pre-check cannot tell.
    ("TL702", _OPT + "opt.zero_grad()\n", False, True),
    ("TL702", _OPT + "opt.zero_grad(set_to_none=True)\n", False, False),
    ("TL702", _OPT + "opt.zero_grad(True)  # not zero_grad(False)\n", False, False),
    ("TL702", _OPT + "opt.zero_grad(*flags)\nopt.zero_grad(**{'set_to_none': False})\n", False, False),
    ("TL702", _OPT + "opt.zero_grad_hooks = [False]\nzero_grad(False)\nopt.zero_grad.x(False)\n", False, False),
    ("TL702", _OPT + "s = 'opt.zero_grad(set_to_none=False)'\n", False, False),
    ("TL206", _T + "for p in model.parameters():\n    p.require_grad = False\n", True, True),
    ("TL206", _T + "x = torch.randn(4, require_grad=True)\n", True, True),
    ("TL206", _T + "x = torch.randn(\n    4,\n    # typo\n    require_grad\n    =True,\n)\n", True, True),
    ("TL206", _T + "model.fc.weight.\\\n    require_grad = True\n", True, True),
    ("TL206", _T + "a = model.fc\na.weight.require_grad: bool = True\n", True, True),
    ("TL206", _T + "def f(x):\n    class A:\n        def g(self):\n            x.require_grad = 0\n    return A\n", True, True),
    ("TL206", _T + "inputs_require_grad = True\ncan_require_grad = f(x, inputs_require_grad=True)\n", False, False),
    ("TL206", _T + "# outputs that require_grad\nx = 'do not require_grad'\n", False, False),
    ("TL206", _T + "def make(shape, require_grad=False):\n    return torch.zeros(shape, requires_grad=require_grad)\n", False, False),
    ("TL206", _T + "if p.require_grad:\n    pass\nrequire_grad = True\n", False, False),
    ("TL206", _T + "x = torch.randn(4, **{'require_grad': True})\n", False, False),
]


@pytest.mark.parametrize("code, source, reported, passes", WORD_GATE_CASES)
def test_word_prechecks_pass_what_the_rule_reports(code, source, reported, passes, monkeypatch):
    gate, forced = _gate_and_rule(code, source, reported, passes, monkeypatch)
    assert gate or not forced


@pytest.mark.parametrize("code", ["TL206", "TL702"])
def test_word_prechecks_pass_a_rules_own_examples(code):
    for example in all_rules()[code].INVALID:
        assert _active(code, example.code), (code, example.code)


FLOW_CASES = [
    # (source, may a for loop run over a loader?, may ``evaluate`` call a module of known mode?)
    ("for x in loader:\n    pass\n", True, False),
    ("for x in zip(train_loader, val_loader):\n    pass\n", False, False),  # the model sees no loader in zip()
    ("loaders = {'train': a}\nfor x in loaders['train']:\n    pass\n", True, False),
    ("it = iter(test_loader)\nfor x in it:\n    pass\n", True, False),
    ("def apply(fn, data):\n    fn(data)\ndef run(d):\n    for x in d:\n        pass\napply(run, my_loader)\n", True, False),
    ("f = lambda: val_loader\nfor x in f():\n    pass\n", True, False),
    ("def evaluate(x):\n    return net(x)\nnet = load()\nnet.eval()\n", False, True),
    ("def evaluate(x):\n    return net(x)\nnet = load()\n", False, False),
    ("import torch.nn as nn\ndef evaluate(x):\n    return layer(x)\nlayer = nn.Dropout(0.1)\n", False, True),
    ("def evaluate(x):\n    return layer(x)\nlayer = nn.Dropout(0.1)\n", False, True),  # a document's nn, not imported
    ("def prepare(m):\n    m.train()\ndef evaluate(x):\n    return net(x)\nnet = load()\nprepare(net)\n", False, True),
    ("class Net:\n    pass\ndef evaluate(x):\n    m = Net().to('cpu')\n    return m(x)\n", False, True),
    ("class Net:\n    pass\ndef evaluate(x):\n    return Net().to('cpu')(x)\n", False, False),  # (the rule asks for a named callee)
    ("def evaluate(x):\n    def inner():\n        return net(x)\n    return inner\nnet = load()\nnet.eval()\n", False, False),
]


@pytest.mark.parametrize("source, loops, calls", FLOW_CASES)
def test_value_flows_follow_loaders_and_known_modes(source, loops, calls):
    import ast

    from torchlint.analysis.value_flows import LoaderFlow, ModeFlow
    from torchlint.gates import import_table

    tree = ast.parse(source)
    table = import_table(source)
    assert LoaderFlow(tree, table).loops_over_loader() is loops
    evaluate = next(s for s in tree.body if isinstance(s, ast.FunctionDef) and s.name == "evaluate") if "def evaluate" in source else None
    if evaluate is not None:
        assert ModeFlow(tree, table).called_in(evaluate) is calls


SCOPE_CASES = [
    # (source, may a for loop run over a loader?): names resolve as Python resolves them.
    ("def f():\n    global data\n    data = DataLoader(ds)\nfor x in data:\n    pass\n", True),
    ("def f():\n    data = DataLoader(ds)\nfor x in data:\n    pass\n", False),  # f's own data
    ("def outer():\n    data = None\n    def inner():\n        nonlocal data\n        data = DataLoader(ds)\n    for x in data:\n        pass\n", True),
    ("def outer():\n    data = DataLoader(ds)\n    def inner():\n        for x in data:\n            pass\n", True),  # a closure
    ("class C:\n    data = DataLoader(ds)\n    def run(self):\n        for x in self.data:\n            pass\n", True),  # a class attribute
    ("class C:\n    data = DataLoader(ds)\n    def run(self):\n        for x in data:\n            pass\n", False),  # not seen from methods
    ("batches = [(d := DataLoader(s)) for s in sets]\nfor x in d:\n    pass\n", True),  # := binds around the comprehension
    ("pairs = [data for data in DataLoader(ds)]\nfor x in data:\n    pass\n", False),  # the comprehension's own data
    ("f = lambda data=DataLoader(ds): data\nfor x in data:\n    pass\n", False),
    ("f = lambda data=DataLoader(ds): [x for x in data]\nfor x in f():\n    pass\n", False),  # (a comprehension is no loader)
    ("def run(data):\n    for x in data:\n        pass\ndef other(data):\n    return data\nother(DataLoader(ds))\n", False),
    ("def run(data):\n    for x in data:\n        pass\nrun(DataLoader(ds))\n", True),
]


@pytest.mark.parametrize("source, loops", SCOPE_CASES)
def test_value_flows_resolve_names_by_scope(source, loops):
    import ast

    from torchlint.analysis.value_flows import LoaderFlow
    from torchlint.gates import import_table

    source = "from torch.utils.data import DataLoader\n" + source
    assert LoaderFlow(ast.parse(source), import_table(source)).loops_over_loader() is loops


GRAPH_CASES = [
    # A loss reaches the accumulator through a function's return, a loss function, forward(), a
    # module passed as a parameter (analysis/value_flows.py: GradFlow) ...
    ("import torch\ndef step(net, x, y):\n    return torch.nn.functional.cross_entropy(net(x), y)\ntotal = 0\n"
     "for x, y in loader:\n    total += step(model, x, y)\n", True),
    ("import torch\nnet = torch.nn.Linear(2, 2)\nhist = []\nfor x in xs:\n    out = net.forward(x)\n    loss = out.mean()\n    hist.append(loss)\n", True),
    ("import torch\nfrom torch.nn import functional as F\ntotal = 0\nfor x, y in loader:\n    l = F.mse_loss(model(x), y)\n    l.backward()\n    total += l\n", True),
    ("import torch\ndef run(fn, x):\n    return fn(x)\ntotal = 0\nfor x in xs:\n    total += run(model, x)\n", True),
    # ... not sizes, lengths and numbers in a file that also calls modules (torch's own code).
    ("import torch\nnet = torch.nn.Linear(2, 2)\noffset = 0\nfor p in net.parameters():\n    offset += p.numel()\n", False),
    ("import torch\nmodel = torch.nn.Linear(2, 2)\nsizes = 0\nfor name in names:\n    sizes += len(name)\n", False),
    ("import torch\nmodel = torch.nn.Linear(2, 2)\nout = model(x)\ntotal = 0\nfor i in range(3):\n    total += float(out.sum())\n", False),
    ("import torch\nmodel = torch.nn.Linear(2, 2)\nfor b in blocks:\n    size = b['size']\n    total_loss_bytes = 0\n    for s in segs:\n"
     "        total_loss_bytes += size\n", False),
    # Names are variables of their scope (analysis/value_flows.py, _Facts): a module's model read in a
    # function, a method's result on self, a closure's enclosing variable reach the accumulator ...
    ("import torch\nnet = torch.nn.Linear(2, 2)\ndef train(xs):\n    total = 0\n    for x in xs:\n        total += net(x).sum()\n"
     "    print(total)\n", True),
    ("import torch\nclass T:\n    def __init__(self):\n        self.net = torch.nn.Linear(2, 2)\n    def loss(self, x):\n"
     "        return self.net(x).sum()\n    def run(self, xs):\n        total = 0\n        for x in xs:\n            total += self.loss(x)\n"
     "        print(total)\n", True),
    ("import torch\ndef train(xs):\n    net = torch.nn.Linear(2, 2)\n    def step(x):\n        return net(x).sum()\n    total = 0\n"
     "    for x in xs:\n        total += step(x)\n    print(total)\n", True),
    # ... but one function's `x` is not another's, an attribute is not a parameter of that name, a
    # method of the file is not what a call of an unknown object's method of that name gives, and a
    # call through a variable that never holds a function of the file (`log.info(...)`) passes nothing.
    ("import torch\nnet = torch.nn.Linear(2, 2)\ndef a(i):\n    x = net(i)\n    x.sum().backward()\ndef b(names):\n    total = 0\n"
     "    for n in names:\n        x = len(n)\n        total += x\n    print(total)\n", False),
    ("import torch\nclass M(torch.nn.Module):\n    def forward(self, x):\n        self.out = self.model(x)\n        return self.out\n"
     "def count(out):\n    total = 0\n    for o in out:\n        total += o\n    print(total)\ncount(sizes)\n", False),
    ("import torch\nclass Flat:\n    def __init__(self):\n        self.net = torch.nn.Linear(2, 2)\n    def numel(self, x):\n"
     "        return self.net(x)\ntotal = 0\nfor p in params:\n    total += p.numel()\nprint(total)\n", False),
    ("import torch\nimport logging\nlog = logging.getLogger()\nnet = torch.nn.Linear(2, 2)\ndef keep(size):\n    return size\n"
     "hooks = [keep]\ndef run(xs, info=None):\n    y = net(xs)\n    log.info('%s', y)\n    total = 0\n    for s in sizes:\n        total += keep(s)\n    print(total)\n", False),
]


@pytest.mark.parametrize("source, reported", GRAPH_CASES)
def test_tl102_precheck_follows_the_graph_to_the_added_value(source, reported, monkeypatch):
    gate = _active("TL102", source)  # (before _forced patches the pre-check away)
    assert bool(_forced("TL102", source, monkeypatch)) is reported
    assert gate is reported


@pytest.mark.parametrize(
    "code, tail",
    [
        # A 6,000-term sum and a 6,000-link attribute chain: the flows recurse over expressions.
        ("TL102", "total = 0\nfor x in loader:\n    total += " + "+".join(["model(x)"] * 6000) + "\n"),
        ("TL102", "total = 0\nfor x in loader:\n    total += model(x)" + ".T" * 6000 + "\n"),
        ("TL104", "model.eval()\nfor x in " + ".".join(["loader"] * 6000) + ":\n    model(x)\n"),
    ],
    ids=["sum", "attributes", "loader-chain"],
)
def test_value_flows_too_deep_leave_the_verdict_to_cpython(code, tail):
    """Nesting deeper than the flows can follow opens the gate rather than crashing the lint: CPython's
    verdict then judges the file (TL001 where it cannot compile it), as without the pre-check."""
    source = "import torch\nmodel = torch.nn.Linear(2, 2)\n" + tail
    report = lint_source(source, "x.py", LintOptions(codes=frozenset({code})))
    assert report.errors == []
    assert [f.code for f in report.findings] in ([], ["TL001"])


_EDGES = [
    "x.to(d)\n", "  self.to(d)\n", "self.x.to(d)\n", "a = b.to(c)\n", "\r\nx[0].cuda()\r", "y.to(x).cuda()\n", "self.to(x).cuda()\n",
    "if a: x.cuda()\n", "\tnet.float()\nfor b in train_loader:\n    x = b.to(dev)\n", "it = iter(val_loader)\nx.cuda()\n",
    "ds = DataLoader(d)\nm.to(0)", "async for b in loader:\n    b.to(d)\n", "for loader in x: pass\ny.to(d)", "x = loader.__iter__()\n.to(",
    "for x in y:  # not a loader\ny.to(d)\n", "x.to (d)\n", "x.ToTensor()\n", "CrossEntropy NLL\n", "cross_entropy()\n", "withlogits\n",
    "BCEWithLogitsLoss\n", "nll_loss\n", "# nothing\n", "",
]


def test_fast_trigger_patterns_match_where_their_plain_regexes_do():
    """OnLines and WordsFirst (gates.py) search only where a literal is: the same answer as the regex
    they stand for, which the regex engine tries at every character."""
    import re
    from pathlib import Path

    from torchlint.rules import all_rules

    plain = {
        "TL402": re.compile(
            r"(?:\A|[\r\n])[ \t]*(?!self\.(?:to|cuda|cpu|float|half|double|bfloat16|long|int|type)\()"
            r"[A-Za-z_][\w.]*(?:\[[^\]\n]*\])?\.(?:to|cuda|cpu|float|half|double|bfloat16|long|int|type)\("
        ),
        "TL401": re.compile(
            r"(?s)\A(?=.*?(?:(?:\A|[\r\n])[ \t]*(?:async[ \t]+)?for\b[^\r\n]*\bin\b[^\r\n]*oader|iter\([^\r\n]*oader|oader[^\r\n]*__iter__|DataLoader\())"
        ),
        "TL103": re.compile(r"[Cc]ross_?[Ee]ntropy|NLL|nll_loss|[Ww]ith_?[Ll]ogits"),
    }
    root = Path(__file__).resolve().parent.parent
    texts = _EDGES + [p.read_text(encoding="utf-8", errors="replace") for p in sorted((root / "fixtures").rglob("*.py"))]
    rules = all_rules()
    for code, regex in plain.items():
        fast = rules[code].trigger_pattern
        for text in texts:
            assert (fast.search(text) is not None) is (regex.search(text) is not None), (code, text[:80])
