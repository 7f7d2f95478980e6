from __future__ import annotations

import re

import libcst as cst

from torchlint.analysis.apicalls import (
    add_keyword,
    argument,
    forwards_kwargs,
    keyword,
    target_is_declared,
    target_torch_version,
    version_text,
)
from torchlint.gates import calls_to, lacks_keyword
from torchlint.rules.base import FixSpec, Invalid, Rule

_LOADS = frozenset({"torch.load", "torch.serialization.load"})
# The release that made ``weights_only=True`` the default, and the one that added the parameter.
_DEFAULT_FLIPPED = (2, 6)
_PARAMETER_ADDED = (1, 13)


class TorchLoadWeightsOnly(Rule):
    """
    ## What it does
    Checks for `torch.load(...)` calls that do not pass `weights_only=`. The
    message depends on the PyTorch version the project targets (`torch-version`
    in `[tool.torchlint]`, or the lowest version its dependencies admit; the
    newest release when neither says).

    ## Why is this bad?
    Before PyTorch 2.6, `torch.load` unpickles the file with the full `pickle`
    module: a checkpoint downloaded from the internet can run arbitrary code on
    load. From 2.6 on the default is `weights_only=True`, and a file that holds a
    whole pickled model (`torch.save(model, path)`) rather than a `state_dict`
    fails to load with `UnpicklingError: Weights only load failed`. Either way the
    call's meaning depends on the installed version; stating `weights_only=`
    makes it the same everywhere. With `pickle_module=` and no `weights_only=`,
    every version unpickles arbitrary code.

    ## Example
    ```python
    import torch

    state = torch.load("checkpoint.pt", map_location="cpu")
    ```

    ## Use instead
    ```python
    import torch

    state = torch.load("checkpoint.pt", map_location="cpu", weights_only=True)
    # only for a file you trust that holds a whole pickled object:
    model = torch.load("model.pt", weights_only=False)
    ```

    ## Fix safety
    The fix appends `weights_only=True`. When the project declares PyTorch 2.6
    or later (`torch-version`, or its dependencies' lowest admitted release) it
    is safe: that is already the default, so nothing changes except that the
    `TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD` environment variable no longer overrides
    it. When it declares nothing (torchlint then assumes the newest release, but
    the code may run on an older one) or an older release, it is unsafe: a checkpoint holding a full pickled
    model, or custom classes, stops loading (which is the security fix, but may
    need `torch.serialization.add_safe_globals`). No fix is offered when
    `pickle_module=` is passed (choosing `weights_only=False` there must be
    deliberate). Calls that forward `**kwargs` are not reported: `weights_only`
    may be in them; nor is anything for a target older than 1.13, which has no
    `weights_only` parameter.
    """

    code = "TL205"
    incremental = True  # findings depend on the statements linked to theirs (torchlint/slices.py)
    name = "torch-load-weights-only"
    message = "`torch.load` without `weights_only=`: say whether the file may unpickle arbitrary objects"
    severity = "warning"
    triggers = ("load",)
    qualified_triggers = _LOADS

    @classmethod
    def applies_to(cls, source: str) -> bool:
        calls = calls_to(source, _LOADS)
        return calls is None or any(lacks_keyword(c, "weights_only") for c in calls)
    # A call of something named load (torch.load, load, th.load): not "loader" or "download".
    trigger_pattern = re.compile(r"load(?<=\bload)\s*\(")  # = \bload\s*\(, with a literal first (20x faster to search)

    VALID = [
        "import torch\nstate = torch.load('ckpt.pt', weights_only=True)\n",
        "import torch\nmodel = torch.load('model.pt', map_location='cpu', weights_only=False)\n",
        # **kwargs may carry weights_only.
        "import torch\n\ndef restore(path, **kwargs):\n    return torch.load(path, **kwargs)\n",
        # Other load functions.
        "import pickle\nwith open('x.pkl', 'rb') as f:\n    obj = pickle.load(f)\n",
        "import numpy as np\narr = np.load('x.npy')\n",
        "import torch\nfrom mylib import load\nstate = load('ckpt.pt')\n",
        # A local variable named torch.
        "def f(torch):\n    return torch.load('x')\n",
    ]
    INVALID = [
        Invalid(
            "import torch\nstate = torch.load('ckpt.pt')\n",
            "import torch\nstate = torch.load('ckpt.pt', weights_only=True)\n",
        ),
        Invalid(
            "from torch import load\nsd = load(path, map_location='cpu')\n",
            "from torch import load\nsd = load(path, map_location='cpu', weights_only=True)\n",
        ),
        Invalid(
            "import torch as th\nmodel.load_state_dict(th.load(\n    args.resume,\n    map_location=device,\n))\n",
            "import torch as th\nmodel.load_state_dict(th.load(\n    args.resume,\n    map_location=device, weights_only=True,\n))\n",
        ),
        # pickle_module without weights_only: arbitrary code in every version; no fix.
        Invalid("import torch\nimport dill\nobj = torch.load('x.pt', pickle_module=dill)\n", None),
        Invalid(
            "import torch.serialization\nobj = torch.serialization.load(f)\n",
            "import torch.serialization\nobj = torch.serialization.load(f, weights_only=True)\n",
        ),
    ]

    def __init__(self, context) -> None:
        super().__init__(context)
        # torch.load(...) calls passed straight to .load_state_dict(...): a state_dict for certain.
        self._state_dicts: set[int] = set()

    def visit_Call(self, node: cst.Call) -> None:
        func = node.func
        if isinstance(func, cst.Attribute) and func.attr.value == "load_state_dict" and node.args:
            self._state_dicts.add(id(node.args[0].value))
            return
        # Cheap rejection: only ``from torch import load as x`` renames it.
        if isinstance(func, cst.Attribute) and func.attr.value != "load":
            return
        if self.context.qualname(func) not in _LOADS:
            return
        if keyword(node, "weights_only") is not None or forwards_kwargs(node):
            return
        target = target_torch_version(self.context)
        if target is not None and target[:2] < _PARAMETER_ADDED:
            return  # the parameter does not exist yet: nothing to pass
        flipped = target is None or target[:2] >= _DEFAULT_FLIPPED
        where = f"torch {version_text(target)}" if target is not None else "current PyTorch"
        data = {"target_torch": version_text(target) if target else None}
        if argument(node, "pickle_module", 2) is not None:
            self.report(
                node,
                "`torch.load` with `pickle_module=` and no `weights_only=` unpickles arbitrary code from the file "
                "(the default is then `weights_only=False`); pass `weights_only=True` unless you trust the file",
                data=data,
            )
            return
        if flipped and id(node) in self._state_dicts:
            message = (
                f"`torch.load` without `weights_only=`: this loads a `state_dict`, which {where}'s default "
                "`weights_only=True` allows; pass `weights_only=True` so it loads the same way on torch < 2.6 too "
                "(where the default unpickles arbitrary code)"
            )
        elif flipped:
            message = (
                f"`torch.load` without `weights_only=`: in {where} the default is `weights_only=True` (since 2.6), so a "
                "file holding a whole pickled model (`torch.save(model)`) fails with `UnpicklingError`; pass "
                "`weights_only=True` for a `state_dict`, or `weights_only=False` only for a file you trust"
            )
        else:
            message = (
                f"`torch.load` without `weights_only=` unpickles arbitrary code in {where} (the default is "
                "`weights_only=False` before 2.6): a malicious checkpoint runs code on load; pass `weights_only=True`"
            )
        fix = FixSpec(
            "Add `weights_only=True`",
            add_keyword(node, "weights_only=True"),
            # Safe only where the project says it runs 2.6+: on an older torch the default differs.
            applicability="safe" if flipped and target_is_declared(self.context) else "unsafe",
        )
        self.report(node, message, fix=fix, data=data)
