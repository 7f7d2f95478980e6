"""TL105: look at ``module.training`` while the flagged model call runs.

The model call is handed to the harness (``moded``): it runs as written, with
the module's ``training`` flag read during the call, then once more without a
graph on the same input; the harness records whether the two passes differ
(dropout on) and whether batch norm's running statistics moved. Loops run two
iterations, so an epoch loop reaches its second epoch.

Evaluation in training mode (the finding says ``expect_training``): confirmed
when ``training`` is True during the call and the passes differ or the
running statistics moved. Training in eval mode: confirmed when ``training``
is False during a training call of a model with dropout or batch norm (its
passes agree: dropout is off). Not reproduced otherwise.
"""

from __future__ import annotations

from typing import Any

from torchlint.diagnostics import Confirmation
from torchlint.runtime.confirmers import Job, Options, build_job, ran
from torchlint.runtime.extract import Claim, ModuleIndex, Planner, guess_setup

PASSES = 6


def prepare(index: ModuleIndex, claim: Claim, options: Options, others: list[Claim] = ()) -> Job | Confirmation:  # type: ignore[assignment]
    if claim.end_line is None:
        return Confirmation("could-not-run", "the finding has no model call to watch", {"stage": "extract"})
    want = bool(claim.data.get("expect_training", True))
    stmt = index.statement_at(claim.line, claim.column)
    setup = guess_setup(index)
    planner = Planner(index, force_branches=options.force_branches)
    planner.plan.rewrites.append((claim.line, claim.column, claim.end_line, claim.end_column or 0, "mode"))
    planner.reach(stmt, "T", setup)
    return build_job(index, claim, options, setup, planner, interpret, "tl105", stop_after=PASSES, expect_training=want)


def interpret(job: Job, result: Any) -> Confirmation:
    detail = ran(job, result)
    if isinstance(detail, Confirmation):
        return detail
    calls = (result.payload.get("measure") or {}).get("calls") or []
    detail["calls"] = calls
    if not calls:
        return Confirmation("could-not-run", f"line {job.claim.line} did not call a torch module", detail)
    want = bool(job.claim.data.get("expect_training", True))
    name = job.claim.data.get("model") or "the model"
    hit = next(((i, c) for i, c in enumerate(calls, 1) if c.get("training") == want), None)
    layers = lambda c: f"{c.get('dropout', 0)} dropout and {c.get('batchnorm', 0)} batch-norm layer(s)"  # noqa: E731
    if hit is None:
        return Confirmation("not-reproduced", f"`{name}.training` was {not want} at every one of {len(calls)} call(s)", detail)
    n, c = hit
    if want:
        effects = []
        if c.get("runs_differ"):
            effects.append("two passes over the same batch give different outputs (dropout is on)")
        if c.get("stats_moved"):
            effects.append("batch norm's running statistics moved (the evaluation data updated them)")
        if not effects:
            return Confirmation("not-reproduced", f"`{name}.training` is True during the call, but two passes agree and no running statistics moved ({layers(c)})", detail)
        return Confirmation("confirmed", f"during the evaluation call `{name}.training` is True ({c.get('module')}, {layers(c)}): " + "; ".join(effects), detail)
    if not (c.get("dropout") or c.get("batchnorm")):
        return Confirmation("not-reproduced", f"`{name}.training` is False during training, but {c.get('module')} has no dropout or batch-norm layer", detail)
    agree = " (two passes agree: dropout is off)" if c.get("runs_differ") is False and c.get("dropout") else ""
    return Confirmation(
        "confirmed",
        f"at training call {n} `{name}.training` is False ({c.get('module')}, {layers(c)}){agree}: the model trains in eval mode",
        detail,
    )
