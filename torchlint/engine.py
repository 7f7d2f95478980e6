"""The analyzer: one parse per file, every active rule in one traversal.

Everything that lints (the CLI, the language server, the runtime checker, the
tests) goes through :func:`lint_source`, so they all see the same findings with
the same ranges and the same fixes.
"""

from __future__ import annotations

import ast
import re
import sys
import threading
import traceback
import types
import warnings
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import libcst as cst

from torchlint.diagnostics import Edit, FileReport, Finding, Fix, Range, Related
from torchlint.gates import forget_statements, may_reference
from torchlint.gc_pause import gc_paused
from torchlint.incremental import ParseCache, python_ast, release_held
from torchlint.names import NameResolver
from torchlint.noqa import noqa_comments
from torchlint.sources import python_lines
from torchlint.walk import walk
from torchlint.rules import all_rules
from torchlint.rules.base import (
    Context,
    FixSpec,
    InsertAfter,
    InsertAtLine,
    InsertBefore,
    PendingFinding,
    Replace,
    Rule,
)

SYNTAX_ERROR_CODE = "TL001"



@dataclass(frozen=True)
class LintOptions:
    """What to run. ``codes`` are the selected rule codes (see rules.select_codes)."""

    codes: frozenset[str] | None = None  # None: the default set (rules.default_codes)
    # Rules from outside the registry, run whatever ``codes`` selects: torchlint.testing runs
    # one rule alone with it, and tests add rules that crash. Plugins are registry rules
    # (the ``torchlint.rules`` entry points) and obey selection like built-in ones.
    extra_rules: tuple[type[Rule], ...] = ()
    # Reuse the statements of earlier parses (the language server's analysis
    # processes re-lint the same file after every edit); see incremental.py.
    parse_cache: ParseCache | None = field(default=None, compare=False)
    # The torch/torchvision release to lint for (a knowledge.Target); None: the
    # file's own, from its config or declared dependencies (knowledge/target.py).
    target: object | None = None
    # Set when the source is a document's code (notebook cells, Markdown blocks):
    # a torchlint.documents.DocumentFacts; rules read it as ``Context.document``.
    document: Any = field(default=None, compare=False)
    # Set when ``source`` is a slice of a document (torchlint/slices.py: the statements an edit
    # can affect, the others replaced by ``pass``): a slices.WholeFile with the document's text
    # (``Context.file_source``, for file-wide text facts) and its module scope (name lookups
    # answer as in the whole file).
    whole_file: Any = field(default=None, compare=False)
    # Called with the rules' Context once they have run (torchlint/slices.py reads how much of
    # their budgets the program model and the shape analysis used).
    inspect: Callable[[Context], None] | None = field(default=None, compare=False)

    def may_parse(self, source: str) -> bool:
        """Might some selected rule need the CST of ``source``? Substring triggers only: a cheap
        over-approximation of :meth:`active_rule_classes` (the runner's estimate of a file's cost)."""
        rules = all_rules()
        classes = [
            r
            for c, r in rules.items()
            if c != SYNTAX_ERROR_CODE and (r.default_enabled if self.codes is None else c in self.codes)
        ]
        classes.extend(self.extra_rules)
        return any(
            (self.document is not None or not r.documents_only) and (not r.triggers or any(t in source for t in r.triggers))
            for r in classes
        )

    def active_rule_classes(self, source: str, path: str | None = None) -> list[type[Rule]]:
        rules = all_rules()
        classes = [
            r
            for c, r in rules.items()
            if c != SYNTAX_ERROR_CODE and (r.default_enabled if self.codes is None else c in self.codes)
        ]
        classes.extend(self.extra_rules)
        conventions = None
        code = source
        if self.document is not None:
            # ``models.resnet18(...)`` in a document means torchvision even where it never says so.
            source = source + self.document.trigger_text
            conventions = self.document.read_conventions
        return [
            r
            for r in classes
            if (self.document is not None or not r.documents_only)
            and (not r.triggers or any(t in source for t in r.triggers))
            and (path is None or r.applies_to_path(source, path))
            and (r.trigger_pattern is None or r.trigger_pattern.search(source) is not None)
            # Documents resolve conventional names without imports (``F``): they count as imports.
            and (not r.qualified_triggers or may_reference(source, r.qualified_triggers, conventions))
            and r.applies_to(source)
            and (self.document is None or r.applies_to_document(code, self.document))
        ]


class _Dispatcher:
    """Fans one traversal out to the visit/leave methods of every active rule."""

    def __init__(self, rules: list[Rule], names: NameResolver, on_crash: Callable[[Rule, BaseException], None]) -> None:
        self._names = names
        self._on_crash = on_crash
        self._visit: dict[str, list[tuple[Rule, Callable]]] = defaultdict(list)
        self._leave: dict[str, list[tuple[Rule, Callable]]] = defaultdict(list)
        for rule in rules:
            for attr in dir(type(rule)):
                if attr.startswith("visit_"):
                    self._visit[attr[6:]].append((rule, getattr(rule, attr)))
                elif attr.startswith("leave_"):
                    self._leave[attr[6:]].append((rule, getattr(rule, attr)))
        self._dead: set[int] = set()
        # id(node) -> index of its top-level statement, so positions can later be
        # computed for just the statements with findings (see positions.py).
        self.top_level_index: dict[int, int] = {}
        self._depth = 0
        self._top = -1

    def _call(self, handlers: list[tuple[Rule, Callable]], node: cst.CSTNode) -> None:
        for rule, method in handlers:
            if id(rule) in self._dead:
                continue
            try:
                method(node)
            except Exception as exc:  # a broken rule must not take the others down
                self._dead.add(id(rule))
                rule.pending.clear()
                self._on_crash(rule, exc)

    def on_visit(self, node: cst.CSTNode) -> bool:
        if self._depth == 1 and isinstance(node, cst.BaseStatement):
            self._top += 1
        self.top_level_index[id(node)] = self._top if self._depth else -1
        self._depth += 1
        kind = type(node).__name__
        if kind == "FunctionDef":
            self._names.push_function(node)  # type: ignore[arg-type]
        handlers = self._visit.get(kind)
        if handlers:
            self._call(handlers, node)
        return True

    def on_leave(self, original_node: cst.CSTNode) -> None:
        self._depth -= 1
        kind = type(original_node).__name__
        handlers = self._leave.get(kind)
        if handlers:
            self._call(handlers, original_node)
        if kind == "FunctionDef":
            self._names.pop_function()


from libcst._nodes.base import CSTNode as _CSTNode

_VALIDATE = _CSTNode.__post_init__
_no_validation_lock = threading.Lock()


def _skip_validation(self: _CSTNode) -> None:
    pass


def parse(source: str) -> cst.Module:
    """libcst's parse without re-validating every node it builds (a fifth of the parse).

    Each node's constructor checks the node's invariants (balanced parentheses, required
    whitespace), which nodes built by the parser from source text hold by construction
    (libcst's own comment on ``CSTNode.__post_init__`` suggests the same). Nodes built
    anywhere else (``with_changes``, a rule's fix) are validated as always once the parse is over.
    """
    with _no_validation_lock:
        _CSTNode.__post_init__ = _skip_validation  # type: ignore[method-assign]
        try:
            return cst.parse_module(source)
        finally:
            _CSTNode.__post_init__ = _VALIDATE  # type: ignore[method-assign]


# CPython judges syntax: a file is compiled (in C, faster than ast.parse) before
# libcst sees it. Its compiler counts nesting against the recursion limit (3
# levels a unit in 3.11), and this process raises that limit for deep CST walks,
# so the verdict is taken under the limit a fresh ``python file.py`` has.
_PYTHON_RECURSION_LIMIT = 1000
# libcst's parser is quadratic in nesting (time and retained memory: 3,000 levels
# of `a if b else ...` take 6 s and 1.5 GB, one statement), so the analyzer takes
# statements up to a third of what CPython accepts; deeper code is valid but is
# not analysed (an error for the file, never a crash or a stall).
ANALYSIS_RECURSION_LIMIT = 333
_limit_lock = threading.Lock()


class TooDeep(Exception):
    """Valid Python nested too deeply for the analyzer."""


def _compile_under(source: "str | ast.Module", path: str, limit: int) -> types.CodeType:
    depth, frame = 0, sys._getframe()
    while frame is not None:
        depth, frame = depth + 1, frame.f_back
    # The limit is per interpreter, but compile() holds the GIL from start to end,
    # so no other thread runs under the lowered limit except for a few bytecodes.
    with _limit_lock:
        old = sys.getrecursionlimit()
        sys.setrecursionlimit(depth + 50 + limit)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # the compiler's SyntaxWarnings are not findings: none on stderr
                return compile(source, path, "exec", dont_inherit=True)
        finally:
            sys.setrecursionlimit(old)


# The last tree compiled by compiled_tree (a document's facts read its names), for the verdict.
_compiled: tuple[ast.Module, types.CodeType] | None = None


def compiled_tree(tree: ast.Module, path: str) -> types.CodeType | None:
    """CPython's code object for ``tree`` under the analyzer's limit, or None if it does not compile
    so; python_verdict then takes it as the verdict on the text of the tree, if that tree is held."""
    global _compiled
    try:
        code = _compile_under(tree, path, ANALYSIS_RECURSION_LIMIT)
    except (SyntaxError, ValueError, TypeError, RecursionError, MemoryError):
        return None
    _compiled = (tree, code)
    return code


def python_verdict(source: str, path: str) -> Finding | None:
    """TL001 if CPython cannot compile ``source``; raises TooDeep if it can but the analyzer should not."""
    global _compiled
    from torchlint.incremental import held_ast

    tree = held_ast(source)
    if tree is not None and _compiled is not None and _compiled[0] is tree:
        _compiled = None
        return None  # compiled already (compiled_tree)
    if tree is not None:
        # The pre-checks' tree of this very text: compiling it skips the parse (a fifth of the
        # CPU of the verdict). It compiles only if the text does under the same limit; anything
        # else (an error, a limit hit converting the tree) is judged on the text, as always.
        try:
            _compile_under(tree, path, ANALYSIS_RECURSION_LIMIT)
            return None
        except (SyntaxError, ValueError, TypeError, RecursionError, MemoryError):
            pass
    try:
        _compile_under(source, path, ANALYSIS_RECURSION_LIMIT)
        return None
    except (RecursionError, MemoryError):
        pass  # too deep for the analyzer; is it too deep for Python too?
    except (SyntaxError, ValueError) as exc:
        return python_error_finding(source, exc)
    try:
        _compile_under(source, path, _PYTHON_RECURSION_LIMIT)
    except (SyntaxError, ValueError, RecursionError, MemoryError) as exc:
        return python_error_finding(source, exc)
    raise TooDeep()


def python_error_finding(source: str, exc: BaseException) -> Finding:
    """TL001 with CPython's message and position."""
    line, col = 1, 0
    if isinstance(exc, SyntaxError):
        message = f"{type(exc).__name__}: {exc.msg}"
        if exc.lineno:
            line, col = exc.lineno, max((exc.offset or 1) - 1, 0)
    elif isinstance(exc, RecursionError):
        message = f"too deeply nested for Python to compile (RecursionError: {exc})"
    elif isinstance(exc, MemoryError):
        message = "too deeply nested for Python to parse (its parser's stack overflowed)"
    else:  # ValueError: null bytes
        message = f"SyntaxError: {exc}"
    return _tl001(source, line, col, message)


def _tl001(source: str, line: int, col: int, message: str) -> Finding:
    lines = python_lines(source)
    line = min(max(line, 1), max(len(lines), 1))
    text = lines[line - 1] if lines else ""
    col = min(col, len(text))
    end_col = len(text) if col >= len(text) else col + 1
    return Finding(code=SYNTAX_ERROR_CODE, name="syntax-error", message=message, range=Range(line, col, line, end_col))


def syntax_error_finding(source: str, path: str, exc: Exception) -> Finding:
    """TL001 at the error, with CPython's wording when it has one (it is clearer than the CST parser's)."""
    line, col, message = 1, 0, str(exc).splitlines()[0] if str(exc) else "invalid syntax"
    if isinstance(exc, cst.ParserSyntaxError):
        line, col = exc.raw_line, exc.raw_column
        message = exc.message.splitlines()[0] if exc.message else message
    try:
        ast.parse(source, filename=path)
    except SyntaxError as err:
        if err.lineno:
            return parser_error_finding(source, err)
        message = err.msg
    except (ValueError, RecursionError, MemoryError):
        pass
    return _tl001(source, line, col, f"SyntaxError: {message}")


def parser_error_finding(source: str, exc: BaseException) -> Finding:
    """:func:`syntax_error_finding` for what CPython's parser raised on ``source`` itself (no second parse)."""
    line, col, message = 1, 0, str(exc).splitlines()[0] if str(exc) else "invalid syntax"
    if isinstance(exc, SyntaxError):
        message = exc.msg
        if exc.lineno:
            line, col = exc.lineno, max((exc.offset or 1) - 1, 0)
    return _tl001(source, line, col, f"SyntaxError: {message}")


_LONE_SURROGATE = re.compile("[\ud800-\udfff]")


def lint_source(source: str, path: str = "<stdin>", options: LintOptions = LintOptions()) -> FileReport:
    """Lint one file's text. Never raises for bad input: problems become findings or errors."""
    if not source.isascii():
        try:
            source.encode("utf-8")
        except UnicodeEncodeError:
            # A lone surrogate (an editor buffer can hold one; no file can) cannot be
            # compiled or parsed: lint the text as it would be saved, with U+FFFD in its
            # place (one code point for one, so every position stays where it was).
            source = _LONE_SURROGATE.sub("\ufffd", source)
    with gc_paused():
        try:
            return _lint(source, path, options)
        finally:
            _forget_trees()


def _forget_trees() -> None:
    """Let go of the CPython trees the pre-checks and the verdict kept for this text: kept past the
    lint, they are what the cyclic collector scans when it runs again (a lint allocates enough to
    make it run at once), a hundred thousand objects for a large file, only to find them alive."""
    global _compiled
    _compiled = None
    release_held()
    forget_statements()


def _parse(source: str, path: str, options: LintOptions, report: FileReport) -> tuple[cst.Module, list[int] | None] | None:
    # CPython has already accepted the text (see _lint).
    if options.parse_cache is not None:
        try:
            tree = python_ast(source)  # (the prescan of TL501/TL502 may have parsed this text already)
        except (SyntaxError, ValueError, RecursionError, MemoryError):
            tree = None  # the whole-file parse below reports it as libcst sees it
        built = options.parse_cache.parse(source, tree) if tree is not None else None
        if built is not None:
            return built
    try:
        return parse(source), None
    except cst.ParserSyntaxError as exc:
        # Valid Python (CPython compiled it) that libcst cannot read: not the user's syntax error.
        where = f"line {exc.raw_line}: " if exc.raw_line else ""
        report.errors.append(f"{path}: cannot analyse: libcst rejects this valid Python ({where}{exc.message.splitlines()[0]})")
    except (RecursionError, MemoryError, ValueError) as exc:
        report.errors.append(f"{path}: cannot analyse: {type(exc).__name__}: {exc}")
    return None


def _lint(source: str, path: str, options: LintOptions) -> FileReport:
    report = FileReport(path=path, source=source)
    classes = options.active_rule_classes(source, path)
    # CPython first, whatever rules are selected: what it cannot compile is TL001
    # (and so never fixed), and libcst never sees nesting it chokes on.
    try:
        error = python_verdict(source, path)
    except TooDeep:
        if classes:
            report.errors.append(
                f"{path}: not analysed: nested too deeply for the analyzer (valid Python, but a statement "
                f"nests deeper than {3 * ANALYSIS_RECURSION_LIMIT} levels)"
            )
        return report
    if error is not None:
        report.findings.append(error)
        return report
    if not classes:
        return report  # nothing can fire: the C-speed compile was the whole check
    parsed = _parse(source, path, options, report)
    if parsed is None:
        return report
    module, starts = parsed

    names = NameResolver(module, options.document.conventions if options.document is not None else None)
    context = Context(path, source, module, names)
    context.document = options.document
    if options.whole_file is not None:
        context.file_source = options.whole_file.source
        names.module_scope = options.whole_file.module_scope
    if starts is not None:
        context.cache["statement_starts"] = starts
    if options.parse_cache is not None:
        context.cache["parse_cache"] = options.parse_cache
    if options.target is not None:
        context.cache["target"] = options.target
    rules = [cls(context) for cls in classes]

    def on_crash(rule: Rule, exc: BaseException) -> None:
        where = traceback.extract_tb(exc.__traceback__)[-1]
        report.errors.append(
            f"{path}: rule {rule.code} ({rule.name}) crashed and was skipped for this file: "
            f"{type(exc).__name__}: {exc} (at {where.filename}:{where.lineno})"
        )

    dispatcher = _Dispatcher(rules, names, on_crash)
    # Context.ranges locates only the statements holding the nodes asked about.
    context.cache["top_level_index"] = dispatcher.top_level_index
    walk(module, dispatcher.on_visit, dispatcher.on_leave)
    pending = [p for r in rules for p in r.pending]
    if pending:
        report.findings.extend(_resolve(context, pending, report))
    report.findings = _apply_noqa(source, report.findings)
    report.findings.sort(key=lambda f: (f.range, f.code))
    if options.inspect is not None:
        options.inspect(context)
    _release(context, rules)
    return report


def _release(context: Context, rules: list[Rule]) -> None:
    """Break the cycles of a file's analyses (the model's facts name the model, a scope its function
    and back, the cache the dispatcher that holds the context): the tree and all that hangs on it go
    as soon as the lint ends, freed by reference counting, instead of waiting for the cyclic collector,
    which would first have to scan all of it (most of a file's objects) to find them unreachable.
    An analysis in ``context.cache`` that holds such cycles has a ``release_cycles()``."""
    for value in context.cache.values():
        release = getattr(value, "release_cycles", None)
        if release is not None:
            release()
    context.cache.clear()
    for rule in rules:
        rule.__dict__.clear()  # its pending findings name it


def _nodes_of(p: PendingFinding) -> Iterable[cst.CSTNode]:
    yield p.node
    for r in p.related:
        yield r.node
    if p.fix is not None:
        for op in p.fix.ops:
            node = getattr(op, "node", None)
            if node is not None:
                yield node


def _resolve(context: Context, pending: list[PendingFinding], report: FileReport) -> list[Finding]:
    """Turn node-based findings into ranges and text edits."""
    module, source = context.module, context.source
    # Shared with rules that needed a line earlier: no statement is located twice.
    positions = context.ranges([n for p in pending for n in _nodes_of(p)])
    line_lengths = _line_lengths(source)

    def rng(node: cst.CSTNode) -> Range:
        r = positions[node]
        return Range(r.start.line, r.start.column, r.end.line, r.end.column)

    # Rules write "\n"; inserted lines take the file's own ending (CRLF, CR).
    newline = module.default_newline

    def edits(spec: FixSpec) -> tuple[Edit, ...]:
        out = _edits(spec)
        if newline == "\n":
            return out
        return tuple(Edit(e.range, _with_newline(e.content, newline)) for e in out)

    def _edits(spec: FixSpec) -> tuple[Edit, ...]:
        out: list[Edit] = []
        for op in spec.ops:
            if isinstance(op, Replace):
                content = op.new if isinstance(op.new, str) else module.code_for_node(op.new)
                out.append(Edit(rng(op.node), content))
            elif isinstance(op, InsertBefore):
                r = rng(op.node)
                out.append(Edit(Range(r.line, r.column, r.line, r.column), op.text))
            elif isinstance(op, InsertAfter):
                r = rng(op.node)
                out.append(Edit(Range(r.end_line, r.end_column, r.end_line, r.end_column), op.text))
            elif isinstance(op, InsertAtLine):
                if op.line > len(line_lengths):
                    # Appending after a last line without a newline needs one first.
                    last = len(line_lengths)
                    end = line_lengths[-1] if line_lengths else 0
                    text = op.text if source.endswith("\n") or not source else "\n" + op.text
                    line, col = (last, end) if last else (1, 0)
                    out.append(Edit(Range(line, col, line, col), text))
                else:
                    out.append(Edit(Range(op.line, 0, op.line, 0), op.text))
        return tuple(out)

    findings: list[Finding] = []
    for p in pending:
        rule = p.rule
        try:
            fix = None if p.fix is None else Fix(p.fix.applicability, p.fix.message, edits(p.fix))
            findings.append(
                Finding(
                    code=rule.code,
                    name=rule.name,
                    message=p.message,
                    range=rng(p.node),
                    severity=rule.severity,
                    fix=fix,
                    related=tuple(Related(rng(r.node), r.message) for r in p.related),
                    deprecated=rule.deprecated,
                    data=p.data,
                )
            )
        except KeyError:
            # A rule reported a node that is not in this tree (e.g. one it built itself).
            report.errors.append(f"{report.path}: rule {rule.code} reported a node outside the file; finding dropped")
    return findings


def _with_newline(text: str, newline: str) -> str:
    return text.replace("\r\n", "\n").replace("\r", "\n").replace("\n", newline) if ("\n" in text or "\r" in text) else text


def _line_lengths(source: str) -> list[int]:
    return [len(line) for line in python_lines(source)]


def noqa_codes(source: str) -> dict[int, frozenset[str] | None]:
    """Line -> codes suppressed there (None: every code, a bare ``# noqa``)."""
    out: dict[int, frozenset[str] | None] = {}
    for lineno, m in noqa_comments(source).items():
        codes = m.group("codes")
        out[lineno] = None if codes is None else frozenset(c.upper() for c in re.split(r"[,\s]+", codes) if c)
    return out


def _apply_noqa(source: str, findings: Iterable[Finding]) -> list[Finding]:
    findings = list(findings)
    table = noqa_codes(source) if findings else None
    if not table:
        return findings
    kept = []
    for f in findings:
        if f.code == SYNTAX_ERROR_CODE:
            kept.append(f)
            continue
        suppressed = False
        for line in {f.range.line, f.range.end_line}:
            if line in table:
                codes = table[line]
                if codes is None or f.code in codes:
                    suppressed = True
        if not suppressed:
            kept.append(f)
    return kept
