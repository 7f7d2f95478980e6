"""A lint leaves no cycle that holds its file's trees.

The engine pauses the cyclic collector while it lints. Whatever of a file's
analyses is kept alive by a reference cycle (the program model naming itself
through its facts, a scope and its function naming each other, a recursive
closure) outlives the lint until the collector runs, and the collector then
scans every object of the file's trees to free them: most of the CPU of the
collections, and memory held between files. These tests lint the bundled
fixtures (every rule, the model, the shape analysis) and ask the collector what
it would free.
"""

from __future__ import annotations

import ast
import gc
from pathlib import Path

import libcst as cst
import pytest

from torchlint.engine import LintOptions, lint_source
from torchlint.runner import lint_document_text

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = sorted((ROOT / "fixtures").rglob("*.py"))
NOTEBOOKS = sorted((ROOT / "fixtures").rglob("*.ipynb"))


def _cyclic_garbage(run) -> list[object]:
    """The objects that ``run()`` leaves for the cyclic collector."""
    gc.collect()
    was = gc.isenabled()
    gc.disable()
    try:
        run()
        gc.set_debug(gc.DEBUG_SAVEALL)
        gc.collect()
        found = list(gc.garbage)
    finally:
        gc.set_debug(0)
        gc.garbage.clear()
        if was:
            gc.enable()
    return found


def _held_trees(garbage: list[object]) -> list[str]:
    """What of the garbage belongs to a file's trees or its analyses (not a stray closure of the
    standard library, such as ``ast.literal_eval``'s, that libcst calls for string values)."""
    out = []
    for obj in garbage:
        kind = type(obj)
        if isinstance(obj, (cst.CSTNode, ast.AST)) or kind.__module__.startswith("torchlint."):
            out.append(f"{kind.__module__}.{kind.__qualname__}")
    return out


def test_the_fixtures_leave_no_tree_to_the_collector() -> None:
    assert len(FIXTURES) > 100
    options = LintOptions()
    texts = [(str(p), p.read_text(encoding="utf-8")) for p in FIXTURES]
    lint_source(texts[0][1], texts[0][0], options)  # imports, the rule registry, the knowledge base

    def run() -> None:
        for path, text in texts:
            lint_source(text, path, options)

    held = _held_trees(_cyclic_garbage(run))
    assert held == [], f"{len(held)} objects of linted files wait for the cyclic collector, e.g. {sorted(set(held))[:8]}"


@pytest.mark.parametrize("path", NOTEBOOKS[:4], ids=lambda p: p.name)
def test_a_notebook_leaves_no_tree_to_the_collector(path: Path) -> None:
    text = path.read_text(encoding="utf-8")
    lint_document_text(text, str(path), "notebook")
    held = _held_trees(_cyclic_garbage(lambda: lint_document_text(text, str(path), "notebook")))
    assert held == [], sorted(set(held))[:8]


def test_the_check_sees_a_cycle() -> None:
    """The check itself: a tree held by a cycle is found."""
    def run() -> None:
        box: dict = {"tree": cst.parse_module("x = 1\n").body[0]}
        box["self"] = box

    assert "libcst._nodes.statement.SimpleStatementLine" in _held_trees(_cyclic_garbage(run))
