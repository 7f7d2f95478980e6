"""TL104: run the evaluation loop and look at what the flagged model call returns.

The call is handed to the harness as it returns (the ``watch`` rewrite TL206
uses): confirmed when the model's output has ``requires_grad=True``, i.e. an
autograd graph was recorded for a batch that nothing backpropagates. Not
reproduced when the output carries no graph (the loop runs under ``no_grad``
after all, or the model has no trainable parameters).
"""

from __future__ import annotations

from typing import Any

from torchlint.diagnostics import Confirmation
from torchlint.runtime.confirmers import Job, Options, build_job, ran
from torchlint.runtime.extract import Claim, ModuleIndex, Planner, guess_setup

CODE = "TL104"


def prepare(index: ModuleIndex, claim: Claim, options: Options, others: list[Claim] = ()) -> Job:  # type: ignore[assignment]
    stmt = index.statement_at(claim.line, claim.column)
    setup = guess_setup(index)
    planner = Planner(index, force_branches=options.force_branches)
    planner.plan.rewrites.append((claim.line, claim.column, claim.end_line or claim.line, claim.end_column or 0, "watch"))
    planner.reach(stmt, "T", setup)
    return build_job(index, claim, options, setup, planner, interpret, "tl104")


def interpret(job: Job, result: Any) -> Confirmation:
    detail = ran(job, result)
    if isinstance(detail, Confirmation):
        return detail
    measure = result.payload.get("measure") or {}
    detail["output_type"] = measure.get("watched_type")
    detail["requires_grad"] = measure.get("requires_grad_before")
    if measure.get("watched_type") is None:
        return Confirmation("could-not-run", f"line {job.claim.line} was not reached", detail)
    if measure.get("watched_type") != "Tensor":
        return Confirmation("could-not-run", f"the model returned a {measure.get('watched_type')}, not a tensor", detail)
    if measure.get("requires_grad_before"):
        return Confirmation(
            "confirmed",
            "the model's output in the evaluation loop has requires_grad=True: an autograd graph is recorded "
            "(and its activations kept) for every batch, and nothing backpropagates it",
            detail,
        )
    return Confirmation("not-reproduced", "the model's output carries no graph (requires_grad=False)", detail)
