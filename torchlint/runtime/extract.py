"""Cut a user's file down to a runnable program that reaches the flagged code.

The runtime checker never runs a user's file as it is: it runs what the flagged
code needs and nothing else, with the data replaced by synthetic tensors.

* **Reaching the flagged code.** A flagged statement at module level is run
  where it is. One inside a function or a method is reached the way the script
  reaches it: through the module-level statements that call it (directly, or
  through other functions of the file, a class's constructor, or a model's
  ``forward`` called on an instance). When nothing in the file calls it, the
  program calls it itself, with stand-ins for the arguments (a synthetic
  ``DataLoader`` for ``loader``, a model class of the file for ``model``, an SGD
  optimizer over that model for ``optimizer``, ...).
* **Slicing.** Of the other module-level statements, only those that bind a
  name the kept code reads (imports, classes, functions, constants, the
  dataset, the model, the optimizer), and method calls or attribute stores on
  those objects (``model.to(device)``, ``model.fc = ...``), are kept, in their
  original order. Plots, prints, ``torch.save``, evaluation after the flagged
  code: never run. Checkpoint loads (``model.load_state_dict(torch.load(...))``)
  are skipped: there are no files to load.
* **Data.** ``torchvision.datasets.X(...)`` and instances of the file's own
  ``Dataset`` subclasses become synthetic datasets of the right sample shape
  (no download, no file); ``DataLoader`` runs without workers with batches of 2;
  training loops are cut to a few iterations.

The plan is a small JSON-able description (which statements to keep, which to
watch, which loops to cut, which calls to replace). :func:`apply_plan` turns it
into an ``ast.Module`` *inside the sandbox* and compiles it under the user's
file name: every line number in a traceback is the user's own line. Nothing here
imports torch; this module is also imported by the sandboxed harness.
"""

from __future__ import annotations

import ast
import builtins
import re
from dataclasses import dataclass, field
from typing import Any, Iterable, Iterator

__all__ = [
    "Claim",
    "ExtractionError",
    "ModuleIndex",
    "Plan",
    "apply_plan",
    "render",
]

HARNESS = "_torchlint"


class ExtractionError(Exception):
    """The claim cannot be turned into a program; the message says why (one line)."""


@dataclass(frozen=True)
class Claim:
    """What a rule asserts about a place in the file: rule code, location and the rule's data.

    A claim does not need a finding: tests confirm "the rule would be wrong
    here" claims on clean code by building one at the place the rule looks.
    """

    code: str
    line: int
    column: int = 0
    end_line: int | None = None
    end_column: int | None = None
    data: dict[str, Any] = field(default_factory=dict)
    message: str = ""

    @classmethod
    def from_finding(cls, finding: Any) -> "Claim":
        r = finding.range
        return cls(finding.code, r.line, r.column, r.end_line, r.end_column, dict(finding.data or {}), finding.message)


@dataclass
class Plan:
    """What to run: JSON-able, applied to the user's source by :func:`apply_plan`."""

    keep: list[tuple[int, int]] = field(default_factory=list)  # (line, col) of kept flat statements
    targets: list[tuple[int, int, str]] = field(default_factory=list)  # statements to watch
    loops: list[tuple[int, int]] = field(default_factory=list)  # For/While to cut
    datasets: list[tuple[int, int, str]] = field(default_factory=list)  # calls -> _torchlint.dataset(name, ...)
    drops: list[tuple[int, int, str]] = field(default_factory=list)  # statements replaced by a note
    # (line, col, end_line, end_col, kind) of an expression, columns in code points as in findings:
    # "next": x.next() -> next(x); "move": x -> x on the model's device;
    # "discard": t.to(...) -> _torchlint.discarded(t, t.to(...))
    rewrites: list[tuple[int, int, int, int, str]] = field(default_factory=list)
    raises: list[tuple[int, int, str]] = field(default_factory=list)  # (try line, col, exception): raise it first
    branches: list[tuple[int, int, bool]] = field(default_factory=list)  # (if line, col, taken): test replaced
    tail: str = ""  # code run after the kept statements (the synthesized entry)
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "keep": [list(k) for k in self.keep],
            "targets": [list(t) for t in self.targets],
            "loops": [list(x) for x in self.loops],
            "datasets": [list(d) for d in self.datasets],
            "drops": [list(d) for d in self.drops],
            "rewrites": [list(r) for r in self.rewrites],
            "raises": [list(r) for r in self.raises],
            "branches": [list(b) for b in self.branches],
            "tail": self.tail,
        }


# --------------------------------------------------------------------------
# Shared by the planner and apply_plan: which statements count as "top level"


def _is_main_guard(stmt: ast.stmt) -> bool:
    if not isinstance(stmt, ast.If) or stmt.orelse:
        return False
    test = stmt.test
    return (
        isinstance(test, ast.Compare)
        and isinstance(test.left, ast.Name)
        and test.left.id == "__name__"
        and len(test.comparators) == 1
        and isinstance(test.comparators[0], ast.Constant)
        and test.comparators[0].value == "__main__"
    )


def flat_body(tree: ast.Module) -> list[ast.stmt]:
    """Module-level statements, with the body of ``if __name__ == "__main__":`` inlined."""
    out: list[ast.stmt] = []
    for stmt in tree.body:
        if _is_main_guard(stmt):
            out.extend(stmt.body)
        else:
            out.append(stmt)
    return out


def _key(node: ast.AST) -> tuple[int, int]:
    return (node.lineno, node.col_offset)  # type: ignore[attr-defined]


# --------------------------------------------------------------------------
# apply_plan: runs in the sandbox (stdlib only)


def _h(attr: str, node: ast.AST) -> ast.expr:
    return ast.copy_location(ast.Attribute(ast.copy_location(ast.Name(HARNESS, ast.Load()), node), attr, ast.Load()), node)


def _no_args() -> ast.arguments:
    return ast.arguments(posonlyargs=[], args=[], vararg=None, kwonlyargs=[], kw_defaults=[], kwarg=None, defaults=[])


class _Apply(ast.NodeTransformer):
    def __init__(self, plan: dict[str, Any]) -> None:
        self.targets = {(t[0], t[1]): t[2] for t in plan.get("targets", ())}
        self.loops = {tuple(x[:2]) for x in plan.get("loops", ())}
        self.datasets = {(d[0], d[1]): d[2] for d in plan.get("datasets", ())}
        self.drops = {(d[0], d[1]): d[2] for d in plan.get("drops", ())}
        # Rewrites name a call by the (line, code-point column) of a finding.
        self.rewrites = {tuple(r[:4]): r[4] for r in plan.get("rewrites", ())}
        self.rewrite_lines = {r[0] for r in plan.get("rewrites", ())}
        self.lines = plan.get("_lines", [])
        self.raises = {(r[0], r[1]): r[2] for r in plan.get("raises", ())}
        self.branches = {(b[0], b[1]): b[2] for b in plan.get("branches", ())}

    def visit_If(self, node: ast.If) -> ast.AST:
        self.generic_visit(node)
        taken = self.branches.get(_key(node))
        if taken is not None:
            node.test = ast.copy_location(ast.Constant(bool(taken)), node.test)
        return node

    def visit_Try(self, node: ast.Try) -> ast.AST:
        self.generic_visit(node)
        name = self.raises.get(_key(node))
        if name is not None:
            first = node.body[0]
            exc = ast.copy_location(ast.Name(name, ast.Load()), first)
            node.body.insert(0, ast.copy_location(ast.Raise(exc, None), first))
        return node

    def _rewrite(self, node: ast.expr) -> ast.expr:
        def chars(line: int, offset: int) -> int:
            text = self.lines[line - 1] if 0 < line <= len(self.lines) else ""
            return len(text.encode()[:offset].decode(errors="replace"))

        end_line = node.end_lineno or node.lineno
        key = (node.lineno, chars(node.lineno, node.col_offset), end_line, chars(end_line, node.end_col_offset or 0))
        kind = self.rewrites.get(key)
        if kind == "next" and isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            # Through the harness: the name `next` may be shadowed where the call is.
            return ast.copy_location(ast.Call(_h("next_", node), [node.func.value], []), node)
        if kind == "move":
            return ast.copy_location(ast.Call(_h("moved", node), [node], []), node)
        if isinstance(kind, str) and kind.startswith("compare:"):
            # TL601-TL603: the flagged expression and its fix, both evaluated by the harness.
            fixed = ast.parse(kind[len("compare:") :], mode="eval").body
            pair = [ast.Lambda(_no_args(), node), ast.Lambda(_no_args(), fixed)]
            call = ast.Call(_h("compared", node), pair, [])
            return ast.fix_missing_locations(ast.copy_location(call, node))
        if isinstance(kind, str) and kind.startswith("accumulate:"):
            # TL102: what is added, next to the accumulator before the addition (read by a lambda).
            old = ast.parse(kind[len("accumulate:") :], mode="eval").body
            call = ast.Call(_h("accumulated", node), [node, ast.Lambda(_no_args(), old)], [])
            return ast.fix_missing_locations(ast.copy_location(call, node))
        if isinstance(kind, str) and kind.startswith("eval:") and isinstance(node, ast.Call):
            # TL109: the call run twice with its module in eval mode, by the harness.
            owner = ast.Name(kind[len("eval:") :], ast.Load())
            call = ast.Call(_h("in_eval", node), [owner, ast.Lambda(_no_args(), node)], [])
            return ast.fix_missing_locations(ast.copy_location(call, node))
        if isinstance(kind, str) and kind.startswith("loss:") and isinstance(node, ast.Call):
            # TL103: the loss call, handed to the harness with its function and arguments.
            _, act, loss = kind.split(":", 2)
            call = ast.Call(_h("activated_loss", node), [ast.Constant(act), ast.Constant(loss), node.func, *node.args], node.keywords)
            return ast.fix_missing_locations(ast.copy_location(call, node))
        if kind == "mode" and isinstance(node, ast.Call):
            # TL105: the model call, with the module's mode looked at while it runs.
            call = ast.Call(_h("moded", node), [node.func, ast.Lambda(_no_args(), node)], [])
            return ast.fix_missing_locations(ast.copy_location(call, node))
        if kind == "watch":
            # TL206: the object whose misspelt attribute is set, kept for a look afterwards.
            return ast.copy_location(ast.Call(_h("watched", node), [node], []), node)
        if kind == "discard" and isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            # TL402: the receiver and what the call returned, compared by the harness.
            return ast.copy_location(ast.Call(_h("discarded", node), [node.func.value, node], []), node)
        return node

    def visit(self, node: ast.AST) -> Any:
        if isinstance(node, ast.expr) and node.lineno in self.rewrite_lines:
            new = super().visit(node)
            return self._rewrite(new) if isinstance(new, ast.expr) else new
        if isinstance(node, ast.stmt):
            key = _key(node)
            if key in self.drops:
                call = ast.Call(_h("skipped", node), [ast.Constant(self.drops[key])], [])
                return ast.copy_location(ast.Expr(ast.copy_location(call, node)), node)
            tid = self.targets.get(key)
            new = super().visit(node)
            if tid is not None and isinstance(new, ast.stmt):
                item = ast.withitem(ast.copy_location(ast.Call(_h("target", node), [ast.Constant(tid)], []), node))
                return ast.copy_location(ast.With([item], [new]), node)
            return new
        return super().visit(node)

    def visit_For(self, node: ast.For) -> ast.AST:
        self.generic_visit(node)
        if _key(node) in self.loops:
            node.iter = ast.copy_location(
                ast.Call(_h("loop", node.iter), [ast.Constant(f"L{node.lineno}"), node.iter], []), node.iter
            )
        return node

    visit_AsyncFor = visit_For  # type: ignore[assignment]

    def visit_While(self, node: ast.While) -> ast.AST:
        self.generic_visit(node)
        if _key(node) in self.loops:
            tick = ast.copy_location(ast.Call(_h("tick", node.test), [ast.Constant(f"W{node.lineno}")], []), node.test)
            node.test = ast.copy_location(ast.BoolOp(ast.And(), [tick, node.test]), node.test)
        return node

    def visit_Call(self, node: ast.Call) -> ast.AST:
        self.generic_visit(node)
        name = self.datasets.get(_key(node))
        if name is not None:
            return ast.copy_location(ast.Call(_h("dataset", node), [ast.Constant(name), *node.args], node.keywords), node)
        return node


def _tolerant_import(stmt: ast.stmt) -> ast.stmt:
    """``import x`` -> ``try: import x`` / ``except ImportError: x = _torchlint.missing(...)``."""
    names: list[str] = []
    if isinstance(stmt, ast.Import):
        if any(a.name.split(".")[0] == "torch" for a in stmt.names):
            return stmt
        names = [a.asname or a.name.split(".")[0] for a in stmt.names]
    elif isinstance(stmt, ast.ImportFrom):
        if stmt.level or (stmt.module or "").split(".")[0] in ("torch", "__future__"):
            return stmt
        if any(a.name == "*" for a in stmt.names):
            return stmt
        names = [a.asname or a.name for a in stmt.names]
    else:
        return stmt
    err = "_torchlint_import_error"
    handler_body: list[ast.stmt] = [
        ast.Assign(
            [ast.Name(n, ast.Store())],
            ast.Call(_h("missing", stmt), [ast.Constant(n), ast.Name(err, ast.Load())], []),
        )
        for n in names
    ]
    handler = ast.ExceptHandler(ast.Name("ImportError", ast.Load()), err, handler_body)
    node = ast.Try([stmt], [handler], [], [])
    ast.copy_location(node, stmt)
    return ast.fix_missing_locations(node)


def apply_plan(source: str, plan: dict[str, Any]) -> ast.Module:
    """The user's module, cut and instrumented as the plan says (line numbers kept)."""
    tree = ast.parse(source)
    keep = {tuple(k) for k in plan.get("keep", ())}
    body = [s for s in flat_body(tree) if _key(s) in keep]
    applier = _Apply({**plan, "_lines": source.splitlines()})
    new_body: list[ast.stmt] = []
    for stmt in body:
        stmt = applier.visit(stmt)
        new_body.append(_tolerant_import(stmt))
    module = ast.Module(new_body, [])
    return ast.fix_missing_locations(module)


def render(source: str, plan: Plan | dict[str, Any]) -> str:
    """The program as Python text (for people: ``torchlint confirm --show-program``)."""
    data = plan.to_dict() if isinstance(plan, Plan) else plan
    text = ast.unparse(apply_plan(source, data))
    if data.get("tail"):
        text += "\n# --- torchlint entry ---\n" + data["tail"]
    return text


# --------------------------------------------------------------------------
# Reading the file: names, units, calls

_TRAIN_ITER = re.compile(r"loader|epoch|batch|dataset|step|iter|tqdm|train|data|range\(\s*\d{3,}", re.IGNORECASE)
_LOSS_FLOAT = ("MSELoss", "L1Loss", "SmoothL1Loss", "HuberLoss", "BCELoss", "BCEWithLogitsLoss", "mse_loss", "l1_loss",
               "smooth_l1_loss", "binary_cross_entropy", "binary_cross_entropy_with_logits", "huber_loss")  # fmt: skip
_LOSS_INDEX = ("CrossEntropyLoss", "NLLLoss", "cross_entropy", "nll_loss")

# torchvision datasets: native sample shape (C, H, W)
DATASET_SHAPES: dict[str, tuple[int, int, int]] = {
    "MNIST": (1, 28, 28), "FashionMNIST": (1, 28, 28), "KMNIST": (1, 28, 28), "QMNIST": (1, 28, 28),
    "EMNIST": (1, 28, 28), "CIFAR10": (3, 32, 32), "CIFAR100": (3, 32, 32), "SVHN": (3, 32, 32),
    "STL10": (3, 96, 96), "Omniglot": (1, 105, 105), "USPS": (1, 16, 16),
}  # fmt: skip


def _dotted(node: ast.AST) -> str | None:
    parts: list[str] = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if not isinstance(node, ast.Name):
        return None
    parts.append(node.id)
    return ".".join(reversed(parts))


def _root_name(node: ast.AST) -> str | None:
    while isinstance(node, (ast.Attribute, ast.Subscript, ast.Call)):
        node = node.func if isinstance(node, ast.Call) else node.value
    return node.id if isinstance(node, ast.Name) else None


def _walk_no_scopes(node: ast.AST) -> Iterator[ast.AST]:
    """Descendants of ``node`` that run when it runs (not into defs, classes or lambdas)."""
    stack = list(ast.iter_child_nodes(node))
    while stack:
        child = stack.pop()
        yield child
        if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Lambda)):
            continue
        stack.extend(ast.iter_child_nodes(child))


def _target_names(target: ast.AST) -> Iterator[str]:
    if isinstance(target, ast.Name):
        yield target.id
    elif isinstance(target, (ast.Tuple, ast.List)):
        for el in target.elts:
            yield from _target_names(el)
    elif isinstance(target, ast.Starred):
        yield from _target_names(target.value)


def bound_names(stmt: ast.stmt) -> set[str]:
    """Module-scope names a statement binds."""
    out: set[str] = set()
    nodes: Iterable[ast.AST] = [stmt, *_walk_no_scopes(stmt)]
    for node in nodes:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            out.add(node.name)
        elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            out.add(node.id)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            for alias in node.names:
                if alias.name == "*":
                    continue
                out.add(alias.asname or alias.name.split(".")[0])
        elif isinstance(node, ast.ExceptHandler) and node.name:
            out.add(node.name)
    return out


def _aug_names(stmt: ast.stmt) -> set[str]:
    return {
        n.target.id
        for n in [stmt, *_walk_no_scopes(stmt)]
        if isinstance(n, ast.AugAssign) and isinstance(n.target, ast.Name)
    }


def _function_locals(fn: ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda) -> set[str]:
    args = fn.args
    names = {a.arg for a in (*args.posonlyargs, *args.args, *args.kwonlyargs)}
    for star in (args.vararg, args.kwarg):
        if star is not None:
            names.add(star.arg)
    if isinstance(fn, ast.Lambda):
        return names
    declared_global: set[str] = set()
    for stmt in fn.body:
        for node in [stmt, *_walk_no_scopes(stmt)]:
            if isinstance(node, (ast.Global, ast.Nonlocal)):
                declared_global.update(node.names)
        names |= bound_names(stmt)
    return names - declared_global


def free_names(node: ast.AST, bound: frozenset[str] = frozenset()) -> set[str]:
    """Names read in ``node`` that it does not bind itself in an inner scope."""
    out: set[str] = set()

    def visit(n: ast.AST, bound: frozenset[str]) -> None:
        if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef)):
            for d in n.decorator_list:
                visit(d, bound)
            for d in (*n.args.defaults, *[k for k in n.args.kw_defaults if k is not None]):
                visit(d, bound)
            a = n.args
            for arg in (*a.posonlyargs, *a.args, *a.kwonlyargs, a.vararg, a.kwarg):
                if arg is not None and arg.annotation is not None:
                    visit(arg.annotation, bound)
            if n.returns is not None:
                visit(n.returns, bound)
            inner = bound | _function_locals(n)
            for s in n.body:
                visit(s, frozenset(inner))
            return
        if isinstance(n, ast.Lambda):
            for d in n.args.defaults:
                visit(d, bound)
            visit(n.body, frozenset(bound | _function_locals(n)))
            return
        if isinstance(n, ast.ClassDef):
            for d in (*n.decorator_list, *n.bases, *[k.value for k in n.keywords]):
                visit(d, bound)
            class_names = set()
            for s in n.body:
                if not isinstance(s, (ast.FunctionDef, ast.AsyncFunctionDef)):
                    class_names |= bound_names(s)
            for s in n.body:
                visit(s, bound if isinstance(s, (ast.FunctionDef, ast.AsyncFunctionDef)) else frozenset(bound | class_names))
            return
        if isinstance(n, (ast.ListComp, ast.SetComp, ast.GeneratorExp, ast.DictComp)):
            inner = set(bound)
            for gen in n.generators:
                visit(gen.iter, frozenset(inner))
                inner |= set(_target_names(gen.target))
                for cond in gen.ifs:
                    visit(cond, frozenset(inner))
            for part in ((n.key, n.value) if isinstance(n, ast.DictComp) else (n.elt,)):
                visit(part, frozenset(inner))
            return
        if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load) and n.id not in bound:
            out.add(n.id)
        if isinstance(n, ast.AugAssign) and isinstance(n.target, ast.Name) and n.target.id not in bound:
            out.add(n.target.id)
        for child in ast.iter_child_nodes(n):
            visit(child, bound)

    visit(node, bound)
    return out


def statement_free_names(stmt: ast.stmt) -> set[str]:
    """What a module-level statement needs from earlier statements."""
    if isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
        return free_names(stmt)
    own = bound_names(stmt) - _aug_names(stmt)
    return free_names(stmt) - own


Unit = tuple[str, str]  # ("", func) for a module-level function, (Class, method) for a method


class ModuleIndex:
    """One parse of the user's file and what the planner needs to know about it."""

    def __init__(self, source: str, path: str = "<stdin>") -> None:
        try:
            self.tree = ast.parse(source, filename=path)
        except (SyntaxError, ValueError) as exc:
            raise ExtractionError(f"the file does not parse: {exc}") from None
        self.source = source
        self.path = path
        self.lines = source.splitlines()
        self.body = flat_body(self.tree)
        self.parents: dict[ast.AST, ast.AST] = {}
        for node in ast.walk(self.tree):
            for child in ast.iter_child_nodes(node):
                self.parents[child] = node
        self.imports: dict[str, str] = {}
        self.functions: dict[str, ast.FunctionDef | ast.AsyncFunctionDef] = {}
        self.classes: dict[str, ast.ClassDef] = {}
        self.star_imports: list[ast.ImportFrom] = []
        for stmt in self.body:
            for node in [stmt, *_walk_no_scopes(stmt)]:
                if isinstance(node, ast.Import):
                    for a in node.names:
                        if a.asname:
                            self.imports[a.asname] = a.name
                        else:
                            root = a.name.split(".")[0]
                            self.imports[root] = root
                elif isinstance(node, ast.ImportFrom) and not node.level:
                    for a in node.names:
                        if a.name == "*":
                            self.star_imports.append(node)
                        else:
                            self.imports[a.asname or a.name] = f"{node.module}.{a.name}"
            if isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef)):
                self.functions[stmt.name] = stmt
            elif isinstance(stmt, ast.ClassDef):
                self.classes[stmt.name] = stmt
        # Every name the file binds by assignment, a loop or as a parameter: what may hold a model.
        self.variables: set[str] = set()
        for node in ast.walk(self.tree):
            if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
                self.variables.add(node.id)
            elif isinstance(node, ast.arg):
                self.variables.add(node.arg)
        self._bound = [bound_names(s) for s in self.body]
        self._free: list[set[str] | None] = [None] * len(self.body)
        self._edges: dict[Any, set[Unit]] = {}
        self._module_classes: list[str] | None = None
        self._methods: dict[str, set[str]] = {}

    # -- names --
    def qualname(self, expr: ast.AST) -> str | None:
        dotted = _dotted(expr)
        if dotted is None:
            return None
        head, _, rest = dotted.partition(".")
        if head in self.classes or head in self.functions:
            base = f"__main__.{head}"
        elif head in self.imports:
            base = self.imports[head]
        else:
            return None
        return f"{base}.{rest}" if rest else base

    def free(self, i: int) -> set[str]:
        cached = self._free[i]
        if cached is None:
            cached = self._free[i] = statement_free_names(self.body[i])
        return cached

    def line_text(self, line: int) -> str:
        return self.lines[line - 1] if 0 < line <= len(self.lines) else ""

    # -- locating --
    def statement_at(self, line: int, column: int = 0) -> ast.stmt:
        """The innermost statement on ``line``; of several on one line (``a; b``), the one at ``column``."""
        col_bytes = len(self.line_text(line)[:column].encode())
        spanning = [
            n for n in ast.walk(self.tree) if isinstance(n, ast.stmt) and n.lineno <= line <= (n.end_lineno or n.lineno)
        ]
        if not spanning:
            raise ExtractionError(f"no statement on line {line}")
        at_column = [
            n for n in spanning
            if n.lineno == line and n.col_offset <= col_bytes and (n.end_lineno != line or col_bytes <= (n.end_col_offset or 0))
        ]  # fmt: skip
        pool = at_column or spanning
        return max(pool, key=lambda n: _depth(self, n))

    def expression_at(self, line: int, column: int) -> ast.expr | None:
        col_bytes = len(self.line_text(line)[:column].encode())
        found: ast.expr | None = None
        for node in ast.walk(self.tree):
            if isinstance(node, ast.expr) and node.lineno == line and node.col_offset == col_bytes:
                if found is None or _depth(self, node) < _depth(self, found):
                    found = node  # the outermost expression starting there
        return found

    def ancestors(self, node: ast.AST) -> Iterator[ast.AST]:
        while node in self.parents:
            node = self.parents[node]
            yield node

    def top_index(self, node: ast.AST) -> int:
        chain = [node, *self.ancestors(node)]
        for i, stmt in enumerate(self.body):
            if stmt in chain:
                return i
        raise ExtractionError("the flagged code is not inside a module-level statement")

    def unit_of(self, node: ast.AST) -> Unit | None:
        """The module-level function or method the node is in (outermost), else None."""
        chain = [node, *self.ancestors(node)]
        chain.reverse()  # module first
        for i, n in enumerate(chain):
            if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef)) and n.name in self.functions and self.functions[n.name] is n:
                return ("", n.name)
            if isinstance(n, ast.ClassDef) and self.classes.get(n.name) is n:
                nxt = chain[i + 1] if i + 1 < len(chain) else None
                if isinstance(nxt, (ast.FunctionDef, ast.AsyncFunctionDef)):
                    return (n.name, nxt.name)
                return None
        return None

    def unit_node(self, unit: Unit) -> ast.AST | None:
        cls, name = unit
        if not cls:
            return self.functions.get(name)
        klass = self.classes.get(cls)
        if klass is None:
            return None
        for stmt in klass.body:
            if isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef)) and stmt.name == name:
                return stmt
        return None

    # -- classes --
    def class_methods(self, cls: str, seen: frozenset[str] = frozenset()) -> set[str]:
        """Methods a class of the file has, its bases in the file included."""
        if cls in self._methods:
            return self._methods[cls]
        klass = self.classes.get(cls)
        if klass is None or cls in seen:
            return set()
        out = {s.name for s in klass.body if isinstance(s, (ast.FunctionDef, ast.AsyncFunctionDef))}
        for base in klass.bases:
            if isinstance(base, ast.Name) and base.id in self.classes:
                out |= self.class_methods(base.id, seen | {cls})
        self._methods[cls] = out
        return out

    def is_module_class(self, cls: str, seen: frozenset[str] = frozenset()) -> bool:
        klass = self.classes.get(cls)
        if klass is None or cls in seen:
            return False
        for base in klass.bases:
            q = self.qualname(base) or ""
            if q.startswith("torch.nn.") and q.rsplit(".", 1)[-1] in ("Module", "Sequential", "ModuleList"):
                return True
            if q.startswith("torchvision.models"):
                return True
            if isinstance(base, ast.Name) and self.is_module_class(base.id, seen | {cls}):
                return True
        return "forward" in self.class_methods(cls)

    def is_dataset_class(self, cls: str, seen: frozenset[str] = frozenset()) -> bool:
        klass = self.classes.get(cls)
        if klass is None or cls in seen:
            return False
        for base in klass.bases:
            q = self.qualname(base) or ""
            if q in ("torch.utils.data.Dataset", "torch.utils.data.dataset.Dataset", "torch.utils.data.IterableDataset"):
                return True
            if isinstance(base, ast.Name) and self.is_dataset_class(base.id, seen | {cls}):
                return True
        return False

    def reads_files(self, cls: str) -> bool:
        """Does a class's code read files or download (then its data is made up instead)?"""
        klass = self.classes.get(cls)
        if klass is None:
            return False
        for n in ast.walk(klass):
            if isinstance(n, ast.Call):
                name = n.func.attr if isinstance(n.func, ast.Attribute) else n.func.id if isinstance(n.func, ast.Name) else ""
                if name in _READS_FILES or name.startswith(("read_", "load_")):
                    return True
        return False

    def module_classes(self) -> list[str]:
        if self._module_classes is None:
            self._module_classes = [c for c in self.classes if self.is_module_class(c)]
        return self._module_classes

    # -- calls: which units can a piece of code run? --
    def edges(self, node: ast.AST, current_class: str | None = None, *, into_scopes: bool = True) -> set[Unit]:
        key = (id(node), into_scopes)
        if key in self._edges:
            return self._edges[key]
        out: set[Unit] = set()
        walker = ast.walk(node) if into_scopes else [node, *_walk_no_scopes(node)]
        forwards = self._forwards()
        for n in walker:
            if isinstance(n, ast.Call):
                func = n.func
                if isinstance(func, ast.Name):
                    if func.id in self.functions:
                        out.add(("", func.id))
                    elif func.id in self.classes:
                        out.add((func.id, "__init__"))
                    elif func.id in self.variables and func.id not in self.imports:
                        out |= forwards  # an instance called: a model's forward
                elif isinstance(func, ast.Attribute):
                    attr = func.attr
                    receiver = func.value
                    if isinstance(receiver, ast.Name) and receiver.id == "self" and current_class:
                        if attr in self.class_methods(current_class):
                            out |= {(c, attr) for c in self._defining(current_class, attr)}
                        else:
                            out |= forwards  # self.layer(x)
                    else:
                        for cls in self.classes:
                            if attr in self.class_methods(cls):
                                out |= {(c, attr) for c in self._defining(cls, attr)}
                        if attr == "__call__":
                            out |= forwards
                else:
                    out |= forwards  # layers[i](x), make()(x)
            elif isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load):
                # Passed as a callback (net.apply(init_weights), collate_fn=...).
                if n.id in self.functions:
                    out.add(("", n.id))
                elif n.id in self.classes:
                    out.add((n.id, "__init__"))
        self._edges[key] = out
        return out

    def _forwards(self) -> set[Unit]:
        """Every model's ``forward``: what calling an instance may run."""
        return {(d, "forward") for c in self.module_classes() for d in self._defining(c, "forward")}

    def _defining(self, cls: str, method: str, depth: int = 0) -> list[str]:
        """The class (in this file) whose definition of ``method`` ``cls`` uses."""
        klass = self.classes.get(cls)
        if klass is None:
            return []
        if any(isinstance(s, (ast.FunctionDef, ast.AsyncFunctionDef)) and s.name == method for s in klass.body):
            return [cls]
        out: list[str] = []
        for base in klass.bases:
            if isinstance(base, ast.Name) and base.id in self.classes and base.id != cls and depth < 20:
                out += self._defining(base.id, method, depth + 1)
        return out

    def units(self) -> list[Unit]:
        out: list[Unit] = [("", f) for f in self.functions]
        for cls, klass in self.classes.items():
            out += [(cls, s.name) for s in klass.body if isinstance(s, (ast.FunctionDef, ast.AsyncFunctionDef))]
        return out

    def reaching_units(self, start: Unit) -> set[Unit]:
        """Every unit from which ``start`` may be called (``start`` included)."""
        reach = {start}
        units = self.units()
        changed = True
        while changed:
            changed = False
            for u in units:
                if u in reach:
                    continue
                node = self.unit_node(u)
                if node is not None and self.edges(node, u[0] or None) & reach:
                    reach.add(u)
                    changed = True
        # A class body's __init__ runs when the class is instantiated, which
        # edges() already records as (Class, "__init__").
        return reach


_BUILTIN_NAMES = frozenset(dir(builtins))
_READS_FILES = frozenset(
    {"open", "load", "loadtxt", "genfromtxt", "fromfile", "listdir", "scandir", "walk", "glob", "iglob", "imread",
     "File", "urlopen", "urlretrieve", "get", "download", "download_url", "extract_archive", "rglob", "iterdir"}
)  # fmt: skip


def _depth(index: ModuleIndex, node: ast.AST) -> int:
    return sum(1 for _ in index.ancestors(node))


# --------------------------------------------------------------------------
# Planning


@dataclass
class Setup:
    """What the harness needs to know to make up data (JSON-able)."""

    input_shape: list[int] | None = None
    guessed: bool = False  # the shape comes from the model's first layer, not from data
    label_kind: str = "index"
    label_shape: list[int] | None = None
    notes: list[str] = field(default_factory=list)


class Planner:
    """Builds the :class:`Plan` that runs a claim's flagged code."""

    def __init__(self, index: ModuleIndex, *, force_branches: bool = False, guessed_data: bool = True) -> None:
        self.index = index
        # May a file-reading Dataset of the user's be replaced by samples whose
        # shape is only a guess (from the model's first layer)? Fine where a
        # wrong shape can only stop the run; not where a shape error is the claim.
        self.guessed_data = guessed_data
        self.setup: Setup | None = None
        self.plan = Plan()
        self._keep: set[int] = set()
        # Second attempt when the flagged line was not reached: take the `if`
        # branches that lead to it whatever their conditions say.
        self.force_branches = force_branches

    # -- the parts every plan has --
    def datasets_and_loops(self, kept: list[ast.stmt]) -> None:
        """Replace dataset constructions and cut training loops in the kept code."""
        ix = self.index
        nodes: list[ast.AST] = []
        for stmt in kept:
            nodes.extend(ast.walk(stmt))
        module_methods: set[int] = set()
        for cls in ix.module_classes():
            for n in ast.walk(ix.classes[cls]):
                module_methods.add(id(n))
        for n in nodes:
            if isinstance(n, ast.Call):
                q = ix.qualname(n.func) or ""
                if q.startswith("torchvision.datasets.") and q.rsplit(".", 1)[-1][:1].isupper():
                    self.plan.datasets.append((n.lineno, n.col_offset, q))
                elif q.startswith("__main__.") and ix.is_dataset_class(q.split(".", 1)[1]) and ix.reads_files(q.split(".", 1)[1]):
                    setup = self.setup
                    known = setup is not None and setup.input_shape is not None and (self.guessed_data or not setup.guessed)
                    if known:
                        self.plan.datasets.append((n.lineno, n.col_offset, q))
            elif isinstance(n, (ast.For, ast.AsyncFor, ast.While)):
                if id(n) in module_methods and not _has_training_calls(n):
                    continue
                if _is_training_loop(ix, n):
                    self.plan.loops.append((n.lineno, n.col_offset))

    def keep_slice(self, entries: list[int], extra_needed: set[str] = frozenset()) -> None:  # type: ignore[assignment]
        """Keep ``entries`` and every earlier statement they need."""
        ix = self.index
        keep = set(entries)
        last = max(entries) if entries else len(ix.body)
        needed: set[str] = set(extra_needed)
        for i in keep:
            needed |= ix.free(i)
        changed = True
        while changed:
            changed = False
            for i in range(last):
                if i in keep:
                    continue
                stmt = ix.body[i]
                take = bool(ix._bound[i] & needed)
                if not take and self._mutates_needed(stmt, needed):
                    take = True
                if isinstance(stmt, ast.ImportFrom) and stmt.module == "__future__":
                    take = True
                if isinstance(stmt, ast.ImportFrom) and any(a.name == "*" for a in stmt.names):
                    unresolved = needed - set().union(*ix._bound) - _BUILTIN_NAMES
                    take = take or bool(unresolved)
                if take:
                    drop = self._checkpoint_load(stmt)
                    if drop:
                        self.plan.drops.append((stmt.lineno, stmt.col_offset, drop))
                    keep.add(i)
                    needed |= ix.free(i)
                    changed = True
        self._keep = keep
        self.plan.keep = [_key(ix.body[i]) for i in sorted(keep)]

    def _mutates_needed(self, stmt: ast.stmt, needed: set[str]) -> bool:
        """``model.to(device)``, ``model.fc = ...``, ``cfg["lr"] = ...`` on an object the kept code uses."""
        ix = self.index
        root = None
        if isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.Call) and isinstance(stmt.value.func, ast.Attribute):
            root = _root_name(stmt.value.func.value)
        elif isinstance(stmt, (ast.Assign, ast.AugAssign, ast.AnnAssign)):
            targets = stmt.targets if isinstance(stmt, ast.Assign) else [stmt.target]
            for t in targets:
                if isinstance(t, (ast.Attribute, ast.Subscript)):
                    root = _root_name(t)
        if root is None or root not in needed or root in ix.imports:
            return False
        return True

    def _checkpoint_load(self, stmt: ast.stmt) -> str | None:
        if not isinstance(stmt, ast.Expr) or not isinstance(stmt.value, ast.Call):
            return None
        func = stmt.value.func
        if isinstance(func, ast.Attribute) and func.attr in ("load_state_dict", "load"):
            line = stmt.lineno
            return f"skipped line {line}: `{self.index.line_text(line).strip()}` (no files to load in the sandbox)"
        return None

    # -- reaching the flagged statement --
    def reach(self, target: ast.stmt, tid: str, setup: Setup, *, tail_extra: str = "") -> None:
        """Keep what runs ``target``: its module-level statement, or the statements that call it."""
        ix = self.index
        self.setup = setup
        self.plan.targets.append((target.lineno, target.col_offset, tid))
        self._enter_handlers(target)
        if self.force_branches:
            self._take_branches(target)
        unit = ix.unit_of(target)
        if unit is None:
            top = ix.top_index(target)
            self.keep_slice([top])
            self._finish()
            return
        reach = ix.reaching_units(unit)
        entries = []
        for i, stmt in enumerate(ix.body):
            if isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Import, ast.ImportFrom)):
                continue
            if ix.edges(stmt, None, into_scopes=False) & reach:
                entries.append(i)
        if entries:
            # Run up to the first statement that reaches the code; later ones
            # only if the first one did not get there.
            self.keep_slice(entries)
            self.plan.notes.append(
                "reached through line " + ", ".join(str(ix.body[i].lineno) for i in entries[:3])
            )
            self._finish()
            return
        tail, needs = self.synthesize_call(unit, setup)
        self.plan.tail = tail + tail_extra
        self.keep_slice([], needs)
        self._finish()

    def _enter_handlers(self, target: ast.stmt) -> None:
        """Flagged code in ``except StopIteration:`` runs when its ``try`` raises that: make it raise it."""
        child: ast.AST = target
        for parent in self.index.ancestors(target):
            if isinstance(child, ast.ExceptHandler) and isinstance(parent, ast.Try) and parent.body:
                name = child.type.id if isinstance(child.type, ast.Name) else None
                if name in _RAISABLE:
                    self.plan.raises.append((parent.lineno, parent.col_offset, name))
                    self.plan.notes.append(
                        f"line {target.lineno} is in an `except {name}:` block: the `try` on line {parent.lineno} "
                        f"was made to raise {name} to get there"
                    )
            if isinstance(parent, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                break
            child = parent

    def _take_branches(self, target: ast.stmt) -> None:
        child: ast.AST = target
        for parent in self.index.ancestors(target):
            if isinstance(parent, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Module)):
                break
            if isinstance(parent, ast.If) and not _is_main_guard(parent):
                taken = child in parent.body
                self.plan.branches.append((parent.lineno, parent.col_offset, taken))
                self.plan.notes.append(
                    f"line {target.lineno} is reached only when the `if` on line {parent.lineno} is "
                    f"{'true' if taken else 'false'}: torchlint made it so"
                )
            child = parent
        # In a function called from the module, the calls on the way may sit under an `if` too.

    def _finish(self) -> None:
        kept = [self.index.body[i] for i in sorted(self._keep)]
        self.datasets_and_loops(kept)

    # -- making up a call when the file never makes one --
    def synthesize_call(self, unit: Unit, setup: Setup) -> tuple[str, set[str]]:
        ix = self.index
        cls, name = unit
        lines: list[str] = []
        needs: set[str] = set()
        made: dict[str, str] = {}
        if not cls:
            fn = ix.functions[name]
            args = self._arguments(fn, setup, lines, needs, made, skip_self=False)
            lines.append(f"{name}({args})")
            needs.add(name)
            self.plan.notes.append(f"{name}() is never called in the file: called with stand-in arguments")
            return "\n".join(lines) + "\n", needs
        instance = self._instance_of(cls, setup, lines, needs, made)
        if name == "__init__":
            self.plan.notes.append(f"{cls} is never instantiated in the file: built with stand-in arguments")
            return "\n".join(lines) + "\n", needs
        node = ix.unit_node(unit)
        assert isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))
        if name == "forward" and ix.is_module_class(cls):
            shape = setup.input_shape or [3, 32, 32]
            lines.append(f"{HARNESS}.forward({instance}, {[2, *shape]!r})")
        else:
            args = self._arguments(node, setup, lines, needs, made, skip_self=True)
            lines.append(f"{instance}.{name}({args})")
        self.plan.notes.append(f"{cls}.{name}() is never called in the file: called with stand-in arguments")
        return "\n".join(lines) + "\n", needs

    def _instance_of(self, cls: str, setup: Setup, lines: list[str], needs: set[str], made: dict[str, str]) -> str:
        ix = self.index
        key = f"instance:{cls}"
        if key in made:
            return made[key]
        var = f"_tl_{cls.lower()}"
        init = ix.unit_node((cls, "__init__"))
        if init is None:
            init = next((ix.unit_node((b, "__init__")) for b in ix._defining(cls, "__init__")), None)
        args = ""
        if isinstance(init, (ast.FunctionDef, ast.AsyncFunctionDef)):
            args = self._arguments(init, setup, lines, needs, made, skip_self=True)
        lines.append(f"{var} = {cls}({args})")
        needs.add(cls)
        made[key] = var
        return var

    def _arguments(self, fn: ast.FunctionDef | ast.AsyncFunctionDef, setup: Setup, lines: list[str],
                   needs: set[str], made: dict[str, str], *, skip_self: bool) -> str:  # fmt: skip
        params = [*fn.args.posonlyargs, *fn.args.args]
        if skip_self and params:
            params = params[1:]
        n_defaults = len(fn.args.defaults)
        required = params[: len(params) - n_defaults] if n_defaults else params
        kwonly = [p for p, d in zip(fn.args.kwonlyargs, fn.args.kw_defaults) if d is None]
        models = [p.arg for p in (*params, *fn.args.kwonlyargs) if _MODEL_NAME.search(p.arg.lower()) and not _looks_like_optimizer(p.arg)]
        out = [self._stand_in(fn.name, p, setup, lines, needs, made, models) for p in required]
        out += [f"{p.arg}={self._stand_in(fn.name, p, setup, lines, needs, made, models)}" for p in kwonly]
        return ", ".join(out)

    def _stand_in(self, fname: str, param: ast.arg, setup: Setup, lines: list[str], needs: set[str],
                  made: dict[str, str], models: list[str]) -> str:  # fmt: skip
        name = param.arg
        low = name.lower()
        ann = ast.unparse(param.annotation) if param.annotation is not None else ""
        if "DataLoader" in ann or "loader" in low or low in ("dl", "batches", "data_iter", "dataiter"):
            return f"{HARNESS}.loader()"
        if "Optimizer" in ann or _looks_like_optimizer(name):
            return f"{HARNESS}.sgd({self._model_stand_in(fname, _model_for_optimizer(name, models), setup, lines, needs, made)})"
        if low in ("criterion", "loss_fn", "loss_func", "lossfn", "loss_fun", "loss_function", "criterion_fn", "loss"):
            return f"{HARNESS}.criterion()"
        if low in ("device", "dev") or ann.endswith("device"):
            return f"{HARNESS}.device()"
        if re.fullmatch(r"(n_|num_|max_|total_)?(epochs?|steps?|iters?|iterations?|batches)", low):
            return "0" if low in ("epoch", "step") else "2"
        if low in ("lr", "learning_rate", "alpha", "momentum", "weight_decay"):
            return "0.01"
        if low in ("batch_size", "bs"):
            return "2"
        if "Module" in ann or _MODEL_NAME.search(low):
            return self._model_stand_in(fname, name, setup, lines, needs, made)
        raise ExtractionError(f"`{fname}()` is never called in the file and torchlint cannot make up its argument `{name}`")

    def _model_stand_in(self, fname: str, param: str, setup: Setup, lines: list[str], needs: set[str],
                        made: dict[str, str]) -> str:  # fmt: skip
        ix = self.index
        classes = [c for c in ix.module_classes() if "forward" in ix.class_methods(c)]
        low = param.lower()
        prefer = [c for c in classes if ("gen" in low and "gen" in c.lower()) or ("disc" in low and "disc" in c.lower())]
        if not prefer and re.search(r"(^|_)d$|netd|disc", low):
            prefer = [c for c in classes if "disc" in c.lower() or c.lower().endswith("d")]
        if not prefer and re.search(r"(^|_)g$|netg|gen", low):
            prefer = [c for c in classes if "gen" in c.lower() or c.lower().endswith("g")]
        pick = prefer or classes
        if not pick:
            # No model in the file: a small stand-in of the right input size.
            key = f"model:{param}"
            if key not in made:
                var = f"_tl_{re.sub(r'[^0-9a-zA-Z_]', '_', param)}"
                lines.append(f"{var} = {HARNESS}.model()")
                made[key] = var
                self.plan.notes.append(f"`{param}`: a stand-in model (the file defines none)")
            return made[key]
        return self._instance_of(pick[0], setup, lines, needs, made)


_RAISABLE = frozenset(
    {"StopIteration", "KeyError", "IndexError", "ValueError", "RuntimeError", "Exception", "FileNotFoundError",
     "OSError", "IOError", "ImportError", "ModuleNotFoundError", "AttributeError", "TypeError", "EOFError"}
)  # fmt: skip


_MODEL_NAME = re.compile(r"model|net|generator|discriminator|encoder|decoder|classifier|backbone|^g$|^d$")


def _model_for_optimizer(optimizer: str, models: list[str]) -> str:
    """The model parameter an optimizer parameter goes with: opt_g -> generator, optimizer -> model."""
    if len(models) <= 1:
        return models[0] if models else "model"
    low = optimizer.lower()
    for key, words in (("g", ("gen", "netg", "g")), ("d", ("disc", "netd", "d"))):
        if re.search(rf"(^|_){key}($|_)|{'|'.join(words[:2])}", low) or low.endswith(key):
            for m in models:
                ml = m.lower()
                if any(ml.startswith(w) or ml.endswith(w) or ml == w for w in words):
                    return m
    return models[0]


def _looks_like_optimizer(name: str) -> bool:
    try:
        from torchlint.analysis.training import looks_like_optimizer_name
    except ImportError:  # pragma: no cover - shipped with torchlint
        return "optim" in name.lower()
    return looks_like_optimizer_name(name)


def _has_training_calls(loop: ast.AST) -> bool:
    for n in ast.walk(loop):
        if isinstance(n, ast.Call) and isinstance(n.func, ast.Attribute) and n.func.attr in ("backward", "step", "zero_grad"):
            return True
    return False


def _is_training_loop(index: ModuleIndex, loop: ast.AST) -> bool:
    if _has_training_calls(loop):
        return True
    header = loop.iter if isinstance(loop, (ast.For, ast.AsyncFor)) else loop.test  # type: ignore[attr-defined]
    return bool(_TRAIN_ITER.search(ast.unparse(header)))


# --------------------------------------------------------------------------
# Facts for the synthetic data


def guess_setup(index: ModuleIndex, model_class: str | None = None) -> Setup:
    """Sample shape and label kind from what the file shows (used when the shape analysis has nothing)."""
    setup = Setup()
    for node in ast.walk(index.tree):
        if isinstance(node, ast.Call):
            q = index.qualname(node.func) or ""
            short = q.rsplit(".", 1)[-1]
            if q.startswith("torchvision.datasets.") and short in DATASET_SHAPES and setup.input_shape is None:
                setup.input_shape = list(DATASET_SHAPES[short])
                setup.notes.append(f"input shape from {short}")
            if q.startswith("torch.nn.") or q.startswith("torch.nn.functional."):
                if short in _LOSS_FLOAT:
                    setup.label_kind = "float"
                elif short in _LOSS_INDEX:
                    setup.label_kind = "index"
    if setup.input_shape is None:
        known = _analysed_input(index, model_class)
        if known is not None:
            setup.input_shape = known
            setup.notes.append("input shape from the shape analysis")
    if setup.input_shape is None:
        first = first_layer(index, model_class)
        if first is not None:
            setup.input_shape = first
            setup.guessed = True
            setup.notes.append("input shape from the model's first layer")
    if setup.label_kind == "float":
        last = last_linear_out(index, model_class)
        setup.label_shape = [last] if last else None
    return setup


def _analysed_input(index: ModuleIndex, model_class: str | None) -> list[int] | None:
    """A model's per-sample input shape as the shape analysis found it in the file (not synthesized)."""
    try:
        from torchlint.shapes import analyze_module

        report = analyze_module(index.source)
    except Exception:  # noqa: BLE001 - no analysis, no shape
        return None
    for model in report.models:
        if model_class is not None and model.name != model_class:
            continue
        ev = model.input
        if ev is not None and getattr(ev, "dtype", "float") != "long":
            shape = ev.concrete()
            return list(shape[1:]) if len(shape) > 1 else None
    return None


def _layer_calls(index: ModuleIndex, model_class: str | None) -> list[ast.Call]:
    scope: list[ast.AST] = []
    if model_class and model_class in index.classes:
        scope = [index.classes[model_class]]
    else:
        scope = [index.classes[c] for c in index.module_classes()] or [index.tree]
    calls = []
    for s in scope:
        for n in ast.walk(s):
            if isinstance(n, ast.Call) and (index.qualname(n.func) or "").startswith("torch.nn."):
                calls.append(n)
    calls.sort(key=lambda c: (c.lineno, c.col_offset))
    return calls


def _int_arg(call: ast.Call, pos: int, kw: str) -> int | None:
    value = None
    if len(call.args) > pos:
        value = call.args[pos]
    for k in call.keywords:
        if k.arg == kw:
            value = k.value
    if isinstance(value, ast.Constant) and isinstance(value.value, int):
        return value.value
    if isinstance(value, ast.BinOp):
        try:
            v = eval(compile(ast.Expression(value), "<shape>", "eval"), {"__builtins__": {}})  # noqa: S307 - literal arithmetic only
        except Exception:  # noqa: BLE001
            return None
        return v if isinstance(v, int) else None
    return None


def first_layer(index: ModuleIndex, model_class: str | None = None) -> list[int] | None:
    for call in _layer_calls(index, model_class):
        short = (index.qualname(call.func) or "").rsplit(".", 1)[-1]
        if short == "Conv2d":
            c = _int_arg(call, 0, "in_channels")
            if c is not None:
                return [c, 28, 28] if c == 1 else [c, 32, 32]
            return None
        if short == "Conv1d":
            c = _int_arg(call, 0, "in_channels")
            return [c, 64] if c is not None else None
        if short == "Linear":
            n = _int_arg(call, 0, "in_features")
            if n == 784:
                return [1, 28, 28]
            if n == 3072:
                return [3, 32, 32]
            return [n] if n is not None else None
        if short in ("Flatten",):
            continue
        if short in ("Embedding", "LSTM", "GRU", "RNN", "Conv3d"):
            return None
    return None


def last_linear_out(index: ModuleIndex, model_class: str | None = None) -> int | None:
    last = None
    for call in _layer_calls(index, model_class):
        if (index.qualname(call.func) or "").endswith(".Linear"):
            last = _int_arg(call, 1, "out_features")
    return last
