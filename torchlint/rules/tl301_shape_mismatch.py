from __future__ import annotations

import ast
import functools
import re
from typing import Any

import libcst as cst

from torchlint.analysis.model import program_model
from torchlint.analysis.values import ModuleV, TensorV
from torchlint.names import dotted_name
from torchlint.rules.base import FixSpec, Invalid, RelatedSpec, Replace, Rule
from torchlint.shapes import analyze_module
from torchlint.shapes.layers import SIGNATURES


# What applies_to looks for, line by line: a layer or operation that can fail on a size (by its
# own name: an import alias names it on its import line; softmax keeps any shape), a class
# statement, a Sequential.
_LAYERS = frozenset(
    {*(k for k in SIGNATURES if "Softmax" not in k), *(f"{p}{n}d" for p in ("max_pool", "avg_pool", "adaptive_avg_pool", "adaptive_max_pool") for n in (1, 2, 3))}
    | {"view", "reshape", "flatten", "GroupNorm"}
)
# The words, by a piece each contains (a piece absent from the text rules its words out at C speed).
_PIECES = {p: frozenset(w for w in _LAYERS if p in w) for p in ("Linear", "Conv", "Norm", "Pool", "_pool", "view", "reshape", "latten", "LSTM", "GRU", "RNN", "Embedding")}
assert set().union(*_PIECES.values()) == _LAYERS


@functools.lru_cache(maxsize=None)
def _word_pattern(word: str) -> re.Pattern[str]:
    return re.compile(word + r"\b")  # led by a literal: searched at C speed


def _lines_with(source: str, words: frozenset[str]) -> list[int]:
    from torchlint.gates import lines_matching

    return sorted({line for w in words for line in lines_matching(source, _word_pattern(w))})
_CLASS_WORD = re.compile(r"class\b")
_SEQUENTIAL_CALL = re.compile(r"Sequential\s*\(")


def _is_model(node: ast.AST, table: Any) -> bool:
    """A class the analysis follows (its bases resolve to torch.nn.Module), or a ``...Sequential(...)``."""
    from torchlint.gates import dotted_text
    from torchlint.shapes.interp import MODULE_BASES

    if isinstance(node, ast.ClassDef):
        return any(table.resolve(dotted_text(b) or "-") & MODULE_BASES for b in node.bases)
    if isinstance(node, ast.Call):
        f = node.func
        return (f.attr if isinstance(f, ast.Attribute) else f.id if isinstance(f, ast.Name) else "").endswith("Sequential")
    return False


class ShapeMismatch(Rule):
    """
    ## What it does
    Follows the shapes through a model's `__init__` and `forward` (conv, pool,
    batch norm, linear, flatten, `view`/`reshape`, LSTM/GRU, `nn.Sequential`,
    nested modules) with the input the file gives it: a tensor passed to the
    model, a `summary()` call, or the torchvision dataset behind its DataLoader
    (MNIST 1×28×28, CIFAR-10 3×32×32, ... after Resize/CenterCrop/Grayscale).
    It reports a size that cannot fit: a `view(-1, N)` whose N is not the
    features per sample, a `Linear` whose `in_features` is not what arrives, a
    conv fed the wrong number of channels, a pool that shrinks the image to
    nothing. Some mismatches need no input at all, such as two consecutive
    `Linear` layers whose sizes disagree.

    ## Why is this bad?
    The model crashes on its first batch with `mat1 and mat2 shapes cannot be
    multiplied` or `shape '[-1, 256]' is invalid for input of size 1600`, often
    far from the line to change. Worse, `view(-1, N)` with an N that happens to
    divide the batch silently changes the batch size: LeNet's `view(-1, 400)` on
    3×28×28 images turns a batch of 25 into 16 rows that no longer match their
    labels. Such a silent batch change is reported only when the first dimension
    is known to be a batch: the input comes from a DataLoader, or the file also
    applies the model to a loader's batches (`x.view(-1)` on one unbatched
    `torch.randn(3, 10, 20)` is just a flatten).

    ## Example
    ```python
    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(3, 16, 5)
            self.fc = nn.Linear(16 * 12 * 12, 10)

        def forward(self, x):
            x = F.max_pool2d(F.relu(self.conv(x)), 2)
            return self.fc(x.view(-1, 16 * 12 * 12))

    net = Net()
    net(torch.randn(1, 3, 32, 32))  # conv + pool give 16×14×14
    ```

    ## Use instead
    ```python
            self.fc = nn.Linear(16 * 14 * 14, 10)
            ...
            return self.fc(x.view(x.size(0), -1))
    ```

    ## Fix safety
    The fix is unsafe: it rewrites the size literal (a `Linear`'s `in_features`,
    or the N of `view(-1, N)` together with the `Linear` that consumes it) to the
    size computed for the input the file uses; if the model is meant for another
    input, the architecture is what needs changing. It is offered only when the
    input is known and the literal is used once. The rule stays silent when the
    input cannot be known (custom datasets, Lambda transforms, models from
    other modules, data-dependent control flow in `forward`, lazy modules).
    """

    code = "TL301"
    incremental = True  # findings depend on the statements linked to theirs (torchlint/slices.py)
    name = "shape-mismatch"
    message = "shape mismatch"
    # Only files that define a model (a Module subclass or an nn.Sequential) and use a layer whose
    # sizes can disagree can have a finding: most files of a large tree are skipped unparsed.
    triggers = ("Module", "Sequential")
    confirmable = True

    @classmethod
    def applies_to(cls, source: str) -> bool:
        # In code, not in a docstring: a layer, and a class with a *Module base or a Sequential.
        from torchlint.gates import identifiers_on, import_table, lines_matching, nodes_on
        from torchlint.incremental import python_ast

        table = import_table(source)
        if table is None:
            return True
        tree = python_ast(source, keep=True)
        lines = sorted({*lines_matching(source, _CLASS_WORD), *lines_matching(source, _SEQUENTIAL_CALL)})
        if not any(_is_model(node, table) for node in nodes_on(tree, lines)):
            return False
        words = frozenset().union(*(w for p, w in _PIECES.items() if p in source))
        return any(x in _LAYERS for x in identifiers_on(tree, _lines_with(source, words)))

    VALID = [
        # LeNet on CIFAR-10: 16×5×5 = 400 after the second pool.
        "import torch\nimport torch.nn as nn\nimport torch.nn.functional as F\n\n"
        "class Net(nn.Module):\n    def __init__(self):\n        super().__init__()\n"
        "        self.conv1 = nn.Conv2d(3, 6, 5)\n        self.conv2 = nn.Conv2d(6, 16, 5)\n"
        "        self.fc1 = nn.Linear(16 * 5 * 5, 120)\n\n    def forward(self, x):\n"
        "        x = F.max_pool2d(F.relu(self.conv1(x)), 2)\n        x = F.max_pool2d(F.relu(self.conv2(x)), 2)\n"
        "        return self.fc1(x.view(-1, 16 * 5 * 5))\n\nnet = Net()\nout = net(torch.randn(1, 3, 32, 32))\n",
        # The input comes from a custom Dataset: unknown, so nothing is judged.
        "import torch.nn as nn\nfrom torch.utils.data import DataLoader\nfrom mydata import FaceDataset\n\n"
        "class Net(nn.Module):\n    def __init__(self):\n        super().__init__()\n        self.conv = nn.Conv2d(3, 8, 3)\n"
        "        self.fc = nn.Linear(8 * 30 * 30, 2)\n\n    def forward(self, x):\n        return self.fc(self.conv(x).view(x.size(0), -1))\n\n"
        "model = Net()\nfor images, labels in DataLoader(FaceDataset('faces/'), batch_size=8):\n    model(images)\n",
        # AdaptiveAvgPool makes the Linear's input size independent of the image size.
        "import torch\nfrom torch import nn\n\nmodel = nn.Sequential(\n    nn.Conv2d(1, 32, 3), nn.ReLU(), nn.AdaptiveAvgPool2d(1),\n"
        "    nn.Flatten(), nn.Linear(32, 10),\n)\nmodel(torch.randn(4, 1, 100, 100))\n",
        # Not torch.nn: a user's own Linear class.
        "from mylib import Module, Linear\n\nclass Net(Module):\n    def __init__(self):\n        self.a = Linear(10, 20)\n"
        "        self.b = Linear(30, 5)\n\n    def forward(self, x):\n        return self.b(self.a(x))\n",
        # Data-dependent control flow in forward: silent after it.
        "import torch\nimport torch.nn as nn\n\nclass Net(nn.Module):\n    def __init__(self):\n        super().__init__()\n"
        "        self.small = nn.Linear(10, 4)\n        self.big = nn.Linear(20, 4)\n\n    def forward(self, x):\n"
        "        if x.shape[1] == 10:\n            return self.small(x)\n        return self.big(x)\n\nNet()(torch.randn(2, 10))\n",
        # view(x.size(0), -1) keeps the batch and adapts to the features.
        "import torch\nimport torch.nn as nn\n\nclass Net(nn.Module):\n    def __init__(self):\n        super().__init__()\n"
        "        self.conv = nn.Conv2d(1, 4, 3, padding=1)\n        self.fc = nn.Linear(4 * 28 * 28, 10)\n\n"
        "    def forward(self, x):\n        x = self.conv(x)\n        return self.fc(x.view(x.size(0), -1))\n\nNet()(torch.randn(8, 1, 28, 28))\n",
    ]
    INVALID = [
        Invalid(
            "import torch\nimport torch.nn as nn\nimport torch.nn.functional as F\n\n"
            "class Net(nn.Module):\n    def __init__(self):\n        super().__init__()\n"
            "        self.conv1 = nn.Conv2d(3, 6, 5)\n        self.conv2 = nn.Conv2d(6, 16, 5)\n"
            "        self.fc1 = nn.Linear(16 * 4 * 4, 120)\n\n    def forward(self, x):\n"
            "        x = F.max_pool2d(F.relu(self.conv1(x)), 2)\n        x = F.max_pool2d(F.relu(self.conv2(x)), 2)\n"
            "        return self.fc1(x.view(-1, 16 * 4 * 4))\n\nnet = Net()\nout = net(torch.randn(1, 3, 32, 32))\n",
            "import torch\nimport torch.nn as nn\nimport torch.nn.functional as F\n\n"
            "class Net(nn.Module):\n    def __init__(self):\n        super().__init__()\n"
            "        self.conv1 = nn.Conv2d(3, 6, 5)\n        self.conv2 = nn.Conv2d(6, 16, 5)\n"
            "        self.fc1 = nn.Linear(16 * 5 * 5, 120)\n\n    def forward(self, x):\n"
            "        x = F.max_pool2d(F.relu(self.conv1(x)), 2)\n        x = F.max_pool2d(F.relu(self.conv2(x)), 2)\n"
            "        return self.fc1(x.view(-1, 16 * 5 * 5))\n\nnet = Net()\nout = net(torch.randn(1, 3, 32, 32))\n",
        ),
        Invalid(
            "import torch\nfrom torch import nn\n\nmodel = nn.Sequential(\n    nn.Conv2d(1, 10, 5), nn.MaxPool2d(2), nn.ReLU(),\n"
            "    nn.Flatten(), nn.Linear(320, 10),\n)\nmodel(torch.randn(64, 1, 28, 28))\n",
            "import torch\nfrom torch import nn\n\nmodel = nn.Sequential(\n    nn.Conv2d(1, 10, 5), nn.MaxPool2d(2), nn.ReLU(),\n"
            "    nn.Flatten(), nn.Linear(1440, 10),\n)\nmodel(torch.randn(64, 1, 28, 28))\n",
        ),
        # Consecutive layers that disagree: wrong whatever the input.
        Invalid(
            "import torch.nn as nn\n\nclass MLP(nn.Module):\n    def __init__(self):\n        super().__init__()\n"
            "        self.fc1 = nn.Linear(784, 128)\n        self.fc2 = nn.Linear(64, 10)\n\n"
            "    def forward(self, x):\n        return self.fc2(self.fc1(x))\n",
        ),
        # A 3-channel conv fed MNIST's single channel.
        Invalid(
            "import torch\nimport torch.nn as nn\nfrom torchvision import datasets, transforms\n\n"
            "class Net(nn.Module):\n    def __init__(self):\n        super().__init__()\n        self.conv = nn.Conv2d(3, 8, 3)\n"
            "        self.fc = nn.Linear(8 * 26 * 26, 10)\n\n    def forward(self, x):\n        return self.fc(self.conv(x).flatten(1))\n\n"
            "train = datasets.MNIST('data', train=True, download=True, transform=transforms.ToTensor())\n"
            "loader = torch.utils.data.DataLoader(train, batch_size=32)\nmodel = Net()\n"
            "for x, y in loader:\n    loss = model(x).sum()\n",
        ),
    ]

    # The analysis reads the program model's tables and answers (torchlint/analysis/): nothing
    # to gather during the traversal.
    def leave_Module(self, node: cst.Module) -> None:
        report = analyze_module(self.context)
        for p in report.problems:
            if p.assumes_batch and not self._applied_to_batches(p.model, p.data.get("constructor")):
                continue  # `x.view(-1)` on one unbatched sample folds nothing
            fix = None
            if p.fix is not None:
                message, edits = p.fix
                fix = FixSpec(message, tuple(Replace(n, text) for n, text in edits), applicability="unsafe")
            self.report(
                p.node,
                p.message,
                fix=fix,
                related=[RelatedSpec(n, text) for n, text in p.related],
                data=p.data,
            )

    def _applied_to_batches(self, name: str, constructor: str | None) -> bool:
        """Does the program model see the model called with a batch from a loader?"""
        cls = (constructor or "").split("(", 1)[0]
        for fact in program_model(self.context).calls():
            callee = fact.func
            named = dotted_name(fact.node.func) == name or (isinstance(callee, ModuleV) and callee.cls == cls and cls)
            if named and any(isinstance(v, TensorV) and v.origin is not None for v in fact.args):
                return True
        return False
