"""What a notebook costs (issue #10): its cells are checked with one CPython parse of the whole
text, that tree serves the rules' pre-checks, and the cheap looks at the text keep their meaning."""

from __future__ import annotations

import ast
import builtins
import json
import random
import re
import sys

import pytest

from torchlint import documents, gates
from torchlint.documents import CONVENTIONAL_IMPORTS, build, conventional_import
from torchlint.engine import LintOptions, lint_source
from torchlint.rules import default_codes
from torchlint.runner import lint_text
from torchlint.sources import python_lines


def notebook(*sources: str) -> str:
    cells = []
    for i, src in enumerate(sources):
        cells.append({"cell_type": "markdown", "id": f"m{i}", "metadata": {}, "source": [f"Step {i}"]})
        cells.append({"cell_type": "code", "execution_count": None, "id": f"c{i}", "metadata": {}, "outputs": [], "source": src.splitlines(keepends=True)})
    nb = {"cells": cells, "metadata": {"language_info": {"name": "python"}}, "nbformat": 4, "nbformat_minor": 5}
    return json.dumps(nb, indent=1) + "\n"


def _shape(doc: documents.Document) -> tuple:
    return doc.text, [(c.state, c.lines, c.deltas, c.editable, c.parses, c.error) for c in doc.chunks]


def _each_cell_alone(m) -> None:
    """Every code cell checked on its own, as a Markdown block is: the cells left to the joint
    check are made again by ``_chunk`` from their source lines."""
    real = documents.notebook_chunks

    def alone(nb: dict) -> list[documents.Chunk]:
        return [documents._chunk(c.number, 1, c.originals, c.originals, cell=c.cell) if c.unchecked else c for c in real(nb)]

    m.setattr(documents, "notebook_chunks", alone)


def _built_alone(raw: str, monkeypatch) -> documents.Document:
    """The document with every cell checked on its own (the reference)."""
    with monkeypatch.context() as m:
        _each_cell_alone(m)
        doc = build(raw, "nb.ipynb", "notebook")
    assert not any(c.unchecked for c in doc.chunks)
    return doc


def _lint(raw: str, monkeypatch, alone: bool) -> list:
    with monkeypatch.context() as m:
        if alone:
            _each_cell_alone(m)
        report = lint_text(raw, "nb.ipynb", "notebook", None)
    return [(f.cell, f.range, f.code, f.message, f.fix) for f in report.findings] + report.errors


# Cells that parse together but not apart, or apart but not together, and IPython syntax.
EDGE_CASES = [
    ("import torch", "x = torch.zeros(3)", "print(x)"),
    ("x = (1,", "2)"),
    ("@torch.no_grad()", "def f():\n    return 1"),
    ("import torch\nfor i in range(3):\n    pass", "    print(i)"),
    ("if True:", "    y = 1"),
    ("x = 1 \\", "y = 2"),
    ("x = 1\n\\", "y = 2"),
    ("x = 1 \\\n", "y = 2"),
    ("s = '''abc", "def'''"),
    ("from __future__ import barry_as_FLUFL", "print(1 <> 2)"),
    ("try:\n    x = 1", "except Exception:\n    pass"),
    ("if x:\n  pass", "else:\n  pass"),
    ("# only a comment", "", "   ", "x = 1\n\n\n"),
    ("%%time\nx = 1", "%matplotlib inline\nimport torch", "files = !ls\nmodel?"),
    ("\tif True:\n\t\tx = 1", "x = 2"),
    ("x = 1;", "y = 2"),
    ("match x:\n    case 1:\n        pass", "y = 3"),
    ("\x0cx = 1", "  y = 2"),
    ("def f(\n", "):\n    pass"),
    ("x = [\n    1,\n", "]"),
    ("print 'python 2'", "import torch\nit = iter(torch.utils.data.DataLoader([1]))\nit.next()"),
    ("x = 1\r\ny = 2\r\n", "z = 3"),
    ("class A:\n    def f(self):\n        return 1\n", "    def g(self):\n        return 2"),
    ("ps = ", "import torch\nloader = torch.utils.data.DataLoader([1, 2])\nbatch = iter(loader).next()"),
    # IPython-looking lines that are Python where they stand (a string, brackets): the cell is kept as it is.
    ("s = '''\n%matplotlib inline\n!ls\n'''", "x = (1\n  % 2)", "y = (x\n  != 3)", "print(s, x, y)"),
    # ... and some that are not: made Python, away from the start of a statement or nested in blocks.
    ("x = [\n  !ls\n]", "z = f(\n  q?\n)", "for i in range(2):\n    !echo hi\n    %time y = i", "if x:\n    pass\nelse:\n    %pwd"),
    # An exercise's blanks, one of them a body of comments only (the error is on the next cell's line).
    ("import torch", "lr = ", "def g(x):\n    # to do", "print(g)", "model = ", "x = 1", "optim = # TODO", "y = 2"),
]


@pytest.mark.parametrize("cells", EDGE_CASES, ids=range(len(EDGE_CASES)))
def test_cells_checked_together_are_what_cells_checked_alone_are(cells, monkeypatch):
    raw = notebook(*cells)
    assert _shape(build(raw, "nb.ipynb", "notebook")) == _shape(_built_alone(raw, monkeypatch))
    assert _lint(raw, monkeypatch, alone=False) == _lint(raw, monkeypatch, alone=True)


@pytest.mark.parametrize("cells", EDGE_CASES, ids=range(len(EDGE_CASES)))
def test_the_joint_check_alone_is_sound(cells, monkeypatch):
    # Every cell left to the joint check, IPython-looking or not: only the continuation rule stays.
    raw = notebook(*cells)
    reference = _shape(_built_alone(raw, monkeypatch))
    monkeypatch.setattr(documents, "_ipython_hint", lambda lines, source=None: False)
    assert _shape(build(raw, "nb.ipynb", "notebook")) == reference


_SNIPPETS = [
    "import torch", "x = 1", "x = (1,", "2)", "    y = 2", "if x:", "else:", "    pass", "@dec", "def f():",
    "    return 1", "'''", "s = '''a", "%time x = 1", "!ls", "y = x \\", "", "  ", "# c", "for i in x:",
    "]", "[", "lambda: 0", "x = !ls", "obj?", "try:", "except E:", "finally:", "    \\", "class C:", "\tz = 3",
]


def test_random_notebooks_check_the_same_together_as_alone(monkeypatch):
    rng = random.Random(10)
    for _ in range(400):
        cells = ["\n".join(rng.choice(_SNIPPETS) for _ in range(rng.randint(0, 4))) for _ in range(rng.randint(1, 5))]
        raw = notebook(*cells)
        reference = _shape(_built_alone(raw, monkeypatch))
        assert _shape(build(raw, "nb.ipynb", "notebook")) == reference, cells
        with monkeypatch.context() as m:
            m.setattr(documents, "_ipython_hint", lambda lines, source=None: False)
            assert _shape(build(raw, "nb.ipynb", "notebook")) == reference, cells


def _parses_of(code_line: str, monkeypatch) -> list[int]:
    """Record the CPython parses of texts holding ``code_line`` (their lengths)."""
    calls: list[int] = []
    real = ast.parse

    def parse(source, *args, **kwargs):
        if isinstance(source, str) and code_line in source:
            calls.append(len(source))
        return real(source, *args, **kwargs)

    monkeypatch.setattr(ast, "parse", parse)
    return calls


@pytest.mark.parametrize("flagged", [False, True])
def test_a_notebook_is_parsed_by_cpython_as_often_as_a_py_file(flagged, monkeypatch):
    # The TL501/TL502 prescan needs CPython's tree of what it lints (here: the cells plus the
    # import of the conventional `nn` the text reads): building the document parsed the cells.
    cells = (
        "import torch\nimport torchvision\nmodel = torchvision.models.resnet18()",
        "layer = nn.Linear(2, 2)\nmodel.fc.in_featurez" if flagged else "layer = nn.Linear(2, 2)\nmodel.fc.in_features",
        "for x in range(3):\n    print(model(x).sum().item())",
    )
    calls = _parses_of("model.fc.in_feature", monkeypatch)
    py = "\n".join(cells) + "\n"
    lint_source(py, "f.py", LintOptions())
    parses = len(calls)
    assert parses >= 1
    calls.clear()
    report = lint_text(notebook(*cells), "nb.ipynb", "notebook", default_codes() - {"TL002"})  # the rules a .py file gets
    assert len(calls) == parses
    calls.clear()
    lint_text(notebook(*cells), "nb.ipynb", "notebook", None)  # and TL002, which reads the tree too
    assert len(calls) == parses
    assert [(f.code, f.cell) for f in report.findings if f.code == "TL501"] == ([("TL501", 4)] if flagged else [])


def test_the_handed_tree_is_the_tree_of_the_text_the_rules_see():
    cells = ("x = F.relu(t)", "@decorator\ndef f():\n    return nn.Linear(2, 2)", "y = 1")
    doc = build(notebook(*cells), "nb.ipynb", "notebook")
    facts = doc.facts(CONVENTIONAL_IMPORTS)
    assert facts.trigger_text  # F and nn are read, never imported
    tree = doc.python_tree(facts.trigger_text)
    assert tree is not None
    assert ast.dump(tree, include_attributes=True) == ast.dump(ast.parse(doc.text + facts.trigger_text), include_attributes=True)


def _unbound_by_definition(text: str, conventions) -> set[str]:
    # What _unbound_conventional means, as one regular expression per name.
    out = set()
    words = set(re.findall(r"\b([A-Za-z_]\w*)\s*[.(]", text))
    for name in words & set(conventions):
        bound = rf"(?:import\s[^\n]*\b{name}\b|\bas\s+{name}\b|\b(?:def|class)\s+{name}\b|^\s*{name}\s*=)"
        if not re.search(bound, text, re.M):
            out.add(name)
    return out


def test_unbound_conventional_names_are_what_their_definition_says():
    conventions = dict(CONVENTIONAL_IMPORTS, né="x", Fx="y", a="b", **{"not-a-name": "z"})
    tokens = ["nn", "F", "np", "né", "Fx", "a", "torch", "import", "as", "def", "class", " ", "\n", "\t", "=", "==",
              ".", "(", "x", "_", "é", "\u2028", "\x0c", "\x85", "\r", "from", "#", "2", "\u00a0", "not-a-name"]
    rng = random.Random(3)
    texts = ["import torch.nn as nn\nnn.Linear(1, 1)\nF.relu(x)\n", "  nn = 3\nnn.x\n", "x = nn.y\n  \n nn=1\n"]
    texts += ["".join(rng.choice(tokens) for _ in range(rng.randint(1, 14))) for _ in range(20000)]
    for text in texts:
        assert documents._unbound_conventional(text, conventions) == _unbound_by_definition(text, conventions), repr(text)


def test_python_lines_are_the_lines_python_counts():
    line = re.compile(r"[^\r\n]*(?:\r\n|\r|\n)|[^\r\n]+$")
    rng = random.Random(4)
    pieces = ["a", "\n", "\r", "\r\n", " ", "\x0c", "\u2028", "bc", "\x85"]
    for _ in range(20000):
        text = "".join(rng.choice(pieces) for _ in range(rng.randint(0, 8)))
        assert python_lines(text) == [x.rstrip("\r\n") for x in line.findall(text)], repr(text)
        assert python_lines(text, keepends=True) == line.findall(text), repr(text)


def _without_imports(code: str) -> str:
    return "".join(line for line in code.splitlines(keepends=True) if not re.match(r"(import|from) \S", line))


def test_the_qualified_name_gate_skips_no_document_finding(monkeypatch):
    # In a document an unimported `F` or `nn` means its conventional module: the engine's gate
    # counts conventional names as imports, so it skips nothing a rule would report there.
    from torchlint import engine
    from torchlint.rules import all_rules

    gated = [cls for cls in all_rules().values() if cls.qualified_triggers]
    assert len(gated) >= 5
    reported = 0
    for cls in gated:
        for example in [*cls.INVALID, *cls.VALID]:
            code = example if isinstance(example, str) else example.code
            for source in {code, _without_imports(code)}:
                raw = notebook(source)
                with monkeypatch.context() as m:
                    found = lint_text(raw, "nb.ipynb", "notebook", frozenset({cls.code})).findings
                    m.setattr(engine, "may_reference", lambda *args: True)
                    forced = lint_text(raw, "nb.ipynb", "notebook", frozenset({cls.code})).findings
                assert found == forced, (cls.code, source)
                reported += len(found)
    assert reported >= 10


# A conventional name bound only inside a function (so no trigger import is added for it) is still
# unbound where it is used: NameResolver gives it its conventional module.
LOCALLY_BOUND = [
    ("TL701", "DataLoader", "def make():\n    DataLoader = None\n    return DataLoader\n\nloader = DataLoader(ds, batch_size=32, shuffle=True)\n"),
    ("TL403", "nn", "def f():\n    torch = None\n    nn = None\n\nlengths = torch.tensor([3, 2]).cuda()\np = nn.utils.rnn.pack_padded_sequence(x, lengths, batch_first=True)\n"),
]


@pytest.mark.parametrize("code, name, source", LOCALLY_BOUND)
def test_the_gate_counts_conventional_names_that_no_trigger_import_covers(code, name, source):
    doc = build(notebook(source), "nb.ipynb", "notebook")
    assert f" {name}\n" not in doc.facts(CONVENTIONAL_IMPORTS).trigger_text + "\n"  # bound, to the cheap look
    found = lint_text(notebook(source), "nb.ipynb", "notebook", frozenset({code})).findings
    assert [f.code for f in found] == [code]


@pytest.mark.parametrize(
    "cells, read",
    [
        (("layer = nn.Linear(2, 2)",), {"nn"}),
        (('DOC = "nn.Linear(2, 2) and F.relu(x)"', "# F.relu(x) in a comment", "x = 1"), set()),
        (("def f():\n    if False:\n        return F.relu(1)",), {"F"}),  # dead code is still code to the rules
        (("def f(F):\n    return F.relu(1)",), set()),  # a parameter: a local, never the module
        (("class A:\n    y = [np.zeros(3) for _ in range(2)]",), {"np"}),
    ],
)
def test_only_names_the_code_reads_count_as_conventional_modules(cells, read):
    """A conventional name a string or a comment mentions resolves nothing: the rules it would wake
    (and the parse they cost) have nothing to report on it."""
    doc = build(notebook(*cells), "nb.ipynb", "notebook")
    facts = doc.facts(CONVENTIONAL_IMPORTS)
    lines = set(facts.trigger_text.splitlines())
    assert {n for n in CONVENTIONAL_IMPORTS if conventional_import(n, CONVENTIONAL_IMPORTS[n]) in lines} == read


def test_a_notebook_is_compiled_by_cpython_as_often_as_a_py_file(monkeypatch):
    """The code object the document's facts read its names from is the verdict on its text."""
    cells = ("import torch\nmodel = torch.nn.Linear(2, 2)", "x = F.relu(model(torch.ones(2)))", "print(x)")
    compiled: list[str] = []
    real = builtins.compile

    def spy(what, filename, mode, flags=0, *args, **kwargs):
        if not flags & ast.PyCF_ONLY_AST:
            compiled.append(filename)
        return real(what, filename, mode, flags, *args, **kwargs)

    monkeypatch.setattr(builtins, "compile", spy)
    lint_source("\n".join(cells) + "\n", "f.py", LintOptions())
    once = len(compiled)
    assert once >= 1
    compiled.clear()
    lint_text(notebook(*cells), "nb.ipynb", "notebook", default_codes() - {"TL002"})
    assert len(compiled) == once


@pytest.mark.parametrize(
    "cells",
    [
        ('DOC = "nn.Linear(2, 2)"  # F.relu(x)', "x = 1"),
        ("né = 1\nprint(né.real)", "y = F.relu(x)"),
        ("%matplotlib inline\nimport torch", "layer = nn.Linear(2, 2)", "!pip install torch"),
        ("def f(F):\n    return F.relu(1)", "z = np.zeros(3)  # plt.plot(z)"),
        ("obj.nn.Linear(2, 2)", "import numpy as np\nnp.ones(2)"),
    ],
)
def test_names_first_agrees_with_the_text_tests(cells):
    """The facts test only names the code reads as names (an attribute, ``obj.nn``, is given no
    conventional module) and that no import binds to their own module (``import numpy as np``):
    the same trigger names as the text's tests kept to those names, and the gate counts only
    their conventions, which extend its import table as all the names the code reads would."""
    conventions = dict(CONVENTIONAL_IMPORTS, né="x")
    doc = build(notebook(*cells), "nb.ipynb", "notebook")
    facts = doc.facts(conventions)
    names = doc._code_names(conventions)
    if cells[0].startswith("obj.nn"):
        assert "nn" not in facts.read_conventions
    tree = doc.python_tree()
    base = gates.ImportTable()
    if tree is not None:
        gates._scan(tree.body, base)
    unbound = {n for n, m in conventions.items() if m not in base.bindings.get(n, ())}
    by_text = documents._unbound_conventional(doc.text, conventions)
    expected = by_text & unbound if names is None else by_text & names & unbound
    assert {n for n in conventions if conventional_import(n, conventions[n]) in facts.trigger_text.splitlines()} == expected
    assert set(facts.read_conventions) == (set(conventions) if names is None else set(conventions) & names & unbound)

    def extended(read: set[str]) -> dict[str, set[str]]:
        out = {n: set(ms) for n, ms in base.bindings.items()}
        for n in read:
            out.setdefault(n, set()).add(conventions[n])
        return out

    if names is not None:
        assert extended(set(facts.read_conventions)) == extended(set(conventions) & names)


@pytest.mark.parametrize(
    "cells, read",
    [
        # An attribute, a parameter, a def's own variable or import: no conventional module is read.
        (("def pick(models):\n    return models[0]", "n = len(report.models)"), False),
        (("def build():\n    models = load()\n    return models", "report.models"), False),
        (("def build():\n    import models\n    return models.x", "y.models"), False),
        # Read where nothing binds it, at module level or in a def: it is.
        (("def build():\n    return models.resnet18()", "x = 1"), True),
        (("net = models.resnet18()",), True),
        (("if False:\n    net = models.resnet18()",), True),  # code CPython drops: a reader still sees it
        # A lambda's parameter is its own; an annotation Python never evaluates reads nothing.
        (("pick = lambda models: models[0]",), False),
        (("def build():\n    net: models.ResNet = load()\n    return net",), False),
        (("from __future__ import annotations\ndef build(net: models.ResNet) -> models.ResNet:\n    return net",), False),
        (("def build(net: models.ResNet):\n    return net",), True),
        # Past 128 names, a global's index in its instruction is led by EXTENDED_ARG.
        (("def build():\n" + "".join(f"    print(v{i})\n" for i in range(300)) + "    return models.resnet18()",), True),
        (("def build():\n" + "".join(f"    print(v{i})\n" for i in range(300)) + "    return report.models",), False),
    ],
)
def test_a_conventional_name_counts_where_it_is_read_unbound(cells, read):
    doc = build(notebook(*cells), "nb.ipynb", "notebook")
    facts = doc.facts(dict(CONVENTIONAL_IMPORTS))
    assert ("models" in facts.read_conventions) is read


def test_the_ipython_marks_search_answers_as_the_line_tests():
    """The search of a cell's text for IPython's marks (lines holding ``%``, ``!`` or ``?`` only)
    answers as the test of every line does."""
    rng = random.Random(3)
    cells = [c for case in EDGE_CASES for c in case]
    cells += ["x = '%d' % 3\ny = a != b\nz?", "  %time y = 1", "a = 1 # why?\nb = !ls", "print('!')\n!pip install x"]
    for _ in range(300):
        cells.append("\n".join(rng.choice(_SNIPPETS) for _ in range(rng.randint(0, 5))))
    for source in cells:
        lines = python_lines(source)
        assert documents._ipython_hint(lines, source) == documents._ipython_hint(lines), source


UNDEFINED_CASES = [
    ("import torch", "x = torch.zeros(3)", "print(x)"),
    ("import torch", "y = F.relu(torch.ones(2))"),
    ("print(model)", "model = 1"),
    ("def f():\n    return helper()", "f()"),
    ("from torch import *", "t = tensor([1])"),
    ("%matplotlib inline\nimport torch", "imshow(torch.ones(1))"),
    ("x = (1,", "2)", "print(x)"),
]


@pytest.mark.parametrize("cells", UNDEFINED_CASES)
def test_the_undefined_name_gate_skips_no_finding(cells, monkeypatch):
    from torchlint.rules.tl002_undefined_name import UndefinedName

    raw = notebook(*cells)
    found = lint_text(raw, "nb.ipynb", "notebook", None)
    with monkeypatch.context() as m:
        m.setattr(UndefinedName, "applies_to_document", classmethod(lambda cls, source, document: True))
        forced = lint_text(raw, "nb.ipynb", "notebook", None)
    assert found.findings == forced.findings and found.errors == forced.errors


@pytest.mark.parametrize("undefined", [False, True])
def test_a_document_that_defines_what_it_uses_gets_no_cst_parse_for_tl002(undefined, monkeypatch):
    # TL002 answers on CPython's tree; only a name to report needs the CST (its node's range).
    from torchlint import engine

    calls = []
    real = engine.parse
    monkeypatch.setattr(engine, "parse", lambda source: calls.append(source) or real(source))
    cells = ("import torch", "x = torch.zeros(3)", "print(y)" if undefined else "print(x)")
    report = lint_text(notebook(*cells), "nb.ipynb", "notebook", frozenset({"TL002"}))
    assert len(calls) == (1 if undefined else 0)
    assert [(f.code, f.cell) for f in report.findings] == ([("TL002", 6)] if undefined else [])


@pytest.mark.parametrize("odd", ["x = (", "%matplotlib inline\n!ls", "%%time\ny = 1", "def broken(:\n    pass"])
def test_a_notebook_checked_cell_by_cell_keeps_its_tree_for_the_lint(odd, monkeypatch):
    # A cell that does not parse, or that holds IPython syntax, is checked on its own; the text the
    # cells make is still parsed once while building the document, and the lint parses it no more
    # (a .py file's lint parses it once).
    cells = ("import torch\nfirst_marker = torch.ones(2)", odd, "last_marker = first_marker.sum().item()")
    whole: list[int] = []
    real = ast.parse

    def parse(source, *args, **kwargs):
        if isinstance(source, str) and "first_marker = " in source and "last_marker" in source:
            whole.append(len(source))
        return real(source, *args, **kwargs)

    same = default_codes() - {"TL002"}
    doc = build(notebook(*cells), "nb.ipynb", "notebook")
    assert doc.python_tree() is not None
    monkeypatch.setattr(ast, "parse", parse)
    lint_source(doc.text, "f.py", LintOptions(codes=same))
    assert len(whole) == 1
    whole.clear()
    report = documents.lint_document(doc, LintOptions(codes=same))
    assert whole == []
    assert [f.code for f in report.findings] == (["TL001"] if odd in ("x = (", "def broken(:\n    pass") else [])


def _cell_parses(monkeypatch) -> list[str]:
    """Record the cells (or parts of them) checked on their own while a document is built."""
    calls: list[str] = []
    real = documents._parses
    monkeypatch.setattr(documents, "_parses", lambda code, *args: calls.append(code) or real(code, *args))
    return calls


def test_cells_with_ipython_syntax_are_checked_with_the_others(monkeypatch):
    # Their lines are made Python first and the whole text is parsed once; none is parsed alone,
    # as its first changed line starts a statement (where `%`, `!` or `obj?` cannot stand).
    cells = ("%matplotlib inline\nimport torch", "!pip install torch", "x = torch.ones(2)\nx?", "%time y = x.sum()", "files = !ls")
    raw = notebook(*cells)
    reference = _shape(_built_alone(raw, monkeypatch))
    calls = _cell_parses(monkeypatch)
    doc = build(raw, "nb.ipynb", "notebook")
    assert calls == []
    assert _shape(doc) == reference
    assert doc.python_tree() is not None
    # A cell whose `%` line is Python where it stands (in a string) is asked, and kept as it is.
    doc = build(notebook("s = '''\n%matplotlib inline\n'''", "y = s"), "nb.ipynb", "notebook")
    assert calls == ["s = '''\n%matplotlib inline\n'''\n"]
    assert doc.chunks[0].lines == ["s = '''", "%matplotlib inline", "'''"] and doc.chunks[0].parses
    assert doc.python_tree() is not None


def _whole_parses(monkeypatch) -> list[str]:
    """Record the texts parsed whole (a notebook's cells together) while a document is built."""
    texts: list[str] = []
    real = documents._tree_or_error
    monkeypatch.setattr(documents, "_tree_or_error", lambda text: texts.append(text) or real(text))
    return texts


def test_an_exercises_blanks_are_checked_alone_before_the_cells_are_parsed_together(monkeypatch):
    # `model = `, `lr = # TODO`, `one_hot = pass` and a `def` whose body is all comments would each fail the whole
    # text's parse: such cells are checked on their own first, and the text is parsed once.
    clean = [f"step_{i} = {i}\nprint(step_{i})" for i in range(8)]
    cells = (*clean[:3], "model = ", *clean[3:5], "def train(model):\n    # your code here", clean[5], "lr = # TODO\nopt = 1", *clean[6:7], "one_hot = pass", *clean[7:])
    raw = notebook(*cells)
    reference = _shape(_built_alone(raw, monkeypatch))
    calls, texts = _cell_parses(monkeypatch), _whole_parses(monkeypatch)
    doc = build(raw, "nb.ipynb", "notebook")
    assert _shape(doc) == reference
    assert [code for code in calls if "step_" in code] == []
    assert len(texts) == 1
    assert [c.state for c in doc.chunks].count("broken") == 3
    assert doc.python_tree() is not None


def test_an_exercise_after_many_headers_is_still_found_by_its_line(monkeypatch):
    # Each open header's line is counted on from the one before; those with no empty line after
    # them cannot end a cell and are passed over. Decoys: a comment after a header, an empty line
    # inside a cell after one, and an unfinished `def` in the middle and at the end.
    decoys = [
        f"for i in range({i}):\n    # step {i}\n    print(i)" if i % 2 else f"def f{i}():\n    # helper\n\n    return {i}"
        for i in range(12)
    ]
    cells = (*decoys[:7], "def train(model):\n    # your code here", *decoys[7:], "class Net:\n    # TODO")
    raw = notebook(*cells)
    reference = _shape(_built_alone(raw, monkeypatch))
    texts = _whole_parses(monkeypatch)
    doc = build(raw, "nb.ipynb", "notebook")
    assert _shape(doc) == reference
    assert len(texts) == 1
    assert [c.number for c in doc.chunks if c.state == "broken"] == [16, 28]


@pytest.mark.parametrize(
    "cell",
    [
        "def train(model):\n    # your code\n\n    # and here",
        "if ready:  # check: later\n    # your code",
        "class Net:\t\n",
        "for batch in loader:\n    x = batch\n    with torch.no_grad():",
    ],
)
def test_a_block_header_that_ends_its_cell_is_checked_alone_first(cell, monkeypatch):
    raw = notebook("import torch", cell, "print(torch)")
    texts = _whole_parses(monkeypatch)
    doc = build(raw, "nb.ipynb", "notebook")
    assert len(texts) == 1
    assert [c.state for c in doc.chunks] == ["code", "broken", "code"]


def _laid_out(doc: documents.Document) -> tuple[str, list]:
    """A notebook's text and line map as their definition says: each cell's lines (a cell that does
    not parse: the unknown marker, then blank lines), then an empty line."""
    text, line_map = "", [None]
    for ci, c in enumerate(doc.chunks):
        if c.state == "skipped" or (c.state == "code" and not c.lines):
            continue
        lines = c.lines if c.state == "code" else [documents.UNKNOWN_LINE] + [""] * (max(len(c.lines), 1) - 1)
        text += "".join(line + "\n" for line in lines) + "\n"
        line_map += [(ci, k) for k in range(len(lines))] + [None]
    return text, line_map + [None]


@pytest.mark.parametrize("cells", [*EDGE_CASES, ("", "x = 1", "\n", "y = 2\n\n"), ("%matplotlib inline\nimport torch", "x = 1\n"), ("x = 1",)])
def test_a_notebooks_text_is_its_cells_lines_each_followed_by_an_empty_line(cells):
    doc = build(notebook(*cells), "nb.ipynb", "notebook")
    text, line_map = _laid_out(doc)
    assert doc.text == text
    assert list(doc.line_map) == line_map and len(doc.line_map) == len(line_map)
    assert doc._breaks == [n for n, entry in enumerate(line_map) if entry is None][1:-1]


def test_random_notebooks_are_laid_out_as_their_definition_says():
    rng = random.Random(11)
    for _ in range(300):
        cells = ["\n".join(rng.choice(_SNIPPETS) for _ in range(rng.randint(0, 4))) + rng.choice(["", "\n", "\n\n"]) for _ in range(rng.randint(1, 6))]
        doc = build(notebook(*cells), "nb.ipynb", "notebook")
        text, line_map = _laid_out(doc)
        assert (doc.text, list(doc.line_map)) == (text, line_map), cells


def _parser_and_compiler_calls(monkeypatch) -> tuple[list[str], list[str]]:
    """Record the texts given to the parser (``ast.parse``) and to the compiler (a code object)."""
    parsed: list[str] = []
    compiled: list[str] = []
    real_parse, real_compile = ast.parse, builtins.compile

    def parse(source, *args, **kwargs):
        parsed.append(source)
        return real_parse(source, *args, **kwargs)

    def compile_(source, *args, **kwargs):
        if not (len(args) > 2 and args[2] & ast.PyCF_ONLY_AST):  # (ast.parse's own call)
            compiled.append(source)
        return real_compile(source, *args, **kwargs)

    monkeypatch.setattr(ast, "parse", parse)
    monkeypatch.setattr(builtins, "compile", compile_)
    return parsed, compiled


def test_a_broken_cell_is_parsed_once(monkeypatch):
    # The parser's refusal is remembered for the whole build (checked alone, then asked again for
    # its TL001, a cell would otherwise be parsed again each time; the compiler is not asked first
    # of a cell that looks unfinished, as its refusal costs what the parser's does).
    cells = ("import torch", "model = ", "x = torch.ones(2)", "def train(m):\n    # TODO", "lr = # TODO")
    parsed, compiled = _parser_and_compiler_calls(monkeypatch)
    doc = build(notebook(*cells), "nb.ipynb", "notebook")
    broken = [c for c in doc.chunks if c.state == "broken"]
    assert len(broken) == 3
    for c in broken:
        code = "\n".join(c.originals) + "\n"
        assert parsed.count(code) == 1, code
        assert compiled.count(code) == 0, code


def test_the_statement_at_a_cells_error_is_asked_of_the_parser_only(monkeypatch):
    # A cell that does not parse keeps its statements that do (each asked on its own); the one at
    # the parser's error is asked of the parser directly: compiling it first would fail as well.
    parsed, compiled = _parser_and_compiler_calls(monkeypatch)
    doc = build(notebook("import torch", "x = it.next()\nz = 1 +\ny = 2"), "nb.ipynb", "notebook")
    cell = doc.chunks[1]
    assert cell.state == "code" and cell.error is not None and cell.error.range.line == 2
    assert parsed.count("z = 1 +\n") == 1 and compiled.count("z = 1 +\n") == 0
    assert compiled.count("x = it.next()\n") == 1


@pytest.mark.parametrize(
    "cell",
    [
        "# lr = \n# model = # TODO\nlr = 0.1",  # (commented out)
        "x = 1  # y =\nz = 2",
        "loss = f(x=\n    2)",  # (a keyword argument's value on the next line)
        "d = {'a':\n     1}",
        "for x in y:\n    pass  # end:",
        "x = 1  # note:\ny = 2",
    ],
)
def test_cells_that_only_look_unfinished_are_checked_with_the_others(cell, monkeypatch):
    raw = notebook("import torch", cell, "print(torch)")
    calls = _cell_parses(monkeypatch)
    doc = build(raw, "nb.ipynb", "notebook")
    assert calls == []
    assert all(c.parses and c.state == "code" for c in doc.chunks)


def test_a_cell_that_does_not_parse_leaves_the_others_checked_together(monkeypatch):
    # A cell that does not look unfinished but fails the whole text's parse is found from the
    # error's line (the cell it is in, or the one before, left open) and the others are parsed
    # together again.
    clean = [f"step_{i} = {i}\nprint(step_{i})" for i in range(8)]
    cells = (clean[0], "try:\n    x = 1", *clean[1:3], "one_hot = 1 +", *clean[3:])
    raw = notebook(*cells)
    reference = _shape(_built_alone(raw, monkeypatch))
    calls, texts = _cell_parses(monkeypatch), _whole_parses(monkeypatch)
    doc = build(raw, "nb.ipynb", "notebook")
    assert _shape(doc) == reference
    # (the cell after the `try` block, where the error is, parses alone: the one asked)
    assert [code for code in calls if "step_" in code] == [clean[1] + "\n"]
    assert len(texts) == 3
    assert [c.state for c in doc.chunks].count("broken") == 2
    assert doc.python_tree() is not None


@pytest.mark.parametrize(
    "code",
    [
        "x = 1\n",
        "return 1\n",
        "await f()\n",
        "yield 2\n",
        "break\n",
        "nonlocal x\n",
        "def f(a, a):\n    pass\n",
        "x = 1\nglobal x\n",
        "from __future__ import braces\n",
        "from __future__ import barry_as_FLUFL\n1 <> 2\n",
        "1 <> 2\n",
        "f(**x, *y)\n",
        "x = (\n",
        "%matplotlib inline\n",
        "a" + "[0]" * 2000 + "\n",
        "(" * 300 + ")" * 300 + "\n",
        "x = '\\N{NOT A NAME}'\n",
        "x = 1\x00\n",
    ],
)
def test_the_cheap_parse_check_answers_as_the_parser(code):
    try:
        ast.parse(code)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        expected = False
    else:
        expected = True
    assert documents._parses(code) is expected


def test_the_compilers_warnings_reach_no_one():
    # CPython warns while compiling (`x is 1`): a linter's checks print nothing of the kind.
    import warnings

    code = "x = 1\nprint(x is 1)\n"
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        lint_source(code, "f.py", LintOptions())
        lint_text(notebook("%matplotlib inline\nx = 1", "print(x is 1)"), "nb.ipynb", "notebook", None)
        documents._parses(code)
    assert [str(w.message) for w in seen if issubclass(w.category, SyntaxWarning)] == []


@pytest.mark.skipif(sys.version_info < (3, 11), reason="possessive quantifiers: Python 3.11 on")
def test_the_blank_assignment_search_finds_what_its_backtracking_form_finds():
    """The unfinished-cell search's pattern is possessive where Python allows it (no backtracking
    after each failed attempt): it must match exactly where the plain pattern of the older Pythons does."""
    plain = re.compile(r"=[ \t]*(?:pass[ \t]*)?(?:#[^\n]*)?$", re.M)
    assert documents._BLANK_ASSIGNMENT.pattern != plain.pattern
    pieces = ["=", "==", " ", "\t", "pass", "pas", "p", "#", "# c", "x", "\n", "= pass", "(", ")"]
    rnd = random.Random(11)
    for _ in range(20000):
        text = "".join(rnd.choice(pieces) for _ in range(rnd.randint(0, 12)))
        assert [m.span() for m in documents._BLANK_ASSIGNMENT.finditer(text)] == [m.span() for m in plain.finditer(text)], repr(text)


def test_a_notebooks_decoded_json_is_let_go_once_its_cells_are_read(monkeypatch):
    """Most of a notebook's JSON is outputs: the document keeps its cells' text, not the decoded
    JSON, so the lint's own objects can reuse that memory."""
    import weakref

    class Decoded(dict):  # (a dict that can be referred to weakly)
        pass

    decoded = []
    real = json.loads

    def loads(text, *args, **kwargs):
        out = Decoded(real(text, *args, **kwargs))
        decoded.append(weakref.ref(out))
        return out

    monkeypatch.setattr(documents.json, "loads", loads)
    doc = build(notebook("import torch", "x = torch.ones(2)"), "nb.ipynb", "notebook")
    assert len(decoded) == 1 and decoded[0]() is None
    assert "x = torch.ones(2)" in doc.text
