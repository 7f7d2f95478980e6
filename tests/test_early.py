"""The early ``initialize`` answer (torchlint/server/early.py) is exactly what pygls would send.

The server process answers ``initialize`` before pygls and lsprotocol are
imported; these tests compute, for many clients' real initialize params, both
that answer and pygls' own (the same server, its handlers registered, running
pygls' ``initialize``), and require them to be equal.
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
import pytest_lsp

from torchlint.server import early

CLIENTS = sorted((Path(pytest_lsp.__file__).parent / "clients").glob("*.json"))
OPTIONS = [
    None,
    {},
    {"diagnosticMode": "pull"},
    {"diagnosticMode": "push"},
    {"diagnosticMode": "auto"},
    {"diagnosticMode": "sideways"},  # invalid: auto (and a warning later)
    {"torchlint": {"diagnosticMode": "pull"}},
    {"torchlint": {"diagnosticMode": "push"}, "diagnosticMode": "pull"},
    {"select": ["TL2"], "runtime": {"enabled": True}},
]
HANDMADE = [
    {},
    {"general": {"positionEncodings": ["utf-32"]}},
    {"general": {"positionEncodings": ["utf-7", "utf-8"]}},
    {"general": {"positionEncodings": ["utf-7"]}},
    {"general": {"positionEncodings": []}},
    {"general": None},
    {"textDocument": {"diagnostic": {"dynamicRegistration": False}}},
    {"textDocument": {"diagnostic": None}},
    {"textDocument": {"synchronization": {"willSave": True, "willSaveWaitUntil": True}}},
    {"notebookDocument": {"synchronization": {"executionSummarySupport": True}}},
    {"notebookDocument": None},
    {"workspace": {"fileOperations": {"willCreate": True, "didRename": True}, "workspaceFolders": True}},
]


def pygls_answer(params: dict) -> dict:
    """What pygls answers to ``initialize`` with these params, as JSON."""
    from lsprotocol import types as t

    from torchlint.server.app import create_server

    server = create_server()
    protocol = server.protocol
    try:
        structured = protocol._converter.structure(params, t.InitializeParams)
        steps = protocol.lsp_initialize(structured)
        handler, args, _ = next(steps)
        handler(*args)
        try:
            steps.send(None)
        except StopIteration as stop:
            result = stop.value
        return json.loads(json.dumps(result, default=protocol._serialize_message))
    finally:
        server.service.shutdown()


def _cases():
    for path in CLIENTS:
        caps = json.loads(path.read_text())["capabilities"]
        for i, options in enumerate(OPTIONS):
            yield pytest.param(caps, options, id=f"{path.stem}-{i}")
    for i, caps in enumerate(HANDMADE):
        for j, options in enumerate(OPTIONS[:4]):
            yield pytest.param(caps, options, id=f"handmade{i}-{j}")


@pytest.mark.parametrize(("caps", "options"), list(_cases()))
def test_the_early_answer_is_pygls_answer(caps, options):
    params = {"processId": 1234, "rootUri": "file:///tmp/project", "capabilities": caps, "initializationOptions": options}
    if options is None:
        del params["initializationOptions"]
    ours = early.initialize_result(params)
    assert ours is not None
    assert ours == pygls_answer(params)


def test_clients_are_all_there():
    # The profiles above are the real clients pytest-lsp recorded (VS Code, Neovim 0.6-0.11, Emacs).
    names = {p.stem.split("_v")[0] for p in CLIENTS}
    assert {"visual_studio_code", "neovim", "emacs"} <= names


@pytest.mark.parametrize(
    "params",
    [
        None,
        [],
        {"processId": None},  # no capabilities
        {"processId": "12", "capabilities": {}},
        {"processId": True, "capabilities": {}},
        {"processId": None, "capabilities": {}, "rootUri": 5},
        {"processId": None, "capabilities": {}, "trace": "loud"},
        {"processId": None, "capabilities": {}, "clientInfo": {"version": "1"}},
        {"processId": None, "capabilities": {}, "workspaceFolders": [{"uri": "file:///a"}]},
        {"processId": None, "capabilities": {"textDocument": 3}},
        {"processId": None, "capabilities": {"textDocument": {"hover": "yes"}}},
        {"processId": None, "capabilities": {"general": {"positionEncodings": "utf-8"}}},
    ],
)
def test_params_of_an_unexpected_shape_are_left_to_pygls(params):
    assert early.initialize_result(params) is None


def _framed(message: dict | bytes) -> bytes:
    body = message if isinstance(message, bytes) else json.dumps(message).encode()
    return b"Content-Length: %d\r\n\r\n" % len(body) + body


class Trickle(io.RawIOBase):
    """A stream that hands out a few bytes per read, like a pipe under load."""

    def __init__(self, data: bytes, step: int) -> None:
        self.data, self.step = data, step

    def readable(self) -> bool:
        return True

    def read1(self, n: int = -1) -> bytes:
        out, self.data = self.data[: min(self.step, n if n > 0 else self.step)], self.data[self.step :]
        return out

    read = read1


INIT = {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {"processId": None, "capabilities": {}}}


@pytest.mark.parametrize("step", [1, 7, 1 << 16])
def test_the_first_message_is_read_whole_and_nothing_is_lost(step):
    rest = _framed({"jsonrpc": "2.0", "method": "initialized", "params": {}})
    data = _framed(INIT) + rest
    read, message = early.read_first(Trickle(data, step))
    assert message == INIT
    # Every byte read is handed to pygls; nothing is read past the first message except within one read.
    assert data.startswith(read) and len(read) >= len(_framed(INIT))
    answered = early.answer_initialize(message)
    assert answered is not None and answered[0] == 1 and answered[1]["serverInfo"]["name"] == "torchlint"


@pytest.mark.parametrize(
    "data",
    [
        _framed({"jsonrpc": "2.0", "id": 1, "method": "textDocument/hover", "params": {}}),  # not initialize
        _framed({"jsonrpc": "2.0", "method": "initialize", "params": INIT["params"]}),  # a notification
        _framed({"id": 1, "method": "initialize", "params": INIT["params"]}),  # not JSON-RPC 2.0
        _framed({**INIT, "id": None}),
        _framed(b'{"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {'),  # not JSON
        b"Content-Length: x\r\n\r\n" + json.dumps(INIT).encode(),
        b"Content-Type: a\r\n\r\n" + json.dumps(INIT).encode(),  # no length
        b"Content-Length: 500\r\n\r\n" + json.dumps(INIT).encode(),  # the stream ends first
        b"",
    ],
)
def test_anything_else_first_is_left_to_pygls(data):
    read, message = early.read_first(io.BufferedReader(io.BytesIO(data)))
    assert read == data
    assert early.answer_initialize(message) is None
