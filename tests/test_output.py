"""Output formats: text (full, concise), json (a contract), github, sarif (validated
against the official SARIF 2.1.0 schema), statistics, and the summary lines."""

from __future__ import annotations

import copy
import io
import json
from pathlib import Path

import pytest

from torchlint.diagnostics import Confirmation, Edit, FileReport, Finding, Fix, Range, Related
from torchlint.engine import lint_source
from torchlint.output import OutputOptions, write
from torchlint.output import json as json_format
from torchlint.output import sarif, statistics
from torchlint.output.text import Style, summary

DATA = Path(__file__).resolve().parent / "data"
# The SARIF 2.1.0 JSON schema (final, "rtm.5"), as shipped in the npm package
# @microsoft/jest-sarif 1.0.0-beta.0 (MIT) at lib/schemas/sarif-2.1.0-rtm.5.json.
SARIF_SCHEMA = DATA / "sarif-schema-2.1.0.json"

SRC = "import torch\nit = iter(loader)\nimages, labels = it.next()\n"


def finding(**kw) -> Finding:
    base = dict(
        code="TL201",
        name="iterator-next-method",
        message="`it.next()` does not exist on Python 3 iterators; use `next(it)`",
        range=Range(3, 17, 3, 26),
        fix=Fix("safe", "Replace `it.next()` with `next(it)`", (Edit(Range(3, 17, 3, 26), "next(it)"),)),
    )
    base.update(kw)
    return Finding(**base)


def render(fmt: str, reports, **opts) -> str:
    buf = io.StringIO()
    write(fmt, reports, buf, OutputOptions(**opts))
    return buf.getvalue()


CONFIRMED = Confirmation("confirmed", "AttributeError: '_SingleProcessDataLoaderIter' object has no attribute 'next'", {"seconds": 0.4})


# --- text ---------------------------------------------------------------------------------


def test_full_text_matches_ruff_layout():
    out = render("text", [FileReport("train.py", [finding()], source=SRC)])
    assert out == (
        "train.py:3:18: TL201 [*] `it.next()` does not exist on Python 3 iterators; use `next(it)`\n"
        "  |\n"
        "3 | images, labels = it.next()\n"
        "  |                  ^^^^^^^^^ TL201\n"
        "  |\n"
        "  = help: Replace `it.next()` with `next(it)`\n"
        "\n"
    )


def test_concise_text():
    out = render("concise", [FileReport("train.py", [finding()], source=SRC)])
    assert out == "train.py:3:18: TL201 [*] `it.next()` does not exist on Python 3 iterators; use `next(it)`\n"


def test_fix_marker_only_for_applicable_fixes():
    unsafe = finding(fix=Fix("unsafe", "Maybe", (Edit(Range(3, 17, 3, 26), "x"),)))
    assert "[*]" not in render("concise", [FileReport("a.py", [unsafe], source=SRC)])
    assert "[*]" in render("concise", [FileReport("a.py", [unsafe], source=SRC)], unsafe_fixes=True)
    assert "[*]" not in render("concise", [FileReport("a.py", [finding(fix=None)], source=SRC)])
    assert "= help (unsafe fix): Maybe" in render("text", [FileReport("a.py", [unsafe], source=SRC)])


def test_caret_under_wide_characters_and_tabs():
    src = "x = ('数据', it.next())\n\ty = it.next()\n"
    f1 = finding(range=Range(1, 11, 1, 20))
    f2 = finding(range=Range(2, 5, 2, 14))
    out = render("text", [FileReport("a.py", [f1, f2], source=src)]).splitlines()
    # '数据' is 4 columns wide on a terminal; a tab is shown as 4 spaces.
    assert out[2] == "1 | x = ('数据', it.next())"
    assert out[3] == "  | " + " " * 13 + "^" * 9 + " TL201"
    body = out[out.index("2 |     y = it.next()") + 1]
    assert body == "  | " + " " * 8 + "^" * 9 + " TL201"


def test_snippet_lines_follow_python_line_breaks():
    # U+2028 and a form feed are not line breaks for Python (nor for the positions).
    src = "# a\u2028b\x0c\nit = iter(l)\nx = it.next()\n"
    f = finding(range=Range(3, 4, 3, 13))
    out = render("text", [FileReport("a.py", [f], source=src)]).splitlines()
    assert out[2] == "3 | x = it.next()"


def test_multiline_range_and_long_ranges():
    src = "".join(f"line{i} = {i}\n" for i in range(1, 21))
    f = finding(range=Range(2, 3, 4, 5), fix=None)
    out = render("text", [FileReport("a.py", [f], source=src)]).splitlines()
    assert out[1:8] == [
        "  |",
        "2 | line2 = 2",
        "  |    ^^^^^^",
        "3 | line3 = 3",
        "  | ^^^^^^^^^",
        "4 | line4 = 4",
        "  | ^^^^^ TL201",
    ]
    long = finding(range=Range(1, 0, 20, 3), fix=None)
    lines = render("text", [FileReport("a.py", [long], source=src)]).splitlines()
    assert " ..." in "\n".join(lines) and "20 | line20 = 20" in lines
    assert sum(1 for line in lines if " | line" in line) == 5


def test_empty_range_gets_one_caret_and_unknown_source_no_snippet():
    src = "def f(:\n"
    f = finding(code="TL001", name="syntax-error", message="SyntaxError: invalid syntax", range=Range(1, 7, 1, 7), fix=None)
    out = render("text", [FileReport("a.py", [f], source=src)]).splitlines()
    assert out[3] == "  |        ^ TL001"
    assert render("text", [FileReport("a.py", [f], source=None)]).splitlines() == [out[0], ""]


def test_related_and_confirmation_in_text():
    f = finding(related=(Related(Range(2, 0, 2, 2), "the iterator is created here"),), confirmation=CONFIRMED)
    out = render("text", [FileReport("a.py", [f], source=SRC)])
    assert "  = note: 2:1: the iterator is created here\n" in out
    assert "  = runtime: confirmed at runtime: AttributeError: '_SingleProcessDataLoaderIter'" in out
    concise = render("concise", [FileReport("a.py", [f], source=SRC)])
    assert concise.splitlines()[1].endswith("= runtime: confirmed at runtime: " + CONFIRMED.evidence)


def test_findings_are_ordered_by_path_then_position():
    a = FileReport("b.py", [finding(range=Range(3, 0, 3, 1)), finding(range=Range(1, 0, 1, 1))], source=SRC)
    b = FileReport("a.py", [finding(range=Range(2, 0, 2, 1))], source=SRC)
    # The engine sorts a file's findings; the formats sort files.
    a.findings.sort(key=lambda f: f.range)
    heads = [line.split(" ")[0] for line in render("concise", [a, b]).splitlines()]
    assert heads == ["a.py:2:1:", "b.py:1:1:", "b.py:3:1:"]


def test_color_codes_only_when_asked():
    plain = render("text", [FileReport("a.py", [finding()], source=SRC)])
    colored = render("text", [FileReport("a.py", [finding()], source=SRC)], color=True)
    assert "\x1b[" not in plain and "\x1b[" in colored
    import re

    assert re.sub(r"\x1b\[[0-9;]*m", "", colored) == plain


# --- summary lines ------------------------------------------------------------------------------


def safe():
    return finding()


def unsafe():
    return finding(fix=Fix("unsafe", "m", (Edit(Range(1, 0, 1, 0), ""),)))


@pytest.mark.parametrize(
    "findings, kw, expected",
    [
        ([], {}, ["All checks passed!"]),
        ([finding(fix=None)], {}, ["Found 1 error."]),
        ([safe(), safe()], {}, ["Found 2 errors.", "[*] 2 fixable with the --fix option."]),
        (
            [safe(), unsafe()],
            {},
            ["Found 2 errors.", "[*] 1 fixable with the --fix option (1 hidden fix can be enabled with the --unsafe-fixes option)."],
        ),
        (
            [unsafe(), unsafe()],
            {},
            ["Found 2 errors.", "No fixes available (2 hidden fixes can be enabled with the --unsafe-fixes option)."],
        ),
        ([safe(), unsafe()], {"unsafe_fixes": True}, ["Found 2 errors.", "[*] 2 fixable with the --fix option."]),
        ([], {"fixed": 3, "fix_mode": True}, ["Found 3 errors (3 fixed, 0 remaining)."]),
        ([finding(fix=None)], {"fixed": 1, "fix_mode": True}, ["Found 2 errors (1 fixed, 1 remaining)."]),
    ],
)
def test_summary(findings, kw, expected):
    opts = OutputOptions(unsafe_fixes=kw.pop("unsafe_fixes", False))
    assert summary(findings, opts, style=Style(False), **kw) == expected


# --- json ----------------------------------------------------------------------------------------------

KEYS = ["path", "line", "column", "end_line", "end_column", "code", "name", "message", "severity", "fix", "related", "confirmation"]


def test_json_contract():
    f = finding(related=(Related(Range(2, 0, 2, 8), "created here"),))
    data = json.loads(render("json", [FileReport("train.py", [f, finding(fix=None, range=Range(1, 0, 1, 1))], source=SRC)]))
    assert isinstance(data, list) and len(data) == 2
    assert all(list(d) == KEYS for d in data)
    d = data[0]
    assert (d["line"], d["column"], d["end_line"], d["end_column"]) == (3, 18, 3, 27)  # 1-based, end exclusive
    assert d["fix"] == {
        "applicability": "safe",
        "message": "Replace `it.next()` with `next(it)`",
        "edits": [{"line": 3, "column": 18, "end_line": 3, "end_column": 27, "content": "next(it)"}],
    }
    assert d["related"] == [{"line": 2, "column": 1, "end_line": 2, "end_column": 9, "message": "created here"}]
    assert d["confirmation"] is None and d["severity"] == "error"
    assert data[1]["fix"] is None


def test_json_confirmation_and_empty():
    data = json.loads(render("json", [FileReport("a.py", [finding(confirmation=CONFIRMED)], source=SRC)]))
    assert data[0]["confirmation"] == {"status": "confirmed", "evidence": CONFIRMED.evidence, "detail": {"seconds": 0.4}}
    assert json.loads(render("json", [FileReport("a.py", [], source=SRC)])) == []


def test_json_columns_applied_as_edits_reproduce_the_fix():
    """A consumer applying the JSON edits (1-based) gets what the engine's fix gives."""
    report = lint_source(SRC, "a.py")
    d = json.loads(json_format.dumps([report]))[0]
    lines = SRC.splitlines(keepends=True)
    e = d["fix"]["edits"][0]
    line = lines[e["line"] - 1]
    lines[e["line"] - 1] = line[: e["column"] - 1] + e["content"] + line[e["end_column"] - 1 :]
    assert "".join(lines) == "import torch\nit = iter(loader)\nimages, labels = next(it)\n"


# --- github ------------------------------------------------------------------------------------------------


def test_github_annotations():
    out = render("github", [FileReport("src/train.py", [finding()], source=SRC)])
    assert out == (
        "::error title=torchlint (TL201),file=src/train.py,line=3,col=18,endLine=3,endColumn=27::"
        "TL201 `it.next()` does not exist on Python 3 iterators; use `next(it)`\n"
    )


def test_github_escaping_severity_and_confirmation():
    f = finding(message="100% wrong\nsecond line", severity="warning", confirmation=CONFIRMED)
    out = render("github", [FileReport("dir,x/a:b.py", [f], source=SRC)])
    assert out.startswith("::warning title=torchlint (TL201),file=dir%2Cx/a%3Ab.py,")
    assert "::TL201 100%25 wrong%0Asecond line (confirmed at runtime: AttributeError" in out
    assert out.count("\n") == 1
    assert render("github", [FileReport("a.py", [finding(severity="info")], source=SRC)]).startswith("::notice ")


# --- sarif ------------------------------------------------------------------------------------------------------


def sarif_doc(reports, errors=()):
    return sarif.build(reports, OutputOptions(), errors)


def full_reports():
    f1 = finding(related=(Related(Range(2, 0, 2, 8), "created here"),), confirmation=CONFIRMED)
    f2 = finding(code="TL001", name="syntax-error", message="SyntaxError: x", range=Range(1, 0, 1, 0), fix=None, severity="error")
    f3 = finding(severity="warning", fix=Fix("unsafe", "m", (Edit(Range(1, 0, 1, 0), "import x\n"), Edit(Range(3, 17, 3, 26), "y"))))
    f4 = finding(code="TL999", name="plugin-rule", severity="info", fix=None)  # not in the registry
    return [
        FileReport("src/train.py", [f1, f3], source=SRC),
        FileReport("docs/tut orial.md", [f2, f4], source=SRC, errors=["docs/x.py: rule TL201 crashed"]),
    ]


def test_sarif_validates_against_the_official_schema():
    jsonschema = pytest.importorskip("jsonschema", reason="jsonschema is needed to validate SARIF against its schema")
    schema = json.loads(SARIF_SCHEMA.read_text(encoding="utf-8"))
    validator = jsonschema.Draft4Validator(schema)
    for reports, errors in ((full_reports(), ["nope.py: no such file or directory"]), ([], ())):
        doc = json.loads(json.dumps(sarif_doc(reports, errors)))
        problems = sorted(validator.iter_errors(doc), key=str)
        assert not problems, [p.message for p in problems]
    # The schema does catch a broken log (so the check above can fail).
    bad = copy.deepcopy(sarif_doc(full_reports()))
    bad["runs"][0]["results"][0]["level"] = "fatal"
    bad["runs"][0]["results"][0]["locations"][0]["physicalLocation"]["region"]["startLine"] = 0
    assert len(list(validator.iter_errors(bad))) >= 2


def test_sarif_structure():
    """What GitHub code scanning and viewers need, checked without the schema too."""
    doc = sarif_doc(full_reports(), ["nope.py: no such file or directory"])
    assert doc["version"] == "2.1.0" and doc["$schema"].endswith("sarif-2.1.0.json")
    (run,) = doc["runs"]
    driver = run["tool"]["driver"]
    assert driver["name"] == "torchlint"
    ids = [r["id"] for r in driver["rules"]]
    assert len(ids) == len(set(ids)) and "TL201" in ids and "TL999" in ids
    assert run["columnKind"] == "unicodeCodePoints"
    assert run["originalUriBaseIds"]["%SRCROOT%"]["uri"].startswith("file:///")
    assert run["originalUriBaseIds"]["%SRCROOT%"]["uri"].endswith("/")
    results = run["results"]
    assert [r["ruleId"] for r in results] == ["TL001", "TL999", "TL201", "TL201"]  # by path, then position
    for r in results:
        assert driver["rules"][r["ruleIndex"]]["id"] == r["ruleId"]
        assert r["level"] in ("error", "warning", "note")
        loc = r["locations"][0]["physicalLocation"]
        assert loc["artifactLocation"]["uriBaseId"] == "%SRCROOT%"
        assert loc["region"]["startLine"] >= 1 and loc["region"]["startColumn"] >= 1
    assert results[0]["locations"][0]["physicalLocation"]["artifactLocation"]["uri"] == "docs/tut%20orial.md"
    assert results[1]["level"] == "note"
    confirmed = results[2]
    assert confirmed["properties"]["confirmation"]["status"] == "confirmed"
    assert "confirmed at runtime" in confirmed["message"]["text"]
    assert confirmed["relatedLocations"][0]["message"]["text"] == "created here"
    assert confirmed["locations"][0]["physicalLocation"]["region"] == {"startLine": 3, "startColumn": 18, "endLine": 3, "endColumn": 27}
    fix = confirmed["fixes"][0]
    assert fix["artifactChanges"][0]["replacements"] == [
        {"deletedRegion": {"startLine": 3, "startColumn": 18, "endLine": 3, "endColumn": 27}, "insertedContent": {"text": "next(it)"}}
    ]
    assert results[3]["properties"]["fixApplicability"] == "unsafe" and results[3]["level"] == "warning"
    (inv,) = run["invocations"]
    assert inv["executionSuccessful"] is False
    assert [n["message"]["text"] for n in inv["toolExecutionNotifications"]] == [
        "docs/x.py: rule TL201 crashed",
        "nope.py: no such file or directory",
    ]


def test_sarif_rule_descriptions_come_from_the_docs():
    doc = sarif_doc([])
    tl201 = next(r for r in doc["runs"][0]["tool"]["driver"]["rules"] if r["id"] == "TL201")
    assert tl201["name"] == "iterator-next-method"
    assert tl201["shortDescription"]["text"].startswith("Checks for `.next()`")
    assert "## Why is this bad?" in tl201["help"]["markdown"]
    assert doc["runs"][0]["invocations"][0]["executionSuccessful"] is True


# --- statistics -------------------------------------------------------------------------------------------------


def test_statistics_rows_and_rendering():
    reports = [
        FileReport("a.py", [finding(), finding(fix=None), finding(code="TL001", name="syntax-error", fix=None)]),
        FileReport("b.py", [finding(code="TL202", name="torchvision-pretrained", fix=Fix("unsafe", "m", ()))]),
    ]
    rows = statistics.rows(reports)
    assert [(r.code, r.count, r.fixable) for r in rows] == [("TL201", 2, 1), ("TL001", 1, 0), ("TL202", 1, 0)]
    assert statistics.rows(reports, unsafe_fixes=True)[2].fixable == 1
    buf = io.StringIO()
    statistics.write(rows, buf)
    assert buf.getvalue().splitlines() == [
        "2\tTL201\t[*] iterator-next-method",
        "1\tTL001\t[ ] syntax-error",
        "1\tTL202\t[ ] torchvision-pretrained",
    ]
