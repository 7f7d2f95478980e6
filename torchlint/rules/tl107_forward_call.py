from __future__ import annotations

import ast
import re

import libcst as cst

from torchlint.analysis.model import program_model
from torchlint.gates import calls_near, may_hold_torch_module
from torchlint.rules.base import FixSpec, Invalid, Replace, Rule


def _enclosing_method_name(node: cst.CSTNode, parents: list[cst.CSTNode]) -> str | None:
    for parent in reversed(parents):
        if isinstance(parent, cst.FunctionDef):
            return parent.name.value
    return None


_FORWARD = re.compile(r"\bforward\b")


class ForwardCall(Rule):
    """
    ## What it does
    Checks for `module.forward(x)` on an `nn.Module` whose class the program
    model knows (`nn.Linear(...)`, an instance of an `nn.Module` subclass of
    the file, `self` in such a class, a submodule stored on `self`). Receivers
    the model does not know (a parameter nobody passes, a name that only looks
    like a model) are never reported, nor are `super().forward(...)` and
    `Base.forward(self, x)`. Inside a `forward` method, `self.forward(...)` and
    `self.<submodule>.forward(...)` are left alone: a wrapper that delegates to
    the wrapped module's `forward` is usually doing it on purpose.

    ## Why is this bad?
    `nn.Module.__call__` runs the forward pre-hooks, the forward hooks and the
    backward hooks registered on the module (and the global ones), then calls
    `forward`. Calling `forward` directly skips all of them: feature
    extractors, `torch.nn.utils.prune`, weight normalization by hooks,
    quantization observers, FSDP and profilers silently see nothing.

    ## Example
    ```python
    import torch.nn as nn

    model = nn.Linear(4, 2)
    out = model.forward(x)
    ```

    ## Use instead
    ```python
    import torch.nn as nn

    model = nn.Linear(4, 2)
    out = model(x)
    ```

    ## Fix safety
    The fix calls the module instead (`model(x)`). It is safe: with no hooks
    registered the two do the same; with hooks, calling the module is what
    they were registered for.
    """

    code = "TL107"
    incremental = True  # findings depend on the statements linked to theirs (torchlint/slices.py)
    name = "forward-call"
    message = "`.forward(...)` on a module skips its hooks; call the module instead"
    severity = "warning"
    confirmable = True
    triggers = (".forward(",)

    @classmethod
    def applies_to(cls, source: str) -> bool:
        # A `.forward(...)` on something other than a call's result, and a value the model may know as a torch module.
        calls = calls_near(source, _FORWARD)
        if calls is not None and not any(
            isinstance(c.func, ast.Attribute) and c.func.attr == "forward" and not isinstance(c.func.value, ast.Call) for c in calls
        ):
            return False
        return may_hold_torch_module(source)

    VALID = [
        "import torch.nn as nn\nmodel = nn.Linear(4, 2)\nout = model(x)\n",
        # Unknown receiver: a parameter nobody passes.
        "def run(model, x):\n    return model.forward(x)\n",
        # The parent class's forward, on purpose.
        "import torch.nn as nn\n\nclass Net(nn.Linear):\n    def forward(self, x):\n        return super().forward(x) * 2\n",
        "import torch.nn as nn\n\nclass Net(nn.Linear):\n    def forward(self, x):\n        return nn.Linear.forward(self, x)\n",
        # A wrapper delegating to the wrapped module inside its own forward.
        "import torch.nn as nn\n\nclass Wrap(nn.Module):\n    def __init__(self):\n        super().__init__()\n"
        "        self.inner = nn.Linear(4, 2)\n\n    def forward(self, x):\n        return self.inner.forward(x)\n",
        # A flax module: `forward` is no torch method there.
        "from flax import linen as nn\n\nclass M(nn.Module):\n    def run(self, x):\n        return self.forward(x)\n",
        # Not a module.
        "class Pipeline:\n    def forward(self, x):\n        return x\n\np = Pipeline()\ny = p.forward(1)\n",
    ]
    INVALID = [
        Invalid(
            "import torch.nn as nn\nmodel = nn.Linear(4, 2)\nout = model.forward(x)\n",
            "import torch.nn as nn\nmodel = nn.Linear(4, 2)\nout = model(x)\n",
        ),
        Invalid(
            "import torch.nn as nn\n\nclass Net(nn.Module):\n    def forward(self, x):\n        return x\n\n"
            "net = Net()\ny = net.forward(x)\n",
            "import torch.nn as nn\n\nclass Net(nn.Module):\n    def forward(self, x):\n        return x\n\n"
            "net = Net()\ny = net(x)\n",
        ),
        Invalid(
            "import torch.nn as nn\n\nclass Net(nn.Module):\n    def forward(self, x):\n        return x\n\n"
            "    def predict(self, x):\n        return self.forward(x).argmax(1)\n",
            "import torch.nn as nn\n\nclass Net(nn.Module):\n    def forward(self, x):\n        return x\n\n"
            "    def predict(self, x):\n        return self(x).argmax(1)\n",
        ),
    ]

    def __init__(self, context) -> None:  # type: ignore[no-untyped-def]
        super().__init__(context)
        self._parents: list[cst.CSTNode] = []

    def visit_FunctionDef(self, node: cst.FunctionDef) -> None:
        self._parents.append(node)

    def leave_FunctionDef(self, original_node: cst.FunctionDef) -> None:
        self._parents.pop()

    def visit_Call(self, node: cst.Call) -> None:
        func = node.func
        if not (isinstance(func, cst.Attribute) and func.attr.value == "forward"):
            return
        receiver = func.value
        if isinstance(receiver, cst.Call):
            return  # super().forward(...), or a module built on the spot for one call
        fact = program_model(self.context).fact(node)
        # Only a module whose class is known: never a guess from the name `model`.
        if fact is None or not program_model(self.context).is_torch_module(fact.receiver):
            return
        root = receiver
        while isinstance(root, cst.Attribute):
            root = root.value
        if (
            isinstance(root, cst.Name)
            and root.value == "self"
            and _enclosing_method_name(node, self._parents) == "forward"
        ):
            return  # a forward delegating on purpose
        r = self.context.range_of(receiver)
        self.report(
            node,
            f"`{self.context.code(receiver)}.forward(...)` skips the module's hooks; call `{self.context.code(receiver)}(...)`",
            fix=FixSpec("Call the module", (Replace(func, receiver),)),
            data={"receiver_span": [r.start.line, r.start.column, r.end.line, r.end.column]},
        )
