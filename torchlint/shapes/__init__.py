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
"""

from __future__ import annotations

from typing import Any

import libcst as cst

from torchlint.analysis.model import program_model
from torchlint.analysis.tables import file_tables
from torchlint.names import NameResolver
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
]
