"""Analysis processes for the language server.

libcst's parser holds the GIL while it parses, so linting in a thread would
freeze the server's event loop for the length of every parse (seconds on a
large file), and a thread cannot be stopped. Linting runs in child processes
instead (child.py): the server keeps answering while they work, and a lint
nobody wants any more (the text changed, the request was cancelled) is
stopped by ending its process.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from torchlint.server.child import NOTEBOOK_JOBS, Spawned, end, recv, run_notebook_job, send, spawn

__all__ = ["NOTEBOOK_JOBS", "CannotStart", "PluginFailure", "WorkerDied", "WorkerPool", "run_notebook_job"]

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


class _Worker:
    def __init__(self, extra_rules: Sequence[type] = (), spawned: Spawned | None = None) -> None:
        # ``spawned``: a process launch.py started before the pool existed.
        spawned = spawned or spawn(extra_rules)
        self.process = spawned.process
        self.send_fd, self.recv_fd = spawned.to_child, spawned.from_child
        self.pending = spawned.pending  # a thread still writing a job launch.py sent
        self._closed = False
        # Blocking pipe reads and writes happen here, never on the event loop.
        self.io = ThreadPoolExecutor(max_workers=1, thread_name_prefix="torchlint-worker-io")
        # The document this process analysed last: its parse cache holds that text.
        self.last_path: str | None = None

    def is_alive(self) -> bool:
        return self.process.poll() is None

    def _roundtrip(self, job: tuple) -> Any:
        if self.pending is not None:
            self.pending.join()
            self.pending = None
        try:
            send(self.send_fd, job)
            return recv(self.recv_fd)
        except (EOFError, OSError) as exc:
            raise WorkerDied(f"the analysis process ended ({type(exc).__name__})") from None

    def stop(self) -> None:
        # (A blocked read or write in the io thread ends with the process: EOF or EPIPE.)
        end(self.process, () if self._closed else (self.send_fd, self.recv_fd))
        self._closed = True
        self.io.shutdown(wait=False, cancel_futures=True)


class WorkerPool:
    """Up to ``size`` analysis processes, started on demand and replaced when stopped.

    The first process is the one launch.py starts as ``initialize`` is answered
    (:meth:`adopt`), or else the one the first job starts; the rest of the pool
    starts right after the first file's analysis (so that the next file does
    not wait for a process to import the engine, and the first one does not
    share the CPU with their start-up).
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

    def adopt(self, spawned: Spawned) -> None:
        """A process started before the pool existed (launch.py starts one as soon as ``initialize`` is answered)."""
        worker = _Worker(spawned=spawned)
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
