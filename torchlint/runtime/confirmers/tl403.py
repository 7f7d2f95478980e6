"""TL403: run ``pack_padded_sequence`` with its ``lengths`` where a GPU run puts them.

Without a real GPU the program runs on the simulated CUDA device
(:mod:`torchlint.runtime.fakedevice`, where ``torch.cuda.is_available()`` is
True, so ``"cuda" if available else "cpu"`` picks the GPU as on the training
machine) and ATen's check is applied: confirmed on ``RuntimeError: 'lengths'
argument should be a 1D CPU int64 tensor``. Not reproduced when the call ran.
"""

from __future__ import annotations

import re
from typing import Any

from torchlint.diagnostics import Confirmation
from torchlint.runtime.confirmers import Job, Options, build_job, detail_of, failure, quote, target_exception
from torchlint.runtime.extract import Claim, ModuleIndex, Planner, guess_setup

PATTERN = re.compile(r"'lengths' argument should be a 1D CPU int64 tensor")


def prepare(index: ModuleIndex, claim: Claim, options: Options, others: list[Claim] = ()) -> Job:  # type: ignore[assignment]
    stmt = index.statement_at(claim.line, claim.column)
    setup = guess_setup(index)
    planner = Planner(index, force_branches=options.force_branches)
    planner.reach(stmt, "T", setup)
    return build_job(index, claim, options, setup, planner, interpret, "tl403", simulate_cuda=options.device != "cuda")


def interpret(job: Job, result: Any) -> Confirmation:
    failed = failure(job, result)
    if failed is not None:
        return failed
    detail = detail_of(job, result)
    exc = target_exception(result)
    where = "a simulated CUDA device" if job.simulate_cuda else "the GPU"
    if exc is not None:
        detail["exception"] = exc
        if PATTERN.search(exc.get("message") or ""):
            return Confirmation("confirmed", f"on {where}: {quote(exc)}", detail)
        return Confirmation("could-not-run", f"line {job.claim.line} failed for another reason: {quote(exc)}", detail)
    return Confirmation("not-reproduced", f"on {where}, `pack_padded_sequence` accepted these lengths", detail)
