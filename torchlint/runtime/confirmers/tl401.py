"""TL401: run the flagged batch into the model on a GPU, simulated on the CPU by default.

Under :func:`torchlint.runtime.fakedevice.simulate_device` every tensor and
module carries the device it would be on (``.to(device)`` and ``.cuda()``
move the tag) while the math runs on the CPU, and mixing devices raises the
error PyTorch raises. With ``--device cuda`` on a machine with a GPU the code
runs on the real one. Confirmed when the flagged line raises an error of the
cross-device family; not reproduced when it runs.
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
    family,
    quote,
    target_exception,
)
from torchlint.runtime.extract import Claim, ModuleIndex, Planner, guess_setup

CODE = "TL401"


def prepare(index: ModuleIndex, claim: Claim, options: Options, others: list[Claim] = ()) -> Job:  # type: ignore[assignment]
    stmt = index.statement_at(claim.line, claim.column)
    setup = guess_setup(index, _model_class(index, claim))
    planner = Planner(index, force_branches=options.force_branches)
    # Other flagged tensors that reach the model first would stop the program
    # before this one: they are moved to the model's device, as their fix does.
    moved = list(others)
    for other in moved:
        planner.plan.rewrites.append((other.line, other.column, other.end_line or other.line, other.end_column or 0, "move"))
    if moved:
        names = ", ".join(f"`{o.data.get('tensor') or '?'}` (line {o.line})" for o in moved)
        planner.plan.notes.append(f"the other flagged tensors were moved to the model's device: {names}")
    planner.reach(stmt, "T", setup)
    return build_job(index, claim, options, setup, planner, interpret, "tl401", simulate_cuda=options.device != "cuda")


def _model_class(index: ModuleIndex, claim: Claim) -> str | None:
    model = claim.data.get("model")
    return model if isinstance(model, str) and model in index.classes else None


def interpret(job: Job, result: Any) -> Confirmation:
    failed = failure(job, result)
    if failed is not None:
        return failed
    exc = target_exception(result)
    detail = detail_of(job, result)
    where = "a simulated CUDA device" if job.simulate_cuda else "the GPU"
    if exc is None:
        tensor = job.claim.data.get("tensor")
        what = f"`{tensor}`" if tensor else f"line {job.claim.line}"
        return Confirmation("not-reproduced", f"{what} ran with the model on {where} without a device error", detail)
    detail["exception"] = exc
    if family(exc.get("type"), exc.get("message")) == "device":
        return Confirmation("confirmed", quote(exc), detail)
    return Confirmation("could-not-run", f"line {job.claim.line} failed for another reason: {quote(exc)}", detail)
