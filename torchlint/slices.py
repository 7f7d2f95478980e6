"""Lint after an edit by re-running the rules only on the statements the edit can affect.

The language server's analysis processes lint the same document after every
keystroke; the parse is already incremental (:mod:`torchlint.incremental`), but
the rules and the program model used to run on the whole module each time. An
:class:`IncrementalLinter` keeps, per document, the findings of the last lint
grouped by top-level statement, and after an edit re-runs the rules on a
*slice* of the module: the statements the edit can affect, at their own lines,
with every other statement replaced by as many empty lines. Findings of the
other statements are reused, shifted to where those statements now start.

Which statements an edit can affect comes from the names they share at module
level. Statements are linked when one binds a module-level name (an assignment,
a ``def``/``class``, a ``global``, an assignment through ``name.attr`` or
``name[...]``) and the other reads or binds it; a class name or a nested
``def``'s name links wherever it occurs, since the program model looks classes
and functions up by name at any depth. Names bound only by ``import``
statements link nothing: every import is in every slice. A rule that declares
``incremental = True`` (see :class:`torchlint.rules.base.Rule`) promises that
its findings in a statement depend only on the statements linked to it
(transitively), the module's imports and its head, and on file-wide text facts
read from ``Context.file_source``; other rules (and plugins, by default) run on
the whole file after every edit. After an edit, the statements re-linted are
those linked (in the new text) to a changed statement, to a statement linked to
a removed one in the old text, or to any name a changed or removed statement
binds.

Anything this layer cannot vouch for falls back to a whole-file lint: syntax
errors, rule crashes or other errors, an edit in the module's head (its
docstring, leading imports and the statement after them: fixes that add an
import insert there), mixed indentation or line breaks, a finding located
outside its statements, and files where the program model or the shape analysis
used a large part of their per-file budgets (a budget is per file, so near its
end one part of a file could change what another part gets). The result is the
whole-file lint's: ``tests/test_slices.py`` compares the two after every step of
random edit sequences on real files.
"""

from __future__ import annotations

import ast
from collections import OrderedDict
from dataclasses import dataclass, replace
from typing import Any

from torchlint.diagnostics import Edit, FileReport, Finding, Fix, Range, Related
from torchlint.engine import LintOptions, TooDeep, lint_source, python_verdict
from torchlint.incremental import ParseCache, python_ast
from torchlint.positions import first_token_line
from torchlint.sources import python_lines

# A slice is worth it only while it is small: past this share of the file's lines, lint it whole.
_MAX_SLICE_SHARE = 0.6
# The program model's and the shape analysis' per-file budgets: a document is sliced only while
# an upper bound of what a whole-file lint would use stays under this share of either.
_BUDGET_SHARE = 0.25


@dataclass(frozen=True)
class WholeFile:
    """What a slice's lint knows of the whole document (see LintOptions.whole_file)."""

    source: str
    module_scope: Any  # torchlint.names.Scope of the whole module


@dataclass(frozen=True)
class _Facts:
    """What one top-level statement reads and binds, by name (see the module docstring)."""

    reads: frozenset[str]
    binds: frozenset[str]  # module-level bindings and class names: link with readers and other binders
    weak: frozenset[str]  # nested and method ``def`` names: link with readers only
    imports: frozenset[str]  # for a statement made of imports only: the names they bind
    head: bool  # an import statement, or a docstring (only counted as head when first)
    docstring: bool
    has_import: bool  # holds an ``import`` at module level (every slice keeps it)
    module_global: bool  # a ``global`` statement at module level
    module_reads: frozenset[str]  # names read by module-level code (not in functions)


_COMPREHENSIONS = (ast.ListComp, ast.SetComp, ast.DictComp, ast.GeneratorExp)
_FUNCTIONS = (ast.FunctionDef, ast.AsyncFunctionDef)


def _root_name(node: ast.expr) -> str | None:
    while isinstance(node, (ast.Attribute, ast.Subscript, ast.Starred)):
        node = node.value
    return node.id if isinstance(node, ast.Name) else None


def _own_locals(func: ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda) -> tuple[set[str], set[str]]:
    """Names certainly local to a function (its parameters and what its own body binds) and the
    names it declares ``global``."""
    local: set[str] = set()
    declared: set[str] = set()
    a = func.args
    for p in (*a.posonlyargs, *a.args, *a.kwonlyargs, a.vararg, a.kwarg):
        if p is not None:
            local.add(p.arg)
    stack: list[ast.AST] = list(func.body) if isinstance(func.body, list) else [func.body]
    while stack:
        n = stack.pop()
        if isinstance(n, (*_FUNCTIONS, ast.ClassDef)):
            local.add(n.name)
            continue  # its body is another scope (its decorators and defaults bind nothing here)
        if isinstance(n, ast.Lambda):
            continue
        if isinstance(n, ast.Global):
            declared.update(n.names)
            continue
        if isinstance(n, ast.Nonlocal):
            declared.update(n.names)  # not local here
            continue
        if isinstance(n, ast.Name) and not isinstance(n.ctx, ast.Load):
            local.add(n.id)
        elif isinstance(n, (ast.Import, ast.ImportFrom)):
            local.update((x.asname or x.name).split(".")[0] for x in n.names if x.name != "*")
        elif isinstance(n, ast.ExceptHandler) and n.name:
            local.add(n.name)
        elif isinstance(n, (ast.MatchAs, ast.MatchStar)) and n.name:
            local.add(n.name)
        elif isinstance(n, ast.MatchMapping) and n.rest:
            local.add(n.rest)
        if isinstance(n, _COMPREHENSIONS):
            # Comprehension targets are the comprehension's own; only a walrus binds here.
            for g in n.generators:
                stack.append(g.iter)
                stack.extend(g.ifs)
                stack.extend(x for x in ast.walk(g.target) if isinstance(x, ast.NamedExpr))
            stack.extend(x for x in ([n.key, n.value] if isinstance(n, ast.DictComp) else [n.elt]))
            continue
        stack.extend(ast.iter_child_nodes(n))
    return local - declared, declared


def statement_facts(nodes: list[ast.stmt], first: bool) -> _Facts:
    """The names a top-level statement (one or more ``;``-joined statements) reads and binds."""
    reads: set[str] = set()
    binds: set[str] = set()
    weak: set[str] = set()
    # (node, the locals of the function it is in, or None at module or class level)
    stack: list[tuple[ast.AST, frozenset[str] | None]] = [(n, None) for n in nodes]
    module_global = False
    module_reads: set[str] = set()
    while stack:
        n, local = stack.pop()
        if isinstance(n, (*_FUNCTIONS, ast.Lambda)):
            if not isinstance(n, ast.Lambda):
                (binds if local is None and n in nodes else weak).add(n.name)
                for d in n.decorator_list:
                    stack.append((d, local))
                if n.returns is not None:
                    stack.append((n.returns, local))
            a = n.args
            for d in (*a.defaults, *(x for x in a.kw_defaults if x is not None)):
                stack.append((d, local))
            for p in (*a.posonlyargs, *a.args, *a.kwonlyargs, a.vararg, a.kwarg):
                if p is not None and p.annotation is not None:
                    stack.append((p.annotation, local))
            inner, declared = _own_locals(n)
            binds.update(declared)
            body = n.body if isinstance(n.body, list) else [n.body]
            stack.extend((b, frozenset(inner)) for b in body)
            continue
        if isinstance(n, ast.ClassDef):
            binds.add(n.name)  # looked up by name at any depth
        elif isinstance(n, ast.Name):
            if isinstance(n.ctx, ast.Load):
                reads.add(n.id)
                if local is None:
                    module_reads.add(n.id)
            else:
                reads.add(n.id)
                if local is None:
                    binds.add(n.id)
        elif isinstance(n, (ast.Attribute, ast.Subscript)) and not isinstance(n.ctx, ast.Load):
            root = _root_name(n)
            if root is not None and (local is None or root not in local):
                binds.add(root)  # changes what a module-level name holds
        elif isinstance(n, (ast.Global, ast.Nonlocal)):
            binds.update(n.names)
            module_global = module_global or local is None
        elif isinstance(n, (ast.Import, ast.ImportFrom)):
            if local is None:
                binds.update((x.asname or x.name).split(".")[0] for x in n.names if x.name != "*")
        elif isinstance(n, ast.keyword) and n.arg is not None:
            reads.add(n.arg)
        elif isinstance(n, ast.ExceptHandler) and n.name and local is None:
            binds.add(n.name)
        elif isinstance(n, (ast.MatchAs, ast.MatchStar)) and n.name and local is None:
            binds.add(n.name)
        elif isinstance(n, ast.MatchMapping) and n.rest and local is None:
            binds.add(n.rest)
        stack.extend((c, local) for c in ast.iter_child_nodes(n))
    only_imports = all(isinstance(n, (ast.Import, ast.ImportFrom)) for n in nodes)
    star = any(isinstance(n, ast.ImportFrom) and any(x.name == "*" for x in n.names) for n in nodes)
    docstring = (
        first
        and isinstance(nodes[0], ast.Expr)
        and isinstance(nodes[0].value, ast.Constant)
        and isinstance(nodes[0].value.value, str)
    )
    has_import = any(isinstance(n, (ast.Import, ast.ImportFrom)) for n in nodes)
    if only_imports and not star:
        return _Facts(frozenset(reads), frozenset(), frozenset(weak), frozenset(binds), True, False, True, False,
                      frozenset(module_reads))
    # libcst's statement line counts as an import when its first small statement is one.
    head = isinstance(nodes[0], (ast.Import, ast.ImportFrom)) and nodes[0].lineno == nodes[-1].end_lineno
    return _Facts(frozenset(reads), frozenset(binds), frozenset(weak), frozenset(), head or docstring, docstring, has_import,
                  module_global, frozenset(module_reads))


def _groups(tree: ast.Module) -> list[list[ast.stmt]]:
    """The top-level statements grouped as :func:`torchlint.incremental.split_statements` cuts them."""
    groups: list[list[ast.stmt]] = []
    last = 0
    for node in tree.body:
        first = first_token_line(node)
        if groups and first <= last:
            groups[-1].append(node)
        else:
            groups.append([node])
        last = max(last, node.end_lineno or node.lineno)
    return groups


def _pieces(source: str, tree: ast.Module) -> tuple[list[str], list[int], list[int], list[list[ast.stmt]]] | None:
    """Texts, first lines and line counts of the top-level statements (comments and blank lines
    go with the statement after them; lines after the last one with it), and their AST nodes."""
    groups = _groups(tree)
    if not groups:
        return None
    lines = python_lines(source, keepends=True)
    texts: list[str] = []
    starts: list[int] = []
    counts: list[int] = []
    start = 1
    for k, group in enumerate(groups):
        end = len(lines) if k == len(groups) - 1 else max(n.end_lineno or n.lineno for n in group)
        if end < start:
            return None
        texts.append("".join(lines[start - 1 : end]))
        starts.append(start)
        counts.append(end - start + 1)
        start = end + 1
    return texts, starts, counts, groups


class _Links:
    """Union-find over statements, linked by shared module-level names."""

    def __init__(self, facts: list[_Facts]) -> None:
        self.parent = list(range(len(facts)))
        self.holders: dict[str, list[int]] = {}
        strong: dict[str, list[int]] = {}
        weak: dict[str, list[int]] = {}
        readers: dict[str, list[int]] = {}
        for i, f in enumerate(facts):
            for x in f.binds:
                strong.setdefault(x, []).append(i)
            for x in f.weak:
                weak.setdefault(x, []).append(i)
            for x in f.reads:
                readers.setdefault(x, []).append(i)
            for x in (*f.binds, *f.weak, *f.reads, *f.imports):
                self.holders.setdefault(x, []).append(i)
        for x, group in strong.items():
            self._join([*group, *weak.get(x, ()), *readers.get(x, ())])
        for x, group in weak.items():
            if x not in strong:
                self._join([*group, *readers.get(x, ())])
        # Module-level code runs in one frame: statements reading a name nothing binds (a
        # builtin, an undefined name) there may meet in what the model records about it.
        imported = {x for f in facts for x in f.imports}
        module_readers: dict[str, list[int]] = {}
        for i, f in enumerate(facts):
            for x in f.module_reads:
                if x not in strong and x not in weak and x not in imported:
                    module_readers.setdefault(x, []).append(i)
        for group in module_readers.values():
            self._join(group)

    def find(self, i: int) -> int:
        parent = self.parent
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    def _join(self, group: list[int]) -> None:
        if len(group) < 2:
            return
        root = self.find(group[0])
        for i in group[1:]:
            r = self.find(i)
            if r != root:
                self.parent[r] = root


@dataclass
class _State:
    key: tuple
    texts: list[str]
    starts: list[int]
    counts: list[int]
    facts: list[_Facts]
    links: _Links
    # Per statement: the findings of incremental rules located in it.
    found: list[list[Finding]]
    # The incremental rules' file-wide facts (Rule.file_facts) in this text.
    file_facts: tuple
    # An upper bound of the share of the analyses' budgets a whole-file lint would use.
    budget_bound: float = 0.0
    # After a whole-file lint: its text and the incremental rules' findings, cut into
    # statements when the next edit comes (_materialize).
    pending: tuple | None = None


@dataclass
class _Usage:
    """The share of their per-file budgets the program model and the shape analysis used."""

    share: float = 0.0

    def inspect(self, context: Any) -> None:
        from torchlint.analysis.model import _KEY, _RETURN_BUDGET, ProgramModel
        from torchlint.shapes import CACHE_KEY

        model = context.cache.get(_KEY)
        if isinstance(model, ProgramModel):
            self.share = max(self.share, (_RETURN_BUDGET - model._budget) / _RETURN_BUDGET)
            if model.capped:
                self.share = 1.0  # its facts may depend on how often other parts ran
            oracle = getattr(model, "_oracle", None)  # the shape analysis answering the model's questions
            interp = getattr(oracle, "interp", None)
            if interp is not None:
                self.share = max(self.share, interp.ticks / interp.budget)
        shapes = context.cache.get(CACHE_KEY)
        if shapes is not None:
            self.share = max(self.share, getattr(shapes, "budget_share", 1.0))


def _shift_range(r: Range, line_map) -> Range | None:
    a, b = line_map(r.line), line_map(r.end_line)
    if a is None or b is None:
        return None
    return Range(a, r.column, b, r.end_column)


def _shift_finding(f: Finding, line_map) -> Finding | None:
    """``f`` with every position moved by ``line_map`` (old line -> new line, None: not movable)."""
    rng = _shift_range(f.range, line_map)
    if rng is None:
        return None
    fix = f.fix
    if fix is not None:
        edits = []
        for e in fix.edits:
            r = _shift_range(e.range, line_map)
            if r is None:
                return None
            edits.append(Edit(r, e.content, e.cell))
        fix = Fix(fix.applicability, fix.message, tuple(edits))
    related = []
    for x in f.related:
        r = _shift_range(x.range, line_map)
        if r is None:
            return None
        related.append(Related(r, x.message, x.cell))
    data = f.data
    if data:
        moved = _shift_data(data, line_map)
        if moved is None:
            return None
        data = moved
    return replace(f, range=rng, fix=fix, related=tuple(related), data=data)


def _shift_data(data: dict[str, Any], line_map) -> dict[str, Any] | None:
    """Positions in a finding's data: keys ending in ``_line`` (a line) or ``_span`` (line, column,
    end line, end column), the convention rules follow (see Rule.report)."""
    out = dict(data)
    for k, v in data.items():
        if k.endswith("_line") and isinstance(v, int):
            moved = line_map(v)
            if moved is None:
                return None
            out[k] = moved
        elif k.endswith("_span") and isinstance(v, (list, tuple)) and len(v) == 4:
            a, b = line_map(v[0]), line_map(v[2])
            if a is None or b is None:
                return None
            out[k] = type(v)([a, v[1], b, v[3]])
    return out


def _positions(f: Finding) -> list[int]:
    lines = [f.range.line, f.range.end_line]
    if f.fix is not None:
        for e in f.fix.edits:
            lines += [e.range.line, e.range.end_line]
    for x in f.related:
        lines += [x.range.line, x.range.end_line]
    for k, v in (f.data or {}).items():
        if k.endswith("_line") and isinstance(v, int):
            lines.append(v)
        elif k.endswith("_span") and isinstance(v, (list, tuple)) and len(v) == 4:
            lines += [v[0], v[2]]
    return lines


def _index_of(starts: list[int], line: int) -> int:
    """The statement whose lines hold ``line`` (the last one for lines past the end)."""
    lo, hi = 0, len(starts) - 1
    if line < starts[0]:
        return -1
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if starts[mid] <= line:
            lo = mid
        else:
            hi = mid - 1
    return lo


class IncrementalLinter:
    """``lint(source, path, options)`` gives exactly ``lint_source(source, path, options)``, reusing
    what the last lint of the same document found where an edit cannot have changed it."""

    def __init__(self, documents: int = 2) -> None:
        self._states: OrderedDict[str, _State] = OrderedDict()
        self._documents = documents
        self._facts: dict[tuple[bool, str], _Facts] = {}
        self.slices = 0  # lints done on a slice
        self.fulls = 0  # whole-file lints
        self.last: str = ""  # how the last lint was done, and why (for tests)

    # ------------------------------------------------------------------ public
    def lint(self, source: str, path: str, options: LintOptions) -> FileReport:
        state = self._states.pop(path, None)
        try:
            report = self._lint(source, path, options, state)
        except _Whole as whole:
            self.last = f"whole: {whole}"
            report = self._whole(source, path, options)
            if (
                path not in self._states
                and state is not None
                and (state.texts or state.pending is not None)
                and state.key == self._key(path, options)
            ):
                # This text cannot be sliced (half-typed code, say): the next edit starts from
                # the last one that could, which is still exactly what it says.
                self._remember(path, state)
        return report

    def forget(self, path: str) -> None:
        self._states.pop(path, None)

    # ------------------------------------------------------------------ internals
    def _codes(self, options: LintOptions) -> tuple[frozenset[str], frozenset[str], tuple, tuple]:
        """The selected codes and the extra rules, each split into incremental ones and the others."""
        from torchlint.rules import all_rules

        rules = all_rules()
        selected = [c for c, r in rules.items() if (r.default_enabled if options.codes is None else c in options.codes)]
        inc = frozenset(c for c in selected if getattr(rules[c], "incremental", False))
        inc_extra = tuple(r for r in options.extra_rules if getattr(r, "incremental", False))
        whole_extra = tuple(r for r in options.extra_rules if not getattr(r, "incremental", False))
        return inc, frozenset(selected) - inc, inc_extra, whole_extra

    def _file_facts(self, source: str, options: LintOptions) -> tuple:
        from torchlint.rules import all_rules

        inc, _, inc_extra, _ = self._codes(options)
        rules = all_rules()
        classes = [rules[c] for c in sorted(inc)] + list(inc_extra)
        return tuple(r.file_facts(source) for r in classes)

    def _key(self, path: str, options: LintOptions) -> tuple:
        from torchlint.knowledge.target import target_for_path

        target = options.target if options.target is not None else target_for_path(path)
        return (options.codes, options.extra_rules, target, id(options.parse_cache))

    def _whole(self, source: str, path: str, options: LintOptions) -> FileReport:
        """A whole-file lint; keeps what the next edit needs when the file can be sliced later."""
        self.fulls += 1
        usage = _Usage()
        report = lint_source(source, path, replace(options, inspect=usage.inspect))
        if report.errors or options.document is not None or options.parse_cache is None:
            return report
        if any(f.code == "TL001" for f in report.findings) or usage.share > _BUDGET_SHARE:
            return report
        if not source.isascii():
            try:
                source.encode("utf-8")
            except UnicodeEncodeError:
                return report  # a lone surrogate (the engine linted it with U+FFFD in its place)
        # The statements and their facts are worked out when the next edit comes (a file opened
        # and never edited does not pay for them).
        inc, _, inc_extra, _ = self._codes(options)
        inc = inc | {r.code for r in inc_extra}
        pending = (source, [f for f in report.findings if f.code in inc])
        self._remember(path, _State(self._key(path, options), [], [], [], [], _Links([]), [],
                                    self._file_facts(source, options), usage.share, pending))
        return report

    def _materialize(self, state: _State) -> None:
        """Cut the text of a whole-file lint into statements and sort its findings into them."""
        assert state.pending is not None
        source, findings = state.pending
        state.pending = None
        try:
            tree = ast.parse(source)
        except (SyntaxError, ValueError, RecursionError, MemoryError):
            raise _Whole("no AST for the last text") from None
        cut = _pieces(source, tree)
        if cut is None:
            raise _Whole("no statements in the last text")
        texts, starts, counts, groups = cut
        facts = [self._facts_of(t, g, k == 0) for k, (t, g) in enumerate(zip(texts, groups))]
        found: list[list[Finding]] = [[] for _ in texts]
        for f in findings:
            found[_index_of(starts, f.range.line)].append(f)
        state.texts, state.starts, state.counts, state.facts = texts, starts, counts, facts
        state.links, state.found = _Links(facts), found

    def _remember(self, path: str, state: _State) -> None:
        self._states[path] = state
        while len(self._states) > self._documents:
            self._states.popitem(last=False)

    def _facts_of(self, text: str, group: list[ast.stmt], first: bool) -> _Facts:
        key = (first, text)
        facts = self._facts.get(key)
        if facts is None:
            facts = statement_facts(group, first)
            if len(self._facts) > 5_000:
                self._facts.clear()
            self._facts[key] = facts
        return facts

    def _lint(self, source: str, path: str, options: LintOptions, old: _State | None) -> FileReport:
        if old is None:
            raise _Whole("no earlier lint of this document to start from")
        if old.key != self._key(path, options) or options.document is not None:
            raise _Whole("settings changed")
        if old.pending is not None:
            self._materialize(old)
        if not source.isascii():
            try:
                source.encode("utf-8")
            except UnicodeEncodeError:
                raise _Whole("a lone surrogate") from None
        file_facts = self._file_facts(source, options)
        if file_facts != old.file_facts:
            raise _Whole("a file-wide fact a rule reads changed")
        cut = self._cut_edit(source, path, old)
        if cut is None:
            # Where the edit's own statements cannot be told apart: the whole text, cut anew.
            try:
                if python_verdict(source, path) is not None:
                    raise _Whole("syntax error")
            except TooDeep:
                raise _Whole("too deep") from None
            try:
                tree = python_ast(source)
            except (SyntaxError, ValueError, RecursionError, MemoryError):
                raise _Whole("no AST") from None
            whole_cut = _pieces(source, tree)
            if whole_cut is None:
                raise _Whole("no statements")
            texts, starts, counts, all_groups = whole_cut
            n_old, n_new = len(old.texts), len(texts)
            # The edit: a run of statements replaced by another (common prefix and suffix kept).
            p = 0
            while p < min(n_old, n_new) and old.texts[p] == texts[p]:
                p += 1
            s = 0
            while s < min(n_old, n_new) - p and old.texts[n_old - 1 - s] == texts[n_new - 1 - s]:
                s += 1
            groups = all_groups[p : n_new - s]
        else:
            texts, starts, counts, groups, p, s = cut
            n_old, n_new = len(old.texts), len(texts)
        facts = [
            old.facts[k] if k < p else old.facts[k - n_new + n_old] if k >= n_new - s else self._facts_of(texts[k], groups[k - p], k == 0)
            for k in range(n_new)
        ]
        # The head (docstring, leading imports) and the statement after it: fixes insert imports there.
        head_end = self._head_end(facts)
        if p <= head_end or p <= self._head_end(old.facts):
            raise _Whole("edit in the module's head")
        links = _Links(facts)
        changed_new = list(range(p, n_new - s))
        changed_old = list(range(p, n_old - s))
        seeds: set[int] = set(changed_new)
        dirty: set[str] = set()
        for k in changed_old:
            f = old.facts[k]
            dirty.update(f.binds, f.weak, f.imports)
        for k in changed_new:
            f = facts[k]
            dirty.update(f.binds, f.weak, f.imports)
        for x in dirty:
            seeds.update(links.holders.get(x, ()))
        # Statements linked to a removed one in the old text.
        old_roots = {old.links.find(k) for k in changed_old}
        for k in range(n_old):
            if (k < p or k >= n_old - s) and old.links.find(k) in old_roots:
                seeds.add(k if k < p else k - n_old + n_new)
        roots = {links.find(k) for k in seeds}
        redo = {k for k in range(n_new) if links.find(k) in roots}
        # What the slice holds: the statements to redo, every import, and the head.
        keep = set(redo)
        keep.update(k for k in range(n_new) if facts[k].has_import or k < head_end or k == 0)
        total = sum(counts)
        if sum(counts[k] for k in keep) > _MAX_SLICE_SHARE * total:
            raise _Whole("the edit reaches most of the file")
        inc, whole_codes, inc_extra, whole_extra = self._codes(options)
        # An unkept statement becomes a ``pass`` on its last line: the kept statements keep
        # their lines and their exact text (so the parse cache knows them), and the head ends
        # where it ended.
        parts = []
        blank = 0
        for k, text in enumerate(texts):
            if k in keep:
                if blank:
                    parts.append("\n" * (blank - 1) + "pass\n")
                    blank = 0
                parts.append(text)
            else:
                blank += counts[k]
        if blank:
            parts.append("\n" * (blank - 1) + "pass\n")
        sliced = "".join(parts)
        if not source.endswith(("\n", "\r")) and n_new - 1 not in keep:
            sliced = sliced[:-1]  # the last line has no line break
        if not redo:
            part = FileReport(path=path)  # nothing to re-lint (a change that links to nothing)
            usage = _Usage()
        else:
            part, usage = self._lint_slice(source, sliced, path, options, texts, keep, inc, inc_extra)
        bound = old.budget_bound + usage.share
        if usage.share > _BUDGET_SHARE or bound > 2 * _BUDGET_SHARE:
            raise _Whole("budgets")
        return self._merge(source, path, options, old, texts, starts, counts, facts, links, keep, redo, part, p, s, bound, whole_codes, whole_extra, file_facts)

    def _lint_slice(self, source: str, sliced: str, path: str, options: LintOptions, texts: list[str], keep: set[int],
                    inc: frozenset[str], inc_extra: tuple) -> tuple[FileReport, _Usage]:
        """Lint the slice with the incremental rules."""
        n_new = len(texts)
        # Name lookups in the slice answer as in the whole file (a fix that imports a name
        # checks that nothing else binds it): the module scope of every statement.
        from torchlint.names import Scope

        cache = options.parse_cache
        if cache is None:
            raise _Whole("no parse cache")
        statements = [cache.statement(t, k == 0, k == n_new - 1) for k, t in enumerate(texts)]
        if any(x is None for x in statements):
            raise _Whole("a statement does not parse on its own")
        whole = WholeFile(source, Scope().scan(statements))
        usage = _Usage()
        part = lint_source(sliced, path, replace(options, codes=inc, extra_rules=inc_extra, inspect=usage.inspect, whole_file=whole))
        if part.errors or any(f.code == "TL001" for f in part.findings):
            raise _Whole("the slice did not lint cleanly")
        self._check_layout(texts, keep, options.parse_cache)
        return part, usage

    def _merge(self, source: str, path: str, options: LintOptions, old: _State, texts: list[str], starts: list[int],
               counts: list[int], facts: list[_Facts], links: _Links, keep: set[int], redo: set[int], part: FileReport,
               p: int, s: int, bound: float, whole_codes: frozenset[str], whole_extra: tuple, file_facts: tuple) -> FileReport:
        """The slice's findings in the re-linted statements, the others' from the last lint, and
        the rules linted whole."""
        n_old, n_new = len(old.texts), len(texts)
        total = sum(counts)
        found: list[list[Finding]] = [[] for _ in texts]
        for f in part.findings:
            k = _index_of(starts, f.range.line)
            if k not in keep:
                raise _Whole("a finding outside the slice's statements")
            for line in _positions(f):
                j = _index_of(starts, line) if line <= total else n_new - 1
                if j not in keep:
                    raise _Whole("a finding reaches outside the slice")
            if k in redo:
                found[k].append(f)
        # Findings of statements not re-linted: from the last lint, moved with their statements.
        # Old lines: before the edited statements they stay, after them they move by ``delta``.
        old_total = sum(old.counts)
        lo = old.starts[p] if p < n_old else old_total + 2
        if s:
            hi = old.starts[n_old - s] - 1
            delta = starts[n_new - s] - old.starts[n_old - s]
        else:
            hi, delta = old_total + 1, 0

        def line_map(line: int) -> int | None:
            if line < 1 or lo <= line <= hi:
                return None
            return line if line < lo else line + delta

        for k in range(n_new):
            if k in redo:
                continue
            j = k if k < p else k - n_new + n_old
            for f in old.found[j]:
                if delta == 0:  # nothing moved: the finding stands as it was, unless it reaches the edit
                    if any(line < 1 or lo <= line <= hi for line in _positions(f)):
                        raise _Whole("a reused finding reaches an edited statement")
                    found[k].append(f)
                    continue
                moved = _shift_finding(f, line_map)
                if moved is None:
                    raise _Whole("a reused finding reaches an edited statement")
                found[k].append(moved)
        findings = [f for group in found for f in group]
        rest_options = replace(options, codes=whole_codes, extra_rules=whole_extra)
        if rest_options.active_rule_classes(source, path):
            rest = lint_source(source, path, rest_options)
            if rest.errors:
                raise _Whole("errors from rules linted whole")
            findings.extend(rest.findings)
        findings.sort(key=lambda f: (f.range, f.code))
        self._remember(path, _State(old.key, texts, starts, counts, facts, links, found, file_facts, bound))
        self.slices += 1
        self.last = f"slice: {len(redo)} of {n_new} statements re-linted, {sum(counts[k] for k in keep)} of {total} lines in the slice"
        return FileReport(path=path, findings=findings, source=source)

    def _cut_edit(self, source: str, path: str, old: _State) -> tuple | None:
        """The new text's statements without parsing all of it: the old statements the text still
        starts and ends with, and between them the edited region, compiled and parsed alone.

        The old statements are whole statements ending at a line end (the last one, which holds
        the lines after it, is never kept at the front), so the text between them starts where
        a top-level statement may; if it compiles on its own and its last statement ends on
        its last line, the whole text compiles and is cut exactly there. Compile errors that
        involve two top-level statements need a ``global`` at module level or a ``__future__``
        import: with either, None (the caller compiles and parses the whole text). None too
        for syntax errors and anything unusual; the caller then judges the whole text."""
        n_old = len(old.texts)
        if any(f.module_global for f in old.facts):
            return None
        off = 0
        p = 0
        while p < n_old - 1 and source.startswith(old.texts[p], off):
            off += len(old.texts[p])
            p += 1
        end = len(source)
        j = n_old - 1
        while j >= p and end - len(old.texts[j]) >= off and source.endswith(old.texts[j], off, end):
            end -= len(old.texts[j])
            j -= 1
        s = n_old - 1 - j
        middle = source[off:end]
        if "__future__" in middle:
            return None
        groups: list[list[ast.stmt]] = []
        mid_texts: list[str] = []
        mid_counts: list[int] = []
        if middle:
            if not middle.endswith(("\n", "\r")) and s:
                return None
            try:
                if python_verdict(middle, path) is not None:
                    return None
                tree = ast.parse(middle)
            except (TooDeep, SyntaxError, ValueError, RecursionError, MemoryError):
                return None
            cut = _pieces(middle, tree)
            if cut is None:
                return None
            mid_texts, _, mid_counts, groups = cut
            lines = len(python_lines(middle))
            last = max(x.end_lineno or x.lineno for x in groups[-1])
            if s and last != lines:
                return None  # lines after its last statement would belong to the next one
            if any(self._facts_of(t, g, p + k == 0).module_global for k, (t, g) in enumerate(zip(mid_texts, groups))):
                return None
        texts = old.texts[:p] + mid_texts + old.texts[n_old - s :]
        counts = old.counts[:p] + mid_counts + old.counts[n_old - s :]
        if not texts:
            return None
        starts = []
        line = 1
        for c in counts:
            starts.append(line)
            line += c
        return texts, starts, counts, groups, p, s

    @staticmethod
    def _head_end(facts: list[_Facts]) -> int:
        """The index of the first statement after the module's head."""
        k = 0
        while k < len(facts) and facts[k].head and (k == 0 or not facts[k].docstring):
            k += 1
        return k

    @staticmethod
    def _check_layout(texts: list[str], keep: set[int], cache: ParseCache | None) -> None:
        """The slice must print as the file does: the same default indent and line break."""
        if cache is None:
            raise _Whole("no parse cache")
        indents: set[str] = set()
        newlines: set[str] = set()
        kept_indent = False
        for k, text in enumerate(texts):
            piece = cache.peek(text, k == 0)
            if piece is None:
                raise _Whole("a statement not in the parse cache")
            if piece.indent is not None:
                indents.add(piece.indent)
                kept_indent = kept_indent or k in keep
            if piece.newline is not None:
                newlines.add(piece.newline)
        if len(indents) > 1 or len(newlines) > 1 or (indents and not kept_indent):
            raise _Whole(f"layout: indents {sorted(indents)}, line breaks {sorted(newlines)}, kept indented: {kept_indent}")


class _Whole(Exception):
    """This edit is linted whole (the message says why)."""
