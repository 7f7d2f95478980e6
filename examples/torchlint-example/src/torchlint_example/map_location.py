"""EX101 ``torch-load-map-location``: a plugin rule, written like a built-in one."""

from __future__ import annotations

import libcst as cst

from torchlint import FixSpec, Invalid, Replace, Rule

_LOADS = frozenset({"torch.load", "torch.serialization.load"})


class TorchLoadMapLocation(Rule):
    """
    ## What it does
    Checks for `torch.load(...)` calls that do not say where the tensors go:
    no `map_location=` keyword and no second positional argument.

    ## Why is this bad?
    Without `map_location`, tensors are restored to the device they were saved
    from. A checkpoint written on a GPU machine then fails to load on a CPU-only
    one (CI, a laptop, a CPU inference server) with `RuntimeError: Attempting to
    deserialize object on a CUDA device but torch.cuda.is_available() is False`,
    or lands on `cuda:0` of a multi-GPU machine whatever the process's own device.
    This house rule asks every load to name its device.

    ## Example
    ```python
    import torch

    state = torch.load("checkpoint.pt", weights_only=True)
    ```

    ## Use instead
    ```python
    import torch

    state = torch.load("checkpoint.pt", map_location="cpu", weights_only=True)
    ```

    ## Fix safety
    The fix adds `map_location="cpu"` and is unsafe: code that relied on the
    tensors coming back on the GPU they were saved from now gets them on the CPU
    (move them, or the model, with `.to(device)` after loading). Calls that
    forward `**kwargs` are not flagged: `map_location` may be in them.
    """

    code = "EX101"
    name = "torch-load-map-location"
    message = "`torch.load` without `map_location=`: a checkpoint saved on a GPU will not load without one"
    # Where editors (and SARIF viewers) link the code to.
    url = "https://github.com/torchlint/torchlint/blob/main/examples/torchlint-example/README.md"
    # Files that never mention `load` are skipped before they are parsed.
    triggers = ("load",)

    VALID = [
        "import torch\nstate = torch.load('ckpt.pt', map_location='cpu', weights_only=True)\n",
        # The second positional parameter is map_location.
        "import torch\nstate = torch.load('ckpt.pt', device)\n",
        # Not torch's load.
        "import json\ncfg = json.load(open('cfg.json'))\n",
        # The argument may be among the keyword arguments passed on.
        "import torch\ndef restore(path, **kw):\n    return torch.load(path, **kw)\n",
        # A function of the file's own that happens to be called load.
        "def load(path):\n    return path\nx = load('a')\n",
    ]
    INVALID = [
        Invalid(
            "import torch\nstate = torch.load('ckpt.pt')\n",
            "import torch\nstate = torch.load('ckpt.pt', map_location=\"cpu\")\n",
        ),
        Invalid(
            "from torch import load\nstate = load('ckpt.pt', weights_only=True)\n",
            "from torch import load\nstate = load('ckpt.pt', weights_only=True, map_location=\"cpu\")\n",
        ),
        Invalid(
            "import torch as T\nfor p in paths:\n    T.load(p)\n",
            "import torch as T\nfor p in paths:\n    T.load(p, map_location=\"cpu\")\n",
        ),
    ]

    def visit_Call(self, node: cst.Call) -> None:
        # Qualified names see through `import torch as T` and `from torch import load`.
        if self.context.qualname(node.func) not in _LOADS:
            return
        positional = [a for a in node.args if a.keyword is None and not a.star]
        if len(positional) >= 2 or any(
            a.star == "**" or (a.keyword is not None and a.keyword.value == "map_location") for a in node.args
        ):
            return
        no_space = cst.AssignEqual(whitespace_before=cst.SimpleWhitespace(""), whitespace_after=cst.SimpleWhitespace(""))
        location = cst.Arg(cst.SimpleString('"cpu"'), keyword=cst.Name("map_location"), equal=no_space)
        fixed = node.with_changes(args=[*node.args, location])
        self.report(node, fix=FixSpec('Add `map_location="cpu"`', (Replace(node, fixed),), applicability="unsafe"))
