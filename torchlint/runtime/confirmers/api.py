"""TL203, TL204, TL501, TL502: run the flagged line and catch what the real package says about it.

TL203 (deprecated API): the warning the table records for the API
(``FutureWarning: `torch.cuda.amp.autocast(args...)` is deprecated ...``).
TL204 (removed API): the error the table records (``RuntimeError: This
function was deprecated since version 1.9 and is now removed``, or
``ModuleNotFoundError`` for a removed module). TL501: the ``AttributeError``
or ``ImportError`` naming the attribute. TL502: the ``TypeError`` about the
unexpected keyword. What the sandbox's torch says decides: on a release where
the API still works, or already is gone, the finding is "not reproduced" or
confirmed accordingly, as that release behaves.
"""

from __future__ import annotations

import re
from typing import Any

from torchlint.diagnostics import Confirmation
from torchlint.runtime.confirmers import Job, Options, build_job, detail_of, failure, quote, target_exception
from torchlint.runtime.extract import Claim, ModuleIndex, Planner, guess_setup


def expected(claim: Claim) -> tuple[str, str]:
    """(``"warning"`` or ``"error"``, a regex) for what confirms the claim."""
    data = claim.data or {}
    if claim.code == "TL203":
        text = str(data.get("warning") or data.get("api") or "")
        return "warning", re.escape(text[:60]) if text else r"deprecated"
    if claim.code == "TL204":
        text = str(data.get("warning") or "")
        return "error", (re.escape(text[:60]) if text else r"removed") + r"|No module named|has no attribute"
    if claim.code == "TL501":
        attr = re.escape(str(data.get("attribute") or ""))
        return "error", rf"has no attribute '{attr}'|cannot import name '{attr}'|No module named .*{attr}"
    keyword = re.escape(str(data.get("keyword") or ""))
    return "error", rf"unexpected keyword argument '{keyword}'|got an unexpected keyword.*{keyword}"


def _about_torchvision(claim: Claim) -> bool:
    """Is the claim about torchvision's API (its message names the release it was checked against)?"""
    data = claim.data or {}
    named = " ".join(str(data.get(k) or "") for k in ("owner", "callable", "api", "module"))
    return "torchvision" in named or " in torchvision " in claim.message or "`torchvision." in claim.message


def prepare(index: ModuleIndex, claim: Claim, options: Options, others: list[Claim] = ()) -> Job | Confirmation:  # type: ignore[assignment]
    if _about_torchvision(claim):
        from torchlint.runtime.confirmers.tl202 import torchvision_available

        if not torchvision_available():
            # The sandbox's stand-in torchvision accepts any transform name: it cannot say what is missing.
            return Confirmation(
                "could-not-run",
                "torchvision is not installed in the sandbox's Python, and only torchvision itself can show "
                "whether this part of its API exists",
                {"stage": "environment"},
            )
    stmt = index.statement_at(claim.line, claim.column)
    setup = guess_setup(index)
    planner = Planner(index, force_branches=options.force_branches)
    planner.reach(stmt, "T", setup)
    kind, pattern = expected(claim)
    # The other flagged names of the same rule: one that fails first (`models.Sequential(transforms.X(...))`
    # fails at `Sequential` before `X` is looked up) is said as such, not as "another reason".
    earlier = [(o.line, expected(o)[1]) for o in others if o.line <= claim.line and o.code == claim.code and expected(o)[0] == "error"]
    return build_job(index, claim, options, setup, planner, interpret, "warned", simulate_cuda=False,
                     rule=claim.code, expect=kind, pattern=pattern, earlier=earlier)  # fmt: skip


def interpret(job: Job, result: Any) -> Confirmation:
    failed = failure(job, result)
    pattern = re.compile(job.config["pattern"])
    exc = target_exception(result) if result is not None and getattr(result, "payload", None) else None
    if failed is not None and exc is None:
        return failed
    detail = detail_of(job, result)
    warned = [w for w in (result.payload.get("warnings") or []) if w.get("in_target")]
    detail["warnings"] = warned[:5]
    if job.config["expect"] == "warning":
        hit = next((w for w in warned if pattern.search(w.get("message") or "")), None)
        if hit is not None:
            return Confirmation("confirmed", f"{hit['category']}: {hit['message'].splitlines()[0]}", detail)
    if exc is not None:
        detail["exception"] = exc
        if pattern.search(exc.get("message") or "") or pattern.search(exc.get("type") or ""):
            return Confirmation("confirmed", quote(exc), detail)
        if exc.get("type") == "ModuleNotFoundError":
            return Confirmation("could-not-run", f"a module it needs is not installed in the sandbox: {quote(exc)}", detail)
        for line, other in job.config.get("earlier") or ():
            if re.search(other, exc.get("message") or ""):
                return Confirmation(
                    "could-not-run",
                    f"line {job.claim.line} is not reached: the mistake flagged on line {line} fails first ({quote(exc)})",
                    detail,
                )
        return Confirmation("could-not-run", f"line {job.claim.line} failed for another reason: {quote(exc)}", detail)
    what = "the warning" if job.config["expect"] == "warning" else "the error"
    return Confirmation("not-reproduced", f"line {job.claim.line} ran without {what}", detail)
