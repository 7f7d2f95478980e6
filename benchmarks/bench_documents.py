"""Notebook linting costs what linting the same code as a .py file costs, plus decoding the JSON.

Each sample Python file is turned into a notebook (a cell per top-level statement group, a
Markdown cell between code cells, outputs and metadata as Jupyter writes them), then timed:

- ``py``: ``lint_source`` on the Python text (all rules, no cache);
- ``json``: ``json.loads`` of the notebook;
- ``notebook``: linting the notebook (decode, cells to one Document, lint, map back).

Prints the median of several runs of the whole sample (CPU time) and the ratio notebook / (py + json).

    python benchmarks/bench_documents.py                 # torchlint's own sources (whole modules, as notebooks are)
    python benchmarks/bench_documents.py --path src/ --runs 5
    python benchmarks/bench_documents.py --notebooks tutorials/   # real notebooks against their code as .py
"""

from __future__ import annotations

import argparse
import ast
import json
import statistics
import sys
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from torchlint import documents  # noqa: E402
from torchlint.engine import LintOptions, lint_source  # noqa: E402
from torchlint.rules import default_codes  # noqa: E402
from torchlint.runner import lint_text  # noqa: E402
from torchlint.sources import SourceError  # noqa: E402


def as_notebook(source: str) -> str:
    """The file as a notebook: cells cut at top-level statements, about 15 lines each."""
    tree = ast.parse(source)
    lines = source.splitlines(keepends=True)
    cuts = [0]
    for stmt in tree.body:
        start = min([stmt.lineno] + [d.lineno for d in getattr(stmt, "decorator_list", [])]) - 1
        if start - cuts[-1] >= 15:
            cuts.append(start)
    cuts.append(len(lines))
    cells = []
    for i, (a, b) in enumerate(zip(cuts, cuts[1:])):
        cells.append({"cell_type": "markdown", "id": f"m{i}", "metadata": {}, "source": [f"## Step {i}\n", "Some prose."]})
        src = lines[a:b]
        if src:
            src[-1] = src[-1].rstrip("\n")
        cells.append(
            {
                "cell_type": "code",
                "execution_count": i + 1,
                "id": f"c{i}",
                "metadata": {},
                "outputs": [{"name": "stdout", "output_type": "stream", "text": ["ok\n"] * 5}],
                "source": src,
            }
        )
    nb = {"cells": cells, "metadata": {"kernelspec": {"language": "python", "name": "python3"}}, "nbformat": 4, "nbformat_minor": 5}
    return json.dumps(nb, indent=1, ensure_ascii=False) + "\n"


def report(totals: list[list[float]]) -> None:
    py, decode, notebook, notebook_all = (statistics.median(r[i] for r in totals) for i in range(4))
    ratios = sorted(r[2] / (r[0] + r[1]) for r in totals)
    print(f"  .py lint        {py * 1000:8.1f} ms")
    print(f"  JSON decode     {decode * 1000:8.1f} ms")
    print(
        f"  notebook lint   {notebook * 1000:8.1f} ms  ({notebook / (py + decode):.3f}x of .py lint + JSON decode, the same "
        f"rules; per run {ratios[0]:.3f}x to {ratios[-1]:.3f}x)"
    )
    print(f"  + TL002         {notebook_all * 1000:8.1f} ms  ({notebook_all / (py + decode):.3f}x; TL002 runs on documents only)")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--path", action="append", help="directories or files of Python code (default: torchlint/)")
    p.add_argument("--runs", type=int, default=8, help="runs (a multiple of 4: each way first as often)")
    p.add_argument("--limit", type=int, default=120, help="at most this many files")
    p.add_argument(
        "--notebooks",
        action="append",
        help="directories of real notebooks instead: each is compared with its code cells as one .py file "
        "(the Python text torchlint lints, IPython lines made Python, as jupytext or nbconvert would export it)",
    )
    args = p.parse_args()
    samples = []
    if args.notebooks:
        for f in sorted(f for d in map(Path, args.notebooks) for f in ([d] if d.is_file() else d.rglob("*.ipynb")))[: args.limit]:
            raw = f.read_text(encoding="utf-8")
            try:
                doc = documents.build(raw, str(f), "notebook")
            except SourceError:
                continue
            if doc.text.strip():
                # (an exercise's cells that do not parse: its .py text has them blanked already)
                samples.append((doc.text, raw, any(c.error is not None or c.state == "broken" for c in doc.chunks)))
    else:
        paths = [Path(x) for x in (args.path or [ROOT / "torchlint"])]
        for f in sorted(f for d in paths for f in ([d] if d.is_file() else d.rglob("*.py")))[: args.limit]:
            text = f.read_text(encoding="utf-8")
            try:
                samples.append((text, as_notebook(text), False))
            except SyntaxError:
                continue
    lines = sum(t.count("\n") for t, _, _ in samples)
    options = LintOptions()

    def once(fn) -> float:
        start = time.process_time()
        fn()
        return time.process_time() - start

    # Each run times every file in each way, one after the other (so that a change of load on a
    # shared machine falls on all four alike), and sums them; the figures are the medians of the
    # runs. CPU time of this process (all of it is one thread's work) rather than wall time.
    # Whichever way comes first on a file is measured faster or slower than the same work later on
    # (a change of about 3% either way, from the state the work before leaves: caches, the
    # collector's counts), so the order turns from run to run: over a multiple of four runs each
    # way stands in each place alike.
    lint_text(samples[0][1], "warm.ipynb", "notebook", None)  # imports and the rule registry
    same = default_codes() - {"TL002"}  # the rules a .py file gets (TL002 runs on documents only)
    ways = [
        lambda text, nb: lint_source(text, "f.py", options),
        lambda text, nb: json.loads(nb),
        lambda text, nb: lint_text(nb, "f.ipynb", "notebook", same),
        lambda text, nb: lint_text(nb, "f.ipynb", "notebook", None),
    ]
    totals = []  # per run: the four ways' totals, for all files and for each group
    for r in range(args.runs):
        run = {key: [0.0, 0.0, 0.0, 0.0] for key in ("all", False, True)}
        order = [(r + k) % 4 for k in range(4)]
        for text, nb, broken in samples:
            for i in order:
                spent = once(lambda: ways[i](text, nb))
                run["all"][i] += spent
                run[broken][i] += spent
        totals.append(run)
    print(f"{len(samples)} files, {lines} lines, median of {args.runs} runs (CPU time)")
    report([r["all"] for r in totals])
    groups = Counter(broken for _, _, broken in samples)
    if groups[True] and groups[False]:
        print(f"{groups[False]} files whose every code cell parses:")
        report([r[False] for r in totals])
        print(f"{groups[True]} files with cells that do not parse (their .py text has them blanked; the notebook's lint finds them):")
        report([r[True] for r in totals])
    return 0


if __name__ == "__main__":
    sys.exit(main())
