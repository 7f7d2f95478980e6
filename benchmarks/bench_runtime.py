"""Cold versus warm cost of confirming one finding in the sandbox.

    python benchmarks/bench_runtime.py [--cold-runs 5] [--warm-runs 20]

"Cold" is :func:`run_snippet`: a new sandbox, a new Python, ``import torch``.
"Warm" is :meth:`SandboxWorker.run` on a worker that has torch imported: one
fork per snippet. Each figure is the median wall time per snippet as the
caller sees it.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from torchlint.runtime.sandbox import SandboxWorker, detect_isolation, run_snippet  # noqa: E402

# What a confirmation looks like: a small model with the bug the linter
# found, run once on a fake batch.
SHAPE_BUG = """
import torch, torch.nn as nn, torch.nn.functional as F
class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 6, 5)
        self.pool = nn.MaxPool2d(2, 2)
        self.conv2 = nn.Conv2d(6, 16, 5)
        self.fc1 = nn.Linear(400, 120)
        self.fc2 = nn.Linear(120, 10)
    def forward(self, x):
        x = self.pool(F.relu(self.conv1(x)))
        x = self.pool(F.relu(self.conv2(x)))
        x = x.view(-1, 256)
        return self.fc2(F.relu(self.fc1(x)))
Net()(torch.randn(4, 3, 28, 28))
"""

DEVICE_BUG = """
import torch, torch.nn as nn
device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
model = nn.Sequential(nn.Flatten(), nn.Linear(784, 64), nn.ReLU(), nn.Linear(64, 10)).to(device)
images, labels = torch.randn(8, 1, 28, 28), torch.randint(0, 10, (8,))
loss = nn.functional.cross_entropy(model(images), labels)
"""

CASES = {
    "shape bug (RuntimeError)": (SHAPE_BUG, False),
    "device bug (simulated cuda)": (DEVICE_BUG, True),
}


def _summary(times: list[float]) -> str:
    return (
        f"median {statistics.median(times) * 1000:8.1f} ms   "
        f"min {min(times) * 1000:8.1f} ms   max {max(times) * 1000:8.1f} ms   (n={len(times)})"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cold-runs", type=int, default=5)
    parser.add_argument("--warm-runs", type=int, default=20)
    parser.add_argument("--isolation", default="auto", choices=["auto", "bwrap", "unshare", "none"])
    args = parser.parse_args()

    info = detect_isolation(args.isolation)
    print(f"isolation: {info.kind}")
    for warning in info.warnings:
        print(f"  warning: {warning}")

    started = time.monotonic()
    worker = SandboxWorker(isolation=args.isolation)
    worker.start()
    print(f"warm worker start-up (torch preloaded): {(time.monotonic() - started) * 1000:.0f} ms")
    print(f"torch {worker.hello.get('torch')}, python {worker.hello.get('python')}\n")

    with worker:
        for name, (code, simulate) in CASES.items():
            cold, warm = [], []
            statuses = set()
            for _ in range(args.cold_runs):
                result = run_snippet(code, simulate_cuda=simulate, isolation=args.isolation)
                statuses.add((result.status, result.exc_type))
                cold.append(result.duration_s)
            for _ in range(args.warm_runs):
                result = worker.run(code, simulate_cuda=simulate)
                statuses.add((result.status, result.exc_type))
                warm.append(result.duration_s)
            print(f"{name}: outcome {sorted(statuses)}")
            print(f"  cold  {_summary(cold)}")
            print(f"  warm  {_summary(warm)}")
            print(f"  warm is {statistics.median(cold) / statistics.median(warm):.0f}x faster\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
