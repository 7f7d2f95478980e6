from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, Optional

import libcst as cst

from torchlint.rules.base import FixSpec, Invalid, Replace, Rule

# What a name (or ``self.attr``) is bound to, as far as this rule cares:
#   "iter"        iter(x) / x.__iter__(): an iterator unless x's class hands out
#                 an object of its own, which may define next()
#   "loader-iter" iter(DataLoader(...)): a torch DataLoader iterator, never has next()
#   "builtin"     map/zip/enumerate/filter, iter(f, sentinel), a generator
#                 expression, an itertools iterator: builtin types without next()
#   "loader"      a DataLoader itself (remembered so that iter(loader) is "loader-iter")
#   None          anything else, or bound in more than one way
Kind = Optional[Literal["iter", "loader-iter", "builtin", "loader"]]

_DATALOADERS = frozenset({"torch.utils.data.DataLoader", "torch.utils.data.dataloader.DataLoader"})
_BUILTIN_ITERATORS = frozenset({"builtins.map", "builtins.zip", "builtins.filter", "builtins.enumerate"})
_ITERTOOLS = frozenset(
    {
        "accumulate", "batched", "chain", "chain.from_iterable", "combinations", "combinations_with_replacement",
        "compress", "count", "cycle", "dropwhile", "filterfalse", "groupby", "islice", "pairwise",
        "permutations", "product", "repeat", "starmap", "takewhile", "zip_longest",
    }
)  # fmt: skip
_ITERATOR_KINDS = ("iter", "loader-iter", "builtin")


@dataclass
class _Scope:
    parent: "_Scope | None"
    kinds: dict[str, Kind] = field(default_factory=dict)

    def bind(self, name: str, kind: Kind) -> None:
        _merge(self.kinds, name, kind)

    def kind(self, name: str) -> Kind:
        scope: _Scope | None = self
        while scope is not None:
            if name in scope.kinds:
                return scope.kinds[name]
            scope = scope.parent
        return None


def _merge(table: dict[str, Kind], key: str, kind: Kind) -> None:
    table[key] = kind if key not in table or table[key] == kind else None


@dataclass
class _Frame:
    """A function being visited: its scope and, in a method, the name of ``self``."""

    scope: _Scope
    self_name: str | None
    is_class: bool = False
    # The attributes the enclosing class's own methods assign on self.
    own_attrs: set[str] | None = None


@dataclass
class _Candidate:
    call: cst.Call
    # The receiver is a plain name, ``self.<attr>`` in a method, or an expression.
    name: str | None
    attr: str | None
    scope: _Scope
    # The fix is offered only where ``next`` is the builtin at the call.
    next_is_builtin: bool
    # For an expression receiver (``iter(loader).next()``): its kind, read at the call.
    kind: Kind = None
    # For ``self.<attr>``: what the class of the method assigns on self.
    own_attrs: set[str] | None = None


class IteratorNextMethod(Rule):
    """
    ## What it does
    Checks for `.next()` called on an iterator, such as the one returned by
    `iter(dataloader)`, including one kept in an attribute (`self.it = iter(loader)`)
    and the builtin iterators `map`, `zip`, `enumerate`, `filter`, generator
    expressions and `itertools` produce.

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
    meant to call. No fix is offered where the name `next` is rebound at the call.
    The rule stays silent on objects whose own class defines `next` (by `def next`
    or `next = __next__`): when a class in the file does, `iter(x).next()` is only
    flagged where `x` is known to be a DataLoader. It also stays silent when a name
    or attribute is bound to anything other than an iterator anywhere in its scope.
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
        # A Python 2/3 compatible iterator class aliases next to __next__.
        "class Rows:\n    def __iter__(self):\n        return self\n    def __next__(self):\n        return 1\n    next = __next__\n\nit = iter(Rows())\nit.next()\n",
        # iter is the user's own function here.
        "def iter(x):\n    return x.cursor()\n\nc = iter(db)\nc.next()\n",
        # The attribute is also set to something that is not an iterator.
        "class T:\n    def __init__(self, loader):\n        self.it = iter(loader)\n    def reset(self, src):\n        self.it = src\n    def step(self):\n        return self.it.next()\n",
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
        Invalid(
            "class Trainer:\n    def __init__(self, loader):\n        self.it = iter(loader)\n    def batch(self):\n        return self.it.next()\n",
            "class Trainer:\n    def __init__(self, loader):\n        self.it = iter(loader)\n    def batch(self):\n        return next(self.it)\n",
        ),
        Invalid(
            "import itertools\nbatches = itertools.cycle(loader)\nx = batches.next()\n",
            "import itertools\nbatches = itertools.cycle(loader)\nx = next(batches)\n",
        ),
        Invalid(
            "pairs = zip(images, labels)\nfirst = pairs.next()\n",
            "pairs = zip(images, labels)\nfirst = next(pairs)\n",
        ),
        # ``next`` is a local variable in this function: reported without a fix.
        Invalid("def f(loader):\n    it = iter(loader)\n    next = 0\n    return it.next()\n"),
    ]

    def __init__(self, context) -> None:
        super().__init__(context)
        self._frames: list[_Frame] = [_Frame(_Scope(None), None)]
        self._attrs: dict[str, Kind] = {}
        self._candidates: list[_Candidate] = []
        self._classes_define_next = False

    @property
    def _scope(self) -> _Scope:
        return self._frames[-1].scope

    # -- scopes and bindings --
    def visit_ClassDef(self, node: cst.ClassDef) -> None:
        body = node.body.body if isinstance(node.body, cst.IndentedBlock) else node.body.body
        for stmt in body:
            if isinstance(stmt, cst.FunctionDef):
                if stmt.name.value == "next":
                    self._classes_define_next = True
                # A method or property of that name: ``self.<name>`` is not our iterator.
                _merge(self._attrs, stmt.name.value, None)
            small = stmt.body if isinstance(stmt, cst.SimpleStatementLine) else ()
            for s in small:
                targets = [t.target for t in s.targets] if isinstance(s, cst.Assign) else [s.target] if isinstance(s, cst.AnnAssign) else []
                if any(isinstance(t, cst.Name) and t.value == "next" for t in targets):
                    self._classes_define_next = True
        # A class body is a scope of its own that its methods do not see; its
        # frame also tells visit_FunctionDef that the functions inside are methods.
        self._frames.append(_Frame(_Scope(self._scope), None, is_class=True, own_attrs=set()))

    def leave_ClassDef(self, node: cst.ClassDef) -> None:
        self._frames.pop()

    def visit_FunctionDef(self, node: cst.FunctionDef) -> None:
        outer = self._frames[-1]
        params = node.params
        names = [p.name.value for p in (*params.posonly_params, *params.params, *params.kwonly_params)]
        for star in (params.star_arg, params.star_kwarg):
            if isinstance(star, cst.Param):
                names.append(star.name.value)
        if outer.is_class:
            ordinary = (*params.posonly_params, *params.params)
            is_static = any(_decorator_name(d) == "staticmethod" for d in node.decorators)
            self_name = ordinary[0].name.value if ordinary and not is_static else None
        else:
            # A closure inside a method still sees the method's self unless it rebinds it.
            self_name = outer.self_name if outer.self_name not in names else None
        scope = _Scope(outer.scope.parent if outer.is_class else outer.scope)
        for name in names:
            scope.bind(name, None)
        self._frames.append(_Frame(scope, self_name, own_attrs=outer.own_attrs if self_name else None))

    def leave_FunctionDef(self, node: cst.FunctionDef) -> None:
        self._frames.pop()

    def visit_Assign(self, node: cst.Assign) -> None:
        kind = self._kind_of(node.value)
        for target in node.targets:
            simple = isinstance(target.target, (cst.Name, cst.Attribute))
            self._bind_target(target.target, kind if simple else None)

    def visit_AnnAssign(self, node: cst.AnnAssign) -> None:
        self._bind_target(node.target, None if node.value is None else self._kind_of(node.value))

    def visit_AugAssign(self, node: cst.AugAssign) -> None:
        self._bind_target(node.target, None)

    def visit_For(self, node: cst.For) -> None:
        self._bind_target(node.target, None)

    def visit_WithItem(self, node: cst.WithItem) -> None:
        if node.asname is not None:
            self._bind_target(node.asname.name, None)

    def _bind_target(self, target: cst.BaseExpression, kind: Kind) -> None:
        frame = self._frames[-1]
        if isinstance(target, cst.Name):
            self._scope.bind(target.value, kind)
            if frame.is_class:
                # A class attribute is what ``self.<name>`` finds when no instance attribute hides it.
                _merge(self._attrs, target.value, kind)
        elif isinstance(target, cst.Attribute):
            # Any ``<obj>.attr = ...`` counts, whoever obj is: an attribute is only
            # trusted when every assignment to that name in the file agrees.
            _merge(self._attrs, target.attr.value, kind)
            if (
                frame.own_attrs is not None
                and isinstance(target.value, cst.Name)
                and target.value.value == frame.self_name
            ):
                frame.own_attrs.add(target.attr.value)
        elif isinstance(target, (cst.Tuple, cst.List)):
            for el in target.elements:
                self._bind_target(el.value, None)
        elif isinstance(target, cst.StarredElement):
            self._bind_target(target.value, None)

    # -- the calls --
    def visit_Call(self, node: cst.Call) -> None:
        func = node.func
        if not (isinstance(func, cst.Attribute) and func.attr.value == "next") or node.args:
            return
        receiver = func.value
        next_is_builtin = self.context.names.lookup("next") == "builtins.next"
        self_name = self._frames[-1].self_name
        if isinstance(receiver, cst.Name):
            self._candidates.append(_Candidate(node, receiver.value, None, self._scope, next_is_builtin))
        elif (
            isinstance(receiver, cst.Attribute)
            and isinstance(receiver.value, cst.Name)
            and self_name is not None
            and receiver.value.value == self_name
        ):
            self._candidates.append(
                _Candidate(node, None, receiver.attr.value, self._scope, next_is_builtin, own_attrs=self._frames[-1].own_attrs)
            )
        else:
            kind = self._kind_of(receiver)
            if kind in _ITERATOR_KINDS:
                self._candidates.append(_Candidate(node, None, None, self._scope, next_is_builtin, kind))

    def leave_Module(self, node: cst.Module) -> None:
        # Bindings are read flow-insensitively, so decide once every scope is complete.
        for cand in self._candidates:
            receiver = cand.call.func.value  # type: ignore[attr-defined]
            if cand.name is not None:
                kind = cand.scope.kind(cand.name)
            elif cand.attr is not None:
                # Only attributes the method's own class sets: one a base class from
                # elsewhere sets may be anything.
                own = cand.own_attrs is not None and cand.attr in cand.own_attrs
                kind = self._attrs.get(cand.attr) if own else None
            else:
                kind = cand.kind
            if kind not in _ITERATOR_KINDS:
                continue
            if kind == "iter" and self._classes_define_next:
                # A class here defines next(): iter(x) may well return one of them.
                continue
            text = self.context.code(receiver)
            fix = None
            if cand.next_is_builtin:
                fix = FixSpec(
                    f"Replace `{text}.next()` with `next({text})`",
                    (Replace(cand.call, cand.call.with_changes(func=cst.Name("next"), args=[cst.Arg(receiver)])),),
                )
            self.report(cand.call, self.message.format(receiver=text), fix=fix)

    def _kind_of(self, expr: cst.BaseExpression) -> Kind:
        if isinstance(expr, cst.GeneratorExp):
            return "builtin"
        if not isinstance(expr, cst.Call):
            return None
        func = expr.func
        qualname = self.context.qualname(func)
        if qualname == "builtins.iter":
            if len(expr.args) == 2:
                return "builtin"  # iter(callable, sentinel)
            if len(expr.args) == 1 and not expr.args[0].star:
                return "loader-iter" if self._is_dataloader(expr.args[0].value) else "iter"
            return None
        if qualname in _BUILTIN_ITERATORS:
            return "builtin"
        if qualname is not None and qualname.startswith("itertools.") and qualname[len("itertools."):] in _ITERTOOLS:
            return "builtin"
        if qualname in _DATALOADERS:
            return "loader"
        if isinstance(func, cst.Attribute) and func.attr.value == "__iter__" and not expr.args:
            return "loader-iter" if self._is_dataloader(func.value) else "iter"
        return None

    def _is_dataloader(self, expr: cst.BaseExpression) -> bool:
        if isinstance(expr, cst.Call):
            return self.context.qualname(expr.func) in _DATALOADERS
        if isinstance(expr, cst.Name):
            # As bound so far: a DataLoader rebound later to something else is not followed.
            return self._scope.kind(expr.value) == "loader"
        return False


def _decorator_name(decorator: cst.Decorator) -> str | None:
    dec = decorator.decorator
    return dec.value if isinstance(dec, cst.Name) else None
