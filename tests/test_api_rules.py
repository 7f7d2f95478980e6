"""TL205-TL209, TL6xx, TL7xx beyond their examples: the target version, default-off selection, fixes."""

from __future__ import annotations

import libcst as cst
import pytest

from torchlint.engine import LintOptions, lint_source
from torchlint.fixes import fix_source
from torchlint.knowledge.versions import Target, Version
from torchlint.rules import all_rules, default_codes


def _target(torch: str) -> Target:
    v = Version.parse(torch)
    return Target(v, Version(0, v.minor + 15) if v.major == 2 else Version(0, 14), "option")


def lint(source: str, code: str, torch: str | None = None):
    options = LintOptions(codes=frozenset({code}), target=_target(torch) if torch else None)
    report = lint_source(source, "t.py", options)
    assert report.errors == []
    return [f for f in report.findings if f.code == code]


LOAD = "import torch\nckpt = torch.load('ckpt.pt')\n"


def test_tl205_before_2_6_is_about_arbitrary_code_and_its_fix_is_unsafe():
    (f,) = lint(LOAD, "TL205", "2.4")
    assert "unpickles arbitrary code in torch 2.4" in f.message
    assert f.fix is not None and f.fix.applicability == "unsafe"


def test_tl205_from_2_6_is_about_full_models_failing_and_its_fix_is_safe():
    (f,) = lint(LOAD, "TL205", "2.6")
    assert "UnpicklingError" in f.message and "torch 2.6" in f.message
    assert f.fix is not None and f.fix.applicability == "safe"


def test_tl205_fix_is_unsafe_when_the_project_declares_no_version(tmp_path):
    path = tmp_path / "train.py"
    report = lint_source(LOAD, str(path), LintOptions(codes=frozenset({"TL205"})))
    (f,) = report.findings
    assert "UnpicklingError" in f.message  # the newest release is assumed for the message
    assert f.fix is not None and f.fix.applicability == "unsafe"


def test_tl205_state_dict_message():
    (f,) = lint("import torch\nnet.load_state_dict(torch.load('w.pt'))\n", "TL205", "2.13")
    assert "loads a `state_dict`" in f.message


def test_tl205_target_from_pyproject(tmp_path):
    (tmp_path / "pyproject.toml").write_text('[project]\nname = "p"\ndependencies = ["torch>=2.2,<2.5"]\n')
    path = tmp_path / "train.py"
    path.write_text(LOAD)
    report = lint_source(LOAD, str(path), LintOptions(codes=frozenset({"TL205"})))
    (f,) = report.findings
    assert "torch 2.2" in f.message and "arbitrary code" in f.message


def test_tl702_bare_zero_grad_only_before_2_0():
    source = "import torch\nopt = torch.optim.SGD(params, lr=0.1)\nopt.zero_grad()\n"
    assert lint(source, "TL702", "2.0") == []
    (f,) = lint(source, "TL702", "1.13")
    assert "before PyTorch 2.0" in f.message
    fixed, applied, _ = fix_source(source, lambda s: lint(s, "TL702", "1.13"), unsafe=True)
    assert applied == 1 and fixed.endswith("opt.zero_grad(set_to_none=True)\n")


@pytest.mark.parametrize("code", ["TL209", "TL701", "TL702"])
def test_off_by_default(code):
    assert not all_rules()[code].default_enabled
    assert code not in default_codes()
    # lint_source's default options run the default set only.
    source = {
        "TL209": "import torchvision.models as models\n",
        "TL701": "from torch.utils.data import DataLoader\ndl = DataLoader(ds)\n",
        "TL702": "import torch\nopt = torch.optim.SGD(p, lr=1)\nopt.zero_grad(set_to_none=False)\n",
    }[code]
    assert [f for f in lint_source(source, "t.py").findings if f.code == code] == []
    assert lint(source, code)


def test_tl208_fix_adds_import_torch_and_parses():
    source = "from torchvision.transforms import v2\ntransform = v2.ToTensor()\n"
    fixed, applied, remaining = fix_source(source, lambda s: lint(s, "TL208"))
    assert applied == 1 and remaining == []
    assert "import torch\n" in fixed and "v2.Compose([v2.ToImage(), v2.ToDtype(torch.float32, scale=True)])" in fixed
    cst.parse_module(fixed)


def test_tl208_no_fix_where_a_name_means_something_else():
    source = "from torchvision.transforms.v2 import ToTensor\nfrom mylib import ToImage\nt = ToTensor()\n"
    (f,) = lint(source, "TL208")
    assert f.fix is None


def test_numeric_fixes_keep_the_value_at_ordinary_magnitudes():
    """The fixed expressions compute the same numbers where both forms are accurate."""
    torch = pytest.importorskip("torch")
    x = torch.linspace(0.5, 3.0, 11)
    env = {"torch": torch, "x": x}
    for code, source in (
        ("TL601", "y = torch.log(1 + x)\n"),
        ("TL602", "y = torch.exp(x) - 1\n"),
        ("TL603", "y = torch.log(torch.sum(torch.exp(x), 0, keepdim=True))\n"),
    ):
        source = "import torch\n" + source
        fixed, applied, _ = fix_source(source, lambda s, c=code: lint(s, c), unsafe=True)
        assert applied == 1, code
        before, after = dict(env), dict(env)
        exec(source, before)
        exec(fixed, after)
        assert torch.allclose(before["y"], after["y"], rtol=1e-5), (code, fixed)


def test_rules_stay_silent_where_the_target_predates_the_api():
    # weights_only= came in torch 1.13; the use_reentrant warning in 2.1; v2.ToImage in torchvision 0.16.
    assert lint(LOAD, "TL205", "1.12") == []
    assert lint(LOAD, "TL205", "1.13")
    ckpt = "from torch.utils.checkpoint import checkpoint\ny = checkpoint(f, x)\n"
    assert lint(ckpt, "TL207", "2.0") == []
    assert lint(ckpt, "TL207", "2.1")
    to_tensor = "import torch\nfrom torchvision.transforms import v2\nt = v2.ToTensor()\n"
    assert lint(to_tensor, "TL208", "2.0") == []  # torchvision 0.15
    assert lint(to_tensor, "TL208", "2.1")  # torchvision 0.16
