from __future__ import annotations

import ast
import re

import libcst as cst

from torchlint.analysis.apicalls import argument, is_number
from torchlint.gates import calls_to
from torchlint.rules.base import FixOp, FixSpec, Invalid, Replace, Rule


def one_plus(expr: cst.BaseExpression) -> cst.BaseExpression | None:
    """``x`` for ``1 + x`` / ``x + 1`` (``1.0`` too), else None."""
    if isinstance(expr, cst.BinaryOperation) and isinstance(expr.operator, cst.Add):
        if is_number(expr.left, 1):
            return expr.right
        if is_number(expr.right, 1):
            return expr.left
    return None


def renamed(context, func: cst.BaseExpression, new: str) -> tuple[FixOp, ...] | None:
    """Edits calling torch's ``new`` where ``func`` names a torch function; None if no name is at hand."""
    if isinstance(func, cst.Attribute):
        return (Replace(func.attr, cst.Name(new)),)
    if context.names.lookup(new) == f"torch.{new}":
        return (Replace(func, cst.Name(new)),)
    return None


def _input(call: ast.Call) -> ast.expr | None:
    if call.args:
        return call.args[0]
    return next((k.value for k in call.keywords if k.arg == "input"), None)


class Log1p(Rule):
    """
    ## What it does
    Checks for `torch.log(1 + x)` (and `torch.log(x + 1)`), TorchFix's TOR106.

    ## Why is this bad?
    For small `x`, `1 + x` rounds to exactly `1` in floating point before the
    logarithm sees it: in float32, `torch.log(1 + torch.tensor(1e-10))` is `0`,
    while `torch.log1p(torch.tensor(1e-10))` is `1e-10`. `torch.log1p` computes
    the same function without that rounding (and its gradient, `1 / (1 + x)`,
    is the same).

    ## Example
    ```python
    import torch

    y = torch.log(1 + probs)
    ```

    ## Use instead
    ```python
    import torch

    y = torch.log1p(probs)
    ```

    ## Fix safety
    The fix is safe: `torch.log1p(x)` is `log(1 + x)` evaluated accurately, with
    the same dtype, shape, device and gradient; only the low bits of the result
    change, where the old form lost them. Offered when the function is reached
    as an attribute (`torch.log`, `th.log`) or `log1p` is imported from torch.
    """

    code = "TL601"
    incremental = True  # findings depend on the statements linked to theirs (torchlint/slices.py)
    name = "log1p"
    message = "`torch.log(1 + x)` loses precision for small `x`; use `torch.log1p(x)`"
    severity = "warning"
    # Confirmed by evaluating both forms on the program's own values.
    confirmable = True
    triggers = ("log",)
    qualified_triggers = frozenset({"torch.log"})

    @classmethod
    def applies_to(cls, source: str) -> bool:
        # Its input (first, or `input=`) is a sum.
        calls = calls_to(source, cls.qualified_triggers)
        return calls is None or any(isinstance(_input(c), ast.BinOp) and isinstance(_input(c).op, ast.Add) for c in calls)  # type: ignore[union-attr]
    # A call of log: not "logging"/"logger".
    trigger_pattern = re.compile(r"log(?<=\blog)\s*\(")  # = \blog\s*\(, with a literal first (20x faster to search)

    VALID = [
        "import torch\ny = torch.log1p(x)\n",
        "import torch\ny = torch.log(2 + x)\n",
        "import math\ny = math.log(1 + x)\n",
        "import numpy as np\ny = np.log(1 + x)\n",
        "import torch\ny = torch.log(1 - x)\n",
        # A local variable named torch.
        "def f(torch, x):\n    return torch.log(1 + x)\n",
    ]
    INVALID = [
        Invalid("import torch\ny = torch.log(1 + x)\n", "import torch\ny = torch.log1p(x)\n"),
        Invalid("import torch as th\ny = th.log(p.exp() + 1.0)\n", "import torch as th\ny = th.log1p(p.exp())\n"),
        Invalid("import torch\nloss = -torch.log(1 + torch.exp(-margin * s)).mean()\n",
                "import torch\nloss = -torch.log1p(torch.exp(-margin * s)).mean()\n"),
        Invalid("from torch import log\ny = log(x + 1)\n", None),
        Invalid("from torch import log, log1p\ny = log(x + 1)\n", "from torch import log, log1p\ny = log1p(x)\n"),
    ]  # fmt: skip

    def visit_Call(self, node: cst.Call) -> None:
        func = node.func
        if isinstance(func, cst.Attribute) and func.attr.value != "log":
            return
        arg = argument(node, "input", 0)
        others = [a for a in node.args if a is not arg]
        # torch.log(input, *, out=None): anything else is not this function's call.
        if arg is None or arg.star or any(a.keyword is None or a.keyword.value != "out" for a in others):
            return
        x = one_plus(arg.value)
        if x is None or self.context.qualname(func) != "torch.log":
            return
        ops = renamed(self.context, func, "log1p")
        fix, data = None, {}
        if ops is not None:
            new = self.context.code(x)
            fix = FixSpec(f"Replace with `log1p({new})`", (*ops, Replace(arg.value, new)))
            name = f"{self.context.code(func.value)}.log1p" if isinstance(func, cst.Attribute) else "log1p"
            data["replacement"] = f"{name}({new})"
        self.report(node, fix=fix, data=data)
