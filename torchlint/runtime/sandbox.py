"""Run untrusted snippets (generated from the user's file) in a sandbox.

The snippet runs in a forked child of a worker process (see ``worker.py``);
the worker itself runs inside the best isolation this machine allows:

* ``bwrap``   - bubblewrap: read-only root, private /tmp, /dev and /proc, new
  network, PID, IPC and UTS namespaces, all capabilities dropped.
* ``unshare`` - util-linux ``unshare``: new network and PID namespaces only;
  the file system is *not* protected.
* ``none``    - a plain subprocess; every result carries warnings saying so.

Nothing in this module imports torch: the linter and the language server must
work without it. torch is imported only inside the worker.
"""

from __future__ import annotations

import dataclasses
import functools
import glob
import json
import os
import re
import select
import shutil
import signal
import site
import subprocess
import sys
import tempfile
import threading
import time
import weakref
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = [
    "DEFAULT_MEMORY_MB",
    "DEFAULT_TIMEOUT",
    "IsolationInfo",
    "SandboxError",
    "SandboxResult",
    "SandboxWorker",
    "build_command",
    "detect_isolation",
    "run_snippet",
]

STATUSES = ("ok", "exception", "timeout", "memory", "killed", "error")
ISOLATIONS = ("bwrap", "unshare", "none")
DEVICES = ("cpu", "cuda")

DEFAULT_TIMEOUT = 10.0
DEFAULT_MEMORY_MB = 1024
DEFAULT_STARTUP_TIMEOUT = 90.0
# torch, the usual submodules and the simulated device: what a confirmation
# snippet needs, imported once per worker instead of once per snippet.
DEFAULT_PRELOAD = (
    "torch",
    "torch.nn",
    "torch.nn.functional",
    "torch.optim",
    "torchlint.runtime.fakedevice",
)

# The worker enforces the snippet's time limit itself; this is only how long
# we wait beyond it for the worker to fork, clean up and answer before we
# declare the worker hung.
_RESPONSE_GRACE_S = 10.0
# Directory that contains the ``torchlint`` package, for the worker's PYTHONPATH.
_PACKAGE_PARENT = str(Path(__file__).resolve().parents[2])


class SandboxError(RuntimeError):
    """The sandbox could not be set up (not: the snippet failed)."""


@dataclass
class SandboxResult:
    """What happened when a snippet ran.

    ``status`` is one of ``ok``, ``exception`` (the snippet raised),
    ``timeout`` (wall-clock or CPU time limit), ``memory`` (memory limit),
    ``killed`` (the process died without reporting, e.g. a segfault or
    ``os._exit``) and ``error`` (the sandbox itself failed, or the snippet did
    not compile).
    """

    status: str
    exc_type: str | None = None
    exc_message: str | None = None
    traceback: str | None = None
    # Line in the snippet where the exception was raised (innermost snippet frame).
    lineno: int | None = None
    stdout: str = ""
    stderr: str = ""
    payload: dict[str, Any] = field(default_factory=dict)
    duration_s: float = 0.0
    isolation: str = "none"
    warnings: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


# --------------------------------------------------------------------------
# Isolation


@dataclass(frozen=True)
class IsolationInfo:
    kind: str
    warnings: tuple[str, ...]
    # Why the stronger mechanisms were not usable (None when they work).
    bwrap_problem: str | None = None
    unshare_problem: str | None = None


def _python_paths_under_tmp() -> list[str]:
    """Directories under /tmp the sandboxed Python needs: the fresh tmpfs would hide them.

    A checkout or virtualenv in /tmp is common in CI; torchlint, the interpreter
    and its packages must stay importable (read-only) inside the sandbox.
    """
    candidates = [
        _PACKAGE_PARENT,
        sys.prefix,
        sys.exec_prefix,
        sys.base_prefix,
        os.path.dirname(os.path.abspath(sys.executable)),
        *(p for p in sys.path if p),
        *(p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p),
    ]
    found: list[str] = []
    for path in candidates:
        path = os.path.abspath(path)
        if os.path.dirname(path) == path or not path.startswith("/tmp/") or not os.path.isdir(path):
            continue
        found.append(path)
    kept: list[str] = []
    for path in sorted(set(found), key=len):
        if not any(path.startswith(parent + "/") for parent in kept):
            kept.append(path)
    return kept


def _bwrap_args(bwrap: str, root: str, device: str) -> list[str]:
    args = [
        bwrap,
        "--ro-bind", "/", "/",
        "--dev", "/dev",
        "--proc", "/proc",
        "--tmpfs", "/tmp",
    ]
    for path in _python_paths_under_tmp():
        args += ["--ro-bind", path, path]
    if device == "cuda":
        # --dev gives a minimal /dev without the GPU nodes; CUDA needs
        # nvidiactl, nvidia-uvm(-tools), nvidiaN and nvidia-caps/*.
        for path in _nvidia_device_paths():
            args += ["--dev-bind", path, path]
    args += [
        # After --tmpfs /tmp, so that a temp root under /tmp stays visible.
        "--bind", root, root,
        "--chdir", root,
        "--unshare-net",
        # Without a PID namespace the snippet could signal any process of
        # the same user on the host.
        "--unshare-pid",
        "--unshare-ipc",
        "--unshare-uts",
        "--die-with-parent",
        "--new-session",
    ]
    if os.geteuid() == 0:
        # bwrap run by root keeps every capability (CAP_SYS_ADMIN could
        # remount / read-write) unless told otherwise.
        args += ["--cap-drop", "ALL"]
    return args


def _nvidia_device_paths() -> list[str]:
    return sorted(glob.glob("/dev/nvidia*"))


def _unshare_args(unshare: str) -> list[str]:
    args = [unshare, "--net", "--pid", "--fork", "--kill-child", "--mount-proc"]
    if os.geteuid() != 0:
        args.append("--map-root-user")
    return args


def _probe(cmd: list[str], root: str) -> str | None:
    """Run ``cmd`` (which ends by starting Python); None if it worked, else why not."""
    try:
        proc = subprocess.run(
            cmd,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            timeout=30,
            env=_sandbox_env(root, "cpu"),
            cwd=root,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"{Path(cmd[0]).name} could not run: {exc}"
    if proc.returncode != 0:
        detail = proc.stderr.decode(errors="replace").strip().splitlines()
        reason = detail[-1] if detail else f"exit status {proc.returncode}"
        return f"{Path(cmd[0]).name} failed here: {reason}"
    return None


@functools.lru_cache(maxsize=None)
def _probe_bwrap(device: str) -> str | None:
    bwrap = shutil.which("bwrap")
    if bwrap is None:
        return "bubblewrap (bwrap) is not installed"
    with tempfile.TemporaryDirectory(prefix="torchlint-probe-") as root:
        return _probe(_bwrap_args(bwrap, root, device) + ["--", sys.executable, "-S", "-c", "pass"], root)


@functools.lru_cache(maxsize=None)
def _probe_unshare() -> str | None:
    unshare = shutil.which("unshare")
    if unshare is None:
        return "unshare is not installed"
    with tempfile.TemporaryDirectory(prefix="torchlint-probe-") as root:
        return _probe(_unshare_args(unshare) + ["--", sys.executable, "-S", "-c", "pass"], root)


_NO_FS_PROTECTION = (
    "file system not protected: the snippet can write anywhere this user can "
    "(only its working directory and HOME are temporary)"
)


def detect_isolation(requested: str = "auto", device: str = "cpu") -> IsolationInfo:
    """Pick the isolation mechanism; probes are run once per process and cached.

    ``requested`` is ``auto`` (the strongest that works), or one of
    ``bwrap``/``unshare``/``none``. Asking for one that does not work here
    raises :class:`SandboxError` with the reason.
    """
    if requested not in ("auto", *ISOLATIONS):
        raise ValueError(f"unknown isolation {requested!r}; expected auto, bwrap, unshare or none")
    if device not in DEVICES:
        raise ValueError(f"unknown device {device!r}; expected cpu or cuda")
    if requested == "none":
        return IsolationInfo(
            "none",
            (
                "no network isolation: the sandbox was asked to run without any",
                _NO_FS_PROTECTION,
            ),
        )
    bwrap_problem = _probe_bwrap(device) if requested in ("auto", "bwrap") else None
    if requested == "bwrap" and bwrap_problem:
        raise SandboxError(f"bubblewrap isolation requested but unavailable: {bwrap_problem}")
    if requested in ("auto", "bwrap") and bwrap_problem is None:
        return IsolationInfo("bwrap", ())
    unshare_problem = _probe_unshare()
    if requested == "unshare" and unshare_problem:
        raise SandboxError(f"unshare isolation requested but unavailable: {unshare_problem}")
    if unshare_problem is None:
        warnings = [_NO_FS_PROTECTION]
        if bwrap_problem:
            warnings.append(f"bubblewrap unavailable, fell back to unshare: {bwrap_problem}")
        return IsolationInfo("unshare", tuple(warnings), bwrap_problem, None)
    return IsolationInfo(
        "none",
        (
            "no network isolation available: neither bubblewrap nor unshare works here "
            f"(bwrap: {bwrap_problem}; unshare: {unshare_problem})",
            _NO_FS_PROTECTION,
        ),
        bwrap_problem,
        unshare_problem,
    )


def _sandbox_env(home: str, device: str) -> dict[str, str]:
    """The whole environment of the sandbox: nothing else leaks in."""
    pythonpath = [_PACKAGE_PARENT]
    # HOME changes, so a user-site install of torch would vanish unless named.
    user_site = site.getusersitepackages() if site.ENABLE_USER_SITE else None
    if user_site and os.path.isdir(user_site):
        pythonpath.append(user_site)
    pythonpath += [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
    env = {
        "PATH": os.environ.get("PATH") or "/usr/local/bin:/usr/bin:/bin",
        "HOME": home,
        "TMPDIR": home,
        "PYTHONPATH": os.pathsep.join(dict.fromkeys(pythonpath)),
        # .pyc files would otherwise be written next to the sources when
        # the file system is not read-only (unshare / none).
        "PYTHONDONTWRITEBYTECODE": "1",
        "LANG": os.environ.get("LANG") or "C.UTF-8",
    }
    if "LC_ALL" in os.environ:
        env["LC_ALL"] = os.environ["LC_ALL"]
    if device == "cuda":
        # The driver's libcuda is often found only through LD_LIBRARY_PATH
        # (e.g. /usr/local/nvidia/lib64 in NVIDIA containers).
        for name in ("CUDA_VISIBLE_DEVICES", "LD_LIBRARY_PATH"):
            if name in os.environ:
                env[name] = os.environ[name]
    return env


def build_command(isolation: str, root: str, device: str, argv: list[str]) -> list[str]:
    """The command line that runs ``argv`` under ``isolation`` with ``root`` as its writable directory."""
    if isolation == "bwrap":
        return _bwrap_args(shutil.which("bwrap") or "bwrap", root, device) + ["--", *argv]
    if isolation == "unshare":
        return _unshare_args(shutil.which("unshare") or "unshare") + ["--", *argv]
    if isolation == "none":
        return list(argv)
    raise ValueError(f"unknown isolation {isolation!r}")


# --------------------------------------------------------------------------
# The worker handle


class _WorkerGone(Exception):
    pass


class _WorkerSilent(Exception):
    pass


def _kill_process_group(proc: subprocess.Popen) -> None:
    # Once the leader is reaped its PID (= the group ID) may be reused;
    # until then the group ID cannot belong to anyone else.
    if proc.returncode is None:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        pass


def _shutdown(proc: subprocess.Popen, root: str, log) -> None:
    """Stop a worker and remove its directory (also run by the GC finalizer)."""
    if proc.poll() is None:
        try:
            proc.stdin.close()  # EOF: the worker exits on its own
        except OSError:
            pass
        try:
            proc.wait(timeout=2)
        except subprocess.TimeoutExpired:
            pass
    _kill_process_group(proc)  # whatever is left of the group
    for stream in (proc.stdin, proc.stdout):
        try:
            stream.close()
        except OSError:
            pass
    log.close()
    shutil.rmtree(root, ignore_errors=True)


class SandboxWorker:
    """A long-lived sandboxed worker with torch pre-imported.

    Each :meth:`run` forks a fresh child inside the sandbox (new process group,
    own rlimits, fresh temporary directory), so one snippet cannot affect the
    next. The worker is (re)started on demand: if a snippet manages to kill it,
    the next call starts a new one. Calls are serialized with a lock, so one
    worker can be shared by the threads of a language server.

    ``device="cuda"`` gives the sandbox access to /dev/nvidia* and switches the
    memory guard from an address-space limit (which breaks CUDA start-up) to a
    data-segment limit plus an RSS watchdog.
    """

    def __init__(
        self,
        *,
        device: str = "cpu",
        isolation: str = "auto",
        preload: tuple[str, ...] | list[str] | None = None,
        startup_timeout: float = DEFAULT_STARTUP_TIMEOUT,
    ) -> None:
        self._info = detect_isolation(isolation, device)
        self.device = device
        if preload is None:
            # The simulated GPU is for machines without one; on a real GPU
            # it would only add start-up time.
            preload = DEFAULT_PRELOAD if device == "cpu" else DEFAULT_PRELOAD[:-1]
        self.preload = tuple(preload)
        self.startup_timeout = startup_timeout
        self.restarts = 0
        self.hello: dict[str, Any] = {}
        self._lock = threading.RLock()
        self._proc: subprocess.Popen | None = None
        self._root: str | None = None
        self._buffer = b""
        self._finalizer: weakref.finalize | None = None
        self._jobs = 0
        self._start_warnings: list[str] = []

    # -- properties ---------------------------------------------------------

    @property
    def isolation(self) -> str:
        return self._info.kind

    @property
    def warnings(self) -> list[str]:
        return [*self._info.warnings, *self._start_warnings]

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    @property
    def alive(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    # -- life cycle ---------------------------------------------------------

    def __enter__(self) -> SandboxWorker:
        self.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    def start(self) -> None:
        """Start the worker now (otherwise the first :meth:`run` does)."""
        with self._lock:
            if not self.alive:
                self._spawn()

    def close(self) -> None:
        with self._lock:
            if self._finalizer is not None:
                self._finalizer()  # runs _shutdown once
            self._finalizer = None
            self._proc = None
            self._root = None
            self._buffer = b""

    def _spawn(self) -> None:
        self.close()
        root = tempfile.mkdtemp(prefix="torchlint-sandbox-")
        os.chmod(root, 0o700)
        argv = [
            sys.executable,
            "-s",
            "-B",
            "-m",
            "torchlint.runtime.worker",
            "--root",
            root,
            "--preload",
            ",".join(self.preload),
        ]
        cmd = build_command(self.isolation, root, self.device, argv)
        # Unlinked file: the worker's own stderr, read back only to explain a
        # failed start; never visible inside the sandbox's directory.
        log = tempfile.TemporaryFile()
        try:
            proc = subprocess.Popen(
                cmd,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=log,
                env=_sandbox_env(root, self.device),
                cwd=root,
                start_new_session=True,  # one killpg stops all of it
                bufsize=0,
            )
        except OSError as exc:
            log.close()
            shutil.rmtree(root, ignore_errors=True)
            raise SandboxError(f"could not start the sandbox worker: {exc}") from exc
        self._proc, self._root, self._buffer = proc, root, b""
        self._log = log
        self._finalizer = weakref.finalize(self, _shutdown, proc, root, log)
        try:
            hello = self._read_message(time.monotonic() + self.startup_timeout)
        except (_WorkerGone, _WorkerSilent, ValueError) as exc:
            detail = self._log_tail()
            self.close()
            why = "did not answer in time" if isinstance(exc, _WorkerSilent) else "exited during start-up"
            raise SandboxError(f"sandbox worker {why}: {detail or exc}") from None
        if not hello.get("ready"):
            self.close()
            raise SandboxError(f"sandbox worker sent an unexpected greeting: {hello!r}")
        self.hello = hello
        self._start_warnings = []
        if hello.get("cuda_initialized"):
            self._start_warnings.append(
                "CUDA was initialized while preloading modules; forked jobs cannot use the GPU "
                f"(preloaded: {', '.join(hello.get('preloaded', []))})"
            )

    def _log_tail(self, limit: int = 2000) -> str:
        try:
            self._log.seek(0)
            data = self._log.read()
        except (OSError, ValueError, AttributeError):
            return ""
        return data.decode(errors="replace").strip()[-limit:]

    # -- protocol -----------------------------------------------------------

    def _send(self, message: dict[str, Any]) -> None:
        data = memoryview(json.dumps(message).encode() + b"\n")
        fd = self._proc.stdin.fileno()
        while data:
            written = os.write(fd, data)
            data = data[written:]

    def _read_message(self, deadline: float) -> dict[str, Any]:
        fd = self._proc.stdout.fileno()
        while b"\n" not in self._buffer:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise _WorkerSilent()
            ready, _, _ = select.select([fd], [], [], remaining)
            if not ready:
                continue
            chunk = os.read(fd, 1 << 16)
            if not chunk:
                raise _WorkerGone()
            self._buffer += chunk
        line, _, self._buffer = self._buffer.partition(b"\n")
        return json.loads(line)

    # -- running ------------------------------------------------------------

    def run(
        self,
        code: str,
        *,
        timeout: float = DEFAULT_TIMEOUT,
        memory_mb: int = DEFAULT_MEMORY_MB,
        cpu_time: float | None = None,
        simulate_cuda: bool = False,
        memory_guard: str = "auto",
        output_limit: int = 64_000,
    ) -> SandboxResult:
        """Run ``code`` in a fresh child of the worker.

        ``timeout`` is wall-clock seconds; ``cpu_time`` (default: the timeout
        times the number of CPUs, a backstop) is an RLIMIT_CPU. ``memory_mb``
        is what the snippet may add on top of the worker's footprint (torch
        already imported). ``simulate_cuda`` runs the snippet under
        :func:`torchlint.runtime.fakedevice.simulate_device`. ``memory_guard``
        is ``auto``, ``address-space`` (RLIMIT_AS), ``data+rss`` (RLIMIT_DATA
        and an RSS watchdog; what ``auto`` picks for CUDA) or ``rss`` (the
        watchdog alone, should a driver ever need writable reservations).
        GPU memory itself is not limited.
        """
        if memory_guard == "auto":
            memory_guard = "data+rss" if self.device == "cuda" else "address-space"
        if memory_guard not in ("address-space", "data+rss", "rss"):
            raise ValueError(f"unknown memory_guard {memory_guard!r}")
        start = time.monotonic()
        with self._lock:
            notes: list[str] = []
            if not self.alive:
                if self._proc is not None:
                    self.restarts += 1
                    notes.append("the sandbox worker had died and was restarted")
                try:
                    self._spawn()
                except SandboxError as exc:
                    return self._result(
                        {"status": "error", "exc_type": "SandboxError", "exc_message": str(exc)},
                        start,
                        notes,
                    )
            self._jobs += 1
            request = {
                "id": self._jobs,
                "code": code,
                "timeout": float(timeout),
                "cpu_time": float(cpu_time) if cpu_time else float(timeout) * (os.cpu_count() or 1) + 1,
                "memory_mb": int(memory_mb),
                "memory_guard": memory_guard,
                "simulate_cuda": bool(simulate_cuda),
                "output_limit": int(output_limit),
            }
            try:
                self._send(request)
                response = self._read_message(time.monotonic() + timeout + _RESPONSE_GRACE_S)
            except _WorkerSilent:
                # Kill it now; the next run counts the restart and starts anew.
                _kill_process_group(self._proc)
                return self._result(
                    {
                        "status": "timeout",
                        "exc_message": f"the sandbox worker did not answer within {timeout + _RESPONSE_GRACE_S:.0f} s",
                    },
                    start,
                    notes + ["the sandbox worker stopped responding and was killed; the next run restarts it"],
                )
            except (_WorkerGone, OSError, ValueError):
                # The snippet killed its own worker (or the worker crashed).
                _kill_process_group(self._proc)
                return self._result(
                    {
                        "status": "killed",
                        "exc_message": "the sandbox worker died while running the snippet",
                    },
                    start,
                    notes + ["the sandbox worker died; the next run restarts it"],
                )
            if response.get("id") != request["id"]:
                _kill_process_group(self._proc)
                return self._result(
                    {"status": "error", "exc_message": f"sandbox protocol error: {response!r}"[:2000]},
                    start,
                    notes,
                )
            return self._result(response, start, notes)

    def _result(self, response: dict[str, Any], start: float, notes: list[str]) -> SandboxResult:
        fields = {f.name for f in dataclasses.fields(SandboxResult)}
        data = {k: v for k, v in response.items() if k in fields}
        data["warnings"] = [*self.warnings, *response.get("warnings", []), *notes]
        data["isolation"] = self._info.kind
        data["duration_s"] = time.monotonic() - start
        return SandboxResult(**data)


def run_snippet(
    code: str,
    *,
    timeout: float = DEFAULT_TIMEOUT,
    memory_mb: int = DEFAULT_MEMORY_MB,
    device: str = "cpu",
    simulate_cuda: bool = False,
    isolation: str = "auto",
    cpu_time: float | None = None,
    preload: tuple[str, ...] | None = None,
) -> SandboxResult:
    """Run one snippet in a new sandbox (cold: pays for starting Python and torch).

    ``duration_s`` is the whole wall time, start-up included. ``preload``
    defaults to torch when the snippet mentions it (everything in
    ``DEFAULT_PRELOAD`` with ``simulate_cuda``), so that ``memory_mb`` limits
    the snippet rather than the import.
    """
    start = time.monotonic()
    if preload is None:
        preload = ("torch",) if re.search(r"\btorch\b", code) else ()
        if simulate_cuda:
            preload = DEFAULT_PRELOAD
    worker = None
    try:
        worker = SandboxWorker(device=device, isolation=isolation, preload=preload)
        worker.start()
    except SandboxError as exc:
        if worker is not None:
            worker.close()
        return SandboxResult(
            status="error",
            exc_type="SandboxError",
            exc_message=str(exc),
            duration_s=time.monotonic() - start,
            isolation=worker.isolation if worker is not None else "none",
            warnings=worker.warnings if worker is not None else [],
        )
    try:
        result = worker.run(
            code, timeout=timeout, memory_mb=memory_mb, cpu_time=cpu_time, simulate_cuda=simulate_cuda
        )
    finally:
        worker.close()
    result.duration_s = time.monotonic() - start
    return result
