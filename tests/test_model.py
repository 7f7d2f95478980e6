"""The program model (torchlint/analysis): what values flow where, and the questions rules ask of it."""

from __future__ import annotations

import textwrap

import libcst as cst

from torchlint.analysis.model import ProgramModel
from torchlint.analysis.values import (
    UNKNOWN,
    InstanceV,
    LoaderV,
    ModuleV,
    OptimizerV,
    TensorV,
)
from torchlint.names import NameResolver
from torchlint.testing import RuleTester


def build(code: str) -> tuple[ProgramModel, cst.Module]:
    module = cst.parse_module(textwrap.dedent(code))
    return ProgramModel(module, NameResolver(module), module.code_for_node), module


def fact_of(model: ProgramModel, module: cst.Module, text: str):
    """The fact of the (last) call whose code is ``text``."""
    found = [f for f in model.calls() if module.code_for_node(f.node) == text]
    assert found, text
    return found[-1]


def test_module_level_model_flows_into_a_function_s_parameter():
    model, module = build(
        """
        import torch
        from torch.utils.data import DataLoader
        net = torch.nn.Linear(2, 2).cuda()
        loader = DataLoader(ds)
        def train(model, loader):
            for x, y in loader:
                model(x)
        train(net, loader)
        """
    )
    fact = fact_of(model, module, "model(x)")
    assert isinstance(fact.func, ModuleV) and fact.func.placement is not None
    assert isinstance(fact.args[0], TensorV) and fact.args[0].cpu_batch
    assert fact.args[0].origin.root == "x"


def test_a_parameter_given_a_moved_and_an_unmoved_model_is_not_on_a_device():
    model, module = build(
        """
        import torch
        a = torch.nn.Linear(2, 2).cuda()
        b = torch.nn.Linear(2, 2)
        def run(m, x):
            return m(x)
        run(a, 1)
        run(b, 2)
        """
    )
    fact = fact_of(model, module, "m(x)")
    assert isinstance(fact.func, ModuleV) and fact.func.placement is None


def test_self_attributes_set_in_init_are_seen_by_other_methods():
    model, module = build(
        """
        import torch
        class Trainer:
            def __init__(self):
                self.model = torch.nn.Linear(2, 2).to("cuda")
                self.opt = torch.optim.SGD(self.model.parameters(), lr=0.1)
            def step(self, x):
                self.model(x)
                self.opt.step()
        """
    )
    call = fact_of(model, module, "self.model(x)")
    assert isinstance(call.func, ModuleV) and call.func.placement.text == '"cuda"'
    step = fact_of(model, module, "self.opt.step()")
    assert step.receiver == OptimizerV("self.model", True)


def test_if_else_joins_keep_only_what_both_paths_agree_on():
    model, module = build(
        """
        import torch
        m = torch.nn.Linear(2, 2)
        if flag:
            m.cuda()
        m(x)
        """
    )
    fact = fact_of(model, module, "m(x)")
    assert isinstance(fact.func, ModuleV) and fact.func.placement is None


def test_functools_partial_binds_arguments():
    model, module = build(
        """
        import functools
        import torch
        def fit(model, loader):
            for x in loader:
                model(x)
        run = functools.partial(fit, torch.nn.Linear(2, 2).cuda())
        run(train_loader)
        """
    )
    fact = fact_of(model, module, "model(x)")
    assert isinstance(fact.func, ModuleV) and fact.func.placement is not None


def test_returns_flow_back_and_modules_returned_by_to_stay_modules():
    model, module = build(
        """
        import torch
        def make():
            return torch.nn.Linear(2, 2)
        enc = make().to("cuda")
        enc.cpu()
        t = torch.randn(2)
        t.cpu()
        """
    )
    assert isinstance(fact_of(model, module, "enc.cpu()").receiver, ModuleV)
    assert isinstance(fact_of(model, module, "t.cpu()").receiver, TensorV)


def test_context_loops_no_grad_and_discarded_results():
    model, module = build(
        """
        import torch
        for x in loader:
            with torch.no_grad():
                y = f(x)
            g(x)
        """
    )
    inner, outer = fact_of(model, module, "f(x)"), fact_of(model, module, "g(x)")
    assert inner.grad_mode == "no_grad" and outer.grad_mode is None
    assert len(inner.loops) == 1 and not inner.discarded and outer.discarded
    assert [module.code_for_node(f.node) for f in model.loop(inner.loops[0]).calls] == ["torch.no_grad()", "f(x)", "g(x)"]


def test_names_the_file_never_binds_are_read_by_their_name_only_for_known_roles():
    model, module = build("f(train_loader, optimizer, model, epoch)\n")
    fact = fact_of(model, module, "f(train_loader, optimizer, model, epoch)")
    assert isinstance(fact.args[0], LoaderV) and isinstance(fact.args[1], OptimizerV)
    assert isinstance(fact.args[2], ModuleV) and fact.args[3] is UNKNOWN


def test_effects_unseen_calls_clear_only_what_they_can_reach():
    model, module = build(
        """
        import torch
        from helpers import log, hook
        class Box:
            def __init__(self, opt):
                self.opt = opt
        net = torch.nn.Linear(2, 2)
        opt = torch.optim.SGD(net.parameters())
        box = Box(opt)
        log(1.0)
        hook(net)
        hook(net.parameters())
        log(box)
        torch.save(net, "x")
        def reset():
            opt.zero_grad()
        reset()
        """
    )
    clears = {module.code_for_node(f.node): model.may_clear_grads(f) for f in model.calls() if f.function is None}
    assert clears["log(1.0)"] is False
    assert clears["hook(net)"] is True
    assert clears["hook(net.parameters())"] is True
    assert clears["log(box)"] is True  # an object of the file holding the optimizer
    assert clears['torch.save(net, "x")'] is False  # a known library
    assert clears["reset()"] is True  # code of the file that clears
    assert fact_of(model, module, "log(box)").args == (InstanceV("Box"),)


# -- issue #15: TL301 batch folding needs a known batch --------------------------------

UNBATCHED = """
import torch
import torch.nn as nn


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(600, 10)

    def forward(self, x):
        z0 = x.view(-1)
        return self.fc(z0)


net = Net()
x = torch.randn(3, 10, 20)
print(net(x))
"""


def test_tl301_view_of_one_unbatched_tensor_is_not_a_batch_change():
    assert RuleTester("TL301").lines(UNBATCHED) == []


def test_tl301_view_that_folds_batches_a_loader_gives_the_model_is_reported():
    code = UNBATCHED + "for batch, y in train_loader:\n    net(batch)\n"
    assert RuleTester("TL301").lines(code) == [12]


# -- text pre-filters hold for every line ending ------------------------------------------


def test_tl401_and_tl402_prefilters_accept_cr_only_files():
    tl401 = "model = Net().to(device)\rfor x, y in train_loader:\r    model(x)\r"
    assert RuleTester("TL401").lines(tl401) == [3]
    tl402 = "import torch\rx = torch.randn(3)\rx.cuda()\r"
    assert RuleTester("TL402").lines(tl402) == [3]


def test_batches_drawn_through_iter_name_their_loader():
    model, module = build(
        """
        import torch
        testloader = torch.utils.data.DataLoader(ds)
        it = iter(testloader)
        images, labels = it.next()
        f(images)
        """
    )
    (arg,) = fact_of(model, module, "f(images)").args
    assert isinstance(arg, TensorV) and arg.origin.loader == "testloader" and arg.origin.root == "images"


def test_a_helper_called_for_its_effect_on_a_batch_may_move_it_in_place():
    lines = RuleTester("TL401").lines
    code = "from utils import to_device\nmodel = Net().to(device)\nfor batch in train_loader:\n    to_device(batch, device)\n    model(**batch)\n"
    assert lines(code) == []
    # Its result used instead: the batch itself was not given away to be changed.
    assert lines(code.replace("    to_device(batch, device)", "    n = count(batch)")) == [5]


# -- TL103/TL105 facts: activations, train/eval modes, mode-dependent layers --------------


def test_activation_flows_through_names_shapes_and_forward_returns():
    model, module = build(
        """
        import torch
        import torch.nn as nn
        import torch.nn.functional as F
        class Net(nn.Module):
            def __init__(self):
                super().__init__()
                self.fc = nn.Linear(4, 3)
            def forward(self, x):
                return F.softmax(self.fc(x), dim=1)
        class Maybe(nn.Module):
            def forward(self, x):
                if not self.training:
                    return torch.softmax(x, 1)
                return x
        net, maybe = Net(), Maybe()
        p = torch.sigmoid(z).squeeze(1)
        q = p + 1
        seq = nn.Sequential(nn.Linear(4, 1), nn.LogSoftmax(dim=1))
        f(p, q, net(x), maybe(x), seq(x))
        """
    )
    p, q, out, maybe, seq = fact_of(model, module, "f(p, q, net(x), maybe(x), seq(x))").args
    assert isinstance(p, TensorV) and p.act == "sigmoid"
    assert isinstance(q, TensorV) and q.act is None  # arithmetic: no longer the activation's output
    assert isinstance(out, TensorV) and out.act == "softmax" and out.act_site is not None
    assert isinstance(maybe, TensorV) and maybe.act is None  # softmax on one path only
    assert isinstance(seq, TensorV) and seq.act == "log_softmax"


def test_modes_follow_construction_eval_helpers_and_loop_back_edges():
    model, module = build(
        """
        import torch.nn as nn
        def validate(m):
            m.eval()
        net = nn.Sequential(nn.Linear(4, 4), nn.Dropout())
        a(net)
        net.train(flag)
        b(net)
        net.train()
        validate(net)
        c(net)
        net.train()
        for epoch in range(3):
            d(net)
            validate(net)
        """
    )
    mode = lambda text: fact_of(model, module, text).args[0]  # noqa: E731
    assert mode("a(net)").training is True  # a new module is in training mode
    assert mode("b(net)").training is None  # train(flag): unknown
    assert mode("c(net)").training is False  # validate() leaves it in eval mode
    d = mode("d(net)")
    assert d.training is None and d.back is False  # the epoch loop's back edge brings eval mode


def test_mode_dependent_layers():
    model, module = build(
        """
        import torch.nn as nn
        import torch.nn.functional as F
        from blocks import Block
        class Plain(nn.Module):
            def __init__(self):
                super().__init__()
                self.fc = nn.Linear(4, 2)
        class Drop(nn.Module):
            def forward(self, x):
                return F.dropout(x, 0.5, self.training)
        class Unknown(nn.Module):
            def __init__(self):
                super().__init__()
                self.block = Block()
        class Lstm(nn.Module):
            def __init__(self):
                super().__init__()
                self.rnn = nn.LSTM(4, 4, num_layers=2, dropout=0.2)
        """
    )
    assert model.class_mode_dependent("Plain") is False
    assert model.class_mode_dependent("Drop") is True
    assert model.class_mode_dependent("Unknown") is None
    assert model.class_mode_dependent("Lstm") is True

def _reads(module: cst.Module, name: str) -> list[cst.Name]:
    found: list[cst.Name] = []

    class V(cst.CSTVisitor):
        def visit_Name(self, node: cst.Name) -> None:
            if node.value == name:
                found.append(node)

    module.visit(V())
    return found


def test_definitions_give_the_provenance_of_a_read():
    model, module = build(
        """
        import torch
        x = torch.randn(1, 3)
        if cond:
            y = x
        else:
            y = torch.zeros(2)
        for a, (b, c) in pairs:
            use(y, c)

        def f(n, *, k=1):
            return n + k + x

        f(2, k=3)
        f(4)
        """
    )
    code = module.code_for_node
    y_read = _reads(module, "y")[-1]
    assert sorted(code(d.node) for d in model.definitions(y_read).items) == ["torch.zeros(2)", "x"]
    (c_def,) = model.definitions(_reads(module, "c")[-1]).items
    assert (c_def.kind, code(c_def.node), c_def.path) == ("for", "pairs", (1, 1))
    n_read, k_read, x_read = _reads(module, "n")[-1], _reads(module, "k")[1], _reads(module, "x")[-1]
    (n_def,) = model.definitions(n_read).items
    (k_def,) = model.definitions(k_read).items
    assert (n_def.kind, n_def.index, k_def.kind, k_def.index, k_def.name) == ("param", 0, "param", None, "k")
    # A global read in a function: every definition of the module's body.
    (x_def,) = model.definitions(x_read).items
    assert (x_def.kind, code(x_def.node), x_def.scope) == ("assign", "torch.randn(1, 3)", None)
    sites = model.call_sites(n_def.node)
    assert [(code(call), plain) for call, plain in sites] == [("f(2, k=3)", True), ("f(4)", True)]
    # Imports are not definitions: the name resolver answers them.
    assert model.definitions(_reads(module, "torch")[0]) is None


def test_definitions_are_opaque_where_a_name_is_also_imported_or_declared_global():
    model, module = build(
        """
        try:
            from apex import amp
        except ImportError:
            amp = None
        size = 10
        def grow():
            global size
            size = 20
        use(amp, size)
        """
    )
    for name in ("amp", "size"):
        (d,) = model.definitions(_reads(module, name)[-1]).items
        assert d.kind == "other", name
