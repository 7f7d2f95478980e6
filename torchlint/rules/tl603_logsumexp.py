from __future__ import annotations

import ast
import re

import libcst as cst

from torchlint.analysis.apicalls import argument
from torchlint.gates import calls_near, calls_to
from torchlint.rules.base import FixSpec, Invalid, Replace, Rule


_SUM = re.compile(r"\bsum\b")
_LOG = re.compile(r"\blog\b")


class Logsumexp(Rule):
    """
    ## What it does
    Checks for the log of a sum of exponentials written out:
    `torch.log(torch.sum(torch.exp(x), dim))`, `torch.log(torch.exp(x).sum(dim))`
    and `torch.exp(x).sum(dim).log()` (TorchFix's TOR108). Only when `dim` is
    given: `torch.logsumexp` needs one. Not when the exponent already subtracts
    a maximum (`exp(x - x_max)`, directly or through a variable of the same
    function): that is the stable form written by hand.

    ## Why is this bad?
    `exp` overflows for inputs above about 88 in float32 (11 in float16), so the
    sum is `inf` and so is the result; and when every input is very negative
    the sum underflows to `0` and the log is `-inf`. `torch.logsumexp`
    subtracts the maximum first and gives the finite answer:
    `torch.log(torch.sum(torch.exp(torch.tensor([1000., 1000.])), 0))` is `inf`,
    `torch.logsumexp(torch.tensor([1000., 1000.]), 0)` is `1000.6931`.

    ## Example
    ```python
    import torch

    lse = torch.log(torch.sum(torch.exp(logits), dim=-1))
    ```

    ## Use instead
    ```python
    import torch

    lse = torch.logsumexp(logits, dim=-1)
    ```

    ## Fix safety
    The fix is unsafe: results change wherever the written-out form over- or
    underflowed (`inf` becomes a finite number, which is the point, but code
    downstream may have relied on it), and the gradient is computed by a
    different formula. `keepdim` is carried over; a `dtype=` on the sum has no
    counterpart, so no fix is offered then. The fix needs a name bound to the
    `torch` module at the call.
    """

    code = "TL603"
    incremental = True  # findings depend on the statements linked to theirs (torchlint/slices.py)
    name = "logsumexp"
    message = "`log(sum(exp(x)))` overflows; use `torch.logsumexp(x, dim)`"
    severity = "warning"
    # Confirmed by evaluating both forms on the program's own values.
    confirmable = True
    triggers = ("exp",)
    qualified_triggers = frozenset({"torch.exp"})  # exp inside the log: reported only then

    @classmethod
    def applies_to(cls, source: str) -> bool:
        # The exp call is summed: `exp(x).sum(...)` or `sum(exp(x), ...)`.
        calls = calls_to(source, cls.qualified_triggers)
        if calls is None:
            return True
        ids = {id(c) for c in calls}
        if not ids:
            return False
        sums = set()
        for c in calls_near(source, _SUM) or ():
            func = c.func
            name = func.attr if isinstance(func, ast.Attribute) else func.id if isinstance(func, ast.Name) else ""
            if name == "sum" and ((isinstance(func, ast.Attribute) and id(func.value) in ids) or (c.args and id(c.args[0]) in ids)):
                sums.add(id(c))
        if not sums:
            return False
        # ... and the sum is logged: `(...).log()` or `log(...)`.
        for c in calls_near(source, _LOG) or ():
            func = c.func
            if isinstance(func, ast.Attribute) and func.attr == "log" and not c.args and id(func.value) in sums:
                return True
            name = func.attr if isinstance(func, ast.Attribute) else func.id if isinstance(func, ast.Name) else ""
            if name == "log" and len(c.args) == 1 and id(c.args[0]) in sums:
                return True
        return False
    # A call of exp: not "except"/"expand".
    trigger_pattern = re.compile(r"exp(?<=\bexp)\s*\(")  # = \bexp\s*\(, with a literal first (20x faster to search)

    VALID = [
        "import torch\nlse = torch.logsumexp(x, dim=1)\n",
        # No dim: torch.logsumexp needs one (pytorch/pytorch#144339).
        "import torch\ny = torch.log(torch.sum(torch.exp(x)))\n",
        "import torch\ny = torch.log(torch.sum(torch.exp(x), dim=None))\n",
        "import numpy as np\ny = np.log(np.sum(np.exp(x), axis=1))\n",
        "import torch\ny = torch.log(torch.mean(torch.exp(x), 1))\n",
        # The receiver of .sum() is not known to be a tensor.
        "import torch\ny = torch.log(np.exp(x).sum(1))\n",
        # Already stabilised by hand: exp(x - max).
        "import torch\nm = x.amax(1, keepdim=True)\nshifted = x - m.detach().amax(1, keepdim=True)\ny = m + torch.log(torch.sum(torch.exp(shifted), 1, keepdim=True))\n",
        "import torch\ny = torch.log(torch.exp(x - x_max).sum(-1))\n",
    ]
    INVALID = [
        Invalid("import torch\nlse = torch.log(torch.sum(torch.exp(logits), dim=-1))\n",
                "import torch\nlse = torch.logsumexp(logits, dim=-1)\n"),
        Invalid("import torch\nlse = torch.log(torch.exp(s).sum(1, keepdim=True))\n",
                "import torch\nlse = torch.logsumexp(s, 1, keepdim=True)\n"),
        Invalid("import torch as th\nlse = th.exp(a - b).sum(dim=0).log()\n", "import torch as th\nlse = th.logsumexp(a - b, dim=0)\n"),
        Invalid("import torch\nlse = torch.sum(torch.exp(x), 1, True).log()\n", "import torch\nlse = torch.logsumexp(x, 1, keepdim=True)\n"),
        Invalid("import torch\nlse = torch.log(torch.sum(torch.exp(x), 1, dtype=torch.float64))\n", None),
    ]  # fmt: skip

    def __init__(self, context) -> None:
        super().__init__(context)
        self._functions: list[cst.FunctionDef] = []

    def visit_FunctionDef(self, node: cst.FunctionDef) -> None:
        self._functions.append(node)

    def leave_FunctionDef(self, node: cst.FunctionDef) -> None:
        self._functions.pop()

    def visit_Call(self, node: cst.Call) -> None:
        func = node.func
        if not isinstance(func, (cst.Attribute, cst.Name)):
            return
        # logsumexp's own implementation (torch._refs) writes it out for the empty case.
        if any(f.name.value == "logsumexp" for f in self._functions):
            return
        if isinstance(func, cst.Attribute) and func.attr.value == "log" and not node.args:
            # (...).log() on a sum
            self._check(node, func.value)
        elif (func.attr.value if isinstance(func, cst.Attribute) else func.value) == "log" and len(node.args) == 1:
            if self.context.qualname(func) == "torch.log" and not node.args[0].keyword and not node.args[0].star:
                self._check(node, node.args[0].value)

    def _check(self, log_call: cst.Call, total: cst.BaseExpression) -> None:
        if not isinstance(total, cst.Call) or not isinstance(total.func, cst.Attribute):
            return
        func = total.func
        if func.attr.value != "sum":
            return
        if isinstance(func.value, cst.Call) and self.context.qualname(func.value.func) == "torch.exp":
            # torch.exp(x).sum(dim, keepdim)
            exp, offset = func.value, 0
        elif self.context.qualname(func) == "torch.sum" and total.args and isinstance(total.args[0].value, cst.Call):
            exp, offset = total.args[0].value, 1
            if self.context.qualname(exp.func) != "torch.exp" or total.args[0].keyword is not None:
                return
        else:
            return
        if len(exp.args) != 1 or exp.args[0].star or any(a.star for a in total.args):
            return
        if self._shifted_by_max(exp.args[0].value):
            return  # exp(x - max) is the stabilised form, written by hand
        dim = argument(total, "dim", offset)
        if dim is None or (isinstance(dim.value, cst.Name) and dim.value.value == "None"):
            return
        keepdim = argument(total, "keepdim", offset + 1)
        extra = [a for a in total.args[offset:] if a is not dim and a is not keepdim]
        if extra:
            self.report(log_call)
            return
        torch = self._torch_prefix(log_call, exp)
        if torch is None:
            self.report(log_call)
            return
        parts = [self.context.code(exp.args[0].value), ("dim=" if dim.keyword else "") + self.context.code(dim.value)]
        if keepdim is not None:
            parts.append(f"keepdim={self.context.code(keepdim.value)}")
        new = f"{torch}.logsumexp({', '.join(parts)})"
        self.report(
            log_call,
            fix=FixSpec(f"Replace with `{new}`", (Replace(log_call, new),), applicability="unsafe"),
            data={"replacement": new},
        )

    def _shifted_by_max(self, expr: cst.BaseExpression) -> bool:
        """``x - x.max(...)`` / ``x - amax``, or a name assigned such in the enclosing function."""
        if isinstance(expr, cst.Name):
            scope = self._functions[-1] if self._functions else self.context.module
            values = [
                stmt.value
                for stmt in _simple_statements(scope)
                if isinstance(stmt, cst.Assign)
                and len(stmt.targets) == 1
                and isinstance(stmt.targets[0].target, cst.Name)
                and stmt.targets[0].target.value == expr.value
            ]
            return bool(values) and all(not isinstance(v, cst.Name) and self._shifted_by_max(v) for v in values)
        return (
            isinstance(expr, cst.BinaryOperation)
            and isinstance(expr.operator, cst.Subtract)
            and "max" in self.context.code(expr.right).lower()
        )

    def _torch_prefix(self, *calls: cst.Call) -> str | None:
        for call in calls:
            func = call.func
            if isinstance(func, cst.Attribute) and self.context.qualname(func.value) == "torch":
                return self.context.code(func.value)
        return "torch" if self.context.names.lookup("torch") == "torch" else None


def _simple_statements(scope: cst.CSTNode) -> list[cst.BaseSmallStatement]:
    """The small statements of a function or module body, in nested blocks too (not nested defs)."""
    collect = _Collect(scope)
    scope.visit(collect)
    return collect.out


class _Collect(cst.CSTVisitor):
    def __init__(self, scope: cst.CSTNode) -> None:
        super().__init__()
        self.scope = scope
        self.out: list[cst.BaseSmallStatement] = []

    def visit_FunctionDef(self, node: cst.FunctionDef) -> bool:
        return node is self.scope

    def visit_ClassDef(self, node: cst.ClassDef) -> bool:
        return False

    def visit_SimpleStatementLine(self, node: cst.SimpleStatementLine) -> None:
        self.out.extend(node.body)
