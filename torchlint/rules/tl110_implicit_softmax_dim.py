from __future__ import annotations

import ast

import libcst as cst

from torchlint.analysis.apicalls import add_keyword, argument
from torchlint.gates import calls_to
from torchlint.rules.base import FixSpec, Invalid, Rule
from torchlint.shapes import input_ranks

# Callee -> the position of `dim` among its positional parameters.
_FUNCTIONAL = {f"torch.nn.functional.{n}": 1 for n in ("softmax", "log_softmax", "softmin")}
_MODULES = {
    f"{prefix}.{n}": 0
    for prefix in ("torch.nn", "torch.nn.modules.activation")
    for n in ("Softmax", "LogSoftmax", "Softmin")
}
_DIM_AT = {**_FUNCTIONAL, **_MODULES}


def _passes_dim(call: ast.Call) -> bool:
    """Surely gives ``dim`` (or has ``*``/``**`` arguments, which the rule leaves alone), on CPython's tree."""
    if any(isinstance(a, ast.Starred) for a in call.args) or any(k.arg is None for k in call.keywords):
        return True
    dim = next((k.value for k in call.keywords if k.arg == "dim"), None)
    if dim is not None:
        return not _is_none(dim)
    # dim is the first argument of the modules and the second of the functions.
    return len(call.args) >= 2 and not _is_none(call.args[0]) and not _is_none(call.args[1])


def _is_none(node: ast.expr) -> bool:
    return isinstance(node, ast.Constant) and node.value is None


def _implicit_dim(rank: int) -> int:
    # torch.nn.functional._get_softmax_dim: 0 for 0-, 1- and 3-D inputs, else 1.
    return 0 if rank in (0, 1, 3) else 1


class ImplicitSoftmaxDim(Rule):
    """
    ## What it does
    Checks for `F.softmax(x)`, `F.log_softmax(x)`, `F.softmin(x)` and
    `nn.Softmax()`, `nn.LogSoftmax()`, `nn.Softmin()` without `dim` (or with
    `dim=None`), resolved through the imports. When the shape analysis knows
    the rank of the input (the layers before it in the model's `forward` or in
    an `nn.Sequential`), the message says which dimension PyTorch picks.

    ## Why is this bad?
    Without `dim`, PyTorch guesses from the input's rank: dimension 0 for 0-,
    1- and 3-D inputs, dimension 1 otherwise, and warns that the implicit
    choice is deprecated. For a 3-D input (batch, sequence, classes) that is
    the batch dimension: probabilities are normalized across the examples of
    the batch, and training silently goes wrong.

    ## Example
    ```python
    import torch.nn.functional as F

    probs = F.softmax(logits)
    ```

    ## Use instead
    ```python
    import torch.nn.functional as F

    probs = F.softmax(logits, dim=-1)
    ```

    ## Fix safety
    A fix is offered only when the input's rank is known and PyTorch's pick is
    the last dimension (1-D and 2-D inputs) or the channels of a 4-D input: it
    writes the dimension PyTorch picks today (`dim=1`), so it is safe. For 3-D
    inputs the pick is the batch dimension, almost never what was meant: no
    fix is offered and the message says so.
    """

    code = "TL110"
    incremental = True  # findings depend on the statements linked to theirs (torchlint/slices.py)

    @classmethod
    def file_facts(cls, source: str) -> object:
        return ("Sequential" in source, "forward" in source)
    name = "implicit-softmax-dim"
    message = "softmax without `dim`: PyTorch guesses the dimension from the input's rank (deprecated); pass `dim`"
    severity = "warning"
    confirmable = True
    triggers = ("oftm", "oftM")
    qualified_triggers = frozenset(_DIM_AT)

    @classmethod
    def applies_to(cls, source: str) -> bool:
        # `dim=None` is reported too: only a call that surely passes a dim is no candidate.
        calls = calls_to(source, cls.qualified_triggers)
        return calls is None or any(not _passes_dim(c) for c in calls)

    VALID = [
        "import torch.nn.functional as F\np = F.softmax(x, dim=-1)\n",
        "import torch.nn.functional as F\np = F.log_softmax(x, 1)\n",
        "import torch.nn as nn\nsm = nn.Softmax(dim=1)\n",
        "import torch.nn as nn\nsm = nn.LogSoftmax(-1)\n",
        # Tensor.softmax and torch.softmax require dim: no implicit choice there.
        "import torch\np = torch.softmax(x, 1)\nq = x.softmax(-1)\n",
        # Not torch's.
        "from scipy.special import softmax\np = softmax(x)\n",
        "import torch.nn.functional as F\nkw = {'dim': 1}\np = F.softmax(x, **kw)\n",
    ]
    INVALID = [
        Invalid("import torch.nn.functional as F\np = F.softmax(x)\n"),
        Invalid("import torch.nn as nn\nlayer = nn.LogSoftmax()\n"),
        Invalid("from torch.nn.functional import log_softmax\nlp = log_softmax(x, dim=None)\n"),
        Invalid(
            "import torch\nimport torch.nn as nn\nmodel = nn.Sequential(nn.Linear(8, 3), nn.Softmax())\n"
            "y = model(torch.randn(4, 8))\n",
            "import torch\nimport torch.nn as nn\nmodel = nn.Sequential(nn.Linear(8, 3), nn.Softmax(dim=1))\n"
            "y = model(torch.randn(4, 8))\n",
        ),
    ]

    def visit_Call(self, node: cst.Call) -> None:
        qual = self.context.qualname(node.func)
        if qual not in _DIM_AT or any(a.star for a in node.args):
            return
        dim = argument(node, "dim", _DIM_AT[qual])
        if dim is not None and not (isinstance(dim.value, cst.Name) and dim.value.value == "None"):
            return
        ranks = input_ranks(self.context, node)
        rank = next(iter(ranks)) if len(ranks) == 1 else None
        data = {"form": "module" if qual in _MODULES else "functional"}
        short = self.context.code(node.func)
        if rank is None:
            self.report(node, f"`{short}` without `dim`: PyTorch guesses the dimension from the input's rank (deprecated); pass `dim`", data=data)
            return
        picked = _implicit_dim(rank)
        data["rank"] = rank
        if rank == 3 or rank == 0:
            self.report(node, f"`{short}` without `dim` normalizes a {rank}-D input over dimension {picked} (the first); pass `dim`", data=data)
            return
        fix = None
        if dim is None:
            fix = FixSpec(f"Pass `dim={picked}`", add_keyword(node, f"dim={picked}"))
        self.report(node, f"`{short}` without `dim`: PyTorch picks dimension {picked} of this {rank}-D input (deprecated); pass `dim={picked}`",
                    fix=fix, data=data)  # fmt: skip
