"""The language server's service without LSP transport: a fake client and documents, and
analysis jobs the test releases one by one (explicit synchronisation, no sleeping)."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace

import pytest
from lsprotocol import types as lsp

from torchlint.diagnostics import Confirmation
from torchlint.engine import LintOptions, lint_source
from torchlint.fixes import fix_source
from torchlint.server.service import ContentModified, InvalidParams, RequestFailed, TorchlintService

TL201 = "dataiter = iter(trainloader)\nimages, labels = dataiter.next()\n"
TL201_FIXED = "dataiter = iter(trainloader)\nimages, labels = next(dataiter)\n"


class FakeClient:
    def __init__(self) -> None:
        self.published: list[tuple[str, int | None, list[str]]] = []
        self.logs: list[str] = []
        self.shown: list[str] = []
        self.refreshes = 0
        self.edits: list[lsp.WorkspaceEdit] = []
        self.accept_edits = True
        self.progress: list[tuple] = []
        self.published_event = asyncio.Event()

    def publish(self, uri, version, diagnostics):
        self.published.append((uri, version, [d.code for d in diagnostics]))
        self.published_event.set()

    def log_message(self, level, message):
        self.logs.append(message)

    def show_message(self, level, message):
        self.shown.append(message)

    def refresh_diagnostics(self):
        self.refreshes += 1

    async def apply_edit(self, edit, label):
        self.edits.append(edit)
        return (True, None) if self.accept_edits else (False, "refused")

    async def begin_progress(self, title, message, on_cancel):
        self.progress.append(("begin", title, message))
        client = self

        class Reporter:
            def report(self, message, percentage):
                client.progress.append(("report", message, percentage))

            def end(self, message):
                client.progress.append(("end", message))

        return Reporter()


class GatedPool:
    """Analysis jobs that finish when the test says so, in the order it chooses."""

    closed = False

    def __init__(self) -> None:
        self.jobs: list[tuple[tuple, asyncio.Event]] = []
        self.started = asyncio.Event()

    def warm_up(self) -> None:
        pass

    def close(self) -> None:
        self.closed = True

    async def run(self, job, wanted):
        gate = asyncio.Event()
        self.jobs.append((job, gate))
        self.started.set()
        await gate.wait()
        kind, source, path, codes = job
        options = LintOptions(codes=codes)
        if kind == "lint":
            return lint_source(source, path, options)
        return fix_source(source, lambda s: lint_source(s, path, options).findings, unsafe=False)[0]

    async def wait_for_jobs(self, n: int) -> None:
        while len(self.jobs) < n:
            self.started.clear()
            await asyncio.wait_for(self.started.wait(), 10)


class FakeRuntime:
    def __init__(self) -> None:
        self.calls = []

    def confirmable(self, finding):
        return True

    def confirm(self, source, path, findings, *, cancel, progress, context):
        self.calls.append((source, [f.code for f in findings], len(context)))
        for i, f in enumerate(findings):
            progress(i, len(findings), f)
        return [f.with_confirmation(Confirmation("confirmed", "AttributeError: no attribute 'next'")) for f in findings]

    def close(self):
        pass


def make_service(tmp_path, pool=None, options=None, caps=None, runtime=None):
    client, docs = FakeClient(), {}
    service = TorchlintService(client, SimpleNamespace(get=docs.get), pool=pool, runtime=runtime or FakeRuntime())
    service.configs = type(service.configs)(str(tmp_path))
    service.initialize(caps or lsp.ClientCapabilities(), {"debounceMs": 0, **(options or {})})
    return service, client, docs


def open_doc(service, docs, uri, text, version=1):
    docs[uri] = (version, text)
    return service.did_open(uri, "python")


@pytest.mark.asyncio
async def test_a_lint_that_finishes_late_is_never_published(tmp_path):
    pool = GatedPool()
    service, client, docs = make_service(tmp_path, pool=pool)
    uri = (tmp_path / "train.py").as_uri()
    first = open_doc(service, docs, uri, "x = 1\n")
    await pool.wait_for_jobs(1)
    docs[uri] = (2, TL201)
    second = service.did_change(uri)
    await pool.wait_for_jobs(2)
    pool.jobs[1][1].set()  # the newer version finishes first
    assert (await second).version == 2
    pool.jobs[0][1].set()  # then the old one
    assert await first is None
    assert client.published == [(uri, 2, ["TL201"])]


@pytest.mark.asyncio
async def test_an_older_lint_of_the_same_version_does_not_overwrite_a_newer_one(tmp_path):
    # The rule the end-to-end tests rely on instead of waiting: once a lint is published,
    # no lint scheduled before it can publish.
    pool = GatedPool()
    service, client, docs = make_service(tmp_path, pool=pool)
    uri = (tmp_path / "train.py").as_uri()
    older = open_doc(service, docs, uri, TL201)
    await pool.wait_for_jobs(1)
    newer = service.schedule(uri, 0)  # e.g. a save or a settings change re-lints the same version
    await pool.wait_for_jobs(2)
    pool.jobs[1][1].set()
    await newer
    published = service.docs[uri].analysis
    pool.jobs[0][1].set()
    await older
    assert len(client.published) == 1
    assert service.docs[uri].analysis is published


@pytest.mark.asyncio
async def test_debounce_only_the_last_edit_of_a_burst_is_linted(tmp_path):
    pool = GatedPool()
    service, client, docs = make_service(tmp_path, pool=pool, options={"debounceMs": 50})
    uri = (tmp_path / "train.py").as_uri()
    opened = open_doc(service, docs, uri, "x = 1\n")
    await pool.wait_for_jobs(1)
    pool.jobs[0][1].set()
    await opened
    tasks = []
    for v in range(2, 7):
        docs[uri] = (v, "it = iter(loader)\n" + "\n" * v + "batch = it.next()\n")
        tasks.append(service.did_change(uri))
    await pool.wait_for_jobs(2)
    pool.jobs[1][1].set()
    results = await asyncio.gather(*tasks)
    assert [r is not None for r in results] == [False] * 4 + [True]
    assert len(pool.jobs) == 2  # the four superseded edits were never linted
    assert [(v, codes) for _, v, codes in client.published] == [(1, []), (6, ["TL201"])]


@pytest.mark.asyncio
async def test_settings_change_relints_and_close_clears(tmp_path):
    service, client, docs = make_service(tmp_path)
    uri = (tmp_path / "train.py").as_uri()
    await open_doc(service, docs, uri, TL201)
    service.change_settings({"torchlint": {"ignore": ["TL201"]}})
    await service.docs[uri].task
    service.change_settings({"torchlint": {"ignore": ["TL2"], "logLevel": "loud"}})
    assert any("logLevel" in m for m in client.shown)
    await service.docs[uri].task
    # A key left out falls back to the initialization options, not to the previous value.
    service.change_settings({"torchlint": {}})
    await service.docs[uri].task
    service.did_close(uri)
    assert [codes for _, _, codes in client.published] == [["TL201"], [], [], ["TL201"], []]
    assert service.docs == {}


@pytest.mark.asyncio
async def test_fix_all_applies_through_the_client_and_checks_its_arguments(tmp_path):
    service, client, docs = make_service(
        tmp_path, caps=lsp.ClientCapabilities(workspace=lsp.WorkspaceClientCapabilities(apply_edit=True))
    )
    uri = (tmp_path / "train.py").as_uri()
    await open_doc(service, docs, uri, TL201)
    for bad in ([], [42], [uri, "one"], [{"uri": uri, "version": True}]):
        with pytest.raises(InvalidParams):
            await service.fix_all(bad)
    with pytest.raises(RequestFailed, match="not an open Python document"):
        await service.fix_all([(tmp_path / "other.py").as_uri()])
    with pytest.raises(ContentModified):
        await service.fix_all([uri, 7])
    client.accept_edits = False
    assert (await service.fix_all([uri]))["message"] == "not applied: refused"
    client.accept_edits = True
    assert await service.fix_all([{"uri": uri, "version": 1}]) == {"applied": True, "fixed": 1, "message": "fixed 1 problem"}
    (edit,) = client.edits[-1].changes[uri]
    assert edit.new_text == TL201_FIXED.splitlines(keepends=True)[1]


@pytest.mark.asyncio
async def test_fix_all_needs_a_client_that_applies_edits(tmp_path):
    service, client, docs = make_service(tmp_path)
    uri = (tmp_path / "train.py").as_uri()
    await open_doc(service, docs, uri, TL201)
    with pytest.raises(RequestFailed, match="cannot apply workspace edits"):
        await service.fix_all([uri])


@pytest.mark.asyncio
async def test_confirm_runs_the_runtime_reports_progress_and_republishes(tmp_path):
    runtime = FakeRuntime()
    caps = lsp.ClientCapabilities(window=lsp.WindowClientCapabilities(work_done_progress=True))
    service, client, docs = make_service(tmp_path, caps=caps, runtime=runtime)
    uri = (tmp_path / "train.py").as_uri()
    await open_doc(service, docs, uri, TL201 + "again = dataiter.next()\n")
    with pytest.raises(RequestFailed, match="runtime.enabled"):
        await service.confirm([{"uri": uri}])
    service.change_settings({"runtime": {"enabled": True}})
    with pytest.raises(InvalidParams):
        await service.confirm([42])
    result = await service.confirm([{"uri": uri, "code": "TL201", "line": 3}])
    assert result == {"confirmed": 1, "notReproduced": 0, "couldNotRun": 0, "message": "1 confirmed"}
    # Only the finding asked about ran, with the file's other findings as context.
    assert runtime.calls == [(TL201 + "again = dataiter.next()\n", ["TL201"], 2)]
    await asyncio.sleep(0)  # progress reports are sent from the event loop
    assert [p[0] for p in client.progress] == ["begin", "report", "end"]
    assert client.progress[-1] == ("end", "1 confirmed")
    a = service.docs[uri].analysis
    assert [f.confirmation is not None for f in a.findings] == [False, True]
    assert "confirmed by running" in a.diagnostics[1].message


@pytest.mark.asyncio
async def test_confirm_without_the_runtime_checker_is_a_request_error(tmp_path):
    class Missing(FakeRuntime):
        def confirm(self, *args, **kwargs):
            from torchlint.server.confirm import RuntimeUnavailable

            raise RuntimeUnavailable("the runtime checker is not available in this installation")

    service, client, docs = make_service(tmp_path, options={"runtime": {"enabled": True}}, runtime=Missing())
    uri = (tmp_path / "train.py").as_uri()
    await open_doc(service, docs, uri, TL201)
    with pytest.raises(RequestFailed, match="not available"):
        await service.confirm([uri])


@pytest.mark.asyncio
async def test_pull_and_hover_answer_for_the_current_text(tmp_path):
    caps = lsp.ClientCapabilities(text_document=lsp.TextDocumentClientCapabilities(diagnostic=lsp.DiagnosticClientCapabilities()))
    service, client, docs = make_service(tmp_path, caps=caps)
    assert service.features.pull and service.features.push
    uri = (tmp_path / "train.py").as_uri()
    open_doc(service, docs, uri, TL201)
    first = await service.pull(uri, None)
    assert [d.code for d in first.items] == ["TL201"]
    assert (await service.pull(uri, first.result_id)).kind == "unchanged"
    hover = await service.hover(uri, lsp.Position(1, 20))
    assert "**TL201**" in hover.contents.value
    docs[uri] = (2, TL201_FIXED)
    service.did_change(uri)
    assert list((await service.pull(uri, first.result_id)).items) == []
    assert await service.hover(uri, lsp.Position(1, 20)) is None


@pytest.mark.asyncio
async def test_non_python_documents_are_not_linted(tmp_path):
    # (Markdown is linted when the client sends it: the editor decides, see docs/documents.md.)
    service, client, docs = make_service(tmp_path)
    docs["file:///notes.txt"] = (1, "it.next()\n")
    assert service.did_open("file:///notes.txt", "plaintext") is None
    assert service.docs == {} and client.published == []


def test_handlers_are_importable_on_their_own_and_only_delegate():
    from torchlint.server.handlers import did_change, did_open

    calls = []
    ls = SimpleNamespace(service=SimpleNamespace(did_open=lambda *a: calls.append(("open", *a)), did_change=lambda *a: calls.append(("change", *a))))
    did_open(ls, lsp.DidOpenTextDocumentParams(lsp.TextDocumentItem("file:///a.py", "python", 1, "x = 1\n")))
    did_change(ls, lsp.DidChangeTextDocumentParams(lsp.VersionedTextDocumentIdentifier(2, "file:///a.py"), []))
    assert calls == [("open", "file:///a.py", "python"), ("change", "file:///a.py")]


@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("project", "editor", "reported"),
    [
        # editorFirst (the default): an editor select no longer drops the project's ignore ...
        ('ignore = ["TL201"]', {"select": ["TL2"]}, False),
        # ... and replaces the project's select.
        ('select = ["TL1"]', {"select": ["TL2"]}, True),
        ('select = ["TL1"]', {"select": ["TL2"], "configurationPreference": "filesystemFirst"}, False),
        ('select = ["TL1"]', {"configurationPreference": "filesystemFirst"}, False),
        ('ignore = ["TL201"]', {"configurationPreference": "editorOnly"}, True),
        ('ignore = ["TL201"]', {"select": ["TL2"], "configurationPreference": "editorOnly"}, True),
        ('select = ["TL2"]', {"ignore": ["TL201"]}, False),
        ("", {"select": ["TL1"], "configurationPreference": "filesystemFirst"}, False),
    ],
)
async def test_configuration_preference_combines_editor_and_project_settings(tmp_path, project, editor, reported):
    (tmp_path / "pyproject.toml").write_text(f"[tool.torchlint]\n{project}\n")
    service, client, docs = make_service(tmp_path, options=editor)
    uri = (tmp_path / "train.py").as_uri()
    await open_doc(service, docs, uri, TL201)
    assert client.published == [(uri, 1, ["TL201"] if reported else [])]


@pytest.mark.asyncio
async def test_changing_configuration_preference_relints(tmp_path):
    (tmp_path / "pyproject.toml").write_text('[tool.torchlint]\nignore = ["TL201"]\n')
    service, client, docs = make_service(tmp_path)
    uri = (tmp_path / "train.py").as_uri()
    await open_doc(service, docs, uri, TL201)
    service.change_settings({"configurationPreference": "editorOnly"})
    await service.docs[uri].task
    service.change_settings({"configurationPreference": "sideways"})  # reported; back to the default
    assert any("configurationPreference" in m for m in client.shown)
    await service.docs[uri].task
    assert [codes for _, _, codes in client.published] == [[], ["TL201"], []]


@pytest.mark.asyncio
async def test_adaptive_debounce(tmp_path):
    service, client, docs = make_service(tmp_path, options={"debounceMs": 150})
    now = [100.0]
    service.clock = lambda: now[0]
    uri = (tmp_path / "train.py").as_uri()
    st = service.open(uri)
    assert service.debounce(st) == 0  # never linted: the first lint is not delayed
    st.lint_s = 0.004  # a small file: the wait is about one lint, not the whole setting
    now[0] += 0.1
    assert service.debounce(st) == pytest.approx(0.02)
    now[0] += 0.1
    st.lint_s = 0.09
    assert service.debounce(st) == pytest.approx(0.09)
    st.lint_s = 0.5  # a slow file: capped at debounceMs
    now[0] += 0.1
    assert service.debounce(st) == pytest.approx(0.15)
    now[0] += 1.5  # typing resumed after a pause: at once
    assert service.debounce(st) == 0
    now[0] += 0.1
    assert service.debounce(st) == pytest.approx(0.15)
    service.change_settings({"debounceMs": 0})  # no debounce at all
    now[0] += 0.1
    assert service.debounce(st) == 0
    # The measured lint time is the document's own.
    import time

    service.clock = time.monotonic
    await open_doc(service, docs, uri, TL201)
    assert 0 < service.docs[uri].lint_s < 30


@pytest.mark.asyncio
async def test_version_and_rules_are_logged_at_start(tmp_path):
    service, client, docs = make_service(tmp_path)  # logLevel "warning": these are shown anyway
    service.initialized()
    assert any(m.startswith("torchlint 0.") and "Python" in m for m in client.logs)
    await open_doc(service, docs, (tmp_path / "a.py").as_uri(), "x = 1\n")
    (rules,) = [m for m in client.logs if "rules loaded" in m]
    assert "TL001" in rules


def test_the_server_answers_initialize_without_libcst_the_rules_or_torch():
    # Importing them costs more than the initialize budget: they load on the first lint.
    import subprocess
    import sys

    heavy = ("libcst", "torch", "torchlint.rules", "torchlint.engine", "torchlint.docs")
    code = (
        "import sys, torchlint.server, torchlint.server.app, torchlint.server.handlers\n"
        "from torchlint.server.app import create_server\n"
        "create_server()\n"
        f"print(sorted(m for m in {heavy!r} if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


@pytest.mark.slow
def test_the_server_process_never_loads_the_rules_to_lint(tmp_path):
    # Its analysis processes resolve the selection and say which rules there are and where
    # their documentation is: the server process stays without libcst and the rules (15 MB,
    # unless the editor's settings select rules, which are then checked against them)
    # and 0.4 s of CPU before the first diagnostics).
    import subprocess
    import sys

    code = f"""
import asyncio, sys
from lsprotocol import types as lsp
from torchlint.server.service import TorchlintService

class Client:
    def __init__(self): self.logs, self.published = [], []
    def publish(self, uri, version, diagnostics): self.published.append([(d.code, d.code_description.href) for d in diagnostics])
    def log_message(self, level, message): self.logs.append(message)
    def show_message(self, level, message): pass
    def refresh_diagnostics(self): pass

class Docs:
    def get(self, uri): return (1, "it = iter(loader)\\nbatch = it.next()\\n")
    def notebook(self, uri): return None

async def main():
    client = Client()
    service = TorchlintService(client, Docs())
    service.initialize(lsp.ClientCapabilities(), {{}})
    await service.did_open({(tmp_path / "a.py").as_uri()!r}, "python")
    service.shutdown()
    print(client.published, [m for m in client.logs if "rules loaded" in m])
    print(sorted(m for m in ("libcst", "torchlint.rules", "torchlint.engine", "torchlint.docs") if m in sys.modules))

asyncio.run(main())
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    published, imported = out.stdout.strip().splitlines()
    assert published.startswith("[[('TL201', 'https://github.com/torchlint/torchlint/blob/main/docs/rules.md#tl201')]] ['torchlint: ")
    assert "rules loaded (TL001.." in published
    assert imported == "[]"


def test_the_projects_max_file_size_applies_in_the_editor(tmp_path):
    from torchlint.server.service import _unlintable
    from torchlint.server.settings import ClientSettings, ProjectConfigs

    (tmp_path / "pyproject.toml").write_text('[tool.torchlint]\nmax-file-size = "2KB"\n')
    path = str(tmp_path / "gen.py")
    config = ProjectConfigs(cwd=str(tmp_path)).for_file(path, ClientSettings())
    assert config.max_bytes == 2048
    assert _unlintable("x = 1\n" * 600, path, config.max_bytes) == (
        "file is too large to lint (4 KB > 2 KB); skipped (the `max-file-size` setting raises the limit)"
    )
    assert _unlintable("x = 1\n" * 600, path) is None  # the default limit: 1 MB


@pytest.mark.asyncio
async def test_confirm_in_a_markdown_buffer_tells_the_runtime_it_is_a_document(tmp_path):
    class DocumentRuntime(FakeRuntime):
        def confirm(self, source, path, findings, *, cancel, progress, context, language="python"):
            self.calls.append((language, [(f.code, f.range.line) for f in findings]))
            return [f.with_confirmation(Confirmation("could-not-run", "`imshow` is never defined in this document")) for f in findings]

    runtime = DocumentRuntime()
    service, client, docs = make_service(tmp_path, options={"runtime": {"enabled": True}}, runtime=runtime)
    uri = (tmp_path / "tutorial.md").as_uri()
    docs[uri] = (1, "# Peek\n\n```python\nimport torch\nit = iter(torch.utils.data.DataLoader([1]))\nbatch = it.next()\n```\n")
    await service.did_open(uri, "markdown")
    a = await service.analysis_for(uri)
    (f,) = [f for f in a.findings if f.code == "TL201"]
    actions = await service.code_actions(uri, a.diagnostics[0].range, [], ["quickfix.torchlint.confirm"])
    assert [x.title for x in actions] == ["Confirm TL201 by running the code"]
    assert actions[0].command.arguments == [{"uri": uri, "code": "TL201", "line": 6, "column": 8}]
    result = await service.confirm(actions[0].command.arguments)
    assert result["couldNotRun"] == 1
    assert runtime.calls == [("markdown", [("TL201", 6)])]
    a = service.docs[uri].analysis
    assert "`imshow` is never defined in this document" in a.diagnostics[0].message
    # A .py file's runtime call stays as it was (no language keyword: older Runtime implementations).
    py = (tmp_path / "t.py").as_uri()
    await open_doc(service, docs, py, TL201)
    await service.confirm([{"uri": py}])
    assert runtime.calls[-1] == ("python", [("TL201", 2)])
