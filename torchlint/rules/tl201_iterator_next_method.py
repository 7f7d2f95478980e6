from __future__ import annotations

from dataclasses import dataclass, field

import libcst as cst

from torchlint.rules.base import FixSpec, Invalid, Replace, Rule


@dataclass
class _Scope:
    parent: "_Scope | None"
    # name -> True while every binding seen is an iterator, False once any is not
    iterators: dict[str, bool] = field(default_factory=dict)

    def bind(self, name: str, is_iterator: bool) -> None:
        self.iterators[name] = self.iterators.get(name, True) and is_iterator

    def is_iterator(self, name: str) -> bool:
        scope: _Scope | None = self
        while scope is not None:
            if name in scope.iterators:
                return scope.iterators[name]
            scope = scope.parent
        return False


class IteratorNextMethod(Rule):
    """
    ## What it does
    Checks for `.next()` called on an iterator, such as the one returned by
    `iter(dataloader)`.

    ## Why is this bad?
    `.next()` is the Python 2 iterator protocol. Python 3 iterators, including
    PyTorch's DataLoader iterators, only have `__next__`, so the call raises
    `AttributeError: '_SingleProcessDataLoaderIter' object has no attribute 'next'`.
    Many tutorials written for old PyTorch versions still show it.

    ## Example
    ```python
    dataiter = iter(trainloader)
    images, labels = dataiter.next()
    ```

    ## Use instead
    ```python
    dataiter = iter(trainloader)
    images, labels = next(dataiter)
    ```

    ## Fix safety
    The fix is safe: `next(it)` calls the same `__next__` that `.next()` was
    meant to call. No fix is offered where the name `next` is rebound in the file.
    The rule stays silent on objects whose own class defines `next`.
    """

    code = "TL201"
    name = "iterator-next-method"
    message = "`{receiver}.next()` does not exist on Python 3 iterators; use `next({receiver})`"
    triggers = (".next(",)
    confirmable = True

    VALID = [
        # The built-in, the right way.
        "it = iter(loader)\nbatch = next(it)\n",
        # A class of the user's that defines next(): calling it is fine.
        "class Stream:\n    def next(self):\n        return 1\n\ns = Stream()\ns.next()\n",
        # An iterable whose iterator is itself and defines next().
        "class Cursor:\n    def __iter__(self):\n        return self\n    def next(self):\n        return 1\n\nit = iter(Cursor())\nit.next()\n",
        # Not known to be an iterator.
        "def f(reader):\n    return reader.next()\n",
        # Rebound to something else in the same scope: cannot know.
        "it = iter(loader)\nit = make_reader()\nit.next()\n",
        # A page cursor API that takes arguments is not the iterator protocol.
        "it = iter(pages)\nit.next(10)\n",
    ]
    INVALID = [
        Invalid("dataiter = iter(trainloader)\nimages, labels = dataiter.next()\n",
                "dataiter = iter(trainloader)\nimages, labels = next(dataiter)\n"),
        Invalid("batch = iter(loader).next()\n", "batch = next(iter(loader))\n"),
        Invalid(
            "it = iter(loader)\n\ndef show():\n    x, y = it.next()\n",
            "it = iter(loader)\n\ndef show():\n    x, y = next(it)\n",
        ),
        Invalid(
            "def train(loader):\n    it = loader.__iter__()\n    return it.next()\n",
            "def train(loader):\n    it = loader.__iter__()\n    return next(it)\n",
        ),
    ]

    def __init__(self, context) -> None:
        super().__init__(context)
        self._scope = _Scope(None)
        self._candidates: list[tuple[cst.Call, str | None, _Scope]] = []
        self._classes_define_next = "def next(" in context.source

    # -- scopes and bindings --
    def visit_FunctionDef(self, node: cst.FunctionDef) -> None:
        self._scope = _Scope(self._scope)
        params = node.params
        for p in (*params.posonly_params, *params.params, *params.kwonly_params):
            self._scope.bind(p.name.value, False)

    def leave_FunctionDef(self, node: cst.FunctionDef) -> None:
        assert self._scope.parent is not None
        self._scope = self._scope.parent

    def visit_Assign(self, node: cst.Assign) -> None:
        is_iter = self._is_iterator_expr(node.value)
        for target in node.targets:
            for name in _names(target.target):
                self._scope.bind(name, is_iter and isinstance(target.target, cst.Name))

    def visit_AnnAssign(self, node: cst.AnnAssign) -> None:
        for name in _names(node.target):
            self._scope.bind(name, node.value is not None and self._is_iterator_expr(node.value))

    def visit_AugAssign(self, node: cst.AugAssign) -> None:
        for name in _names(node.target):
            self._scope.bind(name, False)

    def visit_For(self, node: cst.For) -> None:
        for name in _names(node.target):
            self._scope.bind(name, False)

    def visit_WithItem(self, node: cst.WithItem) -> None:
        if node.asname is not None:
            for name in _names(node.asname.name):
                self._scope.bind(name, False)

    # -- the calls --
    def visit_Call(self, node: cst.Call) -> None:
        func = node.func
        if not (isinstance(func, cst.Attribute) and func.attr.value == "next") or node.args:
            return
        receiver = func.value
        if isinstance(receiver, cst.Name):
            self._candidates.append((node, receiver.value, self._scope))
        elif self._is_iterator_expr(receiver):
            self._candidates.append((node, None, self._scope))

    def leave_Module(self, node: cst.Module) -> None:
        # Bindings are read flow-insensitively, so decide once every scope is complete.
        for call, name, scope in self._candidates:
            if name is not None and not scope.is_iterator(name):
                continue
            receiver = call.func.value  # type: ignore[attr-defined]
            if self._classes_define_next and not self._is_dataloader_iterator(receiver, scope):
                continue
            text = self.context.code(receiver)
            fix = None
            if self.context.names.lookup("next") == "builtins.next":
                fix = FixSpec(
                    f"Replace `{text}.next()` with `next({text})`",
                    (Replace(call, call.with_changes(func=cst.Name("next"), args=[cst.Arg(receiver)])),),
                )
            self.report(call, self.message.format(receiver=text), fix=fix)

    def _is_iterator_expr(self, expr: cst.BaseExpression) -> bool:
        if not isinstance(expr, cst.Call):
            return False
        if self.context.qualname(expr.func) == "builtins.iter" and len(expr.args) == 1:
            return True
        func = expr.func
        return isinstance(func, cst.Attribute) and func.attr.value == "__iter__" and not expr.args

    def _is_dataloader_iterator(self, receiver: cst.BaseExpression, scope: _Scope) -> bool:
        # With user classes defining next() in the file, only an iterator over a
        # DataLoader built right there is known not to have .next().
        if isinstance(receiver, cst.Call) and receiver.args:
            arg = receiver.args[0].value
            return isinstance(arg, cst.Call) and (self.context.qualname(arg.func) or "").endswith("DataLoader")
        return False


def _names(target: cst.BaseExpression):
    if isinstance(target, cst.Name):
        yield target.value
    elif isinstance(target, (cst.Tuple, cst.List)):
        for el in target.elements:
            yield from _names(el.value)
    elif isinstance(target, cst.StarredElement):
        yield from _names(target.value)
