"""The language server end to end: a real LSP client (pytest-lsp) talks to
``python -m torchlint.server`` over stdio.

Two client profiles run most tests: VS Code 1.65 (push diagnostics, UTF-16
positions, versioned workspace edits) and Neovim 0.11 (push and pull
diagnostics, UTF-8 positions, plain ``changes`` edits). Tests that need rules the registry does
not have (a deprecated rule with related information and an unsafe fix, a rule
that crashes) start this file as the server: see the ``__main__`` block.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import os
import re
import sys
import time
from concurrent.futures import Future
from pathlib import Path
from typing import Any, Union

import libcst as cst
import pytest
import pytest_lsp
from lsprotocol import types as t
from pygls.exceptions import JsonRpcException
from pygls.protocol import default_converter
from pytest_lsp import ClientServerConfig, LanguageClient, client_capabilities
from pytest_lsp.client import DEFAULT_CLIENT_FEATURES, register_lsp_features

from torchlint.diagnostics import Confirmation
from torchlint.rules.base import FixSpec, RelatedSpec, Replace, Rule

# The language server over stdio, end to end: the full run, not the inner loop (test_service.py is).
pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parent.parent
ENV = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}

TL201_SOURCE = "dataiter = iter(trainloader)\nimages, labels = dataiter.next()\n"
TL201_FIXED = "dataiter = iter(trainloader)\nimages, labels = next(dataiter)\n"
PROFILES = {"vscode": "visual-studio-code@v1.65.2", "neovim": "neovim@v0.11.0"}


# --- rules only these tests use -------------------------------------------------


class OldApiCall(Rule):
    """
    ## What it does
    Test rule: flags `old_api()` calls.

    ## Why is this bad?
    It exercises deprecation tags, related information and unsafe fixes.

    ## Example
    ```python
    from lib import old_api
    old_api()
    ```

    ## Use instead
    ```python
    new_api()
    ```

    ## Fix safety
    Unsafe: `new_api` may not be imported.
    """

    code = "TL990"
    name = "test-old-api"
    message = "`old_api()` is deprecated"
    severity = "warning"
    deprecated = True
    triggers = ("old_api",)

    def __init__(self, context) -> None:
        super().__init__(context)
        self._imported: cst.CSTNode | None = None

    def visit_ImportAlias(self, node: cst.ImportAlias) -> None:
        if isinstance(node.name, cst.Name) and node.name.value == "old_api":
            self._imported = node

    def visit_Call(self, node: cst.Call) -> None:
        if isinstance(node.func, cst.Name) and node.func.value == "old_api":
            related = [RelatedSpec(self._imported, "`old_api` is imported here")] if self._imported else []
            fix = FixSpec("Call `new_api()` instead", (Replace(node.func, "new_api"),), applicability="unsafe")
            self.report(node, fix=fix, related=related)


class Explodes(Rule):
    """
    ## What it does
    Test rule: raises on `explode()`, the way a buggy rule would.

    ## Why is this bad?
    It is not; it checks that one broken rule does not take the others down.

    ## Example
    ```python
    explode()
    ```

    ## Use instead
    ```python
    pass
    ```

    ## Fix safety
    No fix.
    """

    code = "TL991"
    name = "test-explodes"
    message = "never reported"
    triggers = ("explode",)

    def visit_Call(self, node: cst.Call) -> None:
        if isinstance(node.func, cst.Name) and node.func.value == "explode":
            raise RuntimeError("deliberate failure in a test rule")


class FakeRuntime:
    """A stand-in for the runtime checker, handed to the test server (the Runtime protocol, server/confirm.py)."""

    def confirmable(self, finding) -> bool:
        return True

    def confirm(self, source, path, findings, *, cancel, progress, context):
        time.sleep(0.2)
        return [
            f.with_confirmation(
                Confirmation("confirmed", "AttributeError: '_SingleProcessDataLoaderIter' object has no attribute 'next'")
            )
            for f in findings
        ]

    def close(self) -> None:
        pass


# --- the client -----------------------------------------------------------------


def _make_client() -> LanguageClient:
    client = LanguageClient(converter_factory=default_converter)
    client.published = []  # every publishDiagnostics, in order
    client.texts = {}  # uri -> the text as this "editor" has it
    client.applied_edits = []  # every workspace/applyEdit, in order
    client.refuse_edits = False
    client.refreshes = 0

    def publish(client: LanguageClient, params: t.PublishDiagnosticsParams) -> None:
        client.diagnostics[params.uri] = params.diagnostics
        client.published.append(params)

    def register_capability(client: LanguageClient, params: t.RegistrationParams) -> None:
        client.registrations = getattr(client, "registrations", []) + list(params.registrations)

    def apply_workspace_edit(client: LanguageClient, params: t.ApplyWorkspaceEditParams) -> t.ApplyWorkspaceEditResult:
        # As an editor does it: apply the edit to the buffer, then tell the server with didChange.
        client.applied_edits.append(params)
        if client.refuse_edits:
            return t.ApplyWorkspaceEditResult(applied=False, failure_reason="the test client refused it")
        edit = params.edit
        uris = list(edit.changes) if edit.changes else [d.text_document.uri for d in edit.document_changes]
        for uri in uris:
            change_doc(client, uri, apply_edit(client, client.texts[uri], uri, edit))
        return t.ApplyWorkspaceEditResult(applied=True)

    def diagnostic_refresh(client: LanguageClient, params: None) -> None:
        client.refreshes += 1

    # lsprotocol reads any code action with a `command` key as a bare Command
    # (lsprotocol/_hooks.py); VS Code and Neovim check that `command` is a string.
    converter = client.protocol._converter

    def command_or_action(obj: Any, _: Any) -> t.Command | t.CodeAction:
        if isinstance(obj.get("command"), str):
            return converter.structure(obj, t.Command)
        return converter.structure(obj, t.CodeAction)

    converter.register_structure_hook(Union[t.Command, t.CodeAction], command_or_action)

    features = dict(DEFAULT_CLIENT_FEATURES)
    features[t.TEXT_DOCUMENT_PUBLISH_DIAGNOSTICS] = publish
    features[t.CLIENT_REGISTER_CAPABILITY] = register_capability
    features[t.WORKSPACE_APPLY_EDIT] = apply_workspace_edit
    features[t.WORKSPACE_DIAGNOSTIC_REFRESH] = diagnostic_refresh
    register_lsp_features(client, features)
    return client


def _config(*server: str) -> ClientServerConfig:
    return ClientServerConfig(server_command=[sys.executable, *server], client_factory=_make_client, server_env=ENV)


async def _initialize(
    client: LanguageClient, profile: str, root: Path, init_options: Any = None, refresh: bool = False
) -> LanguageClient:
    caps = client_capabilities(PROFILES[profile])
    if refresh:  # Neovim's own profile does not declare it; the torchlint plugin adds it (editors/nvim)
        caps.workspace.diagnostics = t.DiagnosticWorkspaceClientCapabilities(refresh_support=True)
    result = await client.initialize_session(
        t.InitializeParams(
            capabilities=caps,
            root_uri=root.as_uri(),
            workspace_folders=[t.WorkspaceFolder(uri=root.as_uri(), name="project")],
            initialization_options=init_options,
        )
    )
    client.profile = profile
    client.pull = result.capabilities.diagnostic_provider is not None
    # Pushed to unless it opted out (and asserted below: a client told "pull" gets no push).
    client.push = (init_options or {}).get("diagnosticMode") != "pull"
    client.commands = list(result.capabilities.execute_command_provider.commands)
    client.encoding = result.capabilities.position_encoding or "utf-16"
    client.versions = {}
    client.root = root
    return client


@contextlib.asynccontextmanager
async def session(tmp_path: Path, profile: str, init_options: Any = None, refresh: bool = False):
    """A server started for one test with its own initialize options."""
    c = await _config("-m", "torchlint.server").start()
    try:
        await _initialize(c, profile, tmp_path, init_options, refresh)
        yield c
        await c.shutdown_session()
    finally:
        # pygls' stop() waits for the server to exit: after a failed assertion it never would.
        if c._server is not None and c._server.returncode is None:
            c._server.kill()
        await c.stop()


@pytest_lsp.fixture(config=_config("-m", "torchlint.server"), params=list(PROFILES))
async def client(lsp_client: LanguageClient, request, tmp_path):
    await _initialize(lsp_client, request.param, tmp_path)
    yield
    await lsp_client.shutdown_session()


@pytest_lsp.fixture(config=_config("-m", "torchlint.server"))
async def vscode(lsp_client: LanguageClient, tmp_path):
    await _initialize(lsp_client, "vscode", tmp_path)
    yield
    await lsp_client.shutdown_session()


@pytest_lsp.fixture(config=_config("-m", "torchlint.server"))
async def neovim(lsp_client: LanguageClient, tmp_path):
    await _initialize(lsp_client, "neovim", tmp_path)
    yield
    await lsp_client.shutdown_session()


@pytest_lsp.fixture(config=_config(__file__, "--with-test-rules"), params=list(PROFILES))
async def test_rules_client(lsp_client: LanguageClient, request, tmp_path):
    await _initialize(lsp_client, request.param, tmp_path, {"runtime": {"enabled": True}})
    yield
    await lsp_client.shutdown_session()


# --- helpers ----------------------------------------------------------------------


def _write(client: LanguageClient, name: str, text: str) -> str:
    path = client.root / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path.as_uri()


def open_doc(client: LanguageClient, name: str, text: str) -> str:
    uri = _write(client, name, text)
    client.versions[uri] = 1
    client.texts[uri] = text
    client.text_document_did_open(t.DidOpenTextDocumentParams(t.TextDocumentItem(uri, "python", 1, text)))
    return uri


def change_doc(client: LanguageClient, uri: str, text: str) -> int:
    client.versions[uri] += 1
    client.texts[uri] = text
    version = client.versions[uri]
    client.text_document_did_change(
        t.DidChangeTextDocumentParams(
            t.VersionedTextDocumentIdentifier(version=version, uri=uri),
            [t.TextDocumentContentChangeWholeDocument(text=text)],
        )
    )
    return version


async def wait_published(client: LanguageClient, uri: str, version: int | None = None, timeout: float = 15, after: int = 0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for p in reversed(client.published[after:]):
            if p.uri == uri and (version is None or p.version == version):
                return list(p.diagnostics)
        await asyncio.sleep(0.02)
    raise AssertionError(f"no diagnostics published for {uri} version {version}: {client.published}")


async def diagnostics(client: LanguageClient, uri: str, *, after: int = 0) -> list[t.Diagnostic]:
    """The diagnostics for the document's latest version, the way this client gets them."""
    if client.pull:
        report = await client.text_document_diagnostic_async(
            t.DocumentDiagnosticParams(text_document=t.TextDocumentIdentifier(uri))
        )
        assert report.kind == "full"
        return list(report.items)
    return await wait_published(client, uri, client.versions[uri], after=after)


def _to_offset(text: str, pos: t.Position, encoding: str) -> int:
    # LSP lines end at \n, \r\n or \r only (str.splitlines also splits at form feeds and more).
    lines = re.findall(r"[^\r\n]*(?:\r\n|\r|\n)|[^\r\n]+$", text)
    offset = sum(len(line) for line in lines[: pos.line])
    if pos.line >= len(lines):
        return len(text)
    units = 0
    for i, ch in enumerate(lines[pos.line]):
        if units >= pos.character:
            return offset + i
        units += len(ch.encode("utf-8")) if encoding == "utf-8" else len(ch.encode("utf-16-le")) // 2
    return offset + len(lines[pos.line])


def apply_edit(client: LanguageClient, text: str, uri: str, edit: t.WorkspaceEdit) -> str:
    """Apply a workspace edit as an editor would, checking it is in the form this client accepts."""
    if client.profile == "vscode":
        assert edit.changes is None and edit.document_changes, "VS Code gets versioned edits"
        (doc_edit,) = edit.document_changes
        assert doc_edit.text_document.uri == uri
        assert doc_edit.text_document.version == client.versions[uri]
        edits = list(doc_edit.edits)
    else:
        assert edit.document_changes is None, "Neovim 0.11 does not declare documentChanges support"
        edits = list(edit.changes[uri])
    spans = sorted(
        ((_to_offset(text, e.range.start, client.encoding), _to_offset(text, e.range.end, client.encoding), e.new_text) for e in edits),
        reverse=True,
    )
    for a, b, new in spans:
        text = text[:a] + new + text[b:]
    return text


async def raw_request(client: LanguageClient, method: str, params: Any, timeout: float = 10) -> Any:
    """Send JSON the typed client API refuses to build (malformed params, unknown methods)."""
    msg_id = f"raw-{time.monotonic_ns()}"
    future: Future = Future()
    client.protocol._request_futures[msg_id] = future
    client.protocol._send_data({"jsonrpc": "2.0", "id": msg_id, "method": method, "params": params})
    return await asyncio.wait_for(asyncio.wrap_future(future), timeout)


async def code_actions(client: LanguageClient, uri: str, rng: t.Range, diags=(), only=None) -> list[t.CodeAction]:
    result = await client.text_document_code_action_async(
        t.CodeActionParams(t.TextDocumentIdentifier(uri), rng, t.CodeActionContext(diagnostics=list(diags), only=only))
    )
    return list(result or [])


# --- positions and edits, without a server ---------------------------------------


@pytest.mark.parametrize("encoding", ["utf-8", "utf-16", "utf-32"])
@pytest.mark.parametrize(
    ("old", "new"),
    [
        ("a = 1\nb = it.next()", "a = 1\nb = next(it)"),  # no newline at the end
        ("a = 1\r\nb = it.next()\r\nc = 3\r\n", "a = 1\r\nb = next(it)\r\nc = 3\r\n"),
        ('s = "😋é"; b = it.next()\n', 's = "😋é"; b = next(it)\n'),
        ("x = 1\n", "from m import y\nx = 1\n"),  # an insertion at the top
        ("x = 1\n", "x = 1\ny = 2\n"),  # and at the end
        ("a\x0cb = 1\n", "a\x0cb = 2\n"),  # a form feed: str.splitlines disagrees with LSP
        ("", "x = 1\n"),
    ],
)
def test_diff_edits_rebuild_the_new_text(encoding: str, old: str, new: str) -> None:
    from torchlint.server.convert import LineIndex, diff_edits

    class Fake:
        profile, versions = "neovim", {}

    Fake.encoding = encoding
    edits = diff_edits(old, new, LineIndex(old, encoding))
    assert apply_edit(Fake, old, "u", t.WorkspaceEdit(changes={"u": edits})) == new


def test_line_index_converts_code_points_both_ways() -> None:
    from torchlint.server.convert import LineIndex

    text = 'x = "a😋é"\ny = 1\n'
    # Code point 7 is just after the emoji: 'x = "a' then 😋 (4 UTF-8 bytes, 2 UTF-16 units).
    for encoding, column in (("utf-8", 6 + 4), ("utf-16", 6 + 2), ("utf-32", 7)):
        index = LineIndex(text, encoding)
        assert index.position(1, 7) == t.Position(0, column)
        assert index.to_code_points(t.Position(0, column)) == (1, 7)
    # Past the end of the text clamps to the end instead of failing.
    assert LineIndex(text, "utf-16").position(9, 0) == t.Position(2, 0)


# --- diagnostics ------------------------------------------------------------------


@pytest.mark.asyncio
async def test_open_reports_findings_with_code_link_and_source(client: LanguageClient):
    uri = open_doc(client, "train.py", TL201_SOURCE)
    (d,) = await diagnostics(client, uri)
    assert d.code == "TL201"
    assert d.source == "torchlint"
    assert d.severity == t.DiagnosticSeverity.Error
    assert d.code_description.href.endswith("#tl201")
    assert "next(dataiter)" in d.message
    assert d.range == t.Range(t.Position(1, 17), t.Position(1, 32))
    assert d.tags is None  # TL201 is not a deprecation rule


@pytest.mark.asyncio
async def test_non_ascii_before_a_finding_uses_the_negotiated_encoding(client: LanguageClient):
    # Two-byte, three-byte and astral characters before the finding on the same line.
    prefix = 'label = "naïve → 😋"; '
    text = f"dataiter = iter(trainloader)\n{prefix}images = dataiter.next()\n"
    uri = open_doc(client, "unicode.py", text)
    (d,) = await diagnostics(client, uri)
    start = len(prefix) + len("images = ")
    if client.profile == "neovim":
        assert client.encoding == "utf-8"
        expected = len((prefix + "images = ").encode("utf-8"))
    else:
        assert client.encoding == "utf-16"
        expected = len((prefix + "images = ").encode("utf-16-le")) // 2
    assert expected != start  # the test would prove nothing on ASCII
    assert d.range.start == t.Position(1, expected)
    assert d.range.end.character - d.range.start.character == len("dataiter.next()")
    # The quick fix lands on the same spot in that encoding.
    (fix,) = [a for a in await code_actions(client, uri, d.range, [d]) if a.title.startswith("TL201: Replace")]
    assert apply_edit(client, text, uri, fix.edit) == text.replace("dataiter.next()", "next(dataiter)")


@pytest.mark.asyncio
async def test_change_is_debounced_and_stale_versions_are_never_published(client: LanguageClient):
    uri = open_doc(client, "train.py", "x = 1\n")
    assert await diagnostics(client, uri) == []
    assert await wait_published(client, uri, 1) == []  # Neovim (which pulls) is pushed to as well
    before = len(client.published)
    # A burst of edits faster than the debounce: only the last version may be published.
    for k in range(5):
        change_doc(client, uri, "it = iter(loader)\n" + "\n" * k + "batch = it.next()\n")
    final = client.versions[uri]
    (d,) = await diagnostics(client, uri, after=before)
    assert d.range.start.line == 1 + 4
    (pushed,) = await wait_published(client, uri, final, after=before)
    assert pushed == d
    # Nothing can follow: a lint scheduled before the published one never publishes
    # (test_service.py proves it with lints released in a chosen order).
    versions = [p.version for p in client.published[before:] if p.uri == uri]
    assert versions == [final]


@pytest.mark.asyncio
async def test_edit_after_edit_the_diagnostics_equal_a_whole_file_lint(vscode: LanguageClient):
    """The analysis processes re-parse only edited statements (torchlint/incremental.py)."""
    from torchlint.engine import lint_source

    source = (ROOT / "fixtures" / "tl401_missing_to_device").glob("flagged_*.py").__next__().read_text(encoding="utf-8")
    source += "\n" + TL201_SOURCE
    uri = open_doc(vscode, "train.py", source)
    await wait_published(vscode, uri, 1)
    lines = source.splitlines(keepends=True)
    edits = [
        ["# a comment at the top\n", "import os\n"] + lines,  # everything below moves
        lines[:-1],  # the TL201 statement is gone
        lines[:3] + ["    \n"] + lines[3:],  # a blank line inside the file
        lines[: len(lines) // 2] + ["x = (\n"] + lines[len(lines) // 2 :],  # half-typed
        lines,  # back where it started
    ]
    for new_lines in edits:
        text = "".join(new_lines)
        version = change_doc(vscode, uri, text)
        got = await wait_published(vscode, uri, version)
        expected = lint_source(text, str(vscode.root / "train.py")).findings
        assert sorted(
            (d.code, d.range.start.line + 1, d.range.start.character, d.range.end.line + 1, d.range.end.character)
            for d in got
        ) == sorted((f.code, f.range.line, f.range.column, f.range.end_line, f.range.end_column) for f in expected)
        assert expected, "each version has findings to compare"


@pytest.mark.asyncio
async def test_save_relints_and_picks_up_config_file_changes(client: LanguageClient):
    uri = open_doc(client, "pkg/train.py", TL201_SOURCE)
    assert [d.code for d in await diagnostics(client, uri)] == ["TL201"]
    (client.root / "pyproject.toml").write_text('[tool.torchlint]\nignore = ["TL201"]\n')
    before = len(client.published)
    client.text_document_did_save(t.DidSaveTextDocumentParams(t.TextDocumentIdentifier(uri)))
    if client.push:
        assert await wait_published(client, uri, client.versions[uri], after=before) == []
    assert await diagnostics(client, uri) == []
    # And back, without a restart.
    (client.root / "pyproject.toml").write_text('[tool.torchlint]\nselect = ["TL2"]\n')
    before = len(client.published)
    client.text_document_did_save(t.DidSaveTextDocumentParams(t.TextDocumentIdentifier(uri)))
    if client.push:
        assert [d.code for d in await wait_published(client, uri, client.versions[uri], after=before)] == ["TL201"]
    assert [d.code for d in await diagnostics(client, uri)] == ["TL201"]


@pytest.mark.asyncio
async def test_watched_config_file_change_relints_open_files(vscode: LanguageClient):
    # VS Code can watch files: the server asks it to watch pyproject.toml.
    for _ in range(100):
        if any(r.method == t.WORKSPACE_DID_CHANGE_WATCHED_FILES for r in getattr(vscode, "registrations", [])):
            break
        await asyncio.sleep(0.05)
    else:
        raise AssertionError("the server did not ask to watch pyproject.toml")
    uri = open_doc(vscode, "train.py", TL201_SOURCE)
    assert len(await diagnostics(vscode, uri)) == 1
    config = vscode.root / "pyproject.toml"
    config.write_text('[tool.torchlint]\nignore = ["TL2"]\n')
    before = len(vscode.published)
    vscode.workspace_did_change_watched_files(
        t.DidChangeWatchedFilesParams([t.FileEvent(uri=config.as_uri(), type=t.FileChangeType.Created)])
    )
    assert await wait_published(vscode, uri, after=before) == []


@pytest.mark.asyncio
async def test_broken_config_file_is_reported_once_and_defaults_apply(vscode: LanguageClient):
    (vscode.root / "pyproject.toml").write_text("[tool.torchlint]\nselect = 'TL2'\n")
    uri = open_doc(vscode, "train.py", TL201_SOURCE)
    assert [d.code for d in await diagnostics(vscode, uri)] == ["TL201"]
    shown = [m.message for m in vscode.messages]
    assert len(shown) == 1 and "pyproject.toml" in shown[0] and "select" in shown[0]


@pytest.mark.asyncio
async def test_pull_diagnostics_report_unchanged_until_the_text_changes(neovim: LanguageClient):
    assert neovim.pull
    uri = open_doc(neovim, "train.py", TL201_SOURCE)
    doc = t.TextDocumentIdentifier(uri)
    first = await neovim.text_document_diagnostic_async(t.DocumentDiagnosticParams(text_document=doc))
    assert first.kind == "full" and [d.code for d in first.items] == ["TL201"]
    again = await neovim.text_document_diagnostic_async(
        t.DocumentDiagnosticParams(text_document=doc, previous_result_id=first.result_id)
    )
    assert again.kind == "unchanged" and again.result_id == first.result_id
    change_doc(neovim, uri, TL201_FIXED)
    after = await neovim.text_document_diagnostic_async(
        t.DocumentDiagnosticParams(text_document=doc, previous_result_id=first.result_id)
    )
    assert after.kind == "full" and list(after.items) == []


async def _pull(client: LanguageClient, uri: str) -> t.DocumentDiagnosticReport:
    return await client.text_document_diagnostic_async(t.DocumentDiagnosticParams(text_document=t.TextDocumentIdentifier(uri)))


@pytest.mark.asyncio
async def test_a_client_that_can_pull_is_pushed_to_as_well_with_the_same_diagnostics(tmp_path):
    # Issue #5: push for every client, pull where the client supports it (the default, "auto").
    async with session(tmp_path, "neovim", refresh=True) as c:
        assert c.pull and c.push
        uri = open_doc(c, "train.py", TL201_SOURCE)
        pushed = await wait_published(c, uri, 1)
        pulled = await _pull(c, uri)
        assert pulled.kind == "full" and [d.code for d in pulled.items] == ["TL201"]
        assert list(pulled.items) == pushed
        # A new version: pulled first this time (Neovim pulls on every change), then pushed; still equal.
        text = "it = iter(loader)\n\n\nbatch = it.next()\nfirst = it.next()\n"
        change_doc(c, uri, text)
        pulled = await _pull(c, uri)
        pushed = await wait_published(c, uri, 2)
        assert [(d.code, d.range.start.line) for d in pulled.items] == [("TL201", 3), ("TL201", 4)]
        assert list(pulled.items) == pushed
        # Only versions the document had when their lint finished are pushed, once each, in order
        # (and none can follow the last one: see test_service.py).
        assert [p.version for p in c.published if p.uri == uri] == [1, 2]
        # Settings that change the findings: a new push, and a refresh so the pulled copy follows.
        before, refreshes = len(c.published), c.refreshes
        c.workspace_did_change_configuration(t.DidChangeConfigurationParams(settings={"torchlint": {"ignore": ["TL201"]}}))
        assert await wait_published(c, uri, 2, after=before) == []
        assert c.refreshes > refreshes
        assert list((await _pull(c, uri)).items) == []
        # Closing clears the pushed copy.
        before = len(c.published)
        c.text_document_did_close(t.DidCloseTextDocumentParams(t.TextDocumentIdentifier(uri)))
        assert await wait_published(c, uri, after=before) == []


@pytest.mark.asyncio
async def test_diagnostic_mode_pull_is_served_by_pull_only(tmp_path):
    # The opt-out for clients that would show pushed and pulled diagnostics twice (the torchlint
    # Neovim plugin on 0.10+ and the VS Code extension send it).
    async with session(tmp_path, "neovim", {"diagnosticMode": "pull"}, refresh=True) as c:
        assert c.pull and not c.push
        uri = open_doc(c, "train.py", TL201_SOURCE)
        assert [d.code for d in (await _pull(c, uri)).items] == ["TL201"]
        change_doc(c, uri, TL201_SOURCE + "again = dataiter.next()\n")
        assert [d.code for d in (await _pull(c, uri)).items] == ["TL201", "TL201"]
        refreshes = c.refreshes
        c.workspace_did_change_configuration(t.DidChangeConfigurationParams(settings={"torchlint": {"ignore": ["TL201"]}}))
        for _ in range(100):
            if c.refreshes > refreshes:
                break
            await asyncio.sleep(0.05)
        assert c.refreshes > refreshes, "settings changed but the client was not asked to pull again"
        assert list((await _pull(c, uri)).items) == []
        c.text_document_did_close(t.DidCloseTextDocumentParams(t.TextDocumentIdentifier(uri)))
        # A round trip: the server handles messages in order, so the close (and any push it
        # made) was handled and sent before this answer.
        assert await c.text_document_hover_async(t.HoverParams(t.TextDocumentIdentifier(uri), t.Position(0, 0))) is None
        assert c.published == []


@pytest.mark.asyncio
async def test_diagnostic_mode_push_has_no_diagnostic_provider(tmp_path):
    async with session(tmp_path, "neovim", {"diagnosticMode": "push"}) as c:
        assert not c.pull and c.push  # no diagnosticProvider although Neovim could pull
        uri = open_doc(c, "train.py", TL201_SOURCE)
        assert [d.code for d in await wait_published(c, uri, 1)] == ["TL201"]


@pytest.mark.asyncio
async def test_diagnostic_mode_pull_for_a_client_that_cannot_pull_is_warned_about(tmp_path):
    async with session(tmp_path, "vscode", {"diagnosticMode": "pull"}) as c:
        assert c.pull and not c.push
        for _ in range(100):
            if c.messages:
                break
            await asyncio.sleep(0.05)
        assert any("does not pull diagnostics" in m.message for m in c.messages)


@pytest.mark.asyncio
async def test_close_clears_pushed_diagnostics(vscode: LanguageClient):
    uri = open_doc(vscode, "train.py", TL201_SOURCE)
    assert len(await diagnostics(vscode, uri)) == 1
    before = len(vscode.published)
    vscode.text_document_did_close(t.DidCloseTextDocumentParams(t.TextDocumentIdentifier(uri)))
    assert await wait_published(vscode, uri, after=before) == []


@pytest.mark.asyncio
async def test_shape_chain_arrives_as_related_information(client: LanguageClient):
    from torchlint.engine import lint_source

    for path in sorted((ROOT / "fixtures" / "tl301_shape_mismatch").glob("flagged_*.py")):
        text = path.read_text(encoding="utf-8")
        expected = [f for f in lint_source(text, str(path)).findings if f.code == "TL301" and len(f.related) >= 2]
        if expected:
            break
    else:
        pytest.skip("no TL301 fixture with a shape chain")
    uri = open_doc(client, path.name, text)
    got = [d for d in await diagnostics(client, uri) if d.code == "TL301"]
    assert len(got) == len([f for f in lint_source(text, str(path)).findings if f.code == "TL301"])
    finding = expected[0]
    (d,) = [d for d in got if d.range.start.line == finding.range.line - 1]
    assert [r.message for r in d.related_information] == [r.message for r in finding.related]
    assert [r.location.range.start.line for r in d.related_information] == [r.range.line - 1 for r in finding.related]
    assert all(r.location.uri == uri for r in d.related_information)


# --- code actions -------------------------------------------------------------------


@pytest.mark.asyncio
async def test_quick_fix_and_noqa_actions(client: LanguageClient):
    uri = open_doc(client, "train.py", TL201_SOURCE)
    (d,) = await diagnostics(client, uri)
    # The cursor somewhere inside the finding, as editors send it.
    cursor = t.Range(t.Position(1, 20), t.Position(1, 20))
    actions = await code_actions(client, uri, cursor, [d])
    titles = [a.title for a in actions]
    assert titles[:2] == ["TL201: Replace `dataiter.next()` with `next(dataiter)`", "Disable TL201 for this line"]
    fix, noqa = actions[0], actions[1]
    assert fix.kind == t.CodeActionKind.QuickFix and fix.is_preferred and list(fix.diagnostics) == [d]
    assert apply_edit(client, TL201_SOURCE, uri, fix.edit) == TL201_FIXED
    suppressed = apply_edit(client, TL201_SOURCE, uri, noqa.edit)
    assert suppressed == TL201_SOURCE.replace("dataiter.next()\n", "dataiter.next()  # noqa: TL201\n")
    change_doc(client, uri, suppressed)
    assert await diagnostics(client, uri) == []
    # Runtime confirmation is off by default: not offered.
    assert not any("Confirm" in title for title in titles)


@pytest.mark.asyncio
async def test_noqa_action_extends_an_existing_comment(client: LanguageClient):
    text = "dataiter = iter(trainloader)\nimages, labels = dataiter.next()  # noqa: E501\n"
    uri = open_doc(client, "train.py", text)
    (d,) = await diagnostics(client, uri)
    (noqa,) = [a for a in await code_actions(client, uri, d.range, [d]) if a.title.startswith("Disable")]
    assert apply_edit(client, text, uri, noqa.edit).endswith("dataiter.next()  # noqa: E501, TL201\n")


@pytest.mark.asyncio
async def test_fix_all_applies_every_safe_fix(client: LanguageClient):
    text = (
        "import torch\n\n"
        "it = iter(loader)\n"
        "a = it.next()\n"
        "def show():\n"
        "    return it.next()\n"
        "b = 1\n"
    )
    uri = open_doc(client, "train.py", text)
    assert [d.code for d in await diagnostics(client, uri)] == ["TL201", "TL201"]
    whole = t.Range(t.Position(0, 0), t.Position(0, 0))
    (action,) = await code_actions(client, uri, whole, only=[t.CodeActionKind.SourceFixAll])
    assert action.kind == "source.fixAll.torchlint"
    fixed = apply_edit(client, text, uri, action.edit)
    assert fixed == text.replace("it.next()", "next(it)")
    # Only the changed lines are touched (cursors and marks elsewhere survive).
    edits = action.edit.document_changes[0].edits if action.edit.document_changes else action.edit.changes[uri]
    assert all(e.range.start.line in (3, 5) for e in edits)
    # Without `only`, fix-all is offered lazily and resolved on demand.
    lazy = [a for a in await code_actions(client, uri, whole) if a.kind == "source.fixAll.torchlint"]
    assert len(lazy) == 1 and lazy[0].edit is None
    resolved = await client.code_action_resolve_async(lazy[0])
    assert apply_edit(client, text, uri, resolved.edit) == fixed


@pytest.mark.asyncio
async def test_fix_all_is_not_offered_without_safe_fixes(client: LanguageClient):
    uri = open_doc(client, "train.py", "x = 1\n")
    assert await diagnostics(client, uri) == []
    whole = t.Range(t.Position(0, 0), t.Position(0, 5))
    assert await code_actions(client, uri, whole, only=[t.CodeActionKind.SourceFixAll]) == []


async def fix_all_command(client: LanguageClient, *arguments: Any) -> Any:
    return await client.workspace_execute_command_async(
        t.ExecuteCommandParams(command="torchlint.fixAll", arguments=list(arguments))
    )


@pytest.mark.asyncio
async def test_fix_all_command_applies_every_safe_fix_with_apply_edit(client: LanguageClient):
    assert {"torchlint.fixAll", "torchlint.confirm"} <= set(client.commands)
    text = (
        "import torch\n\n"
        "it = iter(loader)\n"
        'label = "naïve → 😋"; a = it.next()\n'  # non-ASCII before a fix: the client's encoding matters
        "def show():\n"
        "    return it.next()\n"
    )
    uri = open_doc(client, "train.py", text)
    assert [d.code for d in await diagnostics(client, uri)] == ["TL201", "TL201"]
    result = await fix_all_command(client, uri)
    assert result["applied"] is True and result["fixed"] == 2
    (request,) = client.applied_edits
    assert request.label == "torchlint: fix all auto-fixable problems"
    # The test client applied the edit to its copy (checking it is versioned for VS Code).
    fixed = client.texts[uri]
    assert fixed == text.replace("it.next()", "next(it)")
    cst.parse_module(fixed)
    assert client.versions[uri] == 2
    # The server sees the fixed text through the client's didChange: nothing left.
    assert await diagnostics(client, uri) == []
    # Nothing to fix: no edit is sent.
    assert (await fix_all_command(client, uri))["applied"] is False
    assert len(client.applied_edits) == 1
    # The same edit as the source.fixAll.torchlint code action (one code path).
    change_doc(client, uri, text)
    (action,) = await code_actions(client, uri, t.Range(t.Position(0, 0), t.Position(0, 0)), only=[t.CodeActionKind.SourceFixAll])
    result = await fix_all_command(client, uri, client.versions[uri])
    assert result["applied"] is True
    assert client.applied_edits[-1].edit == action.edit
    assert client.texts[uri] == fixed


@pytest.mark.asyncio
async def test_fix_all_command_errors_and_refusals(client: LanguageClient):
    uri = open_doc(client, "train.py", TL201_SOURCE)
    assert len(await diagnostics(client, uri)) == 1
    with pytest.raises(JsonRpcException) as unknown:
        await fix_all_command(client, (client.root / "never_opened.py").as_uri())
    assert unknown.value.code == -32803  # RequestFailed
    assert "not an open Python document" in unknown.value.message
    for bad in ([], [42], [uri, "one"]):
        with pytest.raises(JsonRpcException) as invalid:
            await fix_all_command(client, *bad)
        assert invalid.value.code == -32602, bad  # InvalidParams
    with pytest.raises(JsonRpcException) as stale:
        await fix_all_command(client, uri, client.versions[uri] + 5)
    assert stale.value.code == -32801  # ContentModified: the client asked about another version
    assert client.applied_edits == []
    # The editor may refuse the edit (e.g. the user typed meanwhile): reported, text untouched.
    client.refuse_edits = True
    result = await fix_all_command(client, {"uri": uri, "version": client.versions[uri]})
    assert result["applied"] is False and "refused" in result["message"]
    assert len(client.applied_edits) == 1 and client.texts[uri] == TL201_SOURCE
    # Still serving.
    client.refuse_edits = False
    assert (await fix_all_command(client, uri))["applied"] is True
    assert client.texts[uri] == TL201_FIXED


@pytest.mark.asyncio
async def test_deprecated_rule_related_information_and_unsafe_fix(test_rules_client: LanguageClient):
    c = test_rules_client
    text = "from lib import old_api\n\nold_api()\n"
    uri = open_doc(c, "legacy.py", text)
    (d,) = await diagnostics(c, uri)
    assert d.code == "TL990" and d.severity == t.DiagnosticSeverity.Warning
    assert list(d.tags) == [t.DiagnosticTag.Deprecated]
    (rel,) = d.related_information
    assert rel.message == "`old_api` is imported here"
    assert rel.location.uri == uri and rel.location.range.start == t.Position(0, 16)
    (fix,) = [a for a in await code_actions(c, uri, d.range, [d]) if a.title.startswith("TL990")]
    assert "unsafe" in fix.title and not fix.is_preferred
    assert apply_edit(c, text, uri, fix.edit).endswith("new_api()\n")
    # Unsafe fixes are not part of fix-all.
    assert await code_actions(c, uri, d.range, only=[t.CodeActionKind.SourceFixAll]) == []


# --- robustness -------------------------------------------------------------------


@pytest.mark.asyncio
async def test_a_crashing_rule_is_logged_and_the_rest_still_reported(test_rules_client: LanguageClient):
    c = test_rules_client
    uri = open_doc(c, "crash.py", "explode()\n" + TL201_SOURCE)
    codes = [d.code for d in await diagnostics(c, uri)]
    assert codes == ["TL201"]
    for _ in range(100):
        # (the "rules loaded" line names TL991 too)
        crashes = [m for m in c.log_messages if "TL991" in m.message and "crashed" in m.message]
        if crashes:
            break
        await asyncio.sleep(0.05)
    (crash,) = crashes
    assert crash.type == t.MessageType.Warning
    assert "crashed" in crash.message and "deliberate failure" in crash.message
    # Logged once, not on every keystroke.
    change_doc(c, uri, "explode()\n\n" + TL201_SOURCE)
    assert [d.code for d in await diagnostics(c, uri)] == ["TL201"]
    assert len([m for m in c.log_messages if "TL991" in m.message and "crash.py" in m.message]) <= 2


@pytest.mark.asyncio
async def test_half_typed_code_gives_one_syntax_diagnostic(client: LanguageClient):
    uri = open_doc(client, "train.py", "it = iter(loader)\nfor x in loader\n    batch = it.next()\n")
    (d,) = await diagnostics(client, uri)
    assert d.code == "TL001" and d.range.start.line == 1
    # Still typing: every prefix of a file is linted without the server falling over.
    text = TL201_SOURCE + "def train(model):\n    for images, labels in loader:\n        out = model(images)\n"
    for cut in range(0, len(text), 7):
        change_doc(client, uri, text[:cut])
    change_doc(client, uri, text)
    assert [d.code for d in await diagnostics(client, uri)] == ["TL201"]


@pytest.mark.asyncio
async def test_huge_and_binary_documents_get_a_clear_message(client: LanguageClient):
    huge = "x = 1\n" * (10 * 1024 * 1024 // 6 + 10)
    start = time.monotonic()
    uri = open_doc(client, "huge.py", huge)
    (d,) = await diagnostics(client, uri)
    assert "too large" in d.message and d.severity == t.DiagnosticSeverity.Warning
    assert time.monotonic() - start < 10
    uri2 = open_doc(client, "blob.py", "PNG\x00\x01\x02 binary")
    (d2,) = await diagnostics(client, uri2)
    assert "binary" in d2.message


@pytest.mark.asyncio
async def test_unknown_and_malformed_requests_get_errors_and_the_server_goes_on(client: LanguageClient):
    with pytest.raises(JsonRpcException) as unknown:
        await raw_request(client, "torchlint/noSuchMethod", {})
    assert unknown.value.code == -32601  # MethodNotFound
    with pytest.raises(JsonRpcException) as malformed:
        await raw_request(client, t.TEXT_DOCUMENT_HOVER, {"textDocument": {}, "position": "here"})
    assert malformed.value.code == -32602  # InvalidParams
    with pytest.raises(JsonRpcException) as malformed:
        await raw_request(client, t.TEXT_DOCUMENT_CODE_ACTION, {"textDocument": {"uri": 7}})
    assert malformed.value.code == -32602
    with pytest.raises(JsonRpcException):
        await client.workspace_execute_command_async(t.ExecuteCommandParams(command="torchlint.confirm", arguments=[42]))
    # Still serving.
    uri = open_doc(client, "train.py", TL201_SOURCE)
    assert [d.code for d in await diagnostics(client, uri)] == ["TL201"]


@pytest.mark.asyncio
async def test_cancelled_request_is_answered_as_cancelled(neovim: LanguageClient):
    # ~1.5 MB of code with findings: linting takes long enough to cancel in flight.
    body = "it = iter(loader)\n" + "batch = it.next()\nx = [i * 2 for i in range(10)]\n" * 20000
    uri = open_doc(neovim, "big.py", body)
    request = asyncio.ensure_future(neovim.protocol.send_request_async(
        t.TEXT_DOCUMENT_DIAGNOSTIC, t.DocumentDiagnosticParams(text_document=t.TextDocumentIdentifier(uri)), msg_id="pull-1"
    ))
    await asyncio.sleep(0.2)
    neovim.protocol.notify(t.CANCEL_REQUEST, t.CancelParams(id="pull-1"))
    with pytest.raises(JsonRpcException) as cancelled:
        await asyncio.wait_for(request, 30)
    assert cancelled.value.code == -32800  # RequestCancelled
    small = open_doc(neovim, "small.py", TL201_SOURCE)
    assert [d.code for d in await diagnostics(neovim, small)] == ["TL201"]


# --- configuration ------------------------------------------------------------------


@pytest.mark.asyncio
async def test_client_settings_select_and_ignore(client: LanguageClient):
    uri = open_doc(client, "train.py", TL201_SOURCE)
    assert len(await diagnostics(client, uri)) == 1
    before = len(client.published)
    client.workspace_did_change_configuration(
        t.DidChangeConfigurationParams(settings={"torchlint": {"ignore": ["TL201"]}})
    )
    if client.push:
        assert await wait_published(client, uri, after=before) == []
    assert await diagnostics(client, uri) == []
    before = len(client.published)
    client.workspace_did_change_configuration(
        t.DidChangeConfigurationParams(settings={"torchlint": {"ignore": [], "select": ["TL2"]}})
    )
    if client.push:
        assert [d.code for d in await wait_published(client, uri, after=before)] == ["TL201"]
    assert [d.code for d in await diagnostics(client, uri)] == ["TL201"]
    # Each change is the client's whole configuration: a key left out is back to its default.
    before = len(client.published)
    client.workspace_did_change_configuration(t.DidChangeConfigurationParams(settings={"torchlint": {"ignore": ["TL2"]}}))
    assert await diagnostics(client, uri, after=before) == []
    before = len(client.published)
    client.workspace_did_change_configuration(t.DidChangeConfigurationParams(settings={"torchlint": {"logLevel": "info"}}))
    if client.push:
        assert [d.code for d in await wait_published(client, uri, after=before)] == ["TL201"]
    assert [d.code for d in await diagnostics(client, uri)] == ["TL201"]


@pytest.mark.asyncio
async def test_settings_from_initialization_options_and_bad_values(tmp_path):
    async with session(tmp_path, "vscode", {"select": ["TL1"], "logLevel": "loud"}) as c:
        uri = open_doc(c, "train.py", TL201_SOURCE)
        assert await diagnostics(c, uri) == []  # TL201 is not in TL1
        assert any("logLevel" in m.message for m in c.messages)


@pytest.mark.asyncio
async def test_settings_read_through_workspace_configuration(tmp_path):
    # VS Code sends an empty didChangeConfiguration and answers workspace/configuration.
    async with session(tmp_path, "vscode") as c:
        uri = open_doc(c, "train.py", TL201_SOURCE)
        assert len(await diagnostics(c, uri)) == 1
        c.set_configuration({"ignore": ["TL201"]}, section="torchlint")
        before = len(c.published)
        c.workspace_did_change_configuration(t.DidChangeConfigurationParams(settings=None))
        assert await wait_published(c, uri, after=before) == []


# --- hover ----------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_hover_on_a_finding_shows_the_rule_documentation(client: LanguageClient):
    uri = open_doc(client, "train.py", TL201_SOURCE)
    (d,) = await diagnostics(client, uri)
    hover = await client.text_document_hover_async(t.HoverParams(t.TextDocumentIdentifier(uri), t.Position(1, 25)))
    assert hover.contents.kind == t.MarkupKind.Markdown
    text = hover.contents.value
    assert "**TL201**" in text and "## What it does" in text and "## Fix safety" in text
    assert d.code_description.href in text
    assert await client.text_document_hover_async(t.HoverParams(t.TextDocumentIdentifier(uri), t.Position(0, 2))) is None


# --- confirm by running ----------------------------------------------------------------


@pytest.mark.asyncio
async def test_confirm_is_offered_only_when_the_runtime_is_enabled(client: LanguageClient):
    uri = open_doc(client, "train.py", TL201_SOURCE)
    (d,) = await diagnostics(client, uri)
    assert not [a for a in await code_actions(client, uri, d.range, [d]) if a.command]
    with pytest.raises(JsonRpcException) as off:
        await client.workspace_execute_command_async(t.ExecuteCommandParams(command="torchlint.confirm", arguments=[{"uri": uri}]))
    assert "runtime.enabled" in off.value.message
    client.workspace_did_change_configuration(t.DidChangeConfigurationParams(settings={"torchlint": {"runtime": {"enabled": True}}}))
    (confirm,) = [a for a in await code_actions(client, uri, d.range, [d]) if a.command]
    assert confirm.title == "Confirm TL201 by running the code"
    assert confirm.command.command == "torchlint.confirm"
    assert list(confirm.command.arguments) == [{"uri": uri, "code": "TL201", "line": 2, "column": 17}]
    runtime_ready = importlib.util.find_spec("torchlint.runtime") is not None and hasattr(
        __import__("torchlint.runtime", fromlist=["confirm_findings"]), "confirm_findings"
    )
    if not runtime_ready:
        with pytest.raises(JsonRpcException) as missing:
            await client.workspace_execute_command_async(
                t.ExecuteCommandParams(command=confirm.command.command, arguments=confirm.command.arguments)
            )
        assert "runtime checker is not available" in missing.value.message


@pytest.mark.asyncio
async def test_confirm_reports_progress_and_updates_the_diagnostic(test_rules_client: LanguageClient):
    # The server's side of "Confirm by running", against the documented runtime
    # Runtime interface (the test server is given FakeRuntime).
    c = test_rules_client
    uri = open_doc(c, "train.py", TL201_SOURCE)
    (d,) = await diagnostics(c, uri)
    (confirm,) = [a for a in await code_actions(c, uri, d.range, [d]) if a.command]
    before = len(c.published)
    result = await c.workspace_execute_command_async(
        t.ExecuteCommandParams(command=confirm.command.command, arguments=confirm.command.arguments)
    )
    assert result["confirmed"] == 1
    (token,) = [k for k in c.progress_reports if str(k).startswith("torchlint-confirm-")]
    kinds = [type(v).__name__ for v in c.progress_reports[token]]
    assert kinds == ["WorkDoneProgressBegin", "WorkDoneProgressEnd"]
    (d2,) = await diagnostics(c, uri, after=before)
    assert "confirmed by running: AttributeError" in d2.message
    if c.profile == "vscode":
        assert any("_SingleProcessDataLoaderIter" in r.message for r in d2.related_information)
    # The evidence belongs to that text: an edit drops it.
    change_doc(c, uri, TL201_SOURCE + "\n")
    (d3,) = await diagnostics(c, uri, after=len(c.published))
    assert "confirmed" not in d3.message


@pytest.mark.torch
@pytest.mark.slow
@pytest.mark.asyncio
async def test_confirm_by_running_with_the_real_runtime_checker(vscode: LanguageClient):
    if importlib.util.find_spec("torch") is None:
        pytest.skip("torch is not installed")
    text = (
        "import torch\n"
        "from torch.utils.data import DataLoader, TensorDataset\n\n"
        "loader = DataLoader(TensorDataset(torch.randn(8, 3), torch.arange(8)), batch_size=4)\n"
        "dataiter = iter(loader)\n"
        "images, labels = dataiter.next()\n"
    )
    vscode.workspace_did_change_configuration(t.DidChangeConfigurationParams(settings={"torchlint": {"runtime": {"enabled": True}}}))
    uri = open_doc(vscode, "peek.py", text)
    (d,) = await diagnostics(vscode, uri)
    (confirm,) = [a for a in await code_actions(vscode, uri, d.range, [d]) if a.command]
    before = len(vscode.published)
    result = await asyncio.wait_for(
        vscode.workspace_execute_command_async(
            t.ExecuteCommandParams(command=confirm.command.command, arguments=confirm.command.arguments)
        ),
        240,
    )
    if result["couldNotRun"]:
        pytest.skip(f"the sandbox cannot run here: {result['message']}")
    assert result["confirmed"] == 1
    (d2,) = await diagnostics(vscode, uri, after=before)
    assert "[confirmed by running: AttributeError" in d2.message and "has no attribute 'next'" in d2.message
    assert any("confirmed by running" in r.message for r in d2.related_information)


if __name__ == "__main__" and sys.argv[1:] == ["--with-test-rules"]:
    # This file as a server: torchlint with the test rules and a stand-in runtime.
    from torchlint.server import main

    # Rules are named by module to the analysis processes: use this file's importable name.
    import test_server

    sys.exit(main([], extra_rules=(test_server.OldApiCall, test_server.Explodes), runtime=test_server.FakeRuntime()))
