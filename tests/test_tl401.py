"""TL401 missing-to-device: which models are on a device, which tensors come from a loader, what counts as moved."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from torchlint.testing import RuleTester

FIXTURES_DIR = Path(__file__).resolve().parent.parent / "fixtures" / "tl401_missing_to_device"


RULE = RuleTester("TL401")
findings, lines = RULE.findings, RULE.lines


def fixed(code: str) -> str:
    return RULE.fixed(code, unsafe=True)


BASIC = """
import torch
from torch.utils.data import DataLoader
device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
trainloader = DataLoader(trainset, batch_size=4)
model = Net()
model.to(device)
for inputs, labels in trainloader:
    outputs = model(inputs)
    loss = criterion(outputs, labels)
"""


def test_findings_name_tensor_loader_model_and_device():
    first, second = findings(BASIC)
    assert (first.range.line, first.range.column, first.range.end_column) == (9, 20, 26)
    assert first.message == (
        "`inputs` from `trainloader` reaches `model` (moved with `.to(device)` on line 7) without being moved to `device`"
    )
    assert first.data == {"device": "device", "tensor": "inputs", "model": "model"}
    assert [(r.range.line, r.message) for r in first.related] == [(7, "`model` is moved to `device` here")]
    assert second.range.line == 10
    assert "`labels` from `trainloader` reaches `criterion` together with the output of `model`" in second.message
    assert second.data["tensor"] == "labels"
    assert {f.fix.applicability for f in (first, second)} == {"unsafe"}


def test_fix_moves_both_at_the_top_of_the_loop_and_is_clean_after():
    out = fixed(BASIC)
    body = out.split("for inputs, labels in trainloader:\n", 1)[1]
    assert body.startswith("    ")
    assert "    inputs = inputs.to(device)\n" in body and "    labels = labels.to(device)\n" in body
    assert lines(out) == []


def test_cuda_models_get_cuda_fixes_with_the_same_arguments():
    code = "model = Net().cuda(1)\nfor x, y in train_loader:\n    model(x)\n"
    (f,) = findings(code)
    assert "moved with `.cuda(1)`" in f.message and "to the GPU" in f.message
    assert f.data["device"] == "cuda"
    assert fixed(code) == "model = Net().cuda(1)\nfor x, y in train_loader:\n    x = x.cuda(1)\n    model(x)\n"


def test_fix_after_the_unpacking_line_keeps_its_comment():
    code = "model.cuda()\nfor batch in train_loader:\n    x, y = batch  # unpack\n    out = model(x)\n"
    assert fixed(code) == "model.cuda()\nfor batch in train_loader:\n    x, y = batch  # unpack\n    x = x.cuda()\n    out = model(x)\n"


def test_fix_for_star_args_moves_each_element():
    code = "model.cuda()\nfor batch in train_loader:\n    out = model(*batch)\n"
    assert "batch = [t.cuda() for t in batch]" in fixed(code)


def test_fix_parenthesises_expressions():
    code = "model.cuda()\nfor data in train_loader:\n    out = model(data[0] / 255)\n"
    assert "model((data[0] / 255).cuda())" in fixed(code)


@pytest.mark.parametrize(
    "source",
    [
        "train_loader",
        "enumerate(train_loader)",
        "enumerate(train_loader, 1)",
        "tqdm(train_loader)",
        "tqdm(enumerate(train_loader))",
        "enumerate(tqdm(train_loader, desc='train'))",
        "iter(train_loader)",
    ],
)
def test_loader_wrappers(source):
    target = "i, (x, y)" if "enumerate" in source else "x, y"
    code = f"from tqdm import tqdm\nmodel = Net().to(device)\nfor {target} in {source}:\n    model(x)\n"
    assert lines(code) == [4]


@pytest.mark.parametrize(
    "binding,expected",
    [
        ("loader = DataLoader(ds, batch_size=8)", [5]),
        ("loader = torch.utils.data.DataLoader(ds)", [5]),
        ("loader = DataLoader(ds, collate_fn=collate)", []),  # a collate_fn may move
        ("loader = DataLoader(ds, collate_fn=None)", [5]),
        ("loader = accelerator.prepare(DataLoader(ds))", []),  # prepared loaders move
        ("loader = DeviceDataLoader(DataLoader(ds), device)", []),
        ("loader = make_loader()", []),  # unknown
        ("loader = DataLoader(TensorDataset(x.to(device), y), batch_size=8)", []),
        ("loader = DataLoader(TensorDataset(torch.randn(8, 2), torch.zeros(8)), batch_size=8)", [5]),
        # Tensors the file does not show: they may be on the device.
        ("loader = DataLoader(TensorDataset(features, targets))", []),
    ],
)
def test_what_counts_as_a_cpu_loader(binding, expected):
    code = f"import torch\nfrom torch.utils.data import DataLoader, TensorDataset\n{binding}\nmodel = Net().to(device)\nfor x, y in loader: model(x)\n"
    assert lines(code) == expected


def test_names_without_loader_are_not_assumed_to_be_loaders():
    assert lines("model = Net().to(device)\nfor x, y in batches:\n    model(x)\n") == []
    assert lines("model = Net().to(device)\nfor x, y in train_dl:\n    model(x)\n") == []


def test_dataset_classes_that_move_data_themselves():
    code = """
    from torch.utils.data import DataLoader, Dataset
    class OnGpu(Dataset):
        def __getitem__(self, i):
            return self.x[i].to(device), self.y[i]
    loader = DataLoader(OnGpu(), batch_size=4)
    model = Net().to(device)
    for x, y in loader:
        model(x)
    """
    assert lines(code) == []


def test_dict_of_loaders():
    code = """
    from torch.utils.data import DataLoader
    dataloaders = {"train": DataLoader(a), "val": DataLoader(b)}
    model = Net().to(device)
    for phase in ["train", "val"]:
        for inputs, labels in dataloaders[phase]:
            model(inputs)
    """
    (f,) = findings(code)
    assert f.range.line == 7 and "from `dataloaders[phase]`" in f.message


@pytest.mark.parametrize(
    "move",
    [
        "model = Net().to(device)",
        "model = Net().to(device=device)",
        "model = Net().to(device, non_blocking=True)",
        "model = Net().cuda()",
        "model = Net(); model.to(device)",
        "model = Net(); model = model.to(device)",
        "model = Net().to(device).train()",
        "model = torch.compile(Net().to(device))",
        "model = Net().to('cuda:0')",
        "model = Net().to(f'cuda:{rank}')",
        "model = Net().to(args.device)",
        "base = Net().to(device); model = base",
    ],
)
def test_model_moves(move):
    code = f"import torch\n{move}\nfor x, y in train_loader:\n    model(x)\n"
    assert lines(code) == [4]


@pytest.mark.parametrize(
    "move",
    [
        "model = Net()",
        "model = Net().cpu()",
        "model = Net().to('cpu')",
        "model = Net().to(torch.device('cpu'))",
        "device = 'cpu'\nmodel = Net().to(device)",
        "device = torch.device('cpu')\nmodel = Net().to(device)",
        "model = Net().to(torch.float16)",
        "model = Net().to(dtype=torch.float64)",
        "model = Net().to(device)\nmodel = model.cpu()",
        "model = Net().to(device)\nmodel.cpu()",
        "model = Net().to(device)\nmodel = Net()",
        "model = torch.nn.DataParallel(Net()).cuda()",
        "model = torch.nn.parallel.DistributedDataParallel(Net().to(rank), device_ids=[rank])",
    ],
)
def test_models_not_on_another_device_or_moving_inputs(move):
    code = f"import torch\n{move}\nfor x, y in train_loader:\n    model(x)\n"
    assert lines(code) == []


def test_dataparallel_still_needs_labels_moved_for_the_loss():
    code = "import torch.nn as nn\nmodel = nn.DataParallel(Net()).cuda()\nfor x, y in train_loader:\n    loss = criterion(model(x), y)\n"
    (f,) = findings(code)
    assert f.data["tensor"] == "y"


def test_forward_that_moves_its_inputs():
    code = """
    class Net(nn.Module):
        def forward(self, x):
            x = x.to(self.fc.weight.device)
            return self.fc(x)
    model = Net().to(device)
    for x, y in train_loader:
        loss = criterion(model(x), y)
    """
    (f,) = findings(code)
    assert f.data["tensor"] == "y"


def test_move_must_happen_before_the_loop_in_the_same_scope():
    code = "model = Net()\nfor x, y in train_loader:\n    model(x)\nmodel.to(device)\n"
    assert lines(code) == []


@pytest.mark.parametrize(
    "moved",
    [
        "x = x.to(device)",
        "x = x.cuda()",
        "x, y = x.to(device), y.to(device)",
        "x = x.to(device, non_blocking=True)",
        "x = x.to(next(model.parameters()).device)",
        "x = x.float().to(device)",
        "x = Variable(x.cuda())",
        "x = move(x)",
        "x = [t.to(device) for t in x]",
        "x.to(device)",  # not in place for tensors, but unknown batch objects may be
        "if use_gpu:\n        x = x.cuda()",
    ],
)
def test_ways_of_moving(moved):
    code = f"from torch.autograd import Variable\nmodel = Net().to(device)\nfor x, y in train_loader:\n    {moved}\n    model(x)\n"
    assert lines(code) == []


@pytest.mark.parametrize(
    "use",
    [
        "model(x.view(-1, 784))",
        "model(x.float() / 255)",
        "model(x=x)",
        "model(x.to(torch.float32))",
        "model(Variable(x))",
        "model(-x)",
    ],
)
def test_derived_tensors_are_still_unmoved(use):
    code = f"import torch\nfrom torch.autograd import Variable\nmodel = Net().to(device)\nfor x, y in train_loader:\n    out = {use}\n"
    assert lines(code) == [5]


def test_a_tensor_is_reported_once():
    code = "model = Net().to(device)\nfor x, y in train_loader:\n    a = model(x)\n    b = model(x)\n"
    assert lines(code) == [3]


def test_lengths_stay_on_the_cpu():
    code = "model = Net().to(device)\nfor tokens, lengths in train_loader:\n    model(tokens.to(device), lengths)\n"
    assert lines(code) == []


def test_loss_needs_a_model_output():
    # Neither side is on the device: the loss runs on the CPU.
    code = "model = Net().to(device)\nfor x, y in train_loader:\n    out = model(x.to(device)).cpu()\n    loss = criterion(out, y)\n"
    assert lines(code) == []
    # A loss module moved with .to() is not a model: CPU inputs to it are fine on their own.
    code = "criterion = nn.CrossEntropyLoss().to(device)\nfor x, y in train_loader:\n    loss = criterion(x, y)\n"
    assert lines(code) == []


@pytest.mark.parametrize(
    "loss",
    ["F.cross_entropy(out, y)", "nn.functional.nll_loss(out, y)", "loss_fn(out, y)", "my_criterion(out, y)", "crit(out, y)"],
)
def test_losses(loss):
    code = f"import torch.nn as nn\nimport torch.nn.functional as F\ncrit = nn.MSELoss()\nmodel = Net().to(device)\nfor x, y in train_loader:\n    out = model(x.to(device))\n    {loss}\n"
    assert lines(code) == [7]


def test_ctc_loss_accepts_cpu_targets():
    code = "import torch.nn.functional as F\nmodel = Net().to(device)\nfor x, y in train_loader:\n    out = model(x.to(device))\n    F.ctc_loss(out, y, a, b)\n"
    assert lines(code) == []


def test_next_iter_draws():
    code = """
    model = Net().to(device)
    it = iter(test_loader)
    images, labels = next(it)
    preds = model(images)
    more = model(next(iter(test_loader))[0])
    """
    assert lines(code) == [5, 6]


def test_module_model_in_function_but_parameter_model_is_unknown():
    code = """
    model = Net().to(device)

    def evaluate(loader):
        for x, y in loader:
            model(x)

    def evaluate_param(model, loader):
        for x, y in loader:
            model(x)

    def evaluate_local(loader):
        model = Net()
        for x, y in loader:
            model(x)
    """
    assert lines(code) == [6]


def test_closures_see_the_enclosing_function_s_model():
    code = """
    def main():
        model = Net().to(device)

        def run(loader):
            for x, y in loader:
                model(x)

        for x, y in train_loader:
            model(x)
    """
    assert lines(code) == [7, 10]
    # Rebound to an unmoved model in the enclosing function too: unknown, silent.
    assert lines(code.replace("        for x, y in train_loader:", "        model = Net()\n        for x, y in train_loader:")) == []


def test_methods_moving_self_model_in_the_same_method():
    code = """
    class Trainer:
        def __init__(self):
            self.model = Net().to(self.device)

        def fit(self):
            for x, y in self.train_loader:
                self.model(x)

        def fit_moved_here(self):
            self.model.to(self.device)
            for x, y in self.train_loader:
                self.model(x)
    """
    (f,) = findings(code)
    assert f.range.line == 13 and f.data["model"] == "self.model"


def test_dict_batches_get_a_dict_fix():
    code = "model = AutoModel.from_pretrained('m').to(device)\nfor batch in train_loader:\n    out = model(**batch)\n"
    out = fixed(code)
    assert "    batch = {k: v.to(device) for k, v in batch.items()}\n" in out
    assert lines(out) == []


def test_rule_skips_files_without_loaders():
    assert lines("model = Net().to(device)\nfor x in batches:\n    model(x)\n") == []


def test_noqa_suppresses():
    assert lines("model = Net().to(device)\nfor x, y in train_loader:\n    model(x)  # noqa: TL401\n") == []


@pytest.mark.slow
def test_rule_modules_import_without_torch():
    code = (
        "import sys; sys.modules['torch'] = None\n"
        "import torchlint.rules.tl401_missing_to_device\n"
        "from torchlint.engine import lint_source\n"
        "r = lint_source('model = Net().cuda()\\nfor x, y in train_loader:\\n    model(x)\\n')\n"
        "print([f.code for f in r.findings])\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert "TL401" in out.stdout


def test_loss_functions_of_the_file_that_move_their_arguments():
    code = """
    import torch.nn.functional as F
    def loss_fn(out, y):
        return F.cross_entropy(out, y.to(out.device))
    class SmoothLoss:
        def __call__(self, out, y):
            return (out - y.to(out.device)).abs().mean()
    class PlainLoss:
        def __call__(self, out, y):
            return (out - y).abs().mean()
    criterion = SmoothLoss()
    plain_criterion = PlainLoss()
    model = Net().to(device)
    for x, y in train_loader:
        out = model(x.to(device))
        a = loss_fn(out, y)
        b = criterion(out, y)
        c = plain_criterion(out, y)
    """
    assert lines(code) == [18]


def test_unusual_to_calls_and_starred_targets():
    assert lines("model = Net().to(*args)\nfor x in train_loader:\n    model(x)\n") == []
    assert lines("model = Net().to(device)\nfor *xs, y in train_loader:\n    model(xs)\n") == []
    code = "model = Net().cuda(device=1)\nfor x in train_loader:\n    model(x)\n"
    assert "    x = x.cuda(device=1)\n" in fixed(code)


def test_model_class_is_in_the_data_when_the_file_defines_it():
    code = """
    class Net(nn.Module):
        def forward(self, x):
            return x
    net = Net()
    net.to(device)
    other = make_model().to(device)
    for x, y in train_loader:
        net(x)
        other(y)
    """
    first, second = findings(code)
    assert first.data == {"device": "device", "tensor": "x", "model": "net", "model_class": "Net"}
    assert "model_class" not in second.data


def test_positions_helper_agrees_with_the_full_provider_on_its_fast_path():
    # The fast path (re-generating only the statements asked about) is used when
    # the engine publishes its top-level statement index; both must agree.
    import libcst as cst

    from torchlint.analysis.positions import Positions
    from torchlint.names import NameResolver
    from torchlint.positions import full_positions
    from torchlint.rules.base import Context

    source = (FIXTURES_DIR / "flagged_batch_unpacked.py").read_text()
    module = cst.parse_module(source)
    index: dict[int, int] = {}

    def record(node: cst.CSTNode, top: int) -> None:
        index[id(node)] = top
        for child in node.children:
            record(child, top)

    for i, stmt in enumerate(module.body):
        record(stmt, i)
    fast_ctx = Context("t.py", source, module, NameResolver(module))
    fast_ctx.cache["top_level_index"] = index
    fast = Positions(fast_ctx)
    slow = Positions(Context("t.py", source, module, NameResolver(module)))
    full = full_positions(module)
    func = module.body[-1]
    loop = next(s for s in func.body.body if isinstance(s, cst.For))
    inner = loop.body.body[0]
    nodes = [func, *func.body.body, loop, inner, *inner.body.body]
    for node in nodes:
        assert fast.range(node) == slow.range(node) == full[node]
        assert fast.indent(node) == slow.indent(node)
    assert len(fast_ctx._ranges) < len(full)  # it never fell back to the whole module
