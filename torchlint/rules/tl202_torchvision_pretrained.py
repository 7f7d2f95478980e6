from __future__ import annotations

import libcst as cst

from torchlint.analysis.apicalls import condition_text, reference_to, replace_argument
from torchlint.analysis.vision_builders import WeightsFlag, weights_flags
from torchlint.data.torchvision_weights import WeightsRef
from torchlint.rules.base import FixOp, FixSpec, Invalid, Rule


class TorchvisionPretrained(Rule):
    """
    ## What it does
    Checks for `pretrained=` and `pretrained_backbone=` passed to a torchvision
    model builder (`torchvision.models.resnet18`, `...detection.fasterrcnn_resnet50_fpn`,
    `...segmentation`, `...video`, `...quantization`, `...optical_flow`), and for the
    old positional form `resnet18(True)`. Builders are recognised through the
    file's imports; timm, Hugging Face, `torch.hub.load` and functions of your own
    that happen to be called `resnet18` are left alone. Builders picked by name at
    run time (`models.__dict__[args.arch](pretrained=True)`, `getattr(models, name)(...)`)
    are checked too.

    ## Why is this bad?
    torchvision 0.13 replaced the boolean flags with `weights=` / `weights_backbone=`,
    which name the exact checkpoint (and carry its preprocessing transforms and
    metadata). `torch.hub.load("pytorch/vision", "resnet18", pretrained=True)`
    passes the flag on to the same builder. The flags still work through a compatibility shim that emits a
    deprecation warning on every call and may be removed. `pretrained=True` is also
    ambiguous: it silently keeps loading the *oldest* checkpoint (`IMAGENET1K_V1`)
    even where torchvision has much better ones.

    ## Example
    ```python
    import torchvision.models as models

    model = models.resnet18(pretrained=True)
    ```

    ## Use instead
    ```python
    import torchvision.models as models

    model = models.resnet18(weights=models.ResNet18_Weights.IMAGENET1K_V1)
    # or, for the best weights torchvision has: models.ResNet18_Weights.DEFAULT
    ```

    ## Fix safety
    The fix is safe: it writes the member that torchvision's own compatibility
    shim substitutes for the flag (`pretrained=True` -> `IMAGENET1K_V1` for
    classification, `COCO_V1` for detection, `COCO_WITH_VOC_LABELS_V1` for
    segmentation, `KINETICS400_V1` for video, the `*_QuantizedWeights` member for
    `quantize=True`; `pretrained_backbone=True` -> the backbone's `IMAGENET1K_V1`,
    or `IMAGENET1K_FEATURES` for SSD's VGG16), and `False` becomes `None`. So the
    fixed code loads the same checkpoint and builds the same model. It deliberately
    does not write `.DEFAULT`: that can pick newer weights (e.g. `IMAGENET1K_V2`
    for ResNet-50) with different accuracy and preprocessing, which is an upgrade
    to choose, not a refactoring; the message names it.

    A non-literal flag, `pretrained=args.pretrained`, becomes
    `weights=ResNet18_Weights.IMAGENET1K_V1 if args.pretrained else None`, which
    is also safe: the shim tests the flag's truthiness the same way, and the
    expression stays where it was, so it is evaluated once and in the same order.

    For a builder picked at run time the enum is unknown, so the fix writes the
    member as a string, which every builder accepts (`weights="IMAGENET1K_V1"`),
    and only where all builders of that module map the flag to the same member
    (classification, detection, segmentation, video; for backbones, segmentation).

    The enum is referenced through the module the builder was reached by
    (`models.resnet18` -> `models.ResNet18_Weights`), through a name already
    imported, or else imported: added to the leading `from torchvision.models
    import ...` line when there is one, or as a new import line. No fix is
    offered where that name is bound to something else in the file, for builders
    torchvision has no legacy weights for (`vit_h_14`, `regnet_y_128gf`: there
    `pretrained=True` raises, and an unsafe fix to `.DEFAULT` is offered), for
    quantization builders whose `quantize=` is not a literal, for `resnet18(True,
    ...)` with more positional arguments, and where `weights=` is passed as well
    (torchvision then forwards `pretrained` to the model class, a `TypeError`).
    The fixed code needs torchvision >= 0.13.
    """

    code = "TL202"
    incremental = True  # findings depend on the statements linked to theirs (torchlint/slices.py)
    name = "torchvision-pretrained"
    message = "`pretrained=` is deprecated since torchvision 0.13; use `weights=` with the builder's weights enum"
    severity = "warning"
    deprecated = True
    confirmable = True  # by running the builder under the installed torchvision (when there is one)
    # Every way to a builder goes through an import naming torchvision (a string, `"torchvision::roi_align"`, is none).
    triggers = ("torchvision", "pytorch/vision")
    qualified_triggers = frozenset({"torchvision.models", "torch.hub.load"})

    VALID = [
        # The modern API.
        "import torchvision.models as models\nm = models.resnet18(weights=models.ResNet18_Weights.DEFAULT)\n",
        # timm has its own, current, pretrained flag.
        "import timm\nm = timm.create_model('resnet18', pretrained=True)\n",
        # torch.hub forwards kwargs to the entry point of a repo that is not torchvision's.
        "import torch\nm = torch.hub.load('facebookresearch/dino:main', 'dino_vits16', pretrained=True)\n",
        # A torchvision release from before weights= existed: pretrained= is its API.
        "import torch\nm = torch.hub.load('pytorch/vision:v0.10.0', 'resnet18', pretrained=True)\n",
        # A user function that happens to share the name.
        "import torchvision\n\ndef resnet18(pretrained=False):\n    return torchvision.models.resnet18()\n\nm = resnet18(pretrained=True)\n",
        # A local package called models is not torchvision.models.
        "import torchvision\nfrom . import models\nm = models.resnet18(pretrained=True)\n",
        # Hugging Face.
        "import torchvision\nfrom transformers import AutoModel\nm = AutoModel.from_pretrained('bert-base-uncased')\n",
        # getattr on a module of the user's own.
        "import torchvision\nimport zoo\nm = getattr(zoo, name)(pretrained=True)\n",
        # A positional argument that is not a literal flag may already be a weights enum.
        "from torchvision.models import resnet18, ResNet18_Weights\nw = ResNet18_Weights.DEFAULT\nm = resnet18(w)\n",
    ]
    INVALID = [
        Invalid(
            "import torchvision.models as models\nmodel = models.resnet18(pretrained=True)\n",
            "import torchvision.models as models\nmodel = models.resnet18(weights=models.ResNet18_Weights.IMAGENET1K_V1)\n",
        ),
        Invalid(
            "from torchvision.models import resnet50\nnet = resnet50(pretrained=True)\n",
            "from torchvision.models import resnet50, ResNet50_Weights\nnet = resnet50(weights=ResNet50_Weights.IMAGENET1K_V1)\n",
        ),
        Invalid(
            "from torchvision import models\nscratch = models.vgg16(pretrained=False)\n",
            "from torchvision import models\nscratch = models.vgg16(weights=None)\n",
        ),
        Invalid(
            "import torchvision\n\ndef build(args):\n    return torchvision.models.mobilenet_v2(pretrained=args.pretrained)\n",
            "import torchvision\n\ndef build(args):\n    return torchvision.models.mobilenet_v2(weights=torchvision.models.MobileNet_V2_Weights.IMAGENET1K_V1 if args.pretrained else None)\n",
        ),
        Invalid(
            "import torchvision\nm = torchvision.models.detection.fasterrcnn_resnet50_fpn(pretrained_backbone=False, num_classes=3)\n",
            "import torchvision\nm = torchvision.models.detection.fasterrcnn_resnet50_fpn(weights_backbone=None, num_classes=3)\n",
        ),
        Invalid(
            "from torchvision.models.detection import fasterrcnn_resnet50_fpn\n"
            "m = fasterrcnn_resnet50_fpn(pretrained=True, pretrained_backbone=True)\n",
            "from torchvision.models.detection import fasterrcnn_resnet50_fpn, FasterRCNN_ResNet50_FPN_Weights\n"
            "from torchvision.models import ResNet50_Weights\n"
            "m = fasterrcnn_resnet50_fpn(weights=FasterRCNN_ResNet50_FPN_Weights.COCO_V1, "
            "weights_backbone=ResNet50_Weights.IMAGENET1K_V1)\n",
            count=2,
        ),
        # The ImageNet example script picks the architecture from the command line.
        Invalid(
            "import torchvision.models as models\n\ndef main(args):\n    model = models.__dict__[args.arch](pretrained=True)\n",
            "import torchvision.models as models\n\ndef main(args):\n    model = models.__dict__[args.arch](weights=\"IMAGENET1K_V1\")\n",
        ),
        # torch.hub.load passes the keyword on to torchvision's builder.
        Invalid(
            "import torch\nm = torch.hub.load('pytorch/vision', 'resnet18', pretrained=True)\n",
            "import torch\nm = torch.hub.load('pytorch/vision', 'resnet18', weights=\"IMAGENET1K_V1\")\n",
        ),
        # The pre-0.13 positional form.
        Invalid(
            "import torchvision.models as models\nm = models.resnet18(True)\n",
            "import torchvision.models as models\nm = models.resnet18(weights=models.ResNet18_Weights.IMAGENET1K_V1)\n",
        ),
        Invalid(
            "from torchvision.models import quantization\nq = quantization.resnet18(pretrained=True, quantize=True)\n",
            "from torchvision.models import quantization\n"
            "q = quantization.resnet18(weights=quantization.ResNet18_QuantizedWeights.IMAGENET1K_FBGEMM_V1, quantize=True)\n",
        ),
    ]

    def visit_Call(self, node: cst.Call) -> None:
        for flag in weights_flags(self.context, node):  # the builder the call reaches, and how
            data = {"builder": flag.builder, "parameter": flag.old}
            if flag.reached == "hub":
                data["through"] = "torch.hub.load"
            if flag.conflict:
                self.report(flag.arg, f"`{flag.old}=` is ignored next to `{flag.new}=`: torchvision passes it on to the model "
                            "class, which raises TypeError; remove it", data=data)  # fmt: skip
            elif flag.reached == "name":
                self._check_enum(flag, data)
            else:
                self._check_string(flag, data)

    def _check_enum(self, flag: WeightsFlag, data: dict) -> None:
        """A builder named through the imports: ``weights=`` gets a member of its enum."""
        arg, old, new, ref, info = flag.arg, flag.old, flag.new, flag.ref, flag.info
        assert info is not None
        code = self.context.code(arg.value)
        shown = f"`{old}={code}`" if arg.keyword is not None else f"`{info.name}({code})` (the positional `pretrained` flag)"
        if ref is None:
            # A quantization builder whose quantize= we cannot read: two enums are possible.
            enums = f"`{info.weights.enum}` or `{info.float_weights.enum}`" if info.float_weights else f"`{info.weights.enum}`"
            self.report(arg, f"{shown} is deprecated since torchvision 0.13; use `{new}=` with {enums}", data=data)
            return
        data.update(weights_enum=f"{ref.home}.{ref.enum}", equivalent=ref.legacy)
        best = f"`{new}={ref.enum}.DEFAULT` (the best available)"
        if flag.value is False:
            message = f"{shown} is deprecated since torchvision 0.13; use `{new}=None`"
        elif ref.legacy is None:
            message = f"{shown} fails: torchvision has no legacy weights for `{info.name}`; use {best} or another `{ref.enum}` member"
        elif flag.value is True:
            message = f"{shown} is deprecated since torchvision 0.13; use `{new}={ref.enum}.{ref.legacy}` (the same weights) or {best}"
        else:
            message = (f"{shown} is deprecated since torchvision 0.13; use `{new}={ref.enum}.{ref.legacy}` "
                       f"(what `{old}=True` loads) or {best}, or `{new}=None`")  # fmt: skip
        self.report(arg, message, fix=self._enum_fix(flag, ref), data=data)

    def _enum_fix(self, flag: WeightsFlag, ref: WeightsRef) -> FixSpec | None:
        if flag.arg.keyword is None and flag.positionals != 1:
            return None  # resnet18(True, False): the other positionals would follow a keyword
        imports: list[FixOp] = []
        value = "None"
        if flag.value is not False:
            enum = reference_to(self.context, ref.enum, ref.modules, flag.call.func, imports)
            if enum is None:
                return None  # the enum's name means something else here
            value = self._value(flag, f"{enum}.{ref.legacy or 'DEFAULT'}")
        replaced = ("" if flag.arg.keyword else "positional ") + self.context.code(flag.arg).rstrip(", ")
        return self._fix(flag, value, replaced, tuple(imports), unsafe=ref.legacy is None and flag.value is not False)

    def _check_string(self, flag: WeightsFlag, data: dict) -> None:
        """A builder picked at run time or loaded through torch.hub: ``weights=`` gets the member's name."""
        old, new, hub = flag.old, flag.new, flag.reached == "hub"
        name = flag.info.name if flag.info is not None else None
        shown = f"{old}={self.context.code(flag.arg.value)}"
        if flag.value is not False and flag.member is None:
            if hub:
                message = f"`{shown}` (through torch.hub.load) fails: torchvision has no legacy weights for `{name}`; use `{new}=\"DEFAULT\"`"
            else:  # the builders of this namespace map the flag to different members
                message = f"`{shown}` is deprecated since torchvision 0.13; use `{new}=` with the builder's weights enum, or `{new}=\"DEFAULT\"`"
            self.report(flag.arg, message, data=data)
            return
        if flag.value is not False:
            data["equivalent"] = flag.member
        value = self._value(flag, f'"{flag.member}"')
        if hub:
            message = (f"`{shown}` (passed by torch.hub.load to torchvision's `{name}`) is deprecated since torchvision 0.13; use "
                       f"`{new}={value}`" + ("" if flag.value is False else f" (the same weights) or `{new}=\"DEFAULT\"`"))
        elif flag.value is False:
            message = f"`{shown}` is deprecated since torchvision 0.13; use `{new}=None`"
        else:
            message = (f"`{shown}` is deprecated since torchvision 0.13; use `{new}=\"{flag.member}\"` (what `{old}=True` loads "
                       f"for every `{flag.namespace}` builder) or `{new}=\"DEFAULT\"` (the best available)")
        self.report(flag.arg, message, fix=self._fix(flag, value, shown), data=data)

    def _value(self, flag: WeightsFlag, when_true: str) -> str:
        """What ``weights=`` gets: ``when_true`` for a true flag, None for a false one, else a conditional."""
        if flag.value is None:
            return f"{when_true} if {condition_text(self.context, flag.arg.value)} else None"
        return when_true if flag.value else "None"

    def _fix(self, flag: WeightsFlag, value: str, replaced: str, imports: tuple[FixOp, ...] = (), unsafe: bool = False) -> FixSpec:
        """``old=flag`` (or the positional flag) becomes ``new=value``; ``imports`` bring the enum's name."""
        title = f"Replace `{replaced}` with `{flag.new}={value}`" + (" and import the enum" if imports else "")
        ops = (*replace_argument(flag.arg, flag.new, value), *imports)
        return FixSpec(title, ops, applicability="unsafe" if unsafe else "safe")
