"""TL103: the flagged loss on the program's own tensors, with and without the extra activation.

The loss call is handed to the harness (``activated_loss``) with its function and
arguments: it runs as written, and the logits behind its input are recovered
(``log p`` for a softmax, ``logit(p)`` for a sigmoid: the activation gives ``p``
back) to compute the loss both ways and the gradients with respect to the
logits. Confirmed when the input is an activation's output (rows summing to 1,
values in [0, 1]) and the written loss's gradient is smaller than the meant
one's; the least loss the written form can reach (the activation's ideal
output) is reported too. Not reproduced when the input is no such output, or
the gradients agree. A redundant ``log_softmax`` before ``CrossEntropyLoss`` is
confirmed the other way round: its input is log-probabilities (their
exponentials sum to 1 per row) and the loss is the same with and without it.
"""

from __future__ import annotations

from typing import Any

from torchlint.diagnostics import Confirmation
from torchlint.runtime.confirmers import Job, Options, build_job, ran
from torchlint.runtime.extract import Claim, ModuleIndex, Planner, guess_setup

_NAMES = {"cross_entropy": "CrossEntropyLoss", "nll": "NLLLoss", "bce_logits": "BCEWithLogitsLoss"}


def prepare(index: ModuleIndex, claim: Claim, options: Options, others: list[Claim] = ()) -> Job | Confirmation:  # type: ignore[assignment]
    act, loss = claim.data.get("activation"), claim.data.get("loss")
    if act not in ("softmax", "log_softmax", "sigmoid") or loss not in _NAMES or claim.end_line is None:
        return Confirmation("could-not-run", "the finding does not say which activation and loss", {"stage": "extract"})
    stmt = index.statement_at(claim.line, claim.column)
    setup = guess_setup(index)
    planner = Planner(index, force_branches=options.force_branches)
    planner.plan.rewrites.append((claim.line, claim.column, claim.end_line, claim.end_column or 0, f"loss:{act}:{loss}"))
    planner.reach(stmt, "T", setup)
    return build_job(index, claim, options, setup, planner, interpret, "tl103")


def interpret(job: Job, result: Any) -> Confirmation:
    detail = ran(job, result)
    if isinstance(detail, Confirmation):
        return detail
    m = result.payload.get("measure") or {}
    detail["measure"] = m
    act = job.claim.data.get("activation")
    if m.get("compare_error"):
        return Confirmation("could-not-run", f"the loss could not be recomputed on the logits: {m['compare_error']}", detail)
    if "grad_written" not in m:
        return Confirmation("could-not-run", f"line {job.claim.line} gave the loss no floating-point input to look at", detail)
    shaped = m.get("sums_to_one") if act in ("softmax", "log_softmax") else m.get("in_unit_range")
    if not shaped:
        what = {"softmax": "rows summing to 1", "log_softmax": "rows whose exponentials sum to 1"}.get(act, "values in [0, 1]")
        return Confirmation("not-reproduced", f"the loss's input is not a {act}'s output (no {what})", detail)
    written, meant = m["grad_written"], m["grad_meant"]
    if act == "log_softmax":
        same = abs(m["loss_written"] - m["loss_meant"]) <= 1e-6 * max(1.0, abs(m["loss_meant"])) and abs(written - meant) <= 1e-6 * max(1.0, meant)
        if same:
            return Confirmation(
                "confirmed",
                f"on the program's batch ({'x'.join(map(str, m.get('shape') or []))}) the input is log-probabilities and "
                f"CrossEntropyLoss gives the same loss ({m['loss_written']:.4f}) and gradient norm ({written:.3g}) with "
                "and without the log_softmax: it is redundant",
                detail,
            )
        return Confirmation("not-reproduced", f"the loss differs with and without the log_softmax ({m['loss_written']:.4f} vs {m['loss_meant']:.4f})", detail)
    if meant > 0 and written < meant * 0.99:
        loss = _NAMES[job.claim.data["loss"]]
        floor = f"; the written form cannot go below {m['floor_written']:.3f} even for perfect predictions" if m.get("floor_written") is not None else ""
        return Confirmation(
            "confirmed",
            f"on the program's batch ({'x'.join(map(str, m.get('shape') or []))}) {loss} as written gives loss {m['loss_written']:.4f} "
            f"with gradient norm {written:.3g} w.r.t. the logits; without the {act}: loss {m['loss_meant']:.4f}, gradient norm "
            f"{meant:.3g} ({meant / max(written, 1e-300):.1f}x larger){floor}",
            detail,
        )
    return Confirmation("not-reproduced", f"the gradients with and without the {act} agree ({written:.3g} vs {meant:.3g})", detail)
