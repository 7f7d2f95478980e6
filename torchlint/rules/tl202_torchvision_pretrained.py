from __future__ import annotations

import libcst as cst

from torchlint.data.torchvision_weights import (
    BUILDER_NAMES,
    NAMESPACE_BACKBONE_LEGACY,
    NAMESPACE_LEGACY,
    BuilderInfo,
    WeightsRef,
    builder_info,
)
from torchlint.names import dotted_name
from torchlint.knowledge.versions import Version
from torchlint.rules._hub import HUB_NAMESPACES, forwarded_keywords, vision_hub_model, vision_hub_tag
from torchlint.rules.base import FixOp, FixSpec, InsertAtLine, Invalid, Replace, Rule

# Modules whose builders a program may pick by name at run time.
_NAMESPACES = frozenset(
    f"torchvision.models{sub}" for sub in ("", ".detection", ".segmentation", ".video", ".quantization", ".optical_flow")
)
_BACKBONE_NAMESPACES = frozenset({"torchvision.models.detection", "torchvision.models.segmentation"})

# Expressions that bind looser than a conditional's test and so need parentheses there.
_NEEDS_PARENS = (cst.IfExp, cst.Lambda, cst.NamedExpr, cst.Yield)


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
    # Confirmed by running the builder under the installed torchvision (when there is one).
    confirmable = True
    # Every way of reaching a builder goes through an import naming torchvision.
    triggers = ("torchvision", "pytorch/vision")

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
        func = node.func
        # Cheap rejection first: an attribute call names the builder itself
        # (aliases only rename modules); a bare name may be ``import ... as``.
        if isinstance(func, cst.Attribute):
            if func.attr.value not in BUILDER_NAMES and func.attr.value != "load":
                return
        elif isinstance(func, (cst.Subscript, cst.Call)):
            self._visit_dynamic(node)
            return
        elif not isinstance(func, cst.Name):
            return
        if isinstance(func, cst.Attribute) and func.attr.value == "load" or isinstance(func, cst.Name):
            if self.context.qualname(func) == "torch.hub.load":
                self._visit_hub(node)
                return
        info = builder_info(self.context.qualname(func))
        if info is None:
            return
        keywords = {arg.keyword.value: arg for arg in node.args if arg.keyword is not None}
        positional = [arg for arg in node.args if arg.keyword is None and arg.star == ""]
        if "pretrained" in keywords:
            self._check(node, info, keywords["pretrained"], keywords, "pretrained", "weights")
        elif (
            positional
            and "weights" not in keywords
            and not any(arg.star == "*" for arg in node.args)
            and _is_true_or_false(positional[0].value)
        ):
            # Old signature: resnet18(pretrained=False, progress=True, ...). A
            # non-literal first argument may be a weights enum, so only flags count.
            self._check(node, info, positional[0], keywords, "pretrained", "weights", n_positional=len(positional))
        if "pretrained_backbone" in keywords and info.backbone is not None:
            self._check(node, info, keywords["pretrained_backbone"], keywords, "pretrained_backbone", "weights_backbone")

    def _check(
        self,
        call: cst.Call,
        info: BuilderInfo,
        arg: cst.Arg,
        keywords: dict[str, cst.Arg],
        old: str,
        new: str,
        n_positional: int = 0,
    ) -> None:
        flag = _bool_literal(arg.value)
        shown = f"{old}={self.context.code(arg.value)}" if arg.keyword is not None else f"{info.name}({self.context.code(arg.value)})"
        positional_note = " (the positional `pretrained` flag)" if arg.keyword is None else ""
        ref = self._ref(info, keywords) if old == "pretrained" else info.backbone
        data = {"builder": info.qualnames[0], "parameter": old}
        if new in keywords:
            self.report(
                arg,
                f"`{old}=` is ignored next to `{new}=`: torchvision passes it on to the model class, "
                f"which raises TypeError; remove it",
                data=data,
            )
            return
        if ref is None:
            # A quantization builder whose quantize= we cannot read: two enums are possible.
            enums = f"`{info.weights.enum}` or `{info.float_weights.enum}`" if info.float_weights else f"`{info.weights.enum}`"
            self.report(arg, f"`{shown}`{positional_note} is deprecated since torchvision 0.13; use `{new}=` with {enums}", data=data)
            return
        data.update(weights_enum=f"{ref.home}.{ref.enum}", equivalent=ref.legacy)
        best = f"`{new}={ref.enum}.DEFAULT` (the best available)"
        if flag is False:
            message = f"`{shown}`{positional_note} is deprecated since torchvision 0.13; use `{new}=None`"
        elif ref.legacy is None:
            message = (
                f"`{shown}`{positional_note} fails: torchvision has no legacy weights for `{info.name}`; "
                f"use {best} or another `{ref.enum}` member"
            )
        elif flag is True:
            message = (
                f"`{shown}`{positional_note} is deprecated since torchvision 0.13; use "
                f"`{new}={ref.enum}.{ref.legacy}` (the same weights) or {best}"
            )
        else:
            message = (
                f"`{shown}` is deprecated since torchvision 0.13; use `{new}={ref.enum}.{ref.legacy}` "
                f"(what `{old}=True` loads) or {best}, or `{new}=None`"
            )
        fix = self._fix(call, arg, ref, flag, new, n_positional, unsafe=ref.legacy is None and flag is not False)
        self.report(arg, message, fix=fix, data=data)

    # -- builders picked at run time: models.__dict__[arch](...), getattr(models, arch)(...) --
    def _visit_dynamic(self, call: cst.Call) -> None:
        func = call.func
        if (
            isinstance(func, cst.Subscript)
            and isinstance(func.value, cst.Attribute)
            and func.value.attr.value == "__dict__"
        ):
            namespace = self.context.qualname(func.value.value)
        elif (
            isinstance(func, cst.Call)
            and len(func.args) >= 2
            and self.context.qualname(func.func) == "builtins.getattr"
        ):
            namespace = self.context.qualname(func.args[0].value)
        else:
            return
        if namespace not in _NAMESPACES:
            return
        keywords = {arg.keyword.value: arg for arg in call.args if arg.keyword is not None}
        if "pretrained" in keywords:
            self._check_dynamic(namespace, keywords["pretrained"], keywords, "pretrained", "weights", NAMESPACE_LEGACY)
        if "pretrained_backbone" in keywords and namespace in _BACKBONE_NAMESPACES:
            self._check_dynamic(
                namespace, keywords["pretrained_backbone"], keywords, "pretrained_backbone", "weights_backbone",
                NAMESPACE_BACKBONE_LEGACY,
            )

    def _check_dynamic(
        self, namespace: str, arg: cst.Arg, keywords: dict[str, cst.Arg], old: str, new: str, table: dict[str, str]
    ) -> None:
        shown = f"{old}={self.context.code(arg.value)}"
        data = {"builder": f"{namespace}.*", "parameter": old}
        if new in keywords:
            self.report(arg, f"`{old}=` is ignored next to `{new}=`: torchvision passes it on to the model class, "
                        f"which raises TypeError; remove it", data=data)
            return
        flag = _bool_literal(arg.value)
        member = table.get(namespace)
        if flag is False:
            value = "None"
            message = f"`{shown}` is deprecated since torchvision 0.13; use `{new}=None`"
        elif member is None:
            # The builders of this namespace map the flag to different members.
            self.report(arg, f"`{shown}` is deprecated since torchvision 0.13; use `{new}=` with the builder's weights "
                        f"enum, or `{new}=\"DEFAULT\"`", data=data)
            return
        else:
            literal = f'"{member}"'
            value = literal if flag is True else f"{literal} if {self._condition(arg.value)} else None"
            message = (
                f"`{shown}` is deprecated since torchvision 0.13; use `{new}={literal}` (what `{old}=True` loads "
                f"for every `{namespace}` builder) or `{new}=\"DEFAULT\"` (the best available)"
            )
            data["equivalent"] = member
        fix = FixSpec(
            f"Replace `{shown}` with `{new}={value}`",
            (Replace(arg.keyword, cst.Name(new)), Replace(arg.value, value)),
        )
        self.report(arg, message, fix=fix, data=data)

    # -- torch.hub.load("pytorch/vision", "resnet18", pretrained=True): the builder, through the hub --
    def _visit_hub(self, call: cst.Call) -> None:
        model = vision_hub_model(call)
        tag = vision_hub_tag(call)
        release = Version.parse(tag) if tag else None
        if model is None or (tag is not None and (release is None or release < Version(0, 13))):
            return  # a torchvision older than 0.13 (or an unknown branch): pretrained= is its API
        info = next((i for i in (builder_info(f"{ns}.{model}") for ns in HUB_NAMESPACES) if i is not None), None)
        if info is None:
            return
        keywords = {arg.keyword.value: arg for arg in forwarded_keywords(call)}
        for old, new, ref in (("pretrained", "weights", info.weights), ("pretrained_backbone", "weights_backbone", info.backbone)):
            arg = keywords.get(old)
            if arg is None or ref is None:
                continue
            shown = f"{old}={self.context.code(arg.value)}"
            data = {"builder": info.qualnames[0], "parameter": old, "through": "torch.hub.load"}
            if new in keywords:
                self.report(arg, f"`{old}=` is ignored next to `{new}=`: torchvision passes it on to the model class, "
                            f"which raises TypeError; remove it", data=data)
                continue
            flag = _bool_literal(arg.value)
            if flag is False:
                value = "None"
            elif ref.legacy is None:
                self.report(arg, f"`{shown}` (through torch.hub.load) fails: torchvision has no legacy weights for "
                            f"`{info.name}`; use `{new}=\"DEFAULT\"`", data=data)
                continue
            else:
                literal = f'"{ref.legacy}"'
                value = literal if flag is True else f"{literal} if {self._condition(arg.value)} else None"
                data["equivalent"] = ref.legacy
            message = (f"`{shown}` (passed by torch.hub.load to torchvision's `{info.name}`) is deprecated since "
                       f"torchvision 0.13; use `{new}={value}`" + ("" if flag is False else f" (the same weights) or `{new}=\"DEFAULT\"`"))
            fix = FixSpec(f"Replace `{shown}` with `{new}={value}`", (Replace(arg.keyword, cst.Name(new)), Replace(arg.value, value)))
            self.report(arg, message, fix=fix, data=data)

    def _condition(self, expr: cst.BaseExpression) -> str:
        test = self.context.code(expr)
        return f"({test})" if isinstance(expr, _NEEDS_PARENS) and not expr.lpar else test

    def _ref(self, info: BuilderInfo, keywords: dict[str, cst.Arg]) -> WeightsRef | None:
        if info.float_weights is None:
            return info.weights
        quantize = keywords.get("quantize")
        value = False if quantize is None else _bool_literal(quantize.value)
        if value is None:
            return None
        return info.weights if value else info.float_weights

    # -- the fix --
    def _fix(
        self, call: cst.Call, arg: cst.Arg, ref: WeightsRef, flag: bool | None, new: str, n_positional: int, unsafe: bool
    ) -> FixSpec | None:
        if arg.keyword is None and n_positional != 1:
            # resnet18(True, False): the remaining positionals would follow a keyword.
            return None
        ops: list[FixOp] = []
        if flag is False:
            value = "None"
        else:
            enum = self._enum_reference(call.func, ref, ops)
            if enum is None:
                return None
            member = f"{enum}.{ref.legacy or 'DEFAULT'}"
            if flag is True:
                value = member
            else:
                value = f"{member} if {self._condition(arg.value)} else None"
        n_import_ops = len(ops)
        if arg.keyword is None:
            ops.insert(0, Replace(arg.value, f"{new}={value}"))
        else:
            ops[:0] = [Replace(arg.keyword, cst.Name(new)), Replace(arg.value, value)]
        old_text = self.context.code(arg).rstrip(", ")
        if arg.keyword is None:
            old_text = f"positional {old_text}"
        imported = " and import the enum" if n_import_ops else ""
        return FixSpec(
            f"Replace `{old_text}` with `{new}={value}`{imported}",
            tuple(ops),
            applicability="unsafe" if unsafe else "safe",
        )

    def _enum_reference(self, func: cst.BaseExpression, ref: WeightsRef, ops: list[FixOp]) -> str | None:
        """Code naming ``ref.enum`` at the call; appends import ops to ``ops`` when one is needed."""
        # Through the module the builder was reached by: models.resnet18 -> models.ResNet18_Weights.
        prefix = func.value if isinstance(func, cst.Attribute) else None
        while prefix is not None:
            if self.context.qualname(prefix) in ref.modules:
                return f"{self.context.code(prefix)}.{ref.enum}"
            prefix = prefix.value if isinstance(prefix, cst.Attribute) else None
        names = self.context.names
        wanted = {f"{module}.{ref.enum}" for module in ref.modules}
        bound = names.lookup(ref.enum)
        if bound in wanted:
            return ref.enum
        if bound is not None or names.is_bound_locally(ref.enum):
            # The name means something else here; importing it would change that.
            return None
        target = self._leading_import_from(ref)
        if target is not None:
            ops.append(Replace(target, target.with_changes(names=(*target.names, cst.ImportAlias(cst.Name(ref.enum))))))
        else:
            ops.append(InsertAtLine(self.context.import_insertion_line(), f"from {ref.home} import {ref.enum}\n"))
        return ref.enum

    def _leading_import_from(self, ref: WeightsRef) -> cst.ImportFrom | None:
        """A one-line ``from <enum's module> import ...`` among the module's leading imports."""
        for i, stmt in enumerate(self.context.module.body):
            if not isinstance(stmt, cst.SimpleStatementLine):
                return None
            small = stmt.body[0] if stmt.body else None
            if i == 0 and isinstance(small, cst.Expr) and isinstance(small.value, (cst.SimpleString, cst.ConcatenatedString)):
                continue  # the docstring
            if not isinstance(small, (cst.Import, cst.ImportFrom)):
                return None
            for imp in stmt.body:
                if (
                    isinstance(imp, cst.ImportFrom)
                    and not imp.relative
                    and imp.module is not None
                    and dotted_name(imp.module) in ref.modules
                    and not isinstance(imp.names, cst.ImportStar)
                    and imp.lpar is None
                ):
                    return imp
        return None


def _is_true_or_false(expr: cst.BaseExpression) -> bool:
    return isinstance(expr, cst.Name) and expr.value in ("True", "False")


def _bool_literal(expr: cst.BaseExpression) -> bool | None:
    """True/False for the literals (``None`` counts as False), else None."""
    if isinstance(expr, cst.Name):
        if expr.value == "True":
            return True
        if expr.value in ("False", "None"):
            return False
    return None
