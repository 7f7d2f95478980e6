from __future__ import annotations

import ast
import re

import libcst as cst

from torchlint.analysis.apicalls import is_number
from torchlint.gates import binary_operations_near, calls_to
from torchlint.rules.base import FixSpec, Invalid, Replace, Rule


_EXP = re.compile(r"\bexp\b")


class Expm1(Rule):
    """
    ## What it does
    Checks for `torch.exp(x) - 1`, TorchFix's TOR107.

    ## Why is this bad?
    For small `x`, `exp(x)` is within rounding of `1`, and subtracting `1`
    cancels all the significant digits: in float32, `torch.exp(torch.tensor(1e-10)) - 1`
    is `0`, while `torch.expm1(torch.tensor(1e-10))` is `1e-10`.

    ## Example
    ```python
    import torch

    y = torch.exp(x) - 1
    ```

    ## Use instead
    ```python
    import torch

    y = torch.expm1(x)
    ```

    ## Fix safety
    The fix is safe: `torch.expm1(x)` (the same as `torch.special.expm1`) is
    `exp(x) - 1` evaluated accurately, with the same dtype, shape, device and
    gradient. Offered when `exp` is reached as an attribute (`torch.exp`) or
    `expm1` is imported from torch.
    """

    code = "TL602"
    incremental = True  # findings depend on the statements linked to theirs (torchlint/slices.py)
    name = "expm1"
    message = "`torch.exp(x) - 1` loses precision for small `x`; use `torch.expm1(x)`"
    severity = "warning"
    # Confirmed by evaluating both forms on the program's own values.
    confirmable = True
    triggers = ("exp",)
    qualified_triggers = frozenset({"torch.exp"})

    @classmethod
    def applies_to(cls, source: str) -> bool:
        # The exp call is the left side of a subtraction.
        calls = calls_to(source, cls.qualified_triggers)
        if calls is None:
            return True
        ids = {id(c) for c in calls}
        return any(isinstance(b.op, ast.Sub) and id(b.left) in ids for b in binary_operations_near(source, _EXP)) if ids else False
    # A call of exp: not "except"/"expand".
    trigger_pattern = re.compile(r"exp(?<=\bexp)\s*\(")  # = \bexp\s*\(, with a literal first (20x faster to search)

    VALID = [
        "import torch\ny = torch.expm1(x)\n",
        "import torch\ny = torch.exp(x) - 2\n",
        "import math\ny = math.exp(x) - 1\n",
        "import numpy as np\ny = np.exp(x) - 1\n",
        "import torch\ny = 1 - torch.exp(x)\n",
        "import torch\ny = 2 * torch.exp(x) - 1\n",
    ]
    INVALID = [
        Invalid("import torch\ny = torch.exp(x) - 1\n", "import torch\ny = torch.expm1(x)\n"),
        Invalid("import torch as th\ny = (th.exp(x) - 1.0) / x\n", "import torch as th\ny = (th.expm1(x)) / x\n"),
        Invalid("import torch\nz = torch.exp(a * t) - 1 - b\n", "import torch\nz = torch.expm1(a * t) - b\n"),
        Invalid("from torch import exp\ny = exp(x) - 1\n", None),
    ]

    def visit_BinaryOperation(self, node: cst.BinaryOperation) -> None:
        if not isinstance(node.operator, cst.Subtract) or not is_number(node.right, 1):
            return
        call = node.left
        if not isinstance(call, cst.Call) or len(call.args) != 1 or call.args[0].star or call.lpar:
            return
        func = call.func
        if isinstance(func, cst.Attribute) and func.attr.value != "exp":
            return
        if self.context.qualname(func) != "torch.exp":
            return
        arg = self.context.code(call.args[0].value)
        if isinstance(func, cst.Attribute):
            name = f"{self.context.code(func.value)}.expm1"
        elif self.context.names.lookup("expm1") == "torch.expm1":
            name = "expm1"
        else:
            self.report(node)
            return
        # The range excludes the expression's own parentheses: they stay.
        new = f"{name}({arg})"
        self.report(node, fix=FixSpec(f"Replace with `{new}`", (Replace(node, new),)), data={"replacement": new})
