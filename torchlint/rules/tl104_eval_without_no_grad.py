from __future__ import annotations

import re

import libcst as cst

from torchlint.analysis.evaluation import enclosing_loops, evaluation_call, over_batches
from torchlint.analysis.model import CallFact, Region, program_model
from torchlint.analysis.positions import positions
from torchlint.gates import may_hold_loader, may_loop_over_loader
from torchlint.rules.base import FixSpec, Invalid, RelatedSpec, Replace, Rule

_IMPORTS_TORCH = re.compile(r"^[ \t]*import torch(?:[ \t]*$|[ \t]*[,#]|\.)", re.M)


class EvalWithoutNoGrad(Rule):
    """
    ## What it does
    Checks for evaluation or inference loops over a DataLoader's batches that
    apply a model outside `torch.no_grad()` or `torch.inference_mode()`.

    A loop counts as evaluation when nothing in it trains or asks for
    gradients: no `backward()`, no `step()`, no `zero_grad()`, no
    `torch.autograd.grad`, no `requires_grad`, no call to a function of the
    file that does, and no call into unknown code that is given the model or an
    optimizer; and no `backward()` follows the loop in the same function. The
    rule is silent under `no_grad`/`inference_mode`/`set_grad_enabled`
    (including a `@torch.no_grad()` decorator), in a function that any call
    site in the file calls under one, and in a function the file never calls
    (its caller may wrap it).

    ## Why is this bad?
    Outside `no_grad` every operation on the model's parameters records an
    autograd graph and keeps the activations it needs for a backward pass
    that never comes. Evaluation is slower and uses much more memory (often
    the reason a validation loop runs out of memory when training did not),
    and any output kept across batches keeps its graph alive too.

    ## Example
    ```python
    model.eval()
    for images, labels in test_loader:
        outputs = model(images)
        correct += (outputs.argmax(1) == labels).sum().item()
    ```

    ## Use instead
    ```python
    model.eval()
    with torch.no_grad():
        for images, labels in test_loader:
            outputs = model(images)
            correct += (outputs.argmax(1) == labels).sum().item()
    ```

    ## Fix safety
    The fix wraps the loop in `with torch.no_grad():` (offered when `torch` is
    imported under that name). It is unsafe: code in the loop that the rule
    cannot see could still need gradients.
    """

    code = "TL104"
    incremental = True  # findings depend on the statements linked to theirs (torchlint/slices.py)

    @classmethod
    def file_facts(cls, source: str) -> object:
        return _IMPORTS_TORCH.search(source) is not None
    name = "eval-without-no-grad"
    message = "`{call}` runs in an evaluation loop over `{loader}` outside `torch.no_grad()`: an autograd graph is built for every batch and never used"
    triggers = ("oader",)

    @classmethod
    def applies_to(cls, source: str) -> bool:
        # Batches come only from a loader: a DataLoader, or a name that says it is one; and the
        # rule's loops run over them.
        return may_hold_loader(source) and may_loop_over_loader(source)
    confirmable = True

    VALID = [
        "import torch\nwith torch.no_grad():\n    for x, y in test_loader:\n        correct += (model(x).argmax(1) == y).sum().item()\n",
        "import torch\nwith torch.inference_mode():\n    for x, y in test_loader:\n        preds.append(model(x))\n",
        # A 'validation' loop that really trains.
        "for x, y in val_loader:\n    optimizer.zero_grad()\n    loss = criterion(model(x), y)\n    loss.backward()\n    optimizer.step()\n",
        # A decorated evaluation function.
        "import torch\n@torch.no_grad()\ndef evaluate(model, loader):\n    for x, y in loader:\n        print(model(x).argmax(1))\n",
        # Called under no_grad by its caller.
        "import torch\ndef evaluate(model, loader):\n    for x, y in loader:\n        print(model(x).argmax(1))\n\nwith torch.no_grad():\n    evaluate(net, test_loader)\n",
        # Saliency maps need the gradient.
        "for x, y in test_loader:\n    x.requires_grad_()\n    model(x)[0, y[0]].backward()\n    maps.append(x.grad)\n",
    ]
    INVALID = [
        Invalid(
            "import torch\nmodel.eval()\nfor images, labels in test_loader:\n    outputs = model(images)\n    correct += (outputs.argmax(1) == labels).sum().item()\n",
            "import torch\nmodel.eval()\nwith torch.no_grad():\n    for images, labels in test_loader:\n        outputs = model(images)\n        correct += (outputs.argmax(1) == labels).sum().item()\n",
        ),
        Invalid(
            "import torch\ndef test(model, loader):\n    model.eval()\n    for x, y in loader:\n        print(model(x).argmax(1))\n\ntest(net, test_loader)\n",
            "import torch\ndef test(model, loader):\n    model.eval()\n    with torch.no_grad():\n        for x, y in loader:\n            print(model(x).argmax(1))\n\ntest(net, test_loader)\n",
        ),
        # Inference: predictions collected, each with its graph.
        Invalid(
            "import torch\nnet = torch.nn.Linear(4, 2)\npreds = []\nfor batch, _ in predict_loader:\n    preds.append(net(batch).argmax(1))\n",
            "import torch\nnet = torch.nn.Linear(4, 2)\npreds = []\nwith torch.no_grad():\n    for batch, _ in predict_loader:\n        preds.append(net(batch).argmax(1))\n",
        ),
    ]

    def __init__(self, context) -> None:
        super().__init__(context)
        self._loops: list[cst.For] = []

    def visit_For(self, node: cst.For) -> None:
        self._loops.append(node)

    def leave_Module(self, node: cst.Module) -> None:
        if not self._loops:
            return
        model = program_model(self.context)
        flagged: set[int] = set()
        for loop in self._loops:
            region = model.loop(loop)
            if region is None or not over_batches(region.over) or any(id(outer) in flagged for outer in enclosing_loops(region)):
                continue
            call = evaluation_call(model, region)
            if call is None:
                continue
            flagged.add(id(loop))
            self._report(loop, region, call)

    def _report(self, loop: cst.For, region: Region, call: CallFact) -> None:
        loader = self.context.code(loop.iter)
        loader = loader if len(loader) <= 30 else "its loader"
        text = self.context.code(call.node)
        fix = None
        if _IMPORTS_TORCH.search(self.context.file_source):
            wrapped = cst.With(
                items=[cst.WithItem(cst.parse_expression("torch.no_grad()"))],
                body=cst.IndentedBlock(body=[loop.with_changes(leading_lines=())]),
            )
            # Rendered at column 0, then every line after the first indented like the loop.
            indent = positions(self.context).indent(loop)
            lines = self.context.module.code_for_node(wrapped).rstrip("\n").split("\n")
            rendered = "\n".join([lines[0], *(indent + ln if ln else ln for ln in lines[1:])])
            fix = FixSpec("Wrap the loop in `with torch.no_grad():`", (Replace(loop, rendered),), "unsafe")
        self.report(
            call.node,
            self.message.format(call=text if len(text) <= 30 else "the model", loader=loader),
            fix=fix,
            related=[RelatedSpec(loop, "this loop only evaluates: nothing in it calls backward() or step()")],
            data={"loader": loader},
        )

