"""Where a batch meets a model or a loss: the device questions TL401 (missing-to-device) asks.

The program model says where modules and tensors were put (``Placement``); this
module says which calls compare devices: a model on an accelerator that does
not move its inputs itself, or a loss given that model's output.
"""

from __future__ import annotations

from typing import Any

from torchlint.analysis.model import CallFact, ProgramModel
from torchlint.analysis.training import dotted_name, is_loss_function_qualname, looks_like_loss_name
from torchlint.analysis.values import InstanceV, LossFnV, ModuleV, Placement


def on_accelerator(placement: Placement | None) -> bool:
    return placement is not None and placement.kind == "accel"


def is_device_checked_loss(fact: CallFact, model: ProgramModel, context: Any) -> bool:
    """Is the call a loss function's, whose arguments torch requires on one device? A loss
    object or ``torch.nn`` loss module, a ``torch.nn.functional`` loss, or a loss-like name
    (``criterion``) the file does not define. Never a CTC loss (its lengths may stay on the
    CPU), nor a loss class or function of the file (it may move its arguments itself)."""
    if isinstance(fact.func, LossFnV):
        return "ctc" not in (fact.func.qual or "").lower()
    if isinstance(fact.func, ModuleV) and fact.func.cls is not None:
        return is_loss_function_qualname(fact.func.cls) and "ctc" not in fact.func.cls.lower()
    if isinstance(fact.func, InstanceV):
        cls = model.classes.get(fact.func.cls)
        if cls is None or any(w in context.code(cls) for w in (".to(", ".cuda(", "device")):
            return False
    qual = context.qualname(fact.node.func)
    if qual is not None:
        return is_loss_function_qualname(qual) and "ctc" not in qual.lower()
    callee = dotted_name(fact.node.func)
    if callee is None or "ctc" in callee.lower():
        return False
    head = callee.split(".", 1)[0]
    if head in model.classes or head in model.functions:
        return False
    return looks_like_loss_name(callee)


__all__ = ["is_device_checked_loss", "on_accelerator"]
