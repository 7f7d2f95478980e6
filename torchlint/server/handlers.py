"""The LSP handlers: unpack the message, call the service, pack the answer.

Each handler is a plain module-level function taking the server (``ls``, an
app.TorchlintServer) and the params, so it can be imported and called on its
own; :func:`register` attaches them to a server. No analysis happens here: it
all lives in :class:`torchlint.server.service.TorchlintService`.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from lsprotocol import types as lsp
from pygls.exceptions import JsonRpcException

from torchlint.server.confirm import CONFIRM_COMMAND
from torchlint.server.service import CONFIRM_KIND, FIX_ALL_COMMAND, FIX_ALL_KIND, ServiceError

if TYPE_CHECKING:
    from torchlint.server.app import TorchlintServer
else:  # pygls reads command handlers' annotations at run time, and app.py imports this module
    TorchlintServer = Any


def _answers_errors(handler: Callable) -> Callable:
    """A service error becomes the JSON-RPC error response it names."""

    @functools.wraps(handler)
    async def wrapper(ls: TorchlintServer, *args: Any) -> Any:
        try:
            return await handler(ls, *args)
        except ServiceError as exc:
            raise JsonRpcException(str(exc), code=exc.code) from None

    return wrapper


def initialize(ls: TorchlintServer, params: lsp.InitializeParams) -> None:
    features = ls.service.initialize(params.capabilities, params.initialization_options, ls.workspace.position_encoding)
    if features.pull:
        ls.feature(
            lsp.TEXT_DOCUMENT_DIAGNOSTIC,
            lsp.DiagnosticOptions(identifier="torchlint", inter_file_dependencies=False, workspace_diagnostics=False),
        )(pull_diagnostics)


async def initialized(ls: TorchlintServer, params: lsp.InitializedParams) -> None:
    ls.service.initialized()
    if ls.service.features.watch_files:
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
            ls.service.log(lsp.MessageType.Info, f"torchlint: cannot watch pyproject.toml files: {exc}")


def did_open(ls: TorchlintServer, params: lsp.DidOpenTextDocumentParams) -> None:
    ls.service.did_open(params.text_document.uri, params.text_document.language_id)


def did_change(ls: TorchlintServer, params: lsp.DidChangeTextDocumentParams) -> None:
    ls.service.did_change(params.text_document.uri)


def did_save(ls: TorchlintServer, params: lsp.DidSaveTextDocumentParams) -> None:
    ls.service.did_save(params.text_document.uri)


def did_close(ls: TorchlintServer, params: lsp.DidCloseTextDocumentParams) -> None:
    ls.service.did_close(params.text_document.uri)


async def did_change_configuration(ls: TorchlintServer, params: lsp.DidChangeConfigurationParams) -> None:
    raw = params.settings
    if not raw and ls.client_capabilities.workspace and ls.client_capabilities.workspace.configuration:
        # VS Code sends an empty notification: the settings are asked for.
        try:
            items = [lsp.ConfigurationItem(section="torchlint")]
            raw = (await ls.workspace_configuration_async(lsp.ConfigurationParams(items=items)))[0]
        except Exception as exc:
            ls.service.log(lsp.MessageType.Warning, f"torchlint: cannot read the client's settings: {exc}")
            return
    ls.service.change_settings(raw)


def did_change_watched_files(ls: TorchlintServer, params: lsp.DidChangeWatchedFilesParams) -> None:
    ls.service.config_files_changed()


def notebook_did_open(ls: TorchlintServer, params: lsp.DidOpenNotebookDocumentParams) -> None:
    ls.service.notebooks.did_open(params.notebook_document.uri)


def notebook_did_change(ls: TorchlintServer, params: lsp.DidChangeNotebookDocumentParams) -> None:
    ls.service.notebooks.did_change(params.notebook_document.uri)


def notebook_did_save(ls: TorchlintServer, params: lsp.DidSaveNotebookDocumentParams) -> None:
    ls.service.notebooks.did_save(params.notebook_document.uri)


def notebook_did_close(ls: TorchlintServer, params: lsp.DidCloseNotebookDocumentParams) -> None:
    ls.service.notebooks.did_close(params.notebook_document.uri, [c.uri for c in params.cell_text_documents])


@_answers_errors
async def code_action(ls: TorchlintServer, params: lsp.CodeActionParams) -> list[lsp.CodeAction] | None:
    ctx = params.context
    return await ls.service.code_actions(params.text_document.uri, params.range, ctx.diagnostics or (), ctx.only)


@_answers_errors
async def code_action_resolve(ls: TorchlintServer, action: lsp.CodeAction) -> lsp.CodeAction:
    return await ls.service.resolve_code_action(action)


@_answers_errors
async def hover(ls: TorchlintServer, params: lsp.HoverParams) -> lsp.Hover | None:
    return await ls.service.hover(params.text_document.uri, params.position)


@_answers_errors
async def pull_diagnostics(ls: TorchlintServer, params: lsp.DocumentDiagnosticParams) -> lsp.DocumentDiagnosticReport:
    return await ls.service.pull(params.text_document.uri, params.previous_result_id)


@_answers_errors
async def confirm_command(ls: TorchlintServer, *args: Any) -> dict[str, Any]:
    return await ls.service.confirm(args)


@_answers_errors
async def fix_all_command(ls: TorchlintServer, *args: Any) -> dict[str, Any]:
    return await ls.service.fix_all(args)


def shutdown(ls: TorchlintServer, params: None) -> None:
    ls.service.shutdown()


CODE_ACTION_OPTIONS = lsp.CodeActionOptions(
    code_action_kinds=[lsp.CodeActionKind.QuickFix, lsp.CodeActionKind.SourceFixAll, FIX_ALL_KIND, CONFIRM_KIND],
    resolve_provider=True,
)

# (method, options, handler); textDocument/diagnostic is added at initialize when the client pulls.
FEATURES: list[tuple[str, Any, Callable]] = [
    (lsp.INITIALIZE, None, initialize),
    (lsp.INITIALIZED, None, initialized),
    (lsp.TEXT_DOCUMENT_DID_OPEN, None, did_open),
    (lsp.TEXT_DOCUMENT_DID_CHANGE, None, did_change),
    (lsp.TEXT_DOCUMENT_DID_SAVE, None, did_save),
    (lsp.TEXT_DOCUMENT_DID_CLOSE, None, did_close),
    (lsp.WORKSPACE_DID_CHANGE_CONFIGURATION, None, did_change_configuration),
    (lsp.WORKSPACE_DID_CHANGE_WATCHED_FILES, None, did_change_watched_files),
    (lsp.NOTEBOOK_DOCUMENT_DID_OPEN, None, notebook_did_open),
    (lsp.NOTEBOOK_DOCUMENT_DID_CHANGE, None, notebook_did_change),
    (lsp.NOTEBOOK_DOCUMENT_DID_SAVE, None, notebook_did_save),
    (lsp.NOTEBOOK_DOCUMENT_DID_CLOSE, None, notebook_did_close),
    (lsp.TEXT_DOCUMENT_CODE_ACTION, CODE_ACTION_OPTIONS, code_action),
    (lsp.CODE_ACTION_RESOLVE, None, code_action_resolve),
    (lsp.TEXT_DOCUMENT_HOVER, None, hover),
    (lsp.SHUTDOWN, None, shutdown),
]
COMMANDS: list[tuple[str, Callable]] = [(CONFIRM_COMMAND, confirm_command), (FIX_ALL_COMMAND, fix_all_command)]


def register(ls: TorchlintServer) -> None:
    for method, options, handler in FEATURES:
        ls.feature(method, options)(handler)
    for name, handler in COMMANDS:
        ls.command(name)(handler)
