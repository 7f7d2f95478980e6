from __future__ import annotations

import ast
import re

import libcst as cst

from torchlint.analysis.apicalls import keyword
from torchlint.gates import lines_matching, nodes_on
from torchlint.incremental import python_ast
from torchlint.rules.base import FixSpec, Invalid, Replace, Rule

# torch callables that take ``requires_grad=`` (checked against torch 2.13: each
# accepts ``requires_grad=`` and raises TypeError for ``require_grad=``).
_FACTORIES = frozenset(
    {
        *(
            f"torch.{n}"
            for n in (
                "tensor zeros ones empty full rand randn randint randperm arange range linspace logspace eye "
                "zeros_like ones_like empty_like full_like rand_like randn_like randint_like empty_strided "
                "sparse_coo_tensor sparse_csr_tensor normal tril_indices triu_indices scalar_tensor "
                "bartlett_window hann_window hamming_window blackman_window kaiser_window"
            ).split()
        ),
        "torch.nn.Parameter",
        "torch.nn.parameter.Parameter",
        "torch.nn.UninitializedParameter",
        "torch.nn.parameter.UninitializedParameter",
    }
)


# The word itself: not `inputs_require_grad`, `require_grads`, nor `requires_grad`.
_WORD = re.compile(r"(?<!\w)require_grad(?!\w)")


def _may_report(source: str) -> bool:
    """Does the code (not a comment or a string) assign an attribute ``.require_grad`` or pass a keyword
    ``require_grad=``? Those are all the rule reports; a parameter or a variable of that name is not."""
    lines = lines_matching(source, _WORD)
    if not lines:
        return False
    try:
        tree = python_ast(source, keep=True)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return True
    for node in nodes_on(tree, lines):
        t = type(node)
        if t is ast.Attribute and node.attr == "require_grad" and type(node.ctx) is ast.Store:  # type: ignore[attr-defined]
            return True
        if t is ast.keyword and node.arg == "require_grad":  # type: ignore[attr-defined]
            return True
    return False


class _Uses(cst.CSTVisitor):
    """Does the file read ``require_grad`` itself, or define it (a variable, a parameter, a function)?

    Assignment targets and call keywords are neither: they are what this rule reports.
    """

    def __init__(self) -> None:
        self.own = False
        self._skip: set[int] = set()

    def visit_AssignTarget(self, node: cst.AssignTarget) -> None:
        if isinstance(node.target, cst.Attribute):
            self._skip.add(id(node.target))

    def visit_AnnAssign(self, node: cst.AnnAssign) -> None:
        if isinstance(node.target, cst.Attribute):
            self._skip.add(id(node.target))

    def visit_Arg(self, node: cst.Arg) -> None:
        if node.keyword is not None:
            self._skip.add(id(node.keyword))

    def visit_Attribute(self, node: cst.Attribute) -> bool:
        self._skip.add(id(node.attr))  # an attribute's name is not a variable
        if node.attr.value == "require_grad" and id(node) not in self._skip:
            self.own = True
        return True

    def visit_Name(self, node: cst.Name) -> None:
        if node.value == "require_grad" and id(node) not in self._skip:
            self.own = True

    def visit_Param(self, node: cst.Param) -> None:
        if node.name.value == "require_grad":
            self.own = True


class RequireGradTypo(Rule):
    """
    ## What it does
    Checks for the misspelling `require_grad` of `requires_grad`: assigned as an
    attribute (`param.require_grad = False`), or passed as a keyword to a torch
    factory or `nn.Parameter` (`torch.zeros(3, require_grad=True)`).

    ## Why is this bad?
    Python lets you set any attribute on a tensor, so `p.require_grad = False`
    runs without complaint and changes nothing: the parameter still requires
    grad and keeps training (the layer you meant to freeze is not frozen). As a
    keyword, `require_grad=` is a `TypeError: ... got an unexpected keyword
    argument 'require_grad'`.

    The attribute form is reported when the file imports torch and never reads
    `require_grad` itself or defines it (a class of your own with that field,
    a parameter named so): then it is your attribute, not a typo.

    ## Example
    ```python
    for p in model.backbone.parameters():
        p.require_grad = False
    ```

    ## Use instead
    ```python
    for p in model.backbone.parameters():
        p.requires_grad = False
    ```

    ## Fix safety
    The fix renames `require_grad` to `requires_grad`. It is safe: it does what
    the line was written to do (the misspelt attribute has no effect in PyTorch,
    the misspelt keyword raises). The behaviour changes in the intended way:
    after the fix, the parameters really are frozen.
    """

    code = "TL206"
    name = "require-grad-typo"
    message = "`require_grad` is a typo of `requires_grad`: setting it has no effect on the tensor"
    # Confirmed by running the line: the TypeError, or `requires_grad` unchanged after it.
    confirmable = True
    triggers = ("require_grad",)

    VALID = [
        "import torch\nfor p in model.parameters():\n    p.requires_grad = False\n",
        "import torch\nx = torch.zeros(3, requires_grad=True)\n",
        # A class of the user's own with that field, read back.
        "import torch\n\nclass Cfg:\n    def __init__(self):\n        self.require_grad = True\n\ncfg = Cfg()\ncfg.require_grad = False\nif cfg.require_grad:\n    pass\n",
        # Forwarded to a function of the user's own that takes that parameter.
        "import torch\n\ndef make(shape, require_grad=False):\n    return torch.zeros(shape, requires_grad=require_grad)\n\nx = make(3, require_grad=True)\n",
        # No torch in the file.
        "class A:\n    pass\na = A()\na.require_grad = True\n",
        # torch's private _make_subclass really takes require_grad.
        "import torch\nt = torch.Tensor._make_subclass(cls, data, require_grad=True)\n",
    ]
    INVALID = [
        Invalid(
            "import torch\nfor p in model.features.parameters():\n    p.require_grad = False\n",
            "import torch\nfor p in model.features.parameters():\n    p.requires_grad = False\n",
        ),
        Invalid(
            "import torch\nx = torch.randn(4, 4, require_grad=True)\n",
            "import torch\nx = torch.randn(4, 4, requires_grad=True)\n",
        ),
        Invalid(
            "import torch.nn as nn\nw = nn.Parameter(torch.ones(3), require_grad=False)\n",
            "import torch.nn as nn\nw = nn.Parameter(torch.ones(3), requires_grad=False)\n",
        ),
        Invalid(
            "import torch\nmodel.fc.weight.require_grad = True\nmodel.fc.bias.require_grad = True\n",
            "import torch\nmodel.fc.weight.requires_grad = True\nmodel.fc.bias.requires_grad = True\n",
            count=2,
        ),
    ]

    @classmethod
    def applies_to(cls, source: str) -> bool:
        return _may_report(source)

    def __init__(self, context) -> None:
        super().__init__(context)
        self._defined: bool | None = None
        self._imports_torch = any(
            isinstance(v, str) and (v == "torch" or v.startswith("torch."))
            for v in context.names.module_scope.bindings.values()
        )

    def _file_defines_it(self) -> bool:
        if self._defined is None:
            uses = _Uses()
            self.context.module.visit(uses)
            self._defined = uses.own
        return self._defined

    def visit_Assign(self, node: cst.Assign) -> None:
        for t in node.targets:
            self._check_target(t.target)

    def visit_AnnAssign(self, node: cst.AnnAssign) -> None:
        self._check_target(node.target)

    def _check_target(self, target: cst.BaseExpression) -> None:
        if not (isinstance(target, cst.Attribute) and target.attr.value == "require_grad"):
            return
        if not self._imports_torch or self._file_defines_it():
            return
        self.report(
            target.attr,
            "`.require_grad` is a typo of `.requires_grad`: PyTorch never reads it, so this assignment does not "
            "change whether the tensor requires grad",
            fix=FixSpec("Rename to `requires_grad`", (Replace(target.attr, cst.Name("requires_grad")),)),
        )

    def _takes_requires_grad(self, callee: str | None) -> bool:
        """Another torch callable whose recorded signature takes ``requires_grad`` but not the typo."""
        if not callee or not callee.startswith("torch."):
            return False
        kb = self.context.knowledge
        return kb.accepts_keyword(callee, "requires_grad") is True and kb.accepts_keyword(callee, "require_grad") is False

    def visit_Call(self, node: cst.Call) -> None:
        arg = keyword(node, "require_grad")
        if arg is None or keyword(node, "requires_grad") is not None:
            return
        callee = self.context.qualname(node.func)
        if callee not in _FACTORIES and not self._takes_requires_grad(callee):
            return
        self.report(
            arg.keyword,
            f"`require_grad=` is a typo of `requires_grad=`: `{callee}` raises "
            "`TypeError: ... got an unexpected keyword argument 'require_grad'`",
            fix=FixSpec("Rename to `requires_grad=`", (Replace(arg.keyword, cst.Name("requires_grad")),)),
        )

