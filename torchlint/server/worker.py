"""Analysis processes for the language server.

libcst's parser holds the GIL while it parses, so linting in a thread would
freeze the server's event loop for the length of every parse (seconds on a
large file), and a thread cannot be stopped. Linting runs in child processes
instead: the server keeps answering while they work, and a lint nobody wants
any more (the text changed, the request was cancelled) is stopped by ending
its process.
"""

from __future__ import annotations

import asyncio
import gc
import importlib
import logging
import os
import signal
import subprocess
import sys
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from multiprocessing.connection import Connection
from dataclasses import replace
from typing import Any

log = logging.getLogger("torchlint.server")

# A lint that is no longer wanted is left to finish if it is this young (it is
# probably nearly done, and starting a process costs more); older ones are stopped.
STOP_AFTER_S = 0.5
POLL_S = 0.1
# The rest of the pool starts this long after the first file's analysis (its answer goes out first).
WARM_UP_AFTER_S = 0.05


class WorkerDied(Exception):
    """The analysis process ended without answering (crash, out of memory, stopped)."""


class PluginFailure(Exception):
    """The rules cannot be loaded: a plugin is broken (torchlint.rules.PluginError, from any process)."""


class CannotStart(Exception):
    """No analysis process can be started here (e.g. a sandbox that forbids them)."""


def _rule_spec(cls: type) -> str:
    return f"{cls.__module__}:{cls.__qualname__}"


def _load_rule(spec: str) -> type:
    module, _, qualname = spec.partition(":")
    obj: Any = importlib.import_module(module)
    for part in qualname.split("."):
        obj = getattr(obj, part)
    return obj


# Jobs on a notebook's JSON (the language server's notebook documents, see notebooks.py).
# (and Markdown buffers' text).
NOTEBOOK_JOBS = ("lint_notebook", "fix_all_notebook", "lint_markdown", "fix_all_markdown")


def run_notebook_job(kind: str, source: str, path: str, options: Any) -> Any:
    """Lint a notebook or Markdown text (the report, without its text) or fix it (the fixed text)."""
    from torchlint.documents import apply_notebook_fixes
    from torchlint.fixes import fix_source
    from torchlint.runner import lint_document_text

    language = kind.rsplit("_", 1)[1]
    options = replace(options, parse_cache=None)  # the cache is for one Python file's successive versions
    if kind.startswith("lint_"):
        report = lint_document_text(source, path, language, options)
        report.source = None
        return report
    lint = lambda s: lint_document_text(s, path, language, options).findings  # noqa: E731
    return fix_source(source, lint, unsafe=False, apply=apply_notebook_fixes if language == "notebook" else None)[0]


def _serve(conn_in: Connection, conn_out: Connection, extra_rules: Sequence[type]) -> None:
    """The child's loop: one job at a time, answers in order."""
    from torchlint.config import resolved
    from torchlint.engine import LintOptions, lint_source
    from torchlint.fixes import fix_source
    from torchlint.incremental import ParseCache
    from torchlint.docs import rule_url
    from torchlint.rules import PluginError, all_rules

    extra = tuple(extra_rules)
    # Successive versions of a document differ in a statement or two: their
    # other statements are not parsed again (the pool sends a document back to
    # the process that linted it last).
    parse_cache = ParseCache()
    # ...and after an edit, the rules re-run only on the statements it can affect (slices.py).
    from torchlint.slices import IncrementalLinter

    linter = IncrementalLinter()
    # Objects from imports are never garbage: keep the collector from rescanning them.
    gc.freeze()
    while True:
        try:
            job = conn_in.recv()
        except (EOFError, OSError):
            return
        kind, source, path, codes = job
        try:
            options = LintOptions(codes=resolved(codes), extra_rules=extra, parse_cache=parse_cache)
            if kind == "lint":
                parse_cache.begin(path)
                report = linter.lint(source, path, options)
                parse_cache.end()
                report.source = None  # the parent has the text
                answer: tuple[str, Any] = ("ok", report)
            elif kind in NOTEBOOK_JOBS:
                answer = ("ok", run_notebook_job(kind, source, path, options))
            elif kind == "rules":  # the rules loaded and their documentation (the server does not load them)
                answer = ("ok", {code: rule_url(code) for code in sorted(all_rules())})
            elif kind == "fix_all":
                fixed = fix_source(source, lambda s: lint_source(s, path, options).findings, unsafe=False)[0]
                answer = ("ok", fixed)
            else:
                answer = ("error", f"unknown job {kind!r}")
        except PluginError as exc:
            answer = ("plugin_error", str(exc))
        except BaseException as exc:  # noqa: BLE001 - reported to the parent, which logs it
            answer = ("error", f"{type(exc).__name__}: {exc}")
        try:
            conn_out.send(answer)
        except (EOFError, OSError):
            return


def child_main(argv: Sequence[str]) -> int:
    """``python -m torchlint.server.worker IN_FD OUT_FD [module:Rule ...]``"""
    # Standard output may be the LSP stream of the parent: a stray print here must not land in it.
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    in_fd, out_fd, *specs = argv
    conn_in = Connection(int(in_fd), writable=False)
    conn_out = Connection(int(out_fd), readable=False)
    try:
        rules = [_load_rule(spec) for spec in specs]
    except Exception as exc:
        print(f"torchlint worker: cannot load rule: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 2
    _serve(conn_in, conn_out, rules)
    return 0


class _Worker:
    def __init__(self, extra_rules: Sequence[type]) -> None:
        to_child_r, to_child_w = os.pipe()
        from_child_r, from_child_w = os.pipe()
        # The child sees the modules this process sees (extra rules may live on an added path).
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(p for p in sys.path if p)
        try:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "torchlint.server.worker", str(to_child_r), str(from_child_w)]
                + [_rule_spec(r) for r in extra_rules],
                pass_fds=(to_child_r, from_child_w),
                stdin=subprocess.DEVNULL,
                stdout=sys.stderr.fileno() if hasattr(sys.stderr, "fileno") else subprocess.DEVNULL,
                env=env,
                close_fds=True,
            )
        finally:
            os.close(to_child_r)
            os.close(from_child_w)
        self.send_conn = Connection(to_child_w, readable=False)
        self.recv_conn = Connection(from_child_r, writable=False)
        # Blocking pipe reads and writes happen here, never on the event loop.
        self.io = ThreadPoolExecutor(max_workers=1, thread_name_prefix="torchlint-worker-io")
        # The document this process analysed last: its parse cache holds that text.
        self.last_path: str | None = None

    def is_alive(self) -> bool:
        return self.process.poll() is None

    def _roundtrip(self, job: tuple) -> Any:
        try:
            self.send_conn.send(job)
            return self.recv_conn.recv()
        except (EOFError, OSError) as exc:
            raise WorkerDied(f"the analysis process ended ({type(exc).__name__})") from None

    def stop(self) -> None:
        try:
            self.process.kill()
            self.process.wait(timeout=5)
        except Exception:
            pass
        for conn in (self.send_conn, self.recv_conn):
            try:
                conn.close()
            except Exception:
                pass
        self.io.shutdown(wait=False, cancel_futures=True)


class WorkerPool:
    """Up to ``size`` analysis processes, started on demand and replaced when stopped.

    Nothing starts before the first job: that job starts the process that runs
    it, and the rest of the pool starts right after the first file's analysis
    (so that the next file does not wait for a process to import the engine,
    and the first one does not share the CPU with their start-up).
    """

    def __init__(self, extra_rules: Sequence[type] = (), size: int = 2) -> None:
        self._extra_rules = tuple(extra_rules)
        self._size = size
        self._idle: list[_Worker] = []
        self._all: set[_Worker] = set()
        self._count = 0
        self._available: asyncio.Condition | None = None
        self._warmed = False
        self.closed = False

    def _condition(self) -> asyncio.Condition:
        if self._available is None:
            self._available = asyncio.Condition()
        return self._available

    def warm_up(self) -> None:
        """Start the processes not started yet (idle until a job comes)."""
        self._warmed = True
        while self._count < self._size and not self.closed:
            self._idle.append(self._spawn())

    def adopt(self, worker: _Worker) -> None:
        """A process started before the pool existed (launch.py starts one as the first file opens)."""
        if self.closed or self._count >= self._size:
            worker.stop()
            return
        self._count += 1
        self._all.add(worker)
        self._idle.append(worker)

    def _spawn(self) -> _Worker:
        self._count += 1
        try:
            worker = _Worker(self._extra_rules)
        except OSError as exc:
            self._count -= 1
            raise CannotStart(f"cannot start an analysis process: {exc}") from exc
        except BaseException:
            self._count -= 1
            raise
        self._all.add(worker)
        return worker

    async def _acquire(self, path: str | None = None) -> _Worker:
        cond = self._condition()
        async with cond:
            while True:
                if self.closed:
                    raise WorkerDied("the server is shutting down")
                for worker in self._idle:
                    if path is not None and worker.last_path == path and worker.is_alive():
                        self._idle.remove(worker)
                        return worker
                while self._idle:
                    worker = self._idle.pop()
                    if worker.is_alive():
                        return worker
                    self._discard(worker)
                if self._count < self._size:
                    return self._spawn()
                await cond.wait()

    async def _release(self, worker: _Worker) -> None:
        cond = self._condition()
        async with cond:
            if self.closed:
                worker.stop()
            else:
                self._idle.append(worker)
            cond.notify()

    def _discard(self, worker: _Worker) -> None:
        if worker in self._all:
            self._all.discard(worker)
            self._count -= 1
        worker.stop()

    async def _discard_and_notify(self, worker: _Worker) -> None:
        cond = self._condition()
        async with cond:
            self._discard(worker)
            cond.notify()

    async def run(self, job: tuple, wanted: Callable[[], bool] = lambda: True) -> Any | None:
        """Run ``job`` in a process. ``None``: it stopped being ``wanted`` before it finished.

        Raises :class:`WorkerDied` if the process died, or ``RuntimeError`` with
        the child's one-line message if the analysis raised.
        """
        path = job[2] if len(job) > 2 and isinstance(job[2], str) else None
        worker = await self._acquire(path)
        if path is not None:
            worker.last_path = path
        first = not self._warmed and job[0] != "rules"
        if first:
            # The first file's analysis: the other processes start once its answer is out (on
            # a small machine their start-up would compete with it for the CPU).
            self._warmed = True
            try:
                return await self._run(worker, job, wanted)
            finally:
                asyncio.get_running_loop().call_later(WARM_UP_AFTER_S, self._warm_up_later)
        return await self._run(worker, job, wanted)

    def _warm_up_later(self) -> None:
        try:
            self.warm_up()
        except CannotStart as exc:
            log.warning("%s; using fewer analysis processes", exc)

    async def _run(self, worker: _Worker, job: tuple, wanted: Callable[[], bool]) -> Any | None:
        if not wanted():
            await self._release(worker)
            return None
        loop = asyncio.get_running_loop()
        future = loop.run_in_executor(worker.io, worker._roundtrip, job)
        started = loop.time()
        try:
            while True:
                done, _ = await asyncio.wait({future}, timeout=POLL_S)
                if done:
                    break
                if not wanted() and loop.time() - started >= STOP_AFTER_S:
                    await self._discard_and_notify(worker)
                    return None
        except asyncio.CancelledError:
            # The request was cancelled: stop a long job, let a short one finish in the background.
            if loop.time() - started >= STOP_AFTER_S:
                await asyncio.shield(self._discard_and_notify(worker))
            else:
                asyncio.ensure_future(self._finish_later(worker, future))
            raise
        try:
            status, value = future.result()
        except WorkerDied:
            await self._discard_and_notify(worker)
            raise
        await self._release(worker)
        if status == "plugin_error":
            raise PluginFailure(value)
        if status != "ok":
            raise RuntimeError(value)
        return value

    async def _finish_later(self, worker: _Worker, future: asyncio.Future) -> None:
        try:
            await future
        except Exception:
            await self._discard_and_notify(worker)
            return
        await self._release(worker)

    def close(self) -> None:
        """Stop every process, busy ones too (the server is exiting)."""
        self.closed = True
        for worker in list(self._all):
            worker.stop()
        self._all.clear()
        self._idle.clear()


if __name__ == "__main__":
    sys.exit(child_main(sys.argv[1:]))
