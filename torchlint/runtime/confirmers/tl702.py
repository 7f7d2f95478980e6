"""TL702: run ``zero_grad(set_to_none=False)`` and look at what it left in ``.grad``.

The receiver (an optimizer or a module) is kept and, after the call ran a
second time (so that a backward pass has filled the gradients in between,
in a loop), its parameters' ``.grad`` are inspected. Confirmed when gradients
are zero-filled tensors that ``set_to_none=True`` would have freed; not
reproduced when they are ``None`` (no gradients existed yet).
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
    # Twice: in a training loop the second call follows a backward pass.
    return build_job(index, claim, options, setup, planner, interpret, "tl702", stop_after=2)


def interpret(job: Job, result: Any) -> Confirmation:
    detail = ran(job, result)
    if isinstance(detail, Confirmation):
        return detail
    measure = result.payload.get("measure") or {}
    detail["measure"] = measure
    if "parameters" not in measure:
        return Confirmation("could-not-run", f"line {job.claim.line} was not reached on an optimizer or module", detail)
    zeros, total = measure["zero_grads"], measure["parameters"]
    if zeros:
        size = measure["zero_grad_bytes"]
        return Confirmation(
            "confirmed",
            f"after `zero_grad(set_to_none=False)`, {zeros} of {total} parameters hold zero-filled `.grad` tensors "
            f"({size:,} bytes kept allocated) that `set_to_none=True` would free",
            detail,
        )
    return Confirmation("not-reproduced", f"no gradient was zero-filled here ({measure['none_grads']} of {total} are None)", detail)
