"""TL201: run the flagged ``it.next()`` on the real (synthetic-data) iterator.

Confirmed when the call raises ``AttributeError: '<iterator type>' object has
no attribute 'next'``; not reproduced when the line runs (the object does have
a ``next`` method).
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

CODE = "TL201"


def prepare(index: ModuleIndex, claim: Claim, options: Options, others: list[Claim] = ()) -> Job:  # type: ignore[assignment]
    stmt = index.statement_at(claim.line, claim.column)
    setup = guess_setup(index)
    planner = Planner(index, force_branches=options.force_branches)
    # Other flagged .next() calls that run first would stop the program before
    # this one: they run as next(it), which is what their fix does.
    for other in others:
        planner.plan.rewrites.append((other.line, other.column, other.end_line or other.line, other.end_column or 0, "next"))
    if others:
        lines = ", ".join(str(o.line) for o in others)
        planner.plan.notes.append(f"the other flagged `.next()` calls (line {lines}) ran as `next(...)`")
    planner.reach(stmt, "T", setup)
    return build_job(index, claim, options, setup, planner, interpret, "tl201")


def interpret(job: Job, result: Any) -> Confirmation:
    failed = failure(job, result)
    if failed is not None:
        return failed
    exc = target_exception(result)
    detail = detail_of(job, result)
    if exc is None:
        return Confirmation("not-reproduced", f"line {job.claim.line} ran without an AttributeError", detail)
    detail["exception"] = exc
    if exc.get("type") == "AttributeError" and "attribute 'next'" in (exc.get("message") or ""):
        return Confirmation("confirmed", quote(exc), detail)
    inner = [n for n in exc.get("user_lines") or [] if n != job.claim.line]
    if inner and (exc.get("user_lines") or [None])[0] == job.claim.line:
        # The error came from inside the called next(): the method exists.
        return Confirmation(
            "not-reproduced",
            f"`.next()` exists here: it ran and raised {quote(exc)} on line {inner[-1]}",
            detail,
        )
    return Confirmation("could-not-run", f"line {job.claim.line} failed for another reason: {quote(exc)}", detail)
