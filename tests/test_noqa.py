"""``torchlint.noqa``: the comments it writes must silence the finding in the
engine, keep the code valid, and never land inside a string."""

from __future__ import annotations

import ast

import pytest

from torchlint.diagnostics import Finding, Range
from torchlint.engine import lint_source
from torchlint.noqa import add_noqa, noqa_edits


def _tl201(source: str):
    return [f for f in lint_source(source, "t.py").findings if f.code == "TL201"]


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        (
            "it = iter(loader)\nbatch = it.next()\n",
            "it = iter(loader)\nbatch = it.next()  # noqa: TL201\n",
        ),
        (
            # Trailing spaces are replaced, not kept before the comment.
            "it = iter(loader)\nbatch = it.next()   \n",
            "it = iter(loader)\nbatch = it.next()  # noqa: TL201\n",
        ),
        (
            # An existing code list is extended.
            "it = iter(loader)\nbatch = it.next()  # noqa: E501\n",
            "it = iter(loader)\nbatch = it.next()  # noqa: E501, TL201\n",
        ),
        (
            # Another comment stays; the noqa goes after it.
            "it = iter(loader)\nbatch = it.next()  # first batch\n",
            "it = iter(loader)\nbatch = it.next()  # first batch  # noqa: TL201\n",
        ),
        (
            # The start line ends inside a triple-quoted string: the comment goes on the end line.
            'y = iter(make("""a\nb""")).next()\n',
            'y = iter(make("""a\nb""")).next()  # noqa: TL201\n',
        ),
        (
            # The start line ends with a backslash continuation.
            "x = iter(loader) \\\n    .next()\n",
            "x = iter(loader) \\\n    .next()  # noqa: TL201\n",
        ),
        (
            # Windows line endings survive.
            "it = iter(loader)\r\nbatch = it.next()\r\nprint(batch)\r\n",
            "it = iter(loader)\r\nbatch = it.next()  # noqa: TL201\r\nprint(batch)\r\n",
        ),
        (
            # No newline at the end of the file.
            "it = iter(loader)\nbatch = it.next()",
            "it = iter(loader)\nbatch = it.next()  # noqa: TL201",
        ),
    ],
)
def test_add_noqa_suppresses_and_keeps_the_code_valid(source: str, expected: str) -> None:
    findings = _tl201(source)
    assert findings, "the example must have a finding"
    out, changed = add_noqa(source, findings)
    assert out == expected
    assert changed == 1
    ast.parse(out)
    assert _tl201(out) == []


def test_two_findings_on_one_line_share_one_comment() -> None:
    source = "it = iter(loader)\na, b = it.next(), it.next()\n"
    out, changed = add_noqa(source, _tl201(source))
    assert out == "it = iter(loader)\na, b = it.next(), it.next()  # noqa: TL201\n"
    assert changed == 1


def test_nothing_to_do_for_a_bare_noqa_or_a_syntax_error() -> None:
    source = "it = iter(loader)\nbatch = it.next()\n"
    (finding,) = _tl201(source)
    bare = source.replace("it.next()\n", "it.next()  # noqa\n")
    assert noqa_edits(bare, [finding]) == []
    (syntax,) = lint_source("for x in loader\n    pass\n", "t.py").findings
    assert syntax.code == "TL001"
    assert noqa_edits("for x in loader\n    pass\n", [syntax]) == []


def test_half_typed_code_still_gets_its_comment() -> None:
    # The tokenizer gives up at the unclosed string; the lines before it are still classified.
    source = 'it = iter(loader)\nbatch = it.next()\ns = """never closed\n'
    finding = Finding("TL201", "iterator-next-method", "m", Range(2, 8, 2, 17))
    (edit,) = noqa_edits(source, [finding])
    assert edit.range == Range(2, 17, 2, 17) and edit.content == "  # noqa: TL201"


@pytest.mark.parametrize(
    "source",
    [
        'it = iter(loader)\nbatch = it.next(); s = "# noqa"\n',
        "it = iter(loader)\nbatch = it.next(); s = '#noqa: TL201'\n",
        'it = iter(loader)\nbatch = it.next(); s = """\n# noqa: TL201\n"""\n',
        "it = iter(loader)\nbatch = [it.next(), 'a \\\n# noqa']\n",
        'it = iter(loader)\r\nbatch = it.next(); s = "# noqa"\r\n',
    ],
)
def test_noqa_text_inside_a_string_suppresses_nothing(source: str) -> None:
    assert [f.code for f in _tl201(source)] == ["TL201"]


@pytest.mark.parametrize(
    "source",
    [
        'it = iter(loader)\nbatch = it.next()  # "quoted" then noqa: TL201\n'.replace("then noqa", "# noqa"),
        'it = iter(loader)\nbatch = it.next(); s = "x"  # noqa: TL201\n',
        '"""doc"""\nit = iter(loader)\nbatch = it.next()  # noqa\n',
    ],
)
def test_noqa_comments_after_strings_still_suppress(source: str) -> None:
    assert _tl201(source) == []


def test_a_string_that_looks_like_noqa_is_not_extended() -> None:
    source = 'it = iter(loader)\nbatch = it.next(); s = "# noqa: E501"\n'
    out, changed = add_noqa(source, _tl201(source))
    assert out == 'it = iter(loader)\nbatch = it.next(); s = "# noqa: E501"  # noqa: TL201\n'
    assert changed == 1 and _tl201(out) == []
