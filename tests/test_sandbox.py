"""The sandbox: real subprocesses, real limits, real torch where it matters."""

from __future__ import annotations

import os
import socket
import statistics
import textwrap
import threading
import time
import uuid
from pathlib import Path

import pytest

from torchlint.runtime import sandbox
from torchlint.runtime.sandbox import SandboxError, SandboxWorker, build_command, detect_isolation, run_snippet

ROOT = Path(__file__).resolve().parent.parent
ENV_ALLOWED = {"PATH", "LANG", "LC_ALL", "HOME", "TMPDIR", "PYTHONPATH", "PYTHONDONTWRITEBYTECODE"}


def _code(text: str) -> str:
    return textwrap.dedent(text).strip() + "\n"


def _processes_with(marker: str) -> list[int]:
    found = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            cmdline = Path(f"/proc/{name}/cmdline").read_bytes()
        except OSError:
            continue
        if marker.encode() in cmdline:
            found.append(int(name))
    return found


@pytest.fixture(scope="module")
def worker():
    pytest.importorskip("torch")
    with SandboxWorker() as w:
        yield w


@pytest.fixture(scope="module")
def light_worker():
    """No torch preloaded: for tests about the sandbox itself (starts in ~0.1 s)."""
    with SandboxWorker(preload=()) as w:
        yield w


# -- isolation --------------------------------------------------------------


def test_isolation_is_reported(light_worker):
    result = light_worker.run("pass")
    assert result.status == "ok"
    assert result.isolation == light_worker.isolation in sandbox.ISOLATIONS
    if result.isolation == "none":
        assert any("no network isolation available" in w for w in result.warnings)
    if result.isolation == "bwrap":
        assert result.warnings == []


# The probe only ever targets listeners this test opens itself on loopback (and
# unix sockets it creates): never any other address, isolated or not.
NETWORK_PROBE = _code(
    """
    import socket
    with open("/proc/net/dev") as fh:
        interfaces = sorted(line.split(":")[0].strip() for line in fh if ":" in line)
    errors = {}
    for name, family, address in TARGETS:
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.settimeout(3)
        try:
            sock.connect(tuple(address) if isinstance(address, list) else address)
            errors[name] = None
        except OSError as exc:
            errors[name] = exc.errno or str(exc)
        finally:
            sock.close()
    torchlint_report(interfaces=interfaces, errors=errors)
    """
)


class LoopbackListeners:
    """Listeners on 127.0.0.1, ::1 (where the host has it), a unix socket file and
    an abstract unix socket: what a snippet must not reach from the sandbox."""

    def __init__(self, directory: Path):
        self.sockets: dict[str, socket.socket] = {}
        self.targets: list[tuple[str, int, object]] = []
        self._listen("tcp4", socket.AF_INET, ("127.0.0.1", 0))
        if socket.has_ipv6:
            try:
                self._listen("tcp6", socket.AF_INET6, ("::1", 0))
            except OSError:
                pass  # no ::1 on this host
        path = directory / "probe.sock"
        self._listen("unix-file", socket.AF_UNIX, str(path))
        self._listen("unix-abstract", socket.AF_UNIX, f"\0torchlint-probe-{uuid.uuid4().hex}")

    def _listen(self, name: str, family: int, address) -> None:
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.bind(address)
        sock.listen(8)
        sock.setblocking(False)
        self.sockets[name] = sock
        bound = sock.getsockname()
        if family == socket.AF_UNIX:
            bound = address  # getsockname() of an abstract socket drops the leading NUL
        else:
            bound = list(bound[:2])
        self.targets.append((name, int(family), bound))

    def code(self) -> str:
        return f"TARGETS = {self.targets!r}\n" + NETWORK_PROBE

    def accepted(self) -> list[str]:
        """Names of the listeners that a connection reached."""
        reached = []
        for name, sock in self.sockets.items():
            try:
                conn, _ = sock.accept()
            except (BlockingIOError, OSError):
                continue
            conn.close()
            reached.append(name)
        return reached

    def close(self) -> None:
        for sock in self.sockets.values():
            sock.close()


@pytest.fixture
def listeners(tmp_path):
    opened = LoopbackListeners(tmp_path)
    yield opened
    opened.close()


def test_the_probe_reaches_its_listeners_without_a_sandbox(listeners):
    """The probe itself works: run unsandboxed (in this process), it reaches every listener.
    Without this, the isolation tests below could pass because the probe is broken."""
    namespace = {"torchlint_report": lambda **kw: namespace.setdefault("report", kw)}
    exec(listeners.code(), namespace)
    assert set(namespace["report"]["errors"].values()) == {None}
    assert sorted(listeners.accepted()) == sorted(name for name, _, _ in listeners.targets)


def test_network_is_isolated(light_worker, listeners):
    result = light_worker.run(listeners.code(), timeout=15)
    assert result.status == "ok", result
    if result.isolation == "none":
        assert any("no network isolation" in w for w in result.warnings)
        return
    assert result.payload["interfaces"] == ["lo"]
    errors = result.payload["errors"]
    # Loopback inside the sandbox is its own: the host's TCP listeners and the
    # abstract unix socket (scoped to the network namespace) are out of reach.
    for name in ("tcp4", "tcp6", "unix-abstract"):
        if name in errors:
            assert errors[name] is not None, (name, errors)
    if result.isolation == "bwrap":
        # bubblewrap's fresh /tmp hides the socket file too.
        assert errors["unix-file"] is not None, errors
    assert not set(listeners.accepted()) - {"unix-file"}


def test_unshare_fallback_isolates_the_network_and_says_what_it_does_not(listeners):
    try:
        fallback = SandboxWorker(isolation="unshare", preload=())
    except SandboxError as exc:
        pytest.skip(f"unshare not usable here: {exc}")
    with fallback:
        result = fallback.run(listeners.code(), timeout=15)
    assert result.status == "ok", result
    assert result.isolation == "unshare"
    assert result.payload["interfaces"] == ["lo"]
    errors = result.payload["errors"]
    assert errors["tcp4"] is not None and errors["unix-abstract"] is not None, errors
    assert "tcp4" not in listeners.accepted()
    # unshare shares the file system, so a socket file is reachable: it says so.
    assert any("file system not protected" in w for w in result.warnings)


def test_no_isolation_is_announced():
    with SandboxWorker(isolation="none", preload=()) as bare:
        result = bare.run("torchlint_report(pid=1)")
    assert result.status == "ok" and result.payload == {"pid": 1}
    assert result.isolation == "none"
    assert any("no network isolation" in w for w in result.warnings)
    assert any("file system not protected" in w for w in result.warnings)


def test_writes_outside_the_temporary_directory_are_contained(light_worker, tmp_path):
    if light_worker.isolation != "bwrap":
        # Trying would really write into the checkout and HOME.
        assert any("file system not protected" in w for w in light_worker.warnings)
        pytest.skip(f"isolation {light_worker.isolation!r} does not protect the file system")
    token = f"torchlint-escape-{uuid.uuid4().hex}"
    host_targets = [
        Path.home() / token,  # the host's HOME, not the sandbox's
        ROOT / token,
        Path("/var/tmp") / token,
        Path("/tmp") / token,
        tmp_path / token,
    ]
    code = _code(
        f"""
        import os
        outcome = {{}}
        for path in {[str(p) for p in host_targets]!r} + [os.path.expanduser("~/{token}")]:
            try:
                with open(path, "w") as fh:
                    fh.write("escaped")
                outcome[path] = "written"
            except OSError as exc:
                outcome[path] = exc.strerror
        torchlint_report(outcome=outcome, home=os.environ["HOME"], cwd=os.getcwd())
        """
    )
    result = light_worker.run(code)
    assert result.status == "ok", result
    sandbox_home = result.payload["home"]
    assert sandbox_home == result.payload["cwd"] != str(Path.home())
    assert result.payload["outcome"][f"{sandbox_home}/{token}"] == "written"
    for target in host_targets:
        assert not target.exists(), f"{target} escaped the sandbox"
    assert not Path(sandbox_home).exists()  # the job directory is removed afterwards


def test_environment_is_scrubbed(monkeypatch):
    monkeypatch.setenv("TORCHLINT_TEST_SECRET", "hunter2")
    result = run_snippet("import os\ntorchlint_report(env=dict(os.environ))", preload=())
    assert result.status == "ok", result
    env = result.payload["env"]
    assert set(env) <= ENV_ALLOWED
    assert not any("hunter2" in value for value in env.values())
    assert env["HOME"] == env["TMPDIR"]


# -- limits -----------------------------------------------------------------


def test_infinite_loop_times_out_and_its_process_group_dies(light_worker):
    marker = f"{time.time_ns() % 10**9}.5"  # unique sleep duration, findable in /proc
    code = _code(
        f"""
        import subprocess
        subprocess.Popen(["sleep", "{marker}"])                          # same process group
        subprocess.Popen(["sleep", "{marker}1"], start_new_session=True)  # escaped the group
        while True:
            pass
        """
    )
    seen: list[int] = []
    box: dict = {}
    runner = threading.Thread(target=lambda: box.setdefault("r", light_worker.run(code, timeout=2)))
    runner.start()
    deadline = time.monotonic() + 10
    while runner.is_alive() and time.monotonic() < deadline and len(seen) < 2:
        seen = _processes_with(f"sleep\0{marker}")
        time.sleep(0.05)
    runner.join(30)
    result = box["r"]
    assert len(seen) == 2, "the snippet's subprocesses never started"
    assert result.status == "timeout"
    assert result.exc_type == "TimeoutError"
    assert 2 <= result.duration_s < 8
    assert _processes_with(f"sleep\0{marker}") == []
    assert light_worker.run("torchlint_report(after=True)").payload == {"after": True}


def test_background_processes_do_not_outlive_a_finished_job(light_worker):
    marker = f"{time.time_ns() % 10**9}.25"
    code = f"import subprocess\nsubprocess.Popen(['sleep', '{marker}'], start_new_session=True)\n"
    result = light_worker.run(code)
    assert result.status == "ok", result
    assert _processes_with(f"sleep\0{marker}") == []


def test_cpu_time_limit(light_worker):
    result = light_worker.run("while True:\n    pass\n", timeout=30, cpu_time=1)
    assert result.status == "timeout"
    assert "CPU time" in result.exc_message
    assert result.duration_s < 10


def test_unbounded_allocation_hits_the_memory_limit(light_worker):
    code = "blocks = []\nwhile True:\n    blocks.append(bytearray(32 * 2**20))\n"
    result = light_worker.run(code, memory_mb=256, timeout=20)
    assert result.status == "memory"
    assert result.exc_type == "MemoryError"
    assert result.lineno == 3


def test_torch_allocation_over_the_limit_is_a_memory_result(worker):
    code = "import torch\nx = torch.ones(512, 2**20)\n"  # 2 GiB
    result = worker.run(code, memory_mb=256, timeout=20)
    assert result.status == "memory", result
    assert "can't allocate memory" in result.exc_message


def test_data_and_rss_guard_used_for_cuda():
    # The CUDA path cannot use RLIMIT_AS; its guard must work on its own (no cgroup here).
    with SandboxWorker(device="cuda", preload=(), use_cgroup=False) as gpu_style:
        private = gpu_style.run("b = []\nwhile True:\n    b.append(bytearray(32 * 2**20))\n", memory_mb=256)
        # Shared anonymous memory escapes RLIMIT_DATA; the RSS watchdog catches it.
        shared = gpu_style.run(
            _code(
                """
                import mmap
                maps = []
                while True:
                    m = mmap.mmap(-1, 64 * 2**20)
                    for offset in range(0, len(m), 4096):
                        m[offset] = 1
                    maps.append(m)
                """
            ),
            memory_mb=256,
            timeout=30,
        )
        watchdog_only = gpu_style.run(
            "b = []\nwhile True:\n    b.append(bytearray(32 * 2**20))\n", memory_mb=256, memory_guard="rss"
        )
    assert private.status == "memory" and private.exc_type == "MemoryError"
    assert shared.status == "memory", shared
    assert "resident memory" in shared.exc_message
    assert watchdog_only.status == "memory" and "resident memory" in watchdog_only.exc_message


def test_cuda_sandbox_binds_the_gpu_device_nodes(monkeypatch):
    monkeypatch.setattr(sandbox, "_nvidia_device_paths", lambda: ["/dev/nvidia-uvm", "/dev/nvidia0", "/dev/nvidiactl"])
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "1")
    command = build_command("bwrap", "/tmp/root", "cuda", ["python"])
    dev = command.index("--dev")
    for node in ("/dev/nvidia-uvm", "/dev/nvidia0", "/dev/nvidiactl"):
        at = command.index(node)
        assert command[at - 1 : at + 2] == ["--dev-bind", node, node]
        assert at > dev  # after --dev /dev, or the minimal /dev would hide it
    assert "--dev-bind" not in build_command("bwrap", "/tmp/root", "cpu", ["python"])
    assert command[-2:] == ["--", "python"]
    assert sandbox._sandbox_env("/tmp/root", "cuda")["CUDA_VISIBLE_DEVICES"] == "1"
    assert "CUDA_VISIBLE_DEVICES" not in sandbox._sandbox_env("/tmp/root", "cpu")


def test_python_under_tmp_stays_visible_behind_the_tmpfs(monkeypatch, tmp_path):
    checkout = tmp_path / "checkout"
    (checkout / "torchlint").mkdir(parents=True)
    monkeypatch.setattr(sandbox, "_PACKAGE_PARENT", str(checkout))
    command = build_command("bwrap", sandbox.SANDBOX_ROOT, "cpu", ["python"])
    package = str(checkout / "torchlint")
    at = command.index(package)
    assert command[at - 1 : at + 2] == ["--ro-bind", package, package]
    tmpfs_tmp = max(i for i, a in enumerate(command) if a == "--tmpfs" and command[i + 1] == "/tmp")
    assert at > tmpfs_tmp  # after the tmpfs, or it would hide the package
    # Only the package: not the checkout around it (a socket or secret there stays out of reach).
    bound = [command[i + 1] for i, a in enumerate(command) if a in ("--ro-bind", "--bind", "--ro-bind-try")]
    assert str(checkout) not in bound and "/tmp" not in bound


def test_a_checkout_under_tmp_runs_in_the_sandbox(tmp_path):
    """CI often clones into /tmp: the sandboxed worker must still import torchlint from there."""
    if detect_isolation().kind != "bwrap":
        pytest.skip("bubblewrap is what mounts a fresh /tmp")
    import shutil
    import subprocess
    import sys

    checkout = tmp_path / "checkout"
    shutil.copytree(ROOT / "torchlint", checkout / "torchlint", ignore=shutil.ignore_patterns("__pycache__"))
    script = (
        "import torchlint, sys\n"
        f"assert torchlint.__file__.startswith({str(checkout)!r}), torchlint.__file__\n"
        "from torchlint.runtime.sandbox import run_snippet\n"
        "r = run_snippet('print(6 * 7)', isolation='bwrap', preload=())\n"
        "print(r.status, r.isolation, r.stdout.strip(), r.exc_message)\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["PYTHONPATH"] = str(checkout)
    proc = subprocess.run([sys.executable, "-c", script], cwd=checkout, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["ok", "bwrap", "42", "None"], proc.stdout + proc.stderr


# -- results ----------------------------------------------------------------


def test_torch_runtime_error_is_reported(worker):
    code = _code(
        """
        import torch
        x = torch.randn(4, 256)
        y = x @ torch.randn(400, 120)
        """
    )
    result = worker.run(code)
    assert result.status == "exception"
    assert result.exc_type == "RuntimeError"
    assert result.exc_message == "mat1 and mat2 shapes cannot be multiplied (4x256 and 400x120)"
    assert result.lineno == 3
    assert 'File "<snippet>", line 3' in result.traceback
    assert "worker.py" not in result.traceback


def test_payload_and_output(worker):
    code = _code(
        """
        import torch
        print("hello")
        import sys; print("careful", file=sys.stderr)
        torchlint_report({"ratio": 2.0}, loss=torch.tensor(0.5), shape=torch.ones(2, 3).shape)
        """
    )
    result = worker.run(code)
    assert result.status == "ok", result
    assert result.payload == {"ratio": 2.0, "loss": 0.5, "shape": [2, 3]}
    assert result.stdout == "hello\n" and result.stderr == "careful\n"


def test_output_is_capped(light_worker):
    result = light_worker.run("print('x' * 100_000)", output_limit=1000)
    assert result.status == "ok"
    assert len(result.stdout) == 1000
    assert any("stdout truncated" in w for w in result.warnings)


def test_syntax_error_is_an_error(light_worker):
    result = light_worker.run("x = 1\ndef broken(:\n")
    assert result.status == "error"
    assert result.exc_type == "SyntaxError"
    assert result.lineno == 2


def test_simulated_cuda_inside_the_sandbox(worker):
    code = _code(
        """
        import torch, torch.nn as nn
        device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
        model = nn.Sequential(nn.Linear(8, 4)).to(device)
        model(torch.randn(2, 8).to(device))
        torchlint_report(device=str(next(model.parameters()).device))
        model(torch.randn(2, 8))
        """
    )
    result = worker.run(code, simulate_cuda=True)
    assert result.status == "exception"
    assert result.payload == {"device": "cuda:0"}
    assert result.exc_message.startswith("Expected all tensors to be on the same device")
    assert result.lineno == 6


# -- the warm worker --------------------------------------------------------


def test_worker_survives_crashing_jobs(worker):
    pid = worker.pid
    segfault = worker.run("import ctypes\nctypes.string_at(0)\n")
    assert segfault.status == "killed" and segfault.exc_type == "SIGSEGV"
    assert "Segmentation fault" in segfault.stderr  # faulthandler's report
    hard_exit = worker.run("import os\nos._exit(3)\n")
    assert hard_exit.status == "killed" and "status 3" in hard_exit.exc_message
    soft_exit = worker.run("import sys\nsys.exit(2)\n")
    assert soft_exit.status == "exception" and soft_exit.exc_type == "SystemExit"
    assert worker.run("import sys\nsys.exit(0)\n").status == "ok"
    assert worker.run("import time\ntime.sleep(60)\n", timeout=0.5).status == "timeout"
    after = worker.run("import torch\ntorchlint_report(n=int(torch.ones(3).sum()))")
    assert after.status == "ok" and after.payload == {"n": 3}
    assert worker.pid == pid and worker.restarts == 0


def test_worker_restarts_after_being_killed():
    with SandboxWorker(preload=()) as w:
        first = w.pid
        result = w.run("import os, signal\nos.kill(os.getppid(), signal.SIGKILL)\nimport time\ntime.sleep(5)\n")
        assert result.status == "killed"
        assert any("restarts" in warning for warning in result.warnings)
        again = w.run("torchlint_report(ok=True)")
        assert again.status == "ok" and again.payload == {"ok": True}
        assert w.pid != first and w.restarts == 1


def test_warm_is_much_faster_than_cold(worker):
    snippet = "import torch\ntorchlint_report(v=float(torch.nn.Linear(4, 2)(torch.ones(1, 4)).sum()))\n"
    cold = run_snippet(snippet)
    assert cold.status == "ok", cold
    warm = []
    for _ in range(5):
        result = worker.run(snippet)
        assert result.status == "ok"
        warm.append(result.duration_s)
    assert statistics.median(warm) < cold.duration_s / 4, (warm, cold.duration_s)


def test_worker_is_thread_safe(light_worker):
    results: dict[int, object] = {}

    def job(n: int) -> None:
        results[n] = light_worker.run(f"import time\ntime.sleep(0.05)\ntorchlint_report(n={n})")

    threads = [threading.Thread(target=job, args=(n,)) for n in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert {n: r.payload.get("n") for n, r in results.items()} == {n: n for n in range(6)}


def test_explicit_isolation_that_does_not_work_is_an_error(monkeypatch):
    monkeypatch.setattr(sandbox, "_probe_bwrap", lambda device: "bwrap is not installed")
    with pytest.raises(SandboxError, match="not installed"):
        detect_isolation("bwrap")
    info = detect_isolation("auto")
    assert info.kind in ("unshare", "none")
    assert any("bwrap is not installed" in w for w in info.warnings)


def test_sandbox_side_never_imports_torch():
    # The linter must run where torch is not installed.
    import subprocess
    import sys

    probe = (
        "import sys; sys.modules['torch'] = None\n"  # any 'import torch' now fails
        "import torchlint.runtime, torchlint.runtime.sandbox, torchlint.runtime.worker\n"
        "from torchlint.runtime import SandboxWorker, run_snippet\n"
        "r = run_snippet('torchlint_report(x=1)', isolation='none')\n"
        "assert r.status == 'ok' and r.payload == {'x': 1}, r\n"
    )
    done = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr


def test_worker_without_torch_still_runs_plain_snippets():
    with SandboxWorker(preload=("torchlint_no_such_module",)) as w:
        assert "torchlint_no_such_module" in w.hello["failed"]
        result = w.run("torchlint_report(total=sum(range(4)))")
    assert result.status == "ok" and result.payload == {"total": 6}
