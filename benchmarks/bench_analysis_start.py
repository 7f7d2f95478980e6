"""What a fresh analysis process of the language server does before its first report.

Loads what an analysis process loads (the engine, the rules, the knowledge base:
``torchlint.server.child.preload``, or the rule registry alone for a torchlint
from before it existed) and lints FILE whole, as the first ``didOpen`` is linted,
then exits. Run it as a process of its own, timed or counted::

    python benchmarks/bench_analysis_start.py FILE                    # prints its CPU time
    python benchmarks/bench_analysis_start.py FILE --root /other/checkout
    valgrind --tool=callgrind --callgrind-out-file=/dev/null \\
        python benchmarks/bench_analysis_start.py FILE                # instructions: no other job changes them

``benchmarks/bench_server.py`` writes the light and heavy 1,000-line files it
uses with ``--write-files DIR``.
"""

from __future__ import annotations

import argparse
import gc
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("file", type=Path)
    parser.add_argument("--root", type=Path, default=ROOT, help="the torchlint source tree to run (default: this checkout)")
    args = parser.parse_args()
    sys.path.insert(0, str(args.root))
    import importlib.util

    has_child = importlib.util.find_spec("torchlint.server.child") is not None
    if has_child:
        gc.disable()  # as child_main does while the process loads
    from torchlint.config import resolved
    from torchlint.engine import LintOptions
    from torchlint.incremental import ParseCache
    from torchlint.slices import IncrementalLinter

    if has_child:
        from torchlint.server.child import preload

        preload()
        gc.freeze()
        gc.enable()
    else:
        from torchlint.rules import all_rules

        all_rules()
    path = str(args.file.resolve())
    source = args.file.read_text(encoding="utf-8")
    cache = ParseCache()
    options = LintOptions(codes=resolved(None), extra_rules=(), parse_cache=cache)
    cache.begin(path)
    report = IncrementalLinter().lint(source, path, options)
    cache.end()
    print(f"{len(report.findings)} findings; {time.process_time() * 1000:.0f} ms of CPU since the process started "
          f"(torchlint from {sys.modules['torchlint'].__file__})")


if __name__ == "__main__":
    main()
