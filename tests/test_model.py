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
    Shape,
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


# -- issue #12: tensor shapes from the shape analysis, on first request -------------------------

SHAPES = """
import torch
import torch.nn as nn
from torchvision import datasets, transforms
from torch.utils.data import DataLoader

train = datasets.MNIST("data", train=True, download=True, transform=transforms.ToTensor())
loader = DataLoader(train, batch_size=64, shuffle=True)
features = nn.Sequential(nn.Conv2d(1, 8, 3), nn.ReLU(), nn.Flatten())
head = nn.Sequential(nn.Linear(100, 10))

def epoch(model, loader):
    for images, labels in loader:
        out = model(images)
        log(out)

epoch(features, loader)
x = torch.randn(2, 3)
x.sum()
for images, labels in loader:
    h = features(images)
    log(h, labels)
    out = head(h)
    log(out)
"""


def _arg_shapes(model: ProgramModel, module: cst.Module, text: str):
    fact = fact_of(model, module, text)
    return [v.shape if isinstance(v, TensorV) else None for v in fact.args]


def test_tensor_shapes_come_from_the_shape_analysis():
    model, module = build(SHAPES)
    # A batch of a DataLoader over a known dataset, and what a known nn.Sequential makes of it.
    [images] = _arg_shapes(model, module, "features(images)")
    assert images == Shape((64, 1, 28, 28), batch=True)
    assert _arg_shapes(model, module, "log(h, labels)")[0] == Shape((64, 8 * 26 * 26), batch=True)
    # The same Sequential given as an argument and applied inside a function.
    assert _arg_shapes(model, module, "model(images)") == [Shape((64, 1, 28, 28), batch=True)]
    outs = {f.function is None: f.args[0].shape for f in model.calls() if module.code_for_node(f.node) == "log(out)"}
    assert outs[False] == Shape((64, 8 * 26 * 26), batch=True)  # features' output, in epoch()
    assert outs[True] is None  # head's Linear(100) does not fit 5408: no output
    # A tensor factory: its first size is not a loader's batch.
    receiver = fact_of(model, module, "x.sum()").receiver
    assert receiver.shape == Shape((2, 3)) and receiver.shape.dtype == "float"
    # Labels: one dimension, whose size the shape analysis does not give; integer class indices.
    labels = _arg_shapes(model, module, "log(h, labels)")[1]
    assert labels == Shape((None,), dtype="long")


def test_tensor_shapes_are_computed_only_when_asked_and_once_per_expression():
    model, module = build(SHAPES)
    assert model._oracle is None and model._shapes == {}  # building the model asks nothing
    fact = fact_of(model, module, "features(images)")
    first = fact.args[0].shape
    assert model._oracle is not None and len(model._shapes) == 1
    assert fact.args[0].shape is first and len(model._shapes) == 1
    # The shape does not take part in what a value is: joins and comparisons ignore it.
    assert fact.args[0] == TensorV(fact.args[0].placement, fact.args[0].origin, fact.args[0].grad)


def test_tensor_shapes_stay_unknown_where_the_shape_analysis_cannot_know():
    model, module = build(
        """
        import torch
        from torch.utils.data import DataLoader
        loader = DataLoader(MyDataset())
        model = torch.nn.Linear(3, 4)
        for x, y in loader:
            out = model(x)
            log(out)
        def f(t):
            log(t)
        f(torch.randn(n, 3))
        """
    )
    assert fact_of(model, module, "model(x)").args[0].shape is None  # a custom dataset
    out = fact_of(model, module, "log(out)").args[0]
    assert isinstance(out, TensorV) and out.shape is None  # nor what the model gives for it
    # A size the file does not fix is None; the rank and the other sizes are known.
    assert fact_of(model, module, "log(t)").args[0].shape == Shape((None, 3))


def test_tl301_checks_a_model_fed_another_model_s_output_through_the_model_s_shapes():
    # head's input is features' output: TL301's own evaluation stops at a model called outside a
    # run; the program model's tensor value gives its shape (64 x 8*26*26) and head is checked.
    [finding] = RuleTester("TL301").findings(SHAPES)
    assert finding.range.line == 10
    assert finding.message == "head[0] = Linear(100, 10) expects 100 input features, but the input h (line 23) has 5408"
    assert finding.data["input_shape"] == [64, 5408]
    # With a Linear that fits, nothing is reported.
    assert RuleTester("TL301").findings(SHAPES.replace("nn.Linear(100, 10)", "nn.Linear(5408, 10)")) == []


# -- issue #12: one table of what each name of the file is --------------------------------------


def test_tables_keep_every_class_of_a_name_and_the_try_context():
    model, module = build(
        """
        import torch.nn as nn
        try:
            from apex import FusedNorm as Norm
        except ImportError:
            class Norm(nn.Module):
                def forward(self, x):
                    return x
        class Norm(nn.LayerNorm):
            pass
        class Net(nn.Module):
            class Inner:
                pass
            def __init__(self):
                super().__init__()
                try:
                    self.fc = nn.Linear(2, 2)
                except Exception:
                    self.fc = [x for x in range(3) if check(x)]
            def forward(self, x):
                def helper(y):
                    return g(y)
                return helper(self.fc(x))
        """
    )
    tables = model.tables
    norms = model.class_defs("Norm")
    assert [c.in_try for c in norms] == [True, False] and model.classes["Norm"] is norms[0].node
    assert [c.name for c in tables.classes] == ["Norm", "Norm", "Net", "Inner"]
    net = tables.classes_named("Net")[0]
    assert sorted(net.methods) == ["__init__", "forward"] and tables.classes_named("Inner")[0].methods == {}
    helper = next(f for f in tables.functions if f.name == "helper")
    assert helper.owner is None and helper.chain == (net.methods["forward"].node,)
    assert helper.scope.parent is net.methods["forward"].scope and tables.scope_of(helper.node) is helper.scope
    assert norms[1].scope.qualname(norms[1].node.bases[0].value) == "torch.nn.LayerNorm"
    sites = {module.code_for_node(s.node): s for s in tables.calls}
    linear, check, g = sites["nn.Linear(2, 2)"], sites["check(x)"], sites["g(y)"]
    assert (linear.in_try, linear.in_class is net, linear.in_comp) == (True, True, False)
    assert (check.in_try, check.in_comp) == (True, True)
    assert (g.in_try, g.in_class is net, g.scope is helper.scope) == (False, True, True)
    assert tables.calls_named("helper") == [sites["helper(self.fc(x))"]]
    assert tables.site(g.node) is g


def test_tables_record_assignments_that_change_a_model_from_outside():
    model, _ = build(
        """
        import torch.nn as nn
        class Net(nn.Module):
            layers = nn.Sequential(nn.Linear(2, 2))
            def __init__(self):
                super().__init__()
                self.fc = nn.Linear(2, 2)
        net = Net()
        net.fc = nn.Linear(2, 3)
        seq = nn.Sequential(nn.ReLU())
        seq[0] = nn.Tanh()
        """
    )
    tables = model.tables
    assert tables.foreign_attr_assigns == {"fc"} and tables.subscript_assigns == {"seq"}
    assert [name for name, _, _ in tables.sequential_assigns] == ["seq"]  # a class body's own is not one
