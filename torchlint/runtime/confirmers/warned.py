"""TL207, TL208: run the flagged call and catch the warning the real package gives for it.

TL207: PyTorch's ``UserWarning: torch.utils.checkpoint: the use_reentrant
parameter should be passed explicitly ...`` (or the error of a release that
made it one). TL208: torchvision's ``UserWarning: The transform ToTensor() is
deprecated ...`` (needs the real torchvision in the sandbox's Python, like
TL202). Not reproduced when the call ran without it.
"""

from __future__ import annotations

import re
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
from torchlint.runtime.confirmers.tl202 import NO_TORCHVISION, torchvision_available
from torchlint.runtime.extract import Claim, ModuleIndex, Planner, guess_setup

EXPECTED = {
    "TL207": re.compile(r"use_reentrant"),
    "TL208": re.compile(r"ToTensor\(\) is deprecated|ToTensor.*deprecated"),
}


def prepare(index: ModuleIndex, claim: Claim, options: Options, others: list[Claim] = ()) -> Job | Confirmation:  # type: ignore[assignment]
    if claim.code == "TL208" and not torchvision_available():
        return Confirmation("could-not-run", NO_TORCHVISION.replace("its deprecation", "its ToTensor deprecation"), {"stage": "environment"})
    stmt = index.statement_at(claim.line, claim.column)
    setup = guess_setup(index)
    planner = Planner(index, force_branches=options.force_branches)
    planner.reach(stmt, "T", setup)
    return build_job(index, claim, options, setup, planner, interpret, "warned", simulate_cuda=False, rule=claim.code)


def interpret(job: Job, result: Any) -> Confirmation:
    failed = failure(job, result)
    if failed is not None:
        return failed
    pattern = EXPECTED[job.config["rule"]]
    detail = detail_of(job, result)
    warned = [w for w in result.payload.get("warnings") or [] if w.get("in_target")]
    detail["warnings"] = warned[:5]
    hit = next((w for w in warned if pattern.search(w.get("message") or "")), None)
    if hit is not None:
        return Confirmation("confirmed", f"{hit['category']}: {hit['message'].splitlines()[0]}", detail)
    exc = target_exception(result)
    if exc is not None:
        detail["exception"] = exc
        if pattern.search(exc.get("message") or ""):
            return Confirmation("confirmed", quote(exc), detail)
        return Confirmation("could-not-run", f"line {job.claim.line} failed for another reason: {quote(exc)}", detail)
    return Confirmation("not-reproduced", f"line {job.claim.line} ran without the warning", detail)
