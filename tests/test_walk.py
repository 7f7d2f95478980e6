"""torchlint.walk: the fast ``children`` equals libcst's, node for node, on real code."""

from __future__ import annotations

import inspect
import re
from pathlib import Path

import libcst as cst
import pytest

from torchlint import walk as fast

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"
NODE_TYPES = [
    kind
    for kind in vars(cst).values()
    if isinstance(kind, type) and issubclass(kind, cst.CSTNode) and not inspect.isabstract(kind)
]


@pytest.mark.parametrize("kind", NODE_TYPES, ids=lambda k: k.__name__)
def test_conditional_visits_are_read_from_the_bytecode_as_from_the_source(kind: type) -> None:
    # The definition: a visit whose source says `if` may skip a field, so its order is not fixed.
    source = inspect.getsource(kind._visit_and_replace_children)
    assert fast._branches(kind._visit_and_replace_children.__code__) == bool(re.search(r"\bif\b", source))


def test_branches_sees_conditions_in_nested_code() -> None:
    def plain(x):
        return [x, x]

    def nested(xs):
        return [x for x in xs if x]

    def either(x):
        return x or None

    assert not fast._branches(plain.__code__)
    assert fast._branches(nested.__code__)
    assert fast._branches(either.__code__)


def _python_sources() -> list[Path]:
    return sorted(FIXTURES.rglob("*.py"))[:40] + [Path(fast.__file__), Path(cst.__file__).parent / "_nodes" / "statement.py"]


@pytest.mark.parametrize("path", _python_sources(), ids=lambda p: p.name)
def test_children_equal_libcsts(path: Path) -> None:
    try:
        module = cst.parse_module(path.read_text(encoding="utf-8"))
    except cst.ParserSyntaxError:
        pytest.skip("not parsable by libcst")
    stack: list[cst.CSTNode] = [module]
    seen = 0
    while stack:
        node = stack.pop()
        expected = list(node.children)
        got = list(fast.children(node))
        assert [id(n) for n in got] == [id(n) for n in expected], type(node).__name__
        stack.extend(expected)
        seen += 1
    assert seen > 10
