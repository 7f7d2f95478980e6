"""How quickly does the language server answer an edit, and how much memory does it hold?

Drives ``python -m torchlint.server`` over real LSP (stdio), as an editor does:

1. Latency: a 1,000-line PyTorch training script is opened; then, N times, one
   line is edited (an incremental ``didChange``) and the time until the
   ``publishDiagnostics`` for that version arrives is measured. The debounce
   delay (the server's ``debounceMs`` setting) is subtracted: what is left is
   the server's own work. For comparison, the in-process time of
   ``lint_source`` on the same text is printed (the analyzer's share).
2. Memory: 200 files are opened and, once all their diagnostics have arrived,
   the resident memory of the server process (and of its analysis processes)
   is read from /proc.

    python benchmarks/bench_server.py                # 50 edits, 200 files
    python benchmarks/bench_server.py --edits 200 --files 400 --debounce-ms 150

Targets (from the issue): p95 latency under 150 ms excluding the debounce;
memory under 200 MB.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
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


async def run(args: argparse.Namespace) -> None:
    client = LanguageClient("bench", "1")
    published: dict[str, tuple[int | None, float, int]] = {}
    arrived = asyncio.Event()

    @client.feature(t.TEXT_DOCUMENT_PUBLISH_DIAGNOSTICS)
    def on_publish(params: t.PublishDiagnosticsParams) -> None:
        published[params.uri] = (params.version, time.perf_counter(), len(params.diagnostics))
        arrived.set()

    @client.feature(t.WINDOW_LOG_MESSAGE)
    def on_log(params: t.LogMessageParams) -> None:
        pass

    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    await client.start_io(sys.executable, "-m", "torchlint.server", env=env)
    server_pid = client._server.pid  # type: ignore[union-attr]
    tmp = Path(tempfile.mkdtemp(prefix="torchlint-bench-"))
    # A push client with UTF-16 positions, like VS Code; no pull capability.
    caps = t.ClientCapabilities(
        text_document=t.TextDocumentClientCapabilities(
            publish_diagnostics=t.PublishDiagnosticsClientCapabilities(related_information=True, version_support=True)
        ),
        window=t.WindowClientCapabilities(work_done_progress=True),
    )
    await client.initialize_async(
        t.InitializeParams(
            capabilities=caps,
            root_uri=tmp.as_uri(),
            initialization_options={"debounceMs": args.debounce_ms},
        )
    )
    client.initialized(t.InitializedParams())

    async def wait_for(uri: str, version: int, timeout: float = 120) -> float:
        deadline = time.perf_counter() + timeout
        while True:
            got = published.get(uri)
            if got is not None and got[0] == version:
                return got[1]
            if time.perf_counter() > deadline:
                raise TimeoutError(f"no diagnostics for {uri} v{version}")
            arrived.clear()
            try:
                await asyncio.wait_for(arrived.wait(), 1)
            except asyncio.TimeoutError:
                pass

    # --- latency ---
    text = training_script(args.lines)
    uri = (tmp / "train.py").as_uri()
    client.text_document_did_open(t.DidOpenTextDocumentParams(t.TextDocumentItem(uri, "python", 1, text)))
    await wait_for(uri, 1)
    findings = published[uri][2]
    lines = text.splitlines(keepends=True)
    target = next(i for i, line in enumerate(lines) if "lr=0.001" in line)
    col = lines[target].index("0.001")
    version = 1

    async def measure(change_for: Callable[[int], t.TextDocumentContentChangePartial]) -> list[float]:
        nonlocal version
        out: list[float] = []
        for k in range(args.warmup + args.edits):
            version += 1
            sent = time.perf_counter()
            client.text_document_did_change(
                t.DidChangeTextDocumentParams(t.VersionedTextDocumentIdentifier(version=version, uri=uri), [change_for(k)])
            )
            got = await wait_for(uri, version)
            if k >= args.warmup:
                out.append((got - sent) * 1000 - args.debounce_ms)
            await asyncio.sleep(args.pause_ms / 1000)
        return out

    # Typing inside one statement: the value of lr= changes.
    def retype(k: int) -> t.TextDocumentContentChangePartial:
        rng = t.Range(t.Position(target, col), t.Position(target, col + 5))
        return t.TextDocumentContentChangePartial(range=rng, text=f"0.{k % 10}01"[:5])

    # A line added, then removed, near the top: every statement below moves.
    anchor = next(i for i, line in enumerate(lines) if line.startswith("transform = "))

    def insert_or_remove(k: int) -> t.TextDocumentContentChangePartial:
        if k % 2 == 0:
            return t.TextDocumentContentChangePartial(
                range=t.Range(t.Position(anchor, 0), t.Position(anchor, 0)), text="# a new comment line\n"
            )
        return t.TextDocumentContentChangePartial(range=t.Range(t.Position(anchor, 0), t.Position(anchor + 1, 0)), text="")

    latencies = await measure(retype)
    shifting = await measure(insert_or_remove)

    from torchlint.engine import LintOptions, lint_source
    from torchlint.incremental import ParseCache

    # The analyzer's share, in this process: a whole-file lint, and a lint
    # after a one-line edit with the parse cache the analysis processes keep.
    engine, engine_edit = [], []
    cached = LintOptions(parse_cache=ParseCache())
    edited = "".join(lines[:target] + [lines[target].replace("0.001", "0.002")] + lines[target + 1 :])
    lint_source(text, str(tmp / "train.py"), cached)
    for k in range(min(10, args.edits)):
        start = time.perf_counter()
        lint_source(text, str(tmp / "train.py"))
        engine.append((time.perf_counter() - start) * 1000)
        start = time.perf_counter()
        lint_source(edited if k % 2 == 0 else text, str(tmp / "train.py"), cached)
        engine_edit.append((time.perf_counter() - start) * 1000)

    # --- memory ---
    small = training_script(args.file_lines)
    uris = []
    for n in range(args.files):
        u = (tmp / f"pkg{n // 50}" / f"module_{n}.py").as_uri()
        uris.append(u)
        client.text_document_did_open(
            t.DidOpenTextDocumentParams(t.TextDocumentItem(u, "python", 1, small.replace("Net", f"Net{n}_")))
        )
    opened = time.perf_counter()
    for u in uris:
        await wait_for(u, 1, timeout=600)
    all_linted = time.perf_counter() - opened
    server_kb = rss_kb(server_pid)
    kids = children(server_pid)
    kids_kb = sum(rss_kb(p) for p in kids)

    await client.shutdown_async(None)
    client.exit(None)
    await client.stop()

    print(f"machine: {os.cpu_count()} cores, load average {os.getloadavg()[0]:.2f} (1 min)")
    print(f"file: {args.lines} lines, {len(text) / 1024:.1f} KiB, {findings} findings; debounce {args.debounce_ms} ms (subtracted)")
    print(
        f"didChange -> publishDiagnostics over {len(latencies)} edits: "
        f"p50 {percentile(latencies, 0.5):.0f} ms, p95 {percentile(latencies, 0.95):.0f} ms, "
        f"max {max(latencies):.0f} ms  (target: p95 < 150 ms)"
    )
    print(
        f"  a line inserted/removed near the top ({len(shifting)} edits): "
        f"p50 {percentile(shifting, 0.5):.0f} ms, p95 {percentile(shifting, 0.95):.0f} ms, max {max(shifting):.0f} ms"
    )
    print(
        f"  analyzer alone (lint_source in-process, same text): whole file {statistics.median(engine):.0f} ms; "
        f"after a one-line edit, with the parse cache: {statistics.median(engine_edit):.0f} ms; "
        f"server's own share of the p50: {percentile(latencies, 0.5) - statistics.median(engine_edit):.0f} ms"
    )
    print(
        f"memory after opening {args.files} files of {args.file_lines} lines (all linted in {all_linted:.1f} s): "
        f"server process {server_kb / 1024:.0f} MB RSS; with its {len(kids)} analysis process(es) "
        f"{(server_kb + kids_kb) / 1024:.0f} MB  (target: < 200 MB)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lines", type=int, default=1000, help="lines in the edited file (default 1000)")
    parser.add_argument("--edits", type=int, default=50, help="measured edits (default 50)")
    parser.add_argument("--warmup", type=int, default=3, help="unmeasured edits first (default 3)")
    parser.add_argument("--pause-ms", type=int, default=100, help="pause between edits (default 100)")
    parser.add_argument("--debounce-ms", type=int, default=150, help="the server's debounce, subtracted (default 150)")
    parser.add_argument("--files", type=int, default=200, help="files opened for the memory figure (default 200)")
    parser.add_argument("--file-lines", type=int, default=200, help="lines per file for the memory figure (default 200)")
    asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    main()
