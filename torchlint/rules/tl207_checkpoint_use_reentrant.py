from __future__ import annotations

import libcst as cst

from torchlint.analysis.apicalls import (
    add_keyword,
    forwards_kwargs,
    keyword,
    target_torch_version,
)
from torchlint.gates import calls_to, lacks_keyword
from torchlint.rules.base import FixSpec, Invalid, Rule

# The release that started warning about a missing use_reentrant.
_WARNS_SINCE = (2, 1)
_CHECKPOINTS = {
    "torch.utils.checkpoint.checkpoint": "checkpoint",
    "torch.utils.checkpoint.checkpoint_sequential": "checkpoint_sequential",
}


class CheckpointUseReentrant(Rule):
    """
    ## What it does
    Checks for calls of `torch.utils.checkpoint.checkpoint` and
    `torch.utils.checkpoint.checkpoint_sequential` that do not pass
    `use_reentrant=`.

    ## Why is this bad?
    Activation checkpointing has two implementations. The default is still the
    old reentrant one, but PyTorch (since 2.1) warns on every call that does not
    choose (`UserWarning: torch.utils.checkpoint: the use_reentrant parameter
    should be passed explicitly ...`) and has announced that omitting it will
    become an error. The reentrant variant also silently produces no gradients
    when none of the checkpointed inputs requires grad (a frozen embedding in
    front of a checkpointed block), does not support keyword arguments, and
    does not work with `torch.autograd.grad`; PyTorch recommends
    `use_reentrant=False`.

    ## Example
    ```python
    from torch.utils.checkpoint import checkpoint

    def forward(self, x):
        return checkpoint(self.block, x)
    ```

    ## Use instead
    ```python
    from torch.utils.checkpoint import checkpoint

    def forward(self, x):
        return checkpoint(self.block, x, use_reentrant=False)
    ```

    ## Fix safety
    The fix appends `use_reentrant=False`, the variant PyTorch recommends. It is
    unsafe: the two variants differ in corner cases (gradients when no input
    requires grad, hooks, `torch.no_grad` regions inside the function, the
    memory saved). `use_reentrant=True` keeps the current behaviour exactly and
    only silences the warning. Calls forwarding `**kwargs` are not reported,
    nor calls in a project that targets a PyTorch older than 2.1 (no warning
    there yet).
    """

    code = "TL207"
    incremental = True  # findings depend on the statements linked to theirs (torchlint/slices.py)
    name = "checkpoint-use-reentrant"
    message = "pass `use_reentrant=` explicitly to `torch.utils.checkpoint.checkpoint`"
    severity = "warning"
    # Confirmed by the warning PyTorch gives when the call runs.
    confirmable = True
    triggers = ("checkpoint",)
    qualified_triggers = frozenset(_CHECKPOINTS)

    @classmethod
    def applies_to(cls, source: str) -> bool:
        calls = calls_to(source, cls.qualified_triggers)
        return calls is None or any(lacks_keyword(c, "use_reentrant") for c in calls)

    VALID = [
        "from torch.utils.checkpoint import checkpoint\ny = checkpoint(block, x, use_reentrant=False)\n",
        "import torch.utils.checkpoint as cp\ny = cp.checkpoint_sequential(layers, 2, x, use_reentrant=True)\n",
        # **kwargs may carry use_reentrant.
        "from torch.utils.checkpoint import checkpoint\n\ndef run(fn, *args, **kwargs):\n    return checkpoint(fn, *args, **kwargs)\n",
        # A user's own checkpoint function (saving a model).
        "import torch\nfrom trainer import checkpoint\ncheckpoint(model, 'ckpt.pt')\n",
        # deepspeed's activation checkpointing has no such parameter.
        "import deepspeed\ny = deepspeed.checkpointing.checkpoint(block, x)\n",
    ]
    INVALID = [
        Invalid(
            "from torch.utils.checkpoint import checkpoint\ny = checkpoint(block, x)\n",
            "from torch.utils.checkpoint import checkpoint\ny = checkpoint(block, x, use_reentrant=False)\n",
        ),
        Invalid(
            "import torch.utils.checkpoint\ny = torch.utils.checkpoint.checkpoint(self.layer, x, mask)\n",
            "import torch.utils.checkpoint\ny = torch.utils.checkpoint.checkpoint(self.layer, x, mask, use_reentrant=False)\n",
        ),
        Invalid(
            "from torch.utils.checkpoint import checkpoint_sequential\nout = checkpoint_sequential(model, 4, x)\n",
            "from torch.utils.checkpoint import checkpoint_sequential\nout = checkpoint_sequential(model, 4, x, use_reentrant=False)\n",
        ),
        Invalid(
            "import torch.utils.checkpoint as cp\nh = cp.checkpoint(\n    self.attn,\n    h,\n    preserve_rng_state=False,\n)\n",
            "import torch.utils.checkpoint as cp\nh = cp.checkpoint(\n    self.attn,\n    h,\n    preserve_rng_state=False, use_reentrant=False,\n)\n",
        ),
    ]

    def visit_Call(self, node: cst.Call) -> None:
        func = node.func
        if isinstance(func, cst.Attribute) and not func.attr.value.startswith("checkpoint"):
            return
        which = _CHECKPOINTS.get(self.context.qualname(func) or "")
        if which is None or keyword(node, "use_reentrant") is not None or forwards_kwargs(node):
            return
        target = target_torch_version(self.context)
        if target is not None and target[:2] < _WARNS_SINCE:
            return
        self.report(
            node,
            f"`{which}` without `use_reentrant=`: PyTorch warns on every call and will make it an error; pass "
            "`use_reentrant=False` (recommended) or `use_reentrant=True` (today's default behaviour)",
            fix=FixSpec("Add `use_reentrant=False`", add_keyword(node, "use_reentrant=False"), applicability="unsafe"),
        )
