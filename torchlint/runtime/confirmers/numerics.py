"""TL601-TL603: evaluate the flagged expression and its fix on the values the program computes.

The flagged expression is wrapped so that the harness evaluates it, then the
fix's expression (the rule's ``data["replacement"]``) in the same scope, and
compares the two in float64. Confirmed when the written form lost what the fix
keeps: a relative difference above 1e-4 somewhere (far beyond the rounding of
float32, ~1e-7: e.g. ``log(1 + 1e-10) = 0`` against ``log1p = 1e-10``), or an
``inf``/``nan`` where the fix is finite (``logsumexp`` of large inputs). Not
reproduced when both agree on these values: the inputs the program had here
are not where the written form breaks down.
"""

from __future__ import annotations

from typing import Any

from torchlint.diagnostics import Confirmation
from torchlint.runtime.confirmers import (
    Job,
    Options,
    build_job,
    ran,
)
from torchlint.runtime.extract import Claim, ModuleIndex, Planner, guess_setup

# Relative difference that no float32 rounding explains.
THRESHOLD = 1e-4


def prepare(index: ModuleIndex, claim: Claim, options: Options, others: list[Claim] = ()) -> Job | Confirmation:  # type: ignore[assignment]
    replacement = claim.data.get("replacement")
    if not replacement:
        return Confirmation("could-not-run", f"the {claim.code} finding names no replacement to compare with")
    stmt = index.statement_at(claim.line, claim.column)
    setup = guess_setup(index)
    planner = Planner(index, force_branches=options.force_branches)
    span = (claim.line, claim.column, claim.end_line or claim.line, claim.end_column or 0)
    planner.plan.rewrites.append((*span, f"compare:{replacement}"))
    planner.reach(stmt, "T", setup)
    return build_job(index, claim, options, setup, planner, interpret, "numerics", replacement=replacement)


def interpret(job: Job, result: Any) -> Confirmation:
    detail = ran(job, result)
    if isinstance(detail, Confirmation):
        return detail
    measure = result.payload.get("measure") or {}
    detail["measure"] = measure
    replacement = job.config.get("replacement")
    if "fixed_error" in measure:
        return Confirmation("could-not-run", f"`{replacement}` failed here: {measure['fixed_error']}", detail)
    if "max_relative" not in measure:
        kinds = measure.get("kinds")
        if kinds:
            return Confirmation("could-not-run", f"the expression is not a tensor here ({kinds[0]})", detail)
        return Confirmation("could-not-run", f"line {job.claim.line} was not reached", detail)
    written, fixed = measure.get("written"), measure.get("fixed")
    if measure.get("nonfinite_written"):
        return Confirmation(
            "confirmed",
            f"{measure['nonfinite_written']} of {measure['elements']} values are inf/nan as written, finite with "
            f"`{replacement}`",
            detail,
        )
    if measure["max_relative"] > THRESHOLD:
        return Confirmation(
            "confirmed",
            f"as written the value is {written:.6g}; `{replacement}` gives {fixed:.6g} "
            f"(relative difference {measure['max_relative']:.2g}, {measure['dtype']})",
            detail,
        )
    return Confirmation(
        "not-reproduced",
        f"on the values this program computes at line {job.claim.line}, the written form and `{replacement}` agree "
        f"(relative difference {measure['max_relative']:.2g})",
        detail,
    )
