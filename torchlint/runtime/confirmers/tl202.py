"""TL202: call the torchvision builder as the file does and catch torchvision's own complaint.

Needs the real torchvision in the sandbox's Python. Weight downloads are
intercepted (there is no network in the sandbox anyway): the builder runs up
to the point where it would fetch the checkpoint. Confirmed when the flagged
call emits torchvision's deprecation ``UserWarning`` for the flagged parameter
(``The parameter 'pretrained' is deprecated since 0.13 ...``) or, on a
torchvision that dropped the flag, raises the ``TypeError`` about it. Not
reproduced when the call runs (or reaches the weight download) without either.
"""

from __future__ import annotations

import importlib.util
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

CODE = "TL202"
NO_TORCHVISION = "torchvision is not installed in the sandbox's Python, and only torchvision itself can show its deprecation"


def torchvision_available() -> bool:
    # The sandbox runs this same interpreter, so what it can import is what we can.
    try:
        return importlib.util.find_spec("torchvision") is not None
    except (ImportError, ValueError):
        return False


def _parameter(index: ModuleIndex, claim: Claim) -> str:
    parameter = claim.data.get("parameter")
    text = index.line_text(claim.line)[claim.column :]
    for name in ("pretrained_backbone", "pretrained"):
        if text.startswith(name):
            return name
    if parameter and not text.startswith(("True", "False")):
        return str(parameter)
    return "positional"


def prepare(index: ModuleIndex, claim: Claim, options: Options, others: list[Claim] = ()) -> Job | Confirmation:  # type: ignore[assignment]
    if not torchvision_available():
        return Confirmation("could-not-run", NO_TORCHVISION, {"stage": "environment"})
    stmt = index.statement_at(claim.line, claim.column)
    setup = guess_setup(index)
    planner = Planner(index, force_branches=options.force_branches)
    planner.reach(stmt, "T", setup)
    # VGG-16 alone is 138M parameters: room for the biggest builders.
    return build_job(
        index, claim, options, setup, planner, interpret, "tl202",
        simulate_cuda=False, memory_mb=max(options.memory_mb, 4096), parameter=_parameter(index, claim),
    )  # fmt: skip


def _matches(parameter: str, message: str) -> bool:
    if parameter == "positional":
        return "positional parameter" in message or "'weights'" in message
    return f"'{parameter}'" in message


def interpret(job: Job, result: Any) -> Confirmation:
    failed = failure(job, result)
    if failed is not None:
        return failed
    payload = result.payload
    detail = detail_of(job, result)
    parameter = job.config.get("parameter", "pretrained")
    warned = [w for w in payload.get("warnings") or [] if w.get("in_target")]
    detail["warnings"] = warned[:5]
    hit = next((w for w in warned if "deprecated" in w["message"] and _matches(parameter, w["message"])), None)
    if hit is not None:
        return Confirmation("confirmed", f"{hit['category']}: {hit['message']}", detail)
    exc = target_exception(result)
    if exc is not None:
        detail["exception"] = exc
        message = exc.get("message") or ""
        if exc.get("type") == "TypeError" and "pretrained" in message:
            return Confirmation("confirmed", quote(exc), detail)
        if exc.get("type") == "WeightsBlocked":
            return Confirmation(
                "not-reproduced",
                "the call went on to download weights without a torchvision deprecation warning",
                detail,
            )
        if exc.get("type") == "ModuleNotFoundError" and "torchvision" in message:
            return Confirmation("could-not-run", NO_TORCHVISION, detail)
        return Confirmation("could-not-run", f"line {job.claim.line} failed for another reason: {quote(exc)}", detail)
    return Confirmation("not-reproduced", f"line {job.claim.line} ran without a torchvision deprecation warning", detail)
