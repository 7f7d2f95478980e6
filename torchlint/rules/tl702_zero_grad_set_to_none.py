from __future__ import annotations

import ast
import re

import libcst as cst

from torchlint.analysis.apicalls import add_keyword, argument, target_torch_version
from torchlint.analysis.model import program_model
from torchlint.analysis.values import ModuleV, OptimizerV
from torchlint.gates import calls_near
from torchlint.rules.base import FixSpec, Invalid, Replace, Rule

# Before 2.0 ``zero_grad()`` defaulted to ``set_to_none=False``.
_DEFAULT_FLIPPED = (2, 0)
_ZERO_GRAD = re.compile(r"zero_grad")


def _may_report_call(call: ast.Call) -> bool:
    """Might visit_Call report this call (on CPython's tree)? ``False`` is a Constant there, a Name in libcst's."""
    func = call.func
    if not (isinstance(func, ast.Attribute) and func.attr == "zero_grad"):
        return False
    if any(isinstance(a, ast.Starred) for a in call.args) or any(k.arg is None for k in call.keywords):
        return False
    if not call.args and not call.keywords:
        return True  # a bare zero_grad(): reported for a target before 2.0 (not known here)
    flag = next((k.value for k in call.keywords if k.arg == "set_to_none"), call.args[0] if call.args else None)
    return isinstance(flag, ast.Constant) and flag.value is False


def _known_optimizer_or_module(value: object) -> bool:
    """A ``torch.optim`` construction, or a module whose class is known (not a guess from a name)."""
    if isinstance(value, OptimizerV):
        return value.declared
    return isinstance(value, ModuleV) and value.cls is not None


class ZeroGradSetToNone(Rule):
    """
    ## What it does
    Checks for `optimizer.zero_grad(set_to_none=False)` (or `zero_grad(False)`)
    on a `torch.optim` optimizer or an `nn.Module`, TorchFix's TOR402 (from
    PyTorch profiler's `GradNotSetToNonePattern`). When the project targets a
    PyTorch older than 2.0, a bare `zero_grad()` too: its default was `False`
    then. Off by default, as in TorchFix. Only receivers the program model knows
    are checked: an optimizer built by a `torch.optim` constructor, or a module
    whose class is known (`torch.nn.Linear(...)`, `self` in an `nn.Module`
    subclass), wherever the file passes or stores it; never a guess from the
    name `optimizer`.

    ## Why is this bad?
    Zeroing writes a kernel launch per parameter and keeps every gradient
    tensor alive between steps. Setting them to `None` (the default since
    PyTorch 2.0) frees that memory until the next backward pass, which then
    allocates fresh gradients instead of accumulating into zeros.

    ## Example
    ```python
    import torch

    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    optimizer.zero_grad(set_to_none=False)
    ```

    ## Use instead
    ```python
    import torch

    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    optimizer.zero_grad(set_to_none=True)
    ```

    ## Fix safety
    The fix writes `set_to_none=True`. It is unsafe: code that reads
    `p.grad` between `zero_grad()` and the next `backward()` (gradient
    clipping of unused parameters, `p.grad.add_(...)`, optimizers that treat a
    zero gradient differently from a missing one) sees `None` instead of zeros.
    """

    code = "TL702"
    incremental = True  # findings depend on the statements linked to theirs (torchlint/slices.py)
    name = "zero-grad-set-to-none"
    message = "`zero_grad(set_to_none=False)` zeroes gradients instead of freeing them; use `set_to_none=True`"
    severity = "info"
    default_enabled = False
    # Confirmed by looking at the gradients the call left behind.
    confirmable = True
    triggers = ("zero_grad",)

    VALID = [
        "import torch\nopt = torch.optim.SGD(params, lr=0.1)\nopt.zero_grad()\n",
        "import torch\nopt = torch.optim.Adam(params)\nopt.zero_grad(set_to_none=True)\n",
        # The receiver's origin is unknown.
        "import torch\n\ndef step(optimizer):\n    optimizer.zero_grad(set_to_none=False)\n",
        # Not a torch optimizer.
        "from mylib import Trainer\nt = Trainer()\nt.zero_grad(set_to_none=False)\n",
        "import torch\nopt = make_optimizer()\nopt.zero_grad(False)\n",
        "import torch\nset_to_none = False\nopt = torch.optim.SGD(params, lr=0.1)\nopt.zero_grad(set_to_none=set_to_none)\n",
    ]
    INVALID = [
        Invalid(
            "import torch\nopt = torch.optim.SGD(params, lr=0.1)\nopt.zero_grad(set_to_none=False)\n",
            "import torch\nopt = torch.optim.SGD(params, lr=0.1)\nopt.zero_grad(set_to_none=True)\n",
        ),
        Invalid(
            "from torch import optim\n\ndef train(model):\n    optimizer = optim.AdamW(model.parameters())\n    optimizer.zero_grad(False)\n",
            "from torch import optim\n\ndef train(model):\n    optimizer = optim.AdamW(model.parameters())\n    optimizer.zero_grad(True)\n",
        ),
        Invalid(
            "import torch.nn as nn\n\nclass Net(nn.Module):\n    def reset(self):\n        self.zero_grad(set_to_none=False)\n",
            "import torch.nn as nn\n\nclass Net(nn.Module):\n    def reset(self):\n        self.zero_grad(set_to_none=True)\n",
        ),
        Invalid(
            "import torch\n\nclass Trainer:\n    def __init__(self, model):\n        self.opt = torch.optim.Adam(model.parameters())\n\n"
            "    def step(self):\n        self.opt.zero_grad(set_to_none=False)\n",
            "import torch\n\nclass Trainer:\n    def __init__(self, model):\n        self.opt = torch.optim.Adam(model.parameters())\n\n"
            "    def step(self):\n        self.opt.zero_grad(set_to_none=True)\n",
        ),
    ]

    @classmethod
    def applies_to(cls, source: str) -> bool:
        # Only `zero_grad(set_to_none=False)`, `zero_grad(False)` or a bare `zero_grad()` is reported:
        # not `zero_grad(set_to_none=True)`, nor the substring in `model.zero_grad_hook` or a comment.
        calls = calls_near(source, _ZERO_GRAD)
        return calls is None or any(_may_report_call(c) for c in calls)

    def visit_Call(self, node: cst.Call) -> None:
        func = node.func
        if not (isinstance(func, cst.Attribute) and func.attr.value == "zero_grad"):
            return
        if any(a.star for a in node.args):
            return
        flag = argument(node, "set_to_none", 0)
        if flag is None:
            target = target_torch_version(self.context)
            if target is None or target[:2] >= _DEFAULT_FLIPPED or node.args:
                return
        elif not (isinstance(flag.value, cst.Name) and flag.value.value == "False"):
            return
        fact = program_model(self.context).fact(node)
        if fact is None or not _known_optimizer_or_module(fact.receiver):
            return
        # For the runtime check: where the receiver is, to look at its gradients after the call.
        r = self.context.range_of(func.value)
        data = {"receiver_span": [r.start.line, r.start.column, r.end.line, r.end.column]}
        if flag is None:
            self.report(
                node,
                "`zero_grad()` zeroes gradients before PyTorch 2.0 (the project's target); pass `set_to_none=True`",
                fix=FixSpec("Pass `set_to_none=True`", add_keyword(node, "set_to_none=True"), applicability="unsafe"),
                data=data,
            )
            return
        self.report(
            flag,
            fix=FixSpec("Use `True`", (Replace(flag.value, cst.Name("True")),), applicability="unsafe"),
            data=data,
        )
