"""Engine-level behaviour every consumer relies on: noqa, crash isolation,
syntax errors, and the one-parse/one-traversal contract."""

from __future__ import annotations

import libcst as cst
import pytest

from torchlint import engine
from torchlint.engine import LintOptions, lint_source
from torchlint.rules.base import Rule

NEXT = "it = iter(loader)\nbatch = it.next()\n"


def codes(report) -> list[str]:
    return [f.code for f in report.findings]


# --- rules built for these tests -------------------------------------------------


class CrashingRule(Rule):
    """A rule with a bug: it raises on the first call it sees."""

    code = "TL990"
    name = "crashing-rule"
    message = "never reported"

    def visit_Call(self, node: cst.Call) -> None:
        self.report(node)  # reported before the crash: must be dropped with the rule
        raise ZeroDivisionError("boom")


class LeaveCrashRule(Rule):
    code = "TL991"
    name = "leave-crash"
    message = "never reported"

    def leave_Module(self, node: cst.Module) -> None:
        raise KeyError("missing")


class EveryNameRule(Rule):
    """Reports every Name called `flag`: a stand-in for a well-behaved rule."""

    code = "TL992"
    name = "every-flag"
    message = "flag used"

    def visit_Name(self, node: cst.Name) -> None:
        if node.value == "flag":
            self.report(node)


class TriggeredRule(Rule):
    code = "TL993"
    name = "triggered"
    message = "never"
    triggers = ("zzz_trigger_zzz",)
    instances = 0

    def __init__(self, context) -> None:
        super().__init__(context)
        type(self).instances += 1


class OutsideNodeRule(Rule):
    """Reports a node it built itself, which has no position in the file."""

    code = "TL994"
    name = "outside-node"
    message = "bad node"

    def visit_Module(self, node: cst.Module) -> None:
        self.report(cst.Name("made_up"))


# --- noqa ---------------------------------------------------------------------------


def test_bare_noqa_suppresses_every_code():
    assert codes(lint_source("it = iter(loader)\nbatch = it.next()  # noqa\n")) == []


def test_noqa_with_matching_code_suppresses():
    assert codes(lint_source("it = iter(loader)\nbatch = it.next()  # noqa: TL201\n")) == []


def test_noqa_is_case_insensitive_and_accepts_lists():
    assert codes(lint_source("it = iter(loader)\nbatch = it.next()  # NOQA:tl101, TL201\n")) == []


def test_noqa_with_other_code_does_not_suppress():
    assert codes(lint_source("it = iter(loader)\nbatch = it.next()  # noqa: TL101\n")) == ["TL201"]


def test_noqa_only_applies_to_its_own_line():
    src = "it = iter(loader)  # noqa\nbatch = it.next()\n"
    assert codes(lint_source(src)) == ["TL201"]


def test_noqa_on_the_last_line_of_a_multiline_finding():
    src = "it = iter(loader)\nbatch = (it\n    ).next()  # noqa: TL201\n"
    assert codes(lint_source(src)) == []


def test_noqa_cannot_hide_a_syntax_error():
    assert codes(lint_source("def f(:  # noqa\n    pass\n")) == ["TL001"]


def test_noqa_for_one_rule_keeps_another_on_the_same_line():
    src = "it = iter(loader)\nflag = it.next()  # noqa: TL201\n"
    report = lint_source(src, options=LintOptions(extra_rules=(EveryNameRule,)))
    assert codes(report) == ["TL992"]


# --- rule crashes ----------------------------------------------------------------------


def test_a_crashing_rule_is_reported_and_the_others_still_run():
    report = lint_source(NEXT, "train.py", LintOptions(extra_rules=(CrashingRule,)))
    assert codes(report) == ["TL201"]
    assert len(report.errors) == 1
    line = report.errors[0]
    assert "\n" not in line
    assert line.startswith("train.py: rule TL990 (crashing-rule) crashed")
    assert "ZeroDivisionError: boom" in line


def test_a_crash_in_leave_module_is_isolated_too():
    report = lint_source(NEXT, "x.py", LintOptions(extra_rules=(LeaveCrashRule, EveryNameRule)))
    assert codes(report) == ["TL201"]
    assert len(report.errors) == 1 and "TL991" in report.errors[0]


def test_a_crashed_rule_is_not_called_again_in_the_same_file():
    calls = []

    class Counting(CrashingRule):
        code = "TL995"

        def visit_Call(self, node):
            calls.append(node)
            raise RuntimeError("again")

    lint_source("f()\ng()\nh()\n", options=LintOptions(extra_rules=(Counting,)))
    assert len(calls) == 1


def test_a_node_outside_the_tree_is_dropped_with_an_error():
    report = lint_source("x = 1\n", "m.py", LintOptions(extra_rules=(OutsideNodeRule,)))
    assert codes(report) == []
    assert report.errors and "TL994" in report.errors[0]


# --- syntax errors and strange input -----------------------------------------------------


def test_syntax_error_is_tl001_at_the_error_and_hides_other_findings():
    src = "it = iter(loader)\nbatch = it.next()\nfor x in loader\n    pass\n"
    report = lint_source(src)
    assert codes(report) == ["TL001"]
    f = report.findings[0]
    assert f.range.line == 3
    assert f.message.startswith("SyntaxError:")
    assert report.errors == []


def test_syntax_error_when_no_rule_is_triggered_uses_the_fast_path():
    # No trigger substring: the CST parser is skipped, the error must still be found.
    report = lint_source("x = (1,\ny = 2\n")
    assert codes(report) == ["TL001"]


@pytest.mark.parametrize(
    "src",
    [
        "",
        "\n\n\n",
        "# only a comment",
        "x = 1",  # no trailing newline
        "it = iter(l)\r\nb = it.next()\r\n",  # CRLF
        "\x0cimport torch\n",  # form feed
        "if True:\n\tx = 1\n        y = 2\n",  # inconsistent tabs
        "def f(\n",  # half-typed
        "x = '''unterminated\n",
        "print('\x00')\n",  # NUL in a string literal
        "(" * 500 + ")" * 500 + "\n",  # too deep for the parsers
        "x = 1 +\n",
        "class A:\n    def f(self):\n        return self.next()\n",
    ],
)
def test_lint_source_never_raises(src):
    report = lint_source(src, "weird.py")
    for e in report.errors:
        assert "\n" not in e
    for f in report.findings:
        assert f.range.line >= 1 and f.range.column >= 0


def test_crlf_source_positions():
    report = lint_source("it = iter(l)\r\nb = it.next()\r\n")
    assert codes(report) == ["TL201"]
    r = report.findings[0].range
    assert (r.line, r.column, r.end_line, r.end_column) == (2, 4, 2, 13)


def test_positions_count_code_points_not_bytes():
    report = lint_source("it = iter(l)\nb = ('数据', it.next())\n")
    r = report.findings[0].range
    assert (r.line, r.column) == (2, 11)


# --- one parse, one traversal --------------------------------------------------------------


def test_one_parse_and_one_traversal_for_all_rules(monkeypatch):
    parses = []
    dispatchers = []
    real_parse = engine.parse
    real_init = engine._Dispatcher.__init__

    def counting_parse(source):
        parses.append(source)
        return real_parse(source)

    def counting_init(self, *a, **k):
        dispatchers.append(self)
        real_init(self, *a, **k)

    monkeypatch.setattr(engine, "parse", counting_parse)
    monkeypatch.setattr(engine._Dispatcher, "__init__", counting_init)
    report = lint_source(
        "import torchvision\nit = iter(loader)\nflag = it.next()\nm = torchvision.models.resnet18(pretrained=True)\n",
        options=LintOptions(extra_rules=(EveryNameRule,)),
    )
    assert {"TL201", "TL992"} <= set(codes(report))
    assert len(parses) == 1
    assert len(dispatchers) == 1


def test_no_cst_parse_when_no_rule_can_fire(monkeypatch):
    calls = []
    monkeypatch.setattr(engine, "parse", lambda s: calls.append(s) or cst.parse_module(s))
    report = lint_source("def add(a, b):\n    return a + b\n")
    assert report.findings == [] and calls == []


def test_rules_whose_triggers_are_absent_are_not_instantiated():
    TriggeredRule.instances = 0
    lint_source(NEXT, options=LintOptions(extra_rules=(TriggeredRule,)))
    assert TriggeredRule.instances == 0
    lint_source(NEXT + "zzz_trigger_zzz = 1\n", options=LintOptions(extra_rules=(TriggeredRule,)))
    assert TriggeredRule.instances == 1


def test_positions_are_only_computed_when_there_are_findings(monkeypatch):
    wrappers = []
    import torchlint.positions

    real = torchlint.positions.positions_for

    def counting(*a, **k):
        wrappers.append(1)
        return real(*a, **k)

    monkeypatch.setattr(torchlint.positions, "positions_for", counting)
    lint_source("it = iter(loader)\nbatch = next(it)\n")
    assert wrappers == []
    lint_source(NEXT)
    assert wrappers == [1]


def test_codes_restrict_the_rules_that_run():
    assert codes(lint_source(NEXT, options=LintOptions(codes=frozenset({"TL202"})))) == []
    assert codes(lint_source(NEXT, options=LintOptions(codes=frozenset({"TL201"})))) == ["TL201"]
    # A syntax error is reported whatever is selected.
    assert codes(lint_source("def f(:\n", options=LintOptions(codes=frozenset()))) == ["TL001"]


def test_fixes_land_correctly_after_unusual_line_separators():
    """str.splitlines breaks at U+2028/form feed; Python and libcst do not: positions must agree."""
    from torchlint.fixes import fix_source

    source = "# a\u2028b \x0c c\nit = iter(loader)\nx = it.next()  # noqa: TL101\n"
    fixed, applied, _ = fix_source(source, lambda s: lint_source(s).findings)
    assert applied == 1
    assert fixed == source.replace("it.next()", "next(it)")


def test_non_utf8_byte_on_the_first_line_is_reported_as_such():
    from torchlint.sources import SourceError, decode

    with pytest.raises(SourceError, match=r"not valid UTF-8 \(byte 0xff at offset 4\)"):
        decode(b"x = \xff\n", "f.py")
