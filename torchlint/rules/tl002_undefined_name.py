from __future__ import annotations

import ast
import builtins
from dataclasses import dataclass

import libcst as cst

from torchlint.incremental import python_ast
from torchlint.names import UNKNOWN_MODULE
from torchlint.rules.base import FixSpec, InsertAtLine, Invalid, Rule

_BUILTINS = frozenset(dir(builtins)) | {
    "__name__", "__doc__", "__file__", "__spec__", "__loader__", "__package__", "__builtins__", "__annotations__",
}
# IPython's own names: defined in every notebook and IPython session.
_IPYTHON = frozenset(
    {"display", "get_ipython", "In", "Out", "_", "__", "___", "_i", "_ii", "_iii", "_ih", "_oh", "_dh", "exit", "quit"}
)

Pos = tuple[int, int]  # (line, column in UTF-8 bytes, as ast counts): only ever compared


@dataclass
class _Use:
    name: str
    pos: Pos
    deferred: bool  # inside a function or lambda body: looked up when called, not in order


class _Scopes(ast.NodeVisitor):
    """Which names a module binds (and where), and every name it reads, with the scope it is read in.

    Module-level code runs in order, so a name read there must be bound earlier;
    a function body runs when called, so a name it reads only has to be bound
    somewhere. Names a function or comprehension binds are its own.
    """

    def __init__(self) -> None:
        self.module: dict[str, list[Pos]] = {}
        self.everywhere: set[str] = set()  # bound by `global` in a function: somewhere, some time
        self.stars: list[Pos] = []  # star imports (a chunk that did not parse is one)
        self.uses: list[_Use] = []
        self.starts: dict[Pos, Pos] = {}  # a binding's effective position -> where its statement starts
        self._stack: list[set[str]] = []  # local names of the enclosing functions/comprehensions/classes
        self._deferred = 0

    # -- binding --
    def _bind(self, name: str, pos: Pos) -> None:
        if self._stack:
            self._stack[-1].add(name)
        else:
            self.module.setdefault(name, []).append(pos)

    def _bind_target(self, target: ast.AST, pos: Pos) -> None:
        for node in ast.walk(target):
            if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
                self._bind(node.id, pos)
            elif isinstance(node, ast.Starred):
                continue

    @staticmethod
    def _end(node: ast.AST) -> Pos:
        return (getattr(node, "end_lineno", 0) or 0, getattr(node, "end_col_offset", 0) or 0)

    # -- scopes --
    def _function(self, node: ast.AST, args: ast.arguments, body: list[ast.AST] | ast.AST) -> None:
        # Defaults and decorators run now; the body when called.
        for d in [*args.defaults, *(d for d in args.kw_defaults if d is not None)]:
            self.visit(d)
        local = _locals(node)
        self._stack.append(local)
        self._deferred += 1
        for stmt in body if isinstance(body, list) else [body]:
            self.visit(stmt)
        self._deferred -= 1
        self._stack.pop()

    def visit_FunctionDef(self, node: ast.FunctionDef | ast.AsyncFunctionDef) -> None:
        for d in node.decorator_list:
            self.visit(d)
        self._function(node, node.args, node.body)
        self._bind(node.name, self._end(node))

    visit_AsyncFunctionDef = visit_FunctionDef  # type: ignore[assignment]

    def visit_Lambda(self, node: ast.Lambda) -> None:
        self._function(node, node.args, node.body)

    def visit_ClassDef(self, node: ast.ClassDef) -> None:
        for d in [*node.decorator_list, *node.bases, *(k.value for k in node.keywords)]:
            self.visit(d)
        # A class body runs now, with its own names.
        self._stack.append(set())
        for stmt in node.body:
            self.visit(stmt)
        self._stack.pop()
        self._bind(node.name, self._end(node))

    def _comprehension(self, node: ast.AST, elts: list[ast.AST]) -> None:
        gens: list[ast.comprehension] = node.generators  # type: ignore[attr-defined]
        self.visit(gens[0].iter)  # evaluated in the enclosing scope
        local: set[str] = set()
        for g in gens:
            for n in ast.walk(g.target):
                if isinstance(n, ast.Name):
                    local.add(n.id)
        self._stack.append(local)
        for i, g in enumerate(gens):
            if i:
                self.visit(g.iter)
            for cond in g.ifs:
                self.visit(cond)
        for e in elts:
            self.visit(e)
        self._stack.pop()

    def visit_ListComp(self, node: ast.ListComp) -> None:
        self._comprehension(node, [node.elt])

    visit_SetComp = visit_ListComp  # type: ignore[assignment]
    visit_GeneratorExp = visit_ListComp  # type: ignore[assignment]

    def visit_DictComp(self, node: ast.DictComp) -> None:
        self._comprehension(node, [node.key, node.value])

    # -- statements that bind --
    def visit_Assign(self, node: ast.Assign) -> None:
        self.visit(node.value)
        self.starts[self._end(node)] = (node.lineno, node.col_offset)
        for t in node.targets:
            self._visit_target(t)
            self._bind_target(t, self._end(node))

    def _visit_target(self, t: ast.AST) -> None:
        # Subscripts and attributes in a target read their base: ``x[0] = 1`` needs ``x``.
        for n in ast.walk(t):
            if isinstance(n, (ast.Subscript, ast.Attribute)):
                self.visit(n)

    def visit_AugAssign(self, node: ast.AugAssign) -> None:
        self.visit(node.value)
        if isinstance(node.target, ast.Name):
            self._use(node.target.id, (node.target.lineno, node.target.col_offset))
        else:
            self.visit(node.target)
        self.starts[self._end(node)] = (node.lineno, node.col_offset)
        self._bind_target(node.target, self._end(node))

    def visit_AnnAssign(self, node: ast.AnnAssign) -> None:
        if node.value is not None:
            self.visit(node.value)
            self._visit_target(node.target)
            self._bind_target(node.target, self._end(node))

    def visit_NamedExpr(self, node: ast.NamedExpr) -> None:
        self.visit(node.value)
        # Binds in the enclosing function or the module, even from a comprehension.
        target = node.target.id
        for scope in self._stack:
            scope.add(target)
        self.module.setdefault(target, []).append(self._end(node))

    def visit_For(self, node: ast.For | ast.AsyncFor) -> None:
        self.visit(node.iter)
        self._visit_target(node.target)
        self._bind_target(node.target, self._end(node.target))
        for stmt in [*node.body, *node.orelse]:
            self.visit(stmt)

    visit_AsyncFor = visit_For  # type: ignore[assignment]

    def visit_With(self, node: ast.With | ast.AsyncWith) -> None:
        for item in node.items:
            self.visit(item.context_expr)
            if item.optional_vars is not None:
                self._visit_target(item.optional_vars)
                self._bind_target(item.optional_vars, self._end(item))
        for stmt in node.body:
            self.visit(stmt)

    visit_AsyncWith = visit_With  # type: ignore[assignment]

    def visit_ExceptHandler(self, node: ast.ExceptHandler) -> None:
        if node.type is not None:
            self.visit(node.type)
        if node.name:
            self._bind(node.name, (node.lineno, node.col_offset))
        for stmt in node.body:
            self.visit(stmt)

    def visit_Import(self, node: ast.Import) -> None:
        for alias in node.names:
            self._bind(alias.asname or alias.name.split(".")[0], self._end(node))

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        for alias in node.names:
            if alias.name == "*":
                self.stars.append(self._end(node))
            else:
                self._bind(alias.asname or alias.name, self._end(node))

    def visit_Global(self, node: ast.Global) -> None:
        self.everywhere.update(node.names)

    def visit_MatchAs(self, node: ast.MatchAs) -> None:
        if node.pattern is not None:
            self.visit(node.pattern)
        if node.name:
            self._bind(node.name, (node.lineno, node.col_offset))

    def visit_MatchStar(self, node: ast.MatchStar) -> None:
        if node.name:
            self._bind(node.name, (node.lineno, node.col_offset))

    def visit_MatchMapping(self, node: ast.MatchMapping) -> None:
        self.generic_visit(node)
        if node.rest:
            self._bind(node.rest, (node.lineno, node.col_offset))

    def visit_Delete(self, node: ast.Delete) -> None:
        for t in node.targets:
            if isinstance(t, ast.Name):
                self._use(t.id, (t.lineno, t.col_offset))
            else:
                self.visit(t)

    # -- reading --
    def visit_Name(self, node: ast.Name) -> None:
        if isinstance(node.ctx, ast.Load):
            self._use(node.id, (node.lineno, node.col_offset))

    def _use(self, name: str, pos: Pos) -> None:
        if any(name in s for s in self._stack):
            return
        self.uses.append(_Use(name, pos, self._deferred > 0))

    # Annotations are not checked: often strings, often never evaluated.
    def visit_arg(self, node: ast.arg) -> None:
        return None


def _locals(node: ast.AST) -> set[str]:
    """Names a function (or lambda) binds: parameters and what its own body assigns or imports."""
    args: ast.arguments = node.args  # type: ignore[attr-defined]
    names = {a.arg for a in [*args.posonlyargs, *args.args, *args.kwonlyargs]}
    for star in (args.vararg, args.kwarg):
        if star is not None:
            names.add(star.arg)
    body = node.body if isinstance(node.body, list) else [node.body]  # type: ignore[attr-defined]
    declared: set[str] = set()
    stack = list(body)
    while stack:
        n = stack.pop()
        if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(n.name)
            stack.extend(getattr(n, "decorator_list", []))
            continue  # its body is its own scope
        if isinstance(n, ast.Lambda):
            continue
        if isinstance(n, (ast.Global, ast.Nonlocal)):
            declared.update(n.names)
        elif isinstance(n, ast.Name) and isinstance(n.ctx, (ast.Store, ast.Del)):
            names.add(n.id)
        elif isinstance(n, (ast.Import, ast.ImportFrom)):
            for alias in n.names:
                if alias.name != "*":
                    names.add(alias.asname or alias.name.split(".")[0])
        elif isinstance(n, ast.ExceptHandler) and n.name:
            names.add(n.name)
        elif isinstance(n, (ast.MatchAs, ast.MatchStar)) and n.name:
            names.add(n.name)
        elif isinstance(n, ast.MatchMapping) and n.rest:
            names.add(n.rest)
        stack.extend(ast.iter_child_nodes(n))
    return names - declared


class UndefinedName(Rule):
    """
    ## What it does
    In a notebook or a tutorial document (Markdown, RST), checks for names the
    code uses that no earlier cell or code block defines or imports. Python
    files are left to ruff and pyflakes (`F821`).

    ## Why is this bad?
    A reader who runs the cells in order, or copies the blocks into a file,
    gets a `NameError`: an `F` that was never imported, a helper such as
    `imshow` that the text mentions but never shows, a `tensor(...)` without
    `from torch import tensor`. When the name has a conventional module (`F`,
    `nn`, `optim`, `np`, ... see the documents guide), the message names the
    import to add. A name defined only in a later cell or block is reported
    too ("defined later"): running the document in order fails.

    Builtins, IPython's own names (`display`, `get_ipython`, `In`, `Out`, `_`),
    names bound in functions, comprehensions and `global` statements are
    understood. After a star import, an IPython `%run`, or a cell that does not
    parse, names may come from code torchlint cannot see, so they are not
    reported.

    ## Example
    ```python
    x = F.relu(model(inputs))
    ```

    ## Use instead
    ```python
    import torch.nn.functional as F

    x = F.relu(model(inputs))
    ```

    ## Fix safety
    For a name with a conventional module, the fix adds its import to the first
    code cell or block; this is safe: the name was not bound at all. Other
    names get no fix.
    """

    code = "TL002"
    name = "undefined-name"
    message = "`{name}` is never defined or imported in this document"
    severity = "error"
    documents_only = True

    VALID = [
        "import torch.nn.functional as F\ny = F.relu(x := 1)\n",
        "def f():\n    return helper()\n\ndef helper():\n    return 1\n",
        "squares = [i * i for i in range(3)]\nprint(len(squares), display, _)\n",
        "from torch import *\nt = tensor([1])\n",
        "def setup():\n    global model\n    model = 1\n\nsetup()\nprint(model)\n",
        "for i in range(3):\n    pass\nprint(i)\n",
        "try:\n    import foo\nexcept ImportError as err:\n    print(err)\n",
        "class A:\n    n = 1\n    m = n + 1\n",
        "x = 1\ndel x\n",
    ]
    INVALID = [
        Invalid(
            "import torch\nx = F.relu(torch.ones(1))\n",
            "import torch\nimport torch.nn.functional as F\nx = F.relu(torch.ones(1))\n",
        ),
        Invalid("images = [1, 2]\nimshow(images)\n"),
        Invalid("print(model)\nmodel = 1\n"),
        Invalid("def f():\n    return helper()\n"),
        Invalid("del x\n"),
        Invalid("model = model.cuda()\n"),
    ]

    def __init__(self, context) -> None:
        super().__init__(context)
        self._wanted: dict[str, tuple[_Use, str]] = {}  # name -> (first bad use, message)
        self._nodes: dict[str, list[cst.Name]] = {}
        document = context.document
        if document is None:
            return
        try:
            tree = python_ast(context.source, keep=True)  # (the document's own tree when building it parsed the text)
        except (SyntaxError, ValueError, RecursionError, MemoryError):
            return
        scopes = _Scopes()
        scopes.visit(tree)
        conventions = document.conventions
        for use in scopes.uses:
            name = use.name
            if use.pos[0] in document.weak_lines:
                continue
            if name in _BUILTINS or name in _IPYTHON or name in scopes.everywhere or name in self._wanted:
                continue
            bound = scopes.module.get(name, [])
            if use.deferred:
                if bound or scopes.stars:
                    continue
                later = None
            else:
                if any(p <= use.pos for p in bound) or any(p <= use.pos for p in scopes.stars):
                    continue
                # A binding by the very statement that reads the name (``m = m.cuda()``) is no definition.
                later = min((p for p in bound if p[0] > use.pos[0] or scopes.starts.get(p, p) > use.pos), default=None)
            if later is not None:
                where = document.where(later[0])
                message = f"`{name}` is used before it is defined (defined later, in {where})"
            elif scopes.stars and use.deferred:
                continue  # a star import (or an unparsable chunk) might define it before the call
            elif name in conventions:
                from torchlint.documents import conventional_import

                message = f"`{name}` is never imported; add `{conventional_import(name, conventions[name])}`"
            else:
                message = self.message.format(name=name)
            self._wanted[name] = (use, message)

    def visit_Name(self, node: cst.Name) -> None:
        if node.value in self._wanted:
            self._nodes.setdefault(node.value, []).append(node)

    def leave_Module(self, node: cst.Module) -> None:
        if not self._wanted:
            return
        nodes = [n for ns in self._nodes.values() for n in ns]
        ranges = self.context.ranges(nodes)
        lines = self.context.source.splitlines()
        document = self.context.document
        conventions = document.conventions
        for name, (use, message) in self._wanted.items():
            line, byte_col = use.pos
            text = lines[line - 1] if 0 < line <= len(lines) else ""
            col = len(text.encode("utf-8")[:byte_col].decode("utf-8", errors="ignore"))
            node = next(
                (n for n in self._nodes.get(name, ()) if (ranges[n].start.line, ranges[n].start.column) == (line, col)),
                None,
            )
            if node is None:
                continue
            fix = None
            if name in conventions and "defined later" not in message and document.import_line is not None:
                from torchlint.documents import conventional_import

                statement = conventional_import(name, conventions[name])
                fix = FixSpec(f"Add `{statement}`", (InsertAtLine(document.import_line, statement + "\n"),))
            self.report(node, message, fix=fix, data={"name": name})


__all__ = ["UndefinedName", "UNKNOWN_MODULE"]
