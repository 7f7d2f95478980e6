from __future__ import annotations

import ast

import libcst as cst

from torchlint.analysis.apicalls import add_keyword, argument
from torchlint.analysis.model import program_model
from torchlint.analysis.tables import file_tables
from torchlint.gates import calls_to, classes_by_name, import_table, may_be_torch_module_class, all_statements
from torchlint.incremental import python_ast
from torchlint.rules.base import FixSpec, Invalid, Rule

def _may_default_training(call: ast.Call) -> bool:
    """No `training` (keyword or third argument) and no `*`/`**` arguments: the rule's own test."""
    return not any(isinstance(a, ast.Starred) for a in call.args) and all(k.arg not in (None, "training") for k in call.keywords) and len(call.args) < 3


def _methods(klass: ast.ClassDef):
    """The defs whose scope is the class's (in its body, or in an if/try/with there)."""
    stack = list(klass.body)
    while stack:
        node = stack.pop()
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            yield node
        elif not isinstance(node, ast.ClassDef):
            stack.extend(n for n in ast.iter_child_nodes(node) if isinstance(n, (ast.stmt, ast.excepthandler, ast.match_case)))


def _own_nodes(func: ast.AST):
    """The nodes of a def's body, not those of the defs and classes nested in it (their own scopes)."""
    stack = list(func.body)  # type: ignore[attr-defined]
    while stack:
        node = stack.pop()
        yield node
        if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            stack.extend(ast.iter_child_nodes(node))


# These default to training=True; alpha_dropout and feature_alpha_dropout default to False.
_DROPOUTS = frozenset(f"torch.nn.functional.{n}" for n in ("dropout", "dropout1d", "dropout2d", "dropout3d"))


class FunctionalDropoutTraining(Rule):
    """
    ## What it does
    Checks for `F.dropout(x, p)` (and `dropout1d`/`2d`/`3d`) called in the
    `forward` method of an `nn.Module` subclass (resolved through the imports
    and the file's own classes) without a `training` argument.

    A call that only runs under a test of `.training` (`if self.training:`,
    `... if self.training else x`) is left alone.

    ## Why is this bad?
    `F.dropout` is a plain function: it does not know the module's mode, and
    its `training` parameter defaults to `True`. After `model.eval()` the
    `nn.Dropout` layers stop dropping, but this call keeps zeroing activations
    and rescaling the rest: evaluation and inference are noisy and worse than
    the trained model. Passing `training=self.training` ties it to the mode,
    as `nn.Dropout` does.

    ## Example
    ```python
    import torch.nn as nn
    import torch.nn.functional as F

    class Net(nn.Module):
        def forward(self, x):
            return F.dropout(self.fc(x), p=0.5)
    ```

    ## Use instead
    ```python
    import torch.nn as nn
    import torch.nn.functional as F

    class Net(nn.Module):
        def forward(self, x):
            return F.dropout(self.fc(x), p=0.5, training=self.training)
    ```

    ## Fix safety
    The fix adds `training=self.training`. It is unsafe: it changes what the
    model computes in eval mode, which is the point, but code that relies on
    dropout staying on (Monte Carlo dropout) would want `training=True` written
    out instead.
    """

    code = "TL109"
    incremental = True  # findings depend on the statements linked to theirs (torchlint/slices.py)
    name = "functional-dropout-training"
    message = "`F.dropout` in `forward` without `training=self.training` stays on after `model.eval()`"
    severity = "warning"
    confirmable = True
    triggers = ("dropout",)
    qualified_triggers = _DROPOUTS

    @classmethod
    def applies_to(cls, source: str) -> bool:
        # A call without `training` right in the `forward` of a class that may be a torch module.
        calls = calls_to(source, _DROPOUTS)
        if calls is None:
            return True
        candidates = {id(c) for c in calls if _may_default_training(c)}
        if not candidates:
            return False
        tree = python_ast(source, keep=True)
        table = import_table(source)
        classes = classes_by_name(tree)
        for klass in (s for s in all_statements(tree) if isinstance(s, ast.ClassDef)):
            for method in _methods(klass):
                if (
                    method.name == "forward" and not method.decorator_list
                    and any(id(n) in candidates for n in _own_nodes(method))
                    # (the model judges the class by its name: every class of that name counts)
                    and (table is None or any(may_be_torch_module_class(c, classes, table) for c in classes[klass.name]))
                ):  # fmt: skip
                    return True
        return False

    VALID = [
        "import torch.nn as nn\nimport torch.nn.functional as F\n\nclass Net(nn.Module):\n"
        "    def forward(self, x):\n        return F.dropout(x, 0.5, self.training)\n",
        "import torch.nn as nn\nimport torch.nn.functional as F\n\nclass Net(nn.Module):\n"
        "    def forward(self, x):\n        return F.dropout(x, p=0.2, training=True)\n",
        # Not in a module's forward: a plain function decides for itself.
        "import torch.nn.functional as F\n\ndef augment(x):\n    return F.dropout(x, 0.1)\n",
        # alpha_dropout defaults to training=False.
        "import torch.nn as nn\nimport torch.nn.functional as F\n\nclass Net(nn.Module):\n"
        "    def forward(self, x):\n        return F.alpha_dropout(x, 0.5)\n",
        # A flax module is no torch module.
        "from flax import linen as nn\nimport torch.nn.functional as F\n\nclass Net(nn.Module):\n"
        "    def forward(self, x):\n        return F.dropout(x, 0.5)\n",
    ]
    INVALID = [
        Invalid(
            "import torch.nn as nn\nimport torch.nn.functional as F\n\nclass Net(nn.Module):\n"
            "    def forward(self, x):\n        return F.dropout(x, 0.5)\n",
            "import torch.nn as nn\nimport torch.nn.functional as F\n\nclass Net(nn.Module):\n"
            "    def forward(self, x):\n        return F.dropout(x, 0.5, training=self.training)\n",
        ),
        Invalid(
            "import torch\nfrom torch.nn.functional import dropout2d\n\nclass Net(torch.nn.Conv2d):\n"
            "    def forward(m, x):\n        return dropout2d(super().forward(x), p=0.1)\n",
            "import torch\nfrom torch.nn.functional import dropout2d\n\nclass Net(torch.nn.Conv2d):\n"
            "    def forward(m, x):\n        return dropout2d(super().forward(x), p=0.1, training=m.training)\n",
        ),
        Invalid(
            "import torch.nn as nn\nimport torch.nn.functional as F\n\nclass Base(nn.Module):\n    pass\n\n"
            "class Net(Base):\n    def forward(self, x):\n        x = F.dropout(x)\n        return x\n",
            "import torch.nn as nn\nimport torch.nn.functional as F\n\nclass Base(nn.Module):\n    pass\n\n"
            "class Net(Base):\n    def forward(self, x):\n        x = F.dropout(x, training=self.training)\n        return x\n",
        ),
    ]

    def __init__(self, context) -> None:  # type: ignore[no-untyped-def]
        super().__init__(context)
        # The defs and classes the traversal is in; which class a def is a method of, the
        # program model's tables say.
        self._defs: list[cst.FunctionDef | cst.ClassDef] = []
        self._guards: list[bool] = []

    def _guard(self, test: cst.BaseExpression) -> None:
        # `if self.training: F.dropout(x)` only runs in training mode: nothing to say.
        self._guards.append(".training" in self.context.code(test))

    def visit_If(self, node: cst.If) -> None:
        self._guard(node.test)

    def leave_If(self, original_node: cst.If) -> None:
        self._guards.pop()

    def visit_IfExp(self, node: cst.IfExp) -> None:
        self._guard(node.test)

    def leave_IfExp(self, original_node: cst.IfExp) -> None:
        self._guards.pop()

    def visit_FunctionDef(self, node: cst.FunctionDef) -> None:
        self._defs.append(node)

    def leave_FunctionDef(self, original_node: cst.FunctionDef) -> None:
        self._defs.pop()

    def visit_ClassDef(self, node: cst.ClassDef) -> None:
        self._defs.append(node)

    def leave_ClassDef(self, original_node: cst.ClassDef) -> None:
        self._defs.pop()

    def visit_Call(self, node: cst.Call) -> None:
        if not self._defs or self.context.qualname(node.func) not in _DROPOUTS:
            return
        method = self._defs[-1]
        info = file_tables(self.context).func_info(method)  # None: a call in a class body
        if info is None or info.owner is None or method.name.value != "forward" or method.decorators:
            return
        cls = info.owner.name
        if any(self._guards) or any(a.star for a in node.args) or argument(node, "training", 2) is not None:
            return
        params = method.params.params
        if not params or not program_model(self.context).is_torch_module_class(cls):
            return
        me = params[0].name.value
        self.report(
            node,
            f"`{self.context.code(node.func)}` in `forward` without `training={me}.training` keeps dropping after `model.eval()`",
            fix=FixSpec(f"Pass `training={me}.training`", add_keyword(node, f"training={me}.training"), applicability="unsafe"),
            data={"self": me},
        )
