from __future__ import annotations

from torchlint.knowledge.deprecations import Deprecation
from torchlint.rules._api_uses import ApiUseRule
from torchlint.rules.base import Invalid


class DeprecatedApi(ApiUseRule):
    """
    ## What it does
    Checks for calls, keyword arguments, decorators and attribute reads of
    PyTorch APIs that are deprecated in the torch release the project targets
    (`[tool.torchlint] torch-version`, else the lowest release its declared
    dependencies admit, else the newest known): `torch.cuda.amp.autocast()`,
    `torch.cuda.amp.GradScaler()`, `@torch.cuda.amp.custom_fwd`, `functorch.vmap`,
    `size_average=`/`reduce=` on losses, `nn.init.xavier_uniform`,
    `F.upsample`, `torch.range`, `torch.lu`, `torch.chain_matmul`,
    `torch.testing.assert_allclose`, `torch.nn.utils.weight_norm`,
    `torch.backends.cuda.sdp_kernel`, `torch.jit.script`/`trace` (2.13+), and
    the rest of the table in `docs/knowledge.md`. Every entry is checked against
    the real package: only APIs for which torch really warns are listed
    (`torch.norm`, `torch.svd`, `F.sigmoid`, `F.tanh` and `Variable` are not,
    whatever TorchFix says). Names are resolved through the file's imports; a
    package's own sources (torch's use of its own deprecated API) are left alone.

    ## Why is this bad?
    A deprecated API warns on every call and will be removed: code that uses it
    breaks on a later upgrade, often with a less helpful error than the warning
    it ignored. The replacements are usually drop-in.

    ## Example
    ```python
    import torch

    with torch.cuda.amp.autocast():
        loss = model(x)
    scaler = torch.cuda.amp.GradScaler()
    ```

    ## Use instead
    ```python
    import torch

    with torch.amp.autocast("cuda"):
        loss = model(x)
    scaler = torch.amp.GradScaler("cuda")
    ```

    ## Fix safety
    Fixes are offered only where the rewrite is mechanical and the replacement
    exists in the target release: they do what torch's own deprecation shim
    does (`torch.cuda.amp.autocast(...)` -> `torch.amp.autocast("cuda", ...)`,
    `functorch.vmap` -> `torch.func.vmap`, `nn.init.normal` -> `nn.init.normal_`,
    `size_average=False` -> `reduction="sum"`, `chain_matmul(a, b)` ->
    `linalg.multi_dot([a, b])`), so they are safe. One exception is unsafe:
    `torch.range(a, b)` -> `torch.arange(a, b + 1)` for integer literals gives
    an `int64` tensor where `torch.range` gave floats (safe when `dtype=` is
    passed). APIs whose replacement takes different arguments or returns
    something else (`torch.lu`, `weight_norm`, `sdp_kernel`, `assert_allclose`)
    get the replacement in the message and no fix.
    """

    code = "TL203"
    incremental = True  # findings depend on the statements linked to theirs (torchlint/slices.py)
    name = "deprecated-api"
    message = "This PyTorch API is deprecated"
    severity = "warning"
    deprecated = True
    # Confirmed by running the line under the installed torch (see runtime/confirmers/api.py).
    confirmable = True

    VALID = [
        "import torch\nwith torch.amp.autocast('cuda'):\n    pass\n",
        "import torch\nx = torch.norm(torch.ones(3))\n",
        "import torch.nn.functional as F\ny = F.sigmoid(x)\n",
        "import torch\nfrom torch.autograd import Variable\nv = Variable(torch.ones(1))\n",
        # A local `F` is not torch.nn.functional.
        "import torch\n\ndef f(F, x):\n    return F.upsample(x)\n",
        # Not torch's: a package of the user's own.
        "import torch\nfrom mylib import amp\nwith amp.autocast():\n    pass\n",
        "import torch.nn as nn\nloss = nn.MSELoss(reduction='sum')\n",
    ]
    INVALID = [
        Invalid(
            "import torch\nwith torch.cuda.amp.autocast():\n    pass\n",
            "import torch\nwith torch.amp.autocast(\"cuda\"):\n    pass\n",
        ),
        Invalid(
            "import torch\nscaler = torch.cuda.amp.GradScaler(init_scale=2.0)\n",
            "import torch\nscaler = torch.amp.GradScaler(\"cuda\", init_scale=2.0)\n",
        ),
        Invalid(
            "import torch\n\n@torch.cuda.amp.custom_fwd\ndef forward(ctx, x):\n    return x\n",
            "import torch\n\n@torch.amp.custom_fwd(device_type=\"cuda\")\ndef forward(ctx, x):\n    return x\n",
        ),
        Invalid(
            "import torch.nn as nn\ncriterion = nn.CrossEntropyLoss(size_average=False)\n",
            "import torch.nn as nn\ncriterion = nn.CrossEntropyLoss(reduction=\"sum\")\n",
        ),
        Invalid(
            "import torch\nimport functorch\nbatched = functorch.vmap(f)\n",
        ),
        Invalid(
            "import torch.nn as nn\nnn.init.xavier_uniform(layer.weight)\n",
            "import torch.nn as nn\nnn.init.xavier_uniform_(layer.weight)\n",
        ),
        Invalid(
            "import torch\nr = torch.range(0, 9, dtype=torch.float32)\n",
            "import torch\nr = torch.arange(0, 10, dtype=torch.float32)\n",
        ),
        Invalid(
            "import torch\nm = torch.chain_matmul(a, b, c)\n",
            "import torch\nm = torch.linalg.multi_dot([a, b, c])\n",
        ),
        Invalid("import torch\ntorch.testing.assert_allclose(a, b)\n"),
    ]

    def _entry(self, qualname: str, keyword: str | None = None) -> Deprecation | None:
        return self.context.knowledge.deprecation(qualname, keyword)

    def _describe(self, entry: Deprecation, shown: str) -> str:
        package = "torchvision" if entry.package == "torchvision" else "torch"
        since = f"since {package} {entry.since}"
        if entry.kind == "private":
            text = f"{shown} is private API (it may change without notice)"
        else:
            text = f"{shown} is deprecated {since}"
        if entry.replacement:
            target = f"`{entry.replacement}`" if "." in entry.replacement else f"`{entry.replacement}=`"
            text += f"; use {target}"
            if entry.fix and entry.fix.startswith("first-arg:"):
                text += f" with {entry.fix.split(':', 1)[1]} first"
            elif entry.fix and entry.fix.startswith("keyword:"):
                text += f" with `{entry.fix.split(':', 1)[1]}`"
        if entry.note:
            text += f" ({entry.note})"
        if entry.removed:
            text += f"; removed in {package} {entry.removed}"
        return text
