"""The extraction: which code a confirmation runs, and how it is changed. No torch needed."""

from __future__ import annotations

import ast
import subprocess
import sys
import textwrap

import pytest

from torchlint.runtime.extract import Claim, ExtractionError, ModuleIndex, Planner, apply_plan, guess_setup, render


def plan_for(source: str, line: int, *, force_branches: bool = False):
    source = textwrap.dedent(source)
    index = ModuleIndex(source, "user.py")
    stmt = index.statement_at(line, 0)
    planner = Planner(index, force_branches=force_branches)
    planner.reach(stmt, "T", guess_setup(index))
    return source, planner.plan


def kept_lines(source: str, plan) -> list[int]:
    return [s.lineno for s in apply_plan(source, plan.to_dict()).body]


SCRIPT = """\
import matplotlib.pyplot as plt
import torch
import torchvision
from torch import nn

trainset = torchvision.datasets.CIFAR10(root="./data", train=True, download=True)
loader = torch.utils.data.DataLoader(trainset, batch_size=4, num_workers=2)
model = nn.Linear(3072, 10)
model.to("cpu")
plt.plot([1, 2, 3])
print("unrelated")
open("results.txt", "w").write("unrelated")
for epoch in range(100):
    for x, y in loader:
        out = model(x.flatten(1))
torch.save(model.state_dict(), "model.pt")
"""


def test_unrelated_top_level_code_is_not_kept():
    source, plan = plan_for(SCRIPT, 15)
    kept = kept_lines(source, plan)
    # imports, dataset, loader, model, its .to(), and the loop that holds line 15
    assert kept == [2, 3, 4, 6, 7, 8, 9, 13]


def test_datasets_are_replaced_and_training_loops_cut():
    source, plan = plan_for(SCRIPT, 15)
    text = render(source, plan)
    assert "_torchlint.dataset('torchvision.datasets.CIFAR10', root='./data'" in text
    assert "for epoch in _torchlint.loop('L13', range(100))" in text
    assert "for x, y in _torchlint.loop('L14', loader)" in text
    assert "with _torchlint.target('T'):\n            out = model(x.flatten(1))" in text


def test_line_numbers_are_the_users():
    source, plan = plan_for(SCRIPT, 15)
    module = apply_plan(source, plan.to_dict())
    lines = {n.lineno for n in ast.walk(module) if isinstance(n, ast.stmt)}
    assert 15 in lines and 14 in lines
    compile(module, "user.py", "exec")  # a valid program


def test_imports_other_than_torch_are_tolerant():
    source = "import numpy as np\nimport torch\n\ndef f():\n    return torch.tensor(np.zeros(2))\n\nf()\n"
    source, plan = plan_for(source, 5)
    text = render(source, plan)
    assert "except ImportError" in text and "np = _torchlint.missing('np'" in text
    assert "import torch\n" in text  # torch itself must exist


def test_function_reached_through_its_call_site():
    source, plan = plan_for(
        """\
        import torch

        def helper(loader):
            for x in loader:
                bad = x.next()

        def main():
            helper(make_loader())

        def make_loader():
            return [1]

        main()
        results = 1
        """,
        5,
    )
    # `import torch` is not needed by what runs; `results = 1` comes after.
    assert kept_lines(source, plan) == [3, 7, 10, 13]
    assert plan.tail == ""


def test_uncalled_function_gets_stand_in_arguments():
    source, plan = plan_for(
        """\
        import torch
        from torch import nn

        class Net(nn.Module):
            def forward(self, x):
                return x

        def train(model, train_loader, optimizer, device, epochs=5):
            for x, y in train_loader:
                model(x.to(device))
        """,
        10,
    )
    assert "_tl_net = Net()" in plan.tail
    assert "train(_tl_net, _torchlint.loader(), _torchlint.sgd(_tl_net), _torchlint.device())" in plan.tail


def test_optimizer_stand_in_pairs_with_its_model():
    source, plan = plan_for(
        """\
        from torch import nn

        class Generator(nn.Module):
            def forward(self, z):
                return z

        class Discriminator(nn.Module):
            def forward(self, x):
                return x

        def step(netG, netD, opt_g, opt_d, loader):
            for real in loader:
                pass
        """,
        13,
    )
    assert "_torchlint.sgd(_tl_generator), _torchlint.sgd(_tl_discriminator)" in plan.tail


def test_unknown_argument_is_an_honest_refusal():
    with pytest.raises(ExtractionError, match="cannot make up its argument `reader`"):
        plan_for("def drain(reader):\n    return reader.next()\n", 2)


def test_method_reached_by_instantiating_its_class():
    source, plan = plan_for(
        """\
        class Trainer:
            def __init__(self, loader):
                self.it = iter(loader)

            def batch(self):
                return self.it.next()
        """,
        6,
    )
    assert plan.tail.splitlines() == ["_tl_trainer = Trainer(_torchlint.loader())", "_tl_trainer.batch()"]


def test_forward_reached_through_an_instance_call():
    source, plan = plan_for(
        """\
        import torch
        from torch import nn

        class Net(nn.Module):
            def forward(self, x):
                return x.view(-1, 10)

        net = Net()
        plot_something()
        out = net(torch.randn(2, 10))
        """,
        6,
    )
    assert kept_lines(source, plan) == [1, 2, 4, 8, 10]


def test_checkpoint_loads_are_skipped():
    source, plan = plan_for(
        """\
        import torch
        model = torch.nn.Linear(2, 2)
        model.load_state_dict(torch.load("weights.pt"))
        y = model(torch.randn(1, 2))
        """,
        4,
    )
    assert "_torchlint.skipped(" in render(source, plan)


def test_except_handler_is_entered_by_raising_what_it_handles():
    src = "it = iter([1])\ntry:\n    x = next(it)\nexcept StopIteration:\n    y = it.next()\n"
    source, plan = plan_for(src, 5)
    assert plan.raises == [(2, 0, "StopIteration")]
    assert "try:\n    raise StopIteration\n    x = next(it)" in render(source, plan)


def test_forced_branches_take_the_path_to_the_flagged_line():
    src = "flag = False\nif flag:\n    y = 1\nelse:\n    y = 2\n"
    source, plan = plan_for(src, 3, force_branches=True)
    assert plan.branches == [(2, 0, True)]
    assert "if True:" in render(source, plan)


def test_main_guard_body_counts_as_module_level():
    source, plan = plan_for(
        """\
        import torch
        unrelated = print("no")
        if __name__ == "__main__":
            x = torch.zeros(2)
            print("also unrelated")
            y = x.next()
        """,
        6,
    )
    assert kept_lines(source, plan) == [1, 4, 6]


def test_claim_from_a_finding_keeps_the_rule_data():
    from torchlint.diagnostics import Finding, Range

    f = Finding("TL301", "shape-mismatch", "m", Range(3, 4, 3, 9), data={"input_shape": [2, 3, 32, 32]})
    claim = Claim.from_finding(f)
    assert (claim.code, claim.line, claim.column, claim.end_column) == ("TL301", 3, 4, 9)
    assert claim.data["input_shape"] == [2, 3, 32, 32]


def test_setup_guessed_from_the_dataset_and_loss():
    index = ModuleIndex(
        "import torchvision\nfrom torch import nn\nds = torchvision.datasets.MNIST('d')\nloss = nn.MSELoss()\n"
        "class M(nn.Module):\n    def __init__(self):\n        super().__init__()\n        self.fc = nn.Linear(784, 5)\n"
        "    def forward(self, x):\n        return self.fc(x)\n"
    )
    setup = guess_setup(index)
    assert setup.input_shape == [1, 28, 28]
    assert setup.label_kind == "float" and setup.label_shape == [5]


def test_bad_source_is_an_extraction_error():
    with pytest.raises(ExtractionError, match="does not parse"):
        ModuleIndex("def f(:\n", "broken.py")


def test_runtime_modules_import_without_torch():
    code = (
        "import sys; sys.modules['torch'] = None\n"
        "import torchlint.runtime.extract, torchlint.runtime.confirm, torchlint.runtime.commands\n"
        "import torchlint.runtime.confirmers.tl101, torchlint.runtime.confirmers.tl201\n"
        "import torchlint.runtime.confirmers.tl202, torchlint.runtime.confirmers.tl301\n"
        "import torchlint.runtime.confirmers.tl401\n"
        "print('ok')\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "ok"


def test_confirm_without_torch_is_one_clear_error(monkeypatch):
    import argparse
    import importlib.util

    from torchlint.engine import lint_source
    from torchlint.runtime import commands

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "torch" else real(name, *a))
    report = lint_source("import torch\nit = iter(torch.utils.data.DataLoader([1]))\nx = it.next()\n", "s.py")
    errors = commands.after_check(argparse.Namespace(confirm=True, device="cpu", confirm_timeout=5.0), [report])
    assert errors == ["confirming findings needs PyTorch in this Python environment (pip install 'torchlint[runtime]')"]
    assert report.findings[0].confirmation is None
