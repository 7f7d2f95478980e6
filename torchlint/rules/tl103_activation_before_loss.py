from __future__ import annotations


import libcst as cst

from torchlint.analysis.model import program_model
from torchlint.analysis.training import last_part
from torchlint.analysis.values import LossFnV, TensorV
from torchlint.gates import WordsFirst, names_in_code, resolved_under
from torchlint.rules.base import FixSpec, Invalid, RelatedSpec, Replace, Rule

# The loss -> the activation it applies itself (or, for NLL, the one it cannot take), and what to say.
_LOSSES = {
    "CrossEntropyLoss": "cross_entropy",
    "cross_entropy": "cross_entropy",
    "NLLLoss": "nll",
    "nll_loss": "nll",
    "BCEWithLogitsLoss": "bce_logits",
    "binary_cross_entropy_with_logits": "bce_logits",
}
_WRONG = {"cross_entropy": ("softmax", "log_softmax"), "nll": ("softmax",), "bce_logits": ("sigmoid",)}
_WHY = {
    "cross_entropy": "{loss} applies log_softmax itself: `{arg}` is already a softmax's output, so the classes are "
    "softmaxed twice: the loss cannot fall below a floor and its gradients shrink; pass the logits",
    "nll": "{loss} expects log-probabilities: `{arg}` is a softmax's output (probabilities), so the loss is just -p "
    "of the target class: bounded in [-1, 0], with gradients scaled down by p; use log_softmax",
    "bce_logits": "{loss} applies sigmoid itself: `{arg}` is already a sigmoid's output, so it is squashed twice: "
    "the loss cannot fall below a floor and its gradients shrink at least 4x; pass the logits (or use BCELoss)",
    # log_softmax is idempotent: not wrong numbers, but the reader (and the author) is misled about what the loss does.
    "redundant": "{loss} applies log_softmax itself: `{arg}` is already log_softmax's output, which it leaves "
    "unchanged: the same loss, computed twice, and the code no longer says whether logits or log-probabilities are meant; "
    "pass the logits (or use NLLLoss)",
}
_FUNCTIONAL = "torch.nn.functional."


class ActivationBeforeLoss(Rule):
    """
    ## What it does
    Checks for a loss given the output of the activation it applies itself, or
    of one it cannot take: a `softmax` output passed to `nn.CrossEntropyLoss` /
    `F.cross_entropy` (which apply `log_softmax` to their input), a `softmax`
    output passed to `nn.NLLLoss` / `F.nll_loss` (which expect
    log-probabilities), and a `sigmoid` output passed to
    `nn.BCEWithLogitsLoss` / `F.binary_cross_entropy_with_logits` (which apply
    `sigmoid` themselves).

    The activation is found where the loss is called (`criterion(F.softmax(out,
    dim=1), y)`), through a name (`probs = out.softmax(1)`), and through the
    model: an `nn.Softmax`/`nn.Sigmoid` last in an `nn.Sequential`, or a module
    class of the file whose `forward` returns the activation on every path.
    The rule is silent when the file does not say which loss it is (a
    `criterion` parameter), for the file's own loss functions, when the
    activation only feeds metrics (`argmax`, accuracy) or the target
    (distillation's soft labels), when `forward` returns the activation only in
    eval mode (`if not self.training`).

    A `log_softmax` output passed to `CrossEntropyLoss` is reported too, as
    redundant rather than wrong: `log_softmax` is idempotent, so the loss and
    its gradients are those of the logits, but the code says the model
    outputs log-probabilities while the loss treats them as logits (and pays
    for a second `log_softmax`); swapping the loss for `NLLLoss` later, or
    reusing the output as logits elsewhere, then goes wrong.

    ## Why is this bad?
    Training still runs, so the mistake goes unnoticed, but it optimizes the
    wrong function. A softmax before `CrossEntropyLoss` squeezes the inputs of
    the loss's own softmax into [0, 1]: the loss can never get near zero
    (with 10 classes it stays above 1.46), and its gradients become much
    smaller, so training is slow and stalls early. Probabilities passed to
    `NLLLoss` make the loss `-p[target]`, bounded in [-1, 0], whose gradient
    is `p[target]` times the right one. A sigmoid before `BCEWithLogitsLoss`
    squashes twice: the loss cannot fall below 0.31 and the gradient is at
    least 4 times too small. A `log_softmax` before `CrossEntropyLoss` computes
    the right loss twice over, and hides which of the two losses is meant.

    ## Example
    ```python
    logits = model(images)
    loss = nn.CrossEntropyLoss()(F.softmax(logits, dim=1), labels)
    ```

    ## Use instead
    ```python
    logits = model(images)
    loss = nn.CrossEntropyLoss()(logits, labels)
    ```

    ## Fix safety
    A fix is offered only when the activation is written at the loss's call
    (`F.softmax(logits, dim=1)` as its argument): for `CrossEntropyLoss` and
    `BCEWithLogitsLoss` it removes the activation, for `NLLLoss` it turns
    `softmax` into `log_softmax` (same arguments). It is unsafe: the loss's
    values change (that is the point), so logged curves, thresholds tuned on
    the old values and checkpoints' behaviour change with it. Removing a
    redundant `log_softmax` at `CrossEntropyLoss`'s call is safe: the loss
    and gradients stay the same (up to rounding). When the
    activation comes from a name or from the model's `forward`, there is no
    fix: the activation may be used elsewhere too (predictions, metrics).
    """

    code = "TL103"
    incremental = True  # findings depend on the statements linked to theirs (torchlint/slices.py)
    name = "activation-before-loss"
    message = "CrossEntropyLoss applies log_softmax itself: the softmax before it makes the loss bounded and its gradients shrink; pass the logits"
    triggers = ("oftmax", "igmoid")

    @classmethod
    def applies_to(cls, source: str) -> bool:
        # A loss known by its qualified name (a torch.nn loss class, or its functional form), and an activation named in code (not only in docstrings, as torch's losses do).
        names = resolved_under(source, ("torch.nn.",))
        return names is None or (any(n.startswith("torch.nn.") and last_part(n) in _LOSSES for n in names) and names_in_code(source, ("oftmax", "igmoid")))
    trigger_pattern = WordsFirst(("ntropy", "NLL", "nll_loss", "ogits"), r"[Cc]ross_?[Ee]ntropy|NLL|nll_loss|[Ww]ith_?[Ll]ogits")
    confirmable = True

    VALID = [
        # Softmax for the metrics only: the loss gets the logits.
        "import torch.nn as nn\nimport torch.nn.functional as F\ncriterion = nn.CrossEntropyLoss()\n"
        "for x, y in loader:\n    logits = model(x)\n    probs = F.softmax(logits, dim=1)\n"
        "    acc = (probs.argmax(1) == y).float().mean()\n    loss = criterion(logits, y)\n",
        # log_softmax + NLLLoss is the correct pair.
        "import torch.nn.functional as F\nloss = F.nll_loss(F.log_softmax(model(x), dim=1), y)\n",
        # sigmoid + BCELoss is the correct pair.
        "import torch\nimport torch.nn as nn\nloss = nn.BCELoss()(torch.sigmoid(model(x)), y)\n",
        # A loss function of the file.
        "import torch.nn.functional as F\ndef cross_entropy(p, y):\n    return -(p.log() * y).sum(1).mean()\n"
        "loss = cross_entropy(F.softmax(model(x), dim=1), y)\n",
        # Distillation: the softmax is the soft target, not the input.
        "import torch.nn.functional as F\nloss = F.cross_entropy(student(x), F.softmax(teacher(x) / 4, dim=1))\n",
        # log_softmax feeding the metrics, NLLLoss the loss.
        "import torch.nn as nn\nimport torch.nn.functional as F\nlogp = F.log_softmax(out, dim=1)\n"
        "loss = nn.NLLLoss()(logp, y)\npred = logp.argmax(1)\n",
        # The criterion's kind is not known.
        "import torch.nn.functional as F\ndef step(criterion, out, y):\n    return criterion(F.softmax(out, dim=1), y)\n",
    ]
    INVALID = [
        Invalid(
            "import torch.nn as nn\nimport torch.nn.functional as F\ncriterion = nn.CrossEntropyLoss()\nloss = criterion(F.softmax(logits, dim=1), labels)\n",
            "import torch.nn as nn\nimport torch.nn.functional as F\ncriterion = nn.CrossEntropyLoss()\nloss = criterion(logits, labels)\n",
        ),
        Invalid(
            "import torch.nn.functional as F\nloss = F.nll_loss(F.softmax(out, dim=1), y)\n",
            "import torch.nn.functional as F\nloss = F.nll_loss(F.log_softmax(out, dim=1), y)\n",
        ),
        # Redundant: CrossEntropyLoss applies log_softmax itself (same loss; safe fix).
        Invalid(
            "import torch.nn as nn\nimport torch.nn.functional as F\nloss = nn.CrossEntropyLoss()(F.log_softmax(out, dim=1), y)\n",
            "import torch.nn as nn\nimport torch.nn.functional as F\nloss = nn.CrossEntropyLoss()(out, y)\n",
        ),
        Invalid(
            "import torch\nimport torch.nn as nn\nloss = nn.BCEWithLogitsLoss()(torch.sigmoid(z), t)\n",
            "import torch\nimport torch.nn as nn\nloss = nn.BCEWithLogitsLoss()(z, t)\n",
        ),
        # Through the model: its forward ends in a softmax.
        Invalid(
            "import torch.nn as nn\nimport torch.nn.functional as F\n"
            "class Net(nn.Module):\n    def __init__(self):\n        super().__init__()\n        self.fc = nn.Linear(4, 3)\n"
            "    def forward(self, x):\n        return F.softmax(self.fc(x), dim=1)\n"
            "model = Net()\ncriterion = nn.CrossEntropyLoss()\nfor x, y in loader:\n    loss = criterion(model(x), y)\n"
        ),
        # Through an nn.Sequential ending in nn.Sigmoid.
        Invalid(
            "import torch.nn as nn\nmodel = nn.Sequential(nn.Linear(4, 1), nn.Sigmoid())\n"
            "loss_fn = nn.BCEWithLogitsLoss()\nloss = loss_fn(model(x), y)\n"
        ),
    ]

    def __init__(self, context) -> None:
        super().__init__(context)
        self._calls: list[cst.Call] = []

    def visit_Call(self, node: cst.Call) -> None:
        if node.args:
            self._calls.append(node)

    def leave_Module(self, node: cst.Module) -> None:
        if not self._calls:
            return
        model = program_model(self.context)
        for call in self._calls:
            kind, loss = self._loss_kind(call, model)
            if kind is None:
                continue
            index = _input_index(call)
            fact = model.fact(call)
            if index is None or fact is None or index >= len(fact.args):
                continue
            value = fact.args[index]
            if not (isinstance(value, TensorV) and value.act in _WRONG[kind]):
                continue
            self._report(call, call.args[index].value, value, kind, loss)

    def _loss_kind(self, call: cst.Call, model) -> tuple[str | None, str]:
        fact = model.fact(call)
        if fact is not None and isinstance(fact.func, LossFnV) and fact.func.qual:
            name = last_part(fact.func.qual)
            return _LOSSES.get(name), name
        qual = self.context.qualname(call.func) or ""
        if qual.startswith(_FUNCTIONAL) and last_part(qual) in _LOSSES:
            return _LOSSES[last_part(qual)], f"F.{last_part(qual)}"
        return None, ""

    def _report(self, call: cst.Call, arg: cst.BaseExpression, value: TensorV, kind: str, loss: str) -> None:
        text = self.context.code(arg)
        shown = text if len(text) <= 40 else "its input"
        why = "redundant" if value.act == "log_softmax" else kind
        message = "`" + loss + "`" + _WHY[why].format(loss="", arg=shown)
        fix = None
        related: list[RelatedSpec] = []
        site = value.act_site
        if site is arg and isinstance(arg, cst.Call):
            fix = _fix(arg, kind, self.context, redundant=why == "redundant")
        elif site is not None:
            related.append(RelatedSpec(site, f"the {value.act} is applied here"))
        self.report(call, message, fix=fix, related=related, data={"activation": value.act, "loss": kind})


def _input_index(call: cst.Call) -> int | None:
    for i, arg in enumerate(call.args):
        if arg.star:
            return None
        if arg.keyword is None:
            return i
        if arg.keyword.value == "input":
            return i
    return None


def _fix(arg: cst.Call, kind: str, context, redundant: bool = False) -> FixSpec | None:
    """Remove the activation (CrossEntropyLoss, BCEWithLogitsLoss) or make it log_softmax (NLLLoss)."""
    func = arg.func
    method = isinstance(func, cst.Attribute) and context.qualname(func) is None  # x.softmax(1)
    if kind == "nll":
        if not isinstance(func, cst.Attribute):
            return None
        fixed = arg.with_changes(func=func.with_changes(attr=cst.Name("log_softmax")))
        return FixSpec("Use `log_softmax`", (Replace(arg, fixed),), "unsafe")
    if method:
        inner = func.value  # type: ignore[union-attr]
    else:
        positional = [a for a in arg.args if a.keyword is None and not a.star]
        given = [a for a in arg.args if a.keyword is not None and a.keyword.value == "input"]
        if not positional and not given:
            return None
        inner = (positional or given)[0].value
    if redundant:
        return FixSpec("Pass the logits (remove the redundant log_softmax)", (Replace(arg, context.code(inner)),), "safe")
    what = "softmax" if kind == "cross_entropy" else "sigmoid"
    return FixSpec(f"Pass the logits (remove the {what})", (Replace(arg, context.code(inner)),), "unsafe")
