"""The questions rules ask of the shared analysis layer (torchlint/analysis/), asked directly.

Each rule's own tests go through these too; here each answer is pinned down on a small
program, so that an analysis that changes its answer fails here first, by name.
"""

from __future__ import annotations

import ast
import textwrap

import libcst as cst

from torchlint.analysis import devices, evaluation, module_init, steps
from torchlint.analysis.model import ProgramModel
from torchlint.names import NameResolver


class _Context:
    """The parts of a rule's Context the analyses read."""

    def __init__(self, code: str) -> None:
        self.source = textwrap.dedent(code)
        self.module = cst.parse_module(self.source)
        self.names = NameResolver(self.module)
        self.model = ProgramModel(self.module, self.names, self.module.code_for_node)
        self.cache: dict = {}

    def qualname(self, node: cst.BaseExpression) -> str | None:
        return self.names.qualname(node)

    def code(self, node: cst.CSTNode) -> str:
        return self.module.code_for_node(node)

    def fact(self, text: str):
        """The fact of the (last) call whose code is ``text``."""
        found = [f for f in self.model.calls() if self.code(f.node) == text]
        assert found, text
        return found[-1]


# -- steps: optimizers, schedulers, clearing gradients (TL101, TL106) ----------------


GAN = """
import torch
opt_g = torch.optim.Adam(gen.parameters())
opt_d = torch.optim.Adam(disc.parameters())
sched = torch.optim.lr_scheduler.StepLR(opt_d, 10)
for real in loader:
    opt_d.zero_grad()
    d_loss(real).backward()
    opt_d.step()
    g_loss().backward()
    opt_g.step()
    sched.step()
"""


def test_steps_name_the_optimizer_and_tell_it_from_a_scheduler():
    c = _Context(GAN)
    g_step, d_step, s_step = c.fact("opt_g.step()"), c.fact("opt_d.step()"), c.fact("sched.step()")
    assert steps.optimizer_stepped(g_step) == "opt_g"
    assert steps.optimizer_stepped(s_step) is None
    assert steps.is_scheduler_step(s_step) and not steps.is_scheduler_step(g_step)
    assert steps.is_optimizer("opt_g", steps.operand(g_step, "opt_g"))
    assert not steps.is_optimizer("sched", steps.operand(s_step, "sched"))
    assert steps.declared_params(steps.operand(d_step, "opt_d")) == "disc"


def test_a_loop_clearing_only_the_other_optimizer_leaves_this_one_uncleared():
    c = _Context(GAN)
    loop = c.model.loop(c.fact("opt_g.step()").loops[-1])
    assert [c.code(f.node) for f in steps.backward_calls(loop)] == ["d_loss(real).backward()", "g_loss().backward()"]
    assert steps.cleared_instead(c.model, loop, "opt_g", c.fact("opt_g.step()")) == ["opt_d"]
    assert steps.cleared_instead(c.model, loop, "opt_d", c.fact("opt_d.step()")) is None
    assert steps.clears_grads_of(c.fact("opt_d.zero_grad()"), "opt_d")
    assert not steps.clears_grads_of(c.fact("opt_d.zero_grad()"), "opt_g")


def test_a_helper_given_the_model_may_clear_and_one_given_numbers_cannot():
    code = "for x, y in loader:\n    loss_fn(model(x), y).backward()\n    {call}\n    optimizer.step()\n"
    may = _Context(code.format(call="reset(model)"))
    step = may.fact("optimizer.step()")
    assert steps.cleared_instead(may.model, may.model.loop(step.loops[-1]), "optimizer", step) is None
    cannot = _Context("from lib import log\n" + code.format(call="log(1.0)"))
    step = cannot.fact("optimizer.step()")
    assert steps.cleared_instead(cannot.model, cannot.model.loop(step.loops[-1]), "optimizer", step) == []


# -- evaluation and training (TL104, TL105) -------------------------------------------


TRAIN_THEN_TEST = """
import torch
import torch.nn as nn
model = nn.Sequential(nn.Linear(4, 8), nn.Dropout(0.5), nn.Linear(8, 2))
opt = torch.optim.SGD(model.parameters(), lr=0.1)
for x, y in train_loader:
    opt.zero_grad()
    nn.functional.cross_entropy(model(x), y).backward()
    opt.step()
with torch.no_grad():
    for x, y in test_loader:
        print(model(x).argmax(1))
"""


def test_evaluation_and_training_regions():
    c = _Context(TRAIN_THEN_TEST)
    train_call, test_call = [f for f in c.model.calls() if c.code(f.node) == "model(x)"]
    train_region, test_region = evaluation.region_around(c.model, train_call), evaluation.region_around(c.model, test_call)
    assert evaluation.evaluates(c.model, test_call, test_region)
    assert not evaluation.evaluates(c.model, train_call, train_region)
    assert evaluation.trains_module(c.model, train_call, train_region, "model")
    assert not evaluation.trains_module(c.model, train_call, train_region, "other")
    assert not evaluation.trains_module(c.model, test_call, test_region, "model")
    assert evaluation.callee_name(c.fact("opt.step()")) == "step"
    assert not evaluation.switched_to_training(c.model, test_call, "model")


def test_train_called_after_the_last_step_is_training_mode_on_purpose():
    c = _Context(TRAIN_THEN_TEST.replace("with torch.no_grad():", "model.train()\nwith torch.no_grad():"))
    test_call = [f for f in c.model.calls() if c.code(f.node) == "model(x)"][-1]
    assert evaluation.switched_to_training(c.model, test_call, "model")
    assert not evaluation.switched_to_training(c.model, test_call, "net")


# -- Module.__init__ order (TL108) ----------------------------------------------------


NET = """
import torch.nn as nn

class Block(nn.Module):
    pass

class Net(nn.Module):
    def __init__(self, n):
        self.n = n
        self.fc = nn.Linear(4, 2)
        self.block = Block()
        if n:
            self.w = nn.Parameter(torch.zeros(n))
        self.setup()
        super().__init__()
"""


def test_module_init_statements_stores_and_layers():
    c = _Context(NET)
    net = next(s for s in c.module.body if isinstance(s, cst.ClassDef) and s.name.value == "Net")
    init = module_init.init_method(net)
    assert init is not None and init.name.value == "__init__"
    stmts = module_init.init_statements(init.body)
    assert [type(s).__name__ for s in stmts] == ["Assign", "Assign", "Assign", "If", "Expr", "Expr"]
    stored = [(c.code(v), module_init.is_layer(v, c.qualname, c.model)) for s in stmts for _, v in module_init.self_stores(s, "self")]
    assert stored == [("n", False), ("nn.Linear(4, 2)", True), ("Block()", True), ("nn.Parameter(torch.zeros(n))", True)]
    assert [module_init.hands_self_on(s, "self") for s in stmts] == [False, False, False, False, True, False]
    assert [module_init.calls_init(s) for s in stmts] == [False] * 5 + [True]
    assert not module_init.is_declaration(init)
    assert [n.value for n in module_init.self_names(stmts[4], "self")] == ["self"]


def test_module_init_precheck_on_cpython_s_tree():
    tree = ast.parse(textwrap.dedent(NET))
    inits = module_init.class_inits(tree)
    assert [c.name for c, _ in inits] == ["Net"]
    assert module_init.init_may_store_first(inits[0][1])
    first = ast.parse("class A(B):\n    def __init__(self):\n        super().__init__()\n        self.fc = nn.Linear(1, 1)\n")
    assert not module_init.init_may_store_first(module_init.class_inits(first)[0][1])


# -- devices (TL401) --------------------------------------------------------------------


def test_which_calls_are_losses_that_need_one_device():
    c = _Context(
        """
        import torch.nn as nn
        import torch.nn.functional as F
        ce = nn.CrossEntropyLoss()
        ctc = nn.CTCLoss()
        class MyLoss:
            def __call__(self, a, b):
                return (a.to(b.device) - b).abs().mean()
        mine = MyLoss()
        def loss_fn(a, b):
            return a - b
        ce(out, y)
        ctc(out, y)
        F.mse_loss(out, y)
        criterion(out, y)
        mine(out, y)
        loss_fn(out, y)
        """
    )
    answers = {t: devices.is_device_checked_loss(c.fact(t), c.model, c) for t in
               ("ce(out, y)", "ctc(out, y)", "F.mse_loss(out, y)", "criterion(out, y)", "mine(out, y)", "loss_fn(out, y)")}
    assert answers == {"ce(out, y)": True, "ctc(out, y)": False, "F.mse_loss(out, y)": True, "criterion(out, y)": True,
                       "mine(out, y)": False, "loss_fn(out, y)": False}


def test_on_accelerator():
    c = _Context("import torch\nnet = torch.nn.Linear(2, 2).cuda()\ncpu = torch.nn.Linear(2, 2).cpu()\nnet(x)\ncpu(x)\n")
    assert devices.on_accelerator(c.fact("net(x)").func.placement)
    assert not devices.on_accelerator(c.fact("cpu(x)").func.placement)
    assert not devices.on_accelerator(None)


# -- layers stored on self, and the ranks that reach them (TL110) ----------------------


LAYERS = """
import torch
import torch.nn as nn

class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(4, 3)
        self.sm = nn.Softmax()
        def helper():
            self.inner = nn.ReLU()
        class Inner:
            def __init__(self):
                self.x = nn.Tanh()

    def forward(self, x):
        return self.sm(self.fc(x))

net = Net()
y = net(torch.randn(2, 4))
top = nn.Softmax()
"""


def _rule_context(code: str):
    from torchlint.rules.base import Context

    source = textwrap.dedent(code)
    module = cst.parse_module(source)
    return Context("layers.py", source, module, NameResolver(module))


def _constructions(context) -> dict[str, cst.Call]:
    from torchlint.walk import walk

    found: dict[str, cst.Call] = {}
    walk(context.module, lambda n: found.setdefault(context.code(n), n) if isinstance(n, cst.Call) else None, lambda n: None)
    return found


def test_tables_say_which_class_stores_a_constructed_layer_on_self():
    from torchlint.analysis.tables import file_tables

    context = _rule_context(LAYERS)
    calls, tables = _constructions(context), file_tables(context)
    assert tables.stored_on_self(calls["nn.Softmax()"]) == ("Net", "sm")
    assert tables.stored_on_self(calls["nn.ReLU()"]) == ("Net", "inner")
    assert tables.stored_on_self(calls["nn.Tanh()"]) == ("Inner", "x")
    assert tables.stored_on_self(calls["Net()"]) is None


def test_input_ranks_reach_a_stored_layer_through_its_calls_in_forward():
    from torchlint.shapes import input_ranks

    context = _rule_context(LAYERS)
    calls = _constructions(context)
    assert input_ranks(context, calls["nn.Softmax()"]) == {2}
    assert input_ranks(context, calls["self.sm(self.fc(x))"]) == {2}
    assert input_ranks(context, calls["nn.Tanh()"]) == set()
    # No forward (nor Sequential) in the file: the shape analysis is not asked.
    unrun = _rule_context(LAYERS.replace("forward", "run"))
    assert input_ranks(unrun, _constructions(unrun)["nn.Softmax()"]) == set() and "shapes" not in unrun.cache
