"""TL202 torchvision-pretrained: resolving builders through imports, and the form of the fix."""

from __future__ import annotations

import textwrap

import pytest

from torchlint.testing import RuleTester

RULE = RuleTester("TL202")
findings, fixed = RULE.findings, RULE.fixed


@pytest.mark.parametrize(
    "imports,call",
    [
        ("import torchvision.models as models", "models.resnet18"),
        ("from torchvision.models import resnet18", "resnet18"),
        ("from torchvision.models import resnet18 as rn", "rn"),
        ("from torchvision import models", "models.resnet18"),
        ("import torchvision", "torchvision.models.resnet18"),
        ("import torchvision.models", "torchvision.models.resnet18"),
        ("import torchvision as tv", "tv.models.resnet18"),
        ("from torchvision.models.resnet import resnet18", "resnet18"),
        ("import torchvision.models.resnet as R", "R.resnet18"),
        ("from torchvision.models import *", "resnet18"),
        ("import torchvision", "torchvision.models.detection.fasterrcnn_resnet50_fpn"),
        ("from torchvision.models import detection", "detection.maskrcnn_resnet50_fpn"),
        ("import torchvision.models.detection as det", "det.retinanet_resnet50_fpn"),
        ("from torchvision.models.segmentation import fcn_resnet50", "fcn_resnet50"),
        ("import torchvision", "torchvision.models.segmentation.deeplabv3_resnet101"),
        ("from torchvision.models import video", "video.r3d_18"),
        ("from torchvision.models import quantization", "quantization.resnet50"),
        ("from torchvision.models.optical_flow import raft_large", "raft_large"),
    ],
)
def test_builders_are_resolved_through_imports(imports, call):
    (f,) = findings(f"{imports}\nm = {call}(pretrained=True)\n")
    assert f.code == "TL202" and f.severity == "warning" and f.deprecated
    # Reported on the argument, not the whole call.
    assert f.range.column == len(f"m = {call}(")
    assert f.fix is not None and f.fix.applicability == "safe"


def test_resolution_inside_functions_and_methods():
    code = """
    from torchvision import models

    class Net:
        def __init__(self):
            self.backbone = models.resnet34(pretrained=True)

    def make(models):
        # The parameter shadows the import: unknown.
        return models.resnet34(pretrained=True)
    """
    assert [f.range.line for f in findings(code)] == [6]


@pytest.mark.parametrize(
    "code",
    [
        "import timm\nimport torchvision\nm = timm.create_model('resnet18', pretrained=True)\n",
        # A torchvision tag from before weights= (issue #11: an untagged hub load is TL202).
        "import torch, torchvision\nm = torch.hub.load('pytorch/vision:v0.10.0', 'resnet18', pretrained=True)\n",
        "import torchvision\nfrom transformers import AutoModel\nm = AutoModel.from_pretrained('x')\n",
        # The user's own builder, and a local models package.
        "import torchvision\ndef resnet18(pretrained=False):\n    return None\nm = resnet18(pretrained=True)\n",
        "import torchvision\nfrom . import models\nm = models.resnet18(pretrained=True)\n",
        "import torchvision\nfrom .models import resnet18\nm = resnet18(pretrained=True)\n",
        "import torchvision\nimport models\nm = models.resnet18(pretrained=True)\n",
        # Imported one way or another: cannot know which.
        "try:\n    from torchvision.models import resnet18\nexcept ImportError:\n    from mynets import resnet18\nm = resnet18(pretrained=True)\n",
        # Shadowed after the import.
        "from torchvision.models import resnet18\nresnet18 = build_registry()['resnet18']\nm = resnet18(pretrained=True)\n",
        # Classification builders never took pretrained_backbone (it is a TypeError, not a deprecation).
        "import torchvision\nm = torchvision.models.resnet50(pretrained_backbone=True)\n",
        # A non-literal positional may already be a weights enum.
        "import torchvision\nm = torchvision.models.resnet50(w)\n",
        # get_model() and the weights API are current.
        "import torchvision\nm = torchvision.models.get_model('resnet50', weights='DEFAULT')\n",
        "import torchvision\nm = torchvision.models.resnet50(weights=None)\n",
        # Not a builder.
        "import torchvision\nds = torchvision.datasets.ImageNet('x', pretrained=True)\n",
        # A file that never imports torchvision.
        "from models import resnet18\nm = resnet18(pretrained=True)\n",
    ],
)
def test_silent(code):
    assert findings(code) == []


def test_message_names_the_equivalent_and_the_default():
    (f,) = findings("import torchvision\nm = torchvision.models.resnet50(pretrained=True)\n")
    assert f.message == (
        "`pretrained=True` is deprecated since torchvision 0.13; use `weights=ResNet50_Weights.IMAGENET1K_V1` "
        "(the same weights) or `weights=ResNet50_Weights.DEFAULT` (the best available)"
    )
    assert f.data == {
        "builder": "torchvision.models.resnet50",
        "parameter": "pretrained",
        "weights_enum": "torchvision.models.ResNet50_Weights",
        "equivalent": "IMAGENET1K_V1",
    }


def test_fix_through_module_alias_needs_no_import():
    code = "import torchvision\nm = torchvision.models.detection.fasterrcnn_resnet50_fpn(pretrained=True, pretrained_backbone=False)\n"
    assert fixed(code) == (
        "import torchvision\nm = torchvision.models.detection.fasterrcnn_resnet50_fpn("
        "weights=torchvision.models.detection.FasterRCNN_ResNet50_FPN_Weights.COCO_V1, weights_backbone=None)\n"
    )
    # The backbone enum lives in torchvision.models, reached through the prefix of the same chain.
    code = "import torchvision\nm = torchvision.models.segmentation.fcn_resnet50(pretrained_backbone=True)\n"
    assert "weights_backbone=torchvision.models.ResNet50_Weights.IMAGENET1K_V1)" in fixed(code)


def test_fix_edits_the_leading_import_or_adds_one():
    code = '''\
    """Docs."""
    from torchvision.models import resnet18
    import torch

    m = resnet18(pretrained=True)
    '''
    assert fixed(code) == textwrap.dedent(
        '''\
        """Docs."""
        from torchvision.models import resnet18, ResNet18_Weights
        import torch

        m = resnet18(weights=ResNet18_Weights.IMAGENET1K_V1)
        '''
    )
    # A parenthesised import is left as it is; a new line goes after the leading imports.
    code = "from torchvision.models import (\n    resnet18,\n)\nimport torch\n\nm = resnet18(pretrained=True)\n"
    assert fixed(code) == (
        "from torchvision.models import (\n    resnet18,\n)\nimport torch\nfrom torchvision.models import ResNet18_Weights\n"
        "\nm = resnet18(weights=ResNet18_Weights.IMAGENET1K_V1)\n"
    )
    # Builder imported inside a function: the enum import goes to the top of the module.
    code = "import os\n\ndef build():\n    from torchvision.models import vgg11\n    return vgg11(pretrained=True)\n"
    assert fixed(code) == (
        "import os\nfrom torchvision.models import VGG11_Weights\n\n"
        "def build():\n    from torchvision.models import vgg11\n    return vgg11(weights=VGG11_Weights.IMAGENET1K_V1)\n"
    )


def test_fix_reuses_an_imported_enum_and_two_fixes_share_one_import():
    code = "from torchvision.models import ResNet18_Weights, resnet18\nm = resnet18(pretrained=True)\n"
    assert fixed(code) == "from torchvision.models import ResNet18_Weights, resnet18\nm = resnet18(weights=ResNet18_Weights.IMAGENET1K_V1)\n"
    code = "from torchvision.models import resnet18\na = resnet18(pretrained=True)\nb = resnet18(pretrained=True)\n"
    out = fixed(code)
    assert out.count("ResNet18_Weights") == 3 and out.startswith("from torchvision.models import resnet18, ResNet18_Weights\n")
    assert findings(out) == []


def test_no_fix_where_the_enum_name_means_something_else():
    code = "from torchvision.models import resnet18\nResNet18_Weights = {'url': 'x'}\nm = resnet18(pretrained=True)\n"
    (f,) = findings(code)
    assert f.fix is None


def test_non_literal_flag_becomes_a_conditional():
    code = "from torchvision import models\ndef build(cfg):\n    return models.alexnet(pretrained=cfg.pretrained)\n"
    assert "models.alexnet(weights=models.AlexNet_Weights.IMAGENET1K_V1 if cfg.pretrained else None)" in fixed(code)
    # A test that binds looser than a conditional keeps its meaning in parentheses.
    code = "from torchvision import models\nm = models.alexnet(pretrained=a if b else c)\n"
    assert "weights=models.AlexNet_Weights.IMAGENET1K_V1 if (a if b else c) else None)" in fixed(code)
    # pretrained=None was falsy.
    assert "weights=None" in fixed("from torchvision import models\nm = models.alexnet(pretrained=None)\n")


def test_positional_flag():
    (f,) = findings("from torchvision import models\nm = models.resnet18(True)\n")
    assert f.fix is not None
    assert fixed("from torchvision import models\nm = models.resnet18(False)\n") == (
        "from torchvision import models\nm = models.resnet18(weights=None)\n"
    )
    # More positionals would follow a keyword after the rewrite: reported, not fixed.
    (f,) = findings("from torchvision import models\nm = models.resnet18(True, True)\n")
    assert f.fix is None
    # Next to weights= the positional is something else altogether.
    assert findings("from torchvision import models\nm = models.resnet18(True, weights=None)\n") == []


def test_quantization_builders_pick_the_enum_by_quantize():
    code = "import torchvision\nm = torchvision.models.quantization.resnet18(pretrained=True{})\n"
    assert "torchvision.models.quantization.ResNet18_QuantizedWeights.IMAGENET1K_FBGEMM_V1" in fixed(code.format(", quantize=True"))
    assert "weights=torchvision.models.ResNet18_Weights.IMAGENET1K_V1," in fixed(code.format(", quantize=False"))
    assert "weights=torchvision.models.ResNet18_Weights.IMAGENET1K_V1)" in fixed(code.format(""))
    (f,) = findings(code.format(", quantize=args.quantize"))
    assert f.fix is None and "ResNet18_QuantizedWeights" in f.message and "ResNet18_Weights" in f.message


def test_builders_without_legacy_weights_get_an_unsafe_fix():
    (f,) = findings("import torchvision\nm = torchvision.models.vit_h_14(pretrained=True)\n")
    assert "fails" in f.message and f.fix.applicability == "unsafe"
    assert "weights=torchvision.models.ViT_H_14_Weights.DEFAULT" in fixed(
        "import torchvision\nm = torchvision.models.vit_h_14(pretrained=True)\n", unsafe=True
    )
    # pretrained=False is still an exact rewrite.
    (f,) = findings("import torchvision\nm = torchvision.models.vit_h_14(pretrained=False)\n")
    assert f.fix.applicability == "safe"


def test_pretrained_next_to_weights_is_reported_without_fix():
    (f,) = findings("import torchvision\nm = torchvision.models.resnet18(weights=None, pretrained=True)\n")
    assert f.fix is None and "TypeError" in f.message


def test_multiline_call_reports_each_argument_on_its_line():
    code = """
    import torchvision
    model = torchvision.models.detection.ssd300_vgg16(
        pretrained=False,
        pretrained_backbone=True,
        num_classes=3,
    )
    """
    fs = findings(code)
    assert [(f.range.line, f.data["parameter"]) for f in fs] == [(4, "pretrained"), (5, "pretrained_backbone")]
    out = fixed(code)
    assert "weights_backbone=torchvision.models.VGG16_Weights.IMAGENET1K_FEATURES," in out
    assert "\n    weights=None,\n" in out
    assert findings(out) == []


def test_noqa():
    assert findings("import torchvision\nm = torchvision.models.resnet18(pretrained=True)  # noqa: TL202\n") == []


def test_builders_picked_at_run_time():
    code = "import torchvision.models as models\nm = models.__dict__[arch](pretrained=True)\n"
    (f,) = findings(code)
    assert f.fix.applicability == "safe" and f.data["equivalent"] == "IMAGENET1K_V1"
    assert fixed(code).endswith('models.__dict__[arch](weights="IMAGENET1K_V1")\n')
    code = "from torchvision.models import detection\nm = getattr(detection, name)(pretrained=flag, pretrained_backbone=False)\n"
    assert fixed(code).endswith('(weights="COCO_V1" if flag else None, weights_backbone=None)\n')
    # Detection backbones differ (SSD's VGG16 uses IMAGENET1K_FEATURES): no single string to write.
    (f,) = findings("import torchvision\nm = torchvision.models.detection.__dict__[a](pretrained_backbone=True)\n")
    assert f.fix is None
    # Quantization members depend on the builder and on quantize=.
    (f,) = findings("import torchvision\nm = torchvision.models.quantization.__dict__[a](pretrained=True)\n")
    assert f.fix is None
    # Not torchvision, or not a module.
    assert findings("import torchvision\nimport zoo\nm = zoo.__dict__[a](pretrained=True)\n") == []
    assert findings("import torchvision\nm = registry[a](pretrained=True)\n") == []
    assert findings("import torchvision\nm = getattr(torchvision.models, a, None)\n") == []
