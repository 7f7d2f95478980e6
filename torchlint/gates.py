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
import bisect
import re
from collections.abc import Callable, Mapping
from functools import cache, lru_cache

from torchlint.incremental import python_ast

_BLOCKS = ("body", "orelse", "finalbody")


class ImportTable:
    """Every name an import of the file binds (any scope), with each module it may stand for."""

    def __init__(self) -> None:
        self.bindings: dict[str, set[str]] = {}
        self.stars: set[str] = set()
        self.modules: set[str] = set()  # every absolute module an import names (and ``module.name`` of a from-import)

    def bind(self, name: str, qualified: str) -> None:
        self.bindings.setdefault(name, set()).add(qualified)

    def chains(self, qualified: str) -> set[str]:
        """The dotted texts that NameResolver may resolve to ``qualified`` (or to a name below it)."""
        out = set()
        for local, targets in self.bindings.items():
            for target in targets:
                if qualified == target:
                    out.add(local)
                elif qualified.startswith(target + "."):
                    out.add(local + qualified[len(target) :])
                elif target.startswith(qualified + "."):
                    out.add(local)  # `from torchvision.models import resnet18`: below torchvision.models
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


_last_statements: tuple[ast.Module, list[ast.stmt]] | None = None


def all_statements(tree: ast.Module) -> list[ast.stmt]:
    """Every statement of the tree, in nested blocks, defs and classes too (expressions are not walked):
    each before those it holds, its blocks in the order body, else, finally, handlers, cases. Listed
    once per tree for all the pre-checks that ask."""
    global _last_statements
    if _last_statements is None or _last_statements[0] is not tree:
        out: list[ast.stmt] = []
        _list_statements(tree.body, out)
        _last_statements = (tree, out)
    return _last_statements[1]


def _list_statements(body: list[ast.stmt], out: list[ast.stmt]) -> None:
    for stmt in body:
        out.append(stmt)
        if type(stmt) in _SIMPLE:
            continue
        for attr in _BLOCKS:
            block = getattr(stmt, attr, None)
            if block:
                _list_statements(block, out)
        for handler in getattr(stmt, "handlers", ()):
            _list_statements(handler.body, out)
        for case in getattr(stmt, "cases", ()):
            _list_statements(case.body, out)


# Statements that hold no statement.
_SIMPLE = frozenset(
    getattr(ast, n) for n in ("Expr", "Assign", "AugAssign", "AnnAssign", "Return", "Delete", "Pass", "Break", "Continue",
                              "Raise", "Assert", "Import", "ImportFrom", "Global", "Nonlocal")
)  # fmt: skip


def forget_statements() -> None:
    """A lint is over (engine._forget_trees): drop what was kept of its text, the listed statements
    of its tree and its import table, and run the resets registered with :func:`per_lint`."""
    global _last_statements, _last, _last_with
    _last_statements = _last = _last_with = None
    for reset in _PER_LINT:
        reset()


# Resets of the pre-checks' one-text caches (keyed by the identity of the text they judged).
_PER_LINT: list[Callable[[], None]] = []


def per_lint(reset: Callable[[], None]) -> Callable[[], None]:
    """Register ``reset`` to run when a lint ends. A pre-check's cache serves the rules of one lint
    (TL203 and TL204 ask the same question of the same text); kept past it, it would hold the text
    and answer a later lint of that very string object (a benchmark's repeated runs) for free."""
    _PER_LINT.append(reset)
    return reset


def _scan(body: list[ast.stmt], table: ImportTable) -> None:
    for stmt in body:
        if isinstance(stmt, ast.Import):
            for alias in stmt.names:
                table.modules.add(alias.name)
                if alias.asname:
                    table.bind(alias.asname, alias.name)
                else:
                    top = alias.name.split(".")[0]
                    table.bind(top, top)
        elif isinstance(stmt, ast.ImportFrom):
            module = "." * stmt.level + (stmt.module or "")
            if stmt.module and not stmt.level:
                table.modules.add(stmt.module)
                table.modules.update(f"{stmt.module}.{a.name}" for a in stmt.names)
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
_last_with: tuple[ImportTable, Mapping[str, str], ImportTable] | None = None


def import_table(source: str, conventions: Mapping[str, str] | None = None) -> ImportTable | None:
    """The file's imports (None when CPython cannot parse it: then nothing may be skipped).

    ``conventions``: a document's conventional names (``F`` -> torch.nn.functional), which
    NameResolver gives a name that nothing binds: each may stand for its module too.
    """
    global _last, _last_with
    if _last is not None and _last[0] is source:
        table = _last[1]
    else:
        try:
            tree = python_ast(source, keep=True)
        except (SyntaxError, ValueError, RecursionError, MemoryError):
            table = None
            _last = (source, None)
        else:
            table = imports_of(source, tree)
    if table is None or not conventions:
        return table
    if _last_with is not None and _last_with[0] is table and _last_with[1] is conventions:
        return _last_with[2]
    extended = ImportTable()
    extended.bindings = {name: set(modules) for name, modules in table.bindings.items()}
    extended.stars = set(table.stars)
    for name, module in conventions.items():
        extended.bind(name, module)
    _last_with = (table, conventions, extended)
    return extended


def imports_of(source: str, tree: ast.Module) -> ImportTable:
    """The import table of ``source``, read from ``tree``, its CPython tree (a document's, which
    building it parsed), and kept as :func:`import_table`'s answer for this very text until the
    lint ends."""
    global _last
    if _last is None or _last[0] is not source or _last[1] is None:
        table = ImportTable()
        _scan(tree.body, table)
        _last = (source, table)
    return _last[1]  # type: ignore[return-value]


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


def _chain_in(source: str, chain: str) -> "re.Pattern[str] | None":
    """The chain's pattern, or None where the text lacks one of its parts (most chains of a file's
    imports: no pattern to compile, a first lint compiled over a hundred)."""
    return _chain_pattern(chain) if all(part in source for part in chain.split(".")) else None


def may_reference(source: str, qualified: frozenset[str], conventions: Mapping[str, str] | None = None) -> bool:
    """Might some dotted name of ``source`` resolve to one of ``qualified`` (or below one)? (``conventions``: see import_table.)"""
    table = import_table(source, conventions)
    if table is None:
        return True
    for name in qualified:
        if any(m == name or m.startswith(name + ".") for m in table.stars):
            return True  # `from torchvision.models import *`: any free name may be one below
        for chain in table.chains(name):
            pattern = _chain_in(source, chain)
            if pattern is not None and pattern.search(source):
                return True
    return False


def _first_line(stmt: ast.stmt) -> int:
    decorators = getattr(stmt, "decorator_list", None)
    return min(d.lineno for d in decorators) if decorators else stmt.lineno


class Words:
    """Words to look for in any case, as a pattern of :func:`lines_matching`: ``Words(("model", "net"),
    bounded=("to",))`` finds the lines that ``(?i)model|net|\\bto\\b`` matches on. An alternation
    has no literal to scan for, so the regex engine tries it at every character; one search per word
    scans at C speed (on the case-folded text, when folding changes no offset)."""

    def __init__(self, words: tuple[str, ...], bounded: tuple[str, ...] = ()) -> None:
        alternatives = [re.escape(w) for w in words] + [rf"\b{re.escape(w)}\b" for w in bounded]
        self.pattern = re.compile("(?i)" + "|".join(alternatives))
        self.searches = [re.compile(re.escape(w.lower())) for w in words] + [
            re.compile(rf"{re.escape(w.lower())}(?<!\w{re.escape(w.lower())})(?!\w)") for w in bounded
        ]

    def offsets(self, source: str) -> list[int]:
        # Case-folded, each character stays one (the common case, ASCII always): offsets in ``low``
        # are the text's. Otherwise (``ß`` folds to two) the alternation runs on the text itself.
        low = source.casefold()
        if len(low) != len(source):
            return [m.start() for m in self.pattern.finditer(source)]
        found: set[int] = set()
        for search in self.searches:
            found.update(m.start() for m in search.finditer(low))
        return sorted(found)


def lines_matching(source: str, pattern: "re.Pattern[str] | Words") -> list[int]:
    """The (1-based, ascending) lines where ``pattern`` matches, as Python counts lines."""
    if isinstance(pattern, Words):
        offsets = pattern.offsets(source)
    else:
        offsets = [m.start() for m in pattern.finditer(source)]
    if not offsets:
        return []
    if "\r" in source:
        starts = [0, *(m.end() for m in re.finditer(r"\r\n|\r|\n", source))]
        return sorted({bisect.bisect_right(starts, o) for o in offsets})
    out, line, pos = [], 1, 0
    for o in offsets:
        line += source.count("\n", pos, o)
        pos = o
        if not out or out[-1] != line:
            out.append(line)
    return out


def _overlaps(lines: list[int], first: int, last: int) -> bool:
    k = bisect.bisect_left(lines, first)
    return k < len(lines) and lines[k] <= last


def walk(node: ast.AST) -> list[ast.AST]:
    """``node`` and every node under it, as ``ast.walk`` yields them but in another order and without
    the ``Load``/``Store``/``Del`` markers (twice as fast: no generator per node)."""
    out: list[ast.AST] = []
    todo = [node]
    pop, push, extend, found = todo.pop, todo.append, todo.extend, out.append
    while todo:
        cur = pop()
        found(cur)
        for name in cur._fields:
            value = getattr(cur, name, None)
            if type(value) is list:
                extend([x for x in value if isinstance(x, ast.AST)])
            elif isinstance(value, ast.AST) and name != "ctx":
                push(value)
    return out


def nodes_on(tree: ast.Module, lines: list[int]) -> list[ast.AST]:
    """The nodes of the statements that overlap ``lines`` (ascending): a simple statement whole, a
    compound one's own expressions and the overlapping statements of its blocks. Most of a
    large file is never walked."""
    out: list[ast.AST] = []
    if lines:
        _collect(tree.body, lines, out)
    return out


def _collect(body: list[ast.stmt], lines: list[int], out: list[ast.AST]) -> None:
    for stmt in body:
        if not _overlaps(lines, _first_line(stmt), stmt.end_lineno or stmt.lineno):
            continue
        if not isinstance(stmt, _COMPOUND):
            out.extend(walk(stmt))
            continue
        out.append(stmt)
        for name, value in ast.iter_fields(stmt):
            if isinstance(value, list):
                for item in value:
                    if isinstance(item, ast.stmt):
                        _collect([item], lines, out)
                    elif isinstance(item, (ast.excepthandler, ast.match_case)):
                        out.append(item)
                        for sub in (getattr(item, "type", None), getattr(item, "pattern", None), getattr(item, "guard", None)):
                            if sub is not None:
                                out.extend(walk(sub))
                        _collect(item.body, lines, out)
                    elif isinstance(item, ast.AST):
                        out.extend(walk(item))
            elif isinstance(value, ast.AST):
                out.extend(walk(value))


_COMPOUND = tuple(
    getattr(ast, n) for n in ("FunctionDef", "AsyncFunctionDef", "ClassDef", "For", "AsyncFor", "While", "If", "With", "AsyncWith", "Try", "TryStar", "Match")
    if hasattr(ast, n)
)


def calls_near(source: str, pattern: "re.Pattern[str]") -> list[ast.Call] | None:
    """The calls on lines where ``pattern`` matches (None: CPython cannot parse the text)."""
    if import_table(source) is None:
        return None
    tree = python_ast(source, keep=True)
    return [n for n in nodes_on(tree, lines_matching(source, pattern)) if isinstance(n, ast.Call)]


def binary_operations_near(source: str, pattern: "re.Pattern[str]") -> list[ast.BinOp]:
    if import_table(source) is None:
        return []
    return [n for n in nodes_on(python_ast(source, keep=True), lines_matching(source, pattern)) if isinstance(n, ast.BinOp)]


def calls_to(source: str, qualified: frozenset[str]) -> list[ast.Call] | None:
    """The calls of ``source`` whose callee may resolve to one of ``qualified`` (None: unknown, CPython cannot parse it)."""
    table = import_table(source)
    if table is None:
        return None
    patterns = {_chain_in(source, chain) for name in qualified for chain in table.chains(name)}
    found = sorted({line for pattern in patterns if pattern is not None for line in lines_matching(source, pattern)})
    out = []
    for node in nodes_on(python_ast(source, keep=True), found):
        if isinstance(node, ast.Call):
            dotted = dotted_text(node.func)
            if dotted is not None and not table.resolve(dotted).isdisjoint(qualified):
                out.append(node)
    return out


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
    for node in all_statements(tree):
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


_WORD = r"[A-Za-z_]\w*"
_NOT_NAME = re.compile(r"#[^\n]*|[^\w.]")


def _dotted_names(nodes: list[ast.AST]) -> set[str]:
    out = set()
    for node in nodes:
        if type(node) is ast.Name:
            out.add(node.id)  # type: ignore[attr-defined]
        elif type(node) is ast.Attribute:
            dotted = dotted_text(node)
            if dotted is not None:
                out.add(dotted)
    return out


def resolved_under(source: str, prefixes: tuple[str, ...]) -> set[str] | None:
    """The qualified names under ``prefixes`` that dotted names of the code may resolve to (None: CPython cannot parse it).

    Only the statements on lines where an import binding that may lead under a prefix is
    named are walked.
    """
    table = import_table(source)
    if table is None:
        return None
    tree = python_ast(source, keep=True)
    heads = [
        local for local, targets in table.bindings.items()
        if any(t.startswith(p) or p.startswith(t + ".") or p == t for t in targets for p in prefixes)
    ]  # fmt: skip
    if any(any(m.startswith(p) or p.startswith(m + ".") for p in prefixes) for m in table.stars):
        names = _dotted_names(walk(tree))  # `from m import *`: any name may be m's
    elif heads:
        patterns = {_chain_in(source, local) for local in heads}
        lines = sorted({line for pattern in patterns if pattern is not None for line in lines_matching(source, pattern)})
        names = _dotted_names(nodes_on(tree, lines))
    else:
        return set()
    return {q for name in names for q in table.resolve(name) if any(q.startswith(p) for p in prefixes)}


def may_use_api(source: str, apis: frozenset[str]) -> bool:
    """Might the file name one of ``apis``: a dotted name resolving to it, an import of it, or of a module inside it?"""
    table = import_table(source)
    if table is None:
        return True
    for module in table.modules:
        parts = module.split(".")
        if any(".".join(parts[: i + 1]) in apis for i in range(len(parts))):
            return True
    if not may_reference(source, apis):
        return False
    return not apis.isdisjoint(resolved_under(source, tuple(sorted({a.split(".", 1)[0] for a in apis}))) or ())


def may_hold_torch_module(source: str) -> bool:
    """Might the program model know some value of the file as a torch module (``is_torch_module``)?

    Only a ``torch.nn`` class built by its qualified name, or a class of the file whose bases
    may lead to one, makes such a value.
    """
    table = import_table(source)
    if table is None:
        return True
    classes = classes_by_name(python_ast(source, keep=True))
    if any(may_be_torch_module_class(c, classes, table) for same in classes.values() for c in same):
        return True
    return any(_torch_module_class_name(q) for q in resolved_under(source, ("torch.nn",)) or ())


def _torch_module_class_name(qual: str) -> bool:
    head, _, last = qual.rpartition(".")
    return head in ("torch.nn", "torch.nn.modules") and last[:1].isupper()


_LOOP_CALLS = re.compile(r"\.\s*(?:step|optimizer_step|backward)\b")


def loop_method_calls(tree: ast.Module, source: str) -> list[tuple[ast.stmt, dict[str, int]]]:
    """Each loop of the file (``for``, ``async for``, ``while``) with how often ``x.step(...)``,
    ``x.optimizer_step(...)`` and ``x.backward(...)`` are called inside it."""
    lines = lines_matching(source, _LOOP_CALLS)
    out = []
    if not lines:
        return out
    for stmt in all_statements(tree):
        if isinstance(stmt, (ast.For, ast.AsyncFor, ast.While)) and _overlaps(lines, stmt.lineno, stmt.end_lineno or stmt.lineno):
            counts: dict[str, int] = {}
            for node in nodes_on(ast.Module(body=[stmt], type_ignores=[]), lines):
                if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
                    counts[node.func.attr] = counts.get(node.func.attr, 0) + 1
            out.append((stmt, counts))
    return out


_LOADER = re.compile("[Ll]oader|LOADER")


def may_hold_loader(source: str) -> bool:
    """Might the program model know a value of the file as a DataLoader (so that a loop may run over batches)?

    Its loaders are ``torch.utils.data.DataLoader(...)`` and names that say "loader"; either way
    an identifier of the code (not a string or comment) says "loader".
    """
    if import_table(source) is None:
        return True
    for node in nodes_on(python_ast(source, keep=True), lines_matching(source, _LOADER)):
        for ident in _identifiers(node):
            if "loader" in ident.lower():
                return True
    return False


def may_loop_over_loader(source: str) -> bool:
    """Might the program model see a ``for`` loop over a loader's batches (see analysis/value_flows.py)?

    Asked after :func:`may_hold_loader`: most files never name a loader at all."""
    global _last_loops
    if _last_loops is not None and _last_loops[0] is source:
        return _last_loops[1]  # (TL104 and TL105 both ask)
    table = import_table(source)
    if table is None:
        return True
    from torchlint.analysis.value_flows import LoaderFlow

    try:
        found = LoaderFlow(python_ast(source, keep=True), table).loops_over_loader()
    except RecursionError:
        found = True  # nested deeper than the flows follow: cannot say no (the verdict may then say TL001)
    _last_loops = (source, found)
    return found


_last_loops: tuple[str, bool] | None = None


@per_lint
def _forget_loops() -> None:
    global _last_loops
    _last_loops = None


_NEXT_CALL = re.compile(r"\.next\(")


def may_call_next_on_iterator(source: str) -> bool:
    """Might a ``x.next()`` of the file be called on what the program model knows as an iterator
    (see analysis/value_flows.py, IteratorFlow)?"""
    table = import_table(source)
    if table is None:
        return True
    tree = python_ast(source, keep=True)
    receivers = [
        n.func.value for n in nodes_on(tree, lines_matching(source, _NEXT_CALL))  # type: ignore[attr-defined]
        if type(n) is ast.Call and type(n.func) is ast.Attribute and n.func.attr == "next" and not n.args and not n.keywords  # type: ignore[attr-defined]
    ]  # fmt: skip
    if not receivers:
        return False
    from torchlint.analysis.value_flows import IteratorFlow

    try:
        flow = IteratorFlow(tree, table)
        return any(flow.holds(r) for r in receivers)
    except RecursionError:
        return True  # (see may_loop_over_loader)


def may_call_known_mode_module(source: str, functions: list[ast.FunctionDef | ast.AsyncFunctionDef]) -> bool:
    """Might one of ``functions`` (of this text's tree) call a module whose train/eval mode the
    program model knows (see analysis/value_flows.py)?"""
    table = import_table(source)
    if table is None:
        return True
    from torchlint.analysis.value_flows import ModeFlow

    try:
        flow = ModeFlow(python_ast(source, keep=True), table)
        return any(flow.called_in(f) for f in functions)
    except RecursionError:
        return True  # (see may_loop_over_loader)


def may_carry_graph_into(source: str, values: list[ast.expr]) -> bool:
    """Might one of ``values`` (expressions of this text's tree) be a tensor carrying an autograd
    graph to the program model (see analysis/value_flows.py)?"""
    table = import_table(source)
    if table is None:
        return True
    from torchlint.analysis.value_flows import GradFlow

    try:
        flow = GradFlow(python_ast(source, keep=True), table)
        return any(flow.holds(v) for v in values)
    except RecursionError:
        return True  # (see may_loop_over_loader)


def passes_argument(source: str, name: str, qualified: frozenset[str], parameter: str, position: int) -> bool:
    """Might a call of ``source`` pass ``parameter`` (by keyword, or positionally at ``position``) to a
    callee resolving to ``qualified`` or named ``name`` (a document's conventional ``nn.utils.rnn.name``)?"""
    calls = calls_to(source, qualified)
    if calls is None:
        return True
    for node in nodes_on(python_ast(source, keep=True), lines_matching(source, _words_pattern((name,)))):
        func = getattr(node, "func", None)
        if type(node) is ast.Call and (func.attr if type(func) is ast.Attribute else getattr(func, "id", None)) == name:  # type: ignore[union-attr]
            calls.append(node)  # type: ignore[arg-type]
    for call in calls:
        if any(k.arg == parameter for k in call.keywords):
            return True
        if len(call.args) > position and not any(type(a) is ast.Starred for a in call.args[: position + 1]):
            return True
    return False


class OnLines:
    """A ``trigger_pattern`` confined to one line, searched only on the lines where ``finder`` matches
    (a pattern with a literal first: the regex engine scans for it at C speed). A pattern without
    one (``^[ \\t]*x.to(``, an alternation) is otherwise tried at every character of the text."""

    def __init__(self, finder: str, line: str) -> None:
        self.finder = re.compile(finder)
        self.line = re.compile(line)

    def search(self, text: str) -> re.Match[str] | None:
        m = self.finder.search(text)
        while m is not None:
            i = m.start()
            start = max(text.rfind("\n", 0, i), text.rfind("\r", 0, i)) + 1
            ends = [e for e in (text.find("\n", i), text.find("\r", i)) if e != -1]
            end = min(ends) if ends else len(text)
            found = self.line.search(text[start:end])
            if found is not None:
                return found
            m = self.finder.search(text, end)
        return None


class WordsFirst:
    """A ``trigger_pattern`` searched only in a text holding one of ``words`` (each of its
    alternatives holds one): most texts are ruled out by substring tests at C speed."""

    def __init__(self, words: tuple[str, ...], pattern: str) -> None:
        self.words = words
        self.pattern = re.compile(pattern)

    def search(self, text: str) -> re.Match[str] | None:
        return self.pattern.search(text) if any(w in text for w in self.words) else None


def names_in_code(source: str, words: tuple[str, ...]) -> bool:
    """Does an identifier of the code (not a string or a comment) contain one of ``words``?"""
    pattern = _words_pattern(words)
    return any(pattern.search(i) for i in identifiers_on(python_ast(source, keep=True), lines_matching(source, pattern)))


@cache
def _words_pattern(words: tuple[str, ...]) -> re.Pattern[str]:
    return re.compile("|".join(re.escape(w) for w in words))


def identifiers_on(tree: ast.Module, lines: list[int]) -> list[str]:
    """The identifiers of the code on ``lines`` (names, attributes, parameters, defs, imported names)."""
    return [x for node in nodes_on(tree, lines) for x in _identifiers(node)]


def _identifiers(node: ast.AST) -> tuple[str, ...]:
    t = type(node)
    if t is ast.Name:
        return (node.id,)  # type: ignore[attr-defined]
    if t is ast.Attribute:
        return (node.attr,)  # type: ignore[attr-defined]
    if t is ast.arg:
        return (node.arg,)  # type: ignore[attr-defined]
    if t in (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef):
        return (node.name,)  # type: ignore[attr-defined]
    if t is ast.alias:
        return tuple(x for x in (*node.name.split("."), node.asname) if x)  # type: ignore[attr-defined]
    return ()


def may_carry_graph(source: str) -> bool:
    """Might the program model know some value of the file as a tensor that carries a graph?

    Only calling a module or a loss function makes one: a module or loss named so (``model``,
    ``criterion``), built from ``torch.nn`` (or a class of the file with a ``*Module`` base), a
    functional loss, or whatever a ``.to()``/``.cuda()`` moves (taken to be a module). Words of
    the text stand in for the identifiers of the code.
    """
    from torchlint.analysis.model import _MODEL_NAME
    from torchlint.analysis.training import is_loss_function_qualname, looks_like_loss_name

    if import_table(source) is None:
        return True
    for node in nodes_on(python_ast(source, keep=True), lines_matching(source, _GRAPH_WORDS)):
        for ident in _identifiers(node):
            low = ident.lower()
            if (ident[:1].islower() and _MODEL_NAME.search(low)) or looks_like_loss_name(ident):
                return True
            if ident in ("to", "cuda", "forward") or ident.endswith("Module"):
                return True
    return any(_torch_module_class_name(q) or is_loss_function_qualname(q) for q in resolved_under(source, ("torch.nn",)) or ())


# Words without which no identifier passes may_carry_graph's tests.
_GRAPH_WORDS = Words(
    ("model", "net", "module", "encoder", "decoder", "generator", "discriminator", "critic", "classifier", "backbone",
     "criterion", "loss", "cuda", "forward"),
    bounded=("to",),
)  # fmt: skip
