"""Re-parsing only changed statements must give exactly what a whole-file lint gives."""

from __future__ import annotations

import ast
import importlib.util
import random
from pathlib import Path

import pytest

from torchlint.engine import LintOptions, lint_source
from torchlint.incremental import ParseCache, split_statements
from torchlint.sources import python_lines

from conftest import FIXTURES, ROOT
from test_positions import TRICKY as POSITION_TRICKY

NEXT_TWICE = "it = iter(loader)\nbatch = it.next()\nbatch = it.next()\n"

# The positions tests' tricky layouts, and more that cutting a file into statements must survive.
TRICKY = POSITION_TRICKY + [
    "x = 1\r\ny = 2\r\nif x:\r\n    y = 3\r\n",
    "x = 1\ny = 2\r\nz = 3\n",  # mixed line breaks
    "def f():\n  return 1\ndef g():\n    return 2\n",  # mixed indentation
    "def f():\n\treturn 1\nclass C:\n\tdef m(self):\n\t\tpass\n",
    "if a: pass\nelif b:\n    pass\nelse: pass\nwhile x:\n    break\nelse:\n    pass\n",
    "x = 1\n\n\n# trailing comment\n\n",
    "#!/usr/bin/env python\n# -*- coding: utf-8 -*-\n\"\"\"Doc.\"\"\"\n",
    "async def f():\n    async with a as b:\n        await b\n\n@d\nclass K: pass\n",
    "match x:\n    case 1:\n        pass\n    case _:\n        pass\ny = 1\n",
    "match x:\n  case 1:\n    pass\ndef f():\n    return 1\n",  # the first indent is a match's
    "if a: pass\nelse:\n  y = 1\ndef f():\n    return 1\n",
    "x = 1;\ny = 2 ; z = 3 # c\n",
    "x = 1\n\x0c\ny = 2\n",
    "s = 'a\\\nb'\nt = 1\n",
    "   \n\nx = 1\n",
    "",
    "# only a comment\n",
    "import torch\n" + NEXT_TWICE,
    NEXT_TWICE + NEXT_TWICE,  # repeated statements, each with its own finding
]


def _key(report):
    return [(f.code, f.range, f.message, f.fix, f.related, f.data) for f in report.findings], report.errors


def _sources():
    for i, src in enumerate(TRICKY):
        yield pytest.param(src, id=f"tricky-{i}")
    for path in sorted(FIXTURES.rglob("*.py")):
        yield pytest.param(path.read_text(encoding="utf-8"), id=str(path.relative_to(ROOT)))
    spec = importlib.util.find_spec("torch")
    if spec is not None and spec.origin:
        torch_dir = Path(spec.origin).parent
        for rel in ["nn/modules/conv.py", "optim/sgd.py", "utils/data/dataloader.py"]:
            if (torch_dir / rel).exists():
                yield pytest.param((torch_dir / rel).read_text(encoding="utf-8"), id=f"torch/{rel}")


@pytest.mark.parametrize("source", list(_sources()))
def test_reassembled_module_has_the_source_text_and_the_same_findings(source):
    cache = ParseCache()
    try:
        tree = ast.parse(source)
    except SyntaxError:
        tree = None
    built = cache.parse(source, tree) if tree is not None else None
    if built is not None:
        module, starts = built
        assert module.code == source
        assert len(starts) == len(module.body)
    whole = lint_source(source, "f.py")
    options = LintOptions(parse_cache=cache)
    assert _key(lint_source(source, "f.py", options)) == _key(whole)
    # Second time round every statement comes from the cache, positions too.
    assert _key(lint_source(source, "f.py", options)) == _key(whole)


def test_repeated_statements_get_their_own_findings():
    options = LintOptions(parse_cache=ParseCache())
    for _ in range(2):
        report = lint_source(NEXT_TWICE + NEXT_TWICE, "f.py", options)
        assert [(f.code, f.range.line) for f in report.findings] == [
            ("TL201", 2), ("TL201", 3), ("TL201", 5), ("TL201", 6)
        ]


def test_an_edit_reparses_only_the_edited_statement():
    source = (FIXTURES / "tl101_missing_zero_grad").glob("flagged_*.py").__next__().read_text(encoding="utf-8")
    cache = ParseCache()
    options = LintOptions(parse_cache=cache)
    lint_source(source, "f.py", options)
    pieces = len(split_statements(source, ast.parse(source)))
    assert pieces > 3 and cache.misses == pieces
    lines = python_lines(source, keepends=True)
    last = len(lines) - 1
    edited = "".join(lines[:last]) + lines[last].rstrip("\n") + "  # edited\n"
    before = cache.misses
    report = lint_source(edited, "f.py", options)
    assert cache.misses == before + 1
    assert _key(report) == _key(lint_source(edited, "f.py"))


def _random_edit(rng: random.Random, source: str) -> str:
    lines = python_lines(source, keepends=True) or ["\n"]
    i = rng.randrange(len(lines))
    kind = rng.randrange(6)
    if kind == 0:  # delete a line
        del lines[i]
    elif kind == 1:  # duplicate a line (often changes indentation structure)
        lines.insert(i, lines[i])
    elif kind == 2:  # blank line or comment between statements
        lines.insert(i, rng.choice(["\n", "# note\n", "    # indented note\n"]))
    elif kind == 3:  # type a character somewhere (half-typed code)
        line = lines[i]
        j = rng.randrange(len(line) + 1)
        lines[i] = line[:j] + rng.choice(["(", ")", ":", "x", " ", ".", "'"]) + line[j:]
    elif kind == 4:  # delete a character
        line = lines[i]
        if line:
            j = rng.randrange(len(line))
            lines[i] = line[:j] + line[j + 1 :]
    else:  # move a line
        line = lines.pop(i)
        lines.insert(rng.randrange(len(lines) + 1), line)
    return "".join(lines)


@pytest.mark.slow
@pytest.mark.parametrize(
    "fixture",
    sorted(p.relative_to(FIXTURES).as_posix() for p in FIXTURES.rglob("flagged_*.py"))[::3],
)
def test_random_edit_sequences_agree_with_whole_file_lints(fixture):
    rng = random.Random(fixture)
    source = (FIXTURES / fixture).read_text(encoding="utf-8")
    options = LintOptions(parse_cache=ParseCache(max_chars=20_000))
    for _ in range(25):
        source = _random_edit(rng, source)
        assert _key(lint_source(source, "f.py", options)) == _key(lint_source(source, "f.py")), source


@pytest.mark.slow
def test_a_small_cache_evicts_and_stays_correct():
    sources = [p.read_text(encoding="utf-8") for p in sorted(FIXTURES.rglob("*.py"))[:30]]
    cache = ParseCache(max_chars=3000)
    options = LintOptions(parse_cache=cache)
    for source in sources + sources:
        assert _key(lint_source(source, "f.py", options)) == _key(lint_source(source, "f.py"))
    assert cache.chars <= 3000 or len(cache._pieces) == 1


def test_a_file_too_large_for_the_cache_is_parsed_whole():
    cache = ParseCache(max_chars=100)
    source = "import torch\n" * 20
    assert cache.parse(source, ast.parse(source)) is None
    assert _key(lint_source(source, "f.py", LintOptions(parse_cache=cache))) == _key(lint_source(source, "f.py"))


def test_a_cache_serving_many_documents_keeps_two_documents_statements():
    # The language server's analysis processes see every open file: the statements
    # of the document being edited and of the one before stay, the others go.
    sources = {f"d{i}.py": p.read_text(encoding="utf-8") for i, p in enumerate(sorted(FIXTURES.rglob("flagged_*.py"))[:12])}
    cache = ParseCache()
    options = LintOptions(parse_cache=cache)

    def lint(path: str, source: str):
        cache.begin(path)
        report = lint_source(source, path, options)
        cache.end()
        return report

    for path, source in sources.items():
        lint(path, source)
    last_two = "".join(list(sources.values())[-2:])
    assert cache.chars <= len(last_two)
    # Back and forth between two documents: neither is parsed again.
    a, b = list(sources)[-2:]
    before = cache.misses
    for path in (a, b, a, b):
        assert _key(lint(path, sources[path])) == _key(lint_source(sources[path], path))
    assert cache.misses == before


@pytest.mark.slow
def test_random_edits_across_documents_agree_with_whole_file_lints():
    # As in the server: several documents edited in turn through one cache that keeps two.
    rng = random.Random(14)
    paths = sorted(FIXTURES.rglob("flagged_*.py"))[1::7][:5]
    docs = {p.name: p.read_text(encoding="utf-8") for p in paths}
    cache = ParseCache()
    options = LintOptions(parse_cache=cache)
    for _ in range(60):
        name = rng.choice(list(docs))
        for _ in range(rng.randrange(1, 4)):
            docs[name] = _random_edit(rng, docs[name])
            cache.begin(name)
            got = lint_source(docs[name], name, options)
            cache.end()
            assert _key(got) == _key(lint_source(docs[name], name)), docs[name]


def test_a_tree_parsed_for_the_prescan_is_reused_once_for_the_same_text():
    from torchlint.incremental import python_ast

    source = "import torch\nx = torch.zeros(3)\n"
    held = python_ast(source, keep=True)
    assert python_ast(source) is held  # the engine takes it...
    assert python_ast(source) is not held  # ...and it is not held any longer
    assert python_ast("".join(source), keep=True) is not python_ast(source)  # equal text, another object: parsed again
    assert ast.dump(python_ast(source)) == ast.dump(ast.parse(source))


def _typing_session(rng: random.Random, source: str):
    """What an editor sends while a line is retyped: the line erased a character at a
    time (backspace), then typed again a character at a time, every step a version."""
    lines = python_lines(source, keepends=True)
    candidates = [i for i, line in enumerate(lines) if line.strip() and len(line) < 60]
    i = rng.choice(candidates)
    line = lines[i]
    body, end = line.rstrip("\r\n"), line[len(line.rstrip("\r\n")) :]
    indent = len(body) - len(body.lstrip())
    for n in range(len(body), indent - 1, -1):  # backspace down to the indentation
        yield "".join(lines[:i] + [body[:n] + end] + lines[i + 1 :])
    for n in range(indent, len(body) + 1):  # and type it again
        yield "".join(lines[:i] + [body[:n] + end] + lines[i + 1 :])


@pytest.mark.slow
@pytest.mark.parametrize(
    "fixture",
    sorted(p.relative_to(FIXTURES).as_posix() for p in FIXTURES.rglob("flagged_*.py"))[1::6],
)
def test_typing_sessions_agree_with_whole_file_lints(fixture):
    # Keystroke by keystroke, as the server's analysis process sees them (its parse cache,
    # begin/end per document, another document linted in between now and then).
    rng = random.Random(fixture)
    source = (FIXTURES / fixture).read_text(encoding="utf-8")
    other = (FIXTURES / sorted(FIXTURES.rglob("flagged_*.py"))[0]).read_text(encoding="utf-8")
    cache = ParseCache()
    options = LintOptions(parse_cache=cache)
    for step, version in enumerate(_typing_session(rng, source)):
        if step % 7 == 3:
            cache.begin("other.py")
            lint_source(other, "other.py", options)
            cache.end()
        cache.begin("f.py")
        got = lint_source(version, "f.py", options)
        cache.end()
        assert _key(got) == _key(lint_source(version, "f.py")), version


def _indented_anywhere(node) -> bool:
    """Does any node under ``node`` start an indented block (the plain walk over every child)?"""
    import libcst as cst

    if isinstance(node, (cst.IndentedBlock, cst.Match)):
        return True
    return any(_indented_anywhere(child) for child in node.children)


ONE_LINE_SUITES = [
    "try: pass\nexcept E: pass\nfinally:\n    x = 1\n",
    "try: pass\nexcept E:\n    pass\n",
    "for x in y: pass\nelse:\n    z = 1\nwhile a: pass\nelse: pass\n",
    "with a: pass\nclass C: x = 1\n@d(lambda: 1)\ndef f(a=lambda: 1): return a\n",
    "if a: pass\nelif b: pass\nelif c:\n    pass\n",
    "if a: pass\nelif b: pass\nelse: pass\n",
]


@pytest.mark.parametrize("source", [*_sources(), *ONE_LINE_SUITES])
def test_a_statement_has_an_indented_block_where_a_walk_over_all_its_nodes_finds_one(source):
    # incremental._has_indentation looks only in the suites of compound statements.
    import libcst as cst

    from torchlint.incremental import _has_indentation

    try:
        module = cst.parse_module(source)
    except cst.ParserSyntaxError:
        pytest.skip("libcst cannot parse it")
    assert [_has_indentation(s) for s in module.body] == [_indented_anywhere(s) for s in module.body]
