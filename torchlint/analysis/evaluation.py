"""What evaluation code looks like to the program model: shared by TL104 and TL105.

A loop over a loader's batches, a test/validation loader or an evaluate-style
function name is evidence of evaluation; a call that trains (or asks for
gradients), in the loop or in a function of the file it calls, is evidence
against it.
"""

from __future__ import annotations

import re

import libcst as cst

from torchlint.analysis.model import ProgramModel
from torchlint.analysis.values import FunctionV, TensorV, TupleV
from torchlint.walk import children as _children

EVAL_LOADER = re.compile(r"(?:^|[^a-z])(?:test|val|valid|validation|eval|dev|predict|inference)(?:[^a-z]|$)|^(?:test|val|valid|eval)")
EVAL_FUNCTION = re.compile(r"^(?:_*)(?:test|eval|evaluate|validate|validation|valid|predict|infer|inference)(?:_|$)|_(?:eval|evaluate|test|validate|validation|predict|inference)(?:_|$)")
# Calls that mean the loop trains, or needs gradients, after all.
TRAINING_CALLS = frozenset({"backward", "step", "zero_grad", "grad", "requires_grad_", "manual_backward", "optimizer_step"})


def loader_of(value: object) -> str | None:
    if isinstance(value, TensorV) and value.origin is not None:
        return value.origin.loader
    if isinstance(value, TupleV):
        return next((x for v in value.items if (x := loader_of(v)) is not None), None)
    return None


def over_batches(value: object) -> bool:
    if isinstance(value, TensorV):
        return value.origin is not None
    if isinstance(value, TupleV):
        return any(over_batches(v) for v in value.items)
    return False


def trains(model: ProgramModel, func: cst.FunctionDef, seen: set[int]) -> bool:
    """Does a function of the file (or one it calls) train or ask for gradients?"""
    if id(func) in seen:
        return False
    seen.add(id(func))
    region = model.function_region(func)
    if region is None:
        return True  # never interpreted: cannot tell
    for fact in region.calls:
        f = fact.node.func
        name = f.attr.value if isinstance(f, cst.Attribute) else f.value if isinstance(f, cst.Name) else ""
        if name in TRAINING_CALLS:
            return True
        if isinstance(fact.func, FunctionV) and trains(model, fact.func.node, seen):
            return True
    return sets_requires_grad(func)


def sets_requires_grad(node: cst.CSTNode) -> bool:
    stack = [node]
    while stack:
        cur = stack.pop()
        if isinstance(cur, cst.Attribute) and cur.attr.value in ("requires_grad", "retain_grad"):
            return True
        stack.extend(_children(cur))
    return False
