"""TL107: run ``module.forward(...)`` with a forward pre-hook and a forward hook on the module.

The receiver is kept (as TL702's is) and, before the flagged call runs, the
two hooks are registered on it; after the call, how often they ran is read.
Confirmed when neither ran: whatever hooks the program (or a library such as
pruning, quantization observers or a profiler) registers are skipped. Not
reproduced when they ran (the call went through ``__call__`` after all).
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
    receiver = claim.data.get("receiver_span")
    if receiver:
        planner.plan.rewrites.append((*receiver, "watch"))
    planner.reach(stmt, "T", setup)
    return build_job(index, claim, options, setup, planner, interpret, "tl107")


def interpret(job: Job, result: Any) -> Confirmation:
    detail = ran(job, result)
    if isinstance(detail, Confirmation):
        return detail
    measure = result.payload.get("measure") or {}
    detail["measure"] = measure
    calls = measure.get("hook_calls")
    if calls is None:
        return Confirmation("could-not-run", f"line {job.claim.line} was not reached on an nn.Module", detail)
    if calls["pre"] == 0 and calls["post"] == 0:
        return Confirmation(
            "confirmed",
            f"a forward pre-hook and a forward hook registered on the `{measure.get('module')}` did not run "
            "for `.forward(...)`; calling the module runs them",
            detail,
        )
    return Confirmation("not-reproduced", f"the module's hooks ran ({calls['pre']} pre, {calls['post']} post)", detail)
