"""Exact pre-checks on CPython's tree: which files can a rule report on at all?

libcst's parse is most of a lint, and most files of a large tree hold nothing a
rule reports. A rule that reports only on code referring to certain qualified
names (``torch.load``, ``torch.nn.functional.softmax``) declares them as
``Rule.qualified_triggers``; a file none of whose dotted names can resolve to one
of them is skipped without a CST. The answer over-approximates
:class:`torchlint.names.NameResolver` (which resolves through imports only):
every import of the file, in any scope, counts, whatever else binds the name.
"""

from __future__ import annotations

import ast
import re
from functools import lru_cache

from torchlint.incremental import python_ast

_BLOCKS = ("body", "orelse", "finalbody")


class ImportTable:
    """Every name an import of the file binds (any scope), with each module it may stand for."""

    def __init__(self) -> None:
        self.bindings: dict[str, set[str]] = {}
        self.stars: set[str] = set()

    def bind(self, name: str, qualified: str) -> None:
        self.bindings.setdefault(name, set()).add(qualified)

    def chains(self, qualified: str) -> set[str]:
        """The dotted texts that NameResolver may resolve to ``qualified``."""
        out = set()
        for local, targets in self.bindings.items():
            for target in targets:
                if qualified == target:
                    out.add(local)
                elif qualified.startswith(target + "."):
                    out.add(local + qualified[len(target) :])
        for module in self.stars:  # `from m import *`: any free name may be m's
            if qualified.startswith(module + "."):
                out.add(qualified[len(module) + 1 :])
        return out


    def resolve(self, dotted: str) -> set[str]:
        """Every qualified name NameResolver may give ``dotted`` (it gives at most one of them, or None)."""
        head, _, rest = dotted.partition(".")
        bases = set(self.bindings.get(head, ())) | {f"{m}.{head}" for m in self.stars}
        return {f"{b}.{rest}" if rest else b for b in bases}


def dotted_text(node: ast.AST) -> str | None:
    """``a.b.c`` for a Name/Attribute chain on CPython's tree, else None."""
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if not isinstance(node, ast.Name):
        return None
    parts.append(node.id)
    return ".".join(reversed(parts))


def statements(body: list[ast.stmt]):
    """Every statement under ``body``, in nested blocks, defs and classes too (expressions are not walked)."""
    for stmt in body:
        yield stmt
        for attr in _BLOCKS:
            block = getattr(stmt, attr, None)
            if block:
                yield from statements(block)
        for handler in getattr(stmt, "handlers", ()):
            yield from statements(handler.body)
        for case in getattr(stmt, "cases", ()):
            yield from statements(case.body)


def _scan(body: list[ast.stmt], table: ImportTable) -> None:
    for stmt in body:
        if isinstance(stmt, ast.Import):
            for alias in stmt.names:
                if alias.asname:
                    table.bind(alias.asname, alias.name)
                else:
                    top = alias.name.split(".")[0]
                    table.bind(top, top)
        elif isinstance(stmt, ast.ImportFrom):
            module = "." * stmt.level + (stmt.module or "")
            for alias in stmt.names:
                if alias.name == "*":
                    table.stars.add(module)
                else:
                    table.bind(alias.asname or alias.name, f"{module}.{alias.name}" if module else alias.name)
        else:
            for attr in _BLOCKS:
                block = getattr(stmt, attr, None)
                if block:
                    _scan(block, table)
            for handler in getattr(stmt, "handlers", ()):
                _scan(handler.body, table)
            for case in getattr(stmt, "cases", ()):
                _scan(case.body, table)


_last: tuple[str, ImportTable | None] | None = None


def import_table(source: str) -> ImportTable | None:
    """The file's imports (None when CPython cannot parse it: then nothing may be skipped)."""
    global _last
    if _last is not None and _last[0] is source:
        return _last[1]
    try:
        tree = python_ast(source, keep=True)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        table = None
    else:
        table = ImportTable()
        _scan(tree.body, table)
    _last = (source, table)
    return table


def python_tree_ok(source: str) -> bool:
    """Can CPython parse the text (then the pre-checks may judge it)?"""
    return import_table(source) is not None


# Between the parts of a dotted name: spaces, line breaks, backslash continuations, comments.
_GAP = r"(?:\s|\\\n|#[^\n]*)*"


@lru_cache(maxsize=4096)
def _chain_pattern(chain: str) -> re.Pattern[str]:
    parts = [re.escape(p) for p in chain.split(".")]
    # The head's literal first (the regex engine then scans for it at C speed), its boundary after.
    head = parts[0] + r"(?<![\w.]" + parts[0] + ")"
    return re.compile((_GAP + r"\." + _GAP).join([head, *parts[1:]]) + r"(?!\w)")


def may_reference(source: str, qualified: frozenset[str]) -> bool:
    """Might some dotted name of ``source`` resolve to one of ``qualified`` (or below one)?"""
    table = import_table(source)
    if table is None:
        return True
    for name in qualified:
        for chain in table.chains(name):
            if _chain_pattern(chain).search(source):
                return True
    return False


class _Index:
    """What the pre-checks ask of a file's tree, gathered in one walk."""

    def __init__(self, tree: ast.Module) -> None:
        self.calls: list[tuple[str | None, ast.Call]] = []  # with the callee's dotted name (None: it has none)
        self.binops: list[ast.BinOp] = []
        self.names: set[str] = set()  # every dotted name (each prefix of a chain too)
        self.modules: set[str] = set()  # every module an import names
        self.identifiers: set[str] = set()  # names, attributes, parameters, imported and defined names
        for node in ast.walk(tree):
            t = type(node)
            if t is ast.Name:
                self.names.add(node.id)  # type: ignore[attr-defined]
                self.identifiers.add(node.id)  # type: ignore[attr-defined]
            elif t is ast.Attribute:
                self.identifiers.add(node.attr)  # type: ignore[attr-defined]
                dotted = dotted_text(node)
                if dotted is not None:
                    self.names.add(dotted)
            elif t is ast.Call:
                self.calls.append((dotted_text(node.func), node))  # type: ignore[attr-defined]
            elif t is ast.BinOp:
                self.binops.append(node)  # type: ignore[arg-type]
            elif t is ast.arg:
                self.identifiers.add(node.arg)  # type: ignore[attr-defined]
            elif t in (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef):
                self.identifiers.add(node.name)  # type: ignore[attr-defined]
            elif t is ast.Import:
                for alias in node.names:  # type: ignore[attr-defined]
                    self.modules.add(alias.name)
                    self.identifiers.update(alias.name.split("."))
                    if alias.asname:
                        self.identifiers.add(alias.asname)
            elif t is ast.ImportFrom:
                if node.module and not node.level:  # type: ignore[attr-defined]
                    self.modules.add(node.module)  # type: ignore[attr-defined]
                    self.modules.update(f"{node.module}.{a.name}" for a in node.names)  # type: ignore[attr-defined]
                for alias in node.names:  # type: ignore[attr-defined]
                    self.identifiers.add(alias.name)
                    if alias.asname:
                        self.identifiers.add(alias.asname)


_last_index: tuple[ast.Module, _Index] | None = None


def index(tree: ast.Module) -> _Index:
    global _last_index
    if _last_index is not None and _last_index[0] is tree:
        return _last_index[1]
    found = _Index(tree)
    _last_index = (tree, found)
    return found


def binary_operations(source: str) -> list[ast.BinOp]:
    return index(python_ast(source, keep=True)).binops


def all_calls(source: str) -> list[ast.Call]:
    return [call for _, call in index(python_ast(source, keep=True)).calls]


def identifiers(source: str) -> set[str] | None:
    """Every identifier of the file's code (not its strings or comments); None: CPython cannot parse it."""
    if import_table(source) is None:
        return None
    return index(python_ast(source, keep=True)).identifiers


def calls_to(source: str, qualified: frozenset[str]) -> list[ast.Call] | None:
    """The calls of ``source`` whose callee may resolve to one of ``qualified`` (None: unknown, CPython cannot parse it)."""
    table = import_table(source)
    if table is None:
        return None
    if not may_reference(source, qualified):
        return []
    tree = python_ast(source, keep=True)
    return [call for dotted, call in index(tree).calls if dotted is not None and table.resolve(dotted) & qualified]


def lacks_keyword(call: ast.Call, name: str, position: int | None = None) -> bool:
    """``name`` is neither passed by keyword nor (at ``position``) positionally, nor possibly in ``**kwargs``/``*args``.

    The CST rules' ``keyword``/``argument``/``forwards_kwargs`` say "absent" at most where this does.
    """
    if any(k.arg is None or k.arg == name for k in call.keywords):
        return False
    if position is not None:
        for i, arg in enumerate(call.args):
            if isinstance(arg, ast.Starred) or i == position:
                return False
    return True


def classes_by_name(tree: ast.Module) -> dict[str, list[ast.ClassDef]]:
    classes: dict[str, list[ast.ClassDef]] = {}
    for node in statements(tree.body):
        if isinstance(node, ast.ClassDef):
            classes.setdefault(node.name, []).append(node)
    return classes


def may_be_torch_module_class(cls: ast.ClassDef, classes: dict[str, list[ast.ClassDef]], table: ImportTable, seen: set[int] | None = None) -> bool:
    """Might the program model's ``is_torch_module_class`` hold for ``cls``? Every class of a base's
    name and every import of it count (the model follows one of them)."""
    from torchlint.analysis.model import _LIGHTNING_MODULES

    seen = set() if seen is None else seen
    seen.add(id(cls))
    for base in cls.bases:
        dotted = dotted_text(base)
        if dotted is None:
            continue  # (no qualified name: never a module base to the model)
        for other in classes.get(dotted, ()):
            if id(other) not in seen and may_be_torch_module_class(other, classes, table, seen):
                return True
        for qual in table.resolve(dotted):
            if (qual.startswith("torch.nn.") and qual.rpartition(".")[2][:1].isupper()) or qual in _LIGHTNING_MODULES:
                return True
    return False


def dotted_uses(tree: ast.Module) -> tuple[set[str], set[str]]:
    """Every dotted name of the file's code (each prefix of a chain too), and every module an import names."""
    found = index(tree)
    return found.names, found.modules


def may_use_api(source: str, apis: frozenset[str]) -> bool:
    """Might the file name one of ``apis``: a dotted name resolving to it, an import of it, or of a module inside it?"""
    table = import_table(source)
    if table is None:
        return True
    names, modules = dotted_uses(python_ast(source, keep=True))
    for module in modules:
        parts = module.split(".")
        if any(".".join(parts[: i + 1]) in apis for i in range(len(parts))):
            return True
    return any(not table.resolve(name).isdisjoint(apis) for name in names)


def may_hold_torch_module(source: str) -> bool:
    """Might the program model know some value of the file as a torch module (``is_torch_module``)?

    Only a ``torch.nn`` class built by its qualified name, or a class of the file whose bases
    may lead to one, makes such a value.
    """
    table = import_table(source)
    if table is None:
        return True
    tree = python_ast(source, keep=True)
    classes = classes_by_name(tree)
    if any(may_be_torch_module_class(c, classes, table) for same in classes.values() for c in same):
        return True
    names, _ = dotted_uses(tree)
    for name in names:
        for qual in table.resolve(name):
            head, _, last = qual.rpartition(".")
            if head in ("torch.nn", "torch.nn.modules") and last[:1].isupper():
                return True
    return False


def resolved_names(source: str) -> set[str] | None:
    """Every qualified name a dotted name of the file may resolve to (None: CPython cannot parse it)."""
    table = import_table(source)
    if table is None:
        return None
    names, _ = dotted_uses(python_ast(source, keep=True))
    out: set[str] = set()
    for name in names:
        out |= table.resolve(name)
    return out


_last_loops: tuple[ast.Module, list[tuple[ast.stmt, dict[str, int]]]] | None = None


def loop_method_calls(tree: ast.Module) -> list[tuple[ast.stmt, dict[str, int]]]:
    """Each loop of the file (``for``, ``async for``, ``while``) with how often each ``x.name(...)`` is called inside it."""
    global _last_loops
    if _last_loops is not None and _last_loops[0] is tree:
        return _last_loops[1]
    out = []
    for stmt in statements(tree.body):
        if isinstance(stmt, (ast.For, ast.AsyncFor, ast.While)):
            counts: dict[str, int] = {}
            for node in ast.walk(stmt):
                if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
                    counts[node.func.attr] = counts.get(node.func.attr, 0) + 1
            out.append((stmt, counts))
    _last_loops = (tree, out)
    return out


def may_hold_loader(source: str) -> bool:
    """Might the program model know a value of the file as a DataLoader (so that a loop may run over batches)?

    Its loaders are ``torch.utils.data.DataLoader(...)`` and names that say "loader"; either way
    an identifier of the code (not a string or comment) says "loader".
    """
    names = identifiers(source)
    return names is None or any("loader" in n.lower() for n in names)


def may_carry_graph(source: str) -> bool:
    """Might the program model know some value of the file as a tensor that carries a graph?

    Only calling a module or a loss function makes one: a module or loss named so (``model``,
    ``criterion``), built from ``torch.nn`` (or a class of the file with a ``*Module`` base), a
    functional loss, or whatever a ``.to()``/``.cuda()`` statement moves (taken to be a module).
    """
    from torchlint.analysis.model import _MODEL_NAME
    from torchlint.analysis.training import is_loss_function_qualname, looks_like_loss_name

    table = import_table(source)
    if table is None:
        return True
    found = index(python_ast(source, keep=True))
    for ident in found.identifiers:
        low = ident.lower()
        if (ident[:1].islower() and _MODEL_NAME.search(low)) or looks_like_loss_name(ident):
            return True
        if ident in ("to", "cuda", "forward") or ident.endswith("Module"):
            return True
    for name in found.names:
        for qual in table.resolve(name):
            head, _, last = qual.rpartition(".")
            if (head in ("torch.nn", "torch.nn.modules") and last[:1].isupper()) or is_loss_function_qualname(qual):
                return True
    return False
