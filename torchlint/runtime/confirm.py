"""Confirm findings by running them: the entry points of the runtime checker.

:func:`confirm_findings` is what the CLI (``torchlint check --confirm``,
``torchlint confirm``) and the language server's "Confirm by running" action
call. For each finding of a rule with ``confirmable = True`` it plans a small
program (:mod:`torchlint.runtime.extract`), runs it in the sandbox
(:mod:`torchlint.runtime.sandbox`) and attaches a
:class:`~torchlint.diagnostics.Confirmation`: ``confirmed`` (with the
exception PyTorch raised or the effect measured), ``not-reproduced``, or
``could-not-run`` (with the reason). Other findings come back unchanged.

:func:`confirm_claim` confirms a :class:`Claim` — a rule code, a place and the
rule's data — that no finding backs: what tests use to show that a confirmer
does *not* confirm correct code at the place the rule looks.

Code runs only when one of these functions is called; nothing here runs on
import, on open or on save. torch is imported only inside the sandbox.
"""

from __future__ import annotations

import threading
from dataclasses import replace
from collections.abc import Callable, Sequence
from typing import Any

from torchlint.diagnostics import Confirmation, FileReport, Finding
from torchlint.runtime.confirmers import Job, Options, confirmer
from torchlint.runtime.extract import Claim, ExtractionError, ModuleIndex

__all__ = [
    "Claim",
    "DEFAULT_TIMEOUT",
    "confirm_claim",
    "confirm_findings",
    "confirmable",
    "lint_and_confirm",
    "prepare",
    "start_worker",
]

DEFAULT_TIMEOUT = 20.0

# progress(done, total, finding): called before each confirmation starts, and
# once more with done == total when all have finished.
Progress = Callable[[int, int, Finding], None]


def confirmable(finding: Finding) -> bool:
    """Does a rule of this code claim to be confirmable, and is there a confirmer for it?"""
    from torchlint.rules import all_rules

    rule = all_rules().get(finding.code)
    return bool(rule is not None and getattr(rule, "confirmable", False) and confirmer(finding.code) is not None)


HARNESS_MODULE = "torchlint.runtime.confirmers.harness"


def new_worker(device: str = "cpu", *, torchvision: bool = False) -> Any:
    """A sandbox worker (not started) that imports torch and the harness once, before it forks jobs."""
    from torchlint.runtime.sandbox import DEFAULT_PRELOAD, SandboxWorker

    preload = (*DEFAULT_PRELOAD, HARNESS_MODULE)
    if torchvision:
        from torchlint.runtime.confirmers.tl202 import torchvision_available

        if torchvision_available():
            preload += ("torchvision",)
    return SandboxWorker(device=device, preload=preload)


def start_worker(device: str = "cpu", *, torchvision: bool = False) -> Any:
    """A warm sandbox worker for a batch of confirmations or a language server (started now)."""
    worker = new_worker(device, torchvision=torchvision)
    worker.start()
    return worker


def prepare(source: str, path: str, claim: Claim, options: Options = Options(), others: Sequence[Claim] = (),
            index: ModuleIndex | None = None) -> Job | Confirmation:  # fmt: skip
    """Plan the program for a claim; a could-not-run Confirmation when there is none to run."""
    module = confirmer(claim.code)
    if module is None:
        return Confirmation("could-not-run", f"{claim.code} has no runtime confirmation")
    try:
        index = index or ModuleIndex(source, path)
        result = module.prepare(index, claim, options, list(others))
    except ExtractionError as exc:
        return Confirmation("could-not-run", str(exc), {"stage": "extraction"})
    except RecursionError:
        return Confirmation("could-not-run", "the file is too deeply nested to extract", {"stage": "extraction"})
    except Exception as exc:  # noqa: BLE001 - a planner bug must not take the other findings down
        return Confirmation(
            "could-not-run", f"torchlint could not build the program: {type(exc).__name__}: {exc}", {"stage": "extraction"}
        )
    if isinstance(result, Job):
        result.config["timeout"] = options.timeout
    return result


def _run_once(job: Job, options: Options, worker: Any) -> Confirmation:
    result = worker.run(job.code, timeout=options.timeout, memory_mb=job.memory_mb, simulate_cuda=job.simulate_cuda)
    try:
        confirmation = job.interpret(job, result)
    except Exception as exc:  # noqa: BLE001 - a confirmer bug must not lose the other findings
        return Confirmation("could-not-run", f"torchlint could not read the result: {type(exc).__name__}: {exc}")
    return _with_side_effects(confirmation, result)


def _with_side_effects(confirmation: Confirmation, result: Any) -> Confirmation:
    """Whatever the verdict, say what the program tried beyond its scratch space (network, writes)."""
    effects = getattr(result, "side_effects", None)
    if not effects:
        return confirmation
    summary = result.side_effect_summary()
    return replace(
        confirmation,
        evidence=f"{confirmation.evidence} {summary}".strip(),
        detail={**confirmation.detail, "side_effects": list(effects)},
    )


def _run(job: Job, options: Options, worker: Any, source: str = "", path: str = "", others: Sequence[Claim] = ()) -> Confirmation:
    confirmation = _run_once(job, options, worker)
    if confirmation.status == "could-not-run" and "was not reached" in confirmation.evidence and source and not options.force_branches:
        # The line sits under an `if` the run did not take (`if args.pretrained:`): take it.
        forced = replace(options, force_branches=True)
        retry = prepare(source, path, job.claim, forced, others)
        if isinstance(retry, Job) and retry.plan.branches:
            return _run_once(retry, forced, worker)
    return confirmation


def confirm_claim(source: str, path: str, claim: Claim, *, device: str = "cpu", timeout: float = DEFAULT_TIMEOUT,
                  worker: Any = None) -> Confirmation:  # fmt: skip
    """Run one claim (see the module docstring); starts a sandbox when ``worker`` is None."""
    options = Options(device=device, timeout=timeout)
    job = prepare(source, path, claim, options)
    if isinstance(job, Confirmation):
        return job
    if worker is not None:
        return _run(job, options, worker, source, path)
    from torchlint.runtime.sandbox import SandboxError

    try:
        with new_worker(device, torchvision=claim.code == "TL202") as fresh:
            return _run(job, options, fresh, source, path)
    except SandboxError as exc:
        return Confirmation("could-not-run", f"the sandbox could not start: {exc}")


def confirm_findings(
    source: str,
    path: str,
    findings: Sequence[Finding],
    *,
    device: str = "cpu",
    timeout: float = DEFAULT_TIMEOUT,
    worker: Any = None,
    progress: Progress | None = None,
    cancel: threading.Event | None = None,
    context: Sequence[Finding] | None = None,
) -> list[Finding]:
    """The findings, each confirmable one with a :class:`Confirmation` attached.

    One program runs per confirmable finding, each in a fresh fork of one warm
    sandbox worker: ``worker`` when given (a language server keeps its own),
    else one started for this call and stopped at the end. ``timeout`` is per
    finding. ``cancel`` (an Event) stops before the next finding; findings not
    run then come back without a confirmation.

    ``context`` is every finding of the file (default: the file is linted
    again for the rules concerned). A confirmer uses the other findings of its
    rule to get past them: when two ``.next()`` calls are flagged, the second
    is only reached if the first runs as ``next(it)``.
    """
    findings = list(findings)
    todo = [i for i, f in enumerate(findings) if confirmable(f)]
    if not todo:
        return findings
    options = Options(device=device, timeout=timeout)
    try:
        index: ModuleIndex | None = ModuleIndex(source, path)
    except ExtractionError:
        index = None
    claims = {i: Claim.from_finding(findings[i]) for i in todo}
    if context is None:
        context = _all_findings(source, path, {c.code for c in claims.values()} | set(AS_FIXED))
    context_claims = [Claim.from_finding(f) for f in context]
    jobs: dict[int, Job | Confirmation] = {}
    others: dict[int, list[Claim]] = {}
    claim_options: dict[int, Options] = {}
    for i in todo:
        claim = claims[i]
        if index is None:
            jobs[i] = Confirmation("could-not-run", "the file does not parse", {"stage": "extraction"})
            continue
        others[i] = [c for c in context_claims if c.code == claim.code and _place(c) != _place(claim)]
        claim_options[i] = with_passes(options, claim, context_claims)
        jobs[i] = prepare(source, path, claim, claim_options[i], others[i], index=index)

    own_worker = None
    if worker is None and any(isinstance(j, Job) for j in jobs.values()):
        from torchlint.runtime.sandbox import SandboxError

        wants_tv = any(isinstance(j, Job) and j.claim.code == "TL202" for j in jobs.values())
        try:
            own_worker = worker = new_worker(device, torchvision=wants_tv)
        except (SandboxError, ValueError) as exc:
            reason = f"the sandbox could not start: {exc}"
            jobs = {i: (Confirmation("could-not-run", reason) if isinstance(j, Job) else j) for i, j in jobs.items()}
    out = list(findings)
    try:
        for n, i in enumerate(todo):
            if cancel is not None and cancel.is_set():
                break
            if progress is not None:
                progress(n, len(todo), findings[i])
            job = jobs[i]
            confirmation = (
                job if isinstance(job, Confirmation)
                else _run(job, claim_options.get(i, options), worker, source, path, others.get(i, ()))
            )
            out[i] = findings[i].with_confirmation(confirmation)
        if progress is not None:
            progress(len(todo), len(todo), findings[todo[-1]])
    finally:
        if own_worker is not None:
            own_worker.close()
    return out


# Findings of other rules that would stop the program before the flagged code, and how they run
# instead (as their fix would): see confirmers.Options.passes.
AS_FIXED = {"TL201": "next", "TL401": "move"}


def with_passes(options: Options, claim: Claim, context: Sequence[Claim]) -> Options:
    """The options for one claim: the other rules' findings in ``context`` that run as fixed."""
    passes = tuple(
        (c.line, c.column, c.end_line or c.line, c.end_column or 0, AS_FIXED[c.code])
        for c in context
        if c.code in AS_FIXED and c.code != claim.code
    )
    return replace(options, passes=passes) if passes else options


def _place(claim: Claim) -> tuple[int, int, int | None, int | None]:
    return (claim.line, claim.column, claim.end_line, claim.end_column)


def _all_findings(source: str, path: str, codes: set[str]) -> list[Finding]:
    from torchlint.engine import LintOptions, lint_source

    return lint_source(source, path, LintOptions(codes=frozenset(codes))).findings


def lint_and_confirm(source: str, path: str = "<stdin>", *, codes: frozenset[str] | None = None, line: int | None = None,
                     device: str = "cpu", timeout: float = DEFAULT_TIMEOUT, worker: Any = None,
                     progress: Progress | None = None) -> FileReport:  # fmt: skip
    """Lint a file's text and confirm its confirmable findings (only those on ``line`` when given)."""
    from torchlint.engine import LintOptions, lint_source

    report = lint_source(source, path, LintOptions(codes=codes))
    chosen = [f for f in report.findings if line is None or f.range.line <= line <= f.range.end_line]
    confirmed = confirm_findings(source, path, chosen, device=device, timeout=timeout, worker=worker, progress=progress,
                                 context=report.findings)  # fmt: skip
    by_id = {id(f): c for f, c in zip(chosen, confirmed)}
    report.findings = [by_id.get(id(f), f) for f in report.findings]
    return report
