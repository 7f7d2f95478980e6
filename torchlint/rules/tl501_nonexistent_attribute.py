from __future__ import annotations

import re

import libcst as cst

from torchlint.analysis.api_exemptions import (
    GuardedCompatibilityCode,
    import_path_parts,
    inside_own_package,
    may_concern_other_packages,
    names_the_file_defines,
)
from torchlint.knowledge import Instance, Knowledge
from torchlint.knowledge.deprecations import by_api
from torchlint.knowledge.infer import Deferred, LocalTypes
from torchlint.names import dotted_name
from torchlint.rules.base import FixSpec, Invalid, Replace, Rule

_DEPRECATED_APIS = frozenset(by_api())


_HUB = re.compile(r"hub(?<=\bhub)\b")  # (the literal first: scanned for at C speed)


# (The except-handler visit of the compatibility mixin comes first and does not chain:
# LocalTypes does not see ``except ... as name`` here.)
class NonexistentAttribute(GuardedCompatibilityCode, LocalTypes, Rule):
    """
    ## What it does
    Checks for attributes that a torch or torchvision module, class, or object
    does not have: `torch.nn.Sequencial`, `from torchvision.models import Sequential`,
    `resnet.fc.in_files` (the `fc` of a torchvision ResNet is an `nn.Linear`,
    whose attribute is `in_features`), `optimizer.zero_grads()`. Names are
    resolved through the file's imports and checked against the API recorded from
    the real packages (see `docs/knowledge.md`), for the torch release the project
    targets. Objects count only when the file leaves no doubt about what a name
    holds: every assignment to it in its scope is a call of the same torch or
    torchvision constructor or model builder. A module of your own called
    `models`, a local `F`, a subclass of your own, or a name assigned from
    anything else are left alone, and so are names the file sets itself
    (`model.extra = ...`, `setattr(...)`), names it checks with `hasattr`/`getattr`
    (any string literal of the name), and accesses guarded by `try`/`except
    AttributeError` or `ImportError`.

    ## Why is this bad?
    The line raises `AttributeError` (or `ImportError`) when it runs, often after
    minutes of data loading or training. A typo in an API name is easy to make
    and easy to miss in review; tutorials copied from the web contain many.

    ## Example
    ```python
    import torchvision.models as models

    resnet = models.resnet18(weights=None)
    num_features = resnet.fc.in_files
    ```

    ## Use instead
    ```python
    import torchvision.models as models

    resnet = models.resnet18(weights=None)
    num_features = resnet.fc.in_features
    ```

    ## Fix safety
    When exactly one existing name is close to the misspelt one ("did you mean
    `in_features`?"), the fix replaces it. It is marked unsafe: the line
    could not run before, so the fix cannot change working behaviour, but the
    closest name is a guess, worth a look. No fix when no name or several names
    are close.
    """

    code = "TL501"
    incremental = True  # findings depend on the statements linked to theirs (torchlint/slices.py)

    @classmethod
    def file_facts(cls, source: str) -> object:
        return names_the_file_defines(source)
    name = "nonexistent-attribute"
    message = "This torch/torchvision attribute does not exist"
    severity = "error"
    # Confirmed by running the line under the installed torch (see runtime/confirmers/api.py).
    confirmable = True
    triggers = ("torch",)

    @classmethod
    def applies_to_path(cls, source: str, path: str) -> bool:
        # A package's own sources are not checked against its API (inside_own_package): only
        # another package's names (or a torchvision model through torch.hub) can be reported there.
        return may_concern_other_packages(source, path, ("torch", "torchvision", "torchaudio"), also=_HUB)

    @classmethod
    def applies_to(cls, source: str) -> bool:
        # Most files mention torch: a C-speed scan spares them the CST walk (knowledge/prescan.py).
        from torchlint.knowledge.prescan import may_fire

        return "TL501" in may_fire(source)

    VALID = [
        "import torch\nlayer = torch.nn.Sequential(torch.nn.Linear(2, 2))\n",
        "import torchvision.models as models\nresnet = models.resnet18()\nn = resnet.fc.in_features\n",
        # A package of the user's own called models.
        "import torch\nfrom . import models\nnet = models.Sequential()\n",
        # F is a local variable here, not torch.nn.functional.
        "import torch.nn.functional as F\n\ndef f(F):\n    return F.relux(1)\n",
        # The name is assigned by the file: a subclass or monkeypatching defines it.
        "import torch\nmodel = torch.nn.Linear(2, 2)\nmodel.in_files = 3\nprint(model.in_files)\n",
        # A guarded access for an older torch.
        "import torch\ntry:\n    compile_fn = torch.compile_xyz\nexcept AttributeError:\n    compile_fn = None\n",
        # Checked with hasattr first.
        "import torch\nif hasattr(torch.backends, 'mpsx'):\n    torch.backends.mpsx.foo()\n",
        # A name assigned from something of the user's.
        "import torch\nfrom mylib import build\nmodel = build()\nmodel.in_files\n",
        # Two different classes assigned to one name: unknown.
        "import torch\nm = torch.nn.Linear(1, 1)\nm = torch.nn.Conv2d(1, 1, 1)\nm.in_channels\n",
        # timm is not torchvision.
        "import timm\nm = timm.create_model('resnet18')\nm.fc.in_files\n",
    ]
    INVALID = [
        Invalid("import torch\nlayer = torch.nn.Sequencial()\n", "import torch\nlayer = torch.nn.Sequential()\n"),
        Invalid("import torchvision.models as models\nnet = models.Sequential()\n"),
        Invalid(
            "import torchvision.models as models\nresnet = models.resnet18()\nn = resnet.fc.in_files\n",
            "import torchvision.models as models\nresnet = models.resnet18()\nn = resnet.fc.in_features\n",
        ),
        Invalid(
            "import torch\nopt = torch.optim.SGD([], lr=0.1)\nopt.zero_grads()\n",
            "import torch\nopt = torch.optim.SGD([], lr=0.1)\nopt.zero_grad()\n",
        ),
        Invalid(
            "from torch.utils.data import Dataloader\n",
            "from torch.utils.data import DataLoader\n",
        ),
        Invalid(
            "import torch.nn as nn\n\ndef build():\n    layer = nn.Linear(4, 2)\n    return layer.out_feature\n",
            "import torch.nn as nn\n\ndef build():\n    layer = nn.Linear(4, 2)\n    return layer.out_features\n",
        ),
        Invalid("import torch\nx = torch.nn.functional.relu6x(1)\n"),
    ]

    def __init__(self, context) -> None:  # type: ignore[no-untyped-def]
        super().__init__(context)
        self._annotations = 0
        # A stub describes an API; its references are not run.
        self._stub = context.path.endswith(".pyi")
        # Dotted module names in import statements are absolute, not local names.
        self._import_parts: set[int] = set()
        self._assigned: set[str] | None = None
        self._strings: set[str] | None = None

    # -- file-wide facts, computed once and only when needed --

    def _file_defines(self, name: str) -> bool:
        """Does the file set or name ``name`` itself (``x.name = ``, ``"name"``)?"""
        if self._assigned is None:
            self._assigned, self._strings = names_the_file_defines(self.context.file_source)
        return name in self._assigned or name in (self._strings or ())

    # -- modules and classes --

    def visit_Import(self, node: cst.Import) -> None:
        for alias in node.names:
            self._import_parts.update(import_path_parts(alias.name))

    # Annotations are not evaluated at run time (``from __future__ import annotations``,
    # ``TYPE_CHECKING`` aliases): a missing name there breaks nothing.
    def visit_Annotation(self, node: cst.Annotation) -> None:
        self._annotations += 1

    def leave_Annotation(self, node: cst.Annotation) -> None:
        self._annotations -= 1

    def visit_Attribute(self, node: cst.Attribute) -> None:
        attr = node.attr.value
        # Private names are the package's own business (and change without notice).
        if self.compat_fallback or self.compat_guarded or self._annotations or self._stub or attr.startswith("_") or id(node) in self._import_parts:
            return
        owner = self.context.qualname(node.value)
        if owner is not None and owner.split(".", 1)[0] in ("torch", "torchvision", "torchaudio"):
            self._check_static(node, node.attr, owner, attr)
            return
        if owner is None and not attr.startswith("__"):
            # Maybe an object whose class the file makes certain: judged at the end of the module.
            self.defer(node, node.value, attr)

    def visit_ImportFrom(self, node: cst.ImportFrom) -> None:
        if node.module is not None:
            self._import_parts.update(import_path_parts(node.module))
        if not isinstance(node.names, cst.ImportStar):
            for alias in node.names:
                self._import_parts.update(import_path_parts(alias.name))
        if node.relative or node.module is None or isinstance(node.names, cst.ImportStar) or self.compat_fallback or self.compat_guarded:
            return
        module = dotted_name(node.module)
        if module is None or module.split(".", 1)[0] not in ("torch", "torchvision", "torchaudio") or self._stub:
            return
        for alias in node.names:
            name = dotted_name(alias.name)
            if name is not None:
                self._check_static(alias, alias.name, module, name, importing=True)

    def _check_static(self, node: cst.CSTNode, name_node: cst.CSTNode, owner: str, attr: str, importing: bool = False) -> None:
        kb = self.context.knowledge
        if f"{owner}.{attr}" in _DEPRECATED_APIS or attr.startswith("_") or "._" in owner:
            return  # TL203/TL204 say more about it
        names = kb.attribute_names(owner)
        if names is None or attr in names or self._file_defines(attr) or inside_own_package(self.context.path, owner):
            return  # (a package's own sources follow its installed release, not the target)
        package = owner.split(".", 1)[0]
        elsewhere = kb.versions_with(f"{owner}.{attr}")
        if elsewhere and not kb.exact(package):
            return  # the target release itself is not recorded: it may have it
        kind = kb.kind(owner)
        what = "module" if kind == "module" else "class"
        self._report(node, name_node, attr, names, f"{what} `{owner}`", package, elsewhere)

    # -- objects --

    def judge(self, d: Deferred, instance: Instance) -> None:
        attr = d.payload
        node = d.node
        assert isinstance(node, cst.Attribute)
        kb = self.context.knowledge
        if "._" in instance.cls:
            return  # a private class: its own package's business
        names = kb.instance_attribute_names(instance.cls)
        if names is None or attr in names or self._file_defines(attr) or inside_own_package(self.context.path, instance.cls):
            return
        shown = self.context.code(node.value)
        cls = kb.public_name(instance.cls)
        self._report(node, node.attr, attr, names, f"`{shown}` (a `{cls}`)", instance.cls.split(".", 1)[0], ())

    def _report(self, node, name_node, attr, names, where, package, elsewhere) -> None:  # type: ignore[no-untyped-def]
        kb = self.context.knowledge
        release = kb.target.torchvision if package == "torchvision" else kb.target.torch
        guess = Knowledge.close_match(attr, names)
        message = f"{where} has no attribute `{attr}` in {package} {release}"
        if elsewhere:
            message += f" (it exists in {package} {', '.join(str(v) for v in elsewhere)})"
        fix = None
        if guess is not None:
            message += f"; did you mean `{guess}`?"
            fix = FixSpec(f"Replace `{attr}` with `{guess}`", (Replace(name_node, cst.Name(guess)),), applicability="unsafe")
        self.report(node, message, fix=fix, data={"attribute": attr, "suggestion": guess, "owner": where})

