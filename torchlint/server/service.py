"""The language server's service: documents, linting, fix-all, confirm and settings, with no transport.

:class:`TorchlintService` is what every LSP handler (handlers.py) delegates to.
It talks to the editor only through a :class:`Client` (publish, log, show,
apply an edit, progress) and reads document text through :class:`Documents`,
so it runs, and is tested, without pygls or a stream: the language server
(app.py) provides both from pygls.

Diagnostics are pushed (``publish``) and, where the client can pull, also
answered on pull; both come from the same :class:`Analysis`, so a version's
pushed and pulled diagnostics are identical.

Every lint is tagged with the document version it read; a result is published
only if the document is still at that version and the settings have not changed
since, and only if no later lint of that document has been published: stale
diagnostics never reach the client.
"""

from __future__ import annotations

import asyncio
import logging
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from lsprotocol import types as lsp
from pygls.uris import to_fs_path

from torchlint import __version__
from torchlint.diagnostics import Confirmation, FileReport, Finding, Range
from torchlint.server.notebooks import Notebooks
from torchlint.server.worker import NOTEBOOK_JOBS, run_notebook_job

from torchlint.fixes import fix_is_applicable, fix_source
from torchlint.noqa import noqa_edits
from torchlint.server import confirm as confirming
from torchlint.server.confirm import CONFIRM_COMMAND, Runtime, RuntimeUnavailable, SandboxRuntime
from torchlint.server.convert import (
    SOURCE,
    DiagnosticStyle,
    LineIndex,
    diff_edits,
    lsp_range_overlaps,
    notice_diagnostic,
    rule_url,
    set_rule_urls,
    text_edits,
    to_diagnostic,
)
from torchlint.server.settings import ClientSettings, FileConfig, ProjectConfigs, parse_settings
from torchlint.config import resolved
from torchlint.server.worker import CannotStart, PluginFailure, WorkerDied, WorkerPool
from torchlint.sources import MAX_BYTES, too_large

if TYPE_CHECKING:
    from torchlint.rules.base import Rule

# Nothing here imports libcst, the engine or the rules at import time (a quarter of a
# second and more): `initialize` is answered first, and the analysis processes import
# the engine themselves.

log = logging.getLogger("torchlint.server")

# Markdown buffers are linted when the client sends them (VS Code: torchlint.lintMarkdown; Neovim: opt-in).
MARKDOWN_LANGUAGE_IDS = frozenset({"markdown", "quarto", "myst", "mdx"})
MARKDOWN_SUFFIXES = (".md", ".markdown", ".qmd")

FIX_ALL_COMMAND = "torchlint.fixAll"
FIX_ALL_KIND = "source.fixAll.torchlint"
# "Confirm by running" sits next to the quick fixes of the finding it is about.
CONFIRM_KIND = "quickfix.torchlint.confirm"
PYTHON_SUFFIXES = (".py", ".pyi")
# Adaptive debounce: an edit after this long a pause is linted at once (the user stopped
# typing to look); otherwise the wait is about what a lint of this file takes, at least
# MIN_DEBOUNCE_S and at most the debounceMs setting.
PAUSE_S = 1.0
MIN_DEBOUNCE_S = 0.02


# --- errors a request can end with (the server turns them into JSON-RPC errors) ---


class ServiceError(Exception):
    code = -32603


class InvalidParams(ServiceError):
    code = -32602


class RequestFailed(ServiceError):
    """The request was valid but could not be done."""

    code = -32803


class ContentModified(ServiceError):
    """The document changed while the request ran."""

    code = -32801


# --- what the service needs from its host ---


class Client(Protocol):
    """The editor, as the service sees it (app.TorchlintServer implements it over LSP)."""

    def publish(self, uri: str, version: int | None, diagnostics: list[lsp.Diagnostic]) -> None: ...

    def log_message(self, level: lsp.MessageType, message: str) -> None: ...

    def show_message(self, level: lsp.MessageType, message: str) -> None: ...

    def refresh_diagnostics(self) -> None: ...

    async def apply_edit(self, edit: lsp.WorkspaceEdit, label: str) -> tuple[bool, str | None]: ...

    async def begin_progress(self, title: str, message: str, on_cancel: Callable[[], None]) -> "ProgressReporter | None":
        """Start a cancellable progress report; None if the client cannot show one."""


class ProgressReporter(Protocol):
    def report(self, message: str, percentage: int) -> None: ...

    def end(self, message: str) -> None: ...


class Documents(Protocol):
    def get(self, uri: str) -> tuple[int | None, str] | None:
        """The document's (version, text) as the client has it now; None if it is not open."""

    def notebook(self, uri: str) -> tuple[int | None, list[tuple[str, str, str | None]]] | None:
        """An open notebook's version and cells (URI, "code" | "markdown", language id), in order."""


@dataclass
class ClientFeatures:
    """What was negotiated at initialize: how diagnostics travel and what the client can show."""

    push: bool = True
    pull: bool = False
    can_pull: bool = False
    style: DiagnosticStyle = field(default_factory=DiagnosticStyle)
    markdown_hover: bool = True
    document_changes: bool = False
    resolve_edits: bool = False
    refresh_support: bool = False
    progress_support: bool = False
    apply_edit: bool = False
    watch_files: bool = False
    position_encoding: str = lsp.PositionEncodingKind.Utf16


def capability(obj: Any, dotted: str, default: Any = None) -> Any:
    """``caps.a.b.c`` or ``default`` where any step is missing (pygls' get_capability, without pygls)."""
    for name in dotted.split("."):
        obj = getattr(obj, name, None)
        if obj is None:
            return default
    return obj


def negotiate(caps: lsp.ClientCapabilities, settings: ClientSettings, encoding: str | None = None) -> ClientFeatures:
    mode = settings.diagnostic_mode
    can_pull = capability(caps, "text_document.diagnostic") is not None
    # Every client is pushed to (some that declare pull never ask); one that can
    # pull is answered too. "pull" is the opt-out for clients that would show
    # both (Neovim and vscode-languageclient keep them apart).
    push = mode != "pull"
    pull = mode == "pull" or (mode == "auto" and can_pull)
    formats = capability(caps, "text_document.hover.content_format")
    return ClientFeatures(
        push=push,
        pull=pull,
        can_pull=can_pull,
        style=diagnostic_style(caps, push, pull),
        markdown_hover=formats is None or lsp.MarkupKind.Markdown in formats,
        document_changes=bool(capability(caps, "workspace.workspace_edit.document_changes", False)),
        resolve_edits="edit" in (capability(caps, "text_document.code_action.resolve_support.properties", []) or []),
        refresh_support=bool(capability(caps, "workspace.diagnostics.refresh_support", False)),
        progress_support=bool(capability(caps, "window.work_done_progress", False)),
        apply_edit=bool(capability(caps, "workspace.apply_edit", False)),
        watch_files=bool(capability(caps, "workspace.did_change_watched_files.dynamic_registration", False)),
        position_encoding=encoding or lsp.PositionEncodingKind.Utf16,
    )


def diagnostic_style(caps: lsp.ClientCapabilities, push: bool, pull: bool) -> DiagnosticStyle:
    """What every enabled delivery can show: pushed and pulled diagnostics are the same objects."""
    publish = (
        capability(caps, "text_document.publish_diagnostics.related_information", False),
        capability(caps, "text_document.publish_diagnostics.tag_support.value_set", []) or [],
        capability(caps, "text_document.publish_diagnostics.code_description_support", True) is not False,
    )
    styles = [publish] if push else []
    if pull:
        # Pull capabilities grew these fields late; a client that leaves them out gets the publish ones.
        related = capability(caps, "text_document.diagnostic.related_information")
        pull_tags = capability(caps, "text_document.diagnostic.tag_support.value_set")
        code_description = capability(caps, "text_document.diagnostic.code_description_support")
        styles.append(
            (
                publish[0] if related is None else related,
                publish[1] if pull_tags is None else pull_tags,
                publish[2] if code_description is None else code_description is not False,
            )
        )
    tags = set.intersection(*({int(t) for t in s[1]} for s in styles))
    return DiagnosticStyle(all(bool(s[0]) for s in styles), sorted(tags), all(s[2] for s in styles))


# --- per-document state ---


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
    language: str = "python"  # or "markdown" (Markdown, Quarto, MyST buffers the client chose to send)
    last_change: float = float("-inf")  # clock time of the latest didChange
    lint_s: float | None = None  # how long the latest lint of this document took
    # The text whose analysis killed an analysis process, and how many times: after
    # CRASHES_PER_TEXT it is not sent again (a new edit is tried once more).
    crashed_text: str | None = None
    crashes: int = 0


CRASHES_PER_TEXT = 2


class TorchlintService:
    def __init__(
        self,
        client: Client,
        documents: Documents,
        extra_rules: Sequence[type[Rule]] = (),
        *,
        pool: WorkerPool | None | str = "processes",
        runtime: Runtime | None = None,
    ) -> None:
        self.client = client
        self.documents = documents
        self.extra_rules = tuple(extra_rules)
        self.settings = self.init_settings = ClientSettings()
        self.configs = ProjectConfigs()
        self.docs: dict[str, DocState] = {}
        self.features = ClientFeatures()
        # Linting runs in analysis processes (see worker.py): the event loop never waits for libcst.
        # pool=None lints on a thread of this process (tests, and where processes cannot start).
        self.pool: WorkerPool | None = WorkerPool(self.extra_rules) if pool == "processes" else pool  # type: ignore[assignment]
        self.lint_pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="torchlint-lint")
        self.runtime_pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="torchlint-runtime")
        self.runtime: Runtime = runtime or SandboxRuntime(frozenset(r.code for r in self.extra_rules))
        self._shown: set[str] = set()
        self._rules_logged = False
        self._rule_urls: dict[str, str | None] | None = None
        # Jupyter notebooks opened as LSP notebook documents (see notebooks.py).
        self.notebooks = Notebooks(self)
        self.notebook_sync = False
        self.clock = time.monotonic

    # --- messages to the user ---

    def log(self, level: lsp.MessageType, message: str, always: bool = False) -> None:
        """To the server's stderr and the client's log (at the logLevel setting, or ``always``)."""
        getattr(log, {1: "error", 2: "warning", 3: "info"}.get(int(level), "debug"))(message)
        if always or int(level) <= int(self.settings.log_threshold):
            self.client.log_message(level, message)

    def show_once(self, level: lsp.MessageType, message: str) -> None:
        self.log(level, message)
        if message not in self._shown:
            self._shown.add(message)
            self.client.show_message(level, message)

    # --- lifecycle and settings ---

    def initialize(self, caps: lsp.ClientCapabilities, options: Any, encoding: str | None = None) -> ClientFeatures:
        self.settings = self.init_settings = parse_settings(options)
        self.features = negotiate(caps, self.settings, encoding)
        # A client that syncs notebooks sends their cells with the notebook, not one by one.
        self.notebook_sync = capability(caps, "notebook_document.synchronization") is not None
        # No analysis process starts here: the first lint starts them (worker.WorkerPool).
        return self.features

    def initialized(self) -> None:
        for problem in self.settings.problems:
            self.show_once(lsp.MessageType.Warning, f"torchlint: {problem}")
        if self.features.pull and not self.features.can_pull:
            self.show_once(
                lsp.MessageType.Warning,
                'torchlint: diagnosticMode is "pull" but this client does not pull diagnostics; it may show none',
            )
        delivery = " and ".join(name for name, on in (("push", self.features.push), ("pull", self.features.pull)) if on)
        self.log(
            lsp.MessageType.Info,
            f"torchlint {__version__} (Python {sys.version.split()[0]}, {sys.executable}): "
            f"{delivery} diagnostics, positions in {self.features.position_encoding}, "
            f"configurationPreference {self.settings.configuration_preference}",
            always=True,
        )

    def log_rules(self) -> None:
        """Which rules this server has (after the first lint: importing them all is not free)."""
        if self._rules_logged:
            return
        self._rules_logged = True
        if self._rule_urls is not None:
            self._log_rules(list(self._rule_urls))
            return
        from torchlint.rules import all_rules

        self._log_rules(sorted(all_rules()))

    async def file_config(self, path: str | None) -> FileConfig:
        """The file's settings; raises PluginFailure when the rules cannot be loaded (a broken plugin).

        Analysis processes load the rules: the first lint asks one of them which rules
        there are (and so whether they load). Lints in this process load them here.
        """
        config = self.configs.for_file(path, self.settings)
        if isinstance(self.pool, WorkerPool):
            await self._learn_rules()
        else:
            try:
                config.codes.resolve()
            except Exception as exc:
                from torchlint.rules import PluginError

                if isinstance(exc, PluginError):
                    raise PluginFailure(str(exc)) from None
                raise
        return config

    async def _learn_rules(self) -> None:
        """The rules and their documentation URLs, from an analysis process (once): importing
        the rules here would cost this process 0.4 s of CPU and 15 MB."""
        if self._rule_urls is not None or not isinstance(self.pool, WorkerPool):
            return
        try:
            urls = await self.run_job(("rules", "", None, None))  # (no path: any process will do)
        except PluginFailure:
            raise
        except Exception as exc:  # noqa: BLE001 - the rules are then loaded here when needed
            log.info("cannot list the rules of the analysis processes: %s", exc)
            return
        self._rule_urls = dict(urls)
        set_rule_urls(self._rule_urls)

    def _log_rules(self, codes: list[str]) -> None:
        extra = sorted(r.code for r in self.extra_rules)
        message = f"torchlint: {len(codes)} rules loaded ({codes[0]}..{codes[-1]})" if codes else "torchlint: no rules loaded"
        if extra:
            message += f", and {len(extra)} more from the embedding program: {', '.join(extra)}"
        self.log(lsp.MessageType.Info, message, always=True)

    def change_settings(self, raw: Any) -> None:
        old = self.settings
        # The client sends its whole configuration: what it leaves out falls back to
        # the initializationOptions, not to whatever was set before.
        new = parse_settings(raw, self.init_settings)
        for problem in new.problems:
            self.show_once(lsp.MessageType.Warning, f"torchlint: {problem}")
        self.settings = new
        if (new.select, new.ignore, new.configuration_preference) != (old.select, old.ignore, old.configuration_preference):
            self.log(lsp.MessageType.Info, "torchlint: settings changed; re-linting open files")
            self.schedule_all()

    def shutdown(self) -> None:
        try:
            self.runtime.close()
        except Exception:
            log.exception("closing the runtime worker")
        if self.pool is not None:
            self.pool.close()
        self.lint_pool.shutdown(wait=False, cancel_futures=True)
        self.runtime_pool.shutdown(wait=False, cancel_futures=True)

    # --- documents ---

    @staticmethod
    def is_python(uri: str, language_id: str | None) -> bool:
        if language_id is not None:
            return language_id == "python"
        return uri.endswith(PYTHON_SUFFIXES)

    def did_open(self, uri: str, language_id: str | None) -> asyncio.Task | None:
        markdown = language_id in MARKDOWN_LANGUAGE_IDS or (language_id is None and uri.endswith(MARKDOWN_SUFFIXES))
        if not (markdown or self.is_python(uri, language_id)):
            return None
        if uri.startswith("vscode-notebook-cell:") and self.notebook_sync:
            return None  # its notebook is synced as a whole (notebooks.py)
        self.open(uri).last_change = self.clock()
        if markdown:
            self.docs[uri].language = "markdown"
        return self.schedule(uri, 0)

    def did_change(self, uri: str) -> asyncio.Task | None:
        st = self.docs.get(uri)
        if st is None:
            return None
        return self.schedule(uri, self.debounce(st))

    def debounce(self, st: DocState) -> float:
        """Seconds to wait before linting after this edit (see PAUSE_S)."""
        now = self.clock()
        paused = now - st.last_change >= PAUSE_S
        st.last_change = now
        if paused or st.lint_s is None:  # the first lint of a file is never delayed
            return 0.0
        return min(self.settings.debounce_ms / 1000, max(MIN_DEBOUNCE_S, st.lint_s))

    def did_save(self, uri: str) -> None:
        # A save is also when a pyproject.toml edited beside the code is looked at again.
        if self.configs.changed():
            self.schedule_all()
        elif uri in self.docs:
            self.schedule(uri, 0)

    def did_close(self, uri: str) -> None:
        st = self.docs.pop(uri, None)
        if st is not None and self.features.push:
            self.client.publish(uri, None, [])

    def config_files_changed(self) -> None:
        self.configs.reset()
        self.schedule_all()

    def open(self, uri: str) -> DocState:
        st = self.docs.get(uri)
        if st is None:
            st = self.docs[uri] = DocState(uri, to_fs_path(uri) if uri.startswith("file:") else None)
        return st

    # --- linting ---

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
        if self.features.pull and self.features.refresh_support:
            self.client.refresh_diagnostics()

    def _current(self, st: DocState) -> bool:
        return self.docs.get(st.uri) is st

    async def _lint(self, st: DocState, seq: int, delay: float) -> Analysis | None:
        if delay > 0:
            await asyncio.sleep(delay)
        if st.seq != seq or not self._current(st):
            return None  # a newer edit restarted the debounce
        if self.configs.changed():
            self.log(lsp.MessageType.Info, "torchlint: configuration file changed; re-linting open files")
            for uri, other in self.docs.items():
                if other is not st:
                    self.schedule(uri, 0)
            if self.features.pull and self.features.refresh_support:
                self.client.refresh_diagnostics()
        current = self.documents.get(st.uri)
        if current is None:
            return None
        version, source = current
        try:
            config = await self.file_config(st.path)
        except PluginFailure as exc:  # no rules to lint with until the plugin is fixed (and a restart)
            self.show_once(lsp.MessageType.Error, f"torchlint: {exc}")
            return None
        if config.error:
            self.show_once(lsp.MessageType.Warning, f"torchlint: {config.error} (using the default rules until it is fixed)")
        notice = _unlintable(source, st.path or st.uri, config.max_bytes)
        report: FileReport | None = None
        while notice is None and report is None:
            if st.crashed_text == source and st.crashes >= CRASHES_PER_TEXT:
                notice = (
                    f"could not lint this file: the analysis crashed on it {st.crashes} times "
                    "(please report this); it is tried again after the next edit"
                )
                break
            started = self.clock()
            try:
                report = await self.run_job(
                    ("lint" if st.language == "python" else f"lint_{st.language}", source, st.path or st.uri, config.codes),
                    wanted=lambda: st.seq == seq and self._current(st),
                )
            except WorkerDied as exc:
                # Its process died on this text: count it against the text, try once more
                # (the death may have been the machine's), then give up on this text only.
                st.crashes = st.crashes + 1 if st.crashed_text == source else 1
                st.crashed_text = source
                self.log(lsp.MessageType.Error, f"torchlint: {st.uri}: the analysis process died ({exc})")
                if self.pool is None or self.pool.closed:
                    notice = f"could not lint this file: {exc}"
            except Exception as exc:  # a bug: one message, the other files go on
                notice = f"could not lint this file: {exc}"
                self.log(lsp.MessageType.Error, f"torchlint: {st.uri}: {notice}")
            else:
                if report is None:
                    return None  # superseded while it ran
                st.lint_s = self.clock() - started
        analysis = self._convert(st, version, source, config, report, notice)
        # Only the result for the text the client has now, with today's settings, is shown.
        if not self._current(st) or self.documents.get(st.uri) != (version, source):
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
            if self.features.push:
                self.client.publish(st.uri, version, analysis.diagnostics)
        self.log_rules()
        return st.analysis

    async def run_job(self, job: tuple, wanted: Callable[[], bool] = lambda: True) -> Any:
        """Run a lint/fix-all job in an analysis process (in a thread if processes cannot start)."""
        if self.pool is not None:
            try:
                result = await self.pool.run(job, wanted)
            except CannotStart as exc:  # e.g. a sandbox that forbids processes
                log.warning("%s; linting in the server process", exc)
                self.pool.close()
                self.pool = None
                return await self.run_job(job, wanted)
            except WorkerDied as exc:
                if self.pool.closed or await self._pool_works():
                    raise  # the job's own input killed its process: the caller deals with that file
                # Processes that die even on an empty file (cannot import torchlint, killed
                # by a sandbox) are given up on. Never because of one file's input: that
                # input would then crash the server itself.
                self.log(
                    lsp.MessageType.Error,
                    f"torchlint: analysis processes keep dying ({exc}); linting in the server process from now on",
                )
                self.pool.close()
                self.pool = None
                raise
            return result
        from torchlint.engine import LintOptions, lint_source

        kind, source, path, codes = job
        if kind == "rules":
            from torchlint.docs import rule_url as documentation
            from torchlint.rules import all_rules

            return {code: documentation(code) for code in sorted(all_rules())}
        options = LintOptions(codes=resolved(codes), extra_rules=self.extra_rules)
        if kind in NOTEBOOK_JOBS:
            return await asyncio.get_running_loop().run_in_executor(self.lint_pool, lambda: run_notebook_job(kind, source, path, options))
        if kind == "lint":
            call = lambda: lint_source(source, path, options)  # noqa: E731
        else:
            call = lambda: fix_source(source, lambda s: lint_source(s, path, options).findings, unsafe=False)[0]  # noqa: E731
        return await asyncio.get_running_loop().run_in_executor(self.lint_pool, call)

    async def _pool_works(self) -> bool:
        """Whether a fresh analysis process lints an empty file."""
        assert self.pool is not None
        try:
            await self.pool.run(("lint", "", "<probe>", frozenset()))
        except Exception:
            return False
        return True

    def _convert(
        self,
        st: DocState,
        version: int | None,
        source: str,
        config: FileConfig,
        report: FileReport | None,
        notice: str | None,
    ) -> Analysis:
        index = LineIndex(source, self.features.position_encoding)
        if report is None:
            diagnostic = notice_diagnostic(f"torchlint: {notice}", lsp.DiagnosticSeverity.Warning)
            return Analysis(version, source, config, [], [diagnostic], index, notice=notice)
        findings = report.findings
        if st.confirmed_source == source and st.confirmations:
            findings = [
                f.with_confirmation(st.confirmations[(f.code, f.range)]) if (f.code, f.range) in st.confirmations else f
                for f in findings
            ]
        diagnostics = [to_diagnostic(f, index, st.uri, self.features.style) for f in findings]
        return Analysis(version, source, config, findings, diagnostics, index, errors=list(report.errors))

    async def analysis_for(self, uri: str) -> Analysis | None:
        """The analysis of the document as it is now (waits for a pending lint)."""
        st = self.docs.get(uri)
        if st is None:
            return None
        for _ in range(20):
            current = self.documents.get(uri)
            if current is None:
                return None
            a = st.analysis
            if (
                a is not None
                and (a.version, a.source) == current
                and a.config.codes == self.configs.for_file(st.path, self.settings).codes
            ):
                return a
            task = st.task
            if task is None or task.done():
                task = self.schedule(uri, 0)
            await asyncio.shield(task)  # type: ignore[arg-type]
        return st.analysis

    async def pull(self, uri: str, previous_result_id: str | None) -> lsp.DocumentDiagnosticReport:
        # (A notebook cell's diagnostics are pushed, never pulled: see notebooks.py.)
        a = await self.analysis_for(uri) if uri in self.docs else None
        if a is None:
            return lsp.RelatedFullDocumentDiagnosticReport(items=[])
        if previous_result_id == a.result_id:
            return lsp.RelatedUnchangedDocumentDiagnosticReport(result_id=a.result_id)
        return lsp.RelatedFullDocumentDiagnosticReport(items=a.diagnostics, result_id=a.result_id)

    # --- rules ---

    def rule(self, code: str) -> type[Rule] | None:
        for cls in self.extra_rules:
            if cls.code == code:
                return cls
        from torchlint.rules import all_rules

        return all_rules().get(code)

    def confirmable(self, f: Finding) -> bool:
        rule = self.rule(f.code)
        return bool(rule is not None and getattr(rule, "confirmable", False) and self.runtime.confirmable(f))

    # --- hover and code actions ---

    async def hover(self, uri: str, position: lsp.Position) -> lsp.Hover | None:
        a = await self.analysis_for(uri) if uri in self.docs else None
        if a is None:
            return None
        pos = (position.line, position.character)
        markdown = self.features.markdown_hover
        parts = [
            self.hover_text(f, markdown)
            for f, d in zip(a.findings, a.diagnostics)
            if (d.range.start.line, d.range.start.character) <= pos <= (d.range.end.line, d.range.end.character)
        ]
        if not parts:
            return None
        sep = "\n\n---\n\n" if markdown else "\n\n"
        kind = lsp.MarkupKind.Markdown if markdown else lsp.MarkupKind.PlainText
        return lsp.Hover(contents=lsp.MarkupContent(kind=kind, value=sep.join(parts)))

    def hover_text(self, f: Finding, markdown: bool) -> str:
        rule = self.rule(f.code)
        docs = rule.documentation() if rule is not None else ""
        url = rule_url(f.code)
        if markdown:
            head = f"**{f.code}** `{f.name}`: {f.message}"
            if f.confirmation is not None:
                head += f"\n\n*Runtime:* {f.confirmation.status}: {f.confirmation.evidence}"
            link = f"[Documentation for {f.code}]({url})" if url else ""  # a plugin rule may have no page
            return f"{head}\n\n{docs}\n\n{link}".strip()
        head = f"{f.code} {f.name}: {f.message}"
        if f.confirmation is not None:
            head += f"\nRuntime: {f.confirmation.status}: {f.confirmation.evidence}"
        return f"{head}\n\n{docs}\n\n{url or ''}".strip()

    async def code_actions(
        self, uri: str, rng: lsp.Range, context: Iterable[lsp.Diagnostic], only: Sequence[str] | None
    ) -> list[lsp.CodeAction] | None:
        if self.notebooks.is_cell(uri):
            return await self.notebooks.code_actions(uri, rng, context, only)
        st = self.docs.get(uri)
        a = await self.analysis_for(uri) if st is not None else None
        if st is None or a is None:
            return None
        context = list(context)
        here = [
            (i, f, d)
            for i, (f, d) in enumerate(zip(a.findings, a.diagnostics))
            if lsp_range_overlaps(d.range, rng) or any(_same_diagnostic(d, c) for c in context)
        ]
        actions: list[lsp.CodeAction] = []
        if _kind_wanted(lsp.CodeActionKind.QuickFix, only):
            actions += self._quick_fixes(uri, a, here)
        # (A Markdown buffer's code blocks run as one program, as `torchlint check --confirm` runs them.)
        if self.settings.runtime_enabled and _kind_wanted(CONFIRM_KIND, only):
            actions += self.confirm_actions(uri, [(f, d) for _, f, d in here])
        explicit_fix_all = only is not None and _kind_wanted(FIX_ALL_KIND, only)
        resolve = self.features.resolve_edits
        if (explicit_fix_all or (only is None and resolve)) and any(fix_is_applicable(f.fix, unsafe=False) for f in a.findings):
            action = lsp.CodeAction(
                title="torchlint: fix all auto-fixable problems",
                kind=FIX_ALL_KIND,
                data={"uri": uri, "version": a.version, "fixAll": True},
            )
            if explicit_fix_all or not resolve:  # else the edit is computed on codeAction/resolve
                action.edit = await self.fix_all_edit(st, a)
            if action.edit is not None or (resolve and not explicit_fix_all):
                actions.append(action)
        return actions or None

    def confirm_actions(self, uri: str, here: Iterable[tuple[Finding, lsp.Diagnostic]]) -> list[lsp.CodeAction]:
        """"Confirm TLxxx by running the code" for each confirmable finding (of a file, a Markdown buffer or a cell)."""
        actions = []
        for f, d in here:
            if self.confirmable(f):
                arg = {"uri": uri, "code": f.code, "line": f.range.line, "column": f.range.column}
                actions.append(
                    lsp.CodeAction(
                        title=f"Confirm {f.code} by running the code",
                        kind=CONFIRM_KIND,
                        diagnostics=[d],
                        command=lsp.Command(title=f"Confirm {f.code} by running", command=CONFIRM_COMMAND, arguments=[arg]),
                    )
                )
        return actions

    def _quick_fixes(self, uri: str, a: Analysis, here: list[tuple[int, Finding, lsp.Diagnostic]]) -> list[lsp.CodeAction]:
        actions = []
        for _, f, d in here:
            if f.fix is not None:
                unsafe = f.fix.applicability == "unsafe"
                actions.append(
                    lsp.CodeAction(
                        title=f"{f.code}: {f.fix.message}" + (" (unsafe fix: review the change)" if unsafe else ""),
                        kind=lsp.CodeActionKind.QuickFix,
                        diagnostics=[d],
                        is_preferred=not unsafe,
                        edit=self.workspace_edit(uri, a.version, text_edits(f.fix.edits, a.index)),
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
                        edit=self.workspace_edit(uri, a.version, text_edits(edits, a.index)),
                    )
                )
        return actions

    async def resolve_code_action(self, action: lsp.CodeAction) -> lsp.CodeAction:
        data = action.data if isinstance(action.data, dict) else {}
        if not data.get("fixAll") or action.edit is not None:
            return action
        uri = data.get("uri")
        st = self.docs.get(uri) if isinstance(uri, str) else None
        a = await self.analysis_for(uri) if st is not None else None
        if st is not None and a is not None:
            action.edit = await self.fix_all_edit(st, a) or lsp.WorkspaceEdit(changes={})
        return action

    # --- edits and fix-all ---

    def workspace_edit(self, uri: str, version: int | None, edits: list[lsp.TextEdit]) -> lsp.WorkspaceEdit:
        if self.features.document_changes:
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
        kind = "fix_all" if st.language == "python" else f"fix_all_{st.language}"
        fixed = await self.run_job((kind, a.source, st.path or st.uri, a.config.codes))
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
            raise InvalidParams(f"torchlint: {FIX_ALL_COMMAND} expects [uri] or [uri, version]")
        st = self.docs.get(uri)
        if st is None and (uri in self.notebooks.open or self.notebooks.is_cell(uri)):
            edit, n = await self.notebooks.fix_all(uri)
            if edit is None:
                return {"applied": False, "fixed": 0, "message": "nothing to fix"}
            applied, reason = await self.client.apply_edit(edit, "torchlint: fix all")
            return {"applied": applied, "fixed": n if applied else 0, "message": f"fixed {n} problems" if applied else (reason or "the editor refused the edit")}
        if st is None:
            raise RequestFailed(f"torchlint: {uri} is not an open Python document")
        if not self.features.apply_edit:
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
        if not self._current(st) or self.documents.get(uri) != (a.version, a.source):
            raise ContentModified(f"torchlint: {uri} changed while the fixes were computed; run it again")
        applied, reason = await self.client.apply_edit(edit, "torchlint: fix all auto-fixable problems")
        if not applied:
            return {"applied": False, "fixed": 0, "message": f"not applied: {reason or 'the editor did not apply the edit'}"}
        return {"applied": True, "fixed": fixable, "message": f"fixed {fixable} problem{'s' if fixable != 1 else ''}"}

    # --- confirm by running ---

    async def confirm(self, args: Sequence[Any]) -> dict[str, Any]:
        """``torchlint.confirm``: run the selected findings' programs in the sandbox, then re-publish."""
        if not self.settings.runtime_enabled:
            raise RequestFailed(
                "torchlint: confirming by running is off; enable it with the setting `runtime.enabled = true`"
            )
        target = confirming.parse_target(args)
        if target is None:
            raise InvalidParams(
                f'torchlint: {CONFIRM_COMMAND} expects [{{"uri": ..., "code"?: ..., "line"?: ..., "column"?: ...}}]'
            )
        uri = target["uri"]
        st = self.docs.get(uri)
        if st is None and (self.notebooks.is_cell(uri) or uri in self.notebooks.open):
            return await self.notebooks.confirm(uri, target)
        if st is None:
            raise RequestFailed(f"torchlint: {uri} is not open")
        a = await self.analysis_for(uri)
        if a is None:
            raise RequestFailed(f"torchlint: {uri} has no analysis")
        selected = [f for f in a.findings if self.confirmable(f) and confirming.matches(target, f)]
        if not selected:
            return {"confirmed": 0, "notReproduced": 0, "couldNotRun": 0, "message": "nothing to confirm"}
        results = await self.run_confirmations(a.source, st.path or st.uri, st.language, selected, a.findings)
        if st.confirmed_source != a.source:
            st.confirmations, st.confirmed_source = {}, a.source
        for f in results:
            if f.confirmation is not None:
                st.confirmations[(f.code, f.range)] = f.confirmation
        # Show the evidence: a fresh analysis picks the confirmations up.
        task = self.schedule(uri, 0)
        if task is not None:
            await asyncio.shield(task)
        if self.features.pull and self.features.refresh_support:
            self.client.refresh_diagnostics()
        return confirming.tally(results)

    async def run_confirmations(
        self, source: str, path: str, language: str, selected: list[Finding], context: list[Finding]
    ) -> list[Finding]:
        """The runtime on its thread, with cancellable progress where the client shows it.

        ``language`` is "python", or "markdown"/"notebook" for a document: its code blocks or cells
        then run as one program, and ``selected``/``context`` are its findings as shown (cell, line)."""
        cancel = threading.Event()
        progress = None
        if self.features.progress_support:
            try:
                progress = await self.client.begin_progress(
                    "torchlint: confirming by running",
                    f"{len(selected)} finding{'s' if len(selected) != 1 else ''}",
                    cancel.set,
                )
            except Exception as exc:
                self.log(lsp.MessageType.Info, f"torchlint: no progress reporting: {exc}")
        loop = asyncio.get_running_loop()

        def report(done: int, total: int, finding: Finding) -> None:
            # Called on the runtime thread: messages are sent from the event loop only.
            if progress is not None and done < total:
                where = f"cell {finding.cell}, line {finding.range.line}" if finding.cell is not None else f"line {finding.range.line}"
                message = f"{finding.code} at {where} ({done + 1}/{total})"
                loop.call_soon_threadsafe(progress.report, message, int(100 * done / max(total, 1)))

        # A Runtime written for Python files only (the protocol before documents) is not told a language.
        document = {} if language == "python" else {"language": language}

        def run() -> list[Finding]:
            return self.runtime.confirm(source, path, selected, cancel=cancel, progress=report, context=context, **document)

        try:
            results = await loop.run_in_executor(self.runtime_pool, run)
        except asyncio.CancelledError:
            cancel.set()  # the request was cancelled: stop before the next finding
            if progress is not None:
                progress.end("cancelled")
            raise
        except RuntimeUnavailable as exc:
            if progress is not None:
                progress.end(f"failed: {exc}")
            raise RequestFailed(f"torchlint: {exc}") from None
        except Exception as exc:
            if progress is not None:
                progress.end(f"failed: {exc}")
            raise RequestFailed(f"torchlint: the runtime checker failed: {type(exc).__name__}: {exc}") from None
        if progress is not None:
            progress.end(confirming.tally(results)["message"])
        return results


def _unlintable(source: str, path: str, max_bytes: int | None = None) -> str | None:
    """The same limits as files read from disk (torchlint.sources)."""
    limit = MAX_BYTES if max_bytes is None else max_bytes
    if len(source) * 4 > limit and len(source.encode("utf-8", "surrogatepass")) > limit:
        return too_large(len(source.encode("utf-8", "surrogatepass")), limit)
    if "\x00" in source[:8192]:
        return "binary content (contains NUL bytes), not Python source; torchlint skipped it"
    return None


def _kind_wanted(kind: str, only: Sequence[str] | None) -> bool:
    return only is None or any(kind == o or kind.startswith(o + ".") for o in only)


def _same_diagnostic(d: lsp.Diagnostic, other: lsp.Diagnostic) -> bool:
    return d.code == other.code and d.range == other.range and (other.source in (None, SOURCE))
