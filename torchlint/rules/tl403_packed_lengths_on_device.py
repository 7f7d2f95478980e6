from __future__ import annotations

import libcst as cst

from torchlint.analysis.apicalls import argument
from torchlint.analysis.model import program_model
from torchlint.analysis.values import TensorV
from torchlint.gates import passes_argument
from torchlint.rules.base import FixSpec, Invalid, Replace, Rule

_PACK = frozenset({"torch.nn.utils.rnn.pack_padded_sequence"})


class PackedLengthsOnDevice(Rule):
    """
    ## What it does
    Checks the `lengths` given to `torch.nn.utils.rnn.pack_padded_sequence`:
    when the program model says it is a tensor moved to an accelerator
    (`lengths.to(device)`, `.cuda()`, a batch moved with the rest), it must
    be a CPU int64 tensor. A `device` that may be the CPU
    (`"cuda" if torch.cuda.is_available() else "cpu"`) counts: the error comes
    on the GPU runs. Tensors whose device the model does not know are not
    reported.

    ## Why is this bad?
    Since PyTorch 1.7 `pack_padded_sequence` raises `RuntimeError: 'lengths'
    argument should be a 1D CPU int64 tensor, but got 1D cuda:0 Long tensor`.
    The script works on a laptop without a GPU and crashes on the training
    machine.

    ## Example
    ```python
    from torch.nn.utils.rnn import pack_padded_sequence

    lengths = lengths.to(device)
    packed = pack_padded_sequence(embedded, lengths, batch_first=True)
    ```

    ## Use instead
    ```python
    from torch.nn.utils.rnn import pack_padded_sequence

    packed = pack_padded_sequence(embedded, lengths.cpu(), batch_first=True)
    ```

    ## Fix safety
    The fix passes `lengths.cpu()`. It is safe: the lengths are only read
    on the CPU, and `.cpu()` of a CPU tensor is the tensor itself.
    """

    code = "TL403"
    incremental = True  # findings depend on the statements linked to theirs (torchlint/slices.py)
    name = "packed-lengths-on-device"
    message = "`pack_padded_sequence` needs `lengths` on the CPU; this one is on the GPU when one is used"
    severity = "error"
    confirmable = True
    triggers = ("pack_padded_sequence",)
    qualified_triggers = _PACK

    @classmethod
    def applies_to(cls, source: str) -> bool:
        # A call of it that passes `lengths` (not only its name in a docstring or a table of names).
        return passes_argument(source, "pack_padded_sequence", _PACK, "lengths", 1)

    VALID = [
        "import torch\nfrom torch.nn.utils.rnn import pack_padded_sequence\nlengths = torch.tensor([3, 2])\n"
        "p = pack_padded_sequence(x, lengths, batch_first=True)\n",
        "import torch\nfrom torch.nn.utils.rnn import pack_padded_sequence\nlengths = torch.tensor([3, 2]).cuda()\n"
        "p = pack_padded_sequence(x, lengths.cpu(), batch_first=True)\n",
        # Unknown device: a parameter.
        "from torch.nn.utils.rnn import pack_padded_sequence\n\ndef pack(x, lengths):\n"
        "    return pack_padded_sequence(x, lengths, enforce_sorted=False)\n",
        # A Python list of lengths.
        "import torch\nfrom torch.nn.utils.rnn import pack_padded_sequence\np = pack_padded_sequence(x, [3, 2])\n",
    ]
    INVALID = [
        Invalid(
            "import torch\nfrom torch.nn.utils.rnn import pack_padded_sequence\nlengths = torch.tensor([3, 2]).cuda()\n"
            "p = pack_padded_sequence(x, lengths, batch_first=True)\n",
            "import torch\nfrom torch.nn.utils.rnn import pack_padded_sequence\nlengths = torch.tensor([3, 2]).cuda()\n"
            "p = pack_padded_sequence(x, lengths.cpu(), batch_first=True)\n",
        ),
        Invalid(
            "import torch\nimport torch.nn as nn\ndevice = torch.device('cuda' if torch.cuda.is_available() else 'cpu')\n"
            "lens = torch.tensor([3, 2]).to(device)\np = nn.utils.rnn.pack_padded_sequence(x, lengths=lens)\n",
            "import torch\nimport torch.nn as nn\ndevice = torch.device('cuda' if torch.cuda.is_available() else 'cpu')\n"
            "lens = torch.tensor([3, 2]).to(device)\np = nn.utils.rnn.pack_padded_sequence(x, lengths=lens.cpu())\n",
        ),
        Invalid(
            "import torch\nfrom torch.nn.utils import rnn\nlengths = torch.tensor([3, 2])\n"
            "p = rnn.pack_padded_sequence(x, lengths.to('cuda'))\n",
            "import torch\nfrom torch.nn.utils import rnn\nlengths = torch.tensor([3, 2])\n"
            "p = rnn.pack_padded_sequence(x, lengths.to('cuda').cpu())\n",
        ),
    ]

    def visit_Call(self, node: cst.Call) -> None:
        if self.context.qualname(node.func) not in _PACK:
            return
        arg = argument(node, "lengths", 1)
        if arg is None:
            return
        fact = program_model(self.context).fact(node)
        if fact is None:
            return
        index = next(i for i, a in enumerate(node.args) if a is arg)
        value = fact.args[index] if index < len(fact.args) else None
        if not (isinstance(value, TensorV) and value.placement is not None and value.placement.kind == "accel"):
            return
        text = self.context.code(arg.value)
        wrapped = text if isinstance(arg.value, (cst.Name, cst.Attribute, cst.Call, cst.Subscript)) else f"({text})"
        where = value.placement.label
        self.report(
            arg.value,
            f"`lengths` (`{text}`) is moved to `{where}`: `pack_padded_sequence` raises for a non-CPU `lengths`; pass `{wrapped}.cpu()`",
            fix=FixSpec("Pass `lengths.cpu()`", (Replace(arg.value, f"{wrapped}.cpu()"),)),
        )
