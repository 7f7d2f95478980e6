"""TL301: run the model on a random input of the shape the shape analysis inferred.

The model is built the way the file builds it (its ``net = Net(...)``
statement and what that needs, plus later ``net.fc = ...`` replacements), or
from the constructor the shape analysis folded (``Net(10)``). Confirmed when
the forward pass raises an error of the shape family (``mat1 and mat2 shapes
cannot be multiplied``, ``shape '[-1, 400]' is invalid for input of size
800``, a channel mismatch, ...), or when it runs but returns a different
batch than it was given (a ``view(-1, N)`` that merged samples). Not
reproduced when it returns one output per input.
"""

from __future__ import annotations

import ast
from typing import Any

from torchlint.diagnostics import Confirmation
from torchlint.runtime.confirmers import (
    Job,
    Options,
    build_job,
    detail_of,
    failure,
    family,
    quote,
    target_exception,
)
from torchlint.runtime.extract import HARNESS, Claim, ExtractionError, ModuleIndex, Planner, Setup, guess_setup

CODE = "TL301"


def _shape_report(index: ModuleIndex) -> Any:
    try:
        from torchlint.shapes import analyze_module
    except ImportError:  # pragma: no cover - the analysis ships with torchlint
        return None
    try:
        return analyze_module(index.source)
    except Exception:  # noqa: BLE001 - no analysis: fall back to what the file shows
        return None


def _model_at(index: ModuleIndex, claim: Claim) -> str | None:
    stmt = index.statement_at(claim.line, claim.column)
    unit = index.unit_of(stmt)
    if unit is not None and unit[0]:
        return unit[0]
    for node in [stmt, *index.ancestors(stmt)]:
        if isinstance(node, ast.ClassDef):
            return node.name
        if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
            return node.targets[0].id
    return None


def _instantiation(index: ModuleIndex, model: str) -> tuple[int, str] | None:
    """(statement index, variable) of the first ``x = Model(...)`` (possibly ``.to(...)``) at module level."""
    for i, stmt in enumerate(index.body):
        if not (isinstance(stmt, ast.Assign) and len(stmt.targets) == 1 and isinstance(stmt.targets[0], ast.Name)):
            continue
        value = stmt.value
        while isinstance(value, ast.Call) and isinstance(value.func, ast.Attribute) and value.func.attr in ("to", "cuda", "cpu", "train", "eval", "float", "double"):
            value = value.func.value
        if model in index.classes:
            if isinstance(value, ast.Call) and isinstance(value.func, ast.Name) and value.func.id == model:
                return i, stmt.targets[0].id
        elif stmt.targets[0].id == model:
            return i, model
    return None


def prepare(index: ModuleIndex, claim: Claim, options: Options, others: list[Claim] = ()) -> Job:  # type: ignore[assignment]
    data = dict(claim.data)
    model = data.get("model") or _model_at(index, claim)
    if not model:
        raise ExtractionError(f"no model at line {claim.line}")
    shape = data.get("input_shape")
    dtype = data.get("input_dtype")
    high = data.get("input_high")
    report = _shape_report(index)
    found = report.model(model) if report is not None else None
    if shape is None and found is not None:
        shape = found.input_shape
        ev = found.input_evidence
        if ev is not None and getattr(ev, "dtype", None) == "long":
            dtype, high = "int64", getattr(ev, "high", None)
    if shape is None:
        # No guessing here: a made-up input would "confirm" shape errors of its own.
        # What the file itself feeds the model, where it calls it, is no guess.
        job = _through_the_files_call(index, claim, options, model)
        if job is not None:
            return job
        raise ExtractionError(f"the input shape of `{model}` is unknown (the file does not show one)")
    setup = Setup(input_shape=list(shape[1:]))
    planner = Planner(index, force_branches=options.force_branches, guessed_data=False)
    built = _instantiation(index, model)
    call = f"{HARNESS}.forward({{model}}, {list(shape)!r}, dtype={dtype!r}, high={high!r})"
    if built is not None:
        i, var = built
        entries = [i]
        for j in range(i + 1, len(index.body)):
            stmt = index.body[j]
            # Later surgery on the model (`net.fc = nn.Linear(...)`) is part of it.
            if isinstance(stmt, ast.Assign) and all(
                isinstance(t, (ast.Attribute, ast.Subscript)) and _root(t) == var for t in stmt.targets
            ):
                entries.append(j)
        planner.keep_slice(entries)
        planner.plan.tail = f"with {HARNESS}.target('T'):\n    {call.format(model=var)}\n"
        planner.plan.notes.append(f"`{var}` built as on line {index.body[i].lineno}")
    elif model in index.classes:
        constructor = found.constructor if found is not None and found.constructor else None
        lines: list[str] = []
        needs: set[str] = set()
        if constructor:
            lines.append(f"_tl_model = {constructor}")
            try:
                needs |= {n.id for n in ast.walk(ast.parse(constructor)) if isinstance(n, ast.Name)}
            except SyntaxError:
                raise ExtractionError(f"cannot build `{model}` from `{constructor}`") from None
            var = "_tl_model"
        else:
            var = planner._instance_of(model, setup, lines, needs, {})
        lines.append(f"with {HARNESS}.target('T'):\n    {call.format(model=var)}")
        planner.plan.tail = "\n".join(lines) + "\n"
        planner.keep_slice([], needs)
        planner.plan.notes.append(f"`{model}` built as `{constructor or model + '(...)'}`")
    else:
        raise ExtractionError(f"cannot find where `{model}` is built")
    planner._finish()
    job = build_job(index, claim, options, setup, planner, interpret, "tl301")
    job.config["shape"] = list(shape)
    return job


def _through_the_files_call(index: ModuleIndex, claim: Claim, options: Options, model: str) -> Job | None:
    built = _instantiation(index, model)
    var = built[1] if built is not None else model
    calls = [
        n for n in ast.walk(index.tree)
        if isinstance(n, ast.Call) and isinstance(n.func, ast.Name) and n.func.id == var and n.args
    ]  # fmt: skip
    if not calls:
        return None
    call = min(calls, key=lambda n: (n.lineno, n.col_offset))
    stmt = index.statement_at(call.lineno, 0)
    setup = guess_setup(index, model if model in index.classes else None)
    planner = Planner(index, force_branches=options.force_branches, guessed_data=False)
    planner.reach(stmt, "T", setup)
    if planner.plan.tail:
        return None  # the call is in a function nothing calls: its input would be made up
    planner.plan.notes.append(f"`{var}` run on what the file gives it on line {call.lineno}")
    return build_job(index, claim, options, setup, planner, interpret, "tl301", through_line=call.lineno)


def _root(node: ast.AST) -> str | None:
    while isinstance(node, (ast.Attribute, ast.Subscript)):
        node = node.value
    return node.id if isinstance(node, ast.Name) else None


def _dims(shape: Any) -> str:
    return "×".join(str(d) for d in shape) if shape else "?"


def interpret(job: Job, result: Any) -> Confirmation:
    failed = failure(job, result)
    if failed is not None:
        return failed
    exc = target_exception(result)
    detail = detail_of(job, result)
    shape = job.config.get("shape")
    detail["input_shape"] = shape
    if exc is not None:
        detail["exception"] = exc
        if family(exc.get("type"), exc.get("message")) == "shape":
            return Confirmation("confirmed", quote(exc), detail)
        return Confirmation("could-not-run", f"the model failed for another reason: {quote(exc)}", detail)
    through = job.config.get("through_line")
    if through is not None:
        return Confirmation("not-reproduced", f"the model ran on what the file gives it on line {through}", detail)
    out = (result.payload.get("measure") or {}).get("output_shape")
    detail["output_shape"] = out
    if out and shape and out[0] != shape[0]:
        return Confirmation(
            "confirmed",
            f"the model returned {out[0]} outputs for a batch of {shape[0]} "
            f"(input {_dims(shape)} → output {_dims(out)}): samples were merged or split",
            detail,
        )
    return Confirmation("not-reproduced", f"the model ran on a {_dims(shape)} input and returned {_dims(out)}", detail)
