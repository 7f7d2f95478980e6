"""The LSP wire, hardened: framing errors, the lifecycle, and a reader that resynchronises.

pygls' reader trusts every ``Content-Length``: one that is too short, too long,
missing or not a number leaves it reading the next messages at the wrong
offsets, and the server is deaf from then on. :func:`start_io` reads with
:func:`read_frames` instead, which logs the bad frame and picks up again at
the next header.

:class:`LifecycleProtocol` answers what pygls leaves unanswered: a request
before ``initialize`` gets ``ServerNotInitialized`` (-32002), one after
``shutdown`` gets ``InvalidRequest`` (-32600); the client never waits forever.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from threading import Event
from typing import Any, BinaryIO

from lsprotocol import types as lsp
from pygls.exceptions import JsonRpcException, JsonRpcInvalidRequest, JsonRpcServerNotInitialized
from pygls.io_ import StdoutWriter
from pygls.protocol import LanguageServerProtocol

log = logging.getLogger("torchlint.server")

_HEADER_END = b"\r\n\r\n"
# The last Content-Length of a header block: garbage in front of it (the rest of a
# body whose length was understated) is skipped.
_LENGTH = re.compile(rb"content-length[ \t]*:[ \t]*([^\r\n]*)", re.IGNORECASE)
_CHUNK = 1 << 16


def _complete_json(data: bytes | bytearray) -> bool:
    try:
        json.loads(data)
    except ValueError:
        return False
    return True


async def read_frames(read: Callable[[], Awaitable[bytes]], on_error: Callable[[str], None]) -> AsyncIterator[bytes]:
    """The bodies of the messages in a byte stream, recovering from bad framing.

    ``read`` returns the next bytes available (b"" at the end). Each framing
    error is reported once through ``on_error``; the next well-framed message
    is delivered normally.
    """
    buf = bytearray()
    eof = False

    async def more() -> bool:
        nonlocal eof
        if eof:
            return False
        data = await read()
        if not data:
            eof = True
            return False
        buf.extend(data)
        return True

    while True:
        end = buf.find(_HEADER_END)
        if end < 0:
            if not await more():
                return
            continue
        header = bytes(buf[:end])
        del buf[: end + len(_HEADER_END)]
        matches = list(_LENGTH.finditer(header))
        if not matches:
            on_error(f"framing error: a header without Content-Length ({_show(header)}); skipped")
            continue
        m = matches[-1]
        line_start = header.rfind(b"\n", 0, m.start()) + 1
        if m.start() != line_start or len(matches) > 1:
            on_error(f"framing error: {m.start()} bytes before the header skipped ({_show(header[: m.start()])})")
        value = m.group(1).strip()
        if not value.isdigit():
            on_error(f"framing error: Content-Length is not a number ({_show(value)}); skipped")
            continue
        length = int(value)
        # Wait for the body; a body that is already complete JSON though short of
        # the announced length had its length overstated: take it now.
        resync = False
        while len(buf) < length:
            if buf[-1:] == b"}" and _complete_json(buf):
                on_error(f"framing error: Content-Length {length} but the message is {len(buf)} bytes")
                length = len(buf)
                break
            nxt = buf.find(b"Content-Length", 0)
            if nxt > 0 and _complete_json(buf[:nxt]):
                on_error(f"framing error: Content-Length {length} but the message is {nxt} bytes")
                length = nxt
                break
            if nxt >= 0 and _whole_frame_at(buf, nxt):
                # A complete, well-formed message follows: the one announced never came whole.
                on_error(f"framing error: Content-Length {length} but only {nxt} bytes came before the next message")
                del buf[:nxt]
                resync = True
                break
            if not await more():
                if buf:
                    on_error(f"framing error: the stream ended {length - len(buf)} bytes short of a message")
                return
        if resync:
            continue
        body = bytes(buf[:length])
        if _complete_json(body):
            del buf[:length]
            yield body
            continue
        # A wrong length. A header that starts inside the announced body is the next
        # message's: what comes before it is this message, if it is whole (length
        # overstated), else lost (understated: it cannot be answered without its id).
        nxt = buf.find(b"Content-Length", 1, length + len(b"Content-Length"))
        if nxt > 0 and _complete_json(buf[:nxt]):
            on_error(f"framing error: Content-Length {length} but the message is {nxt} bytes")
            body = bytes(buf[:nxt])
            del buf[:nxt]
            yield body
            continue
        del buf[: nxt if nxt > 0 else length]
        on_error(f"framing error: a {length}-byte body that is not a JSON message ({_show(body)}); resynchronised at the next header")


def _whole_frame_at(buf: bytearray, at: int) -> bool:
    """Whether ``buf[at:]`` starts with a header block and the complete JSON body it announces."""
    end = buf.find(_HEADER_END, at)
    if end < 0:
        return False
    m = _LENGTH.match(bytes(buf[at:end]))
    value = m.group(1).strip() if m else b""
    if not value.isdigit():
        return False
    start = end + len(_HEADER_END)
    n = int(value)
    return len(buf) >= start + n and _complete_json(buf[start : start + n])


def _show(data: bytes, limit: int = 60) -> str:
    text = data[:limit].decode("utf-8", "replace")
    return repr(text) + ("..." if len(data) > limit else "")


class LifecycleProtocol(LanguageServerProtocol):
    """pygls' protocol, with LSP's lifecycle errors (it ignores such requests silently)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._initialize_seen = False
        # (request id, result): an initialize the process answered before pygls was
        # imported (early.py). pygls handles that request as usual; its response is
        # not sent again, only compared.
        self.answered: tuple[Any, dict] | None = None

    def _send_response(self, msg_id: Any, result: Any = None, error: Any = None) -> None:
        answered = self.answered
        if answered is None or msg_id != answered[0]:
            return super()._send_response(msg_id, result, error)
        self.answered = None
        if error is not None:
            log.error("initialize was answered early, but pygls failed it: %s", getattr(error, "message", error))
            return None
        ours = json.loads(json.dumps(result, default=self._serialize_message))
        if ours != answered[1]:
            log.error("initialize was answered early with %s; pygls would have answered %s", json.dumps(answered[1]), json.dumps(ours))
        return None

    def handle_message(self, message: Any) -> Any:
        method = getattr(message, "method", None)
        is_request = method is not None and getattr(message, "id", None) is not None
        if method == "initialize":
            self._initialize_seen = True
        elif method is not None and method != "exit":
            if self._shutdown:
                if is_request:
                    self._send_response(
                        message.id, error=lsp.ResponseError(JsonRpcInvalidRequest.CODE, f"{method}: the server is shut down")
                    )
                return None
            if not self._initialize_seen:
                # Requests get -32002; notifications are dropped, as the spec says.
                if is_request:
                    self._send_response(
                        message.id,
                        error=lsp.ResponseError(JsonRpcServerNotInitialized.CODE, f"{method}: the server is not initialized"),
                    )
                return None
        return super().handle_message(message)


def start_io(
    server: Any,
    stdin: BinaryIO | None = None,
    stdout: BinaryIO | None = None,
    *,
    prefix: bytes = b"",
    answered: tuple[Any, dict] | None = None,
) -> None:
    """pygls' ``start_io`` with :func:`read_frames` as the reader.

    ``prefix``: bytes already read from ``stdin`` (they are read first);
    ``answered``: the id and result of an ``initialize`` in them that the
    process already answered (see early.py).
    """
    stdin = stdin or sys.stdin.buffer
    server._stop_event = stop = Event()
    server.protocol.set_writer(StdoutWriter(stdout or sys.stdout.buffer))
    server.protocol.answered = answered
    pending = [prefix] if prefix else []
    # read1: whatever is there (at least a byte), so a message is handled as soon as it is complete.
    read_some = getattr(stdin, "read1", None) or stdin.read

    def on_error(message: str) -> None:
        log.error("%s", message)
        try:
            server.protocol.notify(
                "window/logMessage", lsp.LogMessageParams(type=lsp.MessageType.Error, message=f"torchlint server: {message}")
            )
        except Exception:  # the transport may be gone; the log line above is enough
            pass

    async def loop() -> None:
        running = asyncio.get_running_loop()

        def read() -> Awaitable[bytes]:
            if pending:
                done = running.create_future()
                done.set_result(pending.pop())
                return done
            return running.run_in_executor(server.thread_pool, read_some, _CHUNK)

        async for body in read_frames(read, on_error):
            if stop.is_set():
                break
            try:
                message = json.loads(body, object_hook=server.protocol.structure_message)
                server.protocol.handle_message(message)
            except Exception as exc:
                log.exception("unable to handle a message")
                server.report_server_error(exc, JsonRpcException)
            if stop.is_set():
                break

    try:
        asyncio.run(loop())
    except BrokenPipeError:
        log.error("the connection to the client is lost; shutting down")
    except (KeyboardInterrupt, SystemExit):
        pass
    finally:
        server.shutdown()
