"""TL110: PyTorch's own warning for a softmax without ``dim``.

The functional form (``F.softmax(x)``) is run where the file runs it and the
``Implicit dimension choice for softmax has been deprecated`` warning is
caught. The module form (``nn.Softmax()``) warns only when called: the layer
the flagged line builds is kept and called once on a 2-D input. Confirmed on
the warning; not reproduced when the call ran without it (a ``dim`` was given).
"""

from __future__ import annotations

import re
from typing import Any

from torchlint.diagnostics import Confirmation
from torchlint.runtime.confirmers import Job, Options, build_job, detail_of, failure, quote, target_exception
from torchlint.runtime.extract import Claim, ModuleIndex, Planner, guess_setup

PATTERN = re.compile(r"Implicit dimension choice for \w+ has been deprecated")


def prepare(index: ModuleIndex, claim: Claim, options: Options, others: list[Claim] = ()) -> Job:  # type: ignore[assignment]
    stmt = index.statement_at(claim.line, claim.column)
    setup = guess_setup(index)
    planner = Planner(index, force_branches=options.force_branches)
    if claim.data.get("form") == "module" and claim.end_line is not None:
        planner.plan.rewrites.append((claim.line, claim.column, claim.end_line, claim.end_column or 0, "watch"))
    planner.reach(stmt, "T", setup)
    return build_job(index, claim, options, setup, planner, interpret, "tl110")


def interpret(job: Job, result: Any) -> Confirmation:
    failed = failure(job, result)
    if failed is not None:
        return failed
    detail = detail_of(job, result)
    measure = result.payload.get("measure") or {}
    detail["measure"] = measure
    messages = [w.get("message") or "" for w in result.payload.get("warnings") or [] if w.get("in_target")]
    messages += measure.get("probe_warnings") or []
    hit = next((m for m in messages if PATTERN.search(m)), None)
    if hit is not None:
        where = f" (calling the `{measure['module']}` built there)" if measure.get("module") else ""
        return Confirmation("confirmed", f"UserWarning{where}: {hit.splitlines()[0]}", detail)
    exc = target_exception(result)
    if exc is not None:
        detail["exception"] = exc
        return Confirmation("could-not-run", f"line {job.claim.line} failed: {quote(exc)}", detail)
    return Confirmation("not-reproduced", f"line {job.claim.line} ran without the implicit-dimension warning", detail)
