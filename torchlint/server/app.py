"""The torchlint language server: LSP over stdio on pygls 2.

Thin over the analyzer: diagnostics come from :func:`torchlint.engine.lint_source`,
quick fixes from ``Finding.fix``, fix-all from :func:`torchlint.fixes.fix_source`,
noqa comments from :mod:`torchlint.noqa`, hover text from ``Rule.documentation()``
and "Confirm by running" from the runtime checker. No rule logic lives here.

Diagnostics are pushed (``publishDiagnostics``) to every client and, where the
client can pull (``textDocument/diagnostic``), also answered on pull; both come
from the same :class:`Analysis`, so a version's pushed and pulled diagnostics are
identical. ``diagnosticMode: "pull"`` turns the push off for clients that would
show both (see the README, *Language server*).

Concurrency: handlers are ``async``; linting runs in analysis processes so the
event loop keeps reading messages (cancellations, newer edits) while a file is
analysed. Every lint is tagged with the document version it read; a result is
published only if the document is still at that version and the settings have
not changed since, so stale diagnostics never reach the client.
"""

from __future__ import annotations

import argparse
import asyncio
import inspect
import logging
import os
import sys
import threading
import uuid
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from lsprotocol import types as lsp
from pygls.capabilities import get_capability
from pygls.exceptions import FeatureRequestError, JsonRpcException, JsonRpcInvalidParams
from pygls.lsp.server import LanguageServer
from pygls.protocol import LanguageServerProtocol
from pygls.uris import to_fs_path

from torchlint import __version__
from torchlint.diagnostics import Confirmation, FileReport, Finding, Range
from torchlint.engine import LintOptions, lint_source
from torchlint.fixes import fix_is_applicable, fix_source
from torchlint.noqa import noqa_edits
from torchlint.rules import all_rules
from torchlint.rules.base import Rule
from torchlint.server.convert import (
    SOURCE,
    DiagnosticStyle,
    LineIndex,
    diff_edits,
    lsp_range_overlaps,
    notice_diagnostic,
    rule_url,
    text_edits,
    to_diagnostic,
)
from torchlint.server.settings import ClientSettings, FileConfig, ProjectConfigs, parse_settings
from torchlint.server.worker import WorkerDied, WorkerPool
from torchlint.sources import MAX_BYTES

log = logging.getLogger("torchlint.server")

CONFIRM_COMMAND = "torchlint.confirm"
FIX_ALL_COMMAND = "torchlint.fixAll"
FIX_ALL_KIND = "source.fixAll.torchlint"
# "Confirm by running" sits next to the quick fixes of the finding it is about.
CONFIRM_KIND = "quickfix.torchlint.confirm"
PYTHON_SUFFIXES = (".py", ".pyi")


class RequestFailed(JsonRpcException):
    """An LSP ``RequestFailed`` error: the request was valid but could not be done."""

    CODE = -32803


class ContentModified(JsonRpcException):
    """An LSP ``ContentModified`` error: the document changed while the request ran."""

    CODE = -32801


_HANDLED = object()


class TorchlintProtocol(LanguageServerProtocol):
    """pygls' protocol, answering requests whose params do not parse.

    pygls raises while decoding such a message, before it knows the request,
    and never responds: the client would wait forever. Here the request gets an
    ``InvalidParams`` error and the server goes on serving.
    """

    def structure_message(self, data: dict[str, Any]):
        try:
            return super().structure_message(data)
        except JsonRpcException as exc:
            if isinstance(data, dict) and "id" in data and "method" in data:
                method = data.get("method")
                cause = exc.__cause__
                detail = str(cause).splitlines()[0] if cause and str(cause) else type(cause).__name__
                log.warning("malformed %s request: %s", method, detail)
                self._send_response(
                    data["id"],
                    error=lsp.ResponseError(
                        code=JsonRpcInvalidParams.CODE,
                        message=f"torchlint: invalid params for {method!r}: {detail}",
                    ),
                )
                return _HANDLED
            raise

    def handle_message(self, message):
        if message is _HANDLED:
            return
        return super().handle_message(message)


@dataclass
class Analysis:
    """The findings for one version of one document, converted for the client."""

    version: int | None
    source: str
    config: FileConfig
    findings: list[Finding]
    diagnostics: list[lsp.Diagnostic]
    index: LineIndex
    errors: list[str] = field(default_factory=list)
    notice: str | None = None  # the file could not be linted (too large, binary)
    result_id: str = field(default_factory=lambda: uuid.uuid4().hex)
    # Code actions are asked for on every cursor move: noqa edits are computed once.
    noqa: dict[int, list] = field(default_factory=dict)

    def noqa_edits(self, i: int) -> list:
        if i not in self.noqa:
            self.noqa[i] = noqa_edits(self.source, [self.findings[i]])
        return self.noqa[i]


@dataclass
class DocState:
    uri: str
    path: str | None
    task: asyncio.Task | None = None
    seq: int = 0  # lints scheduled so far
    published_seq: int = -1
    analysis: Analysis | None = None
    # Runtime results, valid only for the exact text they were computed on.
    confirmations: dict[tuple[str, Range], Confirmation] = field(default_factory=dict)
    confirmed_source: str | None = None
    logged_errors: set[str] = field(default_factory=set)


class TorchlintServer(LanguageServer):
    def __init__(self, extra_rules: Sequence[type[Rule]] = ()) -> None:
        super().__init__("torchlint", __version__, protocol_cls=TorchlintProtocol, max_workers=4)
        self.extra_rules = tuple(extra_rules)
        self.settings = self.init_settings = ClientSettings()
        self.configs = ProjectConfigs()
        self.docs: dict[str, DocState] = {}
        # How diagnostics reach the client (decided at initialize, see diagnosticMode).
        self.push = True
        self.pull = False
        self.style = DiagnosticStyle()
        self.markdown_hover = True
        self.document_changes = False
        self.resolve_edits = False
        self.refresh_support = False
        self.progress_support = False
        # Linting runs in analysis processes (see worker.py): the event loop never waits for libcst.
        self.pool: WorkerPool | None = WorkerPool(self.extra_rules)
        self._worker_deaths = 0
        # Only used when analysis processes cannot be started.
        self.lint_pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="torchlint-lint")
        self.runtime_pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="torchlint-runtime")
        self.runtime_worker: Any = None
        self._shown: set[str] = set()
        _register(self)

    # --- messages to the user ---

    def log(self, level: lsp.MessageType, message: str) -> None:
        getattr(log, {1: "error", 2: "warning", 3: "info"}.get(int(level), "debug"))(message)
        if int(level) <= int(self.settings.log_threshold):
            self.window_log_message(lsp.LogMessageParams(type=level, message=message))

    def show_once(self, level: lsp.MessageType, message: str) -> None:
        self.log(level, message)
        if message not in self._shown:
            self._shown.add(message)
            self.window_show_message(lsp.ShowMessageParams(type=level, message=message))

    def report_server_error(self, error: Exception, source) -> None:
        # pygls would pop up "Error in server"; the log is the place for it. A
        # failed request needs nothing more: the client has the error response.
        if source is FeatureRequestError:
            return
        try:
            self.log(lsp.MessageType.Error, f"torchlint server: {type(error).__name__}: {error}")
        except Exception:  # the transport itself may be gone
            log.exception("cannot report server error")

    # --- documents ---

    def is_python(self, uri: str, language_id: str | None) -> bool:
        if language_id is not None:
            return language_id == "python"
        return uri.endswith(PYTHON_SUFFIXES)

    def open(self, uri: str) -> DocState:
        st = self.docs.get(uri)
        if st is None:
            path = to_fs_path(uri) if uri.startswith("file:") else None
            st = self.docs[uri] = DocState(uri, path)
        return st

    def current_version(self, uri: str) -> tuple[int | None, str] | None:
        try:
            doc = self.workspace.get_text_document(uri)
        except Exception:
            return None
        return doc.version, doc.source

    def schedule(self, uri: str, delay: float) -> asyncio.Task | None:
        st = self.docs.get(uri)
        if st is None:
            return None
        st.seq += 1
        st.task = asyncio.ensure_future(self._lint(st, st.seq, delay))
        return st.task

    def schedule_all(self) -> None:
        for uri in list(self.docs):
            self.schedule(uri, 0)
        if self.pull and self.refresh_support:
            self.workspace_diagnostic_refresh(None)

    async def _lint(self, st: DocState, seq: int, delay: float) -> Analysis | None:
        if delay > 0:
            await asyncio.sleep(delay)
        if st.seq != seq or self.docs.get(st.uri) is not st:
            return None  # a newer edit restarted the debounce
        if self.configs.changed():
            self.log(lsp.MessageType.Info, "torchlint: configuration file changed; re-linting open files")
            for uri, other in self.docs.items():
                if other is not st:
                    self.schedule(uri, 0)
            if self.pull and self.refresh_support:
                self.workspace_diagnostic_refresh(None)
        current = self.current_version(st.uri)
        if current is None:
            return None
        version, source = current
        config = self.configs.for_file(st.path, self.settings)
        if config.error:
            self.show_once(lsp.MessageType.Warning, f"torchlint: {config.error} (using the default rules until it is fixed)")
        notice = _unlintable(source, st.path or st.uri)
        report: FileReport | None = None
        if notice is None:
            try:
                report = await self.run_job(
                    ("lint", source, st.path or st.uri, config.codes),
                    wanted=lambda: st.seq == seq and self.docs.get(st.uri) is st,
                )
            except Exception as exc:  # the analysis process died, or a bug: one message, the other files go on
                notice = f"could not lint this file: {exc}"
                self.log(lsp.MessageType.Error, f"torchlint: {st.uri}: {notice}")
            else:
                if report is None:
                    return None  # superseded while it ran
        analysis = self._convert(st, version, source, config, report, notice)
        # Only the result for the text the client has now, with today's settings, is shown.
        now = self.current_version(st.uri)
        if self.docs.get(st.uri) is not st or now is None or now[0] != version or now[1] != source:
            return None
        if self.configs.for_file(st.path, self.settings).codes != config.codes:
            return None
        for message in analysis.errors:
            if message not in st.logged_errors:
                st.logged_errors.add(message)
                self.log(lsp.MessageType.Warning, f"torchlint: {message}")
        if analysis.notice:
            self.log(lsp.MessageType.Warning, f"torchlint: {analysis.notice}")
        if seq > st.published_seq:  # an older lint finishing late changes nothing
            st.analysis = analysis
            st.published_seq = seq
            if self.push:
                self.text_document_publish_diagnostics(
                    lsp.PublishDiagnosticsParams(uri=st.uri, diagnostics=analysis.diagnostics, version=version)
                )
        return st.analysis

    async def run_job(self, job: tuple, wanted=lambda: True):
        """Run a lint/fix-all job in an analysis process (in a thread if processes cannot start)."""
        if self.pool is not None:
            try:
                result = await self.pool.run(job, wanted)
            except WorkerDied as exc:
                if self.pool.closed:
                    raise
                # Processes that die again and again (cannot import torchlint, killed by a
                # sandbox) are given up on; one crash on one odd file is not.
                self._worker_deaths += 1
                if self._worker_deaths < 3:
                    raise
                self.log(
                    lsp.MessageType.Error,
                    f"torchlint: analysis processes keep dying ({exc}); linting in the server process from now on",
                )
                self.pool.close()
                self.pool = None
                raise
            self._worker_deaths = 0
            return result
        kind, source, path, codes = job
        options = LintOptions(codes=codes, extra_rules=self.extra_rules)
        if kind == "lint":
            call = lambda: lint_source(source, path, options)  # noqa: E731
        else:
            call = lambda: fix_source(source, lambda s: lint_source(s, path, options).findings, unsafe=False)[0]  # noqa: E731
        return await asyncio.get_running_loop().run_in_executor(self.lint_pool, call)

    def _convert(
        self,
        st: DocState,
        version: int | None,
        source: str,
        config: FileConfig,
        report: FileReport | None,
        notice: str | None,
    ) -> Analysis:
        index = LineIndex(source, self.workspace.position_encoding or lsp.PositionEncodingKind.Utf16)
        if report is None:
            diagnostic = notice_diagnostic(f"torchlint: {notice}", lsp.DiagnosticSeverity.Warning)
            return Analysis(version, source, config, [], [diagnostic], index, notice=notice)
        findings = report.findings
        if st.confirmed_source == source and st.confirmations:
            findings = [
                f.with_confirmation(st.confirmations[(f.code, f.range)]) if (f.code, f.range) in st.confirmations else f
                for f in findings
            ]
        diagnostics = [to_diagnostic(f, index, st.uri, self.style) for f in findings]
        return Analysis(version, source, config, findings, diagnostics, index, errors=list(report.errors))

    async def analysis_for(self, uri: str) -> Analysis | None:
        """The analysis of the document as it is now (waits for a pending lint)."""
        st = self.docs.get(uri)
        if st is None:
            return None
        for _ in range(20):
            current = self.current_version(uri)
            if current is None:
                return None
            a = st.analysis
            if (
                a is not None
                and a.version == current[0]
                and a.source == current[1]
                and a.config.codes == self.configs.for_file(st.path, self.settings).codes
            ):
                return a
            task = st.task
            if task is None or task.done():
                task = self.schedule(uri, 0)
            await asyncio.shield(task)  # type: ignore[arg-type]
        return st.analysis

    def close(self, uri: str) -> None:
        st = self.docs.pop(uri, None)
        if st is not None and self.push:
            self.text_document_publish_diagnostics(lsp.PublishDiagnosticsParams(uri=uri, diagnostics=[]))

    # --- rules ---

    def rule(self, code: str) -> type[Rule] | None:
        for cls in self.extra_rules:
            if cls.code == code:
                return cls
        return all_rules().get(code)

    # --- edits ---

    def workspace_edit(self, uri: str, version: int | None, edits: list[lsp.TextEdit]) -> lsp.WorkspaceEdit:
        if self.document_changes:
            return lsp.WorkspaceEdit(
                document_changes=[
                    lsp.TextDocumentEdit(
                        text_document=lsp.OptionalVersionedTextDocumentIdentifier(uri=uri, version=version),
                        edits=edits,
                    )
                ]
            )
        return lsp.WorkspaceEdit(changes={uri: edits})

    async def fix_all_edit(self, st: DocState, a: Analysis) -> lsp.WorkspaceEdit | None:
        if not any(fix_is_applicable(f.fix, unsafe=False) for f in a.findings):
            return None
        fixed = await self.run_job(("fix_all", a.source, st.path or st.uri, a.config.codes))
        if fixed is None or fixed == a.source:
            return None
        return self.workspace_edit(st.uri, a.version, diff_edits(a.source, fixed, a.index))

    async def fix_all(self, args: Sequence[Any]) -> dict[str, Any]:
        """``torchlint.fixAll``: the ``source.fixAll.torchlint`` edit, sent as ``workspace/applyEdit``."""
        target = args[0] if args else None
        if isinstance(target, dict):
            uri, version = target.get("uri"), target.get("version")
        else:
            uri, version = target, args[1] if len(args) > 1 else None
        if not isinstance(uri, str) or (version is not None and (not isinstance(version, int) or isinstance(version, bool))):
            raise JsonRpcInvalidParams(f"torchlint: {FIX_ALL_COMMAND} expects [uri] or [uri, version]")
        st = self.docs.get(uri)
        if st is None:
            raise RequestFailed(f"torchlint: {uri} is not an open Python document")
        if not get_capability(self.client_capabilities, "workspace.apply_edit", False):
            raise RequestFailed(
                f"torchlint: this client cannot apply workspace edits; use the {FIX_ALL_KIND} code action instead"
            )
        a = await self.analysis_for(uri)
        if a is None:
            raise RequestFailed(f"torchlint: {uri} was closed")
        if version is not None and version != a.version:
            raise ContentModified(f"torchlint: {uri} is at version {a.version}, not {version}")
        # What the client is told was fixed: the findings with a safe fix in the analysed version.
        fixable = sum(1 for f in a.findings if fix_is_applicable(f.fix, unsafe=False))
        edit = await self.fix_all_edit(st, a)
        if edit is None:
            return {"applied": False, "fixed": 0, "message": "nothing to fix"}
        # An unversioned edit computed on older text would corrupt the newer one.
        if self.docs.get(uri) is not st or self.current_version(uri) != (a.version, a.source):
            raise ContentModified(f"torchlint: {uri} changed while the fixes were computed; run it again")
        result = await self.workspace_apply_edit_async(
            lsp.ApplyWorkspaceEditParams(edit=edit, label="torchlint: fix all auto-fixable problems")
        )
        if not result.applied:
            reason = result.failure_reason or "the editor did not apply the edit"
            return {"applied": False, "fixed": 0, "message": f"not applied: {reason}"}
        return {"applied": True, "fixed": fixable, "message": f"fixed {fixable} problem{'s' if fixable != 1 else ''}"}

    # --- runtime confirmation ---

    def _confirmable(self, f: Finding) -> bool:
        rule = self.rule(f.code)
        if rule is None or not getattr(rule, "confirmable", False):
            return False
        if f.code in {r.code for r in self.extra_rules}:
            return True
        try:  # the runtime also needs a confirmer for the rule
            from torchlint.runtime.confirm import confirmable
        except ImportError:
            return True
        return confirmable(f)

    async def confirm(self, args: Sequence[Any]) -> dict[str, Any]:
        if not self.settings.runtime_enabled:
            raise RequestFailed(
                "torchlint: confirming by running is off; enable it with the setting `runtime.enabled = true`"
            )
        target = args[0] if args else None
        if isinstance(target, str):
            target = {"uri": target}
        if not isinstance(target, dict) or not isinstance(target.get("uri"), str):
            raise JsonRpcInvalidParams(
                f'torchlint: {CONFIRM_COMMAND} expects [{{"uri": ..., "code"?: ..., "line"?: ..., "column"?: ...}}]'
            )
        uri = target["uri"]
        st = self.docs.get(uri)
        if st is None:
            raise RequestFailed(f"torchlint: {uri} is not open")
        try:
            from torchlint import runtime
            confirm_findings = runtime.confirm_findings
        except (ImportError, AttributeError) as exc:
            raise RequestFailed(
                "torchlint: the runtime checker is not available in this installation "
                f"(torchlint.runtime.confirm_findings: {exc}); install torchlint with the `runtime` extra"
            ) from None
        a = await self.analysis_for(uri)
        if a is None:
            raise RequestFailed(f"torchlint: {uri} has no analysis")
        selected = [
            f
            for f in a.findings
            if self._confirmable(f)
            and (target.get("code") in (None, f.code))
            and (target.get("line") in (None, f.range.line))
            and (target.get("column") in (None, f.range.column))
        ]
        if not selected:
            return {"confirmed": 0, "notReproduced": 0, "couldNotRun": 0, "message": "nothing to confirm"}

        token: str | None = None
        cancel = threading.Event()
        if self.progress_support:
            token = f"torchlint-confirm-{uuid.uuid4().hex}"
            try:
                await self.work_done_progress.create_async(token)
                self.work_done_progress.begin(
                    token,
                    lsp.WorkDoneProgressBegin(
                        title="torchlint: confirming by running",
                        message=f"{len(selected)} finding{'s' if len(selected) != 1 else ''}",
                        cancellable=True,
                    ),
                )
                fut = self.work_done_progress.tokens.get(token)
                if fut is not None:
                    fut.add_done_callback(lambda f: cancel.set() if f.cancelled() else None)
            except Exception as exc:
                self.log(lsp.MessageType.Info, f"torchlint: no progress reporting: {exc}")
                token = None

        loop = asyncio.get_running_loop()

        def report(done: int, total: int, finding: Finding) -> None:
            # Called on the runtime thread: messages are written from the event loop only.
            if token and done < total:
                message = f"{finding.code} at line {finding.range.line} ({done + 1}/{total})"
                percentage = int(100 * done / max(total, 1))
                loop.call_soon_threadsafe(
                    self.work_done_progress.report,
                    token,
                    lsp.WorkDoneProgressReport(message=message, percentage=percentage, cancellable=True),
                )

        def run() -> list[Finding]:
            if self.runtime_worker is None and hasattr(runtime, "start_worker"):
                # One warm sandbox for the session: torch is imported once, each confirmation forks it.
                self.runtime_worker = _start_runtime_worker(runtime.start_worker)
            kwargs: dict[str, Any] = {"worker": self.runtime_worker}
            accepted = inspect.signature(confirm_findings).parameters
            if "cancel" in accepted:
                kwargs["cancel"] = cancel
            if "progress" in accepted:
                kwargs["progress"] = report
            if "context" in accepted:
                kwargs["context"] = a.findings  # every finding of the file: no second lint
            return list(confirm_findings(a.source, st.path or st.uri, selected, **kwargs))

        try:
            results = await asyncio.get_running_loop().run_in_executor(self.runtime_pool, run)
        except asyncio.CancelledError:
            cancel.set()  # the request was cancelled: stop before the next finding
            if token:
                self.work_done_progress.end(token, lsp.WorkDoneProgressEnd(message="cancelled"))
            raise
        except Exception as exc:
            if token:
                self.work_done_progress.end(token, lsp.WorkDoneProgressEnd(message=f"failed: {exc}"))
            raise RequestFailed(f"torchlint: the runtime checker failed: {type(exc).__name__}: {exc}") from None
        counts = {"confirmed": 0, "not-reproduced": 0, "could-not-run": 0}
        if st.confirmed_source != a.source:
            st.confirmations = {}
            st.confirmed_source = a.source
        for f in results:
            if f.confirmation is not None:
                st.confirmations[(f.code, f.range)] = f.confirmation
                counts[f.confirmation.status] = counts.get(f.confirmation.status, 0) + 1
        summary = ", ".join(f"{n} {k.replace('-', ' ')}" for k, n in counts.items() if n) or "no result"
        if token:
            self.work_done_progress.end(token, lsp.WorkDoneProgressEnd(message=summary))
        # Show the evidence: a fresh analysis picks the confirmations up.
        task = self.schedule(uri, 0)
        if task is not None:
            await asyncio.shield(task)
        if self.pull and self.refresh_support:
            self.workspace_diagnostic_refresh(None)
        return {
            "confirmed": counts["confirmed"],
            "notReproduced": counts["not-reproduced"],
            "couldNotRun": counts["could-not-run"],
            "message": summary,
        }

    def shutdown_runtime(self) -> None:
        worker, self.runtime_worker = self.runtime_worker, None
        if worker is not None and hasattr(worker, "close"):
            try:
                worker.close()
            except Exception:
                log.exception("closing the runtime worker")


def _start_runtime_worker(start: Any) -> Any:
    try:
        # torchvision preloaded too when it is installed (TL202 confirmations need it).
        return start(torchvision=True)
    except TypeError:
        return start()


def _unlintable(source: str, path: str) -> str | None:
    """The same limits as files read from disk (torchlint.sources)."""
    if len(source) * 4 > MAX_BYTES and len(source.encode("utf-8", "surrogatepass")) > MAX_BYTES:
        size = len(source.encode("utf-8", "surrogatepass")) / 1e6
        return f"file is too large to lint ({size:.1f} MB > {MAX_BYTES // 1_000_000} MB); torchlint skipped it"
    if "\x00" in source[:8192]:
        return "binary content (contains NUL bytes), not Python source; torchlint skipped it"
    return None


def _kind_wanted(kind: str, only: Sequence[str] | None) -> bool:
    return only is None or any(kind == o or kind.startswith(o + ".") for o in only)


def _same_diagnostic(d: lsp.Diagnostic, other: lsp.Diagnostic) -> bool:
    return d.code == other.code and d.range == other.range and (other.source in (None, SOURCE))


def _register(ls: TorchlintServer) -> None:
    @ls.feature(lsp.INITIALIZE)
    def initialize(ls: TorchlintServer, params: lsp.InitializeParams) -> None:
        caps = params.capabilities
        ls.settings = ls.init_settings = parse_settings(params.initialization_options)
        mode = ls.settings.diagnostic_mode
        can_pull = get_capability(caps, "text_document.diagnostic") is not None
        # Every client is pushed to (some that declare pull never ask); one that can
        # pull is answered too. "pull" is the opt-out for clients that would show
        # both (Neovim and vscode-languageclient keep them apart).
        ls.push = mode != "pull"
        ls.pull = mode == "pull" or (mode == "auto" and can_pull)
        if ls.pull:
            ls.feature(
                lsp.TEXT_DOCUMENT_DIAGNOSTIC,
                lsp.DiagnosticOptions(identifier="torchlint", inter_file_dependencies=False, workspace_diagnostics=False),
            )(_pull_diagnostics)
        ls.style = _diagnostic_style(caps, ls.push, ls.pull)
        formats = get_capability(caps, "text_document.hover.content_format", None)
        ls.markdown_hover = formats is None or lsp.MarkupKind.Markdown in formats
        ls.document_changes = bool(get_capability(caps, "workspace.workspace_edit.document_changes", False))
        ls.resolve_edits = "edit" in (get_capability(caps, "text_document.code_action.resolve_support.properties", []) or [])
        ls.refresh_support = bool(get_capability(caps, "workspace.diagnostics.refresh_support", False))
        ls.progress_support = bool(get_capability(caps, "window.work_done_progress", False))
        if ls.pool is not None:
            try:
                ls.pool.warm_up()
            except Exception as exc:  # e.g. a sandbox that forbids processes
                log.warning("cannot start analysis processes (%s); linting in the server process", exc)
                ls.pool = None

    @ls.feature(lsp.INITIALIZED)
    async def initialized(ls: TorchlintServer, params: lsp.InitializedParams) -> None:
        caps = ls.client_capabilities
        for problem in ls.settings.problems:
            ls.show_once(lsp.MessageType.Warning, f"torchlint: {problem}")
        if ls.pull and get_capability(caps, "text_document.diagnostic") is None:
            ls.show_once(
                lsp.MessageType.Warning,
                'torchlint: diagnosticMode is "pull" but this client does not pull diagnostics; it may show none',
            )
        delivery = " and ".join(name for name, on in (("push", ls.push), ("pull", ls.pull)) if on)
        ls.log(
            lsp.MessageType.Info,
            f"torchlint {__version__}: {delivery} diagnostics, positions in {ls.workspace.position_encoding}",
        )
        if get_capability(caps, "workspace.did_change_watched_files.dynamic_registration", False):
            try:
                await ls.client_register_capability_async(
                    lsp.RegistrationParams(
                        registrations=[
                            lsp.Registration(
                                id="torchlint-config-watch",
                                method=lsp.WORKSPACE_DID_CHANGE_WATCHED_FILES,
                                register_options=lsp.DidChangeWatchedFilesRegistrationOptions(
                                    watchers=[lsp.FileSystemWatcher(glob_pattern="**/pyproject.toml")]
                                ),
                            )
                        ]
                    )
                )
            except Exception as exc:
                ls.log(lsp.MessageType.Info, f"torchlint: cannot watch pyproject.toml files: {exc}")

    @ls.feature(lsp.TEXT_DOCUMENT_DID_OPEN)
    def did_open(ls: TorchlintServer, params: lsp.DidOpenTextDocumentParams) -> None:
        doc = params.text_document
        if not ls.is_python(doc.uri, doc.language_id):
            return
        ls.open(doc.uri)
        ls.schedule(doc.uri, 0)

    @ls.feature(lsp.TEXT_DOCUMENT_DID_CHANGE)
    def did_change(ls: TorchlintServer, params: lsp.DidChangeTextDocumentParams) -> None:
        if params.text_document.uri in ls.docs:
            ls.schedule(params.text_document.uri, ls.settings.debounce_ms / 1000)

    @ls.feature(lsp.TEXT_DOCUMENT_DID_SAVE)
    def did_save(ls: TorchlintServer, params: lsp.DidSaveTextDocumentParams) -> None:
        # A save is also when a pyproject.toml edited beside the code is looked at again.
        if ls.configs.changed():
            ls.schedule_all()
        elif params.text_document.uri in ls.docs:
            ls.schedule(params.text_document.uri, 0)

    @ls.feature(lsp.TEXT_DOCUMENT_DID_CLOSE)
    def did_close(ls: TorchlintServer, params: lsp.DidCloseTextDocumentParams) -> None:
        ls.close(params.text_document.uri)

    @ls.feature(lsp.WORKSPACE_DID_CHANGE_CONFIGURATION)
    async def did_change_configuration(ls: TorchlintServer, params: lsp.DidChangeConfigurationParams) -> None:
        raw = params.settings
        if not raw and get_capability(ls.client_capabilities, "workspace.configuration", False):
            try:
                raw = (await ls.workspace_configuration_async(
                    lsp.ConfigurationParams(items=[lsp.ConfigurationItem(section="torchlint")])
                ))[0]
            except Exception as exc:
                ls.log(lsp.MessageType.Warning, f"torchlint: cannot read the client's settings: {exc}")
                return
        old = ls.settings
        # The client sends its whole configuration: what it leaves out falls back to
        # the initializationOptions, not to whatever was set before.
        new = parse_settings(raw, ls.init_settings)
        for problem in new.problems:
            ls.show_once(lsp.MessageType.Warning, f"torchlint: {problem}")
        ls.settings = new
        if (new.select, new.ignore) != (old.select, old.ignore):
            ls.log(lsp.MessageType.Info, "torchlint: settings changed; re-linting open files")
            ls.schedule_all()

    @ls.feature(lsp.WORKSPACE_DID_CHANGE_WATCHED_FILES)
    def did_change_watched_files(ls: TorchlintServer, params: lsp.DidChangeWatchedFilesParams) -> None:
        ls.configs.reset()
        ls.schedule_all()

    @ls.feature(
        lsp.TEXT_DOCUMENT_CODE_ACTION,
        lsp.CodeActionOptions(
            code_action_kinds=[lsp.CodeActionKind.QuickFix, lsp.CodeActionKind.SourceFixAll, FIX_ALL_KIND, CONFIRM_KIND],
            resolve_provider=True,
        ),
    )
    async def code_action(ls: TorchlintServer, params: lsp.CodeActionParams) -> list[lsp.CodeAction] | None:
        uri = params.text_document.uri
        st = ls.docs.get(uri)
        if st is None:
            return None
        a = await ls.analysis_for(uri)
        if a is None:
            return None
        only = params.context.only
        actions: list[lsp.CodeAction] = []
        context = list(params.context.diagnostics or ())
        here = [
            (i, f, d)
            for i, (f, d) in enumerate(zip(a.findings, a.diagnostics))
            if lsp_range_overlaps(d.range, params.range) or any(_same_diagnostic(d, c) for c in context)
        ]
        if _kind_wanted(lsp.CodeActionKind.QuickFix, only):
            for _, f, d in here:
                if f.fix is not None:
                    unsafe = f.fix.applicability == "unsafe"
                    actions.append(
                        lsp.CodeAction(
                            title=f"{f.code}: {f.fix.message}" + (" (unsafe fix: review the change)" if unsafe else ""),
                            kind=lsp.CodeActionKind.QuickFix,
                            diagnostics=[d],
                            is_preferred=not unsafe,
                            edit=ls.workspace_edit(uri, a.version, text_edits(f.fix.edits, a.index)),
                        )
                    )
            for i, f, d in here:
                edits = a.noqa_edits(i)
                if edits:
                    actions.append(
                        lsp.CodeAction(
                            title=f"Disable {f.code} for this line",
                            kind=lsp.CodeActionKind.QuickFix,
                            diagnostics=[d],
                            edit=ls.workspace_edit(uri, a.version, text_edits(edits, a.index)),
                        )
                    )
        if ls.settings.runtime_enabled and _kind_wanted(CONFIRM_KIND, only):
            for _, f, d in here:
                if ls._confirmable(f):
                    arg = {"uri": uri, "code": f.code, "line": f.range.line, "column": f.range.column}
                    actions.append(
                        lsp.CodeAction(
                            title=f"Confirm {f.code} by running the code",
                            kind=CONFIRM_KIND,
                            diagnostics=[d],
                            command=lsp.Command(title=f"Confirm {f.code} by running", command=CONFIRM_COMMAND, arguments=[arg]),
                        )
                    )
        explicit_fix_all = only is not None and _kind_wanted(FIX_ALL_KIND, only)
        if explicit_fix_all or (only is None and ls.resolve_edits):
            if any(fix_is_applicable(f.fix, unsafe=False) for f in a.findings):
                action = lsp.CodeAction(
                    title="torchlint: fix all auto-fixable problems",
                    kind=FIX_ALL_KIND,
                    data={"uri": uri, "version": a.version, "fixAll": True},
                )
                if explicit_fix_all or not ls.resolve_edits:
                    action.edit = await ls.fix_all_edit(st, a)
                    if action.edit is None:
                        action = None
                if action is not None:
                    actions.append(action)
        return actions or None

    @ls.feature(lsp.CODE_ACTION_RESOLVE)
    async def code_action_resolve(ls: TorchlintServer, action: lsp.CodeAction) -> lsp.CodeAction:
        data = action.data if isinstance(action.data, dict) else {}
        if not data.get("fixAll") or action.edit is not None:
            return action
        uri = data.get("uri")
        st = ls.docs.get(uri) if isinstance(uri, str) else None
        if st is None:
            return action
        a = await ls.analysis_for(uri)
        if a is not None:
            action.edit = await ls.fix_all_edit(st, a) or lsp.WorkspaceEdit(changes={})
        return action

    @ls.feature(lsp.TEXT_DOCUMENT_HOVER)
    async def hover(ls: TorchlintServer, params: lsp.HoverParams) -> lsp.Hover | None:
        if params.text_document.uri not in ls.docs:
            return None
        a = await ls.analysis_for(params.text_document.uri)
        if a is None:
            return None
        pos = (params.position.line, params.position.character)
        parts: list[str] = []
        for f, d in zip(a.findings, a.diagnostics):
            if (d.range.start.line, d.range.start.character) <= pos <= (d.range.end.line, d.range.end.character):
                parts.append(_hover_text(ls, f, markdown=ls.markdown_hover))
        if not parts:
            return None
        sep = "\n\n---\n\n" if ls.markdown_hover else "\n\n"
        kind = lsp.MarkupKind.Markdown if ls.markdown_hover else lsp.MarkupKind.PlainText
        return lsp.Hover(contents=lsp.MarkupContent(kind=kind, value=sep.join(parts)))

    @ls.command(CONFIRM_COMMAND)
    async def confirm_command(ls: TorchlintServer, *args: Any) -> dict[str, Any]:
        return await ls.confirm(args)

    @ls.command(FIX_ALL_COMMAND)
    async def fix_all_command(ls: TorchlintServer, *args: Any) -> dict[str, Any]:
        return await ls.fix_all(args)

    @ls.feature(lsp.SHUTDOWN)
    def shutdown(ls: TorchlintServer, params: None) -> None:
        ls.shutdown_runtime()
        if ls.pool is not None:
            ls.pool.close()
        ls.lint_pool.shutdown(wait=False, cancel_futures=True)
        ls.runtime_pool.shutdown(wait=False, cancel_futures=True)


async def _pull_diagnostics(ls: TorchlintServer, params: lsp.DocumentDiagnosticParams) -> lsp.DocumentDiagnosticReport:
    uri = params.text_document.uri
    if uri not in ls.docs:
        return lsp.RelatedFullDocumentDiagnosticReport(items=[])
    a = await ls.analysis_for(uri)
    if a is None:
        return lsp.RelatedFullDocumentDiagnosticReport(items=[])
    if params.previous_result_id == a.result_id:
        return lsp.RelatedUnchangedDocumentDiagnosticReport(result_id=a.result_id)
    return lsp.RelatedFullDocumentDiagnosticReport(items=a.diagnostics, result_id=a.result_id)


def _diagnostic_style(caps: lsp.ClientCapabilities, push: bool, pull: bool) -> DiagnosticStyle:
    """What every enabled delivery can show: pushed and pulled diagnostics are the same objects."""
    publish = (
        get_capability(caps, "text_document.publish_diagnostics.related_information", False),
        get_capability(caps, "text_document.publish_diagnostics.tag_support.value_set", []) or [],
        get_capability(caps, "text_document.publish_diagnostics.code_description_support", True) is not False,
    )
    styles = [publish] if push else []
    if pull:
        # Pull capabilities grew these fields late; a client that leaves them out gets the publish ones.
        related = get_capability(caps, "text_document.diagnostic.related_information", None)
        pull_tags = get_capability(caps, "text_document.diagnostic.tag_support.value_set", None)
        code_description = get_capability(caps, "text_document.diagnostic.code_description_support", None)
        styles.append(
            (
                publish[0] if related is None else related,
                publish[1] if pull_tags is None else pull_tags,
                publish[2] if code_description is None else code_description is not False,
            )
        )
    tags = set.intersection(*({int(t) for t in s[1]} for s in styles))
    return DiagnosticStyle(all(bool(s[0]) for s in styles), sorted(tags), all(s[2] for s in styles))


def _hover_text(ls: TorchlintServer, f: Finding, markdown: bool) -> str:
    rule = ls.rule(f.code)
    docs = rule.documentation() if rule is not None else ""
    url = rule_url(f.code)
    if markdown:
        head = f"**{f.code}** `{f.name}`: {f.message}"
        if f.confirmation is not None:
            head += f"\n\n*Runtime:* {f.confirmation.status}: {f.confirmation.evidence}"
        return f"{head}\n\n{docs}\n\n[Documentation for {f.code}]({url})".strip()
    head = f"{f.code} {f.name}: {f.message}"
    if f.confirmation is not None:
        head += f"\nRuntime: {f.confirmation.status}: {f.confirmation.evidence}"
    return f"{head}\n\n{docs}\n\n{url}"


def _python_level(level: str) -> int:
    return {"error": logging.ERROR, "warning": logging.WARNING, "warn": logging.WARNING, "info": logging.INFO}.get(
        level, logging.DEBUG
    )


def create_server(extra_rules: Iterable[type[Rule]] = ()) -> TorchlintServer:
    return TorchlintServer(tuple(extra_rules))


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--stdio", action="store_true", help="use stdin/stdout (the default; accepted for editors that pass it)")
    parser.add_argument(
        "--log-level",
        choices=("error", "warning", "info", "debug"),
        default="warning",
        help="what the server writes to stderr (default: warning); clients set what reaches them with the logLevel setting",
    )


def serve(args: argparse.Namespace, extra_rules: Iterable[type[Rule]] = ()) -> int:
    """Serve LSP on stdin/stdout until the client says exit (or goes away)."""
    logging.basicConfig(stream=sys.stderr, level=_python_level(args.log_level), format="torchlint server %(levelname)s: %(message)s")
    # Failed requests are answered with an error response and problems outside
    # requests go to report_server_error: pygls' own tracebacks are only for debugging.
    logging.getLogger("pygls").setLevel(logging.CRITICAL if args.log_level in ("error", "warning") else _python_level(args.log_level))
    server = create_server(extra_rules)
    # The LSP streams get private descriptors; fd 0 becomes /dev/null and fd 1 stderr, so
    # that nothing printed by accident (a rule, a library, a child process such as the
    # runtime's sandbox) can corrupt the protocol or swallow the client's messages.
    lsp_in = os.fdopen(os.dup(0), "rb")  # buffered: read(n) returns n bytes, as pygls expects
    lsp_out = os.fdopen(os.dup(1), "wb")
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    os.close(devnull)
    sys.stdout.flush()
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    server.start_io(lsp_in, lsp_out)
    # The client said exit: a lint still running in a worker thread is of no use
    # to anyone, and waiting for it (interpreter shutdown joins pool threads)
    # could keep the editor waiting for seconds.
    server.shutdown_runtime()
    if server.pool is not None:
        server.pool.close()
    sys.stderr.flush()
    os._exit(0 if server.protocol._shutdown else 1)


def main(argv: Sequence[str] | None = None, *, extra_rules: Iterable[type[Rule]] = ()) -> int:
    """``torchlint server``: serve LSP over stdin/stdout until the client says exit."""
    parser = argparse.ArgumentParser(
        prog="torchlint server",
        description="Run the torchlint language server (LSP over stdin/stdout).",
    )
    add_arguments(parser)
    return serve(parser.parse_args(list(argv) if argv is not None else None), extra_rules)
