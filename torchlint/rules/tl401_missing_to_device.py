from __future__ import annotations

import re

import libcst as cst

from torchlint.analysis.devices import is_device_checked_loss, on_accelerator
from torchlint.analysis.model import CallFact, program_model
from torchlint.analysis.positions import positions
from torchlint.analysis.training import dotted_name
from torchlint.analysis.values import Batch, ModuleV, Placement, TensorV
from torchlint.gates import OnLines
from torchlint.rules.base import FixSpec, InsertAtLine, Invalid, RelatedSpec, Replace, Rule

# Sequence lengths are meant to stay on the CPU (pack_padded_sequence, CTC).
_CPU_BY_DESIGN = re.compile(r"(?:^|_)(?:len|lens|length|lengths|seq_len|seq_lens|sizes)(?:$|_)|lengths?$", re.IGNORECASE)


class MissingToDevice(Rule):
    """
    ## What it does
    Checks for tensors drawn from a `DataLoader` that reach a model moved to an
    accelerator (`model.to(device)`, `model.cuda()`), or a loss together with
    that model's output, without being moved to the same device.

    A loader is a name bound to `torch.utils.data.DataLoader(...)` (without a
    custom `collate_fn`, and not over a `TensorDataset` of tensors already on a
    device), or a function parameter or undefined name containing `loader`.
    The model and the loop must be in the same scope, or the loop's function
    must use the module-level model directly: a model received as a parameter
    is never assumed to be on a device. `.to(...)` and `.cuda(...)` in any form
    (`non_blocking=True`, list comprehensions, a helper function) count as moved;
    models moved to `"cpu"` and models wrapped in `DataParallel`/DDP (which move
    their inputs) are not flagged at the model call. Sequence-length arguments
    (`lengths`, `seq_len`) are left alone: they often must stay on the CPU.

    ## Why is this bad?
    A CUDA model cannot take CPU tensors: the first forward pass fails with
    `RuntimeError: Expected all tensors to be on the same device` (or `Input type
    (torch.FloatTensor) and weight type (torch.cuda.FloatTensor) should be the
    same`). The code runs on a CPU-only laptop and fails on the GPU machine, so
    the mistake survives until the expensive run.

    ## Example
    ```python
    model = Net().to(device)
    for images, labels in trainloader:
        outputs = model(images)
        loss = criterion(outputs, labels)
    ```

    ## Use instead
    ```python
    model = Net().to(device)
    for images, labels in trainloader:
        images = images.to(device)
        labels = labels.to(device)
        outputs = model(images)
        loss = criterion(outputs, labels)
    ```

    ## Fix safety
    The fix moves the tensor with the device expression the model was moved
    with (`.to(device)`, or `.cuda()` for `.cuda()` models), right after the
    tensor is bound (the top of the loop body, or after `x, y = batch`); for an
    expression like `data[0]` it moves it where it is used. It is unsafe: it
    changes where the computation runs, and the device expression is copied
    from the model's line, which may not be in scope or may not be what the
    author meant for this tensor.
    """

    code = "TL401"
    incremental = True  # findings depend on the statements linked to theirs (torchlint/slices.py)
    name = "missing-to-device"
    message = "A tensor from a DataLoader reaches a model on another device"
    # DataLoader, train_loader, testloader... the rarer of the two things the
    # rule needs (a loader and a move), so fewer files are parsed for it.
    triggers = ("oader",)
    # ... and a move, and a loop or iter() over something named *oader* (or a DataLoader built here).
    trigger_pattern = OnLines("oader", r"^[ \t]*(?:async[ \t]+)?for\b[^\r\n]*\bin\b[^\r\n]*oader|iter\([^\r\n]*oader|oader[^\r\n]*__iter__|DataLoader\(")

    @classmethod
    def applies_to(cls, source: str) -> bool:
        return ".to(" in source or ".cuda(" in source
    confirmable = True

    VALID = [
        # Both moved.
        "model = Net().to(device)\nfor x, y in train_loader:\n    x, y = x.to(device), y.to(device)\n    loss = criterion(model(x), y)\n",
        # Moved with a comprehension and non_blocking.
        "model = Net().cuda()\nfor batch in train_loader:\n    x, y = [t.to('cuda', non_blocking=True) for t in batch]\n    loss = criterion(model(x), y)\n",
        # A helper of the file moves the batch.
        "def to_device(batch, device):\n    return [t.to(device) for t in batch]\n\nmodel = Net().to(device)\nfor batch in train_loader:\n    x, y = to_device(batch, device)\n    loss = criterion(model(x), y)\n",
        # The model never leaves the CPU.
        "model = Net()\nfor x, y in train_loader:\n    loss = criterion(model(x), y)\n",
        # Moved to the CPU explicitly.
        "import torch\ndevice = torch.device('cpu')\nmodel = Net().to(device)\nfor x, y in train_loader:\n    loss = criterion(model(x), y)\n",
        # The model arrives as a parameter: where it lives is the caller's business.
        "def evaluate(model, loader):\n    for x, y in loader:\n        print(model(x).argmax(1) == y)\n",
        # Moved to the model's own device.
        "model = Net().to(device)\nfor x, y in train_loader:\n    out = model(x.to(next(model.parameters()).device))\n",
        # A DataLoader over tensors already on the device.
        "import torch\nfrom torch.utils.data import DataLoader, TensorDataset\nX = torch.randn(64, 3).to(device)\nY = torch.randn(64, 1).to(device)\nloader = DataLoader(TensorDataset(X, Y), batch_size=8)\nmodel = Net().to(device)\nfor x, y in loader:\n    loss = criterion(model(x), y)\n",
        # DataParallel scatters CPU inputs itself; the labels are moved.
        "import torch.nn as nn\nmodel = nn.DataParallel(Net()).cuda()\nfor x, y in train_loader:\n    loss = criterion(model(x), y.cuda())\n",
        # Lengths stay on the CPU on purpose.
        "model = Tagger().to(device)\nfor tokens, lengths in train_loader:\n    out = model(tokens.to(device), lengths)\n",
    ]
    INVALID = [
        Invalid(
            "model = Net().to(device)\nfor images, labels in train_loader:\n    outputs = model(images)\n",
            "model = Net().to(device)\nfor images, labels in train_loader:\n    images = images.to(device)\n    outputs = model(images)\n",
        ),
        # Inputs moved, labels forgotten: the loss gets a GPU output and CPU labels.
        Invalid(
            "model = Net().cuda()\nfor i, (x, y) in enumerate(train_loader):\n    out = model(x.cuda())\n    loss = criterion(out, y)\n",
            "model = Net().cuda()\nfor i, (x, y) in enumerate(train_loader):\n    y = y.cuda()\n    out = model(x.cuda())\n    loss = criterion(out, y)\n",
        ),
        # Unpacked from the batch: moved right after the unpacking.
        Invalid(
            "def train(loader, device):\n    model = Net()\n    model.to(device)\n    for batch in loader:\n        x, y = batch\n        loss = loss_fn(model(x.view(-1, 784)), y.to(device))\n",
            "def train(loader, device):\n    model = Net()\n    model.to(device)\n    for batch in loader:\n        x, y = batch\n        x = x.to(device)\n        loss = loss_fn(model(x.view(-1, 784)), y.to(device))\n",
        ),
        # Indexing the batch at the call: moved where it is used.
        Invalid(
            "import torch\nfrom torch.utils.data import DataLoader\ndevice = torch.device('cuda' if torch.cuda.is_available() else 'cpu')\nnet = Net().to(device)\nloader = DataLoader(ds, batch_size=4)\nfor data in loader:\n    out = net(data[0])\n",
            "import torch\nfrom torch.utils.data import DataLoader\ndevice = torch.device('cuda' if torch.cuda.is_available() else 'cpu')\nnet = Net().to(device)\nloader = DataLoader(ds, batch_size=4)\nfor data in loader:\n    out = net(data[0].to(device))\n",
        ),
        # A quick look at one batch after training.
        Invalid(
            "model = Net().to(device)\nimages, labels = next(iter(test_loader))\npreds = model(images).argmax(1)\n",
            "model = Net().to(device)\nimages, labels = next(iter(test_loader))\nimages = images.to(device)\npreds = model(images).argmax(1)\n",
        ),
        # The module-level model used inside a function.
        Invalid(
            "model = Net().to(device)\n\ndef evaluate(val_loader):\n    for x, y in val_loader:\n        print(model(x))\n",
            "model = Net().to(device)\n\ndef evaluate(val_loader):\n    for x, y in val_loader:\n        x = x.to(device)\n        print(model(x))\n",
        ),
    ]

    def __init__(self, context) -> None:
        super().__init__(context)
        self._flagged: set[tuple[str, int]] = set()

    def leave_Module(self, node: cst.Module) -> None:
        model = program_model(self.context)
        for fact in list(model.calls()):
            self._check(fact, model)

    def _check(self, fact: CallFact, model) -> None:
        """Is a CPU batch given to a model on an accelerator, or to a loss with that model's output?"""
        call, callee = fact.node, fact.func
        text = dotted_name(call.func)
        if is_device_checked_loss(fact, model, self.context):
            outputs = [v for v in fact.args if isinstance(v, TensorV) and v.grad and on_accelerator(v.placement)]
            if outputs:
                for arg, value in zip(call.args, fact.args):
                    if isinstance(value, TensorV) and value.cpu_batch:
                        self._flag(arg, value.origin, outputs[0].placement, outputs[0].via or "the model", text or self.context.code(call.func), True)
            return
        if isinstance(callee, ModuleV) and on_accelerator(callee.placement) and not callee.moves_inputs:
            for arg, value in zip(call.args, fact.args):
                if isinstance(value, TensorV) and value.cpu_batch:
                    self._flag(arg, value.origin, callee.placement, text or self.context.code(call.func), text, False,
                               callee.cls if callee.cls in model.classes else None)

    def _flag(self, arg: cst.Arg, batch: Batch, where_to: Placement, model: str, callee: str | None, is_loss: bool,
              model_class: str | None = None) -> None:
        expr = arg.value
        tensor = batch.root or self.context.code(expr)
        if _CPU_BY_DESIGN.search(tensor):
            return
        key = (tensor, id(batch.site) if batch.site is not None else id(expr))
        if key in self._flagged:
            return
        self._flagged.add(key)
        pos = positions(self.context)
        assert where_to.node is not None
        line = pos.line(where_to.node)
        where = f"`{where_to.text}`" if where_to.text is not None else "the GPU"
        moved = f"moved with `{where_to.call_text}` on line {line}"
        if is_loss:
            message = (
                f"`{tensor}` from `{batch.loader}` reaches `{callee}` together with the output of "
                f"`{model}` ({moved}) without being moved to {where}"
            )
        else:
            message = f"`{tensor}` from `{batch.loader}` reaches `{model}` ({moved}) without being moved to {where}"
        data = {"device": where_to.label, "tensor": tensor, "model": model}
        if model_class is not None:
            data["model_class"] = model_class
        self.report(
            expr,
            message,
            fix=self._fix(arg, batch, where_to, tensor, pos),
            related=[RelatedSpec(where_to.node, f"`{model}` is moved to {where} here")],
            data=data,
        )

    def _fix(self, arg: cst.Arg, batch: Batch, where_to: Placement, tensor: str, pos) -> FixSpec | None:
        call = where_to.call_text
        root, site = batch.root, batch.site
        star = arg.star
        if root is not None and site is not None:
            if star == "**":
                text = f"{root} = {{k: v{call} for k, v in {root}.items()}}"
            elif star == "*":
                text = f"{root} = [t{call} for t in {root}]"
            else:
                text = f"{root} = {root}{call}"
            if isinstance(site, cst.For):
                if isinstance(site.body, cst.IndentedBlock) and site.body.body:
                    first = site.body.body[0]
                    op = InsertAtLine(pos.line(first), f"{pos.indent(first)}{text}\n")
                    return FixSpec(f"Move `{root}` to the model's device", (op,), "unsafe")
            elif isinstance(site, cst.SimpleStatementLine):
                op = InsertAtLine(pos.end_line(site) + 1, f"{pos.indent(site)}{text}\n")
                return FixSpec(f"Move `{root}` to the model's device", (op,), "unsafe")
        if star:
            return None
        expr = arg.value
        code = self.context.code(expr)
        if not isinstance(expr, (cst.Name, cst.Attribute, cst.Subscript, cst.Call)):
            code = f"({code})"
        return FixSpec(f"Move `{tensor}` to the model's device", (Replace(expr, f"{code}{call}"),), "unsafe")

