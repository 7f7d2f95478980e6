from __future__ import annotations

import re

import libcst as cst

from torchlint.analysis.model import program_model
from torchlint.analysis.values import IteratorV, LoaderV
from torchlint.gates import may_call_next_on_iterator
from torchlint.rules.base import FixSpec, Invalid, Replace, Rule


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
    incremental = True  # findings depend on the statements linked to theirs (torchlint/slices.py)

    @classmethod
    def file_facts(cls, source: str) -> object:
        # Whether a class of the file defines next(): when the text could say so, any edit
        # may change it (the whole text is the fact); else it is False whatever the edit.
        return source if _may_define_next(source) else None
    name = "iterator-next-method"
    message = "`{receiver}.next()` does not exist on Python 3 iterators; use `next({receiver})`"
    triggers = (".next(",)

    @classmethod
    def applies_to(cls, source: str) -> bool:
        return may_call_next_on_iterator(source)  # on a value that may be an iterator (analysis/value_flows.py)
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
        # (the call, whether ``next`` is the builtin where it is written)
        self._candidates: list[tuple[cst.Call, bool]] = []

    def visit_Call(self, node: cst.Call) -> None:
        func = node.func
        if isinstance(func, cst.Attribute) and func.attr.value == "next" and not node.args:
            self._candidates.append((node, self.context.names.lookup("next") == "builtins.next"))

    def leave_Module(self, node: cst.Module) -> None:
        if not self._candidates:
            return
        model = program_model(self.context)
        own_next = self._own_next(model)
        for call, next_is_builtin in self._candidates:
            fact = model.fact(call)
            it = None if fact is None else fact.receiver
            if not isinstance(it, IteratorV):
                continue
            # iter(x) of something that is not a torch DataLoader may be an object of
            # this file's classes, one of which defines next(): then it is left alone.
            loader = isinstance(it.over, LoaderV) and it.over.declared
            if not (it.builtin or loader) and own_next:
                continue
            receiver = call.func.value  # type: ignore[attr-defined]
            text = self.context.code(receiver)
            fix = None
            if next_is_builtin:
                fix = FixSpec(
                    f"Replace `{text}.next()` with `next({text})`",
                    (Replace(call, call.with_changes(func=cst.Name("next"), args=[cst.Arg(receiver)])),),
                )
            self.report(call, self.message.format(receiver=text), fix=fix)

    def _own_next(self, model) -> bool:
        """Does one of the file's classes (the model's: the first of each name) define ``next``?"""
        context = self.context
        if context.file_source is context.source:
            return any(_defines_next(cls) for cls in model.classes.values())
        # A slice of the file (torchlint/slices.py): the question is about the whole file.
        if not _may_define_next(context.file_source):
            return False
        from torchlint.analysis.tables import FileTables
        from torchlint.names import NameResolver

        module = cst.parse_module(context.file_source)
        classes: dict[str, cst.ClassDef] = {}
        tables = FileTables(module, NameResolver(module))
        for info in tables.classes:  # the model's: the first of each name
            classes.setdefault(info.name, info.node)
        tables.release_cycles()
        return any(_defines_next(cls) for cls in classes.values())


_NEXT_DEFINITION = re.compile(r"next\s*=(?!=)|def\s+next\b")  # literal first: a fast search


def _may_define_next(source: str) -> bool:
    """Necessary for _defines_next somewhere in the file: ``def next`` or a ``next =`` (not ``x.next =``)."""
    for m in _NEXT_DEFINITION.finditer(source):
        i = m.start()
        if source.startswith("def", i) or i == 0 or not (source[i - 1].isalnum() or source[i - 1] in "_."):
            return True
    return False


def _defines_next(cls: cst.ClassDef) -> bool:
    """``def next`` or ``next = __next__`` in the class body."""
    body = cls.body.body if isinstance(cls.body, cst.IndentedBlock) else ()
    for stmt in body:
        if isinstance(stmt, cst.FunctionDef) and stmt.name.value == "next":
            return True
        if isinstance(stmt, cst.SimpleStatementLine):
            for small in stmt.body:
                if isinstance(small, cst.Assign) and any(
                    isinstance(t.target, cst.Name) and t.target.value == "next" for t in small.targets
                ):
                    return True
    return False
