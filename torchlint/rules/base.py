"""What a rule is: one small class with its docs, examples and visitor methods.

A rule subclasses :class:`Rule`, defines libcst-style ``visit_<Node>`` /
``leave_<Node>`` methods, and calls :meth:`Rule.report`. The engine merges the
methods of every active rule into one traversal, so a rule never walks the
whole tree itself and never sees positions while it runs: positions are
computed once, after the traversal, and only for files that have findings.
Return values of visit methods are ignored (other rules still need the children).
"""

from __future__ import annotations

import re
import textwrap
from dataclasses import dataclass
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any, ClassVar, Union

import libcst as cst

from torchlint.diagnostics import Applicability, Severity

if TYPE_CHECKING:
    from libcst.metadata import CodeRange

    from torchlint.knowledge import Knowledge
    from torchlint.names import NameResolver


# --- fix operations: node-based, turned into text edits once positions exist ---


@dataclass(frozen=True)
class Replace:
    """Replace ``node`` with ``new`` (a libcst node, rendered by the module's codegen, or code)."""

    node: cst.CSTNode
    new: Union[cst.CSTNode, str]


@dataclass(frozen=True)
class InsertBefore:
    node: cst.CSTNode
    text: str


@dataclass(frozen=True)
class InsertAfter:
    node: cst.CSTNode
    text: str


@dataclass(frozen=True)
class InsertAtLine:
    """Insert ``text`` at the start of a 1-based line (one past the end appends)."""

    line: int
    text: str


FixOp = Union[Replace, InsertBefore, InsertAfter, InsertAtLine]


@dataclass(frozen=True)
class FixSpec:
    message: str
    ops: tuple[FixOp, ...]
    applicability: Applicability = "safe"


@dataclass(frozen=True)
class RelatedSpec:
    node: cst.CSTNode
    message: str


@dataclass
class PendingFinding:
    rule: "Rule"
    node: cst.CSTNode
    message: str
    fix: FixSpec | None
    related: tuple[RelatedSpec, ...]
    data: dict[str, Any]


@dataclass(frozen=True)
class Invalid:
    """An INVALID example: the code, and optionally the code its fix must produce."""

    code: str
    expected_fix: str | None = None
    # Number of findings expected in ``code``.
    count: int = 1


class Context:
    """Per-file facts shared by all rules: the source, the tree, and name resolution."""

    def __init__(self, path: str, source: str, module: cst.Module, names: "NameResolver") -> None:
        self.path = path
        self.source = source
        self.module = module
        self.names = names
        # Rules may cache per-file analyses here (e.g. the shape analysis) so that
        # two rules needing the same facts compute them once.
        self.cache: dict[str, Any] = {}
        # A torchlint.documents.DocumentFacts when linting a notebook's or a
        # Markdown file's code (None for Python files).
        self.document: Any = None
        # The whole file's text: ``source`` itself, except when the language server lints a
        # slice of the file after an edit (torchlint/slices.py). Facts about the whole file's
        # text (does it mention X anywhere?) must come from here.
        self.file_source = source
        self._ranges: dict[cst.CSTNode, Any] = {}
        self._statements: dict[int, Any] = {}  # top-level statements located so far (positions.py)

    def ranges(self, nodes: "Iterable[cst.CSTNode]") -> "Mapping[cst.CSTNode, CodeRange]":
        """Positions of ``nodes``, shared by the engine and every rule that needs a line early.

        Only the top-level statements holding nodes not yet located are
        regenerated (the engine publishes its statement index as
        ``cache["top_level_index"]``); without that index, the whole module once.
        """
        from torchlint.positions import full_positions, positions_for

        missing = [n for n in nodes if n not in self._ranges]
        if missing:
            index = self.cache.get("top_level_index")
            if isinstance(index, Mapping):
                starts = self.statement_starts()
                self._ranges.update(
                    positions_for(
                        self.module,
                        self.source,
                        missing,
                        index,
                        starts=starts,
                        parse_cache=self.cache.get("parse_cache"),
                        statements=self._statements,
                    )
                )
            else:
                self._ranges.update(full_positions(self.module))
        return self._ranges

    def statement_starts(self) -> "list[int] | None":
        """The line where each top-level statement's code (its leading comments included) starts,
        from CPython's tree (no codegen), or None when that tree does not match the module."""
        from torchlint.positions import statement_start_lines

        starts = self.cache.get("statement_starts")
        if starts is None:
            # Found once per file, not once per question (a rule may ask for a line per finding).
            starts = statement_start_lines(self.module, self.source)
            if starts is not None:
                self.cache["statement_starts"] = starts
        return starts

    def range_of(self, node: cst.CSTNode) -> "CodeRange":
        return self.ranges((node,))[node]

    def qualname(self, node: cst.BaseExpression) -> str | None:
        return self.names.qualname(node)

    def code(self, node: cst.CSTNode) -> str:
        return self.module.code_for_node(node)

    def import_insertion_line(self) -> int:
        """The line after the module docstring, ``__future__`` imports and leading imports."""
        line = 1
        for stmt in self.module.body:
            if not isinstance(stmt, cst.SimpleStatementLine):
                break
            first = stmt.body[0] if stmt.body else None
            is_docstring = (
                line == 1
                and isinstance(first, cst.Expr)
                and isinstance(first.value, (cst.SimpleString, cst.ConcatenatedString))
            )
            if not (is_docstring or isinstance(first, (cst.Import, cst.ImportFrom))):
                break
            line += _lines_of(self.module, stmt)
        return line

    @property
    def knowledge(self) -> "Knowledge":
        """PyTorch API facts for this file's target torch/torchvision release (see torchlint.knowledge).

        Ask it questions (``has_attribute``, ``instance_has``, ``accepted_keywords``,
        ``deprecation``, ``removal``, ``exists``, ...); ``None`` answers mean
        "cannot be known": stay silent. Built on first use, shared per target.
        """
        kb = self.cache.get("knowledge")
        if kb is None:
            from torchlint.knowledge import knowledge_for

            kb = self.cache["knowledge"] = knowledge_for(self.path, self.cache.get("target"))
        return kb

    def has_import(self, module: str, name: str) -> bool:
        """Is ``name`` bound to ``module.name`` at module level already?"""
        return self.names.module_scope.bindings.get(name) == f"{module}.{name}"


def _lines_of(module: cst.Module, stmt: cst.CSTNode) -> int:
    return module.code_for_node(stmt).count("\n")


class Rule:
    """Base class. Subclasses set the class attributes and define visitor methods.

    The docstring is the rule's documentation, in ruff's form: sections
    ``## What it does``, ``## Why is this bad?``, ``## Example``,
    ``## Use instead`` and ``## Fix safety``.
    """

    code: ClassVar[str]
    name: ClassVar[str]
    message: ClassVar[str]
    severity: ClassVar[Severity] = "error"
    # Deprecation rules get the LSP ``Deprecated`` tag.
    deprecated: ClassVar[bool] = False
    # The rule only runs on files containing one of these substrings: most
    # files of a large tree can be skipped without a visit.
    triggers: ClassVar[tuple[str, ...]] = ()
    # A finer, regex pre-filter checked after ``triggers`` match (None: none).
    trigger_pattern: ClassVar["re.Pattern[str] | None"] = None
    # The rule reports only where a dotted name resolves (through imports, see names.py)
    # to one of these qualified names: other files are skipped on CPython's tree
    # (torchlint/gates.py). Empty: no such pre-check.
    qualified_triggers: ClassVar[frozenset[str]] = frozenset()
    # Can the runtime checker confirm findings of this rule?
    confirmable: ClassVar[bool] = False
    # Off by default (noisy or stylistic rules, like TorchFix's TOR4xx): only a
    # selector that matches it (its code, a prefix, ``ALL``) turns it on.
    default_enabled: ClassVar[bool] = True
    # A plugin rule's documentation page (editors link the code to it; SARIF's helpUri).
    # Built-in rules leave it unset: they link to their section of docs/rules.md.
    url: ClassVar[str | None] = None
    # Runs only on documents (notebooks, Markdown): see Context.document.
    documents_only: ClassVar[bool] = False
    # After an edit, may the language server re-run this rule on just the statements the edit
    # can affect (torchlint/slices.py)? True promises that the rule's findings in a top-level
    # statement (their ranges, fixes, related locations, and ``data`` positions under keys
    # ending in ``_line``/``_span``) depend only on: the statements linked to it through
    # module-level names (binding and reading them, class and function names at any depth),
    # the module's imports and head, and file-wide text facts read from
    # ``Context.file_source``. False (the default, and what plugins get unless they say
    # otherwise): the rule runs on the whole file after every edit.
    incremental: ClassVar[bool] = False

    @classmethod
    def file_facts(cls, source: str) -> object:
        """For an ``incremental`` rule: everything it reads from the whole file's text
        (``Context.file_source``), as a comparable value. After an edit that changes it, the
        rule's findings are computed on the whole file again (a finding anywhere may depend on
        it). None: the rule reads nothing file-wide."""
        return None
    VALID: ClassVar[list[str]] = []
    INVALID: ClassVar[list[Invalid]] = []

    def __init__(self, context: Context) -> None:
        self.context = context
        self.pending: list[PendingFinding] = []

    @classmethod
    def applies_to(cls, source: str) -> bool:
        """A last, cheaper pre-filter than the CST walk (after ``triggers``/``trigger_pattern``): False skips the file.

        It must never be False where the rule would report something.
        """
        return True

    @classmethod
    def applies_to_document(cls, source: str, document: Any) -> bool:
        """For a document's code (``document``: its ``DocumentFacts``), a pre-filter that may read the
        document's facts and CPython's tree of ``source`` (checked last): False skips the file, and
        with it, where no other rule is left, the CST parse and walk.

        It must never be False where the rule would report something.
        """
        return True

    @classmethod
    def applies_to_path(cls, source: str, path: str) -> bool:
        """A pre-filter that may also look at where the file is (checked after ``triggers``, before
        ``trigger_pattern`` and :meth:`applies_to`): False skips the file.

        It must never be False where the rule would report something.
        """
        return True

    @classmethod
    def documentation(cls) -> str:
        return textwrap.dedent(cls.__doc__ or "").strip()

    @classmethod
    def summary(cls) -> str:
        return cls.message

    def report(
        self,
        node: cst.CSTNode,
        message: str | None = None,
        *,
        fix: FixSpec | None = None,
        related: tuple[RelatedSpec, ...] | list[RelatedSpec] = (),
        data: dict[str, Any] | None = None,
    ) -> None:
        self.pending.append(
            PendingFinding(self, node, message or self.message, fix, tuple(related), data or {})
        )


__all__ = [
    "Context",
    "FixOp",
    "FixSpec",
    "InsertAfter",
    "InsertAtLine",
    "InsertBefore",
    "Invalid",
    "PendingFinding",
    "RelatedSpec",
    "Replace",
    "Rule",
]
