from __future__ import annotations

import libcst as cst

from torchlint.names import dotted_name
from torchlint.rules.base import FixOp, FixSpec, InsertAtLine, Invalid, Replace, Rule

_V2 = "torchvision.transforms.v2"
# The torchvision release that deprecated v2.ToTensor and added ToImage / ToDtype(scale=).
_DEPRECATED_SINCE = (0, 16)


class DeprecatedToTensor(Rule):
    """
    ## What it does
    Checks for `ToTensor()` from torchvision's transforms v2
    (`torchvision.transforms.v2.ToTensor`). The v1 `torchvision.transforms.ToTensor`
    is not reported.

    ## Why is this bad?
    In transforms v2, `ToTensor` is deprecated (torchvision 0.16) and will be
    removed: constructing it emits `UserWarning: The transform ToTensor() is
    deprecated and will be removed in a future release. Instead, please use
    v2.Compose([v2.ToImage(), v2.ToDtype(torch.float32, scale=True)])`. It also
    does two things at once (convert, then rescale to [0, 1]) that v2 keeps apart,
    and it returns a plain tensor rather than an `Image`, so later v2
    transforms lose the information that it is an image.

    ## Example
    ```python
    from torchvision.transforms import v2

    transform = v2.Compose([v2.RandomResizedCrop(224), v2.ToTensor()])
    ```

    ## Use instead
    ```python
    import torch
    from torchvision.transforms import v2

    transform = v2.Compose([v2.RandomResizedCrop(224), v2.ToImage(), v2.ToDtype(torch.float32, scale=True)])
    ```

    ## Fix safety
    The fix is safe: it writes the replacement torchvision's own warning gives.
    Inside a `v2.Compose([...])` list the two transforms take `ToTensor()`'s
    place; elsewhere it becomes `v2.Compose([v2.ToImage(), v2.ToDtype(torch.float32,
    scale=True)])`. The names come through the module the call used (`v2.`,
    `transforms.v2.`), else from the `from torchvision.transforms.v2 import
    ...` line that imported `ToTensor` (extended); `import torch` is added when
    `torch` is not bound. No fix where one of those names means something else.
    Nothing is reported for a project that targets torchvision older than 0.16,
    where `ToTensor` was not deprecated and `ToImage` did not exist.
    One difference: for a PIL image the result is a `tv_tensors.Image` (a
    `Tensor` subclass) rather than a plain tensor, which every torch operation
    accepts.
    """

    code = "TL208"
    incremental = True  # findings depend on the statements linked to theirs (torchlint/slices.py)
    name = "deprecated-to-tensor"
    message = "`v2.ToTensor()` is deprecated; use `v2.Compose([v2.ToImage(), v2.ToDtype(torch.float32, scale=True)])`"
    severity = "warning"
    deprecated = True
    # Confirmed by torchvision's own warning (where torchvision is installed).
    confirmable = True
    triggers = ("ToTensor",)
    qualified_triggers = frozenset({f"{_V2}.ToTensor"})

    VALID = [
        # v1 ToTensor is not deprecated.
        "from torchvision import transforms\nt = transforms.ToTensor()\n",
        "import torchvision.transforms as T\nt = T.Compose([T.Resize(256), T.ToTensor()])\n",
        "import torch\nfrom torchvision.transforms import v2\nt = v2.Compose([v2.ToImage(), v2.ToDtype(torch.float32, scale=True)])\n",
        # A ToTensor of the user's own, and albumentations'.
        "from torchvision.transforms import v2\nfrom mytransforms import ToTensor\nt = ToTensor()\n",
        "from albumentations.pytorch import ToTensorV2\nt = ToTensorV2()\n",
    ]
    INVALID = [
        Invalid(
            "import torch\nfrom torchvision.transforms import v2\nt = v2.Compose([v2.Resize(256), v2.ToTensor()])\n",
            "import torch\nfrom torchvision.transforms import v2\nt = v2.Compose([v2.Resize(256), v2.ToImage(), v2.ToDtype(torch.float32, scale=True)])\n",
        ),
        Invalid(
            "import torchvision.transforms.v2 as T\nto_tensor = T.ToTensor()\n",
            "import torchvision.transforms.v2 as T\nimport torch\nto_tensor = T.Compose([T.ToImage(), T.ToDtype(torch.float32, scale=True)])\n",
        ),
        Invalid(
            "import torch\nfrom torchvision.transforms.v2 import Compose, Resize, ToTensor\n"
            "t = Compose([Resize(224), ToTensor()])\n",
            "import torch\nfrom torchvision.transforms.v2 import Compose, Resize, ToTensor, ToImage, ToDtype\n"
            "t = Compose([Resize(224), ToImage(), ToDtype(torch.float32, scale=True)])\n",
        ),
        Invalid(
            "import torch as th\nimport torchvision\nt = torchvision.transforms.v2.ToTensor()\n",
            "import torch as th\nimport torchvision\nt = torchvision.transforms.v2.Compose([torchvision.transforms.v2.ToImage(), "
            "torchvision.transforms.v2.ToDtype(th.float32, scale=True)])\n",
        ),
    ]

    def __init__(self, context) -> None:
        super().__init__(context)
        # ToTensor() calls that are elements of a v2.Compose([...]) list.
        self._in_compose: set[int] = set()

    def visit_Call(self, node: cst.Call) -> None:
        func = node.func
        if isinstance(func, cst.Attribute):
            last = func.attr.value
        elif isinstance(func, cst.Name):
            last = func.value
        else:
            return
        if last == "Compose":
            self._note_compose(node)
            return
        if self.context.qualname(func) != f"{_V2}.ToTensor":
            return
        if _target_torchvision(self.context) < _DEPRECATED_SINCE:
            return  # not deprecated yet, and the replacement does not exist
        self.report(node, fix=self._fix(node))

    def _note_compose(self, node: cst.Call) -> None:
        if not node.args or not isinstance(node.args[0].value, cst.List):
            return
        if self.context.qualname(node.func) != f"{_V2}.Compose":
            return
        for element in node.args[0].value.elements:
            if isinstance(element.value, cst.Call):
                self._in_compose.add(id(element.value))

    def _fix(self, node: cst.Call) -> FixSpec | None:
        if node.args:
            return None  # ToTensor takes no arguments: this call fails anyway
        ops: list[FixOp] = []
        splice = id(node) in self._in_compose
        wanted = ("ToImage", "ToDtype") if splice else ("Compose", "ToImage", "ToDtype")
        names = self._names(node.func, wanted, ops)
        torch = self._torch(ops)
        if names is None or torch is None:
            return None
        pair = f"{names['ToImage']}(), {names['ToDtype']}({torch}.float32, scale=True)"
        new = pair if splice else f"{names['Compose']}([{pair}])"
        ops.insert(0, Replace(node, new))
        return FixSpec(f"Replace with `{new}`", tuple(ops))

    def _names(self, func: cst.BaseExpression, wanted: tuple[str, ...], ops: list[FixOp]) -> dict[str, str] | None:
        if isinstance(func, cst.Attribute):
            prefix = self.context.code(func.value)
            return {w: f"{prefix}.{w}" for w in wanted}
        resolver = self.context.names
        missing = []
        for w in wanted:
            bound = resolver.lookup(w)
            if bound == f"{_V2}.{w}":
                continue
            if bound is not None or resolver.is_bound_locally(w):
                return None
            missing.append(w)
        if missing:
            imp = self._import_of(func)
            if imp is None:
                return None
            ops.append(Replace(imp, imp.with_changes(names=(*imp.names, *(cst.ImportAlias(cst.Name(m)) for m in missing)))))
        return {w: w for w in wanted}

    def _import_of(self, func: cst.BaseExpression) -> cst.ImportFrom | None:
        """The module-level ``from torchvision.transforms.v2 import ..., ToTensor`` line (no parentheses)."""
        name = dotted_name(func)
        for stmt in self.context.module.body:
            if not isinstance(stmt, cst.SimpleStatementLine):
                continue
            for small in stmt.body:
                if (
                    isinstance(small, cst.ImportFrom)
                    and not small.relative
                    and small.module is not None
                    and dotted_name(small.module) == _V2
                    and not isinstance(small.names, cst.ImportStar)
                    and small.lpar is None
                    and any((a.evaluated_alias or a.evaluated_name) == name for a in small.names)
                ):
                    return small
        return None

    def _torch(self, ops: list[FixOp]) -> str | None:
        resolver = self.context.names
        if resolver.lookup("torch") == "torch":
            return "torch"
        aliases = sorted(n for n, q in resolver.module_scope.bindings.items() if q == "torch")
        if aliases:
            return aliases[0]
        if resolver.is_bound_locally("torch"):
            return None
        ops.append(InsertAtLine(self.context.import_insertion_line(), "import torch\n"))
        return "torch"


def _target_torchvision(context) -> tuple[int, int]:
    try:
        version = context.knowledge.target.torchvision
    except (AttributeError, OSError, ValueError):
        return (99, 0)
    return (version.major, version.minor) if version is not None else (99, 0)
