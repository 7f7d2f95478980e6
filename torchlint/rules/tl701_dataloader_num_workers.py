from __future__ import annotations

import libcst as cst

from torchlint.analysis.apicalls import argument, forwards_kwargs
from torchlint.rules.base import Invalid, Rule

_LOADERS = frozenset({"torch.utils.data.DataLoader", "torch.utils.data.dataloader.DataLoader"})


class DataloaderNumWorkers(Rule):
    """
    ## What it does
    Checks for `torch.utils.data.DataLoader(...)` built without `num_workers`
    or with `num_workers=0` (TorchFix's TOR401, from PyTorch profiler's
    `SynchronizedDataLoaderPattern`). Off by default, as in TorchFix: loading in
    the main process is often the right choice (small in-memory datasets,
    debugging, notebooks on Windows/macOS).

    ## Why is this bad?
    With `num_workers=0` every batch is loaded and transformed in the training
    process, between steps: the GPU waits while the CPU decodes images.
    Worker processes (`num_workers > 0`) prepare the next batches in parallel
    with the training step.

    ## Example
    ```python
    from torch.utils.data import DataLoader

    loader = DataLoader(dataset, batch_size=64, shuffle=True)
    ```

    ## Use instead
    ```python
    from torch.utils.data import DataLoader

    loader = DataLoader(dataset, batch_size=64, shuffle=True, num_workers=4, persistent_workers=True)
    ```

    ## Fix safety
    There is no automatic fix: the right number of workers depends on the
    machine, and worker processes need a picklable dataset and, on
    spawn-based platforms, an `if __name__ == "__main__":` guard.
    """

    code = "TL701"
    incremental = True  # findings depend on the statements linked to theirs (torchlint/slices.py)
    name = "dataloader-num-workers"
    message = "`DataLoader` loads batches in the training process (`num_workers=0`); set `num_workers > 0`"
    severity = "info"
    default_enabled = False
    triggers = ("DataLoader",)
    qualified_triggers = _LOADERS

    VALID = [
        "from torch.utils.data import DataLoader\nloader = DataLoader(ds, batch_size=32, num_workers=4)\n",
        "import torch\nloader = torch.utils.data.DataLoader(ds, 32, True, None, None, 2)\n",
        "from torch.utils.data import DataLoader\nloader = DataLoader(ds, num_workers=args.workers)\n",
        # **kwargs may carry num_workers.
        "from torch.utils.data import DataLoader\n\ndef make(ds, **kwargs):\n    return DataLoader(ds, **kwargs)\n",
        # Other DataLoaders.
        "from torch_geometric.loader import DataLoader\nloader = DataLoader(ds, batch_size=32)\n",
        "from mylib.data import DataLoader\nloader = DataLoader(ds)\n",
    ]
    INVALID = [
        Invalid("from torch.utils.data import DataLoader\nloader = DataLoader(ds, batch_size=32, shuffle=True)\n"),
        Invalid("import torch\nloader = torch.utils.data.DataLoader(ds, batch_size=8, num_workers=0)\n"),
        Invalid("import torch.utils.data as data\nloader = data.DataLoader(ds, 16, False, None, None, 0)\n"),
    ]

    def visit_Call(self, node: cst.Call) -> None:
        func = node.func
        if isinstance(func, cst.Attribute) and func.attr.value != "DataLoader":
            return
        if self.context.qualname(func) not in _LOADERS or forwards_kwargs(node):
            return
        if any(a.star == "*" for a in node.args):
            return
        workers = argument(node, "num_workers", 5)
        if workers is None:
            self.report(node, "`DataLoader` without `num_workers=` loads every batch in the training process; "
                        "set `num_workers > 0` to load in parallel")  # fmt: skip
        elif isinstance(workers.value, cst.Integer) and workers.value.evaluated_value == 0:
            self.report(workers, "`num_workers=0` loads every batch in the training process; set `num_workers > 0` "
                        "to load in parallel")  # fmt: skip
