"""TL106: run the loop and let PyTorch (or the gradients) show the order is wrong.

A scheduler stepped before the optimizer: the flagged ``scheduler.step()`` runs
and PyTorch's own ``UserWarning: Detected call of `lr_scheduler.step()` before
`optimizer.step()``` is caught there. An optimizer stepped before
``backward()``: the harness records the flagged optimizer's gradient at its
first two steps (the TL101 probe, which undoes each update); confirmed when
both are zero, i.e. no step ever sees a gradient that ``backward()`` computed.
"""

from __future__ import annotations

import re
from typing import Any

from torchlint.diagnostics import Confirmation
from torchlint.runtime.confirmers import Job, Options, build_job, quote, ran
from torchlint.runtime.extract import Claim, ModuleIndex, Planner, guess_setup

CODE = "TL106"
WARNING = re.compile(r"lr_scheduler\.step\(\)` before `optimizer\.step\(\)")


def prepare(index: ModuleIndex, claim: Claim, options: Options, others: list[Claim] = ()) -> Job:  # type: ignore[assignment]
    stmt = index.statement_at(claim.line, claim.column)
    setup = guess_setup(index)
    planner = Planner(index, force_branches=options.force_branches)
    planner.reach(stmt, "T", setup)
    if claim.data.get("kind") == "backward":
        return build_job(index, claim, options, setup, planner, interpret, "tl101", loop_limit=8)
    return build_job(index, claim, options, setup, planner, interpret, "tl106", simulate_cuda=False)


def interpret(job: Job, result: Any) -> Confirmation:
    detail = ran(job, result)
    if isinstance(detail, Confirmation):
        return detail
    if job.config.get("mode") == "tl101":
        return _gradients(job, result, detail)
    warned = [w for w in result.payload.get("warnings") or [] if w.get("in_target")]
    detail["warnings"] = warned[:5]
    hit = next((w for w in warned if WARNING.search(w.get("message") or "")), None)
    if hit is not None:
        return Confirmation("confirmed", f"{hit['category']}: {hit['message'].splitlines()[0]}", detail)
    if not result.payload.get("reached"):
        return Confirmation("could-not-run", f"line {job.claim.line} was not reached", detail)
    return Confirmation("not-reproduced", f"line {job.claim.line} ran without PyTorch's step-order warning", detail)


def _gradients(job: Job, result: Any, detail: dict[str, Any]) -> Confirmation:
    steps = (result.payload.get("measure") or {}).get("steps") or []
    detail["gradient_norms"] = steps[:2]
    opt = job.claim.data.get("optimizer") or "optimizer"
    if len(steps) < 2:
        other = result.payload.get("exception")
        if other:
            detail["exception"] = other
            return Confirmation("could-not-run", f"stopped after {len(steps)} step(s): {quote(other)}", detail)
        return Confirmation("could-not-run", f"`{opt}.step()` ran {len(steps)} time(s); two are needed", detail)
    if all(s == 0.0 for s in steps[:2]):
        return Confirmation(
            "confirmed",
            f"the gradient is 0 at the 1st and the 2nd `{opt}.step()`: no step ever sees what backward() computed",
            detail,
        )
    return Confirmation("not-reproduced", f"the 2nd `{opt}.step()` sees a gradient of norm {steps[1]:.3g}", detail)
