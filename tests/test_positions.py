"""The fast per-statement positions must equal libcst's whole-module PositionProvider."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import libcst as cst
import pytest

from torchlint.positions import full_positions, positions_for
from torchlint.walk import walk

from conftest import FIXTURES, ROOT


class _Indexer(cst.CSTVisitor):
    """Records the top-level index of every node, the way the engine's dispatcher does."""

    def __init__(self) -> None:
        self.index: dict[int, int] = {}
        self.nodes: list[cst.CSTNode] = []
        self.depth, self.top = 0, -1

    def on_visit(self, node: cst.CSTNode) -> bool:
        if self.depth == 1 and isinstance(node, cst.BaseStatement):
            self.top += 1
        self.index[id(node)] = self.top if self.depth else -1
        self.nodes.append(node)
        self.depth += 1
        return True

    def on_leave(self, original_node: cst.CSTNode) -> None:
        self.depth -= 1


TRICKY = [
    "# header comment\n\nimport torch\n\n\n@decorator\n# between\n@other(1)\ndef f():\n    pass\n",
    "if x:\n    a = 1\n    # footer comment of the block\n# leading comment of b\nb = 2; c = 3\n",
    "class A:\n    x = 1\n\n\n    # dangling\n\n\ndef g(a,\n      b):\n    return (a +\n            b)\n",
    "x = '''multi\nline'''\ny = 1 \\\n    + 2\n",
    "try:\n    pass\nexcept E:\n    pass\nelse:\n    pass\nfinally:\n    pass\nz = 1",
]


# Windows and old-Mac line ends: newlines are counted as libcst counts them, token by token.
# (Not in TRICKY: libcst drops a lone CR ending a file, so such a text does not round-trip.)
LINE_ENDS = [
    "import torch\r\n\r\ndef f(x):\r\n    s = '''a\r\nb'''\r\n    return (x +\r\n            1)\r\n",
    "x = 1\ry = (2 +\r     3)\rdef g():\r    return x\r",
    "a = 1\r\nb = '''mixed\rends\n'''\nc = [a,\r\n     b]\n",
]


def _sources():
    for i, src in enumerate(TRICKY):
        yield pytest.param(src, id=f"tricky-{i}")
    for i, src in enumerate(LINE_ENDS):
        yield pytest.param(src, id=f"line-ends-{i}")
    for path in sorted(FIXTURES.rglob("*.py"))[:40]:
        yield pytest.param(path.read_text(encoding="utf-8"), id=str(path.relative_to(ROOT)))
    spec = importlib.util.find_spec("torch")
    if spec is not None and spec.origin:
        torch_dir = Path(spec.origin).parent
        for rel in ["nn/modules/conv.py", "optim/sgd.py", "nn/functional.py", "utils/data/dataloader.py"]:
            if (torch_dir / rel).exists():
                yield pytest.param((torch_dir / rel).read_text(encoding="utf-8"), id=f"torch/{rel}")


@pytest.mark.slow
@pytest.mark.parametrize("source", list(_sources()))
def test_fast_positions_equal_full_provider(source, monkeypatch):
    module = cst.parse_module(source)
    indexer = _Indexer()
    module.visit(indexer)
    full = full_positions(module)

    def no_fallback(module):
        raise AssertionError("fell back to the whole-module provider")

    monkeypatch.setattr("torchlint.positions.full_positions", no_fallback)
    # Every node inside a statement (the module itself and its header comments
    # legitimately take the slow path): the fast path must agree on all of them.
    nodes = [n for n in indexer.nodes if indexer.index[id(n)] >= 0]
    fast = positions_for(module, source, nodes, indexer.index)
    mismatches = [(type(n).__name__, full[n], fast[n]) for n in nodes if n in full and fast.get(n) != full[n]]
    assert mismatches == []


@pytest.mark.parametrize("source", [pytest.param(s, id=f"tricky-{i}") for i, s in enumerate(TRICKY)])
def test_nodes_the_traversal_has_not_reached_are_located_without_the_whole_module(source, monkeypatch):
    """A rule may ask, while the traversal is in one statement, where a node further on is (a
    receiver it has not visited yet, a site the program model names): only the index so far exists."""
    module = cst.parse_module(source)
    indexer = _Indexer()
    module.visit(indexer)
    full = full_positions(module)
    seen: set[int] = set()  # the nodes rules are shown (the engine's traversal skips white space)
    walk(module, lambda n: seen.add(id(n)), lambda n: None)
    nodes = [n for n in indexer.nodes if indexer.index[id(n)] >= 0 and id(n) in seen]
    first_statement = {k: v for k, v in indexer.index.items() if v <= 0}

    def no_fallback(module):
        raise AssertionError("fell back to the whole-module provider")

    monkeypatch.setattr("torchlint.positions.full_positions", no_fallback)
    fast = positions_for(module, source, nodes, first_statement)
    assert [(type(n).__name__, fast.get(n)) for n in nodes if n in full] == [(type(n).__name__, full[n]) for n in nodes if n in full]
