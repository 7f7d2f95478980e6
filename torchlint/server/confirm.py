"""The server's side of "Confirm by running": which runtime, which findings, and the tally.

The language server talks to the runtime checker through :class:`Runtime` only,
so a test (or an embedding that runs confirmations elsewhere) hands the server
its own implementation instead of patching modules.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from typing import Any, Protocol

from torchlint.diagnostics import Finding

CONFIRM_COMMAND = "torchlint.confirm"

# progress(done, total, finding), as torchlint.runtime.confirm_findings calls it.
Progress = Callable[[int, int, Finding], None]


class RuntimeUnavailable(Exception):
    """This installation cannot run code (the runtime checker is missing)."""


class Runtime(Protocol):
    def confirmable(self, finding: Finding) -> bool:
        """Is there a confirmer for this finding's rule?"""

    def confirm(
        self,
        source: str,
        path: str,
        findings: Sequence[Finding],
        *,
        cancel: threading.Event,
        progress: Progress,
        context: Sequence[Finding],
        language: str = "python",
    ) -> list[Finding]:
        """The findings with a Confirmation attached (blocking: called on a worker thread).

        For a document (``language`` "markdown", "rst" or "notebook"; the keyword is only passed then),
        ``source`` is its text (a notebook's JSON) and the findings are in its coordinates (cell, line)."""

    def close(self) -> None: ...


class SandboxRuntime:
    """torchlint.runtime: one warm sandbox for the session, started on the first confirmation."""

    def __init__(self, extra_codes: frozenset[str] = frozenset()) -> None:
        # Plugin rules that say they are confirmable bring their own confirmer.
        self._extra_codes = extra_codes
        self._worker: Any = None
        self._lock = threading.Lock()

    def confirmable(self, finding: Finding) -> bool:
        if finding.code in self._extra_codes:
            return True
        try:
            from torchlint.runtime.confirm import confirmable
        except ImportError:
            return True  # confirm() then says what is missing
        return confirmable(finding)

    def confirm(self, source, path, findings, *, cancel, progress, context, language="python"):
        try:
            from torchlint.runtime.confirm import confirm_findings, start_worker
            from torchlint.runtime.documents import confirm_document
        except ImportError as exc:
            raise RuntimeUnavailable(
                "the runtime checker is not available in this installation "
                f"({exc}); install torchlint with the `runtime` extra"
            ) from None
        with self._lock:
            if self._worker is None:
                # torch is imported once; each confirmation forks the warm worker.
                # torchvision is preloaded when installed (TL202 confirmations need it).
                self._worker = start_worker(torchvision=True)
            worker = self._worker
        if language != "python":
            # A notebook or Markdown buffer: its cells/blocks run as one program, as `check --confirm` runs them.
            return confirm_document(source, path, findings, language=language, worker=worker, cancel=cancel, progress=progress)
        return list(
            confirm_findings(source, path, findings, worker=worker, cancel=cancel, progress=progress, context=context)
        )

    def close(self) -> None:
        with self._lock:
            worker, self._worker = self._worker, None
        if worker is not None:
            worker.close()


def parse_target(args: Sequence[Any]) -> dict[str, Any] | None:
    """``[uri]`` or ``[{"uri", "code"?, "line"?, "column"?}]``; None when malformed."""
    target = args[0] if args else None
    if isinstance(target, str):
        target = {"uri": target}
    if not isinstance(target, dict) or not isinstance(target.get("uri"), str):
        return None
    return target


def matches(target: dict[str, Any], f: Finding) -> bool:
    return (
        target.get("code") in (None, f.code)
        and target.get("line") in (None, f.range.line)
        and target.get("column") in (None, f.range.column)
    )


def tally(results: Sequence[Finding]) -> dict[str, Any]:
    """The command's answer: how many findings were confirmed, not reproduced, could not run."""
    counts = {"confirmed": 0, "not-reproduced": 0, "could-not-run": 0}
    for f in results:
        if f.confirmation is not None:
            counts[f.confirmation.status] = counts.get(f.confirmation.status, 0) + 1
    summary = ", ".join(f"{n} {k.replace('-', ' ')}" for k, n in counts.items() if n) or "no result"
    return {
        "confirmed": counts["confirmed"],
        "notReproduced": counts["not-reproduced"],
        "couldNotRun": counts["could-not-run"],
        "message": summary,
    }
