"""The torchlint language server: LSP over stdio on pygls 2.

Three layers: this module is the transport (the pygls server, stdio, the
protocol's error handling); handlers.py turns each LSP message into a call on
the service; service.py (:class:`TorchlintService`) does the work without
knowing about LSP transport: diagnostics from :func:`torchlint.engine.lint_source`,
fix-all from :func:`torchlint.fixes.fix_source`, "Confirm by running" from the
runtime checker. No rule logic lives in any of them.

Concurrency: handlers are ``async``; linting runs in analysis processes
(worker.py) so the event loop keeps reading messages (cancellations, newer
edits) while a file is analysed.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any

from lsprotocol import types as lsp
from pygls.exceptions import FeatureRequestError, JsonRpcException, JsonRpcInvalidParams
from pygls.lsp.server import LanguageServer

from torchlint import __version__
from torchlint.server import handlers
from torchlint.server.notebooks import NOTEBOOK_SYNC, notebook_cells
from torchlint.server.confirm import Runtime
from torchlint.server.protocol import LifecycleProtocol, start_io
from torchlint.server.service import TorchlintService

if TYPE_CHECKING:
    from torchlint.rules.base import Rule

log = logging.getLogger("torchlint.server")


_HANDLED = object()


class TorchlintProtocol(LifecycleProtocol):
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


class _WorkspaceDocuments:
    """The service's view of the open documents: pygls' workspace applies the edits."""

    def __init__(self, server: LanguageServer) -> None:
        self._server = server

    def get(self, uri: str) -> tuple[int | None, str] | None:
        try:
            doc = self._server.workspace.get_text_document(uri)
            return doc.version, doc.source
        except Exception:
            return None

    def notebook(self, uri: str) -> tuple[int | None, list[tuple[str, str, str | None]]] | None:
        """An open notebook's version and its cells (URI, kind, language id), in order."""
        nb = self._server.workspace.get_notebook_document(notebook_uri=uri)
        if nb is None:
            return None
        cells = []
        for cell_uri, kind, _ in notebook_cells(nb):
            doc = self._server.workspace.text_documents.get(cell_uri)
            cells.append((cell_uri, kind, getattr(doc, "language_id", None)))
        return nb.version, cells


class _Progress:
    def __init__(self, server: LanguageServer, token: str) -> None:
        self._server, self._token = server, token

    def report(self, message: str, percentage: int) -> None:
        self._server.work_done_progress.report(
            self._token, lsp.WorkDoneProgressReport(message=message, percentage=percentage, cancellable=True)
        )

    def end(self, message: str) -> None:
        self._server.work_done_progress.end(self._token, lsp.WorkDoneProgressEnd(message=message))


class TorchlintServer(LanguageServer):
    """The pygls server; as the service's :class:`~torchlint.server.service.Client` it sends what the service says."""

    def __init__(self, extra_rules: Sequence[type[Rule]] = (), runtime: Runtime | None = None) -> None:
        super().__init__(
            "torchlint", __version__, protocol_cls=TorchlintProtocol, max_workers=4, notebook_document_sync=NOTEBOOK_SYNC
        )
        self.service = TorchlintService(self, _WorkspaceDocuments(self), extra_rules, runtime=runtime)
        handlers.register(self)

    def start_io(self, stdin=None, stdout=None, prefix: bytes = b"", answered: tuple[Any, dict] | None = None) -> None:
        # A reader that survives framing errors (see protocol.py); ``prefix``: bytes
        # already read from stdin, ``answered``: an initialize answered early (early.py).
        start_io(self, stdin, stdout, prefix=prefix, answered=answered)

    # --- the service's Client ---

    def publish(self, uri: str, version: int | None, diagnostics: list[lsp.Diagnostic]) -> None:
        self.text_document_publish_diagnostics(lsp.PublishDiagnosticsParams(uri=uri, diagnostics=diagnostics, version=version))

    def log_message(self, level: lsp.MessageType, message: str) -> None:
        self.window_log_message(lsp.LogMessageParams(type=level, message=message))

    def show_message(self, level: lsp.MessageType, message: str) -> None:
        self.window_show_message(lsp.ShowMessageParams(type=level, message=message))

    def refresh_diagnostics(self) -> None:
        self.workspace_diagnostic_refresh(None)

    async def apply_edit(self, edit: lsp.WorkspaceEdit, label: str) -> tuple[bool, str | None]:
        result = await self.workspace_apply_edit_async(lsp.ApplyWorkspaceEditParams(edit=edit, label=label))
        return bool(result.applied), result.failure_reason

    async def begin_progress(self, title: str, message: str, on_cancel: Callable[[], None]) -> _Progress:
        token = f"torchlint-confirm-{uuid.uuid4().hex}"
        await self.work_done_progress.create_async(token)
        self.work_done_progress.begin(token, lsp.WorkDoneProgressBegin(title=title, message=message, cancellable=True))
        # The client's "cancel" button cancels the token's future.
        fut = self.work_done_progress.tokens.get(token)
        if fut is not None:
            fut.add_done_callback(lambda f: on_cancel() if f.cancelled() else None)
        return _Progress(self, token)

    def report_server_error(self, error: Exception, source) -> None:
        # pygls would pop up "Error in server"; the log is the place for it. A
        # failed request needs nothing more: the client has the error response.
        if source is FeatureRequestError:
            return
        try:
            self.service.log(lsp.MessageType.Error, f"torchlint server: {type(error).__name__}: {error}")
        except Exception:  # the transport itself may be gone
            log.exception("cannot report server error")


def create_server(extra_rules: Iterable[type[Rule]] = (), runtime: Runtime | None = None) -> TorchlintServer:
    return TorchlintServer(tuple(extra_rules), runtime)


# The process entry points live in launch.py (importing only the standard library).
from torchlint.server.launch import add_arguments, main, serve  # noqa: E402,F401
