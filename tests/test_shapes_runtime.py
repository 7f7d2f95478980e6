"""The static shape verdict agrees with real torch, fixture by fixture.

Each TL301 fixture's definitions (imports, classes, functions, constants; no
training loop, no dataset download) are executed, every model the analysis
found an input for is built with the constructor the analysis reports and run
on a random tensor of the inferred input shape. A model the analysis flags must
fail the way it predicts (same error type, same numbers) or change the batch
size; a model it passes must run and return the shape it computed.
"""

from __future__ import annotations

from pathlib import Path

import libcst as cst
import pytest
from conftest import FIXTURES

from torchlint.engine import LintOptions, lint_source
from torchlint.shapes import analyze_module

# Every fixture model run with real torch: the full run, not the inner loop.
pytestmark = pytest.mark.slow

torch = pytest.importorskip("torch")

SHAPE_FIXTURES = sorted((FIXTURES / "tl301_shape_mismatch").glob("*.py"))


def _has_call(node: cst.CSTNode) -> bool:
    stack = [node]
    while stack:
        n = stack.pop()
        if isinstance(n, cst.Call):
            return True
        stack.extend(n.children)
    return False


def definitions(source: str) -> dict:
    """Execute only what builds models: imports (those that exist here), classes,
    functions and call-free constants."""
    module = cst.parse_module(source)
    ns: dict = {"__name__": "fixture"}
    for stmt in module.body:
        code = module.code_for_node(stmt)
        if isinstance(stmt, (cst.ClassDef, cst.FunctionDef)):
            exec(compile(code, "<fixture>", "exec"), ns)
        elif isinstance(stmt, cst.SimpleStatementLine):
            small = stmt.body[0]
            if isinstance(small, (cst.Import, cst.ImportFrom)):
                if isinstance(small, cst.ImportFrom) and small.relative:
                    continue
                try:
                    exec(compile(code, "<fixture>", "exec"), ns)
                except ImportError:
                    pass  # torchvision, torchsummary...: not needed to build the models
            elif isinstance(small, cst.Assign) and not _has_call(small.value):
                exec(compile(code, "<fixture>", "exec"), ns)
    return ns


def run_model(model, shape: list[int], dtype: str | None, high: int | None):
    torch.manual_seed(0)
    if dtype == "int64":
        x = torch.randint(0, high or 2, tuple(shape))
    else:
        x = torch.randn(*shape)
    model.eval()
    with torch.no_grad():
        try:
            return x, model(x), None
        except Exception as exc:  # the outcome under test
            return x, None, exc


def matches(expected: str, exc: BaseException) -> bool:
    kind, _, rest = expected.partition(": ")
    if type(exc).__name__ != kind:
        return False
    return all(fragment.strip() in str(exc) for fragment in rest.split("…"))


def first_tensor(out):
    while isinstance(out, (tuple, list)):
        out = out[0]
    return out


@pytest.mark.parametrize("path", SHAPE_FIXTURES, ids=lambda p: p.name)
def test_static_verdict_matches_torch(path: Path):
    source = path.read_text(encoding="utf-8")
    report = analyze_module(source)
    findings = [f for f in lint_source(source, str(path), LintOptions(codes=frozenset({"TL301"}))).findings]
    flagged = path.name.startswith("flagged_")
    assert bool(findings) == flagged

    runnable = [m for m in report.models if m.input_shape is not None]
    if flagged:
        # Every flagged model comes with an input to check it on (inferred or synthesized).
        assert all(m.input_shape is not None for m in report.models if m.problems)
    if not runnable:
        pytest.skip("the input cannot be known statically")

    ns = definitions(source)
    checked = 0
    for m in runnable:
        model = eval(m.constructor, ns)
        ev = m.input_evidence
        x, out, exc = run_model(model, m.input_shape, "int64" if ev.dtype == "long" else None, ev.high)
        if m.problems:
            expected = m.problems[0].data["expected_error"]
            assert expected, m.problems[0].message
            if expected.startswith("no error"):
                assert exc is None and first_tensor(out).shape[0] != x.shape[0], expected
            else:
                assert exc is not None, f"{m.name}: predicted {expected!r}, torch ran fine"
                assert matches(expected, exc), f"{m.name}: predicted {expected!r}, torch said {exc!r}"
            for f in findings:
                if f.data.get("model") == m.name:
                    assert f.data["input_shape"] == m.input_shape
                    assert f.data["constructor"] == m.constructor
        else:
            assert exc is None, f"{m.name}: judged fine on {m.input_shape}, torch raised {exc!r}"
            y = first_tensor(out)
            assert y.shape[0] == x.shape[0]
            if m.output is not None:
                want = [x.shape[0] if d is not None and repr(d) == "B" else d for d in m.output]
                assert len(want) == y.dim()
                assert all(w is None or w == g for w, g in zip(want, y.shape)), (want, tuple(y.shape))
        checked += 1
    assert checked


def test_batch_changing_views_are_real():
    """Where the analysis says a view(-1, N) silently changes the file's own batch
    size, torch agrees: that batch goes in, the predicted one comes out."""
    checked = 0
    for path in SHAPE_FIXTURES:
        source = path.read_text(encoding="utf-8")
        report = analyze_module(source)
        for m in report.models:
            for p in m.problems:
                if p.kind != "view-batch" or "silently becomes" not in p.message:
                    continue
                b = m.input.batch
                new = int(p.message.rsplit("silently becomes ", 1)[1].split()[0])
                model = eval(m.constructor, definitions(source))  # the fixture's own constructor
                x, out, exc = run_model(model, [b] + m.input_shape[1:], None, None)
                assert exc is None, (path.name, exc)
                assert first_tensor(out).shape[0] == new != b, path.name
                checked += 1
    assert checked >= 2
