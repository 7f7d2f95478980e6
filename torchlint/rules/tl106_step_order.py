from __future__ import annotations

import libcst as cst

from torchlint.walk import children as _children

from torchlint.gates import loop_method_calls
from torchlint.incremental import python_ast
from torchlint.analysis.model import ProgramModel, program_model
from torchlint.analysis.steps import clears_grads_of, is_scheduler_step, optimizer_stepped
from torchlint.analysis.training import dotted_name, is_backward, step_call_text
from torchlint.rules.base import Invalid, RelatedSpec, Rule


class StepOrder(Rule):
    """
    ## What it does
    Checks the order of the training calls within one iteration of a loop.

    It reports:

    - `scheduler.step()` before the loop's `optimizer.step()` (or
      `scaler.step(optimizer)`), with no optimizer step earlier in the
      iteration. A scheduler stepped at the start of each epoch, before the
      batch loop, is the classic case.
    - `optimizer.step()` before the loop's `backward()`, when the gradients that
      `backward()` computes are cleared (`zero_grad()`) before the next step
      can use them.

    Only calls written directly in the loop body (not under an `if`) are
    ordered. A scheduler is a `torch.optim.lr_scheduler` construction or a name
    such as `scheduler`/`lr_sched`; `ReduceLROnPlateau` and any
    `scheduler.step(metric)` are left alone (that scheduler steps on a
    validation metric, after the epoch). The rule is silent when a call before
    the scheduler step could step the optimizer itself (a helper given the model
    or the optimizer), and when the gradients are not cleared between
    `backward()` and the next step (then stepping first only shifts the updates
    by one iteration).

    ## Why is this bad?
    Since PyTorch 1.1 a scheduler's `step()` must follow the optimizer's:
    stepped first, the first value of the learning-rate schedule is skipped,
    and PyTorch warns "Detected call of `lr_scheduler.step()` before
    `optimizer.step()`". An optimizer step taken before `backward()` in an
    iteration that clears the gradients applies zero (or no) gradients, and the
    gradients `backward()` then computes are cleared before any step uses
    them: the model never learns.

    ## Example
    ```python
    for epoch in range(epochs):
        scheduler.step()
        for x, y in loader:
            optimizer.zero_grad()
            loss_fn(model(x), y).backward()
            optimizer.step()
    ```

    ## Use instead
    ```python
    for epoch in range(epochs):
        for x, y in loader:
            optimizer.zero_grad()
            loss_fn(model(x), y).backward()
            optimizer.step()
        scheduler.step()
    ```

    ## Fix safety
    No fix is offered: moving a step changes which learning rate or gradient
    each update uses, and where the call belongs (end of the batch loop or of
    the epoch) is the author's choice.
    """

    code = "TL106"
    incremental = True  # findings depend on the statements linked to theirs (torchlint/slices.py)
    name = "step-order"
    message = "`{call}` runs before `{other}` in the same iteration"
    triggers = (".step(",)

    @classmethod
    def applies_to(cls, source: str) -> bool:
        # A loop that steps twice, or steps and calls backward().
        try:
            tree = python_ast(source, keep=True)
        except (SyntaxError, ValueError, RecursionError, MemoryError):
            return True
        return any(c.get("step", 0) >= 2 or ("step" in c and "backward" in c) for _, c in loop_method_calls(tree, source))
    confirmable = True

    VALID = [
        # Per-epoch scheduler after the batch loop.
        "for epoch in range(3):\n    for x, y in loader:\n        optimizer.zero_grad()\n        loss_fn(model(x), y).backward()\n        optimizer.step()\n    scheduler.step()\n",
        # Per-batch scheduler after the optimizer step.
        "for x, y in loader:\n    optimizer.zero_grad()\n    loss_fn(model(x), y).backward()\n    optimizer.step()\n    scheduler.step()\n",
        # ReduceLROnPlateau steps on a validation metric.
        "import torch\nsched = torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer)\nfor epoch in range(3):\n    sched.step(val_loss)\n    for x, y in loader:\n        optimizer.zero_grad()\n        loss_fn(model(x), y).backward()\n        optimizer.step()\n",
        # GradScaler: scaler.step(optimizer) is the optimizer step (it may skip one).
        "for x, y in loader:\n    optimizer.zero_grad()\n    scaler.scale(loss_fn(model(x), y)).backward()\n    scaler.step(optimizer)\n    scaler.update()\n    scheduler.step()\n",
        # Step first, then clear, then backward: updates shifted by one, not lost.
        "for x, y in loader:\n    optimizer.step()\n    optimizer.zero_grad()\n    loss_fn(model(x), y).backward()\n",
        # A helper of unknown code trains before the scheduler steps.
        "from lib import train_epoch\nfor epoch in range(3):\n    train_epoch(model, optimizer)\n    scheduler.step()\n    for x, y in loader:\n        optimizer.step()\n",
    ]
    INVALID = [
        Invalid("for epoch in range(3):\n    scheduler.step()\n    for x, y in loader:\n        optimizer.zero_grad()\n        loss_fn(model(x), y).backward()\n        optimizer.step()\n"),
        Invalid("for x, y in loader:\n    optimizer.zero_grad()\n    loss = loss_fn(model(x), y)\n    scheduler.step()\n    loss.backward()\n    optimizer.step()\n"),
        Invalid("for x, y in loader:\n    optimizer.zero_grad()\n    optimizer.step()\n    loss_fn(model(x), y).backward()\n"),
        Invalid("import torch\nopt = torch.optim.SGD(net.parameters(), lr=0.1)\nsched = torch.optim.lr_scheduler.StepLR(opt, 10)\nfor x, y in loader:\n    sched.step()\n    opt.zero_grad()\n    loss_fn(net(x), y).backward()\n    opt.step()\n"),
    ]

    def __init__(self, context) -> None:
        super().__init__(context)
        self._loops = 0
        self._steps = 0

    def visit_For(self, node: cst.For) -> None:
        self._loops += 1

    def leave_For(self, node: cst.For) -> None:
        self._loops -= 1

    visit_While = visit_For  # type: ignore[assignment]
    leave_While = leave_For  # type: ignore[assignment]

    def visit_Call(self, node: cst.Call) -> None:
        if self._loops and isinstance(node.func, cst.Attribute) and node.func.attr.value == "step":
            self._steps += 1

    def leave_Module(self, node: cst.Module) -> None:
        if not self._steps:
            return  # the model is built only for files that step something in a loop
        model = program_model(self.context)
        done: set[int] = set()
        for fact in list(model.calls()):
            for loop_node in fact.loops:
                if id(loop_node) in done:
                    continue
                done.add(id(loop_node))
                self._check_loop(loop_node, model)

    def _check_loop(self, loop_node: cst.CSTNode, model: ProgramModel) -> None:
        region = model.loop(loop_node)
        body = getattr(loop_node, "body", None)
        if region is None or not isinstance(body, cst.IndentedBlock):
            return
        index = _statement_index(body)
        # (statement index, directly in the body, fact), in iteration order.
        calls = [(index[id(f.node)][0], index[id(f.node)][1], f) for f in region.calls if id(f.node) in index]
        opt_steps = [(i, top, f, opt) for i, top, f in calls if (opt := optimizer_stepped(f)) is not None]
        if not opt_steps:
            return
        first_opt = opt_steps[0]
        for i, top, f in calls:
            if top and is_scheduler_step(f) and i < first_opt[0]:
                if any(j <= i and model.may_clear_grads(g) for j, _, g in calls if g is not f):
                    continue  # an earlier call may step the optimizer itself
                other = step_call_text(first_opt[2].node)
                self.report(
                    f.node,
                    self.message.format(call=step_call_text(f.node), other=other)
                    + ": since PyTorch 1.1 the scheduler must step after the optimizer, or the first learning rate of the schedule is skipped",
                    related=[RelatedSpec(first_opt[2].node, "the optimizer steps here, later in the iteration")],
                    data={"kind": "scheduler", "scheduler": dotted_name(f.node.func.value), "optimizer": first_opt[3]},  # type: ignore[attr-defined]
                )
                return
        self._check_backward(calls, opt_steps, model)

    def _check_backward(self, calls: list, opt_steps: list, model: ProgramModel) -> None:
        backwards = [(i, top, f) for i, top, f in calls if is_backward(f.node)]
        if not backwards:
            return
        b_index, b_top, b_fact = backwards[0]
        i, top, step, opt = opt_steps[0]
        if not (top and b_top and i < b_index) or step.node.args:
            return  # scaler.step() order is checked by TL101's loop rules; closures step themselves
        if any(j > b_index and o == opt for j, _, _, o in opt_steps):
            return  # a later step in the iteration uses the gradients
        clears = [j for j, t, f in calls if t and clears_grads_of(f, opt)]
        if not any(j < i or j > b_index for j in clears):
            return  # not cleared before the next step: updates only shifted
        self.report(
            step.node,
            self.message.format(call=step_call_text(step.node), other=step_call_text(b_fact.node))
            + f": the step applies no gradients, and the ones `backward()` computes are cleared by `{opt}.zero_grad()` before any step uses them",
            related=[RelatedSpec(b_fact.node, "the gradients are computed here, after the step")],
            data={"kind": "backward", "optimizer": opt},
        )


def _statement_index(body: cst.IndentedBlock) -> dict[int, tuple[int, bool]]:
    """id(call) -> (index of the loop-body statement holding it, whether that statement is a simple line)."""
    out: dict[int, tuple[int, bool]] = {}
    for i, stmt in enumerate(body.body):
        top = isinstance(stmt, cst.SimpleStatementLine)
        stack: list[cst.CSTNode] = [stmt]
        while stack:
            cur = stack.pop()
            if isinstance(cur, (cst.FunctionDef, cst.ClassDef, cst.Lambda)):
                continue  # defined here, not run here
            if isinstance(cur, cst.Call):
                out[id(cur)] = (i, top)
            stack.extend(_children(cur))
    return out

