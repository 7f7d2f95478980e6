"""The shape analysis of one file: which models it defines, what input each gets,
and which sizes do not fit. See the package docstring for the public API."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import libcst as cst

from torchlint.analysis.model import ProgramModel
from torchlint.analysis.tables import ClassInfo, FileTables, ScopeInfo
from torchlint.analysis.values import TensorV as ModelTensorV
from torchlint.names import NameResolver, dotted_name
from torchlint.positions import full_positions
from torchlint.shapes import layers as L
from torchlint.shapes.interp import (
    BudgetExceeded,
    Frame,
    Interpreter,
    Problem,
    Run,
    Stop,
)
from torchlint.shapes.values import (
    BATCH,
    UNKNOWN,
    InputEvidence,
    LayerV,
    ListV,
    ModuleV,
    Step,
    TensorV,
    is_int,
    open_tensor,
    sample_text,
    shape_text,
)

_SUMMARY_NO_BATCH = frozenset({"torchsummary.summary", "torchsummary.torchsummary.summary"})
_SUMMARY_BATCH = frozenset({"torchinfo.summary", "torchinfo.torchinfo.summary"})
_TRACERS = frozenset({"torch.onnx.export", "torch.jit.trace"})
_PRIORITY = {"tensor": 0, "summary": 1, "dataset": 2}
# Square sizes tried for a conv net's input when the file gives none.
_SYNTH_SIZES = (28, 32, 64, 96, 224, 16, 48, 128)


@dataclass
class ShapeProblem:
    """A finding-to-be: TL301 reports these as they are."""

    kind: str
    node: cst.CSTNode
    message: str
    related: list[tuple[cst.CSTNode, str]]
    fix: tuple[str, list[tuple[cst.CSTNode, str]]] | None
    data: dict[str, Any]
    model: str
    # A reshape that succeeds but folds the batch, claimed for an input whose first
    # dimension is only assumed to be the batch (a tensor passed to the model): TL301
    # reports it only where the file shows the model applied to batches.
    assumes_batch: bool = False


@dataclass
class ModelReport:
    """One model of the file (a module class, or an ``nn.Sequential`` in a variable)."""

    name: str
    node: cst.CSTNode
    # Code that builds it, with folded arguments where the file computes them ("Net(10)").
    constructor: str
    input: InputEvidence | None
    # Only when the file gives no input but a finding needs one to be checked at runtime.
    synthesized: InputEvidence | None
    steps: tuple[Step, ...]
    output: tuple | None
    verdict: str  # "ok" | "error" | "unknown"
    stopped: str | None
    problems: list[ShapeProblem] = field(default_factory=list)
    # The share of the per-file interpretation budget used (1.0: it ran out and the file got no report).
    budget_share: float = 0.0

    @property
    def input_evidence(self) -> InputEvidence | None:
        return self.input or self.synthesized

    @property
    def input_shape(self) -> list[int] | None:
        ev = self.input_evidence
        return None if ev is None else ev.concrete()

    @property
    def chain(self) -> list[str]:
        return [s.text for s in self.steps]


@dataclass
class ShapeReport:
    models: list[ModelReport] = field(default_factory=list)
    problems: list[ShapeProblem] = field(default_factory=list)

    def model(self, name: str) -> ModelReport | None:
        for m in self.models:
            if m.name == name:
                return m
        return None


def quick_candidates(module: cst.Module) -> bool:
    """A statement-level look for anything the analysis could act on: a class
    with a base named ``...Module`` or an assignment of ``...Sequential(...)``."""
    stack: list[Any] = list(module.body)
    while stack:
        stmt = stack.pop()
        if isinstance(stmt, cst.ClassDef):
            for base in stmt.bases:
                if (dotted_name(base.value) or "").endswith("Module"):
                    return True
            stack.extend(_block(stmt.body))
        elif isinstance(stmt, cst.SimpleStatementLine):
            for small in stmt.body:
                if isinstance(small, cst.Assign) and isinstance(small.value, cst.Call):
                    f = small.value.func
                    if (dotted_name(f) or "").endswith("Sequential"):
                        return True
        elif isinstance(stmt, cst.FunctionDef):
            stack.extend(_block(stmt.body))
        else:
            for attr in ("body", "orelse", "finalbody"):
                child = getattr(stmt, attr, None)
                if isinstance(child, cst.BaseSuite):
                    stack.extend(_block(child))
                elif isinstance(child, (cst.Else, cst.Finally)):
                    stack.extend(_block(child.body))
                elif isinstance(child, cst.If):
                    stack.append(child)
            for h in getattr(stmt, "handlers", ()) or ():
                stack.extend(_block(h.body))
    return False


def _block(suite: cst.BaseSuite) -> list[Any]:
    return list(suite.body) if isinstance(suite, cst.IndentedBlock) else []


class Lines:
    """Line numbers, computed once and only when a message needs one."""

    def __init__(self, module: cst.Module, ranges: Callable[[list[cst.CSTNode]], Any] | None = None) -> None:
        self._module = module
        # A rule Context's shared ``ranges``; standalone analyses locate the whole module once.
        self._ranges = ranges
        self._positions: Any = None

    def __call__(self, node: cst.CSTNode | None) -> int | None:
        if node is None:
            return None
        if self._ranges is not None:
            pos = self._ranges([node]).get(node)
        else:
            if self._positions is None:
                self._positions = full_positions(self._module)
            pos = self._positions.get(node)
        return None if pos is None else pos.start.line


class Analysis:
    def __init__(self, module: cst.Module, names: NameResolver, tables: FileTables,
                 code: Callable[[cst.CSTNode], str], model: Any,
                 ranges: Callable[[list[cst.CSTNode]], Any] | None = None) -> None:
        self.module = module
        self.names = names
        self.c = tables  # the program model's tables: classes, functions, scopes, calls
        self.code = code
        self.lines = Lines(module, ranges)
        self.interp = Interpreter(tables, code, model)

    # --------------------------------------------------------------- models
    def _inside_module_class(self, scope: ScopeInfo | None) -> bool:
        s = scope
        while s is not None:
            if s.func is not None and self.interp.is_module(s.func.owner):
                return True
            s = s.parent
        return False

    def run(self) -> ShapeReport:
        report = ShapeReport()
        module_classes = [c for c in self.c.classes if self.interp.is_module(c)]
        seq_assigns = [s for s in self.c.sequential_assigns if not self._inside_module_class(s[2])]
        if not module_classes and not seq_assigns:
            return report
        # Subclassed by another class of the file: its layers may be replaced there.
        subclassed: set[int] = set()
        for cls in self.c.classes:
            for b in cls.node.bases:
                for other in self.c.classes_named(dotted_name(b.value) or ""):
                    subclassed.add(id(other))
        try:
            models = self._models(module_classes, seq_assigns, subclassed)
            evidence = self._evidence(models)
            # A class run on a real input needs no run on an unknown one: its
            # input-independent problems show up there too.
            with_input = {id(v.cls) for k, (_, v, _) in models.items() if k in evidence and isinstance(v, ModuleV)}
            for key, (name, value, node) in models.items():
                if isinstance(value, ModuleV) and (self._mutated(value) or (key not in evidence and id(value.cls) in with_input)):
                    continue
                report.models.append(self._analyse(name, value, node, evidence.get(key)))
        except (BudgetExceeded, RecursionError):
            return ShapeReport(budget_share=1.0)
        report.budget_share = self.interp.ticks / self.interp.budget
        seen: set[tuple[int, str]] = set()
        for m in report.models:
            for p in m.problems:
                k = (id(p.node), p.kind)
                if k not in seen:
                    seen.add(k)
                    report.problems.append(p)
        return report

    def _models(self, module_classes: list[ClassInfo], seq_assigns, subclassed: set[int]) -> dict[int, tuple[str, Any, cst.CSTNode]]:
        """Model instances by identity: (name, value, the node to name it by)."""
        interp = self.interp
        models: dict[int, tuple[str, Any, cst.CSTNode]] = {}
        names = {c.name for c in module_classes}
        has_sites: set[int] = set()
        for site in self.c.calls:
            f = site.node.func
            if not (isinstance(f, cst.Name) and f.value in names):
                continue
            target = interp.eval(f, Frame(site.scope, "top", bind=True))
            if not isinstance(target, ClassInfo) or not interp.is_module(target):
                continue
            has_sites.add(id(target))
            if self._inside_module_class(site.scope) or interp.is_module(site.in_class):
                continue
            inst = interp.eval(site.node, Frame(site.scope, "top", bind=True))
            if isinstance(inst, ModuleV):
                models[id(inst)] = (target.name, inst, target.node)
        for cls in module_classes:
            if id(cls) in has_sites or id(cls) in subclassed or len(self.c.classes_named(cls.name)) > 1:
                continue
            inst = interp.instantiate(cls, [], {}, None, None)
            if isinstance(inst, ModuleV):
                models[id(inst)] = (cls.name, inst, cls.node)
        for name, assign, scope in seq_assigns:
            value = interp.scope_value(scope, name)
            if isinstance(value, LayerV) and value.kind == "Sequential" and value.node is assign.value:
                if self._sequential_mutated(name):
                    continue
                models[id(value)] = (name, value, assign.value)
        return models

    def _mutated(self, inst: ModuleV) -> bool:
        # ``model.fc = nn.Linear(512, 10)`` outside the class: its layers are not the ones __init__ built.
        return bool(self.c.foreign_attr_assigns & (set(inst.attrs) | {"forward"}))

    def _sequential_mutated(self, name: str) -> bool:
        for site in self.c.calls:
            f = site.node.func
            if isinstance(f, cst.Attribute) and isinstance(f.value, cst.Name) and f.value.value == name and f.attr.value in (
                "append", "add_module", "insert", "extend", "register_module", "__setitem__", "pop"
            ):
                return True
        return name in self.c.subscript_assigns

    # ------------------------------------------------------------- evidence
    def _evidence(self, models: dict[int, tuple[str, Any, cst.CSTNode]]) -> dict[int, InputEvidence]:
        interp = self.interp
        found: dict[int, list[InputEvidence]] = {}
        if not models:
            return {}
        for site in self.c.calls:
            if site.in_try or site.in_comp or self._inside_module_class(site.scope):
                continue
            call = site.node
            f = call.func
            frame = Frame(site.scope, "top", bind=True)
            callee_expr: cst.BaseExpression | None = None
            if isinstance(f, cst.Name) or isinstance(f, cst.Call):
                callee_expr = f
            elif isinstance(f, cst.Attribute) and f.attr.value == "forward":
                callee_expr = f.value
            elif isinstance(f, cst.Attribute) and f.attr.value in ("summary", "export", "trace"):
                pass  # torchsummary.summary, torch.onnx.export, torch.jit.trace
            else:
                continue
            if callee_expr is not None:
                callee = interp.eval(callee_expr, frame)
                if id(callee) in models:
                    positional = [a for a in call.args if a.keyword is None and not a.star]
                    if len(positional) < 1 or any(a.star for a in call.args):
                        continue
                    x = interp.eval(positional[0].value, frame)
                    ev = self._tensor_evidence(x)
                    if ev is None and x is UNKNOWN:
                        ev = self._model_evidence(call, positional[0].value)
                    if ev is not None:
                        found.setdefault(id(callee), []).append(ev)
                    continue
                q = callee
            else:
                q = interp.eval(f, frame)
            qual = getattr(q, "qualname", None)
            if qual in _SUMMARY_NO_BATCH or qual in _SUMMARY_BATCH:
                self._summary_evidence(call, frame, qual in _SUMMARY_BATCH, models, found)
            elif qual in _TRACERS:
                args = [a for a in call.args if a.keyword is None and not a.star]
                if len(args) >= 2:
                    m = interp.eval(args[0].value, frame)
                    x = interp.eval(args[1].value, frame)
                    if isinstance(x, tuple) and len(x) == 1:
                        x = x[0]
                    ev = self._tensor_evidence(x)
                    if id(m) in models and ev is not None:
                        found.setdefault(id(m), []).append(ev)
        chosen: dict[int, InputEvidence] = {}
        for key, evs in found.items():
            best = min(_PRIORITY[e.kind] for e in evs)
            top = [e for e in evs if _PRIORITY[e.kind] == best]
            if all(e.dims == top[0].dims and e.dtype == top[0].dtype for e in top):
                chosen[key] = top[0]
        return chosen

    def _tensor_evidence(self, x: Any) -> InputEvidence | None:
        if not isinstance(x, TensorV) or x.open or x.origin is None:
            return None
        if not all(is_int(d) or d is BATCH for d in x.dims):
            return None
        o = x.origin
        # The call site may have reshaped the batch (``images.view(-1, 784)``).
        return InputEvidence(x.dims, o.kind, o.description, o.node, o.batch, x.dtype, o.high)

    def _model_evidence(self, call: cst.Call, arg: cst.BaseExpression) -> InputEvidence | None:
        """The input's shape as the program model's tensor value tells it (``TensorV.shape``),
        where this analysis's own top-level evaluation stops: another model's output
        (``head(features(x))``), which the model's shape question follows through that model."""
        fact = self.interp.model.fact(call)
        if fact is None:
            return None
        value = next((v for v, a in zip(fact.args, call.args) if a.value is arg), None)
        shape = getattr(value, "shape", None) if isinstance(value, ModelTensorV) else None
        t = None if shape is None else shape.source
        if not isinstance(t, TensorV) or t.origin is None or not all(is_int(d) or d is BATCH for d in t.dims):
            return None
        o = t.origin
        return InputEvidence(t.dims, "tensor", self.code(arg), arg, o.batch, t.dtype, o.high)

    def _summary_evidence(self, call: cst.Call, frame: Frame, with_batch: bool, models, found) -> None:
        interp = self.interp
        positional = [a for a in call.args if a.keyword is None and not a.star]
        kw = {a.keyword.value: a.value for a in call.args if a.keyword is not None}
        if not positional:
            return
        m = interp.eval(positional[0].value, frame)
        size_expr = kw.get("input_size", positional[1].value if len(positional) > 1 else None)
        if id(m) not in models or size_expr is None:
            return
        size = interp.eval(size_expr, frame)
        if isinstance(size, ListV):
            size = tuple(size.items)
        if not isinstance(size, tuple) or not size or not all(is_int(d) for d in size):
            return
        if with_batch:
            if len(size) < 2:
                return
            dims = (BATCH,) + tuple(size[1:])
            batch = size[0]
        else:
            dims = (BATCH,) + tuple(size)
            batch = None
        found.setdefault(id(m), []).append(
            InputEvidence(dims, "summary", f"summary() input_size {self.code(size_expr)}", size_expr, batch)
        )

    # ------------------------------------------------------------ analysing
    def _run(self, name: str, value: Any, node: cst.CSTNode, evidence: InputEvidence | None) -> tuple[Run, Any]:
        interp = self.interp
        run = Run(name, evidence)
        interp.run = run
        if evidence is not None:
            x = TensorV(tuple(evidence.dims), dtype=evidence.dtype, origin=evidence)
        else:
            x = open_tensor()
            x.origin = None
        run.input_origin = x.origin
        frame = Frame(self.c.module_scope, "forward")
        out: Any = UNKNOWN
        try:
            if isinstance(value, ModuleV):
                out = interp.apply_module(value, [(x, None)], {}, node, frame, "", node)  # type: ignore[arg-type]
            else:
                out = interp.apply_layer(value, x, node, frame, name, node)  # type: ignore[arg-type]
        except Stop as s:
            run.stopped = s.with_traceback(None)  # its traceback's frames hold ``run``: a cycle
        finally:
            interp.run = None
        return run, out

    def _analyse(self, name: str, value: Any, node: cst.CSTNode, evidence: InputEvidence | None) -> ModelReport:
        run, out = self._run(name, value, node, evidence)
        first = out[0] if isinstance(out, tuple) and out and isinstance(out[0], TensorV) else out
        steps = first.steps if isinstance(first, TensorV) else ()
        output = tuple(first.dims) if isinstance(first, TensorV) and not first.open else None
        synthesized = None
        synth_problems: dict[tuple[int, str], Problem] = {}
        if run.problems and evidence is None:
            synthesized, synth_problems = self._synthesize(name, value, node, run)
        # "ok" only when every step's shape was known: a chain that lost track proves nothing.
        known = all(not st.after_open and all(d is not None for d in st.after) for st in steps)
        complete = run.stopped is None and output is not None and evidence is not None and known
        verdict = "error" if run.problems else ("ok" if complete else "unknown")
        constructor = self._constructor(name, value)
        report = ModelReport(name, node, constructor, evidence, synthesized, steps, output, verdict,
                             None if run.stopped is None else run.stopped.reason)
        for p in run.problems:
            report.problems.append(self._problem(p, run, report, synth_problems.get((id(p.node), p.kind))))
        return report

    def _constructor(self, name: str, value: Any) -> str:
        if isinstance(value, ModuleV):
            call = value.node
            if call is None:
                return f"{value.cls.name}()"
            frame_scope = None
            for site in self.c.calls:
                if site.node is call:
                    frame_scope = site.scope
            if frame_scope is None:
                return self.code(call)
            frame = Frame(frame_scope, "top", bind=True)
            parts = []
            for a in call.args:
                if a.star:
                    return self.code(call)
                v = self.interp.eval(a.value, frame)
                if not _literal_value(v):
                    return self.code(call)
                parts.append(f"{a.keyword.value}={v!r}" if a.keyword is not None else repr(v))
            return f"{value.cls.name}({', '.join(parts)})"
        return self.code(value.node) if getattr(value, "node", None) is not None else name

    def _synthesize(self, name: str, value: Any, node: cst.CSTNode, run: Run):
        """An input that reaches the same failures, for the runtime checker."""
        layer = run.first_layer
        if layer is None:
            return None, {}
        k, p = layer.kind, layer.params
        candidates: list[InputEvidence] = []
        desc = "synthesized (the file gives no input)"
        if k == "Linear" and is_int(p.get("in_features")):
            candidates.append(InputEvidence((BATCH, p["in_features"]), "synthesized", desc, None, None))
        elif k.startswith("Conv") and is_int(p.get("in_channels")):
            s = L.spatial_rank(k)
            for size in _SYNTH_SIZES:
                candidates.append(InputEvidence((BATCH, p["in_channels"]) + (size,) * s, "synthesized", desc, None, None))
        elif k == "Embedding" and is_int(p.get("num_embeddings")):
            candidates.append(InputEvidence((BATCH, 8), "synthesized", desc, None, None, "long", p["num_embeddings"]))
        elif k in ("LSTM", "GRU", "RNN") and is_int(p.get("input_size")):
            bf = p.get("batch_first", False)
            dims = (BATCH, 8, p["input_size"]) if bf is True else (8, BATCH, p["input_size"])
            candidates.append(InputEvidence(dims, "synthesized", desc, None, None))
        want = {(id(q.node), q.kind) for q in run.problems}
        for ev in candidates:
            trial, _ = self._run(name, value, node, ev)
            got = {(id(q.node), q.kind): q for q in trial.problems}
            if set(got) == want:
                return ev, got
        return None, {}

    # ------------------------------------------------------------- messages
    def _problem(self, p: Problem, run: Run, model: ModelReport, synth: Problem | None) -> ShapeProblem:
        ev = p.evidence
        data_ev = ev or model.synthesized
        data_problem = p if ev is not None else synth
        data: dict[str, Any] = {
            "model": model.name,
            # Code that builds the model, arguments folded: the runtime checker runs it.
            "constructor": model.constructor,
            "input_shape": None if data_ev is None else data_ev.concrete(),
            "input_source": "unknown" if data_ev is None else self._source_text(data_ev),
            "expected_error": None if data_problem is None else expected_error(data_problem, data_ev),
            "kind": p.kind,
        }
        if data_ev is not None and data_ev.dtype == "long":
            data["input_dtype"] = "int64"
            data["input_high"] = data_ev.high
        message = self._message(p)
        related = [(s.node, s.text) for s in p.x.steps] + [(p.call or p.node, self._failing_step(p))]
        fix = self._fix(p, run)
        assumes_batch = False
        if p.kind == "view-batch" and ev is not None and ev.kind == "tensor" and ev.batch and p.info.get("size"):
            assumes_batch = (ev.batch * p.info["features"]) % p.info["size"] == 0
        return ShapeProblem(p.kind, p.node, message, related, fix, data, model.name, assumes_batch)

    def _failing_step(self, p: Problem) -> str:
        before = shape_text(p.x.dims, True) if p.x.open else sample_text(p.x.dims, p.x.batched)
        who = p.label or p.op_text
        if p.layer is not None and who.endswith("]"):
            who = f"{who} ({p.layer.kind})"
        return f"{who}: {before} → error"

    def _source_text(self, ev: InputEvidence) -> str:
        line = self.lines(ev.node)
        at = f", line {line}" if line else ""
        if ev.kind == "dataset":
            return f"{ev.description} dataset{at}"
        if ev.kind == "tensor":
            return f"{ev.description}{at}"
        if ev.kind == "summary":
            return f"{ev.description}{at}"
        return ev.description

    def _input_desc(self, ev: InputEvidence) -> str:
        """'CIFAR-10 input (3×32×32, from line 12)', 'the input torch.randn(1, 3, 28, 28) (line 40)'."""
        line = self.lines(ev.node)
        if ev.kind == "dataset":
            at = f", from line {line}" if line else ""
            return f"{ev.description} input ({sample_text(ev.dims, True)}{at})"
        return f"the {'input ' if ev.kind == 'tensor' else ''}{ev.description}" + (f" (line {line})" if line else "")

    def _producers(self, p: Problem) -> tuple[str, bool]:
        """'conv2 → pool', and whether that is plural; '' when the value is the input itself."""
        steps = [s for s in p.x.steps if s.kind in ("layer", "op")]
        # "conv2 → pool produce 16×5×5": two steps show where a flattened size came from.
        flattened = p.kind in ("view-size", "view-batch") or bool(p.x.flat_from)
        labels = [s.name for s in steps[-2 if flattened else -1:]]
        return " → ".join(labels), len(labels) > 1

    def _got_text(self, p: Problem, got: Any) -> str:
        ff = p.x.flat_from
        if ff and all(is_int(d) for d in ff) and len(ff) > 1:
            return f"{shape_text(tuple(ff))} = {got}"
        return str(got)

    def _source(self, p: Problem, got: str) -> str:
        """What gave the failing step its input: 'conv2 → pool produce 16×5×5 = 400 for
        CIFAR-10 input (...)', or 'MNIST input (...) has 1'."""
        producers, plural = self._producers(p)
        ev = p.evidence
        if producers:
            clause = f"for {self._input_desc(ev)}" if ev is not None else "(for any input)"
            return f"{producers} {'produce' if plural else 'produces'} {got} {clause}"
        if ev is not None:
            return f"{self._input_desc(ev)} has {got}"
        return f"it gets {got}"

    def _message(self, p: Problem) -> str:
        k, info = p.kind, p.info
        who = p.label or (L.describe(p.layer) if p.layer is not None else p.op_text)
        if p.layer is not None and p.layer.node is not None and p.label:
            who = f"{p.label} = {L.describe(p.layer)}"
        if k == "linear-features":
            return f"{who} expects {info['expected']} input features, but {self._source(p, self._got_text(p, info['got']))}"
        if k in ("view-size", "view-batch"):
            per = info.get("per_sample") or ()
            feats = info["features"]
            per_text = f"{shape_text(tuple(per))} = {feats}" if len(per) > 1 and all(is_int(d) for d in per) else str(feats)
            target = info.get("target") or []
            if any(is_int(t) and t == -1 for t in target) and p.x.batched:
                head = f"{p.op_text} expects {info['size']} features per sample, but"
            else:
                head = f"{p.op_text} cannot reshape {info.get('numel', feats)} elements: per sample,"
            msg = f"{head} {self._source(p, per_text)}"
            b = None if p.evidence is None else p.evidence.batch
            if k == "view-batch" and b:
                total = b * feats
                if total % info["size"] == 0:
                    msg += f"; a batch of {b} silently becomes {total // info['size']}"
            elif k == "view-batch":
                msg += "; it fails, or silently changes the batch size when the sizes happen to divide"
            return msg
        if k == "conv-channels":
            return f"{who} expects {info['expected']} input channels, but {self._source(p, str(info['got']))}"
        if k == "rank":
            lo, hi = info["expected"]
            got = f"a {info['got']}-D tensor ({shape_text(p.x.dims)})"
            return f"{who} expects a {lo}-D or {hi}-D input, but {self._source(p, got)}"
        if k == "conv-too-small":
            inp = "×".join("?" if d is None else str(d) for d in info["padded"])
            ker = "×".join(str(d) for d in info["kernel"])
            return f"{who} has a {ker} kernel, larger than its input: {self._source(p, f'{inp} (with padding)')}"
        if k == "pool-too-small":
            inp = "×".join("?" if d is None else str(d) for d in info["input"])
            out = "×".join("?" if d is None else str(d) for d in info["output"])
            return f"{who} would shrink its input to {out}: {self._source(p, inp)}"
        if k == "norm-features":
            return f"{who} expects {info['expected']} channels, but {self._source(p, str(info['got']))}"
        if k == "norm-rank":
            exp = " or ".join(f"{r}-D" for r in info["expected"])
            got = f"a {info['got']}-D tensor"
            return f"{who} expects a {exp} input, but {self._source(p, got)}"
        if k == "rnn-features":
            return f"{who} expects {info['expected']} input features, but {self._source(p, str(info['got']))}"
        if k == "layernorm":
            exp = "×".join(str(d) for d in info["expected"])
            return f"{who} normalizes over {exp}, but {self._source(p, sample_text(tuple(info['got']), p.x.batched))}"
        return f"{who}: shape mismatch"

    # ----------------------------------------------------------------- fixes
    def _fix(self, p: Problem, run: Run) -> tuple[str, list[tuple[cst.CSTNode, str]]] | None:
        if p.evidence is None:
            return None
        if p.kind == "linear-features":
            layer = p.layer
            got = p.info.get("got")
            if layer is None or layer.node is None or not is_int(got) or p.x.view_link is not None:
                return None
            if run.calls.get(id(layer), 0) != 1:
                return None
            arg = layer.arg_nodes.get("in_features")
            if arg is None or not _literal_int(arg):
                return None
            text = _analogous(arg, got, p.x.flat_from)
            return (f"Set in_features to {text}", [(arg, text)])
        if p.kind in ("view-size", "view-batch"):
            size_node = p.info.get("size_node")
            feats = p.info.get("features")
            if size_node is None or not _literal_int(size_node) or not is_int(feats):
                return None
            target = p.info.get("target") or []
            if not (target and is_int(target[0]) and target[0] == -1 and len(target) == 2):
                return None
            per = tuple(p.info.get("per_sample") or ())
            text = _analogous(size_node, feats, per)
            ops = [(size_node, text)]
            for layer, in_node in p.linked:
                if _literal_int(in_node) and run.calls.get(id(layer), 0) == 1:
                    ops.append((in_node, _analogous(in_node, feats, per)))
            what = "the view size and the Linear after it" if len(ops) > 1 else "the view size"
            return (f"Set {what} to {text}", ops)
        return None


def _literal_value(v: Any) -> bool:
    if v is None or isinstance(v, (bool, int, float, str)):
        return True
    if isinstance(v, tuple):
        return all(_literal_value(x) for x in v)
    return False


def _factors(node: cst.BaseExpression) -> list[cst.Integer] | None:
    if isinstance(node, cst.Integer):
        return [node]
    if isinstance(node, cst.BinaryOperation) and isinstance(node.operator, cst.Multiply):
        a, b = _factors(node.left), _factors(node.right)
        if a is None or b is None:
            return None
        return a + b
    return None


def _literal_int(node: cst.BaseExpression) -> bool:
    return _factors(node) is not None and not node.lpar


def _analogous(node: cst.BaseExpression, value: int, per_sample: tuple | None) -> str:
    """``16 * 4 * 4`` with 16×5×5 gives ``16 * 5 * 5``; otherwise the number."""
    factors = _factors(node) or []
    if len(factors) > 1 and per_sample and len(per_sample) == len(factors) and all(is_int(d) for d in per_sample):
        prod = 1
        for d in per_sample:
            prod *= d
        if prod == value:
            return " * ".join(str(d) for d in per_sample)
    return str(value)


def expected_error(p: Problem, ev: InputEvidence | None) -> str:
    """The error torch raises, as fragments joined by " … " (each one appears in the message)."""
    k, info = p.kind, p.info
    if k == "linear-features":
        out = p.layer.params.get("out_features") if p.layer is not None else None
        tail = f"x{info['got']} and {info['expected']}x{out if is_int(out) else ''}"
        return f"RuntimeError: mat1 and mat2 shapes cannot be multiplied ( … {tail}"
    if k in ("view-size", "view-batch"):
        if k == "view-batch" and info.get("divides"):
            return f"no error: the batch of {info.get('batch')} comes out as {info.get('new_batch')}"
        numel = info.get("numel")
        return f"RuntimeError: shape '[ … ]' is invalid for input of size {numel if numel is not None else ''}".rstrip()
    if k == "conv-channels":
        return f"RuntimeError: to have {info['expected'] * 1} channels, but got {info['got']} channels instead"
    if k == "rank":
        s = info["spatial"]
        if p.layer is not None and p.layer.kind.startswith("Conv"):
            return f"RuntimeError: Expected {s + 1}D (unbatched) or {s + 2}D (batched) input to conv{s}d"
        return "RuntimeError"
    if k == "conv-too-small":
        return "RuntimeError: Kernel size can't be greater than actual input size"
    if k == "pool-too-small":
        return "RuntimeError: Output size is too small"
    if k == "norm-features":
        return f"RuntimeError: running_mean should contain {info['got']} elements not {info['expected']}"
    if k == "norm-rank":
        exp = " or ".join(f"{r}D" for r in info["expected"])
        return f"ValueError: expected {exp} input (got {info['got']}D input)"
    if k == "rnn-features":
        return f"RuntimeError: input.size(-1) must be equal to input_size. Expected {info['expected']}, got {info['got']}"
    if k == "layernorm":
        exp = ", ".join(str(d) for d in info["expected"])
        return f"RuntimeError: Given normalized_shape=[{exp}], expected input with shape [*, {exp}]"
    return "RuntimeError"


def analyze(module: cst.Module, names: NameResolver, tables: FileTables | None = None,
            code: Callable[[cst.CSTNode], str] | None = None,
            ranges: Callable[[list[cst.CSTNode]], Any] | None = None,
            model: Callable[[], Any] | None = None,
            shared_tables: Callable[[], FileTables] | None = None) -> ShapeReport:
    """``tables`` (or ``shared_tables``, which gives them): the program model's tables of the
    file; ``model``: gives the file's program model (its interpretation runs on first use: files
    without a model class or ``nn.Sequential`` never need it)."""
    if not quick_candidates(module):
        return ShapeReport()
    if tables is None:
        tables = shared_tables() if shared_tables is not None else FileTables(module, names)
    code = code or module.code_for_node
    t = tables
    program = _LazyModel(model if model is not None else lambda: ProgramModel(module, names, code, t))
    return Analysis(module, names, tables, code, program, ranges).run()


class _LazyModel:
    """The program model, built when the analysis first asks what a name holds."""

    def __init__(self, build: Callable[[], Any]) -> None:
        self._build = build
        self._model: Any = None

    def __getattr__(self, attr: str) -> Any:
        if self._model is None:
            self._model = self._build()
        return getattr(self._model, attr)


__all__ = ["Analysis", "ModelReport", "ShapeProblem", "ShapeReport", "analyze", "expected_error", "quick_candidates"]
