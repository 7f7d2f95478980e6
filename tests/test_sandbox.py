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

from conftest import escape_target
from torchlint.runtime import sandbox
from torchlint.runtime.sandbox import SandboxError, SandboxWorker, build_command, detect_isolation, run_snippet

# Sandboxed processes: the full run, not the inner loop.
pytestmark = pytest.mark.slow

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


def test_cuda_sandbox_binds_the_gpu_device_nodes(monkeypatch, tmp_path):
    monkeypatch.setattr(
        sandbox, "_nvidia_device_paths",
        lambda: ["/dev/nvidia-caps/nvidia-cap1", "/dev/nvidia-uvm", "/dev/nvidia0", "/dev/nvidiactl"],
    )  # fmt: skip
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "1")
    driver = tmp_path / "nvidia" / "lib64"  # e.g. /usr/local/nvidia/lib64 in NVIDIA's containers
    driver.mkdir(parents=True)
    monkeypatch.setenv("LD_LIBRARY_PATH", f"{driver}:/usr/lib")
    command = build_command("bwrap", "/tmp/root", "cuda", ["python"])
    at = command.index(str(driver))
    assert command[at - 1 : at + 2] == ["--ro-bind", str(driver), str(driver)]
    assert str(driver) not in build_command("bwrap", "/tmp/root", "cpu", ["python"])
    dev = command.index("--dev")
    for node in ("/dev/nvidia-uvm", "/dev/nvidia0", "/dev/nvidiactl"):
        at = command.index(node)
        assert command[at - 1 : at + 2] == ["--dev-bind", node, node]
        assert at > dev  # after --dev /dev, or the minimal /dev would hide it
    # bubblewrap would make /dev/nvidia-caps mode 0700: the unprivileged uid could not reach the node.
    caps = command.index("/dev/nvidia-caps")
    assert command[caps - 3 : caps + 1] == ["--perms", "0755", "--dir", "/dev/nvidia-caps"]
    assert caps < command.index("/dev/nvidia-caps/nvidia-cap1")
    assert command[command.index("/sys") - 1 : command.index("/sys") + 2] == ["--ro-bind", "/sys", "/sys"]
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


# -- hardening (issue #15): what the snippet sees, who it runs as, what it may call -----


def _bwrap_worker(**kwargs) -> SandboxWorker:
    if detect_isolation().kind != "bwrap":
        pytest.skip("bubblewrap is not usable here; the file-system and uid checks need it")
    return SandboxWorker(preload=(), **kwargs)


@pytest.fixture(scope="module")
def bwrap_worker():
    with _bwrap_worker() as w:
        yield w


def test_secrets_and_the_users_files_are_not_visible(bwrap_worker):
    """The snippet saw /etc/shadow, /root and the checkout (uid 0, / bound whole)."""
    secret = ROOT / f".torchlint-secret-{uuid.uuid4().hex}"
    secret.write_text("hunter2")
    try:
        code = _code(
            f"""
            import os
            seen = {{}}
            for path in ["/etc/shadow", "/etc/ssh", {str(secret)!r}, {str(Path.home() / ".bashrc")!r}]:
                try:
                    with open(path) as fh:
                        seen[path] = fh.read()[:20]
                except OSError as exc:
                    seen[path] = exc.errno
            listing = {{d: sorted(os.listdir(d)) for d in ["/home", "/run", "/etc", "/tmp"]}}
            with open("/proc/self/status") as fh:
                status = dict(line.split(":", 1) for line in fh)
            torchlint_report(seen=seen, listing=listing, uid=os.getuid(), gid=os.getgid(),
                             groups=os.getgroups(), cap_eff=status["CapEff"].strip(), cap_prm=status["CapPrm"].strip(),
                             nnp=status["NoNewPrivs"].strip(),
                             root=os.listdir("/root"), checkout=os.path.exists({str(ROOT / "tests")!r}))
            """
        )
        result = bwrap_worker.run(code)
    finally:
        secret.unlink()
    assert result.status == "ok", result
    payload = result.payload
    assert all(isinstance(v, int) for v in payload["seen"].values()), payload["seen"]  # all errors
    listing = payload["listing"]
    assert listing["/home"] == [] and listing["/run"] == []
    assert set(listing["/etc"]) <= {"passwd", "group", "ld.so.cache", "ld.so.conf", "ld.so.conf.d",
                                    "alternatives", "localtime"}  # fmt: skip
    # Only the job's files, and parents of what is bound under /tmp (a checkout or virtualenv in CI).
    under_tmp = {Path(p).relative_to("/tmp").parts[0] for p in sandbox._python_paths_under_tmp()}
    assert {n for n in listing["/tmp"] if not n.startswith("job-")} <= under_tmp, listing["/tmp"]
    assert payload["checkout"] is False  # torchlint's package only, not the checkout around it
    assert set(payload["root"]) <= {Path(p).relative_to("/root").parts[0] for p in sandbox._python_paths()
                                     if p.startswith("/root/")}  # fmt: skip
    assert payload["cap_eff"] == payload["cap_prm"] == "0000000000000000" and payload["nnp"] == "1"
    if os.geteuid() == 0:
        assert payload["uid"] != 0 and payload["gid"] != 0 and 0 not in payload["groups"]
        assert payload["uid"] not in (65534, os.getuid())


def test_a_socket_file_in_the_checkout_is_unreachable(bwrap_worker):
    """A listener's socket file inside the (read-only bound) checkout was reachable."""
    path = ROOT / f".tl-{uuid.uuid4().hex[:8]}.sock"
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(str(path))
    listener.listen(4)
    listener.setblocking(False)
    try:
        probe = f"TARGETS = [('unix-checkout', {int(socket.AF_UNIX)}, {str(path)!r})]\n" + NETWORK_PROBE
        # The probe itself reaches it unsandboxed.
        namespace = {"torchlint_report": lambda **kw: namespace.setdefault("report", kw)}
        exec(probe, namespace)
        assert namespace["report"]["errors"] == {"unix-checkout": None}
        listener.accept()[0].close()
        result = bwrap_worker.run(probe, timeout=15)
        assert result.status == "ok", result
        assert result.payload["errors"]["unix-checkout"] is not None
        with pytest.raises(BlockingIOError):
            listener.accept()
    finally:
        listener.close()
        path.unlink()


SYSCALL_PROBE = _code(
    """
    import ctypes, errno, os, subprocess, threading
    libc = ctypes.CDLL(None, use_errno=True)
    def call(name, *args):
        ctypes.set_errno(0)
        rc = getattr(libc, name)(*args)
        return 0 if rc != -1 else errno.errorcode.get(ctypes.get_errno(), ctypes.get_errno())
    CLONE_NEWUSER, CLONE_NEWNET = 0x10000000, 0x40000000
    out = {
        "unshare_user": call("unshare", CLONE_NEWUSER),
        "unshare_net": call("unshare", CLONE_NEWNET),
        "ptrace_traceme": call("ptrace", 0, 0, 0, 0),
        "keyctl_get_session": call("syscall", 250, -3, 1) if os.uname().machine == "x86_64" else "EPERM",
        "mount_tmpfs": call("mount", b"none", b"/tmp", b"tmpfs", 0, None),
    }
    done = []
    t = threading.Thread(target=lambda: done.append(1)); t.start(); t.join()
    out["thread"] = done == [1]
    out["subprocess"] = subprocess.run(["true"]).returncode
    out["fork"] = os.waitpid(pid, 0)[1] if (pid := os.fork()) else os._exit(0)
    torchlint_report(**out)
    """
)


def test_seccomp_and_user_namespaces(bwrap_worker):
    """unshare(CLONE_NEWUSER), ptrace and keyctl worked inside the sandbox."""
    result = bwrap_worker.run(SYSCALL_PROBE)
    assert result.status == "ok", result
    p = result.payload
    assert p["unshare_user"] == "EPERM" and p["unshare_net"] == "EPERM", p
    assert p["ptrace_traceme"] == "EPERM" and p["keyctl_get_session"] == "EPERM", p
    assert p["mount_tmpfs"] == "EPERM", p
    # What a snippet does need still works (glibc falls back from clone3 to clone).
    assert p["thread"] is True and p["subprocess"] == 0 and p["fork"] == 0, p


def test_seccomp_numbers_match_the_kernel_headers():
    from torchlint.runtime import seccomp

    headers = {
        "x86_64": Path("/usr/include/x86_64-linux-gnu/asm/unistd_64.h"),
        "aarch64": Path("/usr/include/asm-generic/unistd.h"),  # aarch64 uses the generic table
    }
    checked = 0
    for machine, header in headers.items():
        if not header.exists():
            continue
        import re

        known = dict((m[0], int(m[1])) for m in re.findall(r"#define __NR(?:3264)?_(\w+)\s+(\d+)\b", header.read_text()))
        for name, number in seccomp.SYSCALLS[machine].items():
            if name in known:
                assert known[name] == number, (machine, name)
                checked += 1
    if not checked:
        pytest.skip("no kernel headers here (linux-libc-dev) to check the numbers against")
    program = seccomp.build("x86_64")
    assert len(program) % 8 == 0 and seccomp.build("sparc") is None


# -- per-job limits -------------------------------------------------------------------

FORKED_HOGS = _code(
    """
    import os, time
    children = []
    for _ in range(3):
        pid = os.fork()
        if pid == 0:
            block = bytearray(b"x") * (150 * 2**20)  # touched: resident
            time.sleep(8)
            os._exit(0)
        children.append(pid)
    for pid in children:
        os.waitpid(pid, 0)
    torchlint_report(survived=True)
    """
)


@pytest.mark.parametrize("use_cgroup", [True, False], ids=["cgroup", "watchdog"])
def test_memory_limit_holds_for_the_whole_job(use_cgroup):
    """3 forks x 150 MB each under a 256 MB limit: RLIMIT_AS let every fork have the whole limit."""
    with SandboxWorker(preload=(), use_cgroup=use_cgroup) as w:
        w.start()
        if use_cgroup and w.cgroup is None:
            pytest.skip(f"no cgroup can be made here: {w.cgroup_problem}")
        started = time.monotonic()
        result = w.run(FORKED_HOGS, memory_mb=256, timeout=30)
        assert result.status == "memory", result
        assert time.monotonic() - started < 8  # stopped, not left to finish
        assert ("out-of-memory killer" in result.exc_message) == use_cgroup, result.exc_message
        assert w.run("torchlint_report(after=1)").payload == {"after": 1}


def test_forks_sharing_the_worker_are_not_counted_twice():
    """The watchdog splits pages forks share: 4 idle forks of a torch worker fit a 256 MB limit."""
    pytest.importorskip("torch")
    with SandboxWorker(preload=("torch",), use_cgroup=False) as w:
        code = _code(
            """
            import os, time, torch
            pids = [pid for pid in (os.fork() for _ in range(4)) if pid] if True else []
            """
        )
        code = _code(
            """
            import os, time, torch
            pids = []
            for _ in range(4):
                pid = os.fork()
                if pid == 0:
                    time.sleep(1.0)
                    os._exit(0)
                pids.append(pid)
            for pid in pids:
                os.waitpid(pid, 0)
            torchlint_report(done=True)
            """
        )
        result = w.run(code, memory_mb=256, timeout=30)
    assert result.status == "ok" and result.payload == {"done": True}, result


FORK_BOMB = _code(
    """
    import os, time
    started = 0
    try:
        for _ in range(300):
            pid = os.fork()
            if pid == 0:
                time.sleep(5)
                os._exit(0)
            started += 1
    except OSError as exc:
        torchlint_report(started=started, error=exc.errno)
    else:
        torchlint_report(started=started, error=None)
    """
)


@pytest.mark.parametrize("use_cgroup", [True, False], ids=["cgroup", "rlimit"])
def test_process_count_is_limited_per_job(use_cgroup):
    """400 forks succeeded."""
    with _bwrap_worker(use_cgroup=use_cgroup, max_processes=32) as w:
        w.start()
        if use_cgroup and (w.cgroup is None or "pids" not in w.cgroup.dirs):
            pytest.skip(f"no pids cgroup can be made here: {w.cgroup_problem}")
        result = w.run(FORK_BOMB, timeout=20)
        after = w.run("torchlint_report(after=1)")
    # The job itself is one of its 32: the 32nd fork fails (EAGAIN), and the snippet lives on to say so.
    assert result.status == "ok", result
    assert result.payload == {"started": 31, "error": 11}, result.payload
    assert after.payload == {"after": 1}


SCRATCH_FILLER = _code(
    """
    import os
    for where in ("/tmp", "/dev/shm"):
        with open(os.path.join(where, "left-behind"), "w") as fh:
            fh.write("x")
    written = {}
    for where in ("/tmp", "/dev/shm", os.getcwd()):
        total = 0
        try:
            for n in range(8):
                with open(os.path.join(where, f"fill-{n}"), "wb") as fh:
                    for _ in range(16):
                        fh.write(b"x" * 2**20)
                        total += 2**20
        except OSError as exc:
            written[where] = (total, exc.errno)
        else:
            written[where] = (total, None)
    torchlint_report(written=written, cwd=os.getcwd())
    """
)


def test_scratch_space_is_limited_and_emptied_per_job():
    """8 x 256 MB files filled /tmp, /dev/shm and the job directory."""
    if "--size" not in sandbox.bwrap_features("/usr/bin/bwrap" if os.path.exists("/usr/bin/bwrap") else "bwrap"):
        pytest.skip("this bubblewrap has no --size (0.8.0 or later)")
    with _bwrap_worker(disk_mb=48) as w:
        result = w.run(SCRATCH_FILLER, timeout=30)
        assert result.status == "ok", result
        written = result.payload["written"]
        for where, (total, error) in written.items():
            assert error == 28, (where, total, error)  # ENOSPC
        # The job directory lives in /tmp and shares its 48 MB; /dev/shm has its own.
        assert written["/tmp"][0] + written[result.payload["cwd"]][0] <= 48 * 2**20
        assert written["/dev/shm"][0] <= 48 * 2**20
        after = w.run("import os\ntorchlint_report(tmp=[n for n in os.listdir('/tmp') if not n.startswith('job-')],"
                      " shm=os.listdir('/dev/shm'))")  # fmt: skip
    assert after.payload["shm"] == [] and "left-behind" not in after.payload["tmp"], after.payload


def test_cgroup_is_removed_with_the_worker():
    with SandboxWorker(preload=()) as w:
        w.start()
        if w.cgroup is None:
            pytest.skip(f"no cgroup can be made here: {w.cgroup_problem}")
        dirs = list(w.cgroup.dirs.values())
        assert w.run("pass").status == "ok"
        assert all(os.path.isdir(d) for d in dirs)
    assert not any(os.path.exists(d) for d in dirs)


def test_bwrap_without_size_still_limits_nothing_silently(monkeypatch):
    """An old bubblewrap without --size gets tmpfs without a size, not a failing command line."""
    monkeypatch.setattr(sandbox, "bwrap_features", lambda bwrap: frozenset({"--tmpfs"}))
    command = build_command("bwrap", sandbox.SANDBOX_ROOT, "cpu", ["python"])
    assert "--size" not in command and "--disable-userns" not in command
    monkeypatch.setattr(sandbox, "bwrap_features", lambda bwrap: frozenset({"--size", "--disable-userns"}))
    command = build_command("bwrap", sandbox.SANDBOX_ROOT, "cpu", ["python"])
    assert command.count("--size") == 2


# -- side effects are reported --------------------------------------------------------


def test_denied_network_and_writes_are_reported(bwrap_worker, listeners):
    target = escape_target()
    tcp = next(address for name, _, address in listeners.targets if name == "tcp4")
    code = listeners.code() + _code(
        f"""
        try:
            open({str(target)!r}, "w")
        except OSError:
            pass
        open("scratch.txt", "w").write("fine")  # its own directory: not a side effect
        """
    )
    result = bwrap_worker.run(code, timeout=15)
    assert result.status == "ok", result
    assert not target.exists()
    effects = {(e["kind"], e["target"]): e["contained"] for e in result.side_effects}
    assert effects[("write", str(target))] is True
    assert effects[("network", f"connect 127.0.0.1:{tcp[1]}")] is True
    assert not any("scratch.txt" in t for _, t in effects)
    summary = result.side_effect_summary()
    assert f"write {target} (denied)" in summary and "connect 127.0.0.1" in summary


def test_a_snippet_that_stays_in_its_directory_reports_nothing(light_worker):
    result = light_worker.run("open('out.txt', 'w').write('x')\nimport os\nos.mkdir('d')\n")
    assert result.status == "ok" and result.side_effects == []


UNPRIVILEGED_SCRIPT = _code(
    """
    import json, textwrap
    from torchlint.runtime.sandbox import SandboxWorker
    probe = '''
    import ctypes, os
    libc = ctypes.CDLL(None, use_errno=True)
    rc = libc.unshare(0x10000000)
    status = dict(line.split(":", 1) for line in open("/proc/self/status"))
    torchlint_report(uid=os.getuid(), unshare=(rc, ctypes.get_errno()), nnp=status["NoNewPrivs"].strip(),
                     cap=status["CapEff"].strip(), home=os.listdir("/home"), etc=sorted(os.listdir("/etc")))
    '''
    with SandboxWorker(preload=(), max_processes=16) as w:
        seen = w.run(textwrap.dedent(probe))
        bomb = w.run(FORK_BOMB, timeout=20)
        print(json.dumps({"isolation": w.isolation, "seen": seen.payload, "bomb": bomb.payload,
                          "status": [seen.status, bomb.status]}))
    """
)


def test_an_unprivileged_user_gets_the_same_sandbox():
    """bubblewrap started by a user (not root) works in a user namespace: the same view and limits."""
    import shutil
    import subprocess
    import tempfile

    python, setpriv = Path("/usr/bin/python3"), shutil.which("setpriv")
    if os.geteuid() != 0 or not setpriv or not python.exists() or detect_isolation().kind != "bwrap":
        pytest.skip("needs root (to become another user), setpriv, a system /usr/bin/python3 and bubblewrap")
    # A copy of torchlint that user 65534 can read (tmp_path's parents are 0700).
    copy = Path(tempfile.mkdtemp(prefix="torchlint-unprivileged-"))
    try:
        shutil.copytree(ROOT / "torchlint", copy / "torchlint", ignore=shutil.ignore_patterns("__pycache__"))
        for path in [copy, *copy.rglob("*")]:
            path.chmod(0o755 if path.is_dir() else 0o644)
        env = {"PATH": "/usr/bin:/bin", "HOME": "/nonexistent", "PYTHONPATH": str(copy)}
        proc = subprocess.run(
            [setpriv, "--reuid=65534", "--regid=65534", "--clear-groups", str(python), "-c",
             f"FORK_BOMB = {FORK_BOMB!r}\n" + UNPRIVILEGED_SCRIPT],
            env=env, cwd="/", capture_output=True, text=True, timeout=180,
        )  # fmt: skip
    finally:
        shutil.rmtree(copy, ignore_errors=True)
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = __import__("json").loads(proc.stdout.strip().splitlines()[-1])
    if report["isolation"] != "bwrap":
        pytest.skip(f"bubblewrap does not work for an unprivileged user here ({report['isolation']})")
    seen = report["seen"]
    assert report["status"] == ["ok", "ok"], report
    assert seen["uid"] == 65534 and seen["cap"] == "0000000000000000" and seen["nnp"] == "1", seen
    assert seen["unshare"] == [-1, 1], seen  # EPERM: no new user namespace
    assert seen["home"] == [] and "shadow" not in seen["etc"], seen
    assert report["bomb"] == {"started": 15, "error": 11}, report["bomb"]
