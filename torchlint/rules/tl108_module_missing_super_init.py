from __future__ import annotations

import libcst as cst

from torchlint.analysis.model import program_model
from torchlint.analysis.module_init import (
    calls_init,
    class_inits,
    hands_self_on,
    init_may_store_first,
    init_method,
    init_statements,
    is_declaration,
    is_layer,
    self_names,
    self_stores,
)
from torchlint.gates import classes_by_name, may_be_torch_module_class
from torchlint.rules.base import Invalid, Rule


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
        inits = [(cls, init) for cls, init in class_inits(tree) if init_may_store_first(init)]
        if not inits:
            return False
        from torchlint.gates import import_table

        table = import_table(source)
        if table is None:
            return True
        classes = classes_by_name(tree)
        return any(may_be_torch_module_class(cls, classes, table) for cls, _ in inits)

    def visit_ClassDef(self, node: cst.ClassDef) -> None:
        init = init_method(node)
        if init is None or not init.params.params or not node.bases:
            return
        if not self._may_report(init, init.params.params[0].name.value):
            return  # whatever the class is: no need to build the program model
        model = program_model(self.context)
        if not model.is_torch_module_class(node.name.value):
            return
        me = init.params.params[0].name.value
        called = calls_init(init.body)
        for stmt in init_statements(init.body):
            if calls_init(stmt):
                return
            found = [(x, v) for x, v in self_stores(stmt, me) if is_layer(v, self.context.qualname, model)]
            if found:
                store, value = found[0]
                target = store.targets[0].target if isinstance(store, cst.Assign) else store.target
                self.report(store, f"`{self.context.code(target)}` (a module or parameter) is stored before `super().__init__()` ran: "
                            "AttributeError: cannot assign it before Module.__init__() call", data={"kind": "before"})  # fmt: skip
                return
            if hands_self_on(stmt, me):
                return
        if not called and not self.context.path.endswith(".pyi") and not is_declaration(init):
            data: dict[str, object] = {"kind": "never"}
            # For the runtime check: a `self` in __init__'s last statement, to look at the object built.
            stmts = init_statements(init.body)
            names = self_names(stmts[-1], me) if stmts else []
            if names:
                r = self.context.range_of(names[0])
                data["self_span"] = [r.start.line, r.start.column, r.end.line, r.end.column]
            self.report(init.name, f"`{node.name.value}.__init__` never calls `super().__init__()`: calling the module, "
                        "`.parameters()` or `.to()` raises AttributeError", data=data)  # fmt: skip

    def _may_report(self, init: cst.FunctionDef, me: str) -> bool:
        """The checks above that need no program model: False where they cannot report."""
        for stmt in init_statements(init.body):
            if calls_init(stmt):
                return False
            if any(isinstance(value, cst.Call) for _, value in self_stores(stmt, me)):
                return True  # a store that may be a layer
            if hands_self_on(stmt, me):
                return False
        return not calls_init(init.body) and not self.context.path.endswith(".pyi") and not is_declaration(init)
