"""TL101 missing-zero-grad: what counts as a step, a backward and a clearing, and when to stay silent."""

from __future__ import annotations

import subprocess
import sys

import pytest

from torchlint.analysis.training import looks_like_optimizer_name

from torchlint.testing import RuleTester

RULE = RuleTester("TL101")
findings, lines = RULE.findings, RULE.lines


def fixed(code: str) -> str:
    return RULE.fixed(code, unsafe=True)


BASIC = """
import torch
model = torch.nn.Linear(2, 1)
optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
optimizer.zero_grad()
for x, y in loader:
    loss = ((model(x) - y) ** 2).mean()
    loss.backward()
    optimizer.step()
"""


def test_finding_is_on_the_step_call_with_data_and_related_lines():
    (f,) = findings(BASIC)
    assert (f.range.line, f.range.column, f.range.end_column) == (9, 4, 20)
    assert f.data == {"optimizer": "optimizer", "loop_line": 6}
    assert "`optimizer.step()`" in f.message and "`optimizer.zero_grad()`" in f.message
    related = {r.range.line: r.message for r in f.related}
    assert 8 in related  # the backward call
    assert 5 in related and "runs once" in related[5]  # the zero_grad before the loop
    assert f.fix is not None and f.fix.applicability == "unsafe"


def test_fix_inserts_zero_grad_first_in_the_loop_body():
    out = fixed(BASIC)
    assert "for x, y in loader:\n    optimizer.zero_grad()\n    loss = " in out
    assert lines(out) == []


def test_fix_keeps_tabs_and_leading_comments():
    code = "for x in loader:\n\t# forward\n\tmodel(x).sum().backward()\n\topt.step()\n"
    assert fixed(code) == "for x in loader:\n\t# forward\n\topt.zero_grad()\n\tmodel(x).sum().backward()\n\topt.step()\n"


def test_no_fix_for_a_one_line_loop_body():
    (f,) = findings("for x in loader: model(x).sum().backward(); optimizer.step()\n")
    assert f.fix is None


def test_amp_message_names_the_scaler_step():
    (f,) = findings("for x in loader:\n    scaler.scale(model(x).sum()).backward()\n    scaler.step(optimizer)\n")
    assert "`scaler.step(optimizer)`" in f.message
    assert f.data["optimizer"] == "optimizer"


def test_one_finding_per_loop_and_optimizer():
    code = """
    for x in loader:
        model(x).sum().backward()
        optimizer.step()
        if extra:
            optimizer.step()
    """
    assert lines(code) == [4]


def test_torch_autograd_backward_and_accelerator_backward_count():
    assert lines("import torch\nfor x in loader:\n    torch.autograd.backward(model(x).sum())\n    opt.step()\n") == [4]
    assert lines("for x in loader:\n    accelerator.backward(model(x).sum())\n    opt.step()\n") == [3]


def test_while_loops_are_training_loops_too():
    assert lines("while not done:\n    model(x).sum().backward()\n    optimizer.step()\n") == [3]


def test_step_in_inner_loop_over_optimizers_uses_the_loop_with_backward():
    code = """
    for batch in loader:
        model(batch).sum().backward()
        for opt in optimizers:
            opt.step()
    """
    assert lines(code) == [5]
    cleared = """
    for batch in loader:
        for opt in optimizers:
            opt.zero_grad()
        model(batch).sum().backward()
        for opt in optimizers:
            opt.step()
    """
    assert lines(cleared) == []


@pytest.mark.parametrize(
    "name",
    ["scheduler", "lr_scheduler", "opt_scheduler", "warmup", "env", "trainer", "sched"],
)
def test_step_on_non_optimizers_is_ignored(name):
    assert lines(f"for x in loader:\n    model(x).sum().backward()\n    {name}.step()\n") == []


def test_resolution_beats_the_name():
    # Built from torch.optim: an optimizer whatever its name.
    assert lines("import torch\nsgd = torch.optim.SGD(p)\nfor x in l:\n    f(x).backward()\n    sgd.step()\n") == [5]
    # An optimizer-like name bound to a scheduler is not one.
    code = "import torch\nopt_like = torch.optim.lr_scheduler.StepLR(o, 1)\nfor x in l:\n    f(x).backward()\n    opt_like.step()\n"
    assert lines(code) == []


@pytest.mark.parametrize(
    "name,expected",
    [
        ("optimizer", True), ("opt", True), ("optim", True), ("optG", True), ("opt_d", True),
        ("g_optim", True), ("optimizerD", True), ("self.optimizer", True), ("encoder_optimizer", True),
        ("opt2", True), ("option", False), ("options", False), ("adopt", False), ("scheduler", False),
        ("lr_opt", False), ("optimizer_scheduler", False),
    ],
)
def test_optimizer_names(name, expected):
    assert looks_like_optimizer_name(name) is expected


@pytest.mark.parametrize(
    "clearing",
    [
        "optimizer.zero_grad(set_to_none=True)",
        "model.zero_grad()",
        "self.zero_grad()",
        "for p in model.parameters():\n        p.grad = None",
        "for p in model.parameters():\n        p.grad.data.zero_()",
        "for p in params:\n        del p.grad",
        "optimizer.zero_grads()",
    ],
)
def test_every_way_of_clearing_silences(clearing):
    code = f"for x in loader:\n    {clearing}\n    model(x).sum().backward()\n    optimizer.step()\n"
    assert lines(code) == []


def test_detach_alone_does_not_clear():
    code = "for x in loader:\n    for p in ps:\n        p.grad.detach_()\n    model(x).sum().backward()\n    optimizer.step()\n"
    assert lines(code) == [5]


def test_clearing_in_a_nested_def_that_is_never_called_does_not_count():
    code = """
    for x in loader:
        def later():
            optimizer.zero_grad()
        model(x).sum().backward()
        optimizer.step()
    """
    assert lines(code) == [6]


def test_helpers_are_followed_through_the_file():
    code = """
    def clear(opt):
        opt.zero_grad()

    def prepare(opt):
        clear(opt)

    def log(x):
        print(x)

    for x in loader:
        prepare(optimizer)
        model(x).sum().backward()
        optimizer.step()

    for x in loader:
        log(x)
        model(x).sum().backward()
        optimizer.step()
    """
    assert lines(code) == [19]


def test_recursive_helpers_terminate():
    code = """
    def a(n):
        return b(n - 1) if n else 0

    def b(n):
        return a(n)

    for x in loader:
        a(3)
        model(x).sum().backward()
        optimizer.step()
    """
    assert lines(code) == [11]


def test_methods_of_the_file_are_followed_and_unknown_inherited_ones_silence():
    code = """
    class Trainer(Base):
        def __init__(self, model):
            self.model = model

        def reset(self):
            self.optimizer.zero_grad()

        def fit(self, loader):
            for x in loader:
                self.reset()
                self.model(x).sum().backward()
                self.optimizer.step()

        def fit_unknown(self, loader):
            for x in loader:
                self.before_batch()
                self.model(x).sum().backward()
                self.optimizer.step()

        def fit_tested(self, loader):
            for x in loader:
                self.model(x).sum().backward()
                self.optimizer.step()
                self.assertTrue(True)
    """
    assert lines(code) == [24]


@pytest.mark.parametrize(
    "header,call",
    [
        ("from trainlib import after_step", "after_step(model)"),
        ("import trainlib", "trainlib.after_step(optimizer)"),
        ("from .hooks import after_step", "after_step(model.parameters())"),
        ("from trainlib import *", "after_step(state=optimizer)"),
        ("from trainlib import Hooks\nhooks = Hooks()", "hooks.after(optimizer)"),
    ],
)
def test_calls_into_other_modules_that_reach_the_model_or_optimizer_silence(header, call):
    code = f"{header}\nimport torch\nmodel = torch.nn.Linear(2, 2)\noptimizer = torch.optim.SGD(model.parameters())\nfor x in loader:\n    model(x).sum().backward()\n    optimizer.step()\n    {call}\n"
    assert lines(code) == []


@pytest.mark.parametrize(
    "header,call",
    [
        ("from trainlib import after_step", "after_step()"),
        ("import trainlib", "trainlib.log_metrics(loss.item(), step)"),
        ("from .hooks import log_loss", "log_loss(loss)"),
        ("from trainlib import *", "print_progress(epoch, 'train')"),
        ("from trainlib import Meter\nmeter = Meter()", "meter.add(loss.item())"),
    ],
)
def test_calls_into_other_modules_that_cannot_reach_the_gradients_do_not_silence(header, call):
    # Regression (issue #12/#15): any imported call used to silence the rule.
    code = f"{header}\nimport torch\nmodel = torch.nn.Linear(2, 2)\noptimizer = torch.optim.SGD(model.parameters())\nfor x in loader:\n    loss = model(x).sum()\n    loss.backward()\n    optimizer.step()\n    {call}\n"
    assert lines(code) == [len(header.splitlines()) + 7]


def test_known_libraries_and_local_callables_do_not_silence():
    code = """
    import math
    import numpy as np
    from tqdm import tqdm
    for x in tqdm(loader):
        out = model(x)
        loss = criterion(out, np.ones(3))
        loss.backward()
        optimizer.step()
        print(math.sqrt(loss.item()))
        meter.update(loss.item())
    """
    assert lines(code) == [9]


def test_passing_the_optimizer_to_an_unknown_function_silences():
    assert lines("for x in loader:\n    model(x).sum().backward()\n    optimizer.step()\n    hooks.after(optimizer)\n") == []
    # ... but not to GradScaler methods that only read it.
    code = "for x in loader:\n    scaler.scale(model(x).sum()).backward()\n    scaler.unscale_(optimizer)\n    scaler.step(optimizer)\n"
    assert lines(code) == [4]


def test_closure_steps_are_left_alone():
    code = """
    def closure():
        loss = model(x).sum()
        loss.backward()
        return loss

    for i in range(10):
        model(x).sum().backward()
        optimizer.step(closure)
    """
    assert lines(code) == []


GAN = """
import torch
opt_g = torch.optim.Adam({g}.parameters())
opt_d = torch.optim.Adam({d}.parameters())
for real in loader:
    opt_d.zero_grad()
    disc(real).mean().backward()
    opt_d.step()
    disc(gen(z)).mean().backward()
    opt_g.step()
"""


def test_two_optimizers_over_different_models_each_need_clearing():
    (f,) = findings(GAN.format(g="gen", d="disc"))
    assert f.range.line == 10 and "clears only `opt_d`" in f.message


@pytest.mark.parametrize(
    "g,d",
    [
        ("model.head", "model"),  # opt_d.zero_grad() clears the head too
        ("model", "model"),
        ("self.gen", "self"),
    ],
)
def test_two_optimizers_that_may_share_parameters_stay_silent(g, d):
    assert lines(GAN.format(g=g, d=d)) == []


def test_two_optimizers_with_unknown_parameters_stay_silent():
    code = "for real in loader:\n    opt_d.zero_grad()\n    f(real).backward()\n    opt_d.step()\n    g().backward()\n    opt_g.step()\n"
    assert lines(code) == []


def test_clearing_a_model_is_enough_for_any_optimizer():
    code = "for real in loader:\n    netD.zero_grad()\n    f(real).backward()\n    optimizerD.step()\n    g().backward()\n    optimizerG.step()\n"
    assert lines(code) == []


def test_no_finding_without_a_loop_or_without_backward():
    assert lines("loss.backward()\noptimizer.step()\n") == []
    assert lines("def step():\n    loss.backward()\n    optimizer.step()\n") == []
    assert lines("for x in loader:\n    optimizer.step()\nloss.backward()\n") == []


def test_rule_skips_files_with_only_backward_definitions():
    code = "class F(torch.autograd.Function):\n    @staticmethod\n    def backward(ctx, g):\n        return g\n"
    assert lines(code) == []


def test_noqa_suppresses():
    code = "for x in loader:\n    model(x).sum().backward()\n    optimizer.step()  # noqa: TL101\n"
    assert lines(code) == []


@pytest.mark.slow
def test_rule_modules_import_without_torch():
    code = (
        "import sys; sys.modules['torch'] = None\n"
        "import torchlint.rules.tl101_missing_zero_grad, torchlint.analysis.training\n"
        "from torchlint.engine import lint_source\n"
        "r = lint_source('for x in l:\\n    f(x).backward()\\n    opt.step()\\n')\n"
        "print([f.code for f in r.findings])\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert "TL101" in out.stdout
