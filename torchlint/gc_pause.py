"""No cyclic garbage collection while a syntax tree is built and walked.

A parse allocates a hundred thousand objects, so the collector runs dozens of
times and rescans every survivor: a third of a lint. The trees hold no cycles,
and the engine breaks those of its analyses when a lint ends (``engine._release``:
tests/test_release.py checks that nothing of a file is left to the collector), so
reference counting frees a file's objects; the collector, enabled again, finds
little to scan. Shared by the
engine and the documents layer (which builds a document's text before linting it).
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def gc_paused() -> Iterator[None]:
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()
