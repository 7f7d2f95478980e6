"""TL402: run the flagged ``t.to(...)`` statement and compare what it returned with ``t``.

The call is wrapped so that the harness sees both the receiver and the result.
Moves run on a simulated CUDA device by default (the math stays on the CPU),
so ``.to(device)`` with ``device = "cuda" if torch.cuda.is_available() else
"cpu"`` really moves. Confirmed when the call returned a different tensor on
another device or with another dtype while the receiver stayed as it was: the
statement threw the move away. Not reproduced when the receiver is a module
(moved in place) or the call returned the receiver itself.
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

CODE = "TL402"


def prepare(index: ModuleIndex, claim: Claim, options: Options, others: list[Claim] = ()) -> Job:  # type: ignore[assignment]
    stmt = index.statement_at(claim.line, claim.column)
    setup = guess_setup(index)
    planner = Planner(index, force_branches=options.force_branches)
    planner.plan.rewrites.append((claim.line, claim.column, claim.end_line or claim.line, claim.end_column or 0, "discard"))
    planner.reach(stmt, "T", setup)
    return build_job(index, claim, options, setup, planner, interpret, "tl402", simulate_cuda=options.device != "cuda")


def _where(v: dict[str, Any]) -> str:
    return f"{v.get('device')} ({v.get('dtype')})"


def interpret(job: Job, result: Any) -> Confirmation:
    detail = ran(job, result)
    if isinstance(detail, Confirmation):
        return detail
    measure = result.payload.get("measure") or {}
    receiver, returned = measure.get("receiver"), measure.get("result")
    detail.update({"receiver": receiver, "result": returned, "same_object": measure.get("same_object")})
    tensor = job.claim.data.get("tensor") or "the tensor"
    if not receiver or not returned:
        return Confirmation("could-not-run", f"line {job.claim.line} was not reached", detail)
    if receiver.get("type") != "Tensor":
        return Confirmation("not-reproduced", f"`{tensor}` is a {receiver.get('type')}, not a tensor: it moves in place", detail)
    if measure.get("same_object"):
        return Confirmation("not-reproduced", f"the call returned `{tensor}` itself: nothing was moved or converted here", detail)
    if returned.get("type") == "Tensor" and (returned.get("device"), returned.get("dtype")) != (receiver.get("device"), receiver.get("dtype")):
        return Confirmation(
            "confirmed",
            f"the call returned a new tensor on {_where(returned)} and the statement threw it away: "
            f"`{tensor}` is still on {_where(receiver)}",
            detail,
        )
    return Confirmation("not-reproduced", f"the call returned a copy on the same device and dtype, {_where(returned)}", detail)
