from __future__ import annotations

import builtins

import libcst as cst

from torchlint.analysis.bindings import NameRead, bindings_of
from torchlint.names import UNKNOWN_MODULE
from torchlint.rules.base import FixSpec, InsertAtLine, Invalid, Rule

_BUILTINS = frozenset(dir(builtins)) | {
    "__name__", "__doc__", "__file__", "__spec__", "__loader__", "__package__", "__builtins__", "__annotations__",
}
# IPython's own names: defined in every notebook and IPython session.
_IPYTHON = frozenset(
    {"display", "get_ipython", "In", "Out", "_", "__", "___", "_i", "_ii", "_iii", "_ih", "_oh", "_dh", "exit", "quit"}
)


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
        # name -> (first bad read, message); usually already found by the document gate.
        self._wanted = _undefined(context.source, context.document) if context.document is not None else {}
        self._nodes: dict[str, list[cst.Name]] = {}

    @classmethod
    def applies_to_document(cls, source: str, document) -> bool:
        # Most documents define what they use: then the CST is not needed at all.
        return bool(_undefined(source, document))

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
        for name, (read, message) in self._wanted.items():
            line, byte_col = read.pos
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


# The answer for the text the gate last looked at, which the rule then reports (same text and
# document objects: one lint). One entry: a document's answer is a few reads.
_last: tuple[str, object, dict[str, tuple[NameRead, str]]] | None = None


def _undefined(source: str, document) -> dict[str, tuple[NameRead, str]]:
    """The names the document's code reads where nothing binds them: name -> (first such read, message)."""
    global _last
    if _last is not None and _last[0] is source and _last[1] is document:
        return _last[2]
    wanted: dict[str, tuple[NameRead, str]] = {}
    bindings = bindings_of(source)
    if bindings is not None:
        conventions = document.conventions
        weak = document.weak_lines
        for read in bindings.reads:
            name = read.name
            if name in _BUILTINS or name in _IPYTHON or name in wanted or read.pos[0] in weak:
                continue
            if bindings.bound_at(read):
                continue
            later = bindings.later_binding(read)
            if later is not None:
                message = f"`{name}` is used before it is defined (defined later, in {document.where(later[0])})"
            elif name in conventions:
                from torchlint.documents import conventional_import

                message = f"`{name}` is never imported; add `{conventional_import(name, conventions[name])}`"
            else:
                message = UndefinedName.message.format(name=name)
            wanted[name] = (read, message)
    _last = (source, document, wanted)
    return wanted


__all__ = ["UndefinedName", "UNKNOWN_MODULE"]
