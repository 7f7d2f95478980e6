"""The pre-filters that skip files before the parse (issue #11) never lose a finding.

Each rule may skip a file by its text (``triggers``, ``trigger_pattern``, ``applies_to``)
or by where the file is (``applies_to_path``). Here every fixture, and every rule's
examples, are linted twice: with the pre-filters, and with every rule forced to run on
every file. The findings must be the same. The fixtures are also linted as if they
were part of the torch and torchvision packages' own sources (where TL203/TL204/TL501/
TL502 skip the package's own API without parsing).
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from torchlint.engine import LintOptions, lint_source
from torchlint.rules import all_rules
from torchlint.rules.base import Rule

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = sorted(p for p in (ROOT / "fixtures").rglob("*.py") if "documents" not in p.parts)
ALL = frozenset(c for c in all_rules() if c != "TL001")


def _unfiltered(mp: pytest.MonkeyPatch) -> None:
    """Every selected rule runs on every file: no trigger, pattern or pre-check."""
    for cls in {*all_rules().values()}:
        mp.setattr(cls, "triggers", ())
        mp.setattr(cls, "trigger_pattern", None)
        mp.setattr(cls, "qualified_triggers", frozenset())
        mp.setattr(cls, "applies_to", classmethod(lambda c, s: True))
        mp.setattr(cls, "applies_to_path", classmethod(lambda c, s, p: True))


def _findings(source: str, path: str) -> list[tuple]:
    report = lint_source(source, path, LintOptions(codes=ALL))
    return [(f.code, f.range, f.message, f.fix) for f in report.findings] + [("error", e) for e in report.errors]


def _both_ways(paths: list[tuple[str, str]]) -> tuple[list, list]:
    filtered = [_findings(s, p) for p, s in paths]
    with pytest.MonkeyPatch.context() as mp:
        _unfiltered(mp)
        unfiltered = [_findings(s, p) for p, s in paths]
    return filtered, unfiltered


def test_fixtures_have_the_same_findings_without_prefilters():
    paths = [(str(p), p.read_text(encoding="utf-8")) for p in FIXTURES]
    filtered, unfiltered = _both_ways(paths)
    assert sum(map(len, filtered)) > 100  # the fixtures have findings to lose
    for (path, _), a, b in zip(paths, filtered, unfiltered):
        assert a == b, path


def test_rule_examples_have_the_same_findings_without_prefilters():
    examples = []
    for code, cls in sorted(all_rules().items()):
        if cls.documents_only or code == "TL001":
            continue
        examples += [(f"{code}_valid_{i}.py", v) for i, v in enumerate(cls.VALID)]
        examples += [(f"{code}_invalid_{i}.py", x.code) for i, x in enumerate(cls.INVALID)]
    filtered, unfiltered = _both_ways(examples)
    assert sum(map(len, filtered)) > 50
    for (path, _), a, b in zip(examples, filtered, unfiltered):
        assert a == b, path


@pytest.mark.slow
@pytest.mark.parametrize("package", ["torch", "torchvision"])
def test_a_package_s_own_sources_have_the_same_findings_without_prefilters(tmp_path, package):
    # The API rules' fixtures, as modules of the package itself (a directory named like
    # it, with an __init__.py): the path pre-filter skips most of them.
    pkg = tmp_path / package / "sub"
    pkg.mkdir(parents=True)
    (tmp_path / package / "__init__.py").write_text("")
    (pkg / "__init__.py").write_text("")
    paths = []
    for p in FIXTURES:
        target = pkg / f"{p.parent.name}__{p.name}"
        shutil.copyfile(p, target)
        paths.append((str(target), target.read_text(encoding="utf-8")))
    filtered, unfiltered = _both_ways(paths)
    assert sum(map(len, filtered)) > 50
    for (path, _), a, b in zip(paths, filtered, unfiltered):
        assert a == b, path
    skipped = [p for p, s in paths if not all_rules()["TL501"].applies_to_path(s, p)]
    assert skipped  # the path pre-filter did skip files here


def test_path_prefilter_keeps_another_package_s_names_and_hub(tmp_path):
    (tmp_path / "torch").mkdir()
    (tmp_path / "torch" / "__init__.py").write_text("")
    inside, outside = str(tmp_path / "torch" / "m.py"), str(tmp_path / "m.py")
    for code in ("TL203", "TL204", "TL501", "TL502"):
        rule: type[Rule] = all_rules()[code]
        assert rule.applies_to_path("import torch\n", outside)  # not inside any package: unchanged
        assert not rule.applies_to_path("import torch\nx = torch.nn.Linear(1, 1)\n", inside)
        assert rule.applies_to_path("import torchvision\n", inside)
    for code in ("TL501", "TL502"):
        assert all_rules()[code].applies_to_path("import torch\nm = torch.hub.load('pytorch/vision', 'resnet18')\n", inside)
        assert not all_rules()[code].applies_to_path("# see github.com/pytorch/pytorch\nimport torch\n", inside)
