"""TL101: measure whether gradients survive from one optimizer step to the next.

The loop runs on the same batch at every iteration (the DataLoader repeats its
first batch, random state is reset at each iteration and each module call, so
dropout repeats), and every optimizer's update is undone right after its
``step()``: the second step then computes exactly the first step's gradient.
The harness records the gradient of the flagged optimizer's parameters at
each of its steps. If nothing clears them, step 2 sees twice step 1's
gradient (2.00×); if they are cleared, the same (1.00×).
"""

from __future__ import annotations

from typing import Any

from torchlint.diagnostics import Confirmation
from torchlint.runtime.confirmers import (
    Job,
    Options,
    build_job,
    detail_of,
    failure,
    quote,
    target_exception,
)
from torchlint.runtime.extract import Claim, ModuleIndex, Planner, guess_setup

CODE = "TL101"
# Enough iterations for a gradient-accumulation loop that steps every few batches to step twice.
LOOP_LIMIT = 16


def prepare(index: ModuleIndex, claim: Claim, options: Options, others: list[Claim] = ()) -> Job:  # type: ignore[assignment]
    stmt = index.statement_at(claim.line, claim.column)
    setup = guess_setup(index)
    planner = Planner(index, force_branches=options.force_branches)
    planner.reach(stmt, "T", setup)
    return build_job(index, claim, options, setup, planner, interpret, "tl101", loop_limit=LOOP_LIMIT)


def interpret(job: Job, result: Any) -> Confirmation:
    failed = failure(job, result)
    if failed is not None:
        return failed
    detail = detail_of(job, result)
    exc = target_exception(result)
    payload = result.payload
    measure = payload.get("measure") or {}
    steps = measure.get("steps") or []
    detail["gradient_norms"] = steps[:2]
    opt = job.claim.data.get("optimizer") or "optimizer"
    if exc is not None:
        detail["exception"] = exc
        return Confirmation("could-not-run", f"the step on line {job.claim.line} failed: {quote(exc)}", detail)
    if len(steps) < 2:
        other = payload.get("exception")
        if other:
            detail["exception"] = other
            return Confirmation("could-not-run", f"stopped after {len(steps)} step(s): {quote(other)}", detail)
        return Confirmation(
            "could-not-run",
            f"`{opt}.step()` on line {job.claim.line} ran {len(steps)} time(s) in the iterations torchlint runs; two are needed",
            detail,
        )
    if not steps[0]:
        return Confirmation("could-not-run", "no gradient reached the optimizer's parameters at the first step", detail)
    ratio = measure.get("ratio")
    leftover = measure.get("leftover")
    detail["ratio"] = ratio
    detail["carried_over"] = measure.get("carried_over")
    detail["leftover"] = leftover
    if leftover is None:
        return Confirmation("could-not-run", "no backward() ran after the first step; nothing to compare", detail)
    times = f"{ratio:.2f}×" if ratio is not None else "?×"
    if leftover >= 0.9:
        if ratio is not None and abs(ratio - 2.0) < 0.05:
            evidence = (
                f"the gradient at the 2nd `{opt}.step()` is {times} the 1st on the same batch: "
                "gradients accumulate because they are never cleared"
            )
        else:
            evidence = (
                f"`.grad` still holds {leftover:.0%} of the 1st `{opt}.step()`'s gradient when the next backward() "
                f"starts: gradients accumulate because they are never cleared (2nd step's gradient: {times} the 1st)"
            )
        return Confirmation("confirmed", evidence, detail)
    if leftover <= 0.1:
        return Confirmation(
            "not-reproduced",
            f"`.grad` is cleared between steps: the 2nd `{opt}.step()`'s gradient is {times} the 1st on the same batch",
            detail,
        )
    return Confirmation(
        "could-not-run",
        f"inconclusive: {leftover:.0%} of the 1st step's gradient is still in `.grad` at the next backward()",
        detail,
    )
