"""Static shape propagation through ``nn.Module`` and ``nn.Sequential`` models.

The analysis reads each model's ``__init__`` (layers and their folded
arguments) and follows ``forward`` statement by statement, with the input
shape the file itself gives: a tensor passed to the model, a ``summary()``
call, or the torchvision dataset behind the model's DataLoader. It reports
only sizes that cannot fit, and stays silent wherever it cannot know.

Public API (TL301 and the runtime checker use it)::

    report = analyze_module(context_or_module_or_source)
    for model in report.models:      # ModelReport
        model.name, model.constructor, model.input_shape, model.input, model.chain, model.verdict
    for problem in report.problems:  # ShapeProblem: node, message, related, fix, data

Inside the engine the report is cached in ``context.cache["shapes"]``.
``input_ranks(context, call)`` asks it for the ranks of the inputs that reach one
layer (TL110).
"""

from __future__ import annotations

from typing import Any

import libcst as cst

from torchlint.analysis.model import program_model
from torchlint.analysis.tables import file_tables
from torchlint.names import NameResolver, dotted_name
from torchlint.shapes.analysis import (
    ModelReport,
    ShapeProblem,
    ShapeReport,
    analyze,
    expected_error,
)
from torchlint.shapes.values import BATCH, InputEvidence, Step

CACHE_KEY = "shapes"


def analyze_module(target: Any) -> ShapeReport:
    """The shape report of a file: ``target`` is a rule ``Context``, a libcst
    ``Module`` or source text. With a Context the result is cached in
    ``context.cache["shapes"]``, and the program model's tables and answers are
    the ones every rule shares."""
    if isinstance(target, str):
        module = cst.parse_module(target)
        return analyze(module, NameResolver(module))
    if isinstance(target, cst.Module):
        return analyze(target, NameResolver(target))
    cache = target.cache
    if CACHE_KEY not in cache:
        cache[CACHE_KEY] = analyze(target.module, target.names, None, target.code, target.ranges,
                                   lambda: program_model(target), lambda: file_tables(target))
    return cache[CACHE_KEY]


_RANKS_KEY = "shapes.input_ranks"


def input_ranks(context: Any, call: cst.Call) -> set[int]:
    """The ranks of the inputs the shape analysis saw reaching a layer: at ``call`` itself (a
    call in a ``forward``, a Sequential's child) and, for a layer ``call`` builds and stores as
    ``self.<attr>`` in a class, at the ``self.<attr>(x)`` calls of that class's ``forward``.
    Empty when unknown; the analysis runs only for files that mention ``Sequential`` or ``forward``."""
    ranks = context.cache.get(_RANKS_KEY)
    if ranks is None:
        ranks = context.cache[_RANKS_KEY] = {}
        if "Sequential" in context.file_source or "forward" in context.file_source:
            for model in analyze_module(context).models:
                for step in model.steps:
                    if step.before_open or not isinstance(step.node, cst.Call):
                        continue
                    callee = dotted_name(step.node.func) or ""
                    keys: list[object] = [id(step.node)]
                    if callee.startswith("self.") and callee.count(".") == 1:
                        keys.append((model.name, callee[5:]))
                    for key in keys:
                        ranks.setdefault(key, set()).add(len(step.before))
    found = set(ranks.get(id(call), ()))
    if ranks:
        stored = file_tables(context).stored_on_self(call)
        if stored is not None:
            found |= ranks.get(stored, set())
    return found


__all__ = [
    "BATCH",
    "CACHE_KEY",
    "InputEvidence",
    "ModelReport",
    "ShapeProblem",
    "ShapeReport",
    "Step",
    "analyze_module",
    "expected_error",
    "input_ranks",
]
