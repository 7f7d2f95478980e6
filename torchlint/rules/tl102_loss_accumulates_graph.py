from __future__ import annotations

import libcst as cst

from torchlint.analysis.accumulators import candidate_values, feeds_graph, never_a_tensor, read_as_number_only, rebound_in
from torchlint.analysis.model import program_model
from torchlint.analysis.values import TensorV
from torchlint.rules.base import FixSpec, Invalid, Replace, Rule

_NO_GRAPH = ("no_grad", "inference_mode")


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
        from torchlint.gates import may_carry_graph, may_carry_graph_into

        try:
            tree = python_ast(source, keep=True)
        except (SyntaxError, ValueError, RecursionError, MemoryError):
            return True
        # ... something that makes a tensor carrying a graph (a module or a loss called), and a
        # candidate's value that such a tensor may reach (analysis/value_flows.py).
        values = candidate_values(tree, source)
        return bool(values) and may_carry_graph(source) and may_carry_graph_into(source, values)

    def __init__(self, context) -> None:
        super().__init__(context)
        self._loops = 0
        self._candidates: list[tuple[cst.CSTNode, cst.BaseExpression, str]] = []  # (node, added value, accumulator)

    def visit_For(self, node: cst.For) -> None:
        self._loops += 1

    def leave_For(self, node: cst.For) -> None:
        self._loops -= 1

    visit_While = visit_For  # type: ignore[assignment]
    leave_While = leave_For  # type: ignore[assignment]

    def visit_AugAssign(self, node: cst.AugAssign) -> None:
        if self._loops and isinstance(node.operator, cst.AddAssign) and isinstance(node.target, cst.Name):
            self._candidates.append((node, node.value, node.target.value))

    def visit_Call(self, node: cst.Call) -> None:
        func = node.func
        if (
            self._loops and isinstance(func, cst.Attribute) and func.attr.value == "append"
            and isinstance(func.value, cst.Name) and len(node.args) == 1 and node.args[0].keyword is None
            and "loss" in self.context.code(node.args[0].value).lower()
        ):
            self._candidates.append((node, node.args[0].value, func.value.value))

    def leave_Module(self, node: cst.Module) -> None:
        # `count += 1`, `total += loss.item()`: no graph whatever the model says.
        candidates = [c for c in self._candidates if not never_a_tensor(c[1])]
        if not candidates:
            return
        model = program_model(self.context)
        for stmt, value_node, acc in candidates:
            fact = model.update(stmt) if isinstance(stmt, cst.AugAssign) else model.fact(stmt)  # type: ignore[arg-type]
            if fact is None or not fact.loops or fact.grad_mode in _NO_GRAPH:
                continue
            value = fact.value if isinstance(stmt, cst.AugAssign) else fact.args[0]  # type: ignore[union-attr]
            if not (isinstance(value, TensorV) and value.grad is True):
                continue  # not known to carry a graph
            scope = fact.function if fact.function is not None else model.module
            # An accumulator rebound in its loop holds one iteration; one that feeds a graph is meant to.
            if rebound_in(fact.loops[-1], acc) or feeds_graph(scope, acc):
                continue
            self._report(stmt, value_node, acc, scope)

    def _report(self, stmt: cst.CSTNode, value_node: cst.BaseExpression, acc: str, scope: cst.CSTNode) -> None:
        simple = isinstance(value_node, (cst.Name, cst.Attribute, cst.Call, cst.Subscript))
        value_text = self.context.code(value_node)
        new = f"{value_text}.item()" if simple else f"({value_text}).item()"
        safe = read_as_number_only(scope, acc, stmt)
        fix = FixSpec(f"Accumulate `{new}`", (Replace(value_node, new),), "safe" if safe else "unsafe")
        text = f"{acc} += {value_text}" if isinstance(stmt, cst.AugAssign) else f"{acc}.append({value_text})"
        shown = value_text if len(value_text) <= 30 else "the loss"
        self.report(stmt, self.message.format(text=text if len(text) <= 50 else f"{acc} += ...", value=shown), fix=fix, data={"accumulator": acc})

