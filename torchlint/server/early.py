"""Answer ``initialize`` before pygls and lsprotocol are imported.

Importing ``lsprotocol.types`` (which pygls needs) takes about half a second of
CPU, more than the whole budget for answering ``initialize``. So the server
process starts that import on a thread and, meanwhile, reads the first message
itself: if it is an ``initialize`` request this module can answer with
certainty, the answer (the capabilities pygls would announce, computed here
from plain JSON) is written at once. When pygls is ready, the connection is
handed to it with every byte read so far: it handles the same ``initialize``
message as usual (workspace, client capabilities, the service's settings),
and its own response, already given, is not sent again but compared with the
early one (a difference is logged as an error; ``tests/test_early.py`` checks
that there is none, for many clients).

Anything unusual in the first message (not ``initialize``, params of an
unexpected shape, framing trouble) and nothing is answered here: pygls answers
it once imported, as it always did. Nothing in this module imports more than
the standard library.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any, BinaryIO

from torchlint import __version__

# What handlers.py registers; the tests compare the result with pygls' own.
CODE_ACTION_KINDS = ["quickfix", "source.fixAll", "source.fixAll.torchlint", "quickfix.torchlint.confirm"]
COMMANDS = ["torchlint.confirm", "torchlint.fixAll"]
NOTEBOOK_SYNC = {
    "notebookSelector": [{"notebook": "jupyter-notebook", "cells": [{"language": "python"}]}],
    "save": True,
}
DIAGNOSTIC_MODES = ("auto", "push", "pull")
_ENCODINGS = ("utf-8", "utf-16", "utf-32")  # what pygls supports, in no particular order
TRACE_VALUES = ("off", "messages", "verbose")

_HEADER_END = b"\r\n\r\n"
_LENGTH = re.compile(rb"^content-length[ \t]*:[ \t]*([0-9]+)[ \t]*$", re.IGNORECASE)
_MAX_FIRST = 1 << 20  # an initialize message is a few kB; anything bigger is left to pygls


def settings_section(raw: Any) -> Mapping[str, Any]:
    """The torchlint settings in initializationOptions / didChangeConfiguration (settings.py)."""
    if not isinstance(raw, Mapping):
        return {}
    inner = raw.get("torchlint")
    return inner if isinstance(inner, Mapping) else raw


def diagnostic_mode(options: Any) -> str:
    """``diagnosticMode`` from initializationOptions, as settings.parse_settings reads it."""
    mode = settings_section(options).get("diagnosticMode")
    return mode if mode in DIAGNOSTIC_MODES else "auto"


def _dict_or_none(value: Any) -> bool:
    return value is None or isinstance(value, dict)


def _path(obj: Any, *keys: str) -> Any:
    for key in keys:
        if not isinstance(obj, dict):
            return None
        obj = obj.get(key)
    return obj


def initialize_result(params: Any) -> dict | None:
    """The ``InitializeResult`` pygls would send for these params, or None when unsure."""
    if not isinstance(params, dict):
        return None
    caps = params.get("capabilities")
    if not isinstance(caps, dict):
        return None
    # The fields pygls' converter types strictly: anything else odd is left to it (it answers InvalidParams).
    pid = params.get("processId")
    if pid is not None and (not isinstance(pid, int) or isinstance(pid, bool)):
        return None
    for key in ("rootUri", "rootPath", "locale"):
        if params.get(key) is not None and not isinstance(params[key], str):
            return None
    if params.get("trace") is not None and params["trace"] not in TRACE_VALUES:
        return None
    info = params.get("clientInfo")
    if info is not None and not (isinstance(info, dict) and isinstance(info.get("name"), str)):
        return None
    folders = params.get("workspaceFolders")
    if folders is not None and not (
        isinstance(folders, list)
        and all(isinstance(f, dict) and isinstance(f.get("uri"), str) and isinstance(f.get("name"), str) for f in folders)
    ):
        return None
    for section in ("workspace", "textDocument", "notebookDocument", "window", "general"):
        if not _dict_or_none(caps.get(section)):
            return None
        for value in (caps.get(section) or {}).values():
            if not (value is None or isinstance(value, (dict, bool, list))):
                return None
    encodings = _path(caps, "general", "positionEncodings")
    if encodings is not None and not (isinstance(encodings, list) and all(isinstance(e, str) for e in encodings)):
        return None
    encoding = next((e for e in encodings or () if e in _ENCODINGS), "utf-16")
    mode = diagnostic_mode(params.get("initializationOptions"))
    can_pull = _path(caps, "textDocument", "diagnostic") is not None
    pull = mode == "pull" or (mode == "auto" and can_pull)
    sync: dict[str, Any] = {"openClose": True, "change": 2}
    # pygls says false (no willSave handler) to a client that states either way, nothing to others.
    for key in ("willSave", "willSaveWaitUntil"):
        if _path(caps, "textDocument", "synchronization", key) is not None:
            sync[key] = False
    sync["save"] = True
    capabilities: dict[str, Any] = {"positionEncoding": encoding, "textDocumentSync": sync}
    if caps.get("notebookDocument") is not None:
        capabilities["notebookDocumentSync"] = NOTEBOOK_SYNC
    capabilities["hoverProvider"] = True
    capabilities["codeActionProvider"] = {"codeActionKinds": list(CODE_ACTION_KINDS), "resolveProvider": True}
    capabilities["executeCommandProvider"] = {"commands": list(COMMANDS)}
    if pull:
        capabilities["diagnosticProvider"] = {
            "interFileDependencies": False,
            "workspaceDiagnostics": False,
            "identifier": "torchlint",
        }
    capabilities["workspace"] = {
        "workspaceFolders": {"supported": True, "changeNotifications": True},
        "fileOperations": {},
    }
    return {"capabilities": capabilities, "serverInfo": {"name": "torchlint", "version": __version__}}


def frame(message: dict) -> bytes:
    body = json.dumps(message, separators=(",", ":")).encode("utf-8")
    return b"Content-Length: %d\r\n\r\n" % len(body) + body


def read_first(stream: BinaryIO) -> tuple[bytes, dict | None]:
    """Read until the first message is complete: (every byte read, the message if it is a clean JSON object).

    Never reads past what is needed for that message (beyond what one read brings).
    """
    read = getattr(stream, "read1", None) or stream.read
    buf = bytearray()
    while _HEADER_END not in buf:
        if len(buf) > _MAX_FIRST:
            return bytes(buf), None
        data = read(1 << 16)
        if not data:
            return bytes(buf), None
        buf.extend(data)
    end = buf.index(_HEADER_END)
    lengths = [m.group(1) for line in bytes(buf[:end]).split(b"\r\n") if (m := _LENGTH.match(line.strip()))]
    if len(lengths) != 1 or int(lengths[0]) > _MAX_FIRST:
        return bytes(buf), None
    start = end + len(_HEADER_END)
    total = start + int(lengths[0])
    while len(buf) < total:
        data = read(total - len(buf))
        if not data:
            return bytes(buf), None
        buf.extend(data)
    try:
        message = json.loads(bytes(buf[start:total]))
    except ValueError:
        return bytes(buf), None
    return bytes(buf), message if isinstance(message, dict) else None


def messages(data: bytes | bytearray) -> list[dict]:
    """The complete, well-framed JSON messages at the start of ``data`` (up to the first that is not)."""
    out: list[dict] = []
    pos = 0
    while True:
        end = data.find(_HEADER_END, pos)
        if end < 0:
            return out
        lengths = [m.group(1) for line in bytes(data[pos:end]).split(b"\r\n") if (m := _LENGTH.match(line.strip()))]
        if len(lengths) != 1:
            return out
        start = end + len(_HEADER_END)
        stop = start + int(lengths[0])
        if stop > len(data):
            return out
        try:
            message = json.loads(bytes(data[start:stop]))
        except ValueError:
            return out
        if not isinstance(message, dict):
            return out
        out.append(message)
        pos = stop


def first_document(data: bytes | bytearray) -> dict | None:
    """The ``textDocument`` of the first ``textDocument/didOpen`` among the complete messages in ``data``."""
    if b'"textDocument/didOpen"' not in data:
        return None
    for message in messages(data):
        if message.get("method") == "textDocument/didOpen":
            params = message.get("params")
            doc = params.get("textDocument") if isinstance(params, dict) else None
            return doc if isinstance(doc, dict) else None
    return None


def answer_initialize(message: dict | None) -> tuple[Any, dict] | None:
    """(request id, result) when ``message`` is an ``initialize`` request answered here."""
    if not message or message.get("method") != "initialize" or message.get("jsonrpc") != "2.0":
        return None
    msg_id = message.get("id")
    if isinstance(msg_id, bool) or not isinstance(msg_id, (int, str)):
        return None
    result = initialize_result(message.get("params"))
    if result is None:
        return None
    return msg_id, result
