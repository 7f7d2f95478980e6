"""TL206: run the line with the misspelt ``require_grad``.

The keyword form is confirmed by the ``TypeError`` torch raises for it. For the
attribute form the receiver is kept and looked at after the line ran:
confirmed when it is a tensor whose ``requires_grad`` did not change although
the line set ``require_grad`` to something else (the assignment only added an
attribute nobody reads); not reproduced when ``requires_grad`` did change or
the object is not a tensor.
"""

from __future__ import annotations

import ast
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


def _receiver_span(index: ModuleIndex, claim: Claim) -> tuple[int, int, int, int] | None:
    """The span of ``p`` in ``p.require_grad = ...`` ending where the claim (the attribute name) ends."""
    try:
        tree = ast.parse(index.source)
    except SyntaxError:
        return None
    lines = index.source.splitlines()

    def chars(line: int, offset: int) -> int:
        text = lines[line - 1] if 0 < line <= len(lines) else ""
        return len(text.encode()[:offset].decode(errors="replace"))

    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and node.attr == "require_grad" and isinstance(node.ctx, ast.Store):
            if node.end_lineno == (claim.end_line or claim.line) and chars(node.end_lineno, node.end_col_offset or 0) == claim.end_column:
                value = node.value
                end = value.end_lineno or value.lineno
                return (value.lineno, chars(value.lineno, value.col_offset), end, chars(end, value.end_col_offset or 0))
    return None


def prepare(index: ModuleIndex, claim: Claim, options: Options, others: list[Claim] = ()) -> Job:  # type: ignore[assignment]
    stmt = index.statement_at(claim.line, claim.column)
    setup = guess_setup(index)
    planner = Planner(index, force_branches=options.force_branches)
    span = _receiver_span(index, claim)
    if span is not None:
        planner.plan.rewrites.append((*span, "watch"))
    planner.reach(stmt, "T", setup)
    return build_job(index, claim, options, setup, planner, interpret, "tl206", form="attribute" if span else "keyword")


def interpret(job: Job, result: Any) -> Confirmation:
    failed = failure(job, result)
    if failed is not None:
        return failed
    detail = detail_of(job, result)
    exc = target_exception(result)
    if exc is not None:
        detail["exception"] = exc
        if exc.get("type") == "TypeError" and "require_grad" in (exc.get("message") or ""):
            return Confirmation("confirmed", quote(exc), detail)
        return Confirmation("could-not-run", f"line {job.claim.line} failed for another reason: {quote(exc)}", detail)
    measure = result.payload.get("measure") or {}
    detail["measure"] = measure
    if job.config.get("form") != "attribute":
        return Confirmation("not-reproduced", f"line {job.claim.line} ran: the callable accepted `require_grad=`", detail)
    if "requires_grad_after" not in measure:
        kind = measure.get("watched_type")
        if kind:
            return Confirmation("not-reproduced", f"the object is a {kind}, not a tensor", detail)
        return Confirmation("could-not-run", f"line {job.claim.line} was not reached", detail)
    before, after, typo = measure["requires_grad_before"], measure["requires_grad_after"], measure.get("require_grad_after")
    if before == after and typo != repr(after):
        return Confirmation(
            "confirmed",
            f"after the line, `require_grad` is {typo} but the tensor's `requires_grad` is still {after}: "
            "the assignment changed nothing torch reads",
            detail,
        )
    return Confirmation("not-reproduced", f"`requires_grad` went from {before} to {after}", detail)
