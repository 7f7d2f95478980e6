from __future__ import annotations

from torchlint.knowledge.deprecations import Deprecation
from torchlint.rules._api_uses import ApiUseRule
from torchlint.rules.base import Invalid


class RemovedApi(ApiUseRule):
    """
    ## What it does
    Checks for uses of PyTorch APIs that the torch (or torchvision) release the
    project targets no longer has, though older releases did: `torch.symeig`,
    `torch.solve`, `torch.lstsq`, `torch.eig`, `torch.matrix_rank` (removed in
    1.13), `torch.qr` and `torch.cholesky` (2.14), `import torch._six` (2.0),
    `torchvision.transforms.functional_tensor` (torchvision 0.17). The release
    comes from `[tool.torchlint] torch-version`, else the lowest release the
    project's declared dependencies admit, else the newest known, so the same
    code is TL203 (deprecated) for a project on torch 2.13 and TL204 for one on 2.14.

    ## Why is this bad?
    The call raises (torch keeps a stub that throws `RuntimeError: This function
    was deprecated since version 1.9 and is now removed`), or the import fails
    with `ModuleNotFoundError`. The code cannot run on the targeted release.

    ## Example
    ```python
    import torch

    L = torch.cholesky(A)
    ```

    ## Use instead
    ```python
    import torch

    L = torch.linalg.cholesky(A)
    ```

    ## Fix safety
    A fix is offered where the replacement takes the same arguments and returns
    the same thing (`torch.cholesky(A)` -> `torch.linalg.cholesky(A)`,
    `torch.qr(A)` -> `torch.linalg.qr(A)` with a single argument; an import of
    `torchvision.transforms.functional_tensor` -> `torchvision.transforms.functional`),
    and only when the replacement exists in the target release. The code did not
    run before, so the fix cannot break working code. Elsewhere the message
    names the replacement and how its arguments differ.
    """

    code = "TL204"
    incremental = True  # findings depend on the statements linked to theirs (torchlint/slices.py)
    name = "removed-api"
    message = "This PyTorch API was removed"
    severity = "error"
    # Confirmed by running the line under the installed torch (see runtime/confirmers/api.py).
    confirmable = True

    VALID = [
        "import torch\nL = torch.linalg.cholesky(A)\n",
        "import torch\nw, v = torch.linalg.eigh(A)\n",
        # A method of the user's own.
        "import torch\nimport mylinalg\nL = mylinalg.cholesky(A)\n",
        # A local variable named torch-like.
        "import torch\n\ndef f(lib, A):\n    return lib.symeig(A)\n",
        "import math\ninf = math.inf\n",
    ]
    INVALID = [
        Invalid("import torch\nw, v = torch.symeig(A, eigenvectors=True)\n"),
        Invalid("import torch\nx = torch.solve(B, A)\n"),
        Invalid("from torch._six import string_classes\n"),
        Invalid(
            "import torch\nL = torch.cholesky(A)\n",
            "import torch\nL = torch.linalg.cholesky(A)\n",
        ),
        Invalid(
            "import torchvision.transforms.functional_tensor as FT\n",
            "import torchvision.transforms.functional as FT\n",
        ),
    ]

    def _entry(self, qualname: str, keyword: str | None = None) -> Deprecation | None:
        return self.context.knowledge.removal(qualname, keyword)

    def _describe(self, entry: Deprecation, shown: str) -> str:
        package = "torchvision" if entry.package == "torchvision" else "torch"
        kb = self.context.knowledge
        release = kb.target.torchvision if package == "torchvision" else kb.target.torch
        text = f"{shown} was removed in {package} {entry.removed} (target: {package} {release})"
        if entry.replacement:
            text += f"; use `{entry.replacement}`"
        if entry.note:
            text += f" ({entry.note})"
        return text
