"""The builder -> weights table TL202's fixes are made from, checked two ways.

Without torchvision: the table is self-consistent and covers every builder
family torchvision documents. With torchvision (a separate environment; it is not
a dependency of the tests): every name the table holds exists, every legacy
member is exactly what torchvision's own ``pretrained=`` shim substitutes, the
registry has no builder the table lacks, and the code TL202's fixes produce runs
and requests the same checkpoint as the code it replaced. Nothing is downloaded:
weight loading is intercepted where torchvision fetches the state dict.
"""

from __future__ import annotations

import importlib
import re
import subprocess
import sys
import warnings
from collections import Counter

import libcst as cst
import pytest

from torchlint.data.torchvision_weights import (
    BUILDERS,
    NAMESPACE_BACKBONE_LEGACY,
    NAMESPACE_LEGACY,
    BuilderInfo,
    WeightsRef,
    all_builders,
)
from torchlint.engine import LintOptions, lint_source
from torchlint.fixes import fix_source
from torchlint.names import NameResolver
from torchlint.rules import get_rule

from conftest import FIXTURES, ROOT

TL202 = get_rule("TL202")
ENUM = re.compile(r"[A-Z][A-Za-z0-9]*(_[A-Za-z0-9]+)*_(Quantized)?Weights")
MEMBER = re.compile(r"[A-Z][A-Z0-9_]*V[0-9]+|IMAGENET1K_FEATURES")


# --- (a) structure: always runs ---


def _refs(info: BuilderInfo) -> list[WeightsRef]:
    return [r for r in (info.weights, info.backbone, info.float_weights) if r is not None]


def test_table_is_consistent():
    builders = all_builders()
    assert len(builders) == len({b.qualnames[0] for b in builders})
    for info in builders:
        assert info.module.startswith(info.namespace + "."), info
        for qualname in info.qualnames:
            assert BUILDERS[qualname] is info
        for ref in _refs(info):
            assert ENUM.fullmatch(ref.enum), ref
            assert ref.legacy is None or MEMBER.fullmatch(ref.legacy), ref
            assert all(m.startswith("torchvision.models") for m in ref.modules)
        # Backbones and the float weights of quantizable builders are classification enums.
        for ref in (info.backbone, info.float_weights):
            if ref is not None:
                assert ref.home == "torchvision.models"
                assert any(b.weights.enum == ref.enum and b.namespace == "torchvision.models" for b in builders)
        if info.namespace.endswith((".detection", ".segmentation")):
            assert info.backbone is not None and info.backbone.legacy is not None, info
        else:
            assert info.backbone is None, info
        assert info.quantizable == info.namespace.endswith(".quantization")


def test_table_covers_every_builder_family():
    names = Counter((b.namespace.rsplit(".", 1)[-1], b.name) for b in all_builders())
    classification = {n for (ns, n) in names if ns == "models"}
    expected = {
        "alexnet", "googlenet", "inception_v3", "maxvit_t", "mobilenet_v2", "mobilenet_v3_large",
        "mobilenet_v3_small", "squeezenet1_0", "squeezenet1_1", "efficientnet_v2_s", "efficientnet_v2_m",
        "efficientnet_v2_l", "resnet18", "resnet34", "resnet50", "resnet101", "resnet152", "vgg11", "vgg16_bn",
        "vgg19", "vit_b_16", "vit_h_14", "swin_t", "swin_v2_b", "wide_resnet50_2", "resnext50_32x4d",
    } | {f"efficientnet_b{i}" for i in range(8)}  # fmt: skip
    assert expected <= classification
    for prefix in ("convnext_", "densenet", "mnasnet", "regnet_x_", "regnet_y_", "shufflenet_v2_", "resnext101_"):
        assert sum(n.startswith(prefix) for n in classification) >= 2, prefix
    per_namespace = Counter(ns for ns, _ in names)
    assert per_namespace == {
        "models": 80, "detection": 12, "segmentation": 6, "video": 9, "quantization": 12, "optical_flow": 2
    }  # fmt: skip
    assert {"fasterrcnn_resnet50_fpn", "maskrcnn_resnet50_fpn", "ssd300_vgg16", "retinanet_resnet50_fpn"} <= {
        n for ns, n in names if ns == "detection"
    }
    # The legacy members torchvision documents for pretrained=True.
    assert BUILDERS["torchvision.models.resnet50"].weights.legacy == "IMAGENET1K_V1"
    assert BUILDERS["torchvision.models.detection.fasterrcnn_resnet50_fpn"].weights.legacy == "COCO_V1"
    assert BUILDERS["torchvision.models.detection.ssd300_vgg16"].backbone.legacy == "IMAGENET1K_FEATURES"
    assert BUILDERS["torchvision.models.quantization.resnet18"].weights.enum == "ResNet18_QuantizedWeights"


def test_table_imports_without_torch():
    code = (
        "import sys, torchlint.data.torchvision_weights, torchlint.rules.tl202_torchvision_pretrained\n"
        "assert not {'torch', 'torchvision'} & set(sys.modules), sorted(m for m in sys.modules if 'torch' in m)\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)


@pytest.mark.slow
def test_every_builder_gets_a_fix_naming_its_legacy_member():
    """The rule and the table agree for every builder, reached by its qualified name."""
    for info in all_builders():
        for qualname in info.qualnames:
            source = f"import torchvision\nm = {qualname}(pretrained=True)\n"
            fixed = _fix(source, unsafe=True)
            ref = info.float_weights or info.weights
            member = ref.legacy or "DEFAULT"
            assert "(weights=" in fixed and f".{ref.enum}.{member})" in fixed, (qualname, fixed)


# --- (b) against a real torchvision: skipped where it is not installed ---


@pytest.fixture(scope="module")
def tv():
    return pytest.importorskip("torchvision")


def _shim_mapping(builder, **kwargs) -> tuple[str, str] | None:
    """What torchvision's legacy shim substitutes for a flag, read from its own warning.

    Turning just that warning into an error stops the call before any model is built.
    """
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore")
        warnings.filterwarnings("error", message="Arguments other than a weight enum")
        try:
            builder(**kwargs)
        except UserWarning as w:
            m = re.search(r"equivalent to passing `\w+=(\w+)\.(\w+)`", str(w))
            assert m, str(w)
            return m.group(1), m.group(2)
        except ValueError as e:
            assert "No weights available" in str(e)
            return None
    raise AssertionError(f"{builder.__name__}({kwargs}) did not go through the legacy shim")


def _resolve(qualname: str):
    module, _, attr = qualname.rpartition(".")
    return getattr(importlib.import_module(module), attr)


def _check_ref(ref: WeightsRef) -> None:
    for module in ref.modules:
        enum = getattr(importlib.import_module(module), ref.enum)
        assert enum is _resolve(f"{ref.home}.{ref.enum}")
        assert hasattr(enum, "DEFAULT")
        if ref.legacy is not None:
            assert ref.legacy in enum.__members__, (ref, list(enum.__members__))


@pytest.mark.parametrize("info", all_builders(), ids=lambda b: b.qualnames[0])
def test_table_entry_matches_torchvision(tv, info):
    builder = _resolve(info.qualnames[0])
    assert callable(builder)
    assert _resolve(info.qualnames[1]) is builder
    for ref in _refs(info):
        _check_ref(ref)
    if info.quantizable:
        assert _shim_mapping(builder, pretrained=True, quantize=True) == (info.weights.enum, info.weights.legacy)
        assert _shim_mapping(builder, pretrained=True) == (info.float_weights.enum, info.float_weights.legacy)
    else:
        expected = None if info.weights.legacy is None else (info.weights.enum, info.weights.legacy)
        assert _shim_mapping(builder, pretrained=True) == expected
        assert tv.models.get_model_weights(builder) is _resolve(f"{info.weights.home}.{info.weights.enum}")
    if info.backbone is not None:
        assert _shim_mapping(builder, pretrained_backbone=True) == (info.backbone.enum, info.backbone.legacy)
    # The string TL202 writes for builders picked at run time names the same member.
    if info.namespace in NAMESPACE_LEGACY and info.weights.legacy is not None:
        enum = _resolve(f"{info.weights.home}.{info.weights.enum}")
        assert enum.verify(NAMESPACE_LEGACY[info.namespace]) is enum[info.weights.legacy]
    if info.namespace in NAMESPACE_BACKBONE_LEGACY:
        enum = _resolve(f"{info.backbone.home}.{info.backbone.enum}")
        assert enum.verify(NAMESPACE_BACKBONE_LEGACY[info.namespace]) is enum[info.backbone.legacy]


def test_table_lists_every_registered_builder(tv):
    from torchvision.models._api import BUILTIN_MODELS

    missing = [
        f"{b.__module__}.{b.__name__}" for b in BUILTIN_MODELS.values() if f"{b.__module__}.{b.__name__}" not in BUILDERS
    ]
    assert missing == []
    assert len(BUILTIN_MODELS) == len(all_builders())


@pytest.mark.parametrize("info", all_builders(), ids=lambda b: b.qualnames[0])
def test_fixed_code_names_what_the_shim_substitutes(tv, info):
    """Every rewrite TL202 can make, in both import styles, evaluates to the shim's weights."""
    builder = _resolve(info.qualnames[0])
    cases = [("pretrained=True", {"pretrained": True}, "weights")]
    if info.quantizable:
        cases = [
            ("pretrained=True, quantize=True", {"pretrained": True, "quantize": True}, "weights"),
            ("pretrained=True, quantize=False", {"pretrained": True, "quantize": False}, "weights"),
        ]
    if info.backbone is not None:
        cases.append(("pretrained_backbone=True", {"pretrained_backbone": True}, "weights_backbone"))
    for args, kwargs, param in cases:
        expected = _shim_mapping(builder, **kwargs)
        for source in (
            f"import torchvision\nm = {info.qualnames[0]}({args})\n",
            f"from {info.namespace} import {info.name}\nm = {info.name}({args})\n",
        ):
            fixed = _fix(source, unsafe=expected is None)
            value = _weights_values(fixed)[0][param]
            if expected is None:
                # No legacy weights: pretrained=True raised; the unsafe fix picks DEFAULT.
                assert value is value.__class__.DEFAULT
            else:
                assert (type(value).__name__, value.name) == expected, (source, fixed)


class _Requested(Exception):
    """Raised instead of downloading: carries the weights a builder asked for."""

    def __init__(self, weights):
        super().__init__(str(weights))
        self.weights = weights


@pytest.fixture
def no_download(tv, monkeypatch):
    from torchvision.models._api import WeightsEnum

    def get_state_dict(self, *args, **kwargs):
        raise _Requested(self)

    monkeypatch.setattr(WeightsEnum, "get_state_dict", get_state_dict)


def _fix(source: str, unsafe: bool = False) -> str:
    lint = lambda s: lint_source(s, "t.py", LintOptions(codes=frozenset({"TL202"}))).findings  # noqa: E731
    fixed, applied, remaining = fix_source(source, lint, unsafe=unsafe)
    assert applied >= 1 and [f for f in remaining if f.fix is not None] == [], (source, fixed)
    return fixed


def _namespace(source: str) -> dict:
    """Run the module's top-level torch/torchvision imports (all its code needs to name the weights)."""
    ns: dict = {}
    for stmt in cst.parse_module(source).body:
        if isinstance(stmt, cst.SimpleStatementLine) and isinstance(stmt.body[0], (cst.Import, cst.ImportFrom)):
            code = cst.Module([stmt]).code
            if "torch" in code and "from ." not in code:
                exec(code, ns)
    return ns


def _builder_calls(source: str) -> list[tuple[object, cst.Call, cst.Module]]:
    module = cst.parse_module(source)
    names = NameResolver(module)
    calls = []

    class Collect(cst.CSTVisitor):
        def visit_Call(self, node: cst.Call) -> None:
            qualname = names.qualname(node.func)
            if qualname in BUILDERS:
                calls.append((_resolve(qualname), node, module))
            elif qualname == "torch.hub.load" and _vision_hub(node):
                # The hub passes the rest of the call to the builder that pytorch/vision's hubconf exports.
                from torchvision.models import get_model_builder

                builder = get_model_builder(node.args[1].value.evaluated_value)
                calls.append((builder, node.with_changes(args=node.args[2:]), module))

    module.visit(Collect())
    return calls


def _vision_hub(call: cst.Call) -> bool:
    strings = [a.value for a in call.args[:2] if a.keyword is None and isinstance(a.value, cst.SimpleString)]
    return len(strings) == 2 and strings[0].evaluated_value == "pytorch/vision"


def _call_args(call: cst.Call, module: cst.Module, ns: dict, truthy: bool) -> tuple[list, dict]:
    """The call's arguments as values; a non-literal flag or condition is read as ``truthy``."""
    args, kwargs = [], {}
    for arg in call.args:
        value_node = arg.value
        if isinstance(value_node, cst.IfExp):
            value_node = value_node.body if truthy else value_node.orelse
        code = module.code_for_node(value_node)
        try:
            value = eval(code, dict(ns))
        except NameError:
            value = truthy  # e.g. pretrained=args.pretrained
        if arg.keyword is None:
            args.append(value)
        else:
            kwargs[arg.keyword.value] = value
    return args, kwargs


def _weights_values(source: str) -> list[dict]:
    ns = _namespace(source)
    out = []
    for _, call, module in _builder_calls(source):
        _, kwargs = _call_args(call, module, ns, truthy=True)
        out.append({k: v for k, v in kwargs.items() if k in ("weights", "weights_backbone")})
    return out


def _run(builder, args, kwargs):
    """Build the model; return the weights it asked for, or None when it asked for none."""
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            builder(*args, **kwargs)
    except _Requested as r:
        return r.weights, caught
    return None, caught


def _examples():
    # Builders picked at run time have their own test below.
    cases = [pytest.param(c.code, id=f"INVALID-{i}") for i, c in enumerate(TL202.INVALID) if "__dict__" not in c.code]
    for path in sorted((FIXTURES / "tl202_torchvision_pretrained").glob("flagged_*.py")):
        source = path.read_text(encoding="utf-8")
        if "__dict__[" not in source:
            cases.append(pytest.param(source, id=path.name))
    return cases


@pytest.mark.parametrize("source", _examples())
def test_fixed_examples_build_the_same_models(no_download, source):
    """Run each builder call before and after the fix: the same checkpoint is requested,
    and the fixed call raises none of torchvision's deprecation warnings."""
    fixed = _fix(source, unsafe=False)
    before, after = _builder_calls(source), _builder_calls(fixed)
    assert len(before) == len(after) >= 1
    ns_before, ns_after = _namespace(source), _namespace(fixed)
    for (builder, call, module), (builder2, call2, module2) in zip(before, after):
        assert builder is builder2
        seen = []
        for truthy in (True, False):
            args, kwargs = _call_args(call, module, ns_before, truthy)
            args2, kwargs2 = _call_args(call2, module2, ns_after, truthy)
            if (args, kwargs, args2, kwargs2) in seen:
                continue  # nothing in this call depends on a runtime flag
            seen.append((args, kwargs, args2, kwargs2))
            requested, _ = _run(builder, args, kwargs)
            requested2, caught = _run(builder2, args2, kwargs2)
            assert requested == requested2, (module2.code_for_node(call2), truthy)
            # torchvision's shim warns "... deprecated since 0.13 ..." for every legacy use.
            shim = [str(w.message) for w in caught if "since 0.13" in str(w.message)]
            assert shim == []


@pytest.mark.parametrize(
    "namespace,arch",
    [("torchvision.models", "resnet50"), ("torchvision.models.detection", "fasterrcnn_mobilenet_v3_large_320_fpn")],
)
def test_fixed_run_time_pick_builds_the_same_model(no_download, namespace, arch):
    source = f"import {namespace} as zoo\n\ndef build(arch, flag):\n    return zoo.__dict__[arch](pretrained=flag)\n"
    fixed = _fix(source)
    assert "weights=" in fixed and "pretrained" not in fixed
    before, after = {}, {}
    exec(source, before)
    exec(fixed, after)
    for flag in (True, False):
        requested, _ = _run(before["build"], (arch, flag), {})
        requested2, caught = _run(after["build"], (arch, flag), {})
        assert requested == requested2
        if flag:
            assert requested.name == BUILDERS[f"{namespace}.{arch}"].weights.legacy
        assert [str(w.message) for w in caught if "since 0.13" in str(w.message)] == []
