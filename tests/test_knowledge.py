"""The API knowledge base: lookups, target versions, and what rules can ask."""

from __future__ import annotations

import textwrap

import pytest

from torchlint.engine import LintOptions, lint_source
from torchlint.knowledge import Instance, Knowledge, known_versions, knowledge_for
from torchlint.knowledge import store
from torchlint.knowledge.target import lowest_admitted, parse_requirement, target_for_directory, versions_in_directory
from torchlint.knowledge.versions import Target, Version


def kb(torch: str = "2.13", vision: str = "0.28") -> Knowledge:
    return knowledge_for("x.py", Target(Version.parse(torch), Version.parse(vision), "option"))


def test_versions_known():
    known = known_versions()
    assert Version(2, 13) in known["torch"]
    assert Version(0, 29, 1) in known["torchvision"]


def test_modules_and_classes():
    k = kb()
    assert k.kind("torch.nn.Linear") == "class"
    assert k.kind("torch.nn.functional") == "module"
    assert k.kind("torch.nn.Sequencial") is None
    assert k.has_attribute("torch.nn", "Sequential") is True
    assert k.has_attribute("torch.nn", "Sequencial") is False
    assert k.has_attribute("torchvision.models", "Sequential") is False
    assert k.has_attribute("torchvision.models", "resnet18") is True
    # A submodule not imported by the package's __init__ still exists.
    assert k.has_attribute("torch.utils", "tensorboard") is True
    # Not recorded at all: unknown, not missing.
    assert k.has_attribute("numpy", "foo") is None


def test_instances():
    k = kb()
    assert k.instance_has("torch.nn.Linear", "in_features") is True
    assert k.instance_has("torch.nn.Linear", "in_files") is False
    assert k.instance_has("torch.nn.Linear", "weight") is True
    assert k.instance_has("torch.nn.Linear", "zero_grad") is True  # inherited from Module
    assert k.instance_has("torch.optim.SGD", "zero_grad") is True
    assert k.instance_has("torch.optim.SGD", "zero_grads") is False
    assert k.instance_has("torch.optim.SGD", "param_groups") is True
    model = k.returns("torchvision.models.resnet18")
    assert model == Instance("torchvision.models.resnet.ResNet", "torchvision.models.resnet.resnet18")
    fc = k.child(model, "fc")
    assert fc is not None and k.instance_has(fc.cls, "in_features") is True


def test_keywords():
    k = kb()
    assert k.accepts_keyword("torch.nn.Conv2d", "kernel_size") is True
    assert k.accepts_keyword("torch.nn.Conv2d", "kernal_size") is False
    # LSTM(*args, **kwargs) forwards to RNNBase.__init__.
    assert k.accepts_keyword("torch.nn.LSTM", "batch_first") is True
    assert k.accepts_keyword("torch.nn.LSTM", "batch_firs") is False
    assert k.accepts_keyword("torch.utils.data.DataLoader", "shuffle") is True
    assert k.accepts_keyword("torch.utils.data.DataLoader", "shuffel") is False
    assert Knowledge.close_match("shuffel", k.accepted_keywords("torch.utils.data.DataLoader")) == "shuffle"


def test_deprecations_follow_the_target():
    assert kb("2.3").deprecation("torch.cuda.amp.autocast") is None
    assert kb("2.4").deprecation("torch.cuda.amp.autocast") is not None
    assert kb("2.13").deprecation("torch.qr") is not None
    assert kb("2.13").removal("torch.qr") is None
    assert kb("2.14").removal("torch.qr") is not None
    assert kb("2.14").deprecation("torch.qr") is None
    assert kb("2.1").removal("torch.symeig") is not None


def test_exists_in_target():
    assert kb("2.13").exists("torch.amp.GradScaler") is True
    # An older target: the table's replacement_since decides.
    assert kb("2.1").exists("torch.amp.GradScaler") is False
    assert kb("2.13").exists("torch.nn.Sequencial") is False


def test_versions_with():
    k = kb()
    assert Version(2, 13) in k.versions_with("torch.qr")
    assert k.versions_with("torch.nn.Sequencial") == ()


@pytest.mark.parametrize(
    ("spec", "expected"),
    [(">=2.1,<2.5", "2.1"), ("==2.3.1", "2.3.1"), ("~=2.2", "2.2"), ("<2.5", None), (">=2.0, >=2.2", "2.2"), ("==2.4.*", "2.4")],
)
def test_lowest_admitted(spec, expected):
    v = lowest_admitted(spec)
    assert (str(v) if v else None) == expected


def test_parse_requirement():
    assert parse_requirement("torch>=2.1,<2.5  # comment") == ("torch", Version(2, 1))
    assert parse_requirement("torchvision[extra] == 0.19.0 ; python_version > '3.8'") == ("torchvision", Version(0, 19))
    assert parse_requirement("torchaudio>=2") is None
    assert parse_requirement("torch") is None


def test_target_from_config_then_dependencies(tmp_path):
    proj = tmp_path / "proj"
    (proj / "src").mkdir(parents=True)
    (proj / "pyproject.toml").write_text('[project]\nname = "p"\ndependencies = ["torch>=2.1,<2.5"]\n')
    t = target_for_directory(str(proj / "src"))
    assert (t.torch, t.torchvision, t.source) == (Version(2, 1), Version(0, 16), "dependencies")
    other = tmp_path / "other"
    other.mkdir()
    (other / "pyproject.toml").write_text('[tool.torchlint]\ntorch-version = "2.4"\n[project]\ndependencies = ["torch>=2.1"]\n')
    t = target_for_directory(str(other))
    assert (t.torch, t.source) == (Version(2, 4), "config")
    req = tmp_path / "req"
    req.mkdir()
    (req / "requirements-dev.txt").write_text("numpy\ntorchvision==0.18.1\n")
    t = target_for_directory(str(req))
    assert (t.torch, t.torchvision) == (Version(2, 3), Version(0, 18, 1))
    assert versions_in_directory(str(tmp_path)) is None


def test_rules_see_the_target(tmp_path):
    (tmp_path / "pyproject.toml").write_text('[tool.torchlint]\ntorch-version = "2.2"\n')
    seen = {}

    from torchlint.rules.base import Rule

    class Probe(Rule):
        code = "TL999"
        name = "probe"
        message = "probe"

        def visit_Module(self, node):
            seen["target"] = self.context.knowledge.target

    lint_source("x = 1\n", str(tmp_path / "a.py"), LintOptions(codes=frozenset(), extra_rules=(Probe,)))
    assert seen["target"].torch == Version(2, 2)
    given = Target(Version(2, 9), Version(0, 24), "option")
    lint_source("x = 1\n", str(tmp_path / "a.py"), LintOptions(codes=frozenset(), extra_rules=(Probe,), target=given))
    assert seen["target"] is given


def test_config_validates_versions(tmp_path):
    from torchlint.config import ConfigError, settings_from_table

    s = settings_from_table({"torch-version": "2.4", "torchvision-version": "0.19"}, str(tmp_path), "pyproject.toml")
    assert (s.torch_version, s.torchvision_version) == ("2.4", "0.19")
    with pytest.raises(ConfigError, match="torch-version"):
        settings_from_table({"torch-version": "new"}, str(tmp_path), "pyproject.toml")


def test_data_is_small():
    total = sum(p.stat().st_size for p in store.DATA_DIR.glob("*.json.gz"))
    assert total < 5 * 1024 * 1024


def test_facts_differ_between_releases():
    # torch.qr raises from 2.14; the profiler dropped use_cuda= in 2.14.
    assert kb("2.13").accepts_keyword("torch.autograd.profiler.profile", "use_cuda") is True
    assert kb("2.14").accepts_keyword("torch.autograd.profiler.profile", "use_cuda") is False
    assert Version(2, 9, 1) in kb().versions_with("torch.nn.Linear")


def test_prescan_finds_what_the_rules_report():
    from torchlint.knowledge.prescan import may_fire

    assert may_fire("import torchvision.models as models\nm = models.Sequential()\n") == {"TL501"}
    assert may_fire("import torch.nn as nn\nc = nn.Conv2d(3, 6, kernal_size=5)\n") == {"TL502"}
    assert may_fire("import torchvision.models as models\nr = models.resnet18()\nr.fc.in_files\n") == {"TL501"}
    assert may_fire("import torch\nx = torch.nn.Linear(2, 2)\ny = x.in_features\n") == frozenset()


def test_snapshots_load_with_shared_strings_and_the_same_content():
    import gzip
    import json

    path = sorted(store.DATA_DIR.glob("torchvision-*.json.gz"))[0]
    plain = json.loads(gzip.open(path).read())
    package, _, version = path.name[: -len(".json.gz")].partition("-")
    snap = store.load(package, Version.parse(version))
    assert (snap.modules, snap.classes, snap.functions) == (plain["modules"], plain["classes"], plain["functions"])
    # The same name in two releases is one string object.
    other = store.load(package, [v for v in store.available()[package] if v != Version.parse(version)][0])
    shared = next(name for name in snap.classes if name in other.classes)
    assert next(k for k in other.classes if k == shared) is next(k for k in snap.classes if k == shared)


def _generate_module():
    import importlib.util

    spec = importlib.util.spec_from_file_location("_kb_generate", store.DATA_DIR.parent / "generate.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_data_files_are_laid_out_one_entry_per_line_as_generate_writes_them():
    # Format 2 (store.py): the same JSON document, indexed without decoding its entries.
    import gzip
    import json

    generate = _generate_module()
    for path in sorted(store.DATA_DIR.glob("*.json.gz")):
        raw = gzip.open(path).read()
        plain = json.loads(raw)
        assert plain["format"] == 2
        assert generate.encode(plain) == raw, path.name  # what generate.py writes for this content
        doc = store.parse(raw.decode())
        for section in store.SECTIONS:
            assert isinstance(doc[section], store.Section) and not doc[section]._decoded
            assert dict(doc[section].items()) == plain[section], (path.name, section)


def test_a_snapshot_decodes_only_the_entries_asked_for():
    snap = store.load("torch", store.available()["torch"][-1])
    fresh = store.Snapshot(store.parse(gzip_text(snap)))
    assert fresh.resolve("torch.nn.Linear") == ("class", "torch.nn.modules.linear.Linear")
    assert fresh.function_signature("torch.nn.functional.relu") is not None
    assert list(fresh.modules._decoded) == ["torch.nn"]  # (the longest recorded module prefix)
    assert list(fresh.functions._decoded) == ["torch.nn.functional.relu"]
    assert len(fresh.classes._decoded) == 0
    assert len(fresh.functions) == len(snap.functions) > 1000
    # Asked for by a name built anew, an entry is still listed under the index's own (shared) string.
    asked = "".join(["torch.nn.modules.linear.", "Linear"])
    assert fresh.classes[asked] is fresh.classes.get("torch.nn.modules.linear.Linear")
    listed = next(k for k in fresh.classes if k == asked)
    assert listed is not asked and listed is next(k for k in fresh.classes._raw if k == asked)


def gzip_text(snap) -> str:
    import gzip

    return gzip.open(store.DATA_DIR / f"{snap.package}-{snap.version_text}.json.gz").read().decode()


@pytest.mark.parametrize(
    "doc",
    [
        {"format": 2, "package": "p", "version": "1.0", "builders": {}, "classes": {"p.A": {"bases": [], "attrs": ["x"]}},
         "functions": {"p.f": {"sig": ["1a", "1b=\"x,\\n\""]}, 'p.g"': {"sig": None}}, "modules": {"p": {"names": {"A": "c:p.A"}}}},
        {"format": 2, "package": "p", "version": "1.0", "modules": {}},
        {"format": 2, "package": "p", "version": "1.0"},
    ],
    ids=["escapes", "one-empty-section", "no-section"],
)
def test_what_generate_writes_reads_back_the_same(doc):
    import json

    text = _generate_module().encode(doc).decode()
    assert json.loads(text) == doc  # one JSON document
    back = store.parse(text)
    assert {k: (dict(v.items()) if isinstance(v, store.Section) else v) for k, v in back.items()} == doc


def test_a_file_in_the_old_layout_or_an_odd_one_is_read_whole():
    import json

    doc = {"format": 1, "package": "p", "version": "1.0", "builders": {}, "classes": {},
           "functions": {"p.f": {"sig": ["1a"]}}, "modules": {"p": {"names": {"f": "f:p.f"}}}}
    for text in (json.dumps(doc), json.dumps(doc, indent=1)):
        back = store.parse(text)
        assert dict(back["functions"].items()) == doc["functions"] and back["modules"]["p"] == doc["modules"]["p"]
