from __future__ import annotations

import libcst as cst

from torchlint.gates import loop_method_calls
from torchlint.incremental import python_ast
from torchlint.analysis.model import CallFact, ProgramModel, Region, program_model
from torchlint.analysis.positions import positions
from torchlint.analysis.steps import backward_calls, cleared_instead, is_optimizer, operand
from torchlint.analysis.training import dotted_name, is_zero_grad, step_call_text, stepped_optimizer
from torchlint.analysis.values import ScalerV
from torchlint.rules.base import FixSpec, InsertAtLine, Invalid, RelatedSpec, Rule


class MissingZeroGrad(Rule):
    """
    ## What it does
    Checks for training loops that call `backward()` and `optimizer.step()` on
    every iteration but never clear the gradients inside the loop.

    The finding is reported on the `step()` call. Gradients count as cleared by
    `optimizer.zero_grad()` (any arguments), `model.zero_grad()`, `p.grad = None`,
    `p.grad.zero_()` or `del p.grad` anywhere in the loop, including under an
    `if` (gradient accumulation), in a nested loop, or in a function of the same
    file that the loop calls. A call into code the rule cannot see (a function
    imported from another module, an inherited method) counts as "might clear"
    only if it can reach the gradients: it is given a model, an optimizer,
    parameters or an object of the file holding one (or it is an inherited
    method of `self`). A logging helper given the loss value cannot: the rule
    still reports. Steps driven by a closure (`optimizer.step(closure)`,
    LBFGS) are left alone, as are `.step()` calls on objects that are not
    optimizers (schedulers): an optimizer is a `torch.optim` construction or a
    name such as `optimizer`, `opt`, `optim_g`, `d_optimizer`. With two
    optimizers (GANs), a loop that clears only the other one is flagged when
    both are built in the file from different models' parameters.

    ## Why is this bad?
    `backward()` adds to `.grad`; it never overwrites it. Without clearing, the
    step at iteration *n* uses the sum of the gradients of all *n* batches so
    far, so the effective learning rate grows every step and training diverges
    or silently goes wrong. Clearing once before the loop, or in an outer
    (epoch) loop, is not enough.

    ## Example
    ```python
    optimizer.zero_grad()
    for inputs, labels in trainloader:
        loss = criterion(model(inputs), labels)
        loss.backward()
        optimizer.step()
    ```

    ## Use instead
    ```python
    for inputs, labels in trainloader:
        optimizer.zero_grad()
        loss = criterion(model(inputs), labels)
        loss.backward()
        optimizer.step()
    ```

    ## Fix safety
    The fix inserts `optimizer.zero_grad()` as the first statement of the loop
    body (offered when the optimizer is a plain or dotted name). It is unsafe:
    it changes the numbers the loop computes, which is the point, but if the
    accumulation was intended (gradient accumulation done some other way the rule
    could not see) the fix changes the training.
    """

    code = "TL101"
    incremental = True  # findings depend on the statements linked to theirs (torchlint/slices.py)
    name = "missing-zero-grad"
    message = "`{step}` runs in a loop that never clears the gradients: `backward()` adds to `.grad`, so each step uses the sum of all earlier batches' gradients"
    # Every backward call is spelled ``.backward(`` (``loss.backward()``,
    # ``torch.autograd.backward(...)``, ``accelerator.backward(loss)``); plain
    # "backward" would also match every ``def backward(ctx, ...)``.
    triggers = (".backward(",)

    @classmethod
    def applies_to(cls, source: str) -> bool:
        # The rule's own first test, on CPython's tree: a step and a backward() called inside loops.
        try:
            tree = python_ast(source, keep=True)
        except (SyntaxError, ValueError, RecursionError, MemoryError):
            return True
        loops = loop_method_calls(tree, source)
        return any("step" in c or "optimizer_step" in c for _, c in loops) and any("backward" in c for _, c in loops)
    confirmable = True

    VALID = [
        # Cleared at the end of the body, with set_to_none.
        "for x, y in loader:\n    loss = loss_fn(model(x), y)\n    loss.backward()\n    optimizer.step()\n    optimizer.zero_grad(set_to_none=True)\n",
        # The model clears its own parameters.
        "for x, y in loader:\n    model.zero_grad()\n    loss_fn(model(x), y).backward()\n    optimizer.step()\n",
        # Gradient accumulation: step and clear every N batches.
        "for i, (x, y) in enumerate(loader):\n    (loss_fn(model(x), y) / 4).backward()\n    if (i + 1) % 4 == 0:\n        optimizer.step()\n        optimizer.zero_grad()\n",
        # Manual clearing of every parameter.
        "for x, y in loader:\n    for p in model.parameters():\n        p.grad = None\n    loss_fn(model(x), y).backward()\n    opt.step()\n",
        # A helper of this file clears them.
        "def reset(opt):\n    opt.zero_grad()\n\nfor x, y in loader:\n    reset(optimizer)\n    loss_fn(model(x), y).backward()\n    optimizer.step()\n",
        # LBFGS: the closure clears, step() calls it.
        "for x, y in loader:\n    def closure():\n        optimizer.zero_grad()\n        loss = loss_fn(model(x), y)\n        loss.backward()\n        return loss\n    optimizer.step(closure)\n",
        # A scheduler's step is not an optimizer step.
        "optimizer.zero_grad()\nfor epoch in range(10):\n    loss_fn(model(x), y).backward()\n    scheduler.step()\n",
        # A helper imported from another module is given the model: it may clear.
        "from trainlib import after_step\nfor x, y in loader:\n    loss_fn(model(x), y).backward()\n    optimizer.step()\n    after_step(model)\n",
        # AMP: cleared, then scaler.step(optimizer).
        "for x, y in loader:\n    optimizer.zero_grad()\n    scaler.scale(loss_fn(model(x), y)).backward()\n    scaler.step(optimizer)\n    scaler.update()\n",
        # GAN loop clearing both optimizers.
        "import torch\nopt_g = torch.optim.Adam(gen.parameters())\nopt_d = torch.optim.Adam(disc.parameters())\nfor real in loader:\n    opt_d.zero_grad()\n    d_loss(real).backward()\n    opt_d.step()\n    opt_g.zero_grad()\n    g_loss().backward()\n    opt_g.step()\n",
    ]
    INVALID = [
        Invalid(
            "for x, y in loader:\n    loss = loss_fn(model(x), y)\n    loss.backward()\n    optimizer.step()\n",
            "for x, y in loader:\n    optimizer.zero_grad()\n    loss = loss_fn(model(x), y)\n    loss.backward()\n    optimizer.step()\n",
        ),
        # Cleared once, before the loop.
        Invalid(
            "def train(model, loader, opt):\n    opt.zero_grad()\n    for x, y in loader:\n        model(x).sum().backward()\n        opt.step()\n",
            "def train(model, loader, opt):\n    opt.zero_grad()\n    for x, y in loader:\n        opt.zero_grad()\n        model(x).sum().backward()\n        opt.step()\n",
        ),
        # Cleared in the epoch loop only: the batch loop accumulates.
        Invalid(
            "for epoch in range(5):\n    optimizer.zero_grad()\n    for x, y in loader:\n        loss_fn(model(x), y).backward()\n        optimizer.step()\n",
            "for epoch in range(5):\n    optimizer.zero_grad()\n    for x, y in loader:\n        optimizer.zero_grad()\n        loss_fn(model(x), y).backward()\n        optimizer.step()\n",
        ),
        # AMP with a GradScaler: the step is scaler.step(optimizer).
        Invalid(
            "while step < total:\n    scaler.scale(loss_fn(model(x), y)).backward()\n    scaler.step(optimizer)\n    scaler.update()\n    step += 1\n",
            "while step < total:\n    optimizer.zero_grad()\n    scaler.scale(loss_fn(model(x), y)).backward()\n    scaler.step(optimizer)\n    scaler.update()\n    step += 1\n",
        ),
        # GAN: the generator's optimizer is never cleared.
        Invalid(
            "import torch\nopt_g = torch.optim.Adam(gen.parameters())\nopt_d = torch.optim.Adam(disc.parameters())\nfor real in loader:\n    opt_d.zero_grad()\n    d_loss(real).backward()\n    opt_d.step()\n    g_loss().backward()\n    opt_g.step()\n",
            "import torch\nopt_g = torch.optim.Adam(gen.parameters())\nopt_d = torch.optim.Adam(disc.parameters())\nfor real in loader:\n    opt_g.zero_grad()\n    opt_d.zero_grad()\n    d_loss(real).backward()\n    opt_d.step()\n    g_loss().backward()\n    opt_g.step()\n",
        ),
        # An imported logging helper is given only numbers: it cannot clear.
        Invalid(
            "from trainlib import log_metrics\nfor step, (x, y) in enumerate(loader):\n    loss = loss_fn(model(x), y)\n    loss.backward()\n    optimizer.step()\n    log_metrics(step, loss.item())\n",
            "from trainlib import log_metrics\nfor step, (x, y) in enumerate(loader):\n    optimizer.zero_grad()\n    loss = loss_fn(model(x), y)\n    loss.backward()\n    optimizer.step()\n    log_metrics(step, loss.item())\n",
        ),
        # A name that is not optimizer-like but built from torch.optim.
        Invalid(
            "import torch.optim as optim\nsgd = optim.SGD(net.parameters(), lr=0.1)\nfor epoch in range(100):\n    loss = ((net(x) - y) ** 2).mean()\n    loss.backward()\n    sgd.step()\n",
            "import torch.optim as optim\nsgd = optim.SGD(net.parameters(), lr=0.1)\nfor epoch in range(100):\n    sgd.zero_grad()\n    loss = ((net(x) - y) ** 2).mean()\n    loss.backward()\n    sgd.step()\n",
        ),
    ]

    def __init__(self, context) -> None:
        super().__init__(context)
        # The model is built only if a loop holds a step() and a loop a backward()
        # (a docstring showing a training loop does not count).
        self._loops = 0
        self._step = self._backward = False

    def visit_For(self, node: cst.For) -> None:
        self._loops += 1

    def leave_For(self, node: cst.For) -> None:
        self._loops -= 1

    visit_While = visit_For  # type: ignore[assignment]
    leave_While = leave_For  # type: ignore[assignment]

    def visit_Call(self, node: cst.Call) -> None:
        func = node.func
        if self._loops and isinstance(func, cst.Attribute):
            name = func.attr.value
            self._step = self._step or name in ("step", "optimizer_step")
            self._backward = self._backward or name == "backward"

    def leave_Module(self, node: cst.Module) -> None:
        if not (self._step and self._backward):
            return
        model = program_model(self.context)
        reported: set[tuple[int, str]] = set()
        for fact in list(model.calls()):
            opt = stepped_optimizer(fact.node, self.context.qualname, isinstance(fact.receiver, ScalerV))
            if opt is None or not fact.loops:
                continue
            loops = [model.loop(lp) for lp in fact.loops]
            loop = next((lp for lp in reversed(loops) if lp is not None and backward_calls(lp)), None)
            if loop is None or (id(loop.node), opt) in reported:
                continue
            if not is_optimizer(opt, operand(fact, opt)):
                continue
            others = cleared_instead(model, loop, opt, fact)
            if others is None:
                continue
            reported.add((id(loop.node), opt))
            self._report(fact, opt, loop, others, model)

    def _report(self, step: CallFact, opt: str, loop: Region, others: list[str], model: ProgramModel) -> None:
        pos = positions(self.context)
        message = self.message.format(step=step_call_text(step.node))
        if others:
            cleared = ", ".join(f"`{o}`" for o in others)
            message += f"; the loop clears only {cleared}, not `{opt}`"
        message += f"; call `{opt}.zero_grad()` in the loop"
        related = [RelatedSpec(backward_calls(loop)[0].node, "gradients are accumulated here on every iteration")]
        outside = [
            f.node
            for f in model.calls()
            if f.function is step.function and is_zero_grad(f.node) and loop.node not in f.loops
            and dotted_name(f.node.func.value) == opt  # type: ignore[attr-defined]
        ]
        if outside:
            related.append(RelatedSpec(outside[0], f"`{opt}.zero_grad()` here is outside the loop: it runs once, not per step"))
        fix = None
        body = loop.node.body  # type: ignore[attr-defined]
        if isinstance(body, cst.IndentedBlock) and body.body:
            first = body.body[0]
            fix = FixSpec(
                f"Call `{opt}.zero_grad()` at the start of each iteration",
                (InsertAtLine(pos.line(first), f"{pos.indent(first)}{opt}.zero_grad()\n"),),
                applicability="unsafe",
            )
        self.report(step.node, message, fix=fix, related=related, data={"optimizer": opt, "loop_line": pos.line(loop.node)})

