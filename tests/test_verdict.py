"""CPython's verdict (TL001, or too deep for the analyzer) is the same whether it compiles the text
or the pre-checks' tree of the text (engine.python_verdict takes the tree when one is held)."""

from __future__ import annotations

import builtins

import pytest

from torchlint import incremental
from torchlint.engine import ANALYSIS_RECURSION_LIMIT, TooDeep, python_verdict

CASES = [
    "x = 1\n",
    "return 1\n",  # the compiler's error, not the parser's
    "def f():\n    nonlocal x\n",  # the symbol table's
    "for x in y:\n    pass\nbreak\n",
    "await f()\n",
    "def f(a, a):\n    pass\n",
    "from __future__ import annotations\nx: int = 1\n",
    "import os\nfrom __future__ import annotations\n",  # a late future import
    "def f():\n    from os import *\n",
    "def g():\n    yield 1\n    return 2\nasync def h():\n    yield 1\n    return 2\n",
    "match x:\n    case a:\n        pass\n    case b:\n        pass\n",
    "f(" + "[" * 120 + "]" * 120 + ")\n",
    "x = " + "(" * 190 + "1" + ")" * 190 + "\n",  # deep, but not too deep for Python
    "x = " + "-" * (3 * ANALYSIS_RECURSION_LIMIT + 30) + "1\n",  # too deep for the analyzer
]


def _verdict(source: str):
    try:
        found = python_verdict(source, "f.py")
    except TooDeep:
        return "too deep"
    return None if found is None else (found.message, found.range)


@pytest.mark.parametrize("source", CASES)
def test_the_held_tree_gives_the_texts_verdict(source: str) -> None:
    plain = _verdict(source)
    try:
        incremental.python_ast(source, keep=True)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        pytest.skip("the text does not parse: no tree is held")
    try:
        assert _verdict(source) == plain
    finally:
        incremental.python_ast(source)  # let it go


def test_a_held_tree_is_compiled_instead_of_the_text(monkeypatch: pytest.MonkeyPatch) -> None:
    source = "import torch\nx = torch.zeros(3)\n"
    compiled: list[type] = []
    real = builtins.compile

    def spy(what, *args, **kwargs):
        compiled.append(type(what))
        return real(what, *args, **kwargs)

    incremental.python_ast(source, keep=True)
    monkeypatch.setattr(builtins, "compile", spy)
    try:
        assert python_verdict(source, "f.py") is None
    finally:
        incremental.python_ast(source)
    assert compiled and str not in compiled
