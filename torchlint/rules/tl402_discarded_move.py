from __future__ import annotations

import ast

import libcst as cst

from torchlint.analysis.model import program_model
from torchlint.analysis.positions import positions
from torchlint.analysis.values import CPU, TensorV
from torchlint.gates import OnLines, all_statements
from torchlint.incremental import python_ast
from torchlint.rules.base import FixSpec, Invalid, Replace, Rule

# Tensor methods that return a new tensor (moved or converted) and leave the receiver as it was.
_MOVES = frozenset({"to", "cuda", "cpu"})
_CASTS = frozenset({"float", "half", "double", "bfloat16", "long", "int", "short", "bool", "byte", "type"})


class DiscardedMove(Rule):
    """
    ## What it does
    Checks for `t.to(...)`, `t.cuda()`, `t.cpu()` and the dtype conversions
    (`t.float()`, `t.half()`, `t.long()`, ...) written as a statement on a value
    known to be a tensor (a batch from a DataLoader, a `torch.randn(...)`, a
    model's output), so that the result is thrown away.

    Modules are never reported: `nn.Module.to()`, `.cuda()` and `.float()` move
    the module in place, so `model.to(device)` as a statement is right. A value
    the file does not show to be a tensor (a parameter nobody passes, the result
    of an unknown function) is left alone, and so is a call that ends a notebook
    cell or a document's code block (the cell displays its value).

    ## Why is this bad?
    `Tensor.to()` is not in place: it returns a moved (or converted) copy and
    leaves `t` where it was. The next line still uses the CPU tensor, which
    fails with `Expected all tensors to be on the same device` once the model is
    on the GPU, or silently keeps the old dtype.

    ## Example
    ```python
    for images, labels in loader:
        images.to(device)
        labels.to(device)
        loss = criterion(model(images), labels)
    ```

    ## Use instead
    ```python
    for images, labels in loader:
        images = images.to(device)
        labels = labels.to(device)
        loss = criterion(model(images), labels)
    ```

    ## Fix safety
    The fix assigns the result back (`t = t.to(device)`). It is safe when `t` is
    a plain name: rebinding a local name is what the statement was meant to do.
    For an attribute or item (`batch.x.to(device)`) it is unsafe: assigning to
    it may run user code (a property, `__setitem__`) or fail on a tuple. No fix
    is offered for other expressions.
    """

    code = "TL402"
    incremental = True  # findings depend on the statements linked to theirs (torchlint/slices.py)
    name = "discarded-move"
    message = "`{call}` returns a new tensor and its result is discarded: `{tensor}` is unchanged (`Tensor.{method}()` is not in place)"
    triggers = (".to(", ".cuda(", ".cpu(", ".float(", ".half(", ".double(", ".bfloat16(", ".long(", ".int(", ".type(")
    # A line (any line ending) that starts with ``x.to(`` (``self.to(``, a module's own move, is left out):
    # files without one are not parsed for this rule.
    trigger_pattern = OnLines(
        r"\.(?:to|cuda|cpu|float|half|double|bfloat16|long|int|type)\(",
        r"^[ \t]*(?!self\.(?:to|cuda|cpu|float|half|double|bfloat16|long|int|type)\()"
        r"[A-Za-z_][\w.]*(?:\[[^\]\n]*\])?\.(?:to|cuda|cpu|float|half|double|bfloat16|long|int|type)\(",
    )
    confirmable = True

    VALID = [
        # Modules move in place.
        "import torch.nn as nn\nmodel = nn.Linear(4, 2)\nmodel.to('cuda')\nmodel.float()\n",
        # A module returned by nn.Module.to is still a module.
        "import torch.nn as nn\nnet = nn.Linear(4, 2).to('cuda')\nnet.cuda()\n",
        # The result is kept.
        "import torch\nx = torch.randn(3)\nx = x.to('cuda')\n",
        # Unknown value: a parameter nobody passes.
        "def prepare(batch, device):\n    batch.to(device)\n",
        # A user's class of this file with its own in-place to().
        "class Batch:\n    def to(self, device):\n        self.device = device\n\nb = Batch()\nb.to('cuda')\n",
        # A tensor's in-place methods are fine as statements.
        "import torch\nx = torch.zeros(3)\nx.add_(1)\nx.clamp_(0, 1)\n",
    ]
    INVALID = [
        Invalid(
            "import torch\nx = torch.randn(3)\nx.to('cuda')\ny = x * 2\n",
            "import torch\nx = torch.randn(3)\nx = x.to('cuda')\ny = x * 2\n",
        ),
        Invalid(
            "for images, labels in train_loader:\n    images.cuda()\n    out = model(images)\n",
            "for images, labels in train_loader:\n    images = images.cuda()\n    out = model(images)\n",
        ),
        # A dtype conversion is not in place either.
        Invalid(
            "for x, y in train_loader:\n    y.float()\n    loss = criterion(model(x), y)\n",
            "for x, y in train_loader:\n    y = y.float()\n    loss = criterion(model(x), y)\n",
        ),
        # A model's output.
        Invalid(
            "import torch.nn as nn\nnet = nn.Linear(4, 2)\nout = net(inp)\nout.cpu()\nprint(out.numpy())\n",
            "import torch.nn as nn\nnet = nn.Linear(4, 2)\nout = net(inp)\nout = out.cpu()\nprint(out.numpy())\n",
        ),
    ]

    def __init__(self, context) -> None:
        super().__init__(context)
        self._candidates: list[cst.Call] = []

    @classmethod
    def applies_to(cls, source: str) -> bool:
        # A statement that is such a call (the rule's candidates), on CPython's tree.
        try:
            tree = python_ast(source, keep=True)
        except (SyntaxError, ValueError, RecursionError, MemoryError):
            return True
        return any(
            isinstance(s, ast.Expr) and isinstance(s.value, ast.Call) and isinstance(s.value.func, ast.Attribute)
            and s.value.func.attr in _MOVES | _CASTS and not (s.value.func.attr == "type" and not s.value.args and not s.value.keywords)
            for s in all_statements(tree)
        )  # fmt: skip

    def visit_Expr(self, node: cst.Expr) -> None:
        call = node.value
        if isinstance(call, cst.Call) and isinstance(call.func, cst.Attribute) and call.func.attr.value in _MOVES | _CASTS:
            self._candidates.append(call)

    def leave_Module(self, node: cst.Module) -> None:
        if not self._candidates:
            return  # the model is built only for files with a candidate statement
        model = program_model(self.context)
        shown = self._displayed(node)
        for call in self._candidates:
            if id(call) in shown:
                continue
            fact = model.fact(call)
            if fact is None or not fact.discarded or not isinstance(fact.receiver, TensorV):
                continue
            func = call.func
            assert isinstance(func, cst.Attribute)
            method = func.attr.value
            if method == "type" and not call.args:
                continue  # t.type() returns the type's name: nothing is lost
            if method == "cpu" and fact.receiver.placement == CPU:
                continue  # already on the CPU: cpu() returns the tensor itself
            receiver = func.value
            tensor = self.context.code(receiver)
            text = self.context.code(call)
            fix = None
            if isinstance(receiver, (cst.Name, cst.Attribute, cst.Subscript)):
                fix = FixSpec(
                    f"Assign the result back: `{tensor} = {text}`",
                    (Replace(call, f"{tensor} = {text}"),),
                    "safe" if isinstance(receiver, cst.Name) else "unsafe",
                )
            self.report(
                call,
                self.message.format(call=text if len(text) <= 40 else f"{tensor}.{method}(...)", tensor=tensor, method=method),
                fix=fix,
                data={"tensor": tensor, "method": method},
            )

    def _displayed(self, module: cst.Module) -> set[int]:
        """Calls a notebook cell (or a document's code block) ends with: the cell shows their
        value (``t.cpu()`` to look at it), nothing is lost."""
        doc = self.context.document
        if doc is None:
            return set()
        pos = positions(self.context)
        out: set[int] = set()
        body = list(module.body)
        candidates = {id(call) for call in self._candidates}
        for i, stmt in enumerate(body):
            if not (isinstance(stmt, cst.SimpleStatementLine) and isinstance(stmt.body[-1], cst.Expr)):
                continue
            value = stmt.body[-1].value
            if id(value) not in candidates:
                continue
            nxt = doc.chunk_of(pos.statement_line(i + 1)) if i + 1 < len(body) else None
            if nxt is None or nxt != doc.chunk_of(pos.statement_line(i)):
                out.add(id(value))
        return out
