"""The process that runs inside the sandbox: a fork-per-job "zygote".

It imports torch once, then for every request (one JSON object per line on
stdin) forks a child that becomes its own session and process group, sets
its rlimits, moves into a fresh directory, runs the snippet and writes its
result to a pipe. The worker enforces the wall-clock limit, kills the child's
process group (and anything else the job left behind) and answers with one
JSON line on its original stdout.

The worker never runs torch operations itself: the children inherit its
memory, and an OpenMP pool or a CUDA context created before ``fork`` would
not survive it.

Run as ``python -m torchlint.runtime.worker --root DIR [--preload a,b]``.
Only the standard library is imported at module level.
"""

from __future__ import annotations

import argparse
import builtins
import contextlib
import ctypes
import errno
import faulthandler
import importlib
import io
import json
import linecache
import math
import os
import resource
import select
import shutil
import signal
import sys
import tempfile
import time
import traceback
from typing import Any

SNIPPET_FILENAME = "<snippet>"
_PAYLOAD_LIMIT = 1_000_000  # bytes of JSON
# What the worker keeps from the result pipe: a forked grandchild inherits
# it and could otherwise make the worker buffer without bound.
_RESULT_LIMIT = 32 * 2**20
_TRACEBACK_LIMIT = 8_000  # characters
_FILE_SIZE_LIMIT = 256 * 2**20  # RLIMIT_FSIZE: bounds what a job can write to disk
_WATCHDOG_PERIOD_S = 0.1
# The job cgroup's cgroup.procs files, opened by the parent (see _join_cgroups).
_CGROUP_FDS: list[int] = []
# Its memory events file (memory.events / memory.oom_control), read-only: an
# out-of-memory kill anywhere in the job ends the job.
_CGROUP_EVENTS: list[int] = []
# Scratch file systems private to this worker (bubblewrap's tmpfs /tmp and
# /dev/shm), emptied after every job; empty when they are the host's.
_PRIVATE_SCRATCH: list[str] = []

_PR_SET_PDEATHSIG = 1
_PR_SET_DUMPABLE = 4
_PR_SET_CHILD_SUBREAPER = 36
_M_ARENA_MAX = -8

try:
    _libc = ctypes.CDLL(None, use_errno=True)
except OSError:  # not glibc/Linux: the optional tweaks below are skipped
    _libc = None


def _prctl(option: int, value: int) -> None:
    if _libc is not None:
        _libc.prctl(option, value, 0, 0, 0)


# --------------------------------------------------------------------------
# /proc helpers


def _proc_stat(pid: str) -> list[str] | None:
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            data = fh.read().decode(errors="replace")
    except OSError:
        return None
    # The command name may contain spaces and parentheses; fields start
    # after the last ')'. Index 0 is the state (field 3 in proc(5)).
    return data[data.rfind(")") + 2 :].split()


def _process_table() -> dict[int, tuple[int, int]]:
    """pid -> (ppid, threads) for every process visible in /proc."""
    table = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        fields = _proc_stat(name)
        if fields and len(fields) > 21:
            table[int(name)] = (int(fields[1]), int(fields[17]))
    return table


def _descendants(table: dict[int, tuple[int, int]], root: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for pid, (ppid, _) in table.items():
        children.setdefault(ppid, []).append(pid)
    found, stack = [], list(children.get(root, []))
    while stack:
        pid = stack.pop()
        found.append(pid)
        stack.extend(children.get(pid, []))
    return found


def _status_kb(field: str, pid: int | str = "self") -> int:
    with open(f"/proc/{pid}/status") as fh:
        for line in fh:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


def _private_kb(pid: int | str = "self") -> int:
    """Anonymous plus shared-memory resident kB of a process: what it allocated, counted whole.

    Pages a fork still shares with its parent count in both (an upper bound).
    File pages (libraries, the page cache) are left out: they are reclaimable.
    """
    anon = shmem = 0
    try:
        with open(f"/proc/{pid}/status") as fh:
            for line in fh:
                if line.startswith("RssAnon:"):
                    anon = int(line.split()[1])
                elif line.startswith("RssShmem:"):
                    shmem = int(line.split()[1])
    except (OSError, ValueError, IndexError):
        return 0
    return anon + shmem


def _proportional_kb(pid: int) -> int:
    """Like :func:`_private_kb`, but pages shared between processes split among them (PSS).

    Slow (~10 ms for a process with torch loaded), so used only when the
    cheap upper bound is over the limit. A process that made itself
    unreadable (not dumpable) is counted whole.
    """
    try:
        with open(f"/proc/{pid}/smaps_rollup") as fh:
            total = 0
            for line in fh:
                if line.startswith(("Pss_Anon:", "Pss_Shmem:")):
                    total += int(line.split()[1])
            return total
    except (OSError, ValueError, IndexError):
        return _private_kb(pid)


# --------------------------------------------------------------------------
# The child: run one snippet


class _CappedText(io.TextIOBase):
    """sys.stdout/sys.stderr replacement that keeps the first ``limit`` characters."""

    def __init__(self, limit: int) -> None:
        super().__init__()
        self._parts: list[str] = []
        self._size = 0
        self.limit = limit
        self.dropped = 0

    @property
    def encoding(self) -> str:
        return "utf-8"

    @property
    def errors(self) -> str:
        return "strict"

    def writable(self) -> bool:
        return True

    def isatty(self) -> bool:
        return False

    def write(self, text: str) -> int:
        if not isinstance(text, str):
            raise TypeError(f"write() argument must be str, not {type(text).__name__}")
        room = self.limit - self._size
        if room > 0:
            self._parts.append(text[:room])
            self._size += min(len(text), room)
        self.dropped += max(0, len(text) - max(room, 0))
        return len(text)

    def getvalue(self) -> str:
        return "".join(self._parts)


def _jsonable(value: Any) -> Any:
    # Tensors and numpy values: what snippets most often want to report.
    for attr in ("tolist", "item"):
        method = getattr(value, attr, None)
        if callable(method):
            return method()
    if isinstance(value, (set, frozenset, tuple)):
        return list(value)
    raise TypeError(f"torchlint_report: {type(value).__name__} is not JSON-serializable")


def _is_memory_error(exc: BaseException) -> bool:
    if isinstance(exc, MemoryError):
        return True
    if type(exc).__name__ == "OutOfMemoryError":  # torch.OutOfMemoryError
        return True
    if isinstance(exc, RuntimeError):
        text = str(exc)
        # What torch's CPU allocator raises when malloc fails under RLIMIT_AS.
        return "can't allocate memory" in text or "Cannot allocate memory" in text
    return False


def _describe_exception(exc: BaseException) -> dict[str, Any]:
    tb = exc.__traceback__
    # Drop the worker's own frames: the traceback starts in the snippet.
    while tb is not None and tb.tb_frame.f_code.co_filename != SNIPPET_FILENAME:
        tb = tb.tb_next
    lineno = None
    for frame, line in traceback.walk_tb(tb):
        if frame.f_code.co_filename == SNIPPET_FILENAME:
            lineno = line
    if isinstance(exc, SyntaxError) and exc.filename == SNIPPET_FILENAME:
        lineno = exc.lineno
    try:
        message = str(exc)
        text = "".join(traceback.format_exception(type(exc), exc, tb or exc.__traceback__, limit=-40))
    except Exception as broken:  # noqa: BLE001 - a hostile __str__ must not hide the result
        message = f"<str() of the exception failed: {type(broken).__name__}>"
        text = f"{type(exc).__qualname__}: {message}\n"
    if len(text) > _TRACEBACK_LIMIT:
        text = "...\n" + text[-_TRACEBACK_LIMIT:]
    return {
        "exc_type": type(exc).__qualname__,
        "exc_message": message,
        "traceback": text,
        "lineno": lineno,
    }


def _execute(request: dict[str, Any]) -> dict[str, Any]:
    code = request["code"]
    payload: dict[str, Any] = {}
    warnings: list[str] = []

    def torchlint_report(data: dict[str, Any] | None = None, **values: Any) -> None:
        """Record JSON-able values for the caller (merged into ``result.payload``)."""
        update = dict(data or {}, **values)
        # Fail in the snippet, where the mistake is, not when answering.
        json.dumps(update, default=_jsonable)
        payload.update(json.loads(json.dumps(update, default=_jsonable)))

    out = _CappedText(request["output_limit"])
    err = _CappedText(request["output_limit"])
    result: dict[str, Any] = {"status": "ok"}
    linecache.cache[SNIPPET_FILENAME] = (len(code), None, code.splitlines(True), SNIPPET_FILENAME)
    namespace = {
        "__name__": "__main__",
        "__builtins__": builtins,
        "torchlint_report": torchlint_report,
    }
    effects = _SideEffects(request.get("scratch", [os.getcwd()]))
    sys.addaudithook(effects)  # this process is the job's alone: it ends with it
    saved = sys.stdout, sys.stderr
    sys.stdout, sys.stderr = out, err
    try:
        try:
            compiled = compile(code, SNIPPET_FILENAME, "exec", dont_inherit=True)
        except (SyntaxError, ValueError) as exc:
            result = {"status": "error", **_describe_exception(exc)}
        else:
            try:
                if request["simulate_cuda"]:
                    from torchlint.runtime.fakedevice import simulate_device

                    context = simulate_device("cuda")
                else:
                    context = contextlib.nullcontext()
                with context:
                    exec(compiled, namespace)
            except SystemExit as exc:
                if exc.code not in (None, 0):
                    result = {"status": "exception", **_describe_exception(exc)}
            except BaseException as exc:  # noqa: BLE001 - reporting it is the point
                status = "memory" if _is_memory_error(exc) else "exception"
                result = {"status": status, **_describe_exception(exc)}
    finally:
        sys.stdout, sys.stderr = saved
    result["stdout"] = out.getvalue()
    result["stderr"] = err.getvalue()
    for name, stream in (("stdout", out), ("stderr", err)):
        if stream.dropped:
            warnings.append(f"{name} truncated: {stream.dropped} characters dropped")
    encoded = json.dumps(payload)
    if len(encoded) > _PAYLOAD_LIMIT:
        payload = {}
        warnings.append(f"payload dropped: {len(encoded)} bytes of JSON is over the {_PAYLOAD_LIMIT} byte limit")
    result["payload"] = payload
    result["warnings"] = warnings
    result["side_effects"] = effects.report()
    return result


def _my_tasks() -> int:
    """Threads of every process of this user visible here (the sandbox's PID namespace)."""
    uid = str(os.getuid())
    count = 0
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/status") as fh:
                lines = dict(line.split(":", 1) for line in fh if ":" in line)
        except OSError:
            continue
        if lines.get("Uid", "").split()[:1] == [uid]:
            count += int(lines.get("Threads", "1"))
    return count


def _set_limits(request: dict[str, Any]) -> None:
    memory = request["memory_mb"] * 2**20
    if request["memory_guard"] == "address-space":
        # Relative to what is mapped now (torch already imported), so the
        # limit means "what the snippet may add".
        limit = _status_kb("VmSize") * 1024 + memory
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    elif request["memory_guard"] == "data+rss":
        # CUDA reserves huge PROT_NONE address ranges, which RLIMIT_AS
        # counts and RLIMIT_DATA does not; the parent also watches RSS.
        limit = _status_kb("VmData") * 1024 + memory
        resource.setrlimit(resource.RLIMIT_DATA, (limit, limit))
    cpu = max(1, math.ceil(request["cpu_time"]))
    resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu + 1))
    resource.setrlimit(resource.RLIMIT_FSIZE, (_FILE_SIZE_LIMIT, _FILE_SIZE_LIMIT))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    if request.get("nproc_rlimit") and request.get("max_processes"):
        # RLIMIT_NPROC counts every task of this uid; the sandbox gives the
        # worker a uid of its own, so "what exists now + the job's share"
        # is a limit for the job's whole tree (threads included; this
        # process, single-threaded after the fork, is one of them).
        tasks = _my_tasks() - 1 + int(request["max_processes"])
        resource.setrlimit(resource.RLIMIT_NPROC, (tasks, tasks))


# --------------------------------------------------------------------------
# What the snippet tried that the sandbox may have denied

_WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND
_PATH_EVENTS = {
    "os.mkdir": (0,), "os.remove": (0,), "os.rmdir": (0,), "os.rename": (0, 1), "os.symlink": (1,),
    "os.link": (1,), "os.chmod": (0,), "os.chown": (0,), "os.truncate": (0,), "os.utime": (0,),
    "os.mkfifo": (0,), "os.mknod": (0,), "shutil.copyfile": (1,), "shutil.copytree": (1,), "shutil.move": (1,),
}  # fmt: skip
_HARMLESS_WRITES = ("/dev/null", "/dev/zero", "/dev/full", "/dev/tty", "/dev/stdout", "/dev/stderr", "/dev/fd/",
                    "/proc/self/fd/", "/proc/thread-self/fd/")  # fmt: skip
_SIDE_EFFECT_LIMIT = 20


def _is_ip(host: Any) -> bool:
    import ipaddress  # only when a snippet resolves a name

    try:
        ipaddress.ip_address(str(host).split("%")[0])
        return True
    except ValueError:
        return False


class _SideEffects:
    """An audit hook that notes network use and writes outside the job's scratch space.

    This is for *reporting* (a confirmation must not hide that the program
    tried to phone home or write the user's files); the kernel does the
    denying. Native code that bypasses Python (a C extension's own open(),
    ctypes syscalls) is not seen.
    """

    def __init__(self, scratch: list[str]) -> None:
        self.scratch = tuple(p.rstrip("/") + "/" for p in scratch if p)
        self.seen: dict[tuple[str, str], int] = {}
        self.bound: set[str] = set()
        self.connects: list[tuple[str, str]] = []

    def _note(self, kind: str, target: str) -> None:
        key = (kind, target)
        if key in self.seen or len(self.seen) < _SIDE_EFFECT_LIMIT:
            self.seen[key] = self.seen.get(key, 0) + 1

    def _path(self, path: Any) -> None:
        if isinstance(path, int):
            return
        try:
            text = os.path.abspath(os.fsdecode(path))
        except (TypeError, ValueError):
            return
        if text.startswith(_HARMLESS_WRITES) or (text + "/").startswith(self.scratch):
            return
        self._note("write", text)

    @staticmethod
    def _address(address: Any) -> str:
        if isinstance(address, tuple) and len(address) >= 2:
            return f"[{address[0]}]:{address[1]}" if ":" in str(address[0]) else f"{address[0]}:{address[1]}"
        if isinstance(address, (bytes, str)):
            text = os.fsdecode(address)
            return "@" + text[1:] if text.startswith("\0") else text
        return repr(address)

    def __call__(self, event: str, args: tuple) -> None:
        try:
            if event == "open":
                path, _mode, flags = args
                if isinstance(flags, int) and flags & _WRITE_FLAGS:
                    self._path(path)
            elif event in _PATH_EVENTS:
                for index in _PATH_EVENTS[event]:
                    if index < len(args):
                        self._path(args[index])
            elif event in ("socket.connect", "socket.sendto", "socket.sendmsg"):
                address = args[1] if len(args) > 1 else None
                if address is not None:
                    self.connects.append((event.split(".")[1], self._address(address)))
            elif event == "socket.bind":
                self.bound.add(self._address(args[1]))
            elif event in ("socket.getaddrinfo", "socket.gethostbyname", "socket.gethostbyname_ex"):
                host = args[0]
                if isinstance(host, bytes):
                    host = host.decode(errors="replace")
                if host and host != "localhost" and not _is_ip(host):
                    self._note("network", f"resolve {host}")
        except Exception:  # noqa: BLE001, S110 - an odd argument must not break the snippet
            pass

    def report(self) -> list[dict[str, Any]]:
        for verb, address in self.connects:
            if address not in self.bound:  # its own listener inside the sandbox is not a side effect
                self._note("network", f"{verb} {address}")
        return [{"kind": kind, "target": target, "count": count} for (kind, target), count in self.seen.items()]


def _join_cgroups() -> None:
    """Move this process into the job's cgroup(s) through the worker's open cgroup.procs files.

    The parent opened them (open-time credentials decide), so the job needs no
    access to the cgroup file system; the files are closed before the snippet runs.
    """
    for fd in _CGROUP_FDS:
        os.write(fd, b"0")
    for fd in (*_CGROUP_FDS, *_CGROUP_EVENTS):
        os.close(fd)


def _oom_kills() -> int:
    for fd in _CGROUP_EVENTS:
        with contextlib.suppress(OSError, ValueError):
            for line in os.pread(fd, 4096, 0).decode().splitlines():
                if line.startswith("oom_kill "):
                    return int(line.split()[1])
    return 0


def _child_main(request: dict[str, Any], jobdir: str, result_fd: int, out_path: str, err_path: str) -> None:
    os.setsid()
    if request.get("cgroup"):
        _join_cgroups()
    else:
        for fd in (*_CGROUP_FDS, *_CGROUP_EVENTS):
            os.close(fd)
    # The worker is not dumpable (see main); the job may inspect itself.
    _prctl(_PR_SET_DUMPABLE, 1)
    # Without a PID namespace (isolation "none") nothing else would stop
    # the job if the worker died.
    _prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    for fd, path in ((1, out_path), (2, err_path)):
        target = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        os.dup2(target, fd)
        os.close(target)
    os.close(null)
    os.set_inheritable(result_fd, False)
    # Python-level stdin of the worker may hold buffered request bytes.
    sys.stdin = open(os.devnull)  # noqa: SIM115
    os.chdir(jobdir)
    os.environ["HOME"] = jobdir
    os.environ["TMPDIR"] = jobdir
    os.environ.pop("PWD", None)  # set by bwrap --chdir; stale after chdir
    tempfile.tempdir = None
    # Beyond RLIMIT_FSIZE a write should fail with an error, not kill.
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    faulthandler.enable(file=open(2, "w", closefd=False))  # noqa: SIM115 - segfault location in stderr
    if _libc is not None:
        # One malloc arena per thread reserves 64 MiB of address space each,
        # which would eat an RLIMIT_AS budget on many-core machines.
        _libc.mallopt(_M_ARENA_MAX, 2)
    _set_limits(request)
    try:
        result = _execute(request)
        data = json.dumps(result).encode()
    except BaseException as exc:  # noqa: BLE001 - e.g. MemoryError while encoding
        data = json.dumps(
            {"status": "memory" if isinstance(exc, MemoryError) else "error", **_describe_exception(exc)}
        ).encode()
    view = memoryview(data)
    while view:
        view = view[os.write(result_fd, view) :]
    if _libc is not None:
        _libc.fflush(None)  # C++ stdout of torch, before _exit skips it


# --------------------------------------------------------------------------
# The worker: supervise one job


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"


def _read_capped(path: str, limit: int) -> str:
    try:
        with open(path, "rb") as fh:
            data = fh.read(limit + 1)
    except OSError:
        return ""
    text = data[:limit].decode(errors="replace")
    if len(data) > limit:
        text += "\n[... truncated]"
    return text


def _kill_group_and_reap(pid: int) -> int:
    """Kill the job's process group, then reap its leader; the wait status.

    Only while the leader is unreaped is its PID (= the group ID) sure not
    to belong to someone else.
    """
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)
    return os.waitpid(pid, 0)[1]


def _sweep() -> None:
    """Kill every process the job left behind, in its group or not."""
    me = os.getpid()
    # The worker is a child subreaper, so anything the job started (even
    # in a new session) is a descendant of the worker until it is reaped.
    for _ in range(100):
        leftovers = _descendants(_process_table(), me)
        for child in leftovers:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(child, signal.SIGKILL)
        while True:
            try:
                reaped, _ = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                break
            if reaped == 0:
                break
        if not leftovers:
            return
        time.sleep(0.01)


def _wipe(directory: str) -> None:
    """Empty a private scratch directory, leaving what is mounted into it alone."""
    try:
        device = os.lstat(directory).st_dev
        entries = list(os.scandir(directory))
    except OSError:
        return
    for entry in entries:
        try:
            info = entry.stat(follow_symlinks=False)
            if info.st_dev != device:
                continue  # a bind mount (a checkout or virtualenv under /tmp)
            if entry.is_dir(follow_symlinks=False):
                _wipe(entry.path)
                os.rmdir(entry.path)
            else:
                os.unlink(entry.path)
        except OSError:
            pass  # e.g. a directory bubblewrap made to hold a mount point


def _run_job(request: dict[str, Any], root: str, protocol_fd: int) -> dict[str, Any]:
    jobdir = tempfile.mkdtemp(prefix="job-", dir=root)
    out_path, err_path = jobdir + ".stdout", jobdir + ".stderr"
    read_fd, write_fd = os.pipe()
    baseline_kb = _private_kb()
    started = time.monotonic()
    pid = os.fork()
    if pid == 0:  # child
        code = 0
        try:
            os.close(read_fd)
            os.close(protocol_fd)
            _child_main(request, jobdir, write_fd, out_path, err_path)
        except BaseException:  # noqa: BLE001
            code = 70
            with contextlib.suppress(BaseException):
                traceback.print_exc()
        finally:
            os._exit(code)
    os.close(write_fd)
    try:
        outcome = _supervise(pid, read_fd, request, started, baseline_kb)
    finally:
        os.close(read_fd)
        _sweep()
    outcome["stdout"] = outcome.get("stdout", "") + _read_capped(out_path, request["output_limit"])
    outcome["stderr"] = outcome.get("stderr", "") + _read_capped(err_path, request["output_limit"])
    shutil.rmtree(jobdir, ignore_errors=True)
    for path in (out_path, err_path):
        with contextlib.suppress(OSError):
            os.unlink(path)
    for directory in _PRIVATE_SCRATCH:
        _wipe(directory)  # the next job starts with empty /tmp and /dev/shm
    return outcome


def _job_memory_kb(table: dict[int, tuple[int, int]], job_tree: list[int], baseline_kb: int, limit_kb: int) -> int:
    """What the job's processes together added to the worker's memory (kB).

    The cheap measure counts pages a fork shares with its parent once per
    process; only when that is over the limit are shared pages split (PSS),
    worker included, so that forks sharing torch are not counted N times.
    """
    cheap = sum(_private_kb(pid) for pid in job_tree) - baseline_kb
    if cheap <= limit_kb or len(job_tree) < 2:
        return cheap
    return sum(_proportional_kb(pid) for pid in (os.getpid(), *job_tree)) - baseline_kb


def _supervise(pid: int, read_fd: int, request: dict[str, Any], started: float, baseline_kb: int) -> dict:
    deadline = started + request["timeout"]
    # A watchdog over the job's whole process tree: the RSS guard for CUDA,
    # and the per-job memory limit wherever no cgroup holds one (RLIMIT_AS
    # binds each process alone: five forks could each take the limit).
    rss_limit_kb = None
    if request["memory_guard"] in ("data+rss", "rss") or not request.get("cgroup"):
        rss_limit_kb = request["memory_mb"] * 1024
    max_tasks = request.get("max_processes")
    watch_oom = bool(request.get("cgroup") and _CGROUP_EVENTS)
    oom_before = _oom_kills() if watch_oom else 0
    try:
        exit_fd = os.pidfd_open(pid)
    except (AttributeError, OSError):
        exit_fd = None  # old kernel: poll waitpid instead
    data = bytearray()
    eof = timed_out = over_memory = over_tasks = False
    status = None
    next_watch = 0.0
    try:
        while status is None:
            now = time.monotonic()
            if now >= deadline:
                timed_out = True
            elif (rss_limit_kb is not None or max_tasks or watch_oom) and now >= next_watch:
                next_watch = now + _WATCHDOG_PERIOD_S
                if watch_oom and _oom_kills() > oom_before:
                    over_memory = True  # the kernel killed one of the job's processes: the job is over
                    status = _kill_group_and_reap(pid)
                    break
                table = _process_table()
                tree = _descendants(table, os.getpid())
                if max_tasks:
                    # Where no RLIMIT_NPROC or cgroup stops forks, this at least ends the job.
                    over_tasks = sum(table[p][1] for p in tree if p in table) > max_tasks
                if rss_limit_kb is not None:
                    over_memory = _job_memory_kb(table, tree, baseline_kb, rss_limit_kb) > rss_limit_kb
            if timed_out or over_memory or over_tasks:
                status = _kill_group_and_reap(pid)
                break
            watched = ([] if eof else [read_fd]) + ([exit_fd] if exit_fd is not None else [])
            wait = deadline - now
            if exit_fd is None or rss_limit_kb is not None or max_tasks or watch_oom:
                wait = min(wait, 0.02 if exit_fd is None else _WATCHDOG_PERIOD_S)
            ready, _, _ = select.select(watched, [], [], max(wait, 0))
            if read_fd in ready:
                chunk = os.read(read_fd, 1 << 16)
                if not chunk:
                    eof = True
                elif len(data) < _RESULT_LIMIT:
                    data += chunk
            # WNOWAIT: look, but leave the zombie until its group is killed.
            if os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None:
                status = _kill_group_and_reap(pid)
    finally:
        if exit_fd is not None:
            os.close(exit_fd)
    # The child wrote everything before exiting; a grandchild may still hold
    # the pipe open, so read what is there without waiting for EOF.
    os.set_blocking(read_fd, False)
    with contextlib.suppress(BlockingIOError):
        while (chunk := os.read(read_fd, 1 << 16)) and len(data) < _RESULT_LIMIT:
            data += chunk

    if timed_out:
        return {
            "status": "timeout",
            "exc_type": "TimeoutError",
            "exc_message": f"the snippet did not finish within {request['timeout']:g} s (wall clock)",
        }
    if over_memory:
        return {
            "status": "memory",
            "exc_type": "MemoryError",
            "exc_message": f"the snippet's resident memory (all its processes) went over its {request['memory_mb']} MiB limit",
        }
    if over_tasks:
        return {
            "status": "killed",
            "exc_type": "ProcessLimit",
            "exc_message": f"the snippet started more than {max_tasks} processes and threads",
        }
    if data:
        try:
            return json.loads(bytes(data))
        except ValueError:
            pass  # died half-way through writing: treat as no result
    if os.WIFSIGNALED(status):
        number = os.WTERMSIG(status)
        if number == signal.SIGXCPU:
            return {
                "status": "timeout",
                "exc_type": "TimeoutError",
                "exc_message": f"the snippet used up its CPU time limit of {math.ceil(request['cpu_time'])} s",
            }
        message = f"the snippet process was killed by {_signal_name(number)}"
        if number == signal.SIGKILL:
            message += " (possibly by the kernel's out-of-memory killer)"
        return {"status": "killed", "exc_type": _signal_name(number), "exc_message": message}
    code = os.WEXITSTATUS(status) if os.WIFEXITED(status) else status
    return {
        "status": "killed",
        "exc_type": "SystemExit",
        "exc_message": f"the snippet process exited with status {code} without reporting a result",
    }


# --------------------------------------------------------------------------
# Main loop


def _preload(modules: list[str]) -> tuple[list[str], dict[str, str]]:
    loaded, failed = [], {}
    for name in modules:
        try:
            module = importlib.import_module(name)
        except BaseException as exc:  # noqa: BLE001 - torch missing is fine for plain snippets
            failed[name] = f"{type(exc).__name__}: {exc}"
            continue
        prepare = getattr(module, "prepare", None)
        if name == "torchlint.runtime.fakedevice" and callable(prepare):
            prepare()
        loaded.append(name)
    return loaded, failed


def _answer(fd: int, message: dict[str, Any]) -> None:
    view = memoryview(json.dumps(message).encode() + b"\n")
    while view:
        view = view[os.write(fd, view) :]


_PR_SET_NO_NEW_PRIVS = 38


def _drop_privileges(spec: str) -> None:
    """Become ``UID:GID[:GROUP,...]`` for good, before anything untrusted is imported or run.

    bubblewrap started as root leaves the worker uid 0 with only CAP_SETUID and
    CAP_SETGID; changing every uid away from 0 clears those too. A uid of its
    own (not 65534, shared by many daemons) also keeps RLIMIT_NPROC per worker.
    """
    uid, gid, *rest = spec.split(":")
    groups = [int(g) for g in rest[0].split(",") if g] if rest else []
    os.setgroups(groups)
    os.setresgid(int(gid), int(gid), int(gid))
    os.setresuid(int(uid), int(uid), int(uid))
    _prctl(_PR_SET_NO_NEW_PRIVS, 1)
    if _libc is not None:
        # --cap-add also put the two in the inheritable set: clear it (capset, version 3).
        header = (ctypes.c_uint32 * 2)(0x20080522, 0)
        data = (ctypes.c_uint32 * 6)()
        _libc.capset(header, data)
    with open("/proc/self/status") as fh:
        status = dict(line.split(":", 1) for line in fh if ":" in line)
    caps = [int(status.get(name, "0").strip(), 16) for name in ("CapInh", "CapPrm", "CapEff", "CapAmb")]
    if 0 in os.getresuid() or any(caps):
        raise SystemExit(f"torchlint worker: could not drop privileges (uids {os.getresuid()}, caps {caps})")


def _close_other_fds(keep: set[int]) -> None:
    """Close every inherited descriptor but stdio and ``keep`` (bubblewrap passes all of its own on)."""
    try:
        fds = [int(name) for name in os.listdir("/proc/self/fd")]
    except OSError:
        return
    for fd in fds:
        if fd > 2 and fd not in keep:
            with contextlib.suppress(OSError):
                os.close(fd)


def _cgroup_self_test() -> str | None:
    """Can a fork join the job cgroup? None if so, else why not (the watchdog stands in)."""
    pid = os.fork()
    if pid == 0:
        try:
            _join_cgroups()
            os._exit(0)
        except BaseException as exc:  # noqa: BLE001
            os._exit(10 + (getattr(exc, "errno", 0) or 0) % 100)
    status = os.waitpid(pid, 0)[1]
    if os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0:
        return None
    code = os.WEXITSTATUS(status) - 10 if os.WIFEXITED(status) else -1
    return f"a job could not join its cgroup ({os.strerror(code) if code > 0 else status})"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m torchlint.runtime.worker")
    parser.add_argument("--root", required=True, help="writable directory for the jobs")
    parser.add_argument("--preload", default="", help="comma-separated modules to import up front")
    parser.add_argument("--drop-to", default="", help="UID:GID[:GROUP,...] to switch to first")
    parser.add_argument("--cgroup-fds", default="",
                        help="open cgroup.procs descriptors a job writes itself into, then its memory events file")  # fmt: skip
    parser.add_argument("--private-scratch", default="", help="comma-separated directories to empty after each job")
    parser.add_argument("--probe", action="store_true", help="set up, say so and exit (the sandbox's start-up check)")
    args = parser.parse_args(argv)

    cgroup_fds = [int(fd) for fd in args.cgroup_fds.split(",") if fd]
    if cgroup_fds:
        _CGROUP_FDS[:], _CGROUP_EVENTS[:] = cgroup_fds[:-1], cgroup_fds[-1:]
    _PRIVATE_SCRATCH[:] = [d for d in args.private_scratch.split(",") if d]
    _close_other_fds({*_CGROUP_FDS, *_CGROUP_EVENTS})
    if args.drop_to:
        _drop_privileges(args.drop_to)
    # Nothing started from here on gains privileges (setuid files, file capabilities).
    _prctl(_PR_SET_NO_NEW_PRIVS, 1)
    if args.probe:
        print(json.dumps({"uid": os.getuid(), "root_writable": os.access(args.root, os.W_OK)}), flush=True)
        return 0
    # Keep the protocol channel private; stray prints (from preloaded
    # modules, say) go to stderr instead of corrupting it.
    protocol_fd = os.dup(1)
    os.dup2(2, 1)
    _prctl(_PR_SET_CHILD_SUBREAPER, 1)
    # Jobs run as the same user: keep them out of the worker's /proc/PID/fd
    # (its protocol pipes) and from ptrace-ing it.
    _prctl(_PR_SET_DUMPABLE, 0)
    cgroup_problem = _cgroup_self_test() if _CGROUP_FDS else "no cgroup"
    loaded, failed = _preload([m for m in args.preload.split(",") if m])
    torch = sys.modules.get("torch")
    _answer(
        protocol_fd,
        {
            "ready": True,
            "pid": os.getpid(),
            "uid": os.getuid(),
            "cgroup": cgroup_problem is None,
            "cgroup_problem": cgroup_problem,
            "preloaded": loaded,
            "failed": failed,
            "torch": getattr(torch, "__version__", None),
            # Forked children cannot use a CUDA context made before the fork.
            "cuda_initialized": bool(torch and torch.cuda.is_initialized()),
            "python": sys.version.split()[0],
        },
    )
    for line in sys.stdin.buffer:
        if not line.strip():
            continue
        request: Any = {}
        try:
            request = json.loads(line)
            response = _run_job(request, args.root, protocol_fd)
        except Exception as exc:  # noqa: BLE001 - answer instead of dying
            request = request if isinstance(request, dict) else {}
            response = {"status": "error", **_describe_exception(exc)}
        response["id"] = request.get("id")
        try:
            _answer(protocol_fd, response)
        except OSError as exc:
            if exc.errno == errno.EPIPE:
                return 0  # the parent is gone
            raise
    return 0


if __name__ == "__main__":
    status = main()
    # Interpreter shutdown with torch (and dynamo) loaded takes seconds and
    # there is nothing left to flush.
    os._exit(status)
