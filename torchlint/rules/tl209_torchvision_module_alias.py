from __future__ import annotations

import libcst as cst

from torchlint.names import dotted_name
from torchlint.rules.base import FixSpec, Invalid, Replace, Rule


class TorchvisionModuleAlias(Rule):
    """
    ## What it does
    Checks for `import torchvision.models as models` and the like: a torchvision
    submodule imported under its own last name (`torchvision.datasets as
    datasets`, `torchvision.transforms.v2 as v2`). Off by default, as TorchFix's
    TOR203 is.

    ## Why is this bad?
    It is a roundabout spelling of `from torchvision import models` (pylint's
    `consider-using-from-import`): the alias repeats the name the import already
    ends with. It is a matter of style, which is why the rule is off unless
    selected.

    ## Example
    ```python
    import torchvision.models as models
    ```

    ## Use instead
    ```python
    from torchvision import models
    ```

    ## Fix safety
    The fix is safe: both statements bind the same name to the same submodule.
    It is offered when the `import` statement imports only that module.
    """

    code = "TL209"
    incremental = True  # findings depend on the statements linked to theirs (torchlint/slices.py)
    name = "torchvision-module-alias"
    message = "`import torchvision.X as X`: write `from torchvision import X`"
    severity = "info"
    default_enabled = False
    triggers = ("torchvision",)

    VALID = [
        "from torchvision import models\n",
        "import torchvision.models as tvm\n",
        "import torchvision\n",
        "import torchvision.models\n",
        # Not torchvision.
        "import mypkg.models as models\n",
        "import torch.nn as nn\n",
    ]
    INVALID = [
        Invalid("import torchvision.models as models\n", "from torchvision import models\n"),
        Invalid("import torchvision.transforms as transforms\nt = transforms.ToTensor()\n",
                "from torchvision import transforms\nt = transforms.ToTensor()\n"),
        Invalid("import torchvision.transforms.v2 as v2\n", "from torchvision.transforms import v2\n"),
        # Two modules in one statement: reported, no fix.
        Invalid("import torchvision.datasets as datasets, torchvision.models as models\n", None, count=2),
    ]  # fmt: skip

    def visit_Import(self, node: cst.Import) -> None:
        for alias in node.names:
            if alias.asname is None or not isinstance(alias.name, cst.Attribute):
                continue
            full = dotted_name(alias.name)
            asname = alias.asname.name
            if full is None or not full.startswith("torchvision.") or not isinstance(asname, cst.Name):
                continue
            package, _, last = full.rpartition(".")
            if asname.value != last:
                continue
            fix = None
            if len(node.names) == 1:
                fix = FixSpec(
                    f"Replace with `from {package} import {last}`",
                    (Replace(node, f"from {package} import {last}"),),
                )
            self.report(
                alias if len(node.names) > 1 else node,
                f"`import {full} as {last}`: write `from {package} import {last}`",
                fix=fix,
            )
