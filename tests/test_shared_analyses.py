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


# -- accumulators in loops (TL102) ------------------------------------------------------


def test_values_that_are_never_a_graph_carrying_tensor():
    from torchlint.analysis.accumulators import never_a_tensor

    never = ["1", "-1.0", "loss.item()", "out.tolist()", "[loss]", "'a'"]
    maybe = ["loss", "loss * 2", "loss.item(1)", "-loss", "model(x)"]
    assert [never_a_tensor(cst.parse_expression(e)) for e in never] == [True] * len(never)
    assert [never_a_tensor(cst.parse_expression(e)) for e in maybe] == [False] * len(maybe)


def _loop_and_module(code: str) -> tuple[cst.CSTNode, cst.Module]:
    module = cst.parse_module(textwrap.dedent(code))
    return next(s for s in module.body if isinstance(s, (cst.For, cst.While))), module


def test_rebound_and_graph_feeding_accumulators():
    from torchlint.analysis.accumulators import feeds_graph, rebound_in

    loop, module = _loop_and_module("for x in xs:\n    total = 0\n    total += f(x)\n")
    assert rebound_in(loop, "total") and not rebound_in(loop, "other")
    assert feeds_graph(cst.parse_module("s = acc * 2\nt = s + 1\nt.backward()\n"), "acc")
    assert feeds_graph(cst.parse_module("def f():\n    return acc\n"), "acc")
    assert not feeds_graph(cst.parse_module("print(acc)\nacc2.backward()\n"), "acc")


def test_an_accumulator_only_printed_or_converted_is_read_as_a_number():
    from torchlint.analysis.accumulators import read_as_number_only

    loop, module = _loop_and_module("total = 0\nfor x in xs:\n    total += f(x)\nprint(f'{total}', float(total))\n")
    stmt = loop.body.body[0].body[0]  # total += f(x)
    assert read_as_number_only(module, "total", stmt)
    loop, module = _loop_and_module("total = 0\nfor x in xs:\n    total += f(x)\nsaved = total.cpu()\n")
    assert not read_as_number_only(module, "total", loop.body.body[0].body[0])


def test_accumulator_precheck_on_cpython_s_tree():
    from torchlint.analysis.accumulators import may_report

    def judge(code: str) -> bool:
        source = textwrap.dedent(code)
        return may_report(ast.parse(source), source)

    assert judge("for x, y in loader:\n    loss = crit(model(x), y)\n    total += loss\n")
    assert judge("for x, y in loader:\n    losses.append(crit(model(x), y))\n")
    assert not judge("for x, y in loader:\n    total += crit(model(x), y).item()\n")  # numbers only
    assert not judge("for x, y in loader:\n    total = 0\n    total += crit(model(x), y)\n")  # rebound
    assert not judge("for x in xs:\n    loss += crit(x)\nloss.backward()\n")  # feeds the graph
    assert not judge("for x, y in loader:\n    results.append(model(x))\n")  # no loss in the appended text
    assert not judge("total += loss\n")  # not in a loop


# -- what the API rules leave alone (TL203, TL204, TL501, TL502) ---------------------


def test_compatibility_code_is_recognised():
    from torchlint.analysis.api_exemptions import catches_missing_api, is_version_test

    def handler(code: str) -> cst.ExceptHandler:
        return cst.ensure_type(cst.parse_statement(f"try:\n    pass\n{code}:\n    pass\n"), cst.Try).handlers[0]

    assert [catches_missing_api(handler(h)) for h in ("except", "except AttributeError", "except (KeyError, ImportError) as e",
                                                       "except builtins.Exception", "except KeyError", "except (ValueError, TypeError)")] == \
        [True, True, True, True, False, False]
    tests = ["torch.__version__ >= '2.0'", "hasattr(torch, 'compile')", "TORCH_VERSION > (1, 13)", "args.cuda", "x is None"]
    assert [is_version_test(cst.parse_expression(t)) for t in tests] == [True, True, True, False, False]


def test_the_compatibility_mixins_count_where_the_traversal_is():
    from torchlint.analysis.api_exemptions import GuardedCompatibilityCode
    from torchlint.rules.base import Rule
    from torchlint.testing import RuleTester

    seen: list[tuple[str, int, int]] = []

    class Probe(GuardedCompatibilityCode, Rule):
        code = "TL999"
        name = "probe"
        message = "probe"

        def visit_Attribute(self, node: cst.Attribute) -> None:
            seen.append((self.context.code(node), self.compat_fallback, self.compat_guarded))

    RuleTester(Probe).findings(
        "try:\n    a.x\nexcept AttributeError:\n    b.y\n"
        "if torch.__version__ > '2':\n    c.z\nelse:\n    d.w\n"
        "try:\n    e.v\nexcept KeyError:\n    pass\n"
        "f.u\n"
    )
    assert [s for s in seen if len(s[0]) == 3] == [
        ("a.x", 0, 1), ("b.y", 1, 1), ("c.z", 1, 0), ("d.w", 1, 0), ("e.v", 0, 0), ("f.u", 0, 0),
    ]


def test_import_paths_and_the_file_s_own_names(tmp_path):
    from torchlint.analysis.api_exemptions import import_path_parts, inside_own_package, names_the_file_defines

    dotted = cst.parse_expression("torch.nn.functional")
    assert import_path_parts(dotted) == {id(dotted), id(dotted.value)}
    assigned, strings = names_the_file_defines("model.extra = 1\nm.w: int = 2\nif m.a == 1:\n    setattr(m, 'in_files', 3)\n")
    assert assigned == {"extra", "w"} and "in_files" in strings and "a" not in assigned
    package = tmp_path / "site" / "torch"
    (package / "nn").mkdir(parents=True)
    (package / "__init__.py").write_text("")
    own = str(package / "nn" / "linear.py")  # (a subpackage without __init__.py is still inside torch)
    assert inside_own_package(own, "torch.nn.Linear") and not inside_own_package(own, "torchvision.models")
    assert not inside_own_package(str(tmp_path / "site" / "train.py"), "torch.nn.Linear")
    assert not inside_own_package("<stdin>", "torch.nn.Linear")


def test_a_package_s_own_sources_concern_another_package_only_through_an_import(tmp_path):
    """torch's own sources are checked against torchvision's API only where they import it: the word
    in a string (`"torchvision::nms"`, an operator's name) or a comment lets nothing resolve there."""
    from torchlint.analysis.api_exemptions import may_concern_other_packages

    package = tmp_path / "torch"
    package.mkdir()
    (package / "__init__.py").write_text("")
    own = str(package / "ops.py")
    packages = ("torch", "torchvision")
    assert not may_concern_other_packages("import torch\nOPS = ['torchvision::nms']  # torchvision\n", own, packages)
    assert may_concern_other_packages("import torch\ndef f():\n    import torchvision.ops\n", own, packages)
    assert may_concern_other_packages("from torchvision.models import *\n", own, packages)
    assert may_concern_other_packages("import torch\nOPS = ['torchvision::nms']\n", str(tmp_path / "train.py"), packages)
    assert may_concern_other_packages("OPS = ['torchvision::nms'\n", own, packages)  # (unparsable: cannot say no)


def test_knowledge_spells_a_class_by_its_public_name():
    from torchlint.knowledge import knowledge_for

    kb = knowledge_for("x.py")
    assert kb.public_name("torch.nn.modules.linear.Linear") == "torch.nn.Linear"
    assert kb.public_name("no.such.Thing") == "no.such.Thing"


# -- torchvision builders and their weights flags (TL202, TL502) ------------------------


def _flags(code: str):
    from torchlint.analysis.vision_builders import weights_flags

    context = _rule_context(code)
    return context, [f for call in _constructions(context).values() for f in weights_flags(context, call)]


def test_weights_flags_of_a_builder_reached_through_the_imports():
    context, flags = _flags(
        "from torchvision.models import detection, quantization\n"
        "m = detection.fasterrcnn_resnet50_fpn(pretrained=True, pretrained_backbone=False, weights_backbone=None)\n"
        "q = quantization.resnet18(pretrained=flag, quantize=maybe)\n"
    )
    described = [(f.reached, f.builder, f.old, f.new, f.value, f.conflict, f.member) for f in flags]
    assert described == [
        ("name", "torchvision.models.detection.fasterrcnn_resnet50_fpn", "pretrained", "weights", True, False, "COCO_V1"),
        ("name", "torchvision.models.detection.fasterrcnn_resnet50_fpn", "pretrained_backbone", "weights_backbone", False, True, "IMAGENET1K_V1"),
        ("name", "torchvision.models.quantization.resnet18", "pretrained", "weights", None, False, None),
    ]
    assert flags[0].ref.enum == "FasterRCNN_ResNet50_FPN_Weights" and flags[2].ref is None  # quantize= not a literal


def test_weights_flags_of_builders_picked_at_run_time_or_through_the_hub():
    _, flags = _flags(
        "import torch\nimport torchvision.models as models\nimport timm\n"
        "a = models.__dict__[arch](pretrained=True)\n"
        "b = getattr(models.segmentation, arch)(pretrained_backbone=True)\n"
        "c = torch.hub.load('pytorch/vision', 'resnet18', pretrained=True, force_reload=True)\n"
        "d = torch.hub.load('pytorch/vision:v0.10.0', 'resnet18', pretrained=True)\n"
        "e = timm.create_model('resnet18', pretrained=True)\n"
        "f = models.resnet18(True)\n"
    )
    described = [(f.reached, f.builder, f.old, f.member, f.positionals) for f in flags]
    assert described == [
        ("run time", "torchvision.models.*", "pretrained", "IMAGENET1K_V1", 0),
        ("run time", "torchvision.models.segmentation.*", "pretrained_backbone", "IMAGENET1K_V1", 0),
        ("hub", "torchvision.models.resnet18", "pretrained", "IMAGENET1K_V1", 0),
        ("name", "torchvision.models.resnet18", "pretrained", "IMAGENET1K_V1", 1),
    ]


def test_hub_helpers_name_the_builder_and_the_forwarded_keywords():
    from torchlint.analysis.vision_builders import forwarded_keywords, vision_hub_model, vision_hub_tag

    call = cst.ensure_type(cst.parse_expression("hub.load('pytorch/vision:v0.13.0', 'vgg16', weights=w, verbose=False)"), cst.Call)
    assert (vision_hub_model(call), vision_hub_tag(call)) == ("vgg16", "v0.13.0")
    assert [a.keyword.value for a in forwarded_keywords(call)] == ["weights"]
    local = cst.ensure_type(cst.parse_expression("hub.load('pytorch/vision', 'vgg16', source='local')"), cst.Call)
    assert vision_hub_model(local) is None


def test_fix_helpers_reference_a_name_import_it_and_replace_an_argument():
    from torchlint.analysis.apicalls import condition_text, reference_to, replace_argument
    from torchlint.rules.base import InsertAtLine, Replace

    context = _rule_context('"""doc"""\nimport torchvision.models as models\nfrom torchvision.models import resnet50\nx = 1\n')
    ops: list = []
    via = cst.parse_expression("models.resnet18")
    assert reference_to(context, "ResNet18_Weights", ("torchvision.models",), via, ops) == "models.ResNet18_Weights" and ops == []
    bare = cst.parse_expression("resnet50")
    assert reference_to(context, "ResNet50_Weights", ("torchvision.models",), bare, ops) == "ResNet50_Weights"
    assert len(ops) == 1 and isinstance(ops[0], Replace)  # appended to `from torchvision.models import resnet50`
    ops = []
    assert reference_to(context, "Raft_Weights", ("torchvision.models.optical_flow",), bare, ops) == "Raft_Weights"
    assert isinstance(ops[0], InsertAtLine) and ops[0].line == 4 and ops[0].text == "from torchvision.models.optical_flow import Raft_Weights\n"
    taken = _rule_context("from mylib import ResNet50_Weights\n")
    assert reference_to(taken, "ResNet50_Weights", ("torchvision.models",), bare, []) is None
    assert condition_text(context, cst.parse_expression("a if b else c")) == "(a if b else c)"
    assert condition_text(context, cst.parse_expression("args.pretrained")) == "args.pretrained"
    call = cst.ensure_type(cst.parse_expression("f(True, pretrained=x)"), cst.Call)
    assert len(replace_argument(call.args[0], "weights", "W")) == 1 and len(replace_argument(call.args[1], "weights", "W")) == 2


# -- the rule modules stay what a rule is ------------------------------------------------


def test_every_rule_module_is_a_question_a_message_examples_and_a_fix():
    """A rule module over 250 lines has grown an analysis of its own: it belongs in torchlint/analysis/
    (docs/architecture-model.md#shared-analyses), where the next rule can ask it too."""
    from pathlib import Path

    rules = Path(__file__).resolve().parent.parent / "torchlint" / "rules"
    sizes = {p.name: len(p.read_text(encoding="utf-8").splitlines()) for p in sorted(rules.glob("tl*.py"))}
    assert len(sizes) >= 30
    assert {name: n for name, n in sizes.items() if n > 250} == {}


def test_a_loop_that_only_evaluates_with_gradients_on():
    code = """
    import torch
    net = torch.nn.Linear(4, 2)
    def validate(loader):
        for x, y in loader:
            print(net(x))
    def fit(loader):
        for x, y in loader:
            net(x).sum().backward()
    validate(val_loader)
    fit(train_loader)
    with torch.no_grad():
        validate(test_loader)
    """
    c = _Context(code)
    validate_call, fit_call = [f for f in c.model.calls() if c.code(f.node) == "net(x)"][:2]
    validate_loop = evaluation.region_around(c.model, validate_call)
    fit_loop = evaluation.region_around(c.model, c.fact("net(x)"))
    assert evaluation.shows_evaluation(validate_call, validate_loop)  # def validate
    assert evaluation.evaluation_call(c.model, fit_loop) is None  # it trains
    assert not evaluation.called_with_grad(c.model, validate_loop.function)  # one call site is under no_grad
    assert evaluation.evaluation_call(c.model, validate_loop) is None
    once = _Context(code.replace("with torch.no_grad():\n        validate(test_loader)\n", ""))
    call = [f for f in once.model.calls() if once.code(f.node) == "net(x)"][0]
    loop = evaluation.region_around(once.model, call)
    assert evaluation.called_with_grad(once.model, loop.function)
    assert evaluation.evaluation_call(once.model, loop) is call
    assert not evaluation.backward_after(once.model, loop) and evaluation.enclosing_loops(loop) == [loop.node]
