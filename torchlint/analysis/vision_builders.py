"""Which torchvision model builder a call reaches, and the legacy weights flags it passes.

A builder is reached three ways: by its name through the file's imports
(``models.resnet18(...)``, ``from torchvision.models import resnet50``), picked
by name at run time from a models module (``models.__dict__[arch](...)``,
``getattr(models, name)(...)``), or through ``torch.hub.load("pytorch/vision",
"<builder>", **kwargs)``, which passes every keyword it does not take itself on to
the entry point of the repo's ``hubconf.py``: for ``pytorch/vision`` (any
``:tag``), torchvision's builder of that name. Only literal repo and model names
count, and only the GitHub source (``source="local"`` loads some other directory).

:func:`weights_flags` gives each ``pretrained=`` / ``pretrained_backbone=`` (or the
old positional ``resnet18(True)``) such a call passes, with what replaces it
(TL202); the hub helpers also tell TL502 which keywords reach a builder.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import libcst as cst

from torchlint.data.torchvision_weights import (
    BUILDER_NAMES,
    NAMESPACE_BACKBONE_LEGACY,
    NAMESPACE_LEGACY,
    BuilderInfo,
    WeightsRef,
    builder_info,
)
from torchlint.knowledge.versions import Version

# -- torch.hub.load on torchvision's repo --------------------------------------------

# torch.hub.load's own keywords; the rest go to the entry point.
HUB_OWN_KEYWORDS = frozenset({"source", "trust_repo", "force_reload", "verbose", "skip_validation", "repo_or_dir", "model"})
_VISION_REPO = re.compile(r"^pytorch/vision(:[\w.\-]+)?$")
# hubconf.py exports these namespaces' builders under their own names.
HUB_NAMESPACES = ("torchvision.models", "torchvision.models.segmentation", "torchvision.models.detection",
                  "torchvision.models.video", "torchvision.models.optical_flow")


def vision_hub_tag(call: cst.Call) -> str | None:
    """The ``:tag`` of the repo argument (``v0.10.0``), or None for the default branch."""
    positional = [a for a in call.args if a.keyword is None and not a.star]
    repo = positional[0].value if positional else None
    if isinstance(repo, cst.SimpleString) and isinstance(repo.evaluated_value, str) and ":" in repo.evaluated_value:
        tag = repo.evaluated_value.split(":", 1)[1]
        return None if tag == "main" else tag
    return None


def vision_hub_model(call: cst.Call) -> str | None:
    """The builder name of a ``torch.hub.load`` call on torchvision's repo (the caller checked the callee)."""
    positional = [a for a in call.args if a.keyword is None and not a.star]
    named = {a.keyword.value: a for a in call.args if a.keyword is not None}
    repo = positional[0].value if positional else getattr(named.get("repo_or_dir"), "value", None)
    model = positional[1].value if len(positional) > 1 else getattr(named.get("model"), "value", None)
    if not isinstance(repo, cst.SimpleString) or not isinstance(model, cst.SimpleString):
        return None
    source = named.get("source")
    if source is not None and not (isinstance(source.value, cst.SimpleString) and source.value.evaluated_value == "github"):
        return None
    repo_text, model_text = repo.evaluated_value, model.evaluated_value
    if not isinstance(repo_text, str) or not isinstance(model_text, str) or not _VISION_REPO.match(repo_text):
        return None
    return model_text if model_text.isidentifier() else None


def forwarded_keywords(call: cst.Call) -> list[cst.Arg]:
    return [a for a in call.args if a.keyword is not None and a.keyword.value not in HUB_OWN_KEYWORDS]


# -- the weights flags a call passes to a builder ------------------------------------

# Modules whose builders a program may pick by name at run time.
_NAMESPACES = frozenset(
    f"torchvision.models{sub}" for sub in ("", ".detection", ".segmentation", ".video", ".quantization", ".optical_flow")
)
_BACKBONE_NAMESPACES = frozenset({"torchvision.models.detection", "torchvision.models.segmentation"})


@dataclass(frozen=True)
class WeightsFlag:
    """A ``pretrained=``-style flag a call passes to a torchvision builder.

    ``reached``: "name" (the builder through the imports), "run time" (picked from
    ``namespace`` by name) or "hub"; ``builder``: its qualified name (``<namespace>.*`` at
    run time); ``value``: True or False (``None`` counts as False), None when not a literal;
    ``conflict``: ``new=`` is passed as well; ``ref``: the enum ``new=`` takes (None at run
    time, or for a quantization builder whose ``quantize=`` is not a literal); ``member``:
    what ``old=True`` loads (None: no legacy weights, or the builders of the namespace
    disagree); ``positionals``: the call's positional arguments.
    """

    call: cst.Call
    arg: cst.Arg
    old: str
    new: str
    value: bool | None
    conflict: bool
    reached: str
    builder: str
    namespace: str
    info: BuilderInfo | None
    ref: WeightsRef | None
    member: str | None
    positionals: int = 0


def weights_flags(context: Any, call: cst.Call) -> list[WeightsFlag]:
    """The legacy weights flags ``call`` passes to a torchvision builder, in argument order
    (``pretrained`` first); empty for anything else (timm, a function of the file)."""
    func = call.func
    # Cheap rejection first: an attribute call names the builder itself (aliases only
    # rename modules); a bare name may be ``import ... as``.
    if isinstance(func, cst.Attribute):
        if func.attr.value not in BUILDER_NAMES and func.attr.value != "load":
            return []
    elif isinstance(func, (cst.Subscript, cst.Call)):
        return _picked_at_run_time(context, call)
    elif not isinstance(func, cst.Name):
        return []
    if isinstance(func, cst.Attribute) and func.attr.value == "load" or isinstance(func, cst.Name):
        if context.qualname(func) == "torch.hub.load":
            return _through_hub(call)
    info = builder_info(context.qualname(func))
    if info is None:
        return []
    keywords = {arg.keyword.value: arg for arg in call.args if arg.keyword is not None}
    positional = [arg for arg in call.args if arg.keyword is None and arg.star == ""]
    flags = []

    def flag(arg: cst.Arg, old: str, new: str, ref: WeightsRef | None, positionals: int = 0) -> WeightsFlag:
        return WeightsFlag(call, arg, old, new, bool_literal(arg.value), new in keywords, "name", info.qualnames[0], info.namespace,
                           info, ref, ref.legacy if ref else None, positionals)

    if "pretrained" in keywords:
        flags.append(flag(keywords["pretrained"], "pretrained", "weights", _weights_ref(info, keywords)))
    elif (
        positional
        and "weights" not in keywords
        and not any(arg.star == "*" for arg in call.args)
        and _is_true_or_false(positional[0].value)
    ):
        # Old signature: resnet18(pretrained=False, progress=True, ...). A non-literal
        # first argument may be a weights enum, so only flags count.
        flags.append(flag(positional[0], "pretrained", "weights", _weights_ref(info, keywords), len(positional)))
    if "pretrained_backbone" in keywords and info.backbone is not None:
        flags.append(flag(keywords["pretrained_backbone"], "pretrained_backbone", "weights_backbone", info.backbone))
    return flags


def _picked_at_run_time(context: Any, call: cst.Call) -> list[WeightsFlag]:
    """``models.__dict__[arch](...)``, ``getattr(models, arch)(...)``."""
    func = call.func
    if isinstance(func, cst.Subscript) and isinstance(func.value, cst.Attribute) and func.value.attr.value == "__dict__":
        namespace = context.qualname(func.value.value)
    elif isinstance(func, cst.Call) and len(func.args) >= 2 and context.qualname(func.func) == "builtins.getattr":
        namespace = context.qualname(func.args[0].value)
    else:
        return []
    if namespace not in _NAMESPACES:
        return []
    keywords = {arg.keyword.value: arg for arg in call.args if arg.keyword is not None}
    wanted = [("pretrained", "weights", NAMESPACE_LEGACY)]
    if namespace in _BACKBONE_NAMESPACES:
        wanted.append(("pretrained_backbone", "weights_backbone", NAMESPACE_BACKBONE_LEGACY))
    return [
        WeightsFlag(call, keywords[old], old, new, bool_literal(keywords[old].value), new in keywords, "run time", f"{namespace}.*",
                    namespace, None, None, table.get(namespace))
        for old, new, table in wanted if old in keywords
    ]


def _through_hub(call: cst.Call) -> list[WeightsFlag]:
    model = vision_hub_model(call)
    tag = vision_hub_tag(call)
    release = Version.parse(tag) if tag else None
    if model is None or (tag is not None and (release is None or release < Version(0, 13))):
        return []  # a torchvision older than 0.13 (or an unknown branch): pretrained= is its API
    info = next((i for i in (builder_info(f"{ns}.{model}") for ns in HUB_NAMESPACES) if i is not None), None)
    if info is None:
        return []
    keywords = {arg.keyword.value: arg for arg in forwarded_keywords(call)}
    return [
        WeightsFlag(call, keywords[old], old, new, bool_literal(keywords[old].value), new in keywords, "hub", info.qualnames[0],
                    info.namespace, info, ref, ref.legacy)
        for old, new, ref in (("pretrained", "weights", info.weights), ("pretrained_backbone", "weights_backbone", info.backbone))
        if old in keywords and ref is not None
    ]


def _weights_ref(info: BuilderInfo, keywords: dict[str, cst.Arg]) -> WeightsRef | None:
    """The enum ``weights=`` takes: for a quantization builder, the quantized one unless
    ``quantize=False`` (None when ``quantize=`` is not a literal)."""
    if info.float_weights is None:
        return info.weights
    quantize = keywords.get("quantize")
    value = False if quantize is None else bool_literal(quantize.value)
    if value is None:
        return None
    return info.weights if value else info.float_weights


def _is_true_or_false(expr: cst.BaseExpression) -> bool:
    return isinstance(expr, cst.Name) and expr.value in ("True", "False")


def bool_literal(expr: cst.BaseExpression) -> bool | None:
    """True/False for the literals (``None`` counts as False), else None."""
    if isinstance(expr, cst.Name):
        if expr.value == "True":
            return True
        if expr.value in ("False", "None"):
            return False
    return None


__all__ = [
    "HUB_NAMESPACES",
    "HUB_OWN_KEYWORDS",
    "WeightsFlag",
    "bool_literal",
    "forwarded_keywords",
    "vision_hub_model",
    "vision_hub_tag",
    "weights_flags",
]
