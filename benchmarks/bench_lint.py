"""How fast is torchlint on a large real tree, next to a bare libcst parse and TorchFix?

By default the tree is the installed ``torch`` package's own sources (found
without importing torch). Every measurement is a fresh process, as a user
runs it, so interpreter start-up and imports are included everywhere:

    python benchmarks/bench_lint.py                   # the whole torch tree, 3 runs each
    python benchmarks/bench_lint.py --limit 300       # an evenly spread sample of 300 files
    python benchmarks/bench_lint.py --path src/ --runs 5 --torchfix-runs 1
    python benchmarks/bench_lint.py --limit 200 --profile 25   # where torchlint's time goes
    python benchmarks/bench_lint.py --baseline 99b0291^ --skip bare1 --skip bare --skip warm   # before/after, same run

Prints the median wall time of each measurement, files/second and the ratios
(torchlint vs TorchFix throughput, torchlint vs the bare parse), and the CPU
time of torchlint next to ``ruff check --select ALL`` on the same files.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SKIP_DIRS = {"__pycache__", ".git", "build", "dist", ".torchlint_cache"}


def torch_tree() -> Path:
    spec = importlib.util.find_spec("torch")  # finds the package without importing it
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit("error: torch is not installed; pass --path")
    return Path(list(spec.submodule_search_locations)[0])


def python_files(root: Path) -> list[Path]:
    if root.is_file():
        return [root]
    out = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if d not in SKIP_DIRS)
        out.extend(Path(dirpath) / f for f in sorted(filenames) if f.endswith(".py"))
    return out


def sample(files: list[Path], limit: int | None) -> list[Path]:
    if not limit or limit >= len(files):
        return files
    step = len(files) / limit
    return [files[int(i * step)] for i in range(limit)]


def count_lines(files: list[Path]) -> int:
    return sum(p.read_bytes().count(b"\n") for p in files)


# --- the bare parse, run in its own process like everything else --------------------------


def _parse_chunk(paths: list[str]) -> int:
    import libcst

    failed = 0
    for p in paths:
        try:
            libcst.parse_module(Path(p).read_bytes().decode("utf-8", "replace"))
        except Exception:
            failed += 1
    return failed


def bare_parse_main(list_file: str, jobs: int) -> int:
    paths = Path(list_file).read_text().splitlines()
    if jobs <= 1:
        _parse_chunk(paths)
        return 0
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    # Same scheduling as torchlint's runner: biggest first, small chunks.
    paths.sort(key=lambda p: os.path.getsize(p), reverse=True)
    size = max(1, min(32, len(paths) // (jobs * 6)))
    chunks = [paths[i : i + size] for i in range(0, len(paths), size)]
    with ProcessPoolExecutor(jobs, mp_context=multiprocessing.get_context("fork")) as ex:
        list(ex.map(_parse_chunk, chunks))
    return 0


# --- measurements -------------------------------------------------------------------------


# CPU seconds (user + system, every process the command started) of the last timed() call, per run.
LAST_CPU: list[float] = []


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def timed(cmd: list[str], runs: int, env: dict, ok_codes=(0, 1)) -> list[float]:
    times = []
    LAST_CPU.clear()
    for _ in range(runs):
        t = time.perf_counter()
        cpu = _children_cpu()
        p = subprocess.run(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        times.append(time.perf_counter() - t)
        LAST_CPU.append(_children_cpu() - cpu)
        if p.returncode not in ok_codes:
            tail = (p.stderr or p.stdout).strip().splitlines()[-3:]
            raise SystemExit(f"error: {' '.join(cmd[:6])}... exited {p.returncode}: {' | '.join(tail)}")
    return times


def rule_codes() -> list[str]:
    sys.path.insert(0, str(ROOT))
    from torchlint.rules import all_rules

    return list(all_rules())


def profile(files: list[Path], top: int) -> None:
    """cProfile torchlint's engine on one core over the files (no cache, no pool)."""
    import cProfile
    import pstats

    sys.path.insert(0, str(ROOT))
    from torchlint.runner import Job, RunOptions, run

    jobs = [Job(str(p), str(p), "python", None) for p in files]
    prof = cProfile.Profile()
    prof.enable()
    run(jobs, RunOptions(jobs=1))
    prof.disable()
    stats = pstats.Stats(prof)
    print(f"\n# cProfile, one core, {len(files)} files: top {top} by own time")
    stats.sort_stats("tottime").print_stats(top)
    print(f"# top {top} by cumulative time")
    stats.sort_stats("cumulative").print_stats(top)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--path", type=Path, help="tree to lint (default: the installed torch package)")
    ap.add_argument("--limit", type=int, help="lint an evenly spread sample of N files")
    ap.add_argument("--runs", type=int, default=3, help="runs per measurement; the median is reported")
    ap.add_argument("--torchfix-runs", type=int, default=None, help="runs for TorchFix (slow; default: --runs)")
    ap.add_argument("--no-torchfix", action="store_true")
    ap.add_argument("--jobs", type=int, default=os.cpu_count() or 1, help="cores for the parallel measurements")
    ap.add_argument("--json", type=Path, help="also write the figures here")
    ap.add_argument("--profile", type=int, metavar="N", help="afterwards, cProfile torchlint on one core (top N)")
    ap.add_argument("--skip", action="append", default=[], help="skip a measurement: bare1, bare, torchlint, no-tl301, warm, ruff, pairs (alternated torchlint and ruff runs), torchfix")
    ap.add_argument(
        "--live",
        action="store_true",
        help="run the working tree's torchlint as it is edited (default: a snapshot copied at the start, so "
        "edits made meanwhile neither change the figures nor invalidate the warm cache)",
    )
    ap.add_argument("--baseline", metavar="REF", help="also measure torchlint as of this git commit (all rules, no cache), in the same run, and print the CPU ratio")
    ap.add_argument("--_bare-parse", dest="bare", nargs=2, metavar=("LIST", "JOBS"), help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.bare:
        return bare_parse_main(args.bare[0], int(args.bare[1]))

    root = args.path or torch_tree()
    files = sample(python_files(root), args.limit)
    if not files:
        raise SystemExit(f"error: no Python files under {root}")
    lines = count_lines(files)
    jobs = args.jobs
    print(f"tree: {root}")
    print(f"files: {len(files)}  lines: {lines}  cores used: {jobs}  runs: {args.runs}")

    tmp = Path(tempfile.mkdtemp(prefix="bench_lint."))
    code_root = ROOT
    if not args.live:
        code_root = tmp / "snapshot"
        shutil.copytree(ROOT / "torchlint", code_root / "torchlint", ignore=shutil.ignore_patterns("__pycache__"))
    env = {k: v for k, v in os.environ.items() if k not in ("FORCE_COLOR", "TORCHLINT_CACHE_DIR")}
    env["PYTHONPATH"] = str(code_root) + os.pathsep + env.get("PYTHONPATH", "")
    list_file = tmp / "files.txt"
    list_file.write_text("\n".join(str(p) for p in files) + "\n")
    targets = [str(root)] if not args.limit else [str(p) for p in files]
    # Every file, as the bare parse does: torch has one generated file over the default size limit.
    tl = [sys.executable, "-m", "torchlint", "check", "--exit-zero", "--silent", "--config", "max-file-size = '16MB'",
          "--jobs", str(jobs), *targets]
    codes = rule_codes()

    results: dict[str, float] = {}
    cpu: dict[str, float] = {}
    pairs: dict[str, list[float]] = {}  # peer -> CPU-time ratios of alternated runs

    def measure(key: str, label: str, cmd: list[str], runs: int, ok=(0, 1)) -> None:
        if key in args.skip:
            return
        times = timed(cmd, runs, env, ok)
        med = statistics.median(times)
        results[label] = med
        cpu[key] = statistics.median(LAST_CPU)
        spread = f"  (min {min(times):.2f}, max {max(times):.2f})" if len(times) > 1 else ""
        print(f"{label:<48} {med:8.2f} s {len(files) / med:9.1f} files/s  cpu {cpu[key]:7.2f} s{spread}", flush=True)

    me = [sys.executable, str(Path(__file__).resolve()), "--_bare-parse", str(list_file)]
    try:
        measure("bare1", "bare libcst.parse_module, 1 core", me + ["1"], args.runs, (0,))
        measure("bare", f"bare libcst.parse_module, {jobs} cores", me + [str(jobs)], args.runs, (0,))
        measure("torchlint", f"torchlint, all rules, {jobs} cores, no cache", tl + ["--no-cache"], args.runs)
        if args.baseline:
            # The same command with another commit's package first on the path.
            base_root = tmp / "baseline"
            base_root.mkdir()
            archive = subprocess.run(["git", "-C", str(ROOT), "archive", args.baseline, "torchlint"], stdout=subprocess.PIPE, check=True)
            subprocess.run(["tar", "-x", "-C", str(base_root)], input=archive.stdout, check=True)
            base_env = dict(env, PYTHONPATH=str(base_root) + os.pathsep + os.environ.get("PYTHONPATH", ""))
            times = timed(tl + ["--no-cache"], args.runs, base_env)
            results[f"torchlint at {args.baseline}"] = statistics.median(times)
            cpu["baseline"] = statistics.median(LAST_CPU)
            print(f"{'torchlint at ' + args.baseline + ', all rules, no cache':<48} {statistics.median(times):8.2f} s {len(files) / statistics.median(times):9.1f} files/s  cpu {cpu['baseline']:7.2f} s", flush=True)
        if "TL301" in codes:
            measure("no-tl301", f"torchlint, all rules but TL301, {jobs} cores", tl + ["--no-cache", "--ignore", "TL301"], args.runs)
        else:
            print("torchlint, all rules but TL301: TL301 does not exist yet (same as all rules)")
        cache_dir = tmp / "cache"
        if "warm" not in args.skip:
            timed(tl + ["--cache-dir", str(cache_dir)], 1, env)  # fill it
        measure("warm", "torchlint, warm cache", tl + ["--cache-dir", str(cache_dir)], args.runs)
        # ruff on the same files: the yardstick of issue #11 (torchlint <= 4x ruff's CPU time).
        ruff = shutil.which("ruff")
        if ruff:
            measure("ruff", "ruff check --select ALL, no cache", [ruff, "check", "--select", "ALL", "--no-cache", "--exit-zero",
                    "--quiet", "--no-respect-gitignore", *targets], args.runs, (0, 1, 2))
            if "pairs" not in args.skip and "torchlint" not in args.skip:
                # The same two commands again, alternated: on a machine whose speed drifts (other
                # tenants, clocks), a torchlint run and the ruff run right after it see the same
                # machine, and the median of the pairs' ratios is the steadier figure.
                ratios = []
                for _ in range(args.runs):
                    timed(tl + ["--no-cache"], 1, env)
                    mine = LAST_CPU[0]
                    timed([ruff, "check", "--select", "ALL", "--no-cache", "--exit-zero", "--quiet", "--no-respect-gitignore", *targets], 1, env, (0, 1, 2))
                    ratios.append(mine / LAST_CPU[0])
                pairs["ruff"] = ratios
        else:
            print("ruff: not installed (pip install ruff) - skipped")
        torchfix = shutil.which("torchfix")
        if torchfix and not args.no_torchfix:
            tf_runs = args.torchfix_runs or args.runs
            tf_targets = [str(root)] if not args.limit else [str(p) for p in files]
            measure("torchfix", f"torchfix --select ALL, {jobs} cores", [torchfix, "--select", "ALL", "-j", str(jobs), *tf_targets], tf_runs, (0, 1))
        elif not torchfix:
            print("torchfix: not installed (pip install torchfix) - skipped")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    lint = results.get(f"torchlint, all rules, {jobs} cores, no cache")
    bare = results.get(f"bare libcst.parse_module, {jobs} cores")
    tf = results.get(f"torchfix --select ALL, {jobs} cores")
    print()
    if lint and bare:
        print(f"torchlint time / bare parse time ({jobs} cores): {lint / bare:.2f}x  (target: <= 1.5x)")
    if "torchlint" in cpu and "baseline" in cpu:
        print(f"torchlint CPU time / torchlint at {args.baseline} CPU time: {cpu['torchlint'] / cpu['baseline']:.2f}x")
    if "torchlint" in cpu and "ruff" in cpu:
        print(f"torchlint CPU time / ruff --select ALL CPU time: {cpu['torchlint'] / cpu['ruff']:.2f}x  (target: <= 4x)")
    if pairs.get("ruff"):
        shown = ", ".join(f"{r:.2f}" for r in pairs["ruff"])
        print(f"the same, runs alternated: median of {len(pairs['ruff'])} pairs {statistics.median(pairs['ruff']):.2f}x  ({shown})  (target: <= 4x)")
    if lint and tf:
        print(f"torchlint throughput / torchfix throughput: {tf / lint:.1f}x")
    if args.json:
        args.json.write_text(json.dumps({"tree": str(root), "files": len(files), "lines": lines, "cores": jobs, "seconds": results, "cpu_seconds": cpu}, indent=2))
    if args.profile:
        profile(files, args.profile)
    return 0


if __name__ == "__main__":
    sys.exit(main())
