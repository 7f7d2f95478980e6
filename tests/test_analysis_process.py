"""An analysis process's side (torchlint/server/child.py), run on a thread of this process.

Its loop is fed through pipes as the server feeds it: the message framing, the
``prelint`` of the first document opened (launch.py sends it before the server
can handle the ``didOpen``) and the ``lint`` job that then uses its report only
when it asks for exactly that lint.
"""

from __future__ import annotations

import os
import threading

import pytest

from torchlint.engine import LintOptions, lint_source
from torchlint.server import child, early
from torchlint.server.settings import ProjectConfigs, parse_settings
from torchlint.slices import IncrementalLinter

SOURCE = "import torch\nit = iter(loader)\nbatch = it.next()\nx = torch.zeros(3)\n"


@pytest.fixture(autouse=True)
def _fresh_selections():
    # Resolved selections are cached per process (config._resolve); other tests make the
    # rule registry fail on purpose and must not find this module's selections there.
    from torchlint import config

    yield
    config._resolve.cache_clear()


def test_messages_cross_the_pipe_whole_whatever_their_size():
    r, w = os.pipe()
    big = "x" * (3 << 20)  # far more than a pipe holds: the reader must keep reading
    sent = [("lint", big, "/p/a.py", None), ("rules", "", None, None), {"nested": [1, 2.5, None]}]
    writer = threading.Thread(target=lambda: [child.send(w, m) for m in sent])
    writer.start()
    try:
        assert [child.recv(r) for _ in sent] == sent
    finally:
        writer.join()
        os.close(w)
    with pytest.raises(EOFError):
        child.recv(r)
    os.close(r)


class Loop:
    """child.serve on a thread, with the pipes the server would hold."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.lints: list[str] = []
        real = IncrementalLinter.lint

        def counting(linter, source, path, options):
            self.lints.append(source)
            return real(linter, source, path, options)

        monkeypatch.setattr(IncrementalLinter, "lint", counting)
        monkeypatch.setattr(child.gc, "freeze", lambda: None)  # (this is the test process)
        to_child_r, self.to_child = os.pipe()
        self.from_child, from_child_w = os.pipe()
        self.thread = threading.Thread(target=child.serve, args=(to_child_r, from_child_w, ()), daemon=True)
        self.thread.start()
        self._fds = (to_child_r, from_child_w)

    def send(self, job: tuple) -> None:
        child.send(self.to_child, job)

    def ask(self, job: tuple):
        self.send(job)
        status, value = child.recv(self.from_child)
        assert status == "ok", value
        return value

    def close(self) -> None:
        os.close(self.to_child)
        self.thread.join(30)
        assert not self.thread.is_alive()
        for fd in (*self._fds, self.from_child):
            os.close(fd)


def service_codes(path: str, options: object, cwd: str):
    """The codes the service lints ``path`` with (service.file_config)."""
    return ProjectConfigs(cwd).for_file(path, parse_settings(options)).codes


def codes_of(report) -> list[tuple[str, int]]:
    return [(f.code, f.range.line) for f in report.findings]


def test_the_lint_of_the_document_opened_first_is_the_prelints_report(tmp_path, monkeypatch):
    import gc

    path = str(tmp_path / "train.py")
    gc.disable()  # as child_main starts: the collector is off while the process loads the engine
    loop = Loop(monkeypatch)
    try:
        loop.send(("prelint", SOURCE, (tmp_path / "train.py").as_uri(), ("python", None, str(tmp_path))))
        assert loop.ask(("rules", "", None, None))["TL201"].endswith("#tl201")
        assert gc.isenabled()  # ...and back on before the first job
        report = loop.ask(("lint", SOURCE, path, service_codes(path, None, str(tmp_path))))
        assert loop.lints == [SOURCE]  # linted once: by the prelint
        expected = lint_source(SOURCE, path, LintOptions())
        assert codes_of(report) == codes_of(expected) == [("TL201", 3)]
        assert report.findings == expected.findings
        # Saved as it is: linted again (the kept report was used once and let go).
        again = loop.ask(("lint", SOURCE, path, service_codes(path, None, str(tmp_path))))
        assert loop.lints == [SOURCE, SOURCE] and again.findings == expected.findings
    finally:
        gc.enable()
        loop.close()


@pytest.mark.parametrize(
    ("edit", "options"),
    [
        pytest.param(lambda s: s + "y = it.next()\n", None, id="the text changed"),
        pytest.param(lambda s: s, {"ignore": ["TL201"]}, id="other rules"),
    ],
)
def test_a_prelint_that_guessed_wrong_is_not_used(tmp_path, monkeypatch, edit, options):
    path = str(tmp_path / "train.py")
    source = edit(SOURCE)
    loop = Loop(monkeypatch)
    try:
        loop.send(("prelint", SOURCE, (tmp_path / "train.py").as_uri(), ("python", None, str(tmp_path))))
        codes = service_codes(path, options, str(tmp_path))
        report = loop.ask(("lint", source, path, codes))
        assert loop.lints == [SOURCE, source]
        expected = lint_source(source, path, LintOptions(codes=codes.resolve()))
        assert report.findings == expected.findings
        assert codes_of(report) == ([("TL201", 3), ("TL201", 5)] if options is None else [])
    finally:
        loop.close()


def test_the_prelint_uses_the_projects_settings_as_the_service_does(tmp_path, monkeypatch):
    (tmp_path / "pyproject.toml").write_text('[tool.torchlint]\nignore = ["TL201"]\n')
    path = str(tmp_path / "train.py")
    loop = Loop(monkeypatch)
    try:
        loop.send(("prelint", SOURCE, (tmp_path / "train.py").as_uri(), ("python", {"torchlint": {}}, str(tmp_path))))
        report = loop.ask(("lint", SOURCE, path, service_codes(path, {"torchlint": {}}, str(tmp_path))))
        assert loop.lints == [SOURCE] and report.findings == []
    finally:
        loop.close()


@pytest.mark.parametrize(
    ("uri", "language"),
    [
        ("file:///tmp/notes.md", "markdown"),
        ("untitled:Untitled-1", "python"),
        ("file:///tmp/x.txt", None),
    ],
)
def test_no_prelint_for_what_the_service_does_not_lint_as_python(tmp_path, monkeypatch, uri, language):
    loop = Loop(monkeypatch)
    try:
        loop.send(("prelint", SOURCE, uri, (language, None, str(tmp_path))))
        assert loop.ask(("rules", "", None, None))  # (answered: the prelint was taken in)
        assert loop.lints == []
    finally:
        loop.close()


def frame(message: bytes) -> bytes:
    return b"Content-Length: %d\r\n\r\n" % len(message) + message


def test_the_first_document_opened_is_found_among_complete_messages():
    init = frame(b'{"jsonrpc":"2.0","id":1,"method":"initialize","params":{}}')
    opened = frame(b'{"jsonrpc":"2.0","method":"textDocument/didOpen","params":{"textDocument":'
                   b'{"uri":"file:///a.py","languageId":"python","version":1,"text":"x = 1\\n"}}}')
    data = init + frame(b'{"jsonrpc":"2.0","method":"initialized","params":{}}') + opened
    assert [m.get("method") for m in early.messages(data)] == ["initialize", "initialized", "textDocument/didOpen"]
    assert early.first_document(data) == {"uri": "file:///a.py", "languageId": "python", "version": 1, "text": "x = 1\n"}
    assert early.first_document(data[:-5]) is None  # not all there yet
    assert early.first_document(init) is None
    assert early.first_document(b"Content-Length: x\r\n\r\n" + opened) is None  # bad framing: left to pygls
