"""Starting the language server process: arguments, the LSP streams, and an early ``initialize``.

Imports only the standard library (and :mod:`torchlint.server.early`): pygls,
lsprotocol and the server (app.py) are imported on a thread while the first
message is read and, when it is ``initialize``, answered (see early.py).
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import select
import sys
import threading
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

from torchlint import __version__
from torchlint.server import early

if TYPE_CHECKING:
    from torchlint.rules.base import Rule
    from torchlint.server.confirm import Runtime


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--stdio", action="store_true", help="use stdin/stdout (the default; accepted for editors that pass it)")
    parser.add_argument(
        "--log-level",
        choices=("error", "warning", "info", "debug"),
        default="warning",
        help="what the server writes to stderr (default: warning); clients set what reaches them with the logLevel setting",
    )


def python_level(level: str) -> int:
    return {"error": logging.ERROR, "warning": logging.WARNING, "warn": logging.WARNING, "info": logging.INFO}.get(
        level, logging.DEBUG
    )


class _Raw:
    """Unbuffered reads of a descriptor (what is read before pygls takes over goes to it whole)."""

    def __init__(self, fd: int) -> None:
        self.fd = fd

    def read1(self, n: int) -> bytes:
        return os.read(self.fd, n)


def _prelint(spawned: Any, document: dict, initialize: dict) -> threading.Thread:
    """Send the first document to the analysis process as soon as it is opened, before pygls
    can handle it: the process lints it when its start-up is done and keeps the report, and
    the service's own lint job for it, when it comes, gets that report (child.serve).

    The process works out the path and the rules the service will use (the same code,
    settings.py), so a report is used only when the service asks for exactly that lint.
    The job is written on a thread (the process reads it when its start-up is done); the
    pool waits for that write before its first job (worker._Worker).
    """
    from torchlint.server.child import send

    params = initialize.get("params") if isinstance(initialize.get("params"), dict) else {}
    job = (
        "prelint",
        document.get("text"),
        document.get("uri"),
        (document.get("languageId"), params.get("initializationOptions"), os.getcwd()),
    )
    writer = threading.Thread(target=_send_quietly, args=(send, spawned.to_child, job), name="torchlint-prelint", daemon=True)
    writer.start()
    return writer


def _send_quietly(send: Any, fd: int, job: tuple) -> None:
    try:
        send(fd, job)
    except (OSError, ValueError):
        pass  # the process is gone; the pool finds out


def _start_analysis(extra_rules: Iterable[type[Rule]]) -> Any:
    # (child.py imports nothing that the thread loading pygls may be holding.)
    from torchlint.server.child import spawn

    try:
        return spawn(tuple(extra_rules))
    except OSError:
        return None  # the pool tries again, and says so


# The server process's compiled generated methods (torchlint/codecache.py): pygls' attrs and cattrs.
_GENERATED = ("server", "attr._make", "cattrs.gen")


class _Import(threading.Thread):
    """Imports the server (pygls, lsprotocol) while the main thread answers ``initialize``."""

    def __init__(self) -> None:
        super().__init__(name="torchlint-import", daemon=True)
        self.error: BaseException | None = None

    def run(self) -> None:
        from torchlint.codecache import generated_code

        try:
            with generated_code(*_GENERATED):  # (lsprotocol's 550 attrs classes)
                importlib.import_module("torchlint.server.app")
        except BaseException as exc:  # noqa: BLE001 - re-raised by the main thread
            self.error = exc


def serve(args: argparse.Namespace, extra_rules: Iterable[type[Rule]] = (), runtime: Runtime | None = None) -> int:
    """Serve LSP on stdin/stdout until the client says exit (or goes away)."""
    logging.basicConfig(stream=sys.stderr, level=python_level(args.log_level), format="torchlint server %(levelname)s: %(message)s")
    # Failed requests are answered with an error response and problems outside
    # requests go to report_server_error: pygls' own tracebacks are only for debugging.
    logging.getLogger("pygls").setLevel(logging.CRITICAL if args.log_level in ("error", "warning") else python_level(args.log_level))
    # Editors show the server's stderr as its log: say which torchlint and which Python this is.
    print(f"torchlint server {__version__} (Python {sys.version.split()[0]}, {sys.executable})", file=sys.stderr, flush=True)
    # The LSP streams get private descriptors; fd 0 becomes /dev/null and fd 1 stderr, so
    # that nothing printed by accident (a rule, a library, a child process such as the
    # runtime's sandbox) can corrupt the protocol or swallow the client's messages.
    in_fd = os.dup(0)
    lsp_out = os.fdopen(os.dup(1), "wb")
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    os.close(devnull)
    sys.stdout.flush()
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    # pygls and the server load on a thread; the first message is read meanwhile and
    # answered here if it is an initialize request (early.py). A short switch
    # interval lets this thread have the interpreter as soon as the message is in.
    switch = sys.getswitchinterval()
    sys.setswitchinterval(0.0005)
    # The first analysis process starts first of all: loading the engine, the rules and the
    # knowledge base is most of the time to the first diagnostics, and it runs on another
    # core while this process answers ``initialize`` and loads pygls.
    opened = _start_analysis(extra_rules)
    importer = _Import()
    importer.start()
    prefix, first = early.read_first(_Raw(in_fd))
    answered = early.answer_initialize(first)
    if answered is not None:
        msg_id, result = answered
        try:
            lsp_out.write(early.frame({"jsonrpc": "2.0", "id": msg_id, "result": result}))
            lsp_out.flush()
        except OSError:
            answered = None  # the client is gone; pygls finds out too
    sys.setswitchinterval(switch)
    # Until pygls is ready, what comes in is kept for it (and a document opened meanwhile
    # is sent to the analysis process at once, see _prelint).
    received = bytearray(prefix)
    prelint = None
    while importer.is_alive() and os.name != "nt":  # (select() takes no pipes on Windows)
        if opened is not None and prelint is None and answered is not None and first is not None:
            document = early.first_document(received)
            if document is not None:
                prelint = _prelint(opened, document, first)
        try:
            ready, _, _ = select.select([in_fd], [], [], 0.02)
            data = os.read(in_fd, 1 << 16) if ready else None
        except OSError:
            break
        if data == b"":
            break  # the client went away; pygls sees the end of the stream too
        if data:
            received.extend(data)
    importer.join()
    if importer.error is not None:
        raise importer.error
    lsp_in = os.fdopen(in_fd, "rb")  # buffered: read(n) returns n bytes, as pygls expects
    from torchlint.server.app import create_server

    server = create_server(extra_rules, runtime)
    if opened is not None:
        opened.pending = prelint
        if server.service.pool is not None:
            server.service.pool.adopt(opened)
        else:
            opened.stop()
    from torchlint.codecache import generated_code

    # (cattrs compiles a converter for each message type the first time one comes or goes.)
    with generated_code(*_GENERATED):
        server.start_io(lsp_in, lsp_out, prefix=bytes(received), answered=answered)
    # The client said exit: a lint still running in a worker thread is of no use
    # to anyone, and waiting for it (interpreter shutdown joins pool threads)
    # could keep the editor waiting for seconds.
    server.service.shutdown()
    sys.stderr.flush()
    os._exit(0 if server.protocol._shutdown else 1)


def main(
    argv: Sequence[str] | None = None, *, extra_rules: Iterable[type[Rule]] = (), runtime: Runtime | None = None
) -> int:
    """``torchlint server``: serve LSP over stdin/stdout until the client says exit."""
    parser = argparse.ArgumentParser(
        prog="torchlint server",
        description="Run the torchlint language server (LSP over stdin/stdout).",
    )
    add_arguments(parser)
    return serve(parser.parse_args(list(argv) if argv is not None else None), extra_rules, runtime)
