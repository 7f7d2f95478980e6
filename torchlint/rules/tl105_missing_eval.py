from __future__ import annotations

import ast
import re

import libcst as cst

from torchlint.analysis.evaluation import EVAL_FUNCTION, evaluates, region_around, switched_to_training, trains_module
from torchlint.analysis.model import CallFact, Region, program_model
from torchlint.analysis.values import ModuleV
from torchlint.names import dotted_name
from torchlint.gates import (
    all_statements,
    dotted_text,
    may_call_known_mode_module,
    may_hold_loader,
    may_hold_torch_module,
    may_loop_over_loader,
)
from torchlint.incremental import python_ast
from torchlint.rules.base import Invalid, RelatedSpec, Rule

# Calls of these methods, in the text (a superset of the calls in the code).
_MODE_CALL = re.compile(r"\.\s*(?:train|eval)\s*\(")
_BACKWARD_CALL = re.compile(r"\.\s*backward\s*\(")
_STEP_CALL = re.compile(r"\.\s*step\s*\(")
_EVAL_DEF = re.compile(r"def \w*(?:eval|test|valid|predict|infer)", re.I)


def _module_class_here(tree: ast.Module) -> bool:
    """A class with a base named ``*Module`` (the model's module classes descend from one)."""
    return any(
        isinstance(s, ast.ClassDef) and any((dotted_text(b) or "").rpartition(".")[2].endswith("Module") for b in s.bases)
        for s in all_statements(tree)
    )


class MissingEval(Rule):
    """
    ## What it does
    Checks for evaluation or inference that runs a model still in training
    mode, and for training that runs a model left in eval mode.

    Evaluation is a model call in a loop over a loader's batches, or in a
    function named for it (`evaluate`, `test`, `validate`, `predict`), that
    trains nothing (no `backward()`, `step()`, `zero_grad()`, no function that
    does), with evidence that it evaluates: it runs under `torch.no_grad()` or
    `torch.inference_mode()`, or over a test/validation loader, or in such a
    function. It is flagged when the program model knows the model is in
    training mode there: it was just built, or `model.train()` was called, and
    no `model.eval()` (or `model.train(False)`, or a function of the file that
    calls it) came in between; in an epoch loop, also when only a later part
    of the body puts it back in training mode.

    The converse: a model call in a training loop (`backward()` and the
    `step()` of an optimizer built from that model's parameters) while the
    model is in eval mode: after `model.eval()` with no `model.train()`
    since, or, in an epoch loop, when the body ends in eval mode (an
    evaluation function that calls `eval()`) and nothing calls `train()`
    before the next epoch trains.

    Only models that behave differently in the two modes are flagged: a class
    of the file (or an `nn.Sequential`) with dropout or batch norm
    (`nn.Dropout*`, `nn.BatchNorm*`, `F.dropout`, RNNs and transformers with
    dropout, a `self.training` test, a torchvision model), or whose layers the
    file does not show. The rule is silent when the mode is unknown: a model
    given to code the file does not show, `model.train(flag)`, a mode set on
    some paths only, a frozen model (no optimizer steps it).

    ## Why is this bad?
    In training mode dropout keeps zeroing activations at random and batch
    norm normalizes each batch with its own statistics (and keeps updating
    its running averages with the test data). Evaluation results are noisy,
    depend on the batch size and are worse than the model really is;
    predictions differ from one run to the next. The converse is quieter:
    once `eval()` is called during training (for a validation pass) and
    `train()` is not called again, every later epoch trains without dropout
    and with frozen batch-norm statistics, and regularization silently stops.

    ## Example
    ```python
    for epoch in range(epochs):
        for x, y in train_loader:
            optimizer.zero_grad()
            criterion(model(x), y).backward()
            optimizer.step()
        with torch.no_grad():
            for x, y in val_loader:
                correct += (model(x).argmax(1) == y).sum().item()
    ```

    ## Use instead
    ```python
    for epoch in range(epochs):
        model.train()
        for x, y in train_loader:
            optimizer.zero_grad()
            criterion(model(x), y).backward()
            optimizer.step()
        model.eval()
        with torch.no_grad():
            for x, y in val_loader:
                correct += (model(x).argmax(1) == y).sum().item()
    ```

    ## Fix safety
    There is no fix: where `eval()` belongs (before the loop, in the
    evaluation function, at the top of each epoch) and whether a `train()`
    must follow is a decision about the program's structure, and a model kept
    in training mode on purpose (Monte Carlo dropout) exists.
    """

    code = "TL105"
    incremental = True  # findings depend on the statements linked to theirs (torchlint/slices.py)
    name = "missing-eval"
    message = "`model` is in training mode during evaluation: dropout stays active and batch norm uses the batch's statistics; call `model.eval()` first"
    triggers = ("eval(", "train(", "no_grad", "inference_mode")
    confirmable = True

    VALID = [
        # model.eval() before evaluating.
        "import torch\nimport torch.nn as nn\nmodel = nn.Sequential(nn.Linear(4, 8), nn.Dropout(0.5), nn.Linear(8, 2))\n"
        "model.eval()\nwith torch.no_grad():\n    for x, y in test_loader:\n        print(model(x).argmax(1))\n",
        # model.train(False) is eval mode.
        "import torch\nimport torch.nn as nn\nmodel = nn.Sequential(nn.Linear(4, 8), nn.Dropout(0.5))\n"
        "model.train(False)\nwith torch.no_grad():\n    for x, y in test_loader:\n        print(model(x))\n",
        # No dropout or batch norm: the mode changes nothing.
        "import torch\nimport torch.nn as nn\nmodel = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2))\n"
        "with torch.no_grad():\n    for x, y in test_loader:\n        print(model(x).argmax(1))\n",
        # The mode is unknown: the model comes from code the file does not show.
        "import torch\nfrom mylib import build\nmodel = build()\nwith torch.no_grad():\n    for x, y in test_loader:\n        print(model(x))\n",
        # A 'validation' loop that trains.
        "import torch.nn as nn\nimport torch\nmodel = nn.Sequential(nn.Linear(4, 2), nn.Dropout())\n"
        "opt = torch.optim.SGD(model.parameters(), lr=0.1)\nfor x, y in val_loader:\n"
        "    opt.zero_grad()\n    nn.functional.cross_entropy(model(x), y).backward()\n    opt.step()\n",
    ]
    INVALID = [
        # Evaluation after training, no eval().
        Invalid(
        "import torch\nimport torch.nn as nn\nmodel = nn.Sequential(nn.Linear(4, 8), nn.Dropout(0.5), nn.Linear(8, 2))\n"
        "opt = torch.optim.SGD(model.parameters(), lr=0.1)\nfor x, y in train_loader:\n    opt.zero_grad()\n"
        "    nn.functional.cross_entropy(model(x), y).backward()\n    opt.step()\n"
        "with torch.no_grad():\n    for x, y in test_loader:\n        print(model(x).argmax(1))\n"
        ),
        # Training after eval() without train().
        Invalid(
        "import torch\nimport torch.nn as nn\nmodel = nn.Sequential(nn.Linear(4, 8), nn.BatchNorm1d(8), nn.Linear(8, 2))\n"
        "opt = torch.optim.SGD(model.parameters(), lr=0.1)\nmodel.eval()\nfor x, y in train_loader:\n    opt.zero_grad()\n"
        "    nn.functional.cross_entropy(model(x), y).backward()\n    opt.step()\n"
        ),
        # The converse in an epoch loop: evaluate() calls eval(), nothing calls train() again.
        Invalid(
            "import torch\nimport torch.nn as nn\nmodel = nn.Sequential(nn.Linear(4, 8), nn.Dropout(0.2), nn.Linear(8, 2))\n"
            "opt = torch.optim.SGD(model.parameters(), lr=0.1)\ndef evaluate(m, loader):\n    m.eval()\n"
            "    with torch.no_grad():\n        return sum((m(x).argmax(1) == y).sum().item() for x, y in loader)\n"
            "for epoch in range(10):\n    for x, y in train_loader:\n        opt.zero_grad()\n"
        "        nn.functional.cross_entropy(model(x), y).backward()\n        opt.step()\n    evaluate(model, val_loader)\n"
        ),
    ]

    @classmethod
    def applies_to(cls, source: str) -> bool:
        if not ("oader" in source or _EVAL_DEF.search(source) is not None):
            return False
        try:
            tree = python_ast(source, keep=True)
        except (SyntaxError, ValueError, RecursionError, MemoryError):
            return True
        # On CPython's tree: a module whose mode the model knows (built here from torch.nn or a
        # class of the file, or switched with train()/eval()) ...
        if not (_MODE_CALL.search(source) or _module_class_here(tree) or may_hold_torch_module(source)):
            return False
        # ... and training (backward() and step()), or evaluation over a loader's batches (a loop
        # the model sees running over a loader) ...
        if (_BACKWARD_CALL.search(source) and _STEP_CALL.search(source)) or (may_hold_loader(source) and may_loop_over_loader(source)):
            return True
        # ... or in a function named for it, that calls a module of known mode.
        evaluations = [
            s for s in all_statements(tree) if isinstance(s, (ast.FunctionDef, ast.AsyncFunctionDef)) and EVAL_FUNCTION.search(s.name.lower())
        ]
        return bool(evaluations) and may_call_known_mode_module(source, evaluations)

    def leave_Module(self, node: cst.Module) -> None:
        model = program_model(self.context)
        seen: set[tuple] = set()
        for fact in list(model.calls()):
            module = fact.func
            if not isinstance(module, ModuleV) or not isinstance(fact.node.func, (cst.Name, cst.Attribute)):
                continue
            name = dotted_name(fact.node.func)
            if name is None or model.mode_dependent(module) is False:
                continue
            training = module.training if module.training is not None else module.back
            if training is None:
                continue
            region = region_around(model, fact)
            key = (name, id(region.node) if region is not None else None, training)
            if region is None or key in seen:
                continue
            if training and evaluates(model, fact, region) and not switched_to_training(model, fact, name):
                seen.add(key)
                self._report_eval(fact, name, module, region)
            elif not training and trains_module(model, fact, region, name):
                seen.add(key)
                self._report_train(fact, name, module, region)

    # -- evaluation in training mode -------------------------------------------------
    def _report_eval(self, fact: CallFact, name: str, module: ModuleV, region: Region) -> None:
        later = module.training is None
        why = (
            f"`{name}` is in training mode during evaluation"
            + (" from the second iteration on (a later part of the loop that runs this, here or in a caller, calls `train()`)" if later else "")
            + f": dropout stays active and batch norm normalizes with each batch's statistics (and updates its running averages), "
            f"so results are noisy and worse than the model; call `{name}.eval()` first"
        )
        self.report(fact.node, why, related=[RelatedSpec(region.node, "evaluation: nothing here trains")],
                    data={"model": name, "expect_training": True})

    # -- training in eval mode ---------------------------------------------------------
    def _report_train(self, fact: CallFact, name: str, module: ModuleV, region: Region) -> None:
        if module.training is None:
            why = (
                f"`{name}` trains in eval mode from the second epoch on: a later part of the loop that runs this (here or in a caller) "
                f"puts `{name}` in eval mode (`eval()`, or a function that calls it) and nothing calls `{name}.train()` again before this"
            )
        else:
            why = f"`{name}` trains in eval mode: `eval()` was called and no `{name}.train()` came after it"
        why += ": dropout is off and batch norm neither uses batch statistics nor updates its running averages"
        loop = next(iter(fact.loops), region.node)
        self.report(fact.node, why, related=[RelatedSpec(loop, "this loop trains")], data={"model": name, "expect_training": False})

