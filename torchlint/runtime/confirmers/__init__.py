"""One confirmer per confirmable rule, and what they share.

A confirmer has two halves. ``prepare(index, claim, options)`` runs in the
linter's process (no torch): it plans the program (see
:mod:`torchlint.runtime.extract`) and returns a :class:`Job`, or a
:class:`~torchlint.diagnostics.Confirmation` straight away when the claim
cannot be run (with the reason). ``interpret(job, result)`` reads what the
sandbox reported (:class:`~torchlint.runtime.sandbox.SandboxResult`, whose
``payload`` the harness filled) and decides: confirmed, not reproduced, or
could not run.

Errors are matched by their *family* of message, not one exact text: the CPU,
CUDA and ``meta`` backends word the same mistake differently, and wordings
change between PyTorch releases.
"""

from __future__ import annotations

import importlib
import re
from dataclasses import dataclass, field
from typing import Any, Callable

from torchlint.diagnostics import Confirmation
from torchlint.runtime.extract import Claim, ModuleIndex, Plan, Setup

CONFIRMER_MODULES = {
    "TL101": "torchlint.runtime.confirmers.tl101",
    "TL201": "torchlint.runtime.confirmers.tl201",
    "TL202": "torchlint.runtime.confirmers.tl202",
    "TL206": "torchlint.runtime.confirmers.tl206",
    "TL203": "torchlint.runtime.confirmers.api",
    "TL204": "torchlint.runtime.confirmers.api",
    "TL501": "torchlint.runtime.confirmers.api",
    "TL502": "torchlint.runtime.confirmers.api",
    "TL207": "torchlint.runtime.confirmers.warned",
    "TL208": "torchlint.runtime.confirmers.warned",
    "TL301": "torchlint.runtime.confirmers.tl301",
    "TL401": "torchlint.runtime.confirmers.tl401",
    "TL601": "torchlint.runtime.confirmers.numerics",
    "TL602": "torchlint.runtime.confirmers.numerics",
    "TL603": "torchlint.runtime.confirmers.numerics",
    "TL702": "torchlint.runtime.confirmers.tl702",
    "TL402": "torchlint.runtime.confirmers.tl402",
    "TL106": "torchlint.runtime.confirmers.tl106",
    "TL107": "torchlint.runtime.confirmers.tl107",
    "TL102": "torchlint.runtime.confirmers.tl102",
    "TL108": "torchlint.runtime.confirmers.tl108",
    "TL109": "torchlint.runtime.confirmers.tl109",
    "TL110": "torchlint.runtime.confirmers.tl110",
    "TL104": "torchlint.runtime.confirmers.tl104",
    "TL103": "torchlint.runtime.confirmers.tl103",
    "TL105": "torchlint.runtime.confirmers.tl105",
    "TL403": "torchlint.runtime.confirmers.tl403",
}


@dataclass(frozen=True)
class Options:
    device: str = "cpu"  # "cpu" (a simulated GPU where needed) or "cuda" (a real one)
    timeout: float = 20.0
    memory_mb: int = 2048
    force_branches: bool = False
    # Other rules' findings that run before the flagged code, run as their fix would so that they do not
    # stop the program first: (line, column, end_line, end_column, kind) rewrites, kind "next" (TL201's
    # `it.next()` -> `next(it)`) or "move" (TL401's tensor to the model's device, on a (simulated) GPU only).
    passes: tuple[tuple[int, int, int, int, str], ...] = ()


@dataclass
class Job:
    claim: Claim
    code: str  # the snippet the sandbox runs
    plan: Plan
    config: dict[str, Any]
    interpret: Callable[["Job", Any], Confirmation]
    simulate_cuda: bool = False
    memory_mb: int = 2048
    notes: list[str] = field(default_factory=list)


_GPU_ONLY = re.compile(r"""\.cuda\(|["']cuda(:\d+)?["']""")


def needs_gpu(source: str, options: Options) -> bool:
    """Simulate a GPU? When no real one was asked for and the file moves things to one without
    asking ``torch.cuda.is_available()`` on the same line (``.cuda()``, ``device = "cuda"``):
    CPU-only PyTorch would stop at the first move. The usual
    ``"cuda" if torch.cuda.is_available() else "cpu"`` runs on the CPU as it is."""
    if options.device == "cuda":
        return False
    return any(_GPU_ONLY.search(line) and "is_available" not in line for line in source.splitlines())


def confirmer(code: str) -> Any | None:
    name = CONFIRMER_MODULES.get(code)
    return importlib.import_module(name) if name else None


def snippet(config: dict[str, Any], source: str, plan: Plan) -> str:
    """The program the sandbox runs: the harness, given the user's source and the plan."""
    return (
        "from torchlint.runtime.confirmers import harness as _torchlint_harness\n"
        f"_torchlint_harness.main({config!r}, {source!r}, {plan.to_dict()!r}, "
        "globals().get('torchlint_report'))\n"
    )


def base_config(index: ModuleIndex, claim: Claim, options: Options, setup: Setup, mode: str) -> dict[str, Any]:
    return {
        "mode": mode,
        "filename": index.path,
        "line": claim.line,
        "device": options.device,
        "batch_size": 2,
        "input_shape": setup.input_shape,
        "label_kind": setup.label_kind,
        "label_shape": setup.label_shape,
    }


def build_job(
    index: ModuleIndex,
    claim: Claim,
    options: Options,
    setup: Setup,
    planner: Any,
    interpret: Callable[[Job, Any], Confirmation],
    mode: str,
    *,
    simulate_cuda: bool | None = None,
    memory_mb: int | None = None,
    **config: Any,
) -> Job:
    """The job for a planned program: what the harness is told and how the sandbox runs it, kept in step.

    ``simulate_cuda`` defaults to :func:`needs_gpu`; ``config`` adds mode-specific harness settings.
    """
    full = base_config(index, claim, options, setup, mode)
    full.update(config)
    simulate = needs_gpu(index.source, options) if simulate_cuda is None else simulate_cuda
    full["simulate_cuda"] = simulate
    _add_passes(planner.plan, claim, options, gpu=simulate or options.device == "cuda")
    return Job(
        claim,
        snippet(full, index.source, planner.plan),
        planner.plan,
        full,
        interpret,
        simulate_cuda=simulate,
        memory_mb=options.memory_mb if memory_mb is None else memory_mb,
    )


_PASS_NOTES = {
    "next": "the other flagged `.next()` call on line {lines} ran as `next(...)` (TL201's fix)",
    "move": "the other flagged tensor on line {lines} was moved to the model's device (TL401's fix)",
}


def _add_passes(plan: Plan, claim: Claim, options: Options, *, gpu: bool) -> None:
    """Other rules' findings on the way to the flagged code run as their fix would (Options.passes)."""
    added: dict[str, list[int]] = {}
    for rewrite in options.passes:
        line, column, _, _, kind = rewrite
        if (line, column) == (claim.line, claim.column) or rewrite in plan.rewrites:
            continue
        if any(tuple(r[:2]) == (line, column) for r in plan.rewrites):
            continue  # the confirmer already rewrites that expression its own way
        if kind == "move" and not gpu:
            continue  # without a GPU, real or simulated, there is nothing to move to (and no error to avoid)
        plan.rewrites.append(tuple(rewrite))
        added.setdefault(kind, []).append(line)
    for kind, lines in added.items():
        plan.notes.append(_PASS_NOTES[kind].format(lines=", ".join(map(str, sorted(set(lines))))))


# --------------------------------------------------------------------------
# Families of error messages

DEVICE_ERRORS = [
    re.compile(p)
    for p in (
        r"Expected all tensors to be on the same device",
        r"Input type \(.+\) and (weight|bias) type \(.+\) should be the same",
        r"indices should be either on cpu or on the same device",
        r"Expected object of device type \w+ but got device type \w+",
        r"is on (CPU|cpu|GPU|cuda).*but expected (it )?to be on",
        r"Input and (hidden|parameter) tensors are not (at|on) the same device",
        r"Tensor on device \w+(:\d+)? is not on the expected device",
        r"expected (device|all tensors).* (cuda|meta)",
        r"found at least two devices",
    )
]

SHAPE_ERRORS = [
    re.compile(p)
    for p in (
        r"mat1 and mat2 shapes cannot be multiplied",
        r"size mismatch",
        r"shape '\[.*\]' is invalid for input of size \d+",
        r"expected input\[.*\] to have \d+ channels, but got \d+ channels",
        r"Expected \d+D .*input to conv",
        r"The size of tensor a \(\d+\) must match the size of tensor b \(\d+\)",
        r"Expected input batch_size \(\d+\) to match target batch_size \(\d+\)",
        r"running_mean should contain \d+ elements not \d+",
        r"input\.size\(-1\) must be equal to input_size",
        r"Calculated (padded )?input size per channel: .* Kernel size can't be greater than actual input size",
        r"Output size is too small",
        r"view size is not compatible with input tensor's size and stride",
        r"Sizes of tensors must match except in dimension",
        r"Expected (2D|3D|4D) \(unbatched\) or",
        r"Expected more than 1 value per channel when training",
        r"Given normalized_shape=\[.*\], expected input with shape",
        r"Dimension out of range",
        r"cannot reshape tensor of \d+ elements into shape",
        r"Using a target size \(.*\) that is different to the input size",
        r"(both arguments|self and mat2) .* (must|should) .*(match|same)",
    )
]


def family(exc_type: str | None, message: str | None) -> str | None:
    """"device", "shape" or None for an exception's message."""
    text = message or ""
    if any(p.search(text) for p in DEVICE_ERRORS):
        return "device"
    if any(p.search(text) for p in SHAPE_ERRORS):
        return "shape"
    return None


def quote(exc: dict[str, Any] | None) -> str:
    if not exc:
        return ""
    message = (exc.get("message") or "").strip().splitlines()
    first = message[0] if message else ""
    if len(first) > 300:
        first = first[:297] + "..."
    return f"{exc.get('type')}: {first}" if first else str(exc.get("type"))


# --------------------------------------------------------------------------
# Reading a sandbox result


def detail_of(job: Job, result: Any) -> dict[str, Any]:
    payload = getattr(result, "payload", None) or {}
    detail: dict[str, Any] = {
        "sandbox": getattr(result, "status", None),
        "isolation": getattr(result, "isolation", None),
        "duration_s": round(float(getattr(result, "duration_s", 0.0) or 0.0), 3),
        "device": "cuda (simulated on the CPU)" if job.simulate_cuda else job.config.get("device", "cpu"),
    }
    if payload.get("torch"):
        detail["torch"] = payload["torch"]
    if payload.get("torchvision"):
        detail["torchvision"] = payload["torchvision"]
    notes = [*job.plan.notes, *(payload.get("notes") or [])]
    if notes:
        detail["notes"] = notes
    warnings = getattr(result, "warnings", None)
    if warnings:
        detail["sandbox_warnings"] = list(warnings)
    return detail


def could_not_run(job: Job, result: Any, reason: str, **extra: Any) -> Confirmation:
    detail = detail_of(job, result)
    detail.update(extra)
    return Confirmation("could-not-run", reason, detail)


def failure(job: Job, result: Any) -> Confirmation | None:
    """The could-not-run verdicts every rule shares; None when the flagged code ran."""
    status = getattr(result, "status", "error")
    payload = getattr(result, "payload", None) or {}
    line = job.claim.line
    if status == "timeout":
        return could_not_run(job, result, f"timed out after {job.config.get('timeout', '?')} s before line {line} finished")
    if status == "memory":
        return could_not_run(job, result, f"ran out of the sandbox's memory ({job.memory_mb} MB)")
    if status == "killed":
        return could_not_run(job, result, f"the sandboxed process died: {result.exc_message or 'killed'}")
    if not payload:
        what = f"{result.exc_type}: {result.exc_message}" if getattr(result, "exc_type", None) else (result.exc_message or status)
        return could_not_run(job, result, f"the sandbox could not run the program: {what}")
    if payload.get("outcome") == "no-device":
        return could_not_run(job, result, str(payload.get("error")))
    if payload.get("outcome") == "harness-error":
        return could_not_run(job, result, f"the program could not be built: {payload.get('error')}")
    if not payload.get("reached"):
        exc = payload.get("exception")
        if exc:
            where = f" (line {exc['line']})" if exc.get("line") else ""
            reason = f"failed before reaching line {line}: {quote(exc)}{where}"
            if exc.get("type") == "ModuleNotFoundError":
                reason = f"a module it needs is not installed in the sandbox: {quote(exc)}"
            return could_not_run(job, result, reason, exception=exc)
        return could_not_run(job, result, f"line {line} was not reached by the code that runs it")
    return None


def target_exception(result: Any) -> dict[str, Any] | None:
    payload = getattr(result, "payload", None) or {}
    return payload.get("target_exception")


def ran(job: Job, result: Any) -> Confirmation | dict[str, Any]:
    """The detail of a run that reached the flagged line without raising; else the verdict on why not.

    The common start of a measuring confirmer's ``interpret``: a sandbox or reaching failure
    (:func:`failure`), or the flagged line itself raising (could not run: what it raised).
    """
    failed = failure(job, result)
    if failed is not None:
        return failed
    detail = detail_of(job, result)
    exc = target_exception(result)
    if exc is not None:
        detail["exception"] = exc
        return Confirmation("could-not-run", f"line {job.claim.line} failed: {quote(exc)}", detail)
    return detail
