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


_last_index: tuple[ast.Module, list[tuple[str | None, ast.Call]], list[ast.BinOp]] | None = None


def _index(tree: ast.Module) -> tuple[list[tuple[str | None, ast.Call]], list[ast.BinOp]]:
    """The calls (with their callee's dotted name, None if it has none), and the binary operations (one walk per tree)."""
    global _last_index
    if _last_index is not None and _last_index[0] is tree:
        return _last_index[1], _last_index[2]
    calls, binops = [], []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            calls.append((dotted_text(node.func), node))
        elif isinstance(node, ast.BinOp):
            binops.append(node)
    _last_index = (tree, calls, binops)
    return calls, binops


def binary_operations(source: str) -> list[ast.BinOp]:
    return _index(python_ast(source, keep=True))[1]


def all_calls(source: str) -> list[ast.Call]:
    return [call for _, call in _index(python_ast(source, keep=True))[0]]


def calls_to(source: str, qualified: frozenset[str]) -> list[ast.Call] | None:
    """The calls of ``source`` whose callee may resolve to one of ``qualified`` (None: unknown, CPython cannot parse it)."""
    table = import_table(source)
    if table is None:
        return None
    if not may_reference(source, qualified):
        return []
    tree = python_ast(source, keep=True)
    return [call for dotted, call in _index(tree)[0] if dotted is not None and table.resolve(dotted) & qualified]


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


_last_dotted: tuple[ast.Module, set[str], set[str]] | None = None


def dotted_uses(tree: ast.Module) -> tuple[set[str], set[str]]:
    """Every dotted name of the file's code (each prefix of a chain too), and every module an import names."""
    global _last_dotted
    if _last_dotted is not None and _last_dotted[0] is tree:
        return _last_dotted[1], _last_dotted[2]
    names: set[str] = set()
    modules: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Attribute, ast.Name)):
            dotted = dotted_text(node)
            if dotted is not None:
                names.add(dotted)
        elif isinstance(node, ast.Import):
            modules.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            modules.add(node.module)
            modules.update(f"{node.module}.{alias.name}" for alias in node.names)
    _last_dotted = (tree, names, modules)
    return names, modules


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
