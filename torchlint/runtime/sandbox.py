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

import contextlib
import dataclasses
import functools
import glob
import json
import os
import platform
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

from torchlint.runtime import seccomp

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
    # What the snippet tried beyond its scratch space, seen by an audit hook:
    # {"kind": "network"|"write", "target": ..., "count": n, "contained": bool}.
    # ``contained`` says whether this isolation stops it (see the Safety model).
    side_effects: list[dict[str, Any]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    def side_effect_summary(self) -> str:
        """One sentence for a confirmation's evidence; empty when the snippet tried nothing."""
        if not self.side_effects:
            return ""
        parts = []
        for effect in self.side_effects[:5]:
            what = "write " + effect["target"] if effect["kind"] == "write" else effect["target"]
            parts.append(f"{what} ({'denied' if effect.get('contained') else 'NOT contained by this sandbox'})")
        more = len(self.side_effects) - 5
        tail = f" and {more} more" if more > 0 else ""
        return f"The program also tried to {'; '.join(parts)}{tail}."

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


# Host paths shown to the sandbox read-only as they are (or, for a symlink
# such as merged-/usr's /lib -> usr/lib, as the same symlink).
_SYSTEM_PATHS = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32")
# The part of /etc a Python process and its shared libraries read; passwd
# and group are written for the sandbox (see _write_etc).
_ETC_PATHS = ("/etc/ld.so.cache", "/etc/ld.so.conf", "/etc/ld.so.conf.d", "/etc/alternatives", "/etc/localtime")
# torch reads the CPU topology; the CUDA driver needs much more of /sys.
_SYS_PATHS_CPU = ("/sys/devices/system/cpu", "/sys/devices/system/node")
# Inside bubblewrap: where the jobs' directories live (a size-limited tmpfs).
SANDBOX_ROOT = "/tmp"
DEFAULT_DISK_MB = 256
# Processes plus threads per job (torch starts one thread per core).
DEFAULT_MAX_PROCESSES = max(128, 4 * (os.cpu_count() or 1))


def _under(path: str, parents) -> bool:
    return any(path == p or path.startswith(p.rstrip("/") + "/") for p in parents)


def _python_paths() -> list[str]:
    """What the sandboxed Python needs to see, read-only: its installation, its
    site-packages and the ``torchlint`` package. Never the checkout or the
    user's files (a socket or a secret there would be reachable)."""
    user_site = site.getusersitepackages() if site.ENABLE_USER_SITE else None
    candidates = [
        os.path.join(_PACKAGE_PARENT, "torchlint"),
        sys.prefix,
        sys.exec_prefix,
        sys.base_prefix,
        sys.base_exec_prefix,
        os.path.dirname(os.path.abspath(sys.executable)),
        os.path.dirname(os.path.realpath(sys.executable)),
        *site.getsitepackages(),
        *([user_site] if user_site else []),
        *(p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p),
    ]
    found: set[str] = set()
    for path in candidates:
        for form in (os.path.abspath(path), os.path.realpath(path)):
            if os.path.dirname(form) == form or not os.path.exists(form):
                continue  # never "/"
            if _under(form, _SYSTEM_PATHS):
                continue  # bound as a whole already
            found.add(form)
    kept: list[str] = []
    for path in sorted(found, key=len):
        if not _under(path, kept):
            kept.append(path)
    return kept


def _python_paths_under_tmp() -> list[str]:
    """The Python paths that lie under /tmp: bound after (on top of) the fresh tmpfs."""
    return [p for p in _python_paths() if _under(p, ["/tmp"])]


@functools.lru_cache(maxsize=None)
def bwrap_features(bwrap: str) -> frozenset[str]:
    """The options this bubblewrap has (``--size`` came in 0.8.0, ``--disable-userns`` too)."""
    try:
        text = subprocess.run([bwrap, "--help"], capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.SubprocessError):
        return frozenset()
    return frozenset(re.findall(r"^\s+(--[a-z0-9-]+)", text, re.M))


def _sandbox_uid() -> int:
    """A uid no one else uses, for a worker started by root (see worker._drop_privileges)."""
    return 1_000_000_000 + int.from_bytes(os.urandom(4), "little") % 1_000_000_000


def _write_etc(directory: str, uid: int, gid: int) -> dict[str, str]:
    """passwd and group naming only root and the sandbox's user (the host's stay hidden)."""
    files = {
        "passwd": f"root:x:0:0:root:/root:/usr/sbin/nologin\nsandbox:x:{uid}:{gid}:torchlint:{SANDBOX_ROOT}:/usr/sbin/nologin\n",
        "group": f"root:x:0:\nsandbox:x:{gid}:\n",
    }
    paths = {}
    for name, text in files.items():
        path = os.path.join(directory, name)
        with open(path, "w") as fh:
            fh.write(text)
        os.chmod(path, 0o644)
        paths[f"/etc/{name}"] = path
    return paths


@dataclass(frozen=True)
class _Layout:
    """Per-worker inputs of the bubblewrap command line."""

    etc_files: dict[str, str] = field(default_factory=dict)  # sandbox path -> host file
    seccomp_fd: int | None = None
    uid: int | None = None  # switch to it inside (bwrap run as root)
    disk_mb: int = DEFAULT_DISK_MB


def _bwrap_args(bwrap: str, root: str, device: str, layout: _Layout | None = None) -> list[str]:
    layout = layout or _Layout()
    features = bwrap_features(bwrap)
    args = [bwrap, "--unshare-net", "--unshare-pid", "--unshare-ipc", "--unshare-uts"]
    if os.geteuid() != 0:
        # Unprivileged bubblewrap works in a user namespace; let nothing inside make another.
        args += ["--unshare-user"]
        if "--disable-userns" in features:
            args += ["--disable-userns"]
    # A root file system of our own (a tmpfs made read-only at the end): only
    # what is bound below exists.
    for path in _SYSTEM_PATHS:
        if os.path.islink(path):
            args += ["--symlink", os.readlink(path), path]
        elif os.path.isdir(path):
            args += ["--ro-bind", path, path]
    args += ["--dir", "/etc"]
    for path in _ETC_PATHS:
        args += ["--ro-bind-try", path, path]
    for target, source in layout.etc_files.items():
        args += ["--ro-bind", source, target]
    size = ["--size", str(layout.disk_mb * 2**20)] if "--size" in features else []
    args += [
        "--proc", "/proc",
        "--dev", "/dev",
        # Size-limited scratch, writable by the unprivileged uid; the job
        # directories live in /tmp and share its limit.
        "--perms", "1777", *size, "--tmpfs", "/dev/shm",
        "--perms", "1777", *size, "--tmpfs", "/tmp",
        "--perms", "0755", "--dir", "/home", "--perms", "0755", "--dir", "/root",
        "--perms", "0755", "--dir", "/run", "--perms", "0755", "--dir", "/var", "--perms", "0755", "--dir", "/var/tmp",
    ]  # fmt: skip
    made = {"/", "/etc", "/proc", "/dev", "/dev/shm", "/tmp", "/home", "/root", "/run", "/var/tmp"}

    def parents(path: str) -> list[str]:
        # bubblewrap makes missing parents of a mount point mode 0700: the
        # unprivileged uid could not reach what is bound below them.
        out = []
        for parent in reversed(Path(path).parents):
            if str(parent) not in made:
                made.add(str(parent))
                out += ["--perms", "0755", "--dir", str(parent)]
        return out

    # After --tmpfs /tmp, so that a checkout or virtualenv under /tmp stays visible.
    for path in _python_paths():
        args += [*parents(path), "--ro-bind", path, path]
    if device == "cuda":
        # The driver's libraries are often found only through LD_LIBRARY_PATH
        # (passed on for CUDA, see _sandbox_env): show those directories too.
        for path in os.environ.get("LD_LIBRARY_PATH", "").split(os.pathsep):
            path = os.path.abspath(path) if path else ""
            if path and os.path.isdir(path) and path not in made and not _under(path, [*_SYSTEM_PATHS, *_python_paths()]):
                args += [*parents(path), "--ro-bind", path, path]
                made.add(path)
        args += ["--ro-bind", "/sys", "/sys"]
        # --dev gives a minimal /dev without the GPU nodes; CUDA needs
        # nvidiactl, nvidia-uvm(-tools), nvidiaN and nvidia-caps/*.
        for path in _nvidia_device_paths():
            args += [*parents(path), "--dev-bind", path, path]  # /dev/nvidia-caps/* too
    else:
        for path in _SYS_PATHS_CPU:
            if os.path.isdir(path):
                args += [*parents(path), "--ro-bind", path, path]
    if root != SANDBOX_ROOT:
        # A caller's own directory (tests, the probe) made writable as it is.
        args += ["--bind", root, root]
    args += [
        "--remount-ro", "/",
        "--chdir", root,
        "--die-with-parent",
        "--new-session",
    ]  # fmt: skip
    if os.geteuid() == 0:
        # bwrap run by root keeps every capability (CAP_SYS_ADMIN could
        # remount / read-write) unless told otherwise; the worker needs
        # CAP_SETUID/CAP_SETGID once, to become an unprivileged uid.
        args += ["--cap-drop", "ALL"]
        if layout.uid is not None:
            args += ["--cap-add", "CAP_SETUID", "--cap-add", "CAP_SETGID"]
    if layout.seccomp_fd is not None:
        args += ["--seccomp", str(layout.seccomp_fd)]
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


class _BwrapSetup:
    """What one bubblewrap sandbox needs on the host: /etc files, the seccomp program, a uid.

    ``pass_fds`` go to Popen; :meth:`close` (after the sandbox started, or
    failed to) releases them and the directory.
    """

    def __init__(self, disk_mb: int = DEFAULT_DISK_MB, device: str = "cpu") -> None:
        self.directory = tempfile.mkdtemp(prefix="torchlint-sandbox-")
        os.chmod(self.directory, 0o755)  # bwrap binds the files below; they hold nothing secret
        self.uid = _sandbox_uid() if os.geteuid() == 0 else None
        ids = (self.uid, self.uid) if self.uid is not None else (os.getuid(), os.getgid())
        self.warnings: list[str] = []
        self._seccomp_file = None
        program = seccomp.build()
        if program is None:
            self.warnings.append(f"no seccomp filter: architecture {platform.machine()!r} is not known to torchlint")
        else:
            self._seccomp_file = tempfile.TemporaryFile()
            self._seccomp_file.write(program)
            self._seccomp_file.flush()
            self._seccomp_file.seek(0)
        self.layout = _Layout(
            etc_files=_write_etc(self.directory, *ids),
            seccomp_fd=self._seccomp_file.fileno() if self._seccomp_file else None,
            uid=self.uid,
            disk_mb=disk_mb,
        )
        groups = sorted({os.stat(p).st_gid for p in _nvidia_device_paths()}) if device == "cuda" else []
        # The GPU's device nodes may be group-restricted (e.g. to "video"): keep those groups.
        self.drop_to = f"{self.uid}:{self.uid}:{','.join(map(str, groups))}" if self.uid is not None else ""

    @property
    def pass_fds(self) -> tuple[int, ...]:
        return (self.layout.seccomp_fd,) if self.layout.seccomp_fd is not None else ()

    def rewind(self) -> None:
        if self._seccomp_file is not None:
            self._seccomp_file.seek(0)

    def close(self) -> None:
        if self._seccomp_file is not None:
            self._seccomp_file.close()
            self._seccomp_file = None
        shutil.rmtree(self.directory, ignore_errors=True)


def _worker_argv(root: str, preload: tuple[str, ...] = (), drop_to: str = "", cgroup_fds: tuple[int, ...] = (),
                 private_scratch: tuple[str, ...] = (), probe: bool = False) -> list[str]:  # fmt: skip
    argv = [sys.executable, "-s", "-B", "-m", "torchlint.runtime.worker", "--root", root]
    if preload:
        argv += ["--preload", ",".join(preload)]
    if drop_to:
        argv += ["--drop-to", drop_to]
    if cgroup_fds:
        argv += ["--cgroup-fds", ",".join(map(str, cgroup_fds))]
    if private_scratch:
        argv += ["--private-scratch", ",".join(private_scratch)]
    if probe:
        argv.append("--probe")
    return argv


@functools.lru_cache(maxsize=None)
def _probe_bwrap(device: str) -> str | None:
    bwrap = shutil.which("bwrap")
    if bwrap is None:
        return "bubblewrap (bwrap) is not installed"
    setup = _BwrapSetup(device=device)
    try:
        cmd = _bwrap_args(bwrap, SANDBOX_ROOT, device, setup.layout)
        cmd += ["--", *_worker_argv(SANDBOX_ROOT, drop_to=setup.drop_to, probe=True)]
        try:
            proc = subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True, timeout=60, pass_fds=setup.pass_fds,
                                  env=_sandbox_env(SANDBOX_ROOT, device), cwd=setup.directory)  # fmt: skip
        except (OSError, subprocess.TimeoutExpired) as exc:
            return f"bwrap could not run: {exc}"
        if proc.returncode != 0:
            detail = proc.stderr.decode(errors="replace").strip().splitlines()
            return f"bwrap failed here: {detail[-1] if detail else f'exit status {proc.returncode}'}"
        try:
            report = json.loads(proc.stdout)
        except ValueError:
            return f"bwrap failed here: unexpected output {proc.stdout[:200]!r}"
        if setup.uid is not None and report.get("uid") != setup.uid:
            return f"bwrap failed here: the worker runs as uid {report.get('uid')}, not an unprivileged one"
        if not report.get("root_writable"):
            return "bwrap failed here: the job directory is not writable inside the sandbox"
        return None
    finally:
        setup.close()


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


def build_command(isolation: str, root: str, device: str, argv: list[str], layout: _Layout | None = None) -> list[str]:
    """The command line that runs ``argv`` under ``isolation`` with ``root`` as its writable directory.

    Under bubblewrap ``root`` is :data:`SANDBOX_ROOT` (the sandbox's own
    size-limited /tmp); any other directory is bound read-write as it is.
    """
    if isolation == "bwrap":
        return _bwrap_args(shutil.which("bwrap") or "bwrap", root, device, layout) + ["--", *argv]
    if isolation == "unshare":
        return _unshare_args(shutil.which("unshare") or "unshare") + ["--", *argv]
    if isolation == "none":
        return list(argv)
    raise ValueError(f"unknown isolation {isolation!r}")


# --------------------------------------------------------------------------
# Per-job cgroup


def _cgroup_mounts() -> dict[str, tuple[str, str]]:
    """controller ("memory", "pids", or "" for the v2 hierarchy) -> (mount point, mount root)."""
    found: dict[str, tuple[str, str]] = {}
    try:
        lines = Path("/proc/self/mountinfo").read_text().splitlines()
    except OSError:
        return found
    for line in lines:
        left, _, right = line.partition(" - ")
        fields, tail = left.split(), right.split()
        if len(fields) < 5 or len(tail) < 3:
            continue
        mount_root, point, fstype = fields[3], fields[4].replace("\\040", " "), tail[0]
        if fstype == "cgroup2":
            found.setdefault("", (point, mount_root))
        elif fstype == "cgroup":
            for option in tail[2].split(","):
                if option in ("memory", "pids"):
                    found.setdefault(option, (point, mount_root))
    return found


def _own_cgroups() -> dict[str, str]:
    """controller ("" for v2) -> this process's cgroup path."""
    own: dict[str, str] = {}
    try:
        lines = Path("/proc/self/cgroup").read_text().splitlines()
    except OSError:
        return own
    for line in lines:
        _, controllers, path = line.split(":", 2)
        for name in controllers.split(",") if controllers else [""]:
            own[name] = path
    return own


class JobCgroup:
    """A cgroup every job of one worker joins: memory and task limits for the whole process tree.

    cgroup v2 where this process may create a child cgroup with the memory and
    pids controllers (a delegated subtree), else the v1 ``memory`` and
    ``pids`` hierarchies where they are writable (root on a v1/hybrid host).
    The limits are set before each job; the job writes itself into the
    cgroup through descriptors opened here (see ``worker._join_cgroups``).
    """

    _counter = 0

    def __init__(self, dirs: dict[str, str], version: int) -> None:
        self.dirs = dirs  # "memory"/"pids" -> directory (the same one under v2)
        self.version = version
        self._fds: list[int] = []

    @classmethod
    def create(cls) -> tuple[JobCgroup | None, str]:
        """(the cgroup, "") or (None, why there is none)."""
        mounts, own = _cgroup_mounts(), _own_cgroups()
        JobCgroup._counter += 1
        name = f"torchlint-{os.getpid()}-{JobCgroup._counter}"
        problems = []
        if "" in mounts and "" in own:
            point, mount_root = mounts[""]
            relative = os.path.relpath(own[""], mount_root)
            mine = os.path.normpath(os.path.join(point, "" if relative == "." else relative))
            # Our own cgroup can have children with controllers only if it is
            # the root; otherwise a delegated parent can hold a sibling.
            for parent in dict.fromkeys([mine, os.path.dirname(mine)]):
                if not _under(parent, [point]):
                    continue
                try:
                    enabled = Path(parent, "cgroup.subtree_control").read_text().split()
                    if not {"memory", "pids"} <= set(enabled):
                        raise OSError(f"memory and pids are not enabled for the children of {parent}")
                    path = os.path.join(parent, name)
                    os.mkdir(path)
                    return cls({"memory": path, "pids": path}, 2), ""
                except OSError as exc:
                    problems.append(f"cgroup v2: {exc.strerror or exc}")
        dirs = {}
        for controller in ("memory", "pids"):
            if controller not in mounts or controller not in own:
                continue
            point, mount_root = mounts[controller]
            relative = os.path.relpath(own[controller], mount_root)
            path = os.path.normpath(os.path.join(point, "" if relative == "." else relative, name))
            try:
                os.mkdir(path)
                dirs[controller] = path
            except OSError as exc:
                problems.append(f"cgroup v1 {controller}: {exc.strerror or exc}")
        if "memory" in dirs:
            return cls(dirs, 1), ""
        for path in dirs.values():
            with contextlib.suppress(OSError):
                os.rmdir(path)
        return None, "; ".join(problems) or "no cgroup hierarchy is mounted"

    def procs_fds(self) -> tuple[int, ...]:
        """cgroup.procs of each directory (to join), then the memory events file (to watch)."""
        if not self._fds:
            for path in dict.fromkeys(self.dirs.values()):
                self._fds.append(os.open(os.path.join(path, "cgroup.procs"), os.O_WRONLY | os.O_CLOEXEC))
            self._fds.append(os.open(self._events_path(), os.O_RDONLY | os.O_CLOEXEC))
        return tuple(self._fds)

    def _events_path(self) -> str:
        return os.path.join(self.dirs["memory"], "memory.events" if self.version == 2 else "memory.oom_control")

    def close_fds(self) -> None:
        for fd in self._fds:
            with contextlib.suppress(OSError):
                os.close(fd)
        self._fds = []

    @staticmethod
    def _write(path: str, value: str) -> bool:
        try:
            Path(path).write_text(value)
            return True
        except OSError:
            return False

    def set_limits(self, memory_bytes: int, tasks: int) -> bool:
        """Limits for the next job; False if the memory limit could not be set (the watchdog then stands in)."""
        memory = self.dirs["memory"]
        if self.version == 2:
            ok = self._write(f"{memory}/memory.max", str(memory_bytes))
            self._write(f"{memory}/memory.swap.max", "0")
        else:
            # memory.limit_in_bytes may not exceed memsw's; set them in the order that keeps that true.
            mem, memsw = f"{memory}/memory.limit_in_bytes", f"{memory}/memory.memsw.limit_in_bytes"
            if os.path.exists(memsw):
                ok = (self._write(mem, str(memory_bytes)) and self._write(memsw, str(memory_bytes))) or (
                    self._write(memsw, str(memory_bytes)) and self._write(mem, str(memory_bytes))
                )
            else:
                ok = self._write(mem, str(memory_bytes))
        if "pids" in self.dirs:
            self._write(f"{self.dirs['pids']}/pids.max", str(tasks))
        return ok

    def oom_kills(self) -> int:
        try:
            for line in Path(self._events_path()).read_text().splitlines():
                key, _, value = line.partition(" ")
                if key == "oom_kill":
                    return int(value)
        except (OSError, ValueError):
            pass
        return 0

    def remove(self) -> None:
        self.close_fds()
        for path in dict.fromkeys(self.dirs.values()):
            for _ in range(50):  # the last job's processes may still be exiting
                try:
                    os.rmdir(path)
                    break
                except FileNotFoundError:
                    break
                except OSError:
                    time.sleep(0.02)


# --------------------------------------------------------------------------
# The worker handle


def _kernel_at_least(major: int, minor: int) -> bool:
    found = re.match(r"(\d+)\.(\d+)", platform.release())
    return bool(found) and (int(found[1]), int(found[2])) >= (major, minor)


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


def _shutdown(proc: subprocess.Popen, root: str, log, setup: _BwrapSetup | None = None,
              cgroup: JobCgroup | None = None) -> None:  # fmt: skip
    """Stop a worker and remove its directory and cgroup (also run by the GC finalizer)."""
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
    if setup is not None:
        setup.close()
    if cgroup is not None:
        cgroup.remove()


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

    Per job (the snippet and every process it starts, together): ``memory_mb``
    (a cgroup where one can be made, else a watchdog over the process tree),
    ``max_processes`` (processes plus threads) and ``disk_mb`` for each of
    /tmp (which holds the job's directory) and /dev/shm under bubblewrap.
    ``use_cgroup=False`` skips the cgroup (tests of the fallback).
    """

    def __init__(
        self,
        *,
        device: str = "cpu",
        isolation: str = "auto",
        preload: tuple[str, ...] | list[str] | None = None,
        startup_timeout: float = DEFAULT_STARTUP_TIMEOUT,
        disk_mb: int = DEFAULT_DISK_MB,
        max_processes: int = DEFAULT_MAX_PROCESSES,
        use_cgroup: bool = True,
    ) -> None:
        self._info = detect_isolation(isolation, device)
        self.device = device
        self.disk_mb = int(disk_mb)
        self.max_processes = int(max_processes)
        self.use_cgroup = use_cgroup
        self.cgroup: JobCgroup | None = None
        self.cgroup_problem: str | None = None
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
        self._inner_root = SANDBOX_ROOT

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
            self.cgroup = None
            self._buffer = b""

    def _spawn(self) -> None:
        self.close()
        root = tempfile.mkdtemp(prefix="torchlint-sandbox-")
        os.chmod(root, 0o700)
        setup = cgroup = None
        self._start_warnings = []
        if self.use_cgroup:
            cgroup, self.cgroup_problem = JobCgroup.create()
        else:
            self.cgroup_problem = "not asked for"
        fds: tuple[int, ...] = cgroup.procs_fds() if cgroup else ()
        if self.isolation == "bwrap":
            setup = _BwrapSetup(self.disk_mb, self.device)
            self._start_warnings += setup.warnings
            argv = _worker_argv(SANDBOX_ROOT, self.preload, setup.drop_to, fds, ("/tmp", "/dev/shm"))
            cmd = build_command("bwrap", SANDBOX_ROOT, self.device, argv, setup.layout)
            env, inner_root = _sandbox_env(SANDBOX_ROOT, self.device), SANDBOX_ROOT
        else:
            argv = _worker_argv(root, self.preload, cgroup_fds=fds)
            cmd = build_command(self.isolation, root, self.device, argv)
            env, inner_root = _sandbox_env(root, self.device), root
        self._inner_root = inner_root
        # Unlinked file: the worker's own stderr, read back only to explain a
        # failed start; never visible inside the sandbox's directory.
        log = tempfile.TemporaryFile()
        try:
            proc = subprocess.Popen(
                cmd,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=log,
                env=env,
                cwd=root,
                start_new_session=True,  # one killpg stops all of it
                bufsize=0,
                pass_fds=(*fds, *(setup.pass_fds if setup else ())),
            )
        except OSError as exc:
            log.close()
            shutil.rmtree(root, ignore_errors=True)
            if setup:
                setup.close()
            if cgroup:
                cgroup.remove()
            raise SandboxError(f"could not start the sandbox worker: {exc}") from exc
        if cgroup:
            cgroup.close_fds()  # the worker has its copies
        self._proc, self._root, self._buffer = proc, root, b""
        self._log = log
        self.cgroup = cgroup
        self._finalizer = weakref.finalize(self, _shutdown, proc, root, log, setup, cgroup)
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
        if cgroup is not None and not hello.get("cgroup"):
            self.cgroup_problem = hello.get("cgroup_problem") or "the worker could not use it"
            cgroup.remove()
            self.cgroup = None
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
        GPU memory itself is not limited. ``memory_mb`` holds for all the
        snippet's processes together (see the class docstring).
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
            cgroup = self.cgroup
            if cgroup is not None and not cgroup.set_limits(int(memory_mb) * 2**20, self.max_processes):
                cgroup = None  # could not set it this time: the watchdog stands in
            oom_before = cgroup.oom_kills() if cgroup is not None else 0
            request = {
                "id": self._jobs,
                "code": code,
                "timeout": float(timeout),
                "cpu_time": float(cpu_time) if cpu_time else float(timeout) * (os.cpu_count() or 1) + 1,
                "memory_mb": int(memory_mb),
                "memory_guard": memory_guard,
                "simulate_cuda": bool(simulate_cuda),
                "output_limit": int(output_limit),
                "max_processes": self.max_processes,
                "cgroup": cgroup is not None,
                # RLIMIT_NPROC counts a uid's tasks; only a uid of the sandbox's
                # own (root-started bwrap) or a user namespace (kernel >= 5.14
                # counts per namespace) makes that the job's count.
                "nproc_rlimit": self.isolation == "bwrap" and (os.geteuid() == 0 or _kernel_at_least(5, 14)),
                # Writes here are the job's own; anywhere else is reported.
                "scratch": [self._inner_root, "/tmp", "/dev/shm"] if self.isolation == "bwrap" else [self._inner_root],
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
            killed = cgroup.oom_kills() - oom_before if cgroup is not None else 0
            if killed > 0:
                # Even when the snippet itself lived on (only a fork of it was
                # killed), the job went over its limit: its result is not the
                # program's own.
                response.update(
                    status="memory",
                    exc_type="MemoryError",
                    exc_message=f"the snippet's processes together went over its {int(memory_mb)} MiB memory limit "
                    f"(the kernel's out-of-memory killer stopped {killed} of them)",
                )
            return self._result(response, start, notes)

    def _result(self, response: dict[str, Any], start: float, notes: list[str]) -> SandboxResult:
        fields = {f.name for f in dataclasses.fields(SandboxResult)}
        data = {k: v for k, v in response.items() if k in fields}
        data["warnings"] = [*self.warnings, *response.get("warnings", []), *notes]
        data["isolation"] = self._info.kind
        effects = [e for e in data.get("side_effects") or [] if isinstance(e, dict) and "target" in e]
        for effect in effects:
            # bubblewrap: no network, nothing writable but the scratch space;
            # unshare: no network only; none: nothing.
            kind = self._info.kind
            effect["contained"] = kind == "bwrap" or (kind == "unshare" and effect.get("kind") == "network")
        data["side_effects"] = effects
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
