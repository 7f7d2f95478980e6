"""Training steps as the program model records them: shared by TL101 (missing-zero-grad) and TL106 (step-order).

Which optimizer a ``step`` call steps, whether a value is an optimizer (a
``torch.optim`` construction the model followed, or an optimizer-like name where
the model knows nothing) or a scheduler, and whether a loop clears an
optimizer's gradients. Each question says "don't know" (None / False) where the
file does not show the answer; the rules stay silent on those.
"""

from __future__ import annotations

import libcst as cst

from torchlint.analysis.model import CallFact, ProgramModel, Region
from torchlint.analysis.training import dotted_name, is_backward, is_zero_grad, last_part, looks_like_optimizer_name, params_overlap
from torchlint.analysis.values import UNKNOWN, OptimizerV, ScalerV, SchedulerV


def operand(step: CallFact, dotted: str) -> object:
    """The value of ``dotted`` at a step call: the receiver (``opt.step()``), or an argument
    (``scaler.step(opt)``); UNKNOWN when neither is spelled so."""
    func = step.node.func
    if isinstance(func, cst.Attribute) and dotted_name(func.value) == dotted:
        return step.receiver
    for arg, value in zip(step.node.args, step.args):
        if dotted_name(arg.value) == dotted:
            return value
    return UNKNOWN


def is_optimizer(dotted: str, value: object) -> bool:
    """Is ``dotted``, holding ``value``, an optimizer? A ``torch.optim`` construction (or any
    optimizer the model followed, if its name says so); never a scheduler or scaler, nor any
    other value the model knows; an optimizer-like name where the model knows nothing."""
    if isinstance(value, OptimizerV):
        return value.declared or looks_like_optimizer_name(dotted)
    if isinstance(value, (SchedulerV, ScalerV)) or value is not UNKNOWN:
        return False
    return looks_like_optimizer_name(dotted)


def declared_params(value: object) -> str | None:
    """What a ``torch.optim`` construction of the file optimizes (``model.parameters()`` -> ``model``)."""
    return value.params if isinstance(value, OptimizerV) and value.declared else None


def backward_calls(region: Region) -> list[CallFact]:
    return [f for f in region.calls if is_backward(f.node)]


def cleared_instead(model: ProgramModel, loop: Region, opt: str, step: CallFact) -> list[str] | None:
    """Does the loop leave ``opt``'s gradients uncleared? None when it clears them, or may
    (a ``.grad`` statement, a clearing call on ``opt`` or on something unnamed, a call that
    may reach the gradients); else the other optimizers it clears, sorted (empty: it clears
    nothing). Other objects cleared count only in the clear two-optimizer case: each is an
    optimizer built in the file over a different model's parameters than ``opt``'s."""
    if loop.grad_clears:
        return None
    clears: list[CallFact] = []
    for fact in loop.calls:
        if is_zero_grad(fact.node):
            clears.append(fact)
        elif not is_backward(fact.node) and model.may_clear_grads(fact):
            return None
    if not clears:
        return []
    receivers = [dotted_name(f.node.func.value) for f in clears]  # type: ignore[attr-defined]
    if opt in receivers or any(r is None for r in receivers):
        return None
    mine = declared_params(operand(step, opt))
    if mine is None:
        return None
    for fact, r in zip(clears, receivers):
        assert r is not None
        if not is_optimizer(r, fact.receiver):
            return None
        theirs = declared_params(fact.receiver)
        if theirs is None or params_overlap(mine, theirs):
            return None
    return sorted(set(receivers))  # type: ignore[arg-type]


def optimizer_stepped(fact: CallFact) -> str | None:
    """The optimizer a ``step`` call steps: ``opt`` for ``opt.step()`` (an optimizer, or an
    optimizer-like name the model knows nothing about) or ``scaler.step(opt)``; else None."""
    func = fact.node.func
    if not (isinstance(func, cst.Attribute) and func.attr.value == "step"):
        return None
    receiver = dotted_name(func.value)
    if receiver is None:
        return None
    if isinstance(fact.receiver, ScalerV) or "scaler" in last_part(receiver).lower():
        arg = fact.node.args[0].value if fact.node.args else None
        return dotted_name(arg) if arg is not None else None
    if isinstance(fact.receiver, OptimizerV):
        return receiver
    if fact.receiver is UNKNOWN and looks_like_optimizer_name(receiver):
        return receiver
    return None


def is_scheduler_step(fact: CallFact) -> bool:
    """``scheduler.step()``: a learning-rate schedule's step (not ReduceLROnPlateau's ``step(metric)``)."""
    func = fact.node.func
    if not (isinstance(func, cst.Attribute) and func.attr.value == "step") or fact.node.args:
        return False
    value = fact.receiver
    if isinstance(value, SchedulerV):
        return "Plateau" not in (value.qual or "")
    receiver = dotted_name(func.value)
    name = last_part(receiver).lower() if receiver else ""
    return value is UNKNOWN and "sched" in name and "plateau" not in name


def clears_grads_of(fact: CallFact, opt: str) -> bool:
    """``opt.zero_grad()``, exactly."""
    func = fact.node.func
    return isinstance(func, cst.Attribute) and func.attr.value == "zero_grad" and dotted_name(func.value) == opt


__all__ = [
    "backward_calls",
    "cleared_instead",
    "clears_grads_of",
    "declared_params",
    "is_optimizer",
    "is_scheduler_step",
    "operand",
    "optimizer_stepped",
]
