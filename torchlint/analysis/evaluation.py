"""What evaluation and training code look like to the program model: shared by TL104 and TL105.

A loop over a loader's batches, a test/validation loader or an evaluate-style
function name is evidence of evaluation; a call that trains (or asks for
gradients), in the loop or in a function of the file it calls, is evidence
against it. A loop trains a model when its own step calls ``backward()`` and
the ``step()`` of an optimizer over that model's parameters.
"""

from __future__ import annotations

import re

import libcst as cst

from torchlint.analysis.model import CallFact, ProgramModel, Region
from torchlint.analysis.training import params_overlap
from torchlint.analysis.values import FunctionV, ModuleV, OptimizerV, TensorV, TupleV
from torchlint.names import dotted_name
from torchlint.walk import children as _children

EVAL_LOADER = re.compile(r"(?:^|[^a-z])(?:test|val|valid|validation|eval|dev|predict|inference)(?:[^a-z]|$)|^(?:test|val|valid|eval)")
EVAL_FUNCTION = re.compile(r"^(?:_*)(?:test|eval|evaluate|validate|validation|valid|predict|infer|inference)(?:_|$)|_(?:eval|evaluate|test|validate|validation|predict|inference)(?:_|$)")
# Calls that mean the loop trains, or needs gradients, after all.
TRAINING_CALLS = frozenset({"backward", "step", "zero_grad", "grad", "requires_grad_", "manual_backward", "optimizer_step"})
_NO_GRAPH = ("no_grad", "inference_mode")


def callee_name(fact: CallFact) -> str:
    """The called name: ``step`` for ``opt.step()``, ``evaluate`` for ``evaluate(...)``; else ""."""
    f = fact.node.func
    return f.attr.value if isinstance(f, cst.Attribute) else f.value if isinstance(f, cst.Name) else ""


def region_around(model: ProgramModel, fact: CallFact) -> Region | None:
    """The innermost loop around the call, else its function's body (None at module level)."""
    if fact.loops:
        return model.loop(fact.loops[-1])
    if fact.function is not None:
        return model.function_region(fact.function)
    return None


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
        if callee_name(fact) in TRAINING_CALLS:
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


def evaluates(model: ProgramModel, fact: CallFact, region: Region) -> bool:
    """Is the model call at ``fact`` evaluation? It runs over a loader's batches or in an
    evaluate-style function, under ``no_grad``/``inference_mode``, over a test/validation
    loader or in such a function; and nothing in ``region`` trains, or switches to training
    mode on purpose (Monte Carlo dropout), or calls a function of the file that trains."""
    function = fact.function
    loader = loader_of(region.over) or ""
    eval_function = function is not None and bool(EVAL_FUNCTION.search(function.name.value.lower()))
    if not (eval_function or over_batches(region.over)):
        return False
    if not (fact.grad_mode in _NO_GRAPH or eval_function or EVAL_LOADER.search(loader.lower())):
        return False
    for other in region.calls:
        called = callee_name(other)
        if called in TRAINING_CALLS or called in ("train", "backward"):
            return False
        if isinstance(other.func, FunctionV) and trains(model, other.func.node, set()):
            return False
    return True


def trains_module(model: ProgramModel, fact: CallFact, region: Region, name: str) -> bool:
    """Does the loop step that makes the call at ``fact`` train the module ``name``? Its own
    calls (in this loop's body, not a nested loop's) hold ``backward()`` and an optimizer's
    ``step()``; an optimizer is over ``name``'s parameters, or none says what it is over and
    ``name`` is the only module the step runs with gradients. False under ``no_grad``, and
    where the optimizers train other models or plain tensors (``name`` may be frozen on purpose)."""
    if fact.grad_mode in _NO_GRAPH:
        return False
    inner = fact.loops[-1] if fact.loops else None
    step = [f for f in region.calls if (f.loops[-1] if f.loops else None) is inner and f.function is fact.function]
    if "backward" not in [callee_name(f) for f in step]:
        return False
    optimizers = [f for f in step if callee_name(f) == "step" and isinstance(f.receiver, OptimizerV)]
    if not optimizers:
        return False
    roots = [f.receiver.params for f in optimizers]  # type: ignore[union-attr]
    if any(r is not None and params_overlap(r, name) for r in roots):
        return True
    if all(r is not None or f.receiver.over_tensors for r, f in zip(roots, optimizers)):  # type: ignore[union-attr]
        return False
    models = {dotted_name(f.node.func) for f in step if isinstance(f.func, ModuleV) and f.grad_mode not in _NO_GRAPH}
    return models == {name}


def switched_to_training(model: ProgramModel, fact: CallFact, name: str) -> bool:
    """Was ``name.train()`` called after the last training step before this call (in the same
    function)? Training mode on purpose: Monte Carlo dropout, test-time batch statistics."""
    before = []
    for other in model.calls():
        if other.node is fact.node:
            break
        if other.function is fact.function:
            before.append(other)
    for other in reversed(before):
        called = callee_name(other)
        if called in ("backward", "step"):
            return False
        if called == "train" and dotted_name(other.node.func.value) == name:  # type: ignore[union-attr]
            return True
    return False


# -- loops that only evaluate, with gradients on (TL104) ---------------------------------


def evaluation_call(model: ProgramModel, region: Region) -> CallFact | None:
    """The first model call of a loop over batches that only evaluates, outside any ``no_grad``:
    nothing in it trains, asks for gradients or calls unknown code given the model or an
    optimizer; something says it evaluates (:func:`shows_evaluation`); its function is called
    with gradients on; no ``backward()`` follows it. None otherwise."""
    found = None
    for fact in region.calls:
        if callee_name(fact) in TRAINING_CALLS or fact.grad_mode is not None:
            return None
        if isinstance(fact.func, FunctionV) and trains(model, fact.func.node, set()):
            return None
        if not isinstance(fact.func, (FunctionV, ModuleV)) and model.may_clear_grads(fact):
            return None  # unknown code given the model or optimizer: it may train
        if found is None and isinstance(fact.func, ModuleV):
            found = fact
    if found is None or sets_requires_grad(region.node):
        return None
    if not shows_evaluation(found, region):
        return None  # a loop without backward() is not evaluation unless something says so
    function = region.function
    if function is not None and not called_with_grad(model, function):
        return None
    if backward_after(model, region):
        return None
    return found


def shows_evaluation(call: CallFact, region: Region) -> bool:
    """Evidence of evaluation: the model is in eval mode (per the model), or the loader or
    the enclosing function is named for it (``test_loader``, ``def validate``)."""
    if isinstance(call.func, ModuleV) and call.func.training is False:
        return True
    loader = loader_of(region.over) or ""
    name = region.function.name.value if region.function is not None else ""
    return bool(EVAL_LOADER.search(loader.lower()) or EVAL_FUNCTION.search(name.lower()))


def called_with_grad(model: ProgramModel, function: cst.FunctionDef) -> bool:
    """Every call site of ``function`` in the file runs with gradients on (and there is one)."""
    if any(model._grad_context(d.decorator) for d in function.decorators):
        return False
    sites = [f for f in model.calls() if isinstance(f.func, FunctionV) and f.func.node is function]
    if not sites:
        return False
    return all(f.grad_mode is None and (f.function is None or called_with_grad(model, f.function)) for f in sites if f.function is not function)


def backward_after(model: ProgramModel, region: Region) -> bool:
    """A backward() in the same function after the loop (the outputs may be what it runs on)."""
    inside = {id(f.node) for f in region.calls}
    after = False
    for fact in model.calls():
        if fact.function is not region.function:
            continue
        if id(fact.node) in inside:
            after = True
            continue
        f = fact.node.func
        if after and isinstance(f, cst.Attribute) and f.attr.value in ("backward", "grad") and region.node not in fact.loops:
            return True
    return False


def enclosing_loops(region: Region) -> list[cst.CSTNode]:
    """The loops a loop region's first call runs in: the loop itself and those around it, outermost first."""
    fact = region.calls[0] if region.calls else None
    return list(fact.loops) if fact is not None else []

