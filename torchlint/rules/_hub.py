"""``torch.hub.load("pytorch/vision", "<builder>", **kwargs)``: torchvision's builder, called through the hub.

The hub passes every keyword it does not take itself on to the entry point of
the repo's ``hubconf.py``, which for ``pytorch/vision`` (any ``:tag``) is the
torchvision builder of that name. Only literal repo and model names count, and
only the GitHub source (``source="local"`` loads some other directory).
"""

from __future__ import annotations

import re

import libcst as cst

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
