from __future__ import annotations

import ast

import libcst as cst

from torchlint.analysis.model import program_model
from torchlint.gates import classes_by_name, may_be_torch_module_class, all_statements
from torchlint.analysis.values import ClassV
from torchlint.rules.base import Invalid, Rule
from torchlint.walk import walk

_PARAMETERS = frozenset({"torch.nn.Parameter", "torch.nn.parameter.Parameter"})

# (libcst.matchers is not used here: importing it costs an analysis process a third
# of its start-up, and findall() rebuilds every node it passes.)


def _findall(node: cst.CSTNode, kinds: type | tuple[type, ...]) -> list[cst.CSTNode]:
    """The nodes of these types in ``node``'s subtree (``node`` included), in visiting order."""
    out: list[cst.CSTNode] = []
    walk(node, lambda n: out.append(n) if isinstance(n, kinds) else None, lambda n: None)
    return out


def _is_name(node: cst.CSTNode, name: str) -> bool:
    return isinstance(node, cst.Name) and node.value == name


def _is_self_attribute(node: cst.CSTNode, me: str) -> bool:
    """``self.x``"""
    return isinstance(node, cst.Attribute) and _is_name(node.value, me)


def _is_init_call(node: cst.CSTNode) -> bool:
    """``super().__init__(...)``, ``super(Net, self).__init__()``, ``nn.Module.__init__(self)``, ``Base.__init__(self)``."""
    return any(
        isinstance(c.func, cst.Attribute) and _is_name(c.func.attr, "__init__")  # type: ignore[attr-defined]
        for c in _findall(node, cst.Call)
    )


def _self_target(stmt: cst.CSTNode, me: str) -> cst.BaseExpression | None:
    """The value stored by ``self.x = value`` / ``self.x: T = value`` (None: another statement)."""
    if isinstance(stmt, cst.Assign):
        for t in stmt.targets:
            if _is_self_attribute(t.target, me):
                return stmt.value
    if isinstance(stmt, cst.AnnAssign) and stmt.value is not None and _is_self_attribute(stmt.target, me):
        return stmt.value
    return None


def _passes_self(node: cst.CSTNode, me: str) -> bool:
    # `self.setup()`, `init_weights(self)`: code we do not follow may call Module.__init__.
    for call in _findall(node, cst.Call):
        assert isinstance(call, cst.Call)
        if _is_self_attribute(call.func, me) or any(_is_name(a.value, me) for a in call.args):
            return True
    return False


def _class_inits(tree: ast.Module) -> list[tuple[ast.ClassDef, ast.FunctionDef | ast.AsyncFunctionDef]]:
    """The ``__init__`` methods (with a ``self``) of classes that have bases, anywhere in the file."""
    return [
        (c, s)
        for c in all_statements(tree) if isinstance(c, ast.ClassDef) and c.bases
        for s in c.body if isinstance(s, (ast.FunctionDef, ast.AsyncFunctionDef)) and s.name == "__init__" and s.args.args
    ]  # fmt: skip


def _init_may_store_first(init: ast.FunctionDef | ast.AsyncFunctionDef) -> bool:
    """False only where ``visit_ClassDef`` cannot report: an ``.__init__(...)`` call comes before any
    ``self.x = <call>`` and before anything that hands ``self`` on (which is treated as "may")."""
    me = init.args.args[0].arg
    for stmt in init.body:
        nodes = list(ast.walk(stmt))
        if any(isinstance(n, ast.Call) and isinstance(n.func, ast.Attribute) and n.func.attr == "__init__" for n in nodes):
            return False
        for n in nodes:
            if isinstance(n, ast.Assign) and isinstance(n.value, ast.Call) and any(_ast_self_attr(t, me) for t in n.targets):
                return True
            if isinstance(n, ast.AnnAssign) and isinstance(n.value, ast.Call) and _ast_self_attr(n.target, me):
                return True
            if isinstance(n, ast.Call) and (
                _ast_self_attr(n.func, me)
                or any(_ast_is(a.value if isinstance(a, ast.Starred) else a, me) for a in n.args)
                or any(_ast_is(k.value, me) for k in n.keywords)
            ):
                return True
    return True  # never calls it: the rule judges


def _ast_is(node: ast.AST, name: str) -> bool:
    return isinstance(node, ast.Name) and node.id == name


def _ast_self_attr(node: ast.AST, me: str) -> bool:
    return isinstance(node, ast.Attribute) and _ast_is(node.value, me)


class ModuleMissingSuperInit(Rule):
    """
    ## What it does
    Checks `nn.Module` subclasses (their bases resolved through the imports,
    subclasses of the file's own module classes included) whose `__init__`
    stores a submodule or an `nn.Parameter` on `self` before calling
    `super().__init__()`, or never calls it at all. An `__init__` that hands
    `self` to other code first (`self.setup()`, `init(self)`) is not checked:
    that code may call it.

    ## Why is this bad?
    `nn.Module.__init__` creates the tables (`_parameters`, `_modules`,
    `_buffers`, the hook dictionaries) that `nn.Module.__setattr__` and
    `__call__` use. Storing a layer before it runs raises `AttributeError:
    cannot assign module before Module.__init__() call`; a module that never
    runs it builds, but its first call, `.parameters()` or `.to()` fails with
    `AttributeError: 'Net' object has no attribute '_parameters'`. Plain values
    (`self.hidden = 64`) may be stored before the call.

    ## Example
    ```python
    import torch.nn as nn

    class Net(nn.Module):
        def __init__(self):
            self.fc = nn.Linear(4, 2)
            super().__init__()
    ```

    ## Use instead
    ```python
    import torch.nn as nn

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(4, 2)
    ```

    ## Fix safety
    No fix is offered: where the call belongs, and with which arguments for a
    base class of the file, is the author's choice.
    """

    code = "TL108"
    incremental = True  # findings depend on the statements linked to theirs (torchlint/slices.py)
    name = "module-missing-super-init"
    message = "`nn.Module` subclass stores a layer before calling `super().__init__()`: AttributeError"
    severity = "error"
    confirmable = True
    triggers = ("__init__",)

    VALID = [
        "import torch.nn as nn\n\nclass Net(nn.Module):\n    def __init__(self):\n        super().__init__()\n        self.fc = nn.Linear(4, 2)\n",
        # A plain value first is fine.
        "import torch.nn as nn\n\nclass Net(nn.Module):\n    def __init__(self, h):\n        self.h = h\n        super().__init__()\n        self.fc = nn.Linear(4, h)\n",
        "import torch.nn as nn\n\nclass Net(nn.Module):\n    def __init__(self):\n        nn.Module.__init__(self)\n        self.fc = nn.Linear(4, 2)\n",
        # Not a torch module: a base named Module from elsewhere.
        "from flax import linen as nn\n\nclass Net(nn.Module):\n    def __init__(self):\n        self.fc = nn.Dense(2)\n",
        # A declaration in a stub.
        "import torch.nn as nn\n\nclass Net(nn.Module):\n    def __init__(self, n: int) -> None: ...\n",
        # `self` handed to code we do not see first.
        "import torch.nn as nn\n\nclass Net(nn.Module):\n    def __init__(self):\n        self._setup()\n        self.fc = nn.Linear(4, 2)\n",
    ]
    INVALID = [
        Invalid("import torch.nn as nn\n\nclass Net(nn.Module):\n    def __init__(self):\n        self.fc = nn.Linear(4, 2)\n        super().__init__()\n"),
        Invalid("import torch\n\nclass Net(torch.nn.Module):\n    def __init__(self):\n        self.w = torch.nn.Parameter(torch.zeros(3))\n"),
        Invalid("import torch.nn as nn\n\nclass Base(nn.Module):\n    pass\n\nclass Net(Base):\n    def __init__(self, n):\n        self.n = n\n\n    def forward(self, x):\n        return x * self.n\n"),
    ]

    @classmethod
    def applies_to(cls, source: str) -> bool:
        # Most classes call super().__init__() first: CPython's parser (shared with the
        # engine's statement cut) shows that without a libcst parse.
        from torchlint.incremental import python_ast

        try:
            tree = python_ast(source, keep=True)
        except (SyntaxError, ValueError, RecursionError, MemoryError):
            return True
        inits = [(cls, init) for cls, init in _class_inits(tree) if _init_may_store_first(init)]
        if not inits:
            return False
        from torchlint.gates import import_table

        table = import_table(source)
        if table is None:
            return True
        classes = classes_by_name(tree)
        return any(may_be_torch_module_class(cls, classes, table) for cls, _ in inits)

    def visit_ClassDef(self, node: cst.ClassDef) -> None:
        init = next((s for s in _body(node) if isinstance(s, cst.FunctionDef) and s.name.value == "__init__"), None)
        if init is None or not init.params.params or not node.bases:
            return
        if not self._may_report(init, init.params.params[0].name.value):
            return  # whatever the class is: no need to build the program model
        model = program_model(self.context)
        if not model.is_torch_module_class(node.name.value):
            return
        me = init.params.params[0].name.value
        called = _is_init_call(init.body)
        for stmt in _statements(init.body):
            if _is_init_call(stmt):
                return
            stores = [stmt] if not isinstance(stmt, cst.BaseCompoundStatement) else _findall(stmt, (cst.Assign, cst.AnnAssign))
            found = [(x, v) for x in stores if (v := _self_target(x, me)) is not None and self._is_layer(v, model)]
            if found:
                store, value = found[0]
                target = store.targets[0].target if isinstance(store, cst.Assign) else store.target
                self.report(store, f"`{self.context.code(target)}` (a module or parameter) is stored before `super().__init__()` ran: "
                            "AttributeError: cannot assign it before Module.__init__() call", data={"kind": "before"})  # fmt: skip
                return
            if _passes_self(stmt, me):
                return
        if not called and not self.context.path.endswith(".pyi") and not _is_stub(init):
            data: dict[str, object] = {"kind": "never"}
            # For the runtime check: a `self` in __init__'s last statement, to look at the object built.
            stmts = _statements(init.body)
            names = [n for n in _findall(stmts[-1], cst.Name) if _is_name(n, me)] if stmts else []
            if names:
                r = self.context.range_of(names[0])
                data["self_span"] = [r.start.line, r.start.column, r.end.line, r.end.column]
            self.report(init.name, f"`{node.name.value}.__init__` never calls `super().__init__()`: calling the module, "
                        "`.parameters()` or `.to()` raises AttributeError", data=data)  # fmt: skip

    def _may_report(self, init: cst.FunctionDef, me: str) -> bool:
        """The checks below that need no program model: False where they cannot report."""
        for stmt in _statements(init.body):
            if _is_init_call(stmt):
                return False
            stores = [stmt] if not isinstance(stmt, cst.BaseCompoundStatement) else _findall(stmt, (cst.Assign, cst.AnnAssign))
            if any(isinstance(_self_target(x, me), cst.Call) for x in stores):
                return True  # a store that may be a layer
            if _passes_self(stmt, me):
                return False
        return not _is_init_call(init.body) and not self.context.path.endswith(".pyi") and not _is_stub(init)

    def _is_layer(self, value: cst.BaseExpression, model) -> bool:  # type: ignore[no-untyped-def]
        """A submodule or a Parameter, as far as the imports and the file's classes say."""
        if not isinstance(value, cst.Call):
            return False
        qual = self.context.qualname(value.func) or ""
        if qual in _PARAMETERS:
            return True
        head, _, last = qual.rpartition(".")
        if head in ("torch.nn", "torch.nn.modules") and last[:1].isupper():
            return True
        fact = model.fact(value)
        return fact is not None and isinstance(fact.func, ClassV) and model.is_torch_module_class(fact.func.node.name.value)


def _is_stub(func: cst.FunctionDef) -> bool:
    """``def __init__(self) -> None: ...``: a declaration (a stub, a protocol), not code."""
    stmts = _statements(func.body)
    return all(isinstance(x, cst.Expr) and isinstance(x.value, (cst.Ellipsis, cst.SimpleString)) for x in stmts)


def _body(node: cst.ClassDef) -> list[cst.CSTNode]:
    body = node.body
    return list(body.body) if isinstance(body, cst.IndentedBlock) else []


def _statements(block: cst.BaseSuite) -> list[cst.CSTNode]:
    """The statements of ``__init__`` in order: small statements one by one, a compound
    statement (if/for/with/try) as one unit, checked as a whole."""
    out: list[cst.CSTNode] = []
    for stmt in getattr(block, "body", ()):
        if isinstance(stmt, cst.SimpleStatementLine):
            out.extend(stmt.body)
        elif isinstance(stmt, cst.BaseSmallStatement):
            out.append(stmt)
        elif not isinstance(stmt, (cst.FunctionDef, cst.ClassDef)):
            out.append(stmt)
    return out
