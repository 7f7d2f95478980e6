from __future__ import annotations

import libcst as cst

from torchlint.walk import children as _children

from torchlint.analysis.model import program_model
from torchlint.analysis.values import TensorV
from torchlint.rules.base import FixSpec, Invalid, Replace, Rule

_NO_GRAPH = ("no_grad", "inference_mode")
# Uses of the accumulator after which a plain float is just as good (the fix is then safe).
_NUMERIC_USES = frozenset({"print", "float", "str", "round", "format"})


_CLASS = object()  # a class body: code the model does not run as such


class LossAccumulatesGraph(Rule):
    """
    ## What it does
    Checks for a loss (a tensor that carries an autograd graph: a loss
    function's result, a model's output) added to an accumulator that lives
    across the iterations of a loop, `total_loss += loss`, or appended to a
    list, `losses.append(loss)`, without `.item()` or `.detach()`.

    The rule is silent when the accumulator is rebound in the same loop (it
    holds one iteration only), when the accumulated value is meant to carry the
    graph (the accumulator, or a value computed from it, reaches `backward()`
    or `torch.autograd.grad`, or is returned), under `torch.no_grad()` or
    `torch.inference_mode()`, and whenever the program model does not know that
    the added value carries a graph. For `append`, the appended expression must
    mention a loss.

    ## Why is this bad?
    Adding a tensor that has a `grad_fn` makes the sum a node of the same
    graph: every iteration's graph (and the activations it saved) stays alive
    as long as the accumulator does. Memory grows with every batch until the
    epoch ends or the process runs out of memory, although the total is only
    ever read as a number.

    ## Example
    ```python
    running_loss = 0.0
    for x, y in loader:
        loss = criterion(model(x), y)
        loss.backward()
        optimizer.step()
        running_loss += loss
    ```

    ## Use instead
    ```python
    running_loss = 0.0
    for x, y in loader:
        loss = criterion(model(x), y)
        loss.backward()
        optimizer.step()
        running_loss += loss.item()
    ```

    ## Fix safety
    The fix adds `.item()`. It is safe when the accumulator is otherwise only
    printed or converted (`print`, an f-string, `float`, `str`, `round`):
    then a Python float serves the same. Otherwise it is unsafe: code that
    later uses the accumulator as a tensor (`total.item()`, `total.cpu()`)
    would break on a float.
    """

    code = "TL102"
    incremental = True  # findings depend on the statements linked to theirs (torchlint/slices.py)
    name = "loss-accumulates-graph"
    message = "`{text}` keeps every iteration's autograd graph alive: `{value}` carries a graph; accumulate `{value}.item()` (or `.detach()`)"
    triggers = ("+=", ".append(")
    confirmable = True

    VALID = [
        "total = 0.0\nfor x, y in loader:\n    loss = criterion(model(x), y)\n    loss.backward()\n    total += loss.item()\n",
        "total = 0.0\nfor x, y in loader:\n    loss = criterion(model(x), y)\n    loss.backward()\n    total += loss.detach()\n",
        # The sum is what backward() is called on (an RNN's loss over time steps).
        "loss = 0\nfor t in range(steps):\n    loss += criterion(model(x[t]), y[t])\nloss.backward()\n",
        # Evaluation under no_grad builds no graph.
        "import torch\ntotal = 0\nwith torch.no_grad():\n    for x, y in loader:\n        total += criterion(model(x), y)\n",
        # The accumulator is rebound every iteration.
        "for x, y in loader:\n    total = 0\n    total += criterion(model(x), y)\n    total.backward()\n",
        # The losses are stacked and backpropagated together.
        "import torch\nlosses = []\nfor x, y in loader:\n    losses.append(criterion(model(x), y))\ntorch.stack(losses).mean().backward()\n",
    ]
    INVALID = [
        Invalid(
            "running_loss = 0.0\nfor x, y in loader:\n    loss = criterion(model(x), y)\n    loss.backward()\n    running_loss += loss\nprint(running_loss)\n",
            "running_loss = 0.0\nfor x, y in loader:\n    loss = criterion(model(x), y)\n    loss.backward()\n    running_loss += loss.item()\nprint(running_loss)\n",
        ),
        Invalid(
            "history = []\nfor x, y in loader:\n    loss = criterion(model(x), y)\n    loss.backward()\n    history.append(loss)\n",
            "history = []\nfor x, y in loader:\n    loss = criterion(model(x), y)\n    loss.backward()\n    history.append(loss.item())\n",
        ),
        Invalid(
            "import torch.nn.functional as F\nepoch_loss = 0\nfor x, y in loader:\n    out = model(x)\n    loss = F.cross_entropy(out, y)\n    loss.backward()\n    epoch_loss += loss * x.size(0)\n",
            "import torch.nn.functional as F\nepoch_loss = 0\nfor x, y in loader:\n    out = model(x)\n    loss = F.cross_entropy(out, y)\n    loss.backward()\n    epoch_loss += (loss * x.size(0)).item()\n",
        ),
    ]

    @classmethod
    def applies_to(cls, source: str) -> bool:
        # The candidates that need no model, judged on CPython's tree (shared with the other pre-checks).
        from torchlint.incremental import python_ast
        from torchlint.gates import may_carry_graph
        from torchlint.rules._accumulator_candidates import may_report

        try:
            tree = python_ast(source, keep=True)
        except (SyntaxError, ValueError, RecursionError, MemoryError):
            return True
        # ... and something that makes a tensor carrying a graph (a module or a loss called).
        return may_report(tree, source) and may_carry_graph(source)

    def __init__(self, context) -> None:
        super().__init__(context)
        self._loops = 0
        self._candidates: list[tuple[cst.CSTNode, cst.BaseExpression, str]] = []  # (node, added value, accumulator)
        # Where each candidate is, as the program model will see it (to drop, before building the
        # model, the candidates it would drop for reasons that need no model): the enclosing def
        # (None: the module; _CLASS: a class body) and its loops, each with "inside its body".
        self._frames: list[tuple[object, list[list]]] = [(None, [])]
        self._where: dict[int, tuple[object, cst.CSTNode | None]] = {}

    def visit_For(self, node: cst.For) -> None:
        self._loops += 1
        self._frames[-1][1].append([node, False])

    def leave_For(self, node: cst.For) -> None:
        self._loops -= 1
        self._frames[-1][1].pop()

    visit_While = visit_For  # type: ignore[assignment]
    leave_While = leave_For  # type: ignore[assignment]

    def visit_FunctionDef(self, node: cst.FunctionDef) -> None:
        self._frames.append((node, []))

    def leave_FunctionDef(self, node: cst.FunctionDef) -> None:
        self._frames.pop()

    def visit_ClassDef(self, node: cst.ClassDef) -> None:
        self._frames.append((_CLASS, []))

    def leave_ClassDef(self, node: cst.ClassDef) -> None:
        self._frames.pop()

    def _block(self, node: cst.CSTNode, inside: bool) -> None:
        loops = self._frames[-1][1]
        if loops and loops[-1][0].body is node:
            loops[-1][1] = inside

    def visit_IndentedBlock(self, node: cst.IndentedBlock) -> None:
        self._block(node, True)

    def leave_IndentedBlock(self, node: cst.IndentedBlock) -> None:
        self._block(node, False)

    visit_SimpleStatementSuite = visit_IndentedBlock  # type: ignore[assignment]
    leave_SimpleStatementSuite = leave_IndentedBlock  # type: ignore[assignment]

    def _note(self, node: cst.CSTNode) -> None:
        func, loops = self._frames[-1]
        # Only in a loop's body (not its iterable, test or else) of a def or the module is the
        # innermost loop the one the model records.
        self._where[id(node)] = (func, loops[-1][0] if loops and loops[-1][1] and func is not _CLASS else None)

    def visit_AugAssign(self, node: cst.AugAssign) -> None:
        if self._loops and isinstance(node.operator, cst.AddAssign) and isinstance(node.target, cst.Name):
            self._candidates.append((node, node.value, node.target.value))
            self._note(node)

    def visit_Call(self, node: cst.Call) -> None:
        func = node.func
        if (
            self._loops and isinstance(func, cst.Attribute) and func.attr.value == "append"
            and isinstance(func.value, cst.Name) and len(node.args) == 1 and node.args[0].keyword is None
            and "loss" in self.context.code(node.args[0].value).lower()
        ):
            self._candidates.append((node, node.args[0].value, func.value.value))
            self._note(node)

    def leave_Module(self, node: cst.Module) -> None:
        # What needs no model first: an accumulator rebound in its loop, or one that feeds a
        # graph, is never reported (the same checks as below, on the same loop and scope).
        kept = []
        judged: dict[tuple[int, int, str], bool] = {}
        for stmt, value_node, acc in self._candidates:
            if _never_a_tensor(value_node):
                continue  # `count += 1`, `total += loss.item()`: no graph whatever the model says
            func, loop = self._where.get(id(stmt), (None, None))
            if loop is not None:
                scope = func if func is not None else node
                key = (id(loop), id(scope), acc)
                silent = judged.get(key)
                if silent is None:
                    silent = judged[key] = _rebound_in(loop, acc) or _feeds_graph(scope, acc)  # type: ignore[arg-type]
                if silent:
                    continue
            kept.append((stmt, value_node, acc))
        self._candidates = kept
        if not self._candidates:
            return
        model = program_model(self.context)
        for stmt, value_node, acc in self._candidates:
            fact = model.update(stmt) if isinstance(stmt, cst.AugAssign) else model.fact(stmt)  # type: ignore[arg-type]
            if fact is None or not fact.loops or fact.grad_mode in _NO_GRAPH:
                continue
            value = fact.value if isinstance(stmt, cst.AugAssign) else fact.args[0]  # type: ignore[union-attr]
            if not (isinstance(value, TensorV) and value.grad is True):
                continue  # not known to carry a graph
            scope = fact.function if fact.function is not None else model.module
            if _rebound_in(fact.loops[-1], acc) or _feeds_graph(scope, acc):
                continue
            self._report(stmt, value_node, acc, scope)

    def _report(self, stmt: cst.CSTNode, value_node: cst.BaseExpression, acc: str, scope: cst.CSTNode) -> None:
        simple = isinstance(value_node, (cst.Name, cst.Attribute, cst.Call, cst.Subscript))
        value_text = self.context.code(value_node)
        new = f"{value_text}.item()" if simple else f"({value_text}).item()"
        safe = _numeric_only(scope, acc, stmt)
        fix = FixSpec(f"Accumulate `{new}`", (Replace(value_node, new),), "safe" if safe else "unsafe")
        text = f"{acc} += {value_text}" if isinstance(stmt, cst.AugAssign) else f"{acc}.append({value_text})"
        shown = value_text if len(value_text) <= 30 else "the loss"
        self.report(stmt, self.message.format(text=text if len(text) <= 50 else f"{acc} += ...", value=shown), fix=fix, data={"accumulator": acc})


def _names(node: cst.CSTNode) -> set[str]:
    out: set[str] = set()
    stack = [node]
    while stack:
        cur = stack.pop()
        if isinstance(cur, cst.Name):
            out.add(cur.value)
        stack.extend(_children(cur))
    return out


def _walk(node: cst.CSTNode):
    stack = [node]
    while stack:
        cur = stack.pop()
        yield cur
        stack.extend(_children(cur))


_LITERALS = (cst.Integer, cst.Float, cst.Imaginary, cst.SimpleString, cst.ConcatenatedString, cst.FormattedString,
             cst.List, cst.Tuple, cst.Dict, cst.Set, cst.ListComp, cst.SetComp, cst.DictComp)  # fmt: skip
_TO_PYTHON = frozenset({"item", "tolist"})


def _never_a_tensor(value: cst.BaseExpression) -> bool:
    """A literal or a tensor turned into Python numbers: never a tensor that carries a graph."""
    if isinstance(value, cst.UnaryOperation):
        value = value.expression
    if isinstance(value, _LITERALS):
        return True
    return (
        isinstance(value, cst.Call) and isinstance(value.func, cst.Attribute)
        and value.func.attr.value in _TO_PYTHON and not value.args
    )  # fmt: skip


def _rebound_in(loop: cst.CSTNode, acc: str) -> bool:
    """A plain ``acc = ...`` in the loop: each iteration starts a new accumulator."""
    for cur in _walk(loop.body):  # type: ignore[attr-defined]
        if isinstance(cur, cst.Assign) and any(isinstance(t.target, cst.Name) and t.target.value == acc for t in cur.targets):
            return True
    return False


def _feeds_graph(scope: cst.CSTNode, acc: str) -> bool:
    """Does ``acc`` (or a name computed from it) reach backward(), autograd.grad, a return or a yield?"""
    derived = {acc}
    stmts = [n for n in _walk(scope) if isinstance(n, (cst.SimpleStatementLine, cst.Return))]
    for _ in range(3):  # names computed from names computed from acc
        for line in stmts:
            for small in getattr(line, "body", ()):
                if isinstance(small, cst.Assign) and _names(small.value) & derived:
                    derived |= {t.target.value for t in small.targets if isinstance(t.target, cst.Name)}
    for line in stmts:
        names = _names(line)
        if not names & derived:
            continue
        for cur in _walk(line):
            if isinstance(cur, (cst.Return, cst.Yield)):
                return True
            if isinstance(cur, cst.Call):
                func = cur.func
                name = func.attr.value if isinstance(func, cst.Attribute) else func.value if isinstance(func, cst.Name) else ""
                if name in ("backward", "grad", "manual_backward"):
                    return True
    return False


def _numeric_only(scope: cst.CSTNode, acc: str, stmt: cst.CSTNode) -> bool:
    """Is every other read of ``acc`` inside print/float/str/round/format or an f-string?"""
    allowed: set[int] = set()
    for cur in _walk(scope):
        if cur is stmt:
            allowed |= {id(n) for n in _walk(cur)}
        elif isinstance(cur, cst.FormattedStringExpression):
            allowed |= {id(n) for n in _walk(cur)}
        elif isinstance(cur, cst.Call) and isinstance(cur.func, cst.Name) and cur.func.value in _NUMERIC_USES:
            allowed |= {id(n) for a in cur.args for n in _walk(a)}
        elif isinstance(cur, (cst.Assign, cst.AugAssign)):
            targets = cur.targets if isinstance(cur, cst.Assign) else [cur]
            for t in targets:
                if isinstance(t.target, cst.Name) and t.target.value == acc:
                    allowed.add(id(t.target))
    for cur in _walk(scope):
        if isinstance(cur, cst.Name) and cur.value == acc and id(cur) not in allowed:
            return False
    return True
