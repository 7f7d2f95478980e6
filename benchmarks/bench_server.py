"""How quickly does the language server start, answer an edit, and how much memory does it hold?

Drives ``python -m torchlint.server`` over real LSP (stdio), as an editor does,
on two 1,000-line PyTorch training scripts: a light one (23 findings) and a
findings-heavy one (~100 findings). Every figure is the median over ``--runs``
fresh server processes.

1. Cold start: the time from starting the process to the ``initialize``
   answer, and from the first ``didOpen`` to its ``publishDiagnostics``. A
   message's time is when its last byte reached the client, before pygls'
   client decodes it (its first decode of an ``InitializeResult`` costs the
   client itself 50-100 ms); the figure as the client library saw it is shown
   beside it.
2. Edits: one line is edited N times (an incremental ``didChange``) and the
   time until the ``publishDiagnostics`` for that version arrives is measured,
   with ``debounceMs: 0`` so that no debounce is in the figure; the CPU time the
   server and its analysis processes spent per edit is read from /proc (counted
   from when the analysis processes are idle after the warm-up edits: the rest
   of the pool starts after the first lint, and its start-up is not the edits'). Then
   the same with the default settings (the adaptive debounce included), which
   is what a user sees.
3. Memory: 200 files are opened and, once all their diagnostics have arrived,
   the resident memory of the server process and its analysis processes is
   read from /proc.

    python benchmarks/bench_server.py                       # 3 runs, 30 edits, 200 files
    python benchmarks/bench_server.py --root /path/to/old/checkout   # the same figures for another torchlint

The measured tree's modules are compiled to bytecode first (``compileall``), as
``pip install`` does, and a server runs once uncounted, as a user's first start
does, which keeps the dataclass and attrs methods of libcst, lsprotocol and the
rules compiled (torchlint/codecache.py): an environment with
``PYTHONDONTWRITEBYTECODE=1`` would otherwise compile torchlint's sources and
those methods in every process (``--no-compile`` shows that case). The server runs under this interpreter (``sys.executable``, never
a ``python`` found on PATH, which may be a shell-script shim); what starting
that interpreter costs here is printed first.

Targets (issue #14): initialize <= 150 ms; first diagnostics <= 500 ms after
didOpen; after an edit <= 30 ms of analysis CPU and p95 <= 100 ms to the
diagnostics, debounce excluded, on both files; memory < 200 MB.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from lsprotocol import types as t
from pygls.lsp.client import LanguageClient

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

HEADER = """\
\"\"\"Training a classifier on CIFAR-10, the way the tutorials do it.\"\"\"
import torch
import torch.nn as nn
import torch.nn.functional as F
import torch.optim as optim
import torchvision
import torchvision.transforms as transforms

transform = transforms.Compose([transforms.ToTensor(), transforms.Normalize((0.5, 0.5, 0.5), (0.5, 0.5, 0.5))])
"""

BLOCK = '''

class Net{i}(nn.Module):
    """A small convolutional network (variant {i})."""

    def __init__(self, num_classes: int = 10) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 6, 5)
        self.pool = nn.MaxPool2d(2, 2)
        self.conv2 = nn.Conv2d(6, 16, 5)
        self.fc1 = nn.Linear(16 * 5 * 5, 120)
        self.fc2 = nn.Linear(120, 84)
        self.fc3 = nn.Linear(84, num_classes)

    def forward(self, x):
        # Two conv blocks, then three fully connected layers.
        x = self.pool(F.relu(self.conv1(x)))
        x = self.pool(F.relu(self.conv2(x)))
        x = torch.flatten(x, 1)
        x = F.relu(self.fc1(x))
        x = F.relu(self.fc2(x))
        return self.fc3(x)


def train_{i}(net, trainloader, epochs=2, lr=0.001):
    criterion = nn.CrossEntropyLoss()
    optimizer = optim.SGD(net.parameters(), lr=lr, momentum=0.9)
    for epoch in range(epochs):
        running_loss = 0.0
        for step, data in enumerate(trainloader, 0):
            inputs, labels = data
            optimizer.zero_grad()
            outputs = net(inputs)
            loss = criterion(outputs, labels)
            loss.backward()
            optimizer.step()
            running_loss += loss.item()
            if step % 2000 == 1999:
                print(f"[{{epoch + 1}}, {{step + 1:5d}}] loss: {{running_loss / 2000:.3f}}")
                running_loss = 0.0
    dataiter = iter(trainloader)
    images, labels = dataiter.next()
    return images, labels
'''


def training_script(lines: int) -> str:
    """Realistic tutorial code (classes, loops, comments, one finding per block), exactly ``lines`` long."""
    out = HEADER
    i = 0
    while out.count("\n") < lines:
        out += BLOCK.format(i=i)
        i += 1
    kept = out.splitlines(keepends=True)[:lines]
    text = "".join(kept)
    # Do not end inside a function header or a half statement: pad with a valid tail.
    import ast

    while True:
        try:
            ast.parse(text)
            break
        except SyntaxError:
            kept = kept[:-1]
            text = "".join(kept)
    while text.count("\n") < lines:
        text += "print('done')\n"
    return text



HEAVY_BLOCK = '''

def evaluate_{i}(model, testloader, device):
    model.eval()
    it = iter(testloader)
    first = it.next()
    second = it.next()
    total = 0
    for images, labels in testloader:
        outputs = model(images)
        total += outputs.sum()
    return first, second, total


def finetune_{i}(model, loader, optimizer, criterion):
    for inputs, targets in loader:
        loss = criterion(model(inputs), targets)
        loss.backward()
        optimizer.step()
    batches = iter(loader)
    return batches.next()
'''


def heavy_script(lines: int) -> str:
    """The same tutorial code with two findings-heavy blocks in three (~100 findings in 1,000 lines)."""
    out = HEADER
    i = 0
    while out.count("\n") < lines:
        out += (BLOCK if i % 3 == 0 else HEAVY_BLOCK).format(i=i)
        i += 1
    return "".join(out.splitlines(keepends=True)[:lines])


def rss_kb(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def children(pid: int) -> list[int]:
    out = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            if int(fields[1]) == pid:
                out.append(int(entry))
        except (OSError, IndexError, ValueError):
            continue
    return out


def percentile(values: list[float], q: float) -> float:
    s = sorted(values)
    k = (len(s) - 1) * q
    lo, hi = int(k), min(int(k) + 1, len(s) - 1)
    return s[lo] + (s[hi] - s[lo]) * (k - lo)


def cpu_ticks(pid: int) -> int:
    """utime + stime of a process, in clock ticks."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return int(fields[11]) + int(fields[12])
    except (OSError, IndexError, ValueError):
        return 0


TICK_MS = 1000 / os.sysconf("SC_CLK_TCK")


class Session:
    """One fresh server process and a push client with UTF-16 positions, like VS Code."""

    def __init__(self, root: Path, entry: str = "module") -> None:
        self.root = root
        self.entry = entry
        self.client = LanguageClient("bench", "1")
        self.published: dict[str, tuple[int | None, float, int]] = {}
        self.arrived = asyncio.Event()
        # When each message's last byte came in (before the client library decodes it).
        self.first_response: float | None = None
        self.bytes_in: dict[tuple[str, int | None], float] = {}

        @self.client.feature(t.TEXT_DOCUMENT_PUBLISH_DIAGNOSTICS)
        def on_publish(params: t.PublishDiagnosticsParams) -> None:
            self.published[params.uri] = (params.version, time.perf_counter(), len(params.diagnostics))
            self.arrived.set()

        @self.client.feature(t.WINDOW_LOG_MESSAGE)
        def on_log(params: t.LogMessageParams) -> None:
            pass

    def _watch(self, reader: asyncio.StreamReader) -> None:
        original = reader.readexactly

        async def readexactly(n: int) -> bytes:
            body = await original(n)
            now = time.perf_counter()
            try:
                message = json.loads(body)
            except ValueError:
                return body
            if "id" in message and "method" not in message and self.first_response is None:
                self.first_response = now
            elif message.get("method") == "textDocument/publishDiagnostics":
                params = message.get("params") or {}
                self.bytes_in.setdefault((params.get("uri"), params.get("version")), now)
            return body

        reader.readexactly = readexactly  # type: ignore[method-assign]

    async def start(self, tmp: Path, options: dict) -> tuple[float, float]:
        """Start the process and initialize: the time from spawn to the answer's bytes, and to
        the client library's decoded answer (ms)."""
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(self.root), os.environ.get("PYTHONPATH")]))}
        command = ("-m", "torchlint.server") if self.entry == "module" else ("-m", "torchlint", "server")
        started = time.perf_counter()
        await self.client.start_io(sys.executable, *command, env=env, cwd=str(tmp))
        self._watch(self.client._server.stdout)  # type: ignore[union-attr]
        self.pid = self.client._server.pid  # type: ignore[union-attr]
        caps = t.ClientCapabilities(
            text_document=t.TextDocumentClientCapabilities(
                publish_diagnostics=t.PublishDiagnosticsClientCapabilities(related_information=True, version_support=True)
            ),
            window=t.WindowClientCapabilities(work_done_progress=True),
        )
        await self.client.initialize_async(t.InitializeParams(capabilities=caps, root_uri=tmp.as_uri(), initialization_options=options))
        decoded = time.perf_counter()
        self.client.initialized(t.InitializedParams())
        arrived = self.first_response if self.first_response is not None else decoded
        return (arrived - started) * 1000, (decoded - started) * 1000

    async def wait_for(self, uri: str, version: int, timeout: float = 300) -> float:
        deadline = time.perf_counter() + timeout
        while True:
            got = self.published.get(uri)
            if got is not None and got[0] == version:
                return self.bytes_in.get((uri, version), got[1])
            if time.perf_counter() > deadline:
                raise TimeoutError(f"no diagnostics for {uri} v{version}")
            self.arrived.clear()
            try:
                await asyncio.wait_for(self.arrived.wait(), 1)
            except asyncio.TimeoutError:
                pass

    def open(self, uri: str, text: str) -> float:
        sent = time.perf_counter()
        self.client.text_document_did_open(t.DidOpenTextDocumentParams(t.TextDocumentItem(uri, "python", 1, text)))
        return sent

    async def settle(self, timeout: float = 20) -> None:
        """Wait until the analysis processes are idle (the rest of the pool starts after the
        first lint and loads the engine then: that is not the edits' work)."""
        deadline = time.perf_counter() + timeout
        last = None
        while time.perf_counter() < deadline:
            now = (len(children(self.pid)), self.cpu_ms()[1])
            if now == last:
                return
            last = now
            await asyncio.sleep(0.3)

    def cpu_ms(self) -> tuple[float, float]:
        """CPU time so far of the server process, and of its analysis processes."""
        return cpu_ticks(self.pid) * TICK_MS, sum(cpu_ticks(p) for p in children(self.pid)) * TICK_MS

    async def stop(self) -> None:
        await self.client.shutdown_async(None)
        self.client.exit(None)
        await self.client.stop()


async def edits(session: Session, uri: str, text: str, n: int, warmup: int, pause_ms: int) -> tuple[list[float], float, float]:
    """Retype one number n times: latencies (ms) and CPU per edit (server, analysis processes)."""
    lines = text.splitlines(keepends=True)
    target = next(i for i, line in enumerate(lines) if "lr=0.001" in line)
    col = lines[target].index("0.001")
    latencies: list[float] = []
    cpu0 = (0.0, 0.0)
    for k in range(warmup + n):
        if k == warmup:
            await session.settle()
            cpu0 = session.cpu_ms()
        version = k + 2
        rng = t.Range(t.Position(target, col), t.Position(target, col + 5))
        sent = time.perf_counter()
        session.client.text_document_did_change(
            t.DidChangeTextDocumentParams(
                t.VersionedTextDocumentIdentifier(version=version, uri=uri),
                [t.TextDocumentContentChangePartial(range=rng, text=f"0.{k % 10}01"[:5])],
            )
        )
        got = await session.wait_for(uri, version)
        if k >= warmup:
            latencies.append((got - sent) * 1000)
        await asyncio.sleep(pause_ms / 1000)
    cpu1 = session.cpu_ms()
    # The pauses are idle time for both processes: CPU is the work the edits caused.
    return latencies, (cpu1[0] - cpu0[0]) / n, (cpu1[1] - cpu0[1]) / n


async def one_run(args: argparse.Namespace, name: str, text: str) -> dict[str, float]:
    tmp = Path(tempfile.mkdtemp(prefix="torchlint-bench-"))
    out: dict[str, float] = {}
    # Cold start and the edits without debounce.
    s = Session(args.root, args.entry)
    out["initialize"], out["initialize_decoded"] = await s.start(tmp, {"debounceMs": 0})
    # CPU figures hold on a loaded machine where wall times do not.
    out["initialize_cpu"] = s.cpu_ms()[0]
    uri = (tmp / f"{name}.py").as_uri()
    sent = s.open(uri, text)
    out["first"] = (await s.wait_for(uri, 1) - sent) * 1000
    out["first_cpu_server"], out["first_cpu_analysis"] = s.cpu_ms()
    out["first_cpu_server"] -= out["initialize_cpu"]
    out["findings"] = s.published[uri][2]
    lat, server_cpu, worker_cpu = await edits(s, uri, text, args.edits, args.warmup, args.pause_ms)
    out["p50"], out["p95"] = percentile(lat, 0.5), percentile(lat, 0.95)
    out["cpu_server"], out["cpu_analysis"] = server_cpu, worker_cpu
    await s.stop()
    # As a user types: the default settings, debounce included.
    s = Session(args.root, args.entry)
    await s.start(tmp, {})
    s.open(uri, text)
    await s.wait_for(uri, 1)
    lat, _, _ = await edits(s, uri, text, args.edits, args.warmup, args.pause_ms)
    out["typed_p50"], out["typed_p95"] = percentile(lat, 0.5), percentile(lat, 0.95)
    await s.stop()
    return out


async def memory(args: argparse.Namespace) -> tuple[float, float, int, float]:
    tmp = Path(tempfile.mkdtemp(prefix="torchlint-bench-"))
    s = Session(args.root, args.entry)
    await s.start(tmp, {})
    small = training_script(args.file_lines)
    uris = []
    opened = time.perf_counter()
    for n in range(args.files):
        u = (tmp / f"pkg{n // 50}" / f"module_{n}.py").as_uri()
        uris.append(u)
        s.open(u, small.replace("Net", f"Net{n}_"))
    for u in uris:
        await s.wait_for(u, 1, timeout=900)
    all_linted = time.perf_counter() - opened
    server_kb = rss_kb(s.pid)
    kids = children(s.pid)
    kids_kb = sum(rss_kb(p) for p in kids)
    await s.stop()
    return server_kb / 1024, (server_kb + kids_kb) / 1024, len(kids), all_linted


def interpreter_start(runs: int = 7) -> str:
    """What starting this interpreter costs, with and without its site-packages (ms, medians)."""

    def median_ms(*flags: str) -> float:
        times = []
        for _ in range(runs):
            t0 = time.perf_counter()
            subprocess.run([sys.executable, *flags, "-c", "pass"], check=True)
            times.append((time.perf_counter() - t0) * 1000)
        return statistics.median(times)

    return (
        f"interpreter {sys.executable}: `-c pass` {median_ms():.0f} ms, with -S (no site-packages, no .pth hooks) "
        f"{median_ms('-S'):.0f} ms, -I {median_ms('-I'):.0f} ms (medians of {runs})"
    )


async def run(args: argparse.Namespace) -> None:
    if not args.no_compile:
        # As pip install does; the figures are then the same with PYTHONDONTWRITEBYTECODE set or not.
        subprocess.run([sys.executable, "-m", "compileall", "-q", str(args.root / "torchlint")], check=True)
    files = {"light": training_script(args.lines), "heavy": heavy_script(args.lines)}
    if not args.no_compile:
        # ...and as a user's first start after the install does where bytecode may be written: the
        # dataclass and attrs methods of libcst, lsprotocol and the rules are kept compiled
        # (torchlint/codecache.py). This run is not counted.
        saved = os.environ.pop("PYTHONDONTWRITEBYTECODE", None)
        try:
            await one_run(args, "light", files["light"])
        finally:
            if saved is not None:
                os.environ["PYTHONDONTWRITEBYTECODE"] = saved
    results: dict[str, list[dict[str, float]]] = {name: [] for name in files}
    for r in range(args.runs):
        for name, text in files.items():
            results[name].append(await one_run(args, name, text))
            print(f"  run {r + 1}/{args.runs}, {name}: done", file=sys.stderr)

    def med(name: str, key: str) -> float:
        return statistics.median(x[key] for x in results[name])

    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(args.root), os.environ.get("PYTHONPATH")]))}

    # (From an empty directory, as the servers run: `-c` would put the current directory first.)
    where = subprocess.run([sys.executable, "-c", "import torchlint; print(torchlint.__file__)"], env=env, capture_output=True, text=True,
                           cwd=tempfile.mkdtemp(prefix="torchlint-bench-"))
    print(f"torchlint from {where.stdout.strip()} ({'sources compiled and run once first' if not args.no_compile else 'not compiled first'}; "
          f"PYTHONDONTWRITEBYTECODE={os.environ.get('PYTHONDONTWRITEBYTECODE', '')!r}), started as "
          f"`{'python -m torchlint.server' if args.entry == 'module' else 'python -m torchlint server'}`")
    print(interpreter_start())
    print(f"machine: {os.cpu_count()} cores, load average {os.getloadavg()[0]:.2f} (1 min); medians of {args.runs} runs, fresh server each")
    for name, text in files.items():
        print(f"{name} file: {text.count(chr(10))} lines, {int(med(name, 'findings'))} findings")
        print(
            f"  cold start: initialize answered {med(name, 'initialize'):.0f} ms after the process started (target <= 150; "
            f"{med(name, 'initialize_decoded'):.0f} ms once pygls' client had decoded it), "
            f"{med(name, 'initialize_cpu'):.0f} ms of CPU; first diagnostics {med(name, 'first'):.0f} ms after didOpen "
            f"(target <= 500), CPU since initialize: server {med(name, 'first_cpu_server'):.0f} ms, analysis process(es) "
            f"{med(name, 'first_cpu_analysis'):.0f} ms (all of their start-up)"
        )
        print(
            f"  edit, no debounce ({args.edits} edits/run): didChange -> publishDiagnostics p50 {med(name, 'p50'):.0f} ms, "
            f"p95 {med(name, 'p95'):.0f} ms (target p95 <= 100); CPU per edit: analysis processes "
            f"{med(name, 'cpu_analysis'):.0f} ms (target <= 30), server process {med(name, 'cpu_server'):.0f} ms"
        )
        print(f"  edit, default settings (debounce included): p50 {med(name, 'typed_p50'):.0f} ms, p95 {med(name, 'typed_p95'):.0f} ms")
    if args.files:
        server_mb, total_mb, kids, all_linted = await memory(args)
        print(
            f"memory after opening {args.files} files of {args.file_lines} lines (all linted in {all_linted:.1f} s): "
            f"server process {server_mb:.0f} MB RSS; with its {kids} analysis process(es) {total_mb:.0f} MB  (target: < 200 MB)"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, default=ROOT, help="the torchlint source tree to run (default: this checkout)")
    parser.add_argument("--runs", type=int, default=3, help="fresh servers per file; medians are printed (default 3)")
    parser.add_argument("--lines", type=int, default=1000, help="lines in the edited files (default 1000)")
    parser.add_argument("--edits", type=int, default=30, help="measured edits per run (default 30)")
    parser.add_argument("--warmup", type=int, default=3, help="unmeasured edits first (default 3)")
    parser.add_argument("--pause-ms", type=int, default=100, help="pause between edits (default 100)")
    parser.add_argument("--files", type=int, default=200, help="files opened for the memory figure (default 200; 0 skips it)")
    parser.add_argument("--file-lines", type=int, default=200, help="lines per file for the memory figure (default 200)")
    parser.add_argument("--entry", choices=("module", "cli"), default="module",
                        help="start the server as `python -m torchlint.server` (default) or as `python -m torchlint server` (what the `torchlint` command runs)")
    parser.add_argument("--no-compile", action="store_true", help="do not compile the measured tree to bytecode first")
    parser.add_argument("--write-files", type=Path, metavar="DIR",
                        help="only write the light and heavy files to DIR (light.py, heavy.py; see bench_analysis_start.py)")
    args = parser.parse_args()
    if args.write_files is not None:
        args.write_files.mkdir(parents=True, exist_ok=True)
        (args.write_files / "light.py").write_text(training_script(args.lines), encoding="utf-8")
        (args.write_files / "heavy.py").write_text(heavy_script(args.lines), encoding="utf-8")
        return
    asyncio.run(run(args))


if __name__ == "__main__":
    main()
