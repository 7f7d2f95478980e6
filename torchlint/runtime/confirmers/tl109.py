"""TL109: run the flagged ``F.dropout(...)`` with its module in eval mode, twice.

The call is rewritten to run through the harness with ``self.eval()`` in
force (as after ``model.eval()``), and the two results are compared: dropout
that follows the module's mode returns its input unchanged both times;
dropout that stays on zeroes a random part of it, differently each run.
Confirmed when the runs differ or zeroed elements; not reproduced when both
runs are the same with nothing dropped.
"""

from __future__ import annotations

from typing import Any

from torchlint.diagnostics import Confirmation
from torchlint.runtime.confirmers import Job, Options, build_job, ran
from torchlint.runtime.extract import Claim, ModuleIndex, Planner, guess_setup


def prepare(index: ModuleIndex, claim: Claim, options: Options, others: list[Claim] = ()) -> Job:  # type: ignore[assignment]
    stmt = index.statement_at(claim.line, claim.column)
    setup = guess_setup(index)
    planner = Planner(index, force_branches=options.force_branches)
    if claim.end_line is not None:
        me = str(claim.data.get("self") or "self")
        planner.plan.rewrites.append((claim.line, claim.column, claim.end_line, claim.end_column or 0, f"eval:{me}"))
    planner.reach(stmt, "T", setup)
    return build_job(index, claim, options, setup, planner, interpret, "tl109")


def interpret(job: Job, result: Any) -> Confirmation:
    detail = ran(job, result)
    if isinstance(detail, Confirmation):
        return detail
    measure = result.payload.get("measure") or {}
    detail["measure"] = measure
    if "elements" not in measure:
        return Confirmation("could-not-run", f"line {job.claim.line} did not give a tensor to look at", detail)
    if measure["runs_differ"] or measure["zeroed"]:
        return Confirmation(
            "confirmed",
            f"with the module in eval mode (`training` False), the call zeroed {measure['zeroed']} of "
            f"{measure['elements']} elements and two runs {'differ' if measure['runs_differ'] else 'agree'}: dropout is still on",
            detail,
        )
    return Confirmation("not-reproduced", "in eval mode the call returned the same values twice with nothing dropped", detail)
