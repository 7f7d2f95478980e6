"""The server's wire: bad framing never leaves it deaf; lifecycle errors are answered.

Each test talks raw bytes to a real ``torchlint server`` process.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

# The language server over stdio, end to end: the full run, not the inner loop.
pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parent.parent
INIT = {"processId": None, "rootUri": None, "capabilities": {}}


def frame(message: dict | bytes, length: int | str | None = "auto", header: bytes | None = None) -> bytes:
    body = message if isinstance(message, bytes) else json.dumps(message).encode()
    if header is not None:
        return header + b"\r\n\r\n" + body
    n = len(body) if length == "auto" else length
    return f"Content-Length: {n}\r\n\r\n".encode() + body


class Wire:
    def __init__(self, command: list[str] | None = None, pythonpath: str = "") -> None:
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in (str(ROOT), pythonpath) if p)}
        self.proc = subprocess.Popen(
            command or [sys.executable, "-m", "torchlint", "server", "--log-level", "warning"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env,
        )
        self.received: list[dict] = []
        self.arrived = threading.Condition()
        self.stderr: list[bytes] = []
        threading.Thread(target=self._read, daemon=True).start()
        threading.Thread(target=lambda: self.stderr.extend(self.proc.stderr), daemon=True).start()

    def _read(self) -> None:
        out = self.proc.stdout
        while True:
            length = None
            while True:
                line = out.readline()
                if not line:
                    return
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":")[1])
                if line == b"\r\n":
                    break
            msg = json.loads(out.read(length))
            with self.arrived:
                self.received.append(msg)
                self.arrived.notify_all()

    def send(self, data: bytes) -> None:
        self.proc.stdin.write(data)
        self.proc.stdin.flush()

    def request(self, id: int, method: str, params=None) -> bytes:
        return frame({"jsonrpc": "2.0", "id": id, "method": method, "params": params})

    def notify(self, method: str, params=None) -> bytes:
        return frame({"jsonrpc": "2.0", "method": method, "params": params})

    def wait_for(self, pred, timeout: float = 30):
        """The first message (of all received so far, or to come) that ``pred`` accepts."""
        deadline = time.monotonic() + timeout
        with self.arrived:
            while True:
                for msg in self.received:
                    if pred(msg):
                        return msg
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self.arrived.wait(left)
        raise AssertionError(f"no such message within {timeout}s; stderr: {b''.join(self.stderr)[-2000:]!r}")

    def response(self, id: int, timeout: float = 30) -> dict:
        return self.wait_for(lambda m: m.get("id") == id and "method" not in m, timeout)

    def close(self) -> None:
        if self.proc.poll() is None:
            try:
                self.send(self.request(9999, "shutdown") + self.notify("exit"))
                self.proc.wait(10)
            except (OSError, subprocess.TimeoutExpired):
                self.proc.kill()
                self.proc.wait()


@pytest.fixture
def wire():
    w = Wire()
    yield w
    w.close()


def initialized(w: Wire) -> None:
    w.send(w.request(1, "initialize", INIT))
    assert "result" in w.response(1)
    w.send(w.notify("initialized", {}))


PROBE = {"jsonrpc": "2.0", "id": 77, "method": "torchlint/no-such-method", "params": None}


@pytest.mark.parametrize(
    "bad",
    [
        pytest.param(lambda msg: frame(msg, len(json.dumps(msg)) - 10), id="too-short"),
        pytest.param(lambda msg: frame(msg, len(json.dumps(msg)) + 10), id="too-long"),
        pytest.param(lambda msg: frame(msg, header=b"Content-Type: application/vscode-jsonrpc"), id="missing"),
        pytest.param(lambda msg: frame(msg, header=b"Content-Length: twelve"), id="not-a-number"),
        pytest.param(lambda msg: b"garbage\r\n" + frame(msg, len(json.dumps(msg)) - 3), id="garbage-then-short"),
        pytest.param(lambda msg: b"Content-Length: 100000\r\n\r\n" + json.dumps(msg).encode()[:30], id="huge-length-cut-body"),
    ],
)
def test_a_framing_error_is_logged_and_the_next_message_is_heard(wire, bad):
    initialized(wire)
    broken = {"jsonrpc": "2.0", "id": 50, "method": "torchlint/no-such-method", "params": {"x": "y" * 40}}
    wire.send(bad(broken) + frame(PROBE))
    reply = wire.response(77)
    assert reply["error"]["code"] == -32601  # heard: an unknown method, answered as such
    for k in range(3):  # and it keeps hearing
        wire.send(frame({**PROBE, "id": 100 + k}))
        assert wire.response(100 + k)["error"]["code"] == -32601
    log = wire.wait_for(lambda m: m.get("method") == "window/logMessage" and "framing error" in m["params"]["message"])
    assert log["params"]["type"] == 1
    wire.close()
    assert b"framing error" in b"".join(wire.stderr)
    assert wire.proc.returncode == 0


def test_too_long_a_length_with_nothing_after_is_answered(wire):
    initialized(wire)
    body = json.dumps(PROBE).encode()
    wire.send(frame(body, len(body) + 100))
    assert wire.response(77)["error"]["code"] == -32601


def test_requests_before_initialize_and_after_shutdown(wire):
    wire.send(wire.request(2, "textDocument/hover", {"textDocument": {"uri": "file:///x.py"}, "position": {"line": 0, "character": 0}}))
    assert wire.response(2)["error"]["code"] == -32002
    wire.send(wire.notify("textDocument/didOpen", {"textDocument": {"uri": "file:///x.py", "languageId": "python", "version": 1, "text": "it.next()\n"}}))
    initialized(wire)
    wire.send(wire.request(3, "shutdown"))
    assert wire.response(3)["result"] is None
    wire.send(wire.request(4, "textDocument/hover", {"textDocument": {"uri": "file:///x.py"}, "position": {"line": 0, "character": 0}}))
    assert wire.response(4)["error"]["code"] == -32600
    wire.send(wire.notify("exit"))
    assert wire.proc.wait(10) == 0


def test_a_document_with_a_lone_surrogate_is_linted(wire):
    initialized(wire)
    text = 'it = iter(loader)\ns = "\\ud800"\nbatch = it.next()\n'  # JSON escape: a lone surrogate
    body = (
        '{"jsonrpc": "2.0", "method": "textDocument/didOpen", "params": {"textDocument": '
        '{"uri": "file:///tmp/s.py", "languageId": "python", "version": 1, "text": "' + text.replace("\n", "\\n").replace('"', '\\"').replace("\\\\ud800", "\\ud800") + '"}}}'
    )
    assert "\\ud800" in body and json.loads(body)["params"]["textDocument"]["text"].count("\ud800") == 1
    wire.send(frame(body.encode()))
    diag = wire.wait_for(lambda m: m.get("method") == "textDocument/publishDiagnostics" and m["params"]["diagnostics"])
    (d,) = [d for d in diag["params"]["diagnostics"] if d["code"] == "TL201"]
    assert d["range"]["start"] == {"line": 2, "character": 8}


CRASH_RULE = '''
import os, signal
import libcst as cst
from torchlint.rules.base import Rule

class Segfault(Rule):
    """Dies in native code on files that say CRASH, as libcst's parser did on deep nesting."""
    code = "EX999"
    name = "segfault"
    message = "never"
    triggers = ("CRASH",)

    def visit_Module(self, node: cst.Module) -> None:
        os.kill(os.getpid(), signal.SIGSEGV)
'''


def test_a_document_that_crashes_the_analysis_never_kills_the_server(tmp_path):
    (tmp_path / "crashrule.py").write_text(CRASH_RULE)
    command = [
        sys.executable, "-c",
        "import sys; from crashrule import Segfault; from torchlint.server import main; "
        "sys.exit(main(['--log-level', 'warning'], extra_rules=[Segfault]))",
    ]
    wire = Wire(command, pythonpath=str(tmp_path))
    try:
        initialized(wire)

        def open_doc(name: str, text: str) -> None:
            doc = {"uri": f"file:///tmp/{name}", "languageId": "python", "version": 1, "text": text}
            wire.send(wire.notify("textDocument/didOpen", {"textDocument": doc}))

        def diagnostics(name: str, version: int) -> list[dict]:
            return wire.wait_for(
                lambda m: m.get("method") == "textDocument/publishDiagnostics"
                and m["params"]["uri"] == f"file:///tmp/{name}" and m["params"].get("version") == version, timeout=60
            )["params"]["diagnostics"]

        bad = "# CRASH\nit = iter(loader)\nbatch = it.next()\n"
        open_doc("crash.py", bad)
        (d,) = diagnostics("crash.py", 1)
        assert "could not lint this file: the analysis crashed on it 2 times" in d["message"]
        for version in range(2, 6):  # edits that still crash: each is tried again, none kills the server
            change = {"textDocument": {"uri": "file:///tmp/crash.py", "version": version}, "contentChanges": [{"text": bad + f"x = {version}\n"}]}
            wire.send(wire.notify("textDocument/didChange", change))
            (d,) = diagnostics("crash.py", version)
            assert "could not lint this file" in d["message"]
        open_doc("ok.py", "it = iter(loader)\nbatch = it.next()\n")
        assert [d["code"] for d in diagnostics("ok.py", 1)] == ["TL201"]
        assert wire.proc.poll() is None
    finally:
        wire.close()
    assert wire.proc.returncode == 0


def test_initialize_is_answered_early_with_what_pygls_announces(wire):
    # The process answers before pygls is imported (torchlint/server/early.py); pygls then
    # handles the same message, compares its answer and logs any difference as an error.
    import pytest_lsp

    caps = json.loads((Path(pytest_lsp.__file__).parent / "clients" / "neovim_v0.11.0.json").read_text())["capabilities"]
    started = time.monotonic()
    wire.send(wire.request(1, "initialize", {"processId": None, "rootUri": None, "capabilities": caps, "initializationOptions": {"diagnosticMode": "pull"}}))
    result = wire.response(1)["result"]
    assert result["capabilities"]["positionEncoding"] == "utf-8"
    assert result["capabilities"]["diagnosticProvider"]["identifier"] == "torchlint"
    # A document opened at once (pygls may still be loading) is linted as usual.
    wire.send(wire.notify("initialized", {}))
    wire.send(wire.notify("textDocument/didOpen", {"textDocument": {"uri": "file:///tmp/e.py", "languageId": "python", "version": 1, "text": "it = iter(loader)\nbatch = it.next()\n"}}))
    wire.send(wire.request(2, "textDocument/diagnostic", {"textDocument": {"uri": "file:///tmp/e.py"}}))
    items = wire.response(2, timeout=60)["result"]["items"]
    assert [(d["code"], d["range"]["start"]) for d in items] == [("TL201", {"line": 1, "character": 8})]
    wire.send(wire.request(3, "shutdown"))
    assert wire.response(3)["result"] is None
    wire.send(wire.notify("exit"))
    assert wire.proc.wait(10) == 0
    log = b"".join(wire.stderr).decode()
    assert "answered early" not in log, log
    assert time.monotonic() - started < 60


def _children(pid: int) -> list[tuple[int, bytes]]:
    out = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()
                if int(stat[1]) == pid:
                    out.append((int(entry), Path(f"/proc/{entry}/cmdline").read_bytes()))
            except (OSError, IndexError, ValueError):
                continue
    return out


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads the process tree from /proc")
def test_one_analysis_process_starts_as_soon_as_initialize_is_answered(wire):
    # It loads the engine, the rules and the knowledge base while the client sends
    # initialized and opens its first file (launch.py); the rest of the pool waits
    # for the first file's analysis.
    wire.send(wire.request(1, "initialize", INIT))
    assert "result" in wire.response(1)
    deadline = time.monotonic() + 30
    while not _children(wire.proc.pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.5)
    kids = _children(wire.proc.pid)
    assert [cmd.split(b"\0")[1:3] for _, cmd in kids] == [[b"-m", b"torchlint.server.child"]]
    wire.send(wire.notify("initialized", {}))
    wire.send(wire.notify("textDocument/didOpen", {"textDocument": {"uri": "file:///tmp/k.py", "languageId": "python", "version": 1, "text": "it = iter(x)\nb = it.next()\n"}}))
    diagnostics = wire.wait_for(lambda m: m.get("method") == "textDocument/publishDiagnostics")["params"]["diagnostics"]
    assert [d["code"] for d in diagnostics] == ["TL201"]
    # The process that was started first linted it (the pool adopted it).
    assert kids[0][0] in [pid for pid, _ in _children(wire.proc.pid)]
