"""TL108: build the module whose ``__init__`` skips or delays ``super().__init__()``.

A layer stored before the call: the flagged statement is run (by building
the class) and ``AttributeError: cannot assign module before Module.__init__()
call`` (or ``parameters``) is caught. An ``__init__`` that never calls it:
the object it built is kept and ``.parameters()`` is asked of it, which fails
with ``AttributeError: ... has no attribute '_parameters'``. Not reproduced
when the statement ran and the module works.
"""

from __future__ import annotations

import re
from typing import Any

from torchlint.diagnostics import Confirmation
from torchlint.runtime.confirmers import Job, Options, build_job, detail_of, failure, quote, target_exception
from torchlint.runtime.extract import Claim, ModuleIndex, Planner, guess_setup

PATTERN = re.compile(r"before Module\.__init__\(\) call|has no attribute '_(parameters|modules|buffers|\w*hooks)'")


def prepare(index: ModuleIndex, claim: Claim, options: Options, others: list[Claim] = ()) -> Job | Confirmation:  # type: ignore[assignment]
    span = claim.data.get("self_span")
    if claim.data.get("kind") == "never":
        if not span:
            return Confirmation("could-not-run", "`__init__` ends without a statement using `self` to look at the module from", {})
        stmt = index.statement_at(span[0], span[1])
    else:
        stmt = index.statement_at(claim.line, claim.column)
    setup = guess_setup(index)
    planner = Planner(index, force_branches=options.force_branches)
    if span and claim.data.get("kind") == "never":
        planner.plan.rewrites.append((*span, "watch"))
    planner.reach(stmt, "T", setup)
    return build_job(index, claim, options, setup, planner, interpret, "tl108")


def interpret(job: Job, result: Any) -> Confirmation:
    payload = getattr(result, "payload", None) or {}
    exc = target_exception(result) or payload.get("exception")
    if exc is not None and PATTERN.search(exc.get("message") or ""):
        detail = detail_of(job, result)
        detail["exception"] = exc
        return Confirmation("confirmed", quote(exc), detail)
    failed = failure(job, result)
    if failed is not None:
        return failed
    detail = detail_of(job, result)
    measure = payload.get("measure") or {}
    detail["measure"] = measure
    if measure.get("use_error") and PATTERN.search(measure["use_error"]):
        return Confirmation("confirmed", f"`{measure['module']}(...)` was built, then `.parameters()` raised {measure['use_error']}", detail)
    if exc is not None:
        detail["exception"] = exc
        return Confirmation("could-not-run", f"line {job.claim.line} failed for another reason: {quote(exc)}", detail)
    return Confirmation("not-reproduced", f"line {job.claim.line} ran and the module works", detail)
