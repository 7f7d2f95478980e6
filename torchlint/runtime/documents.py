"""Confirm the findings of a notebook or a tutorial (Markdown, MyST, Quarto, RST) by running it.

The document's code cells or blocks are joined in document order into one
Python text (:mod:`torchlint.documents`: IPython magics and shell escapes
neutralised, cells whose magic is not Python left out, prose lines blank), and
that text goes through the same extraction, synthetic data, sandbox and
confirmers as a ``.py`` file (:func:`torchlint.runtime.confirm.confirm_findings`).
The verdicts come back to the findings as the user sees them (cell or block and
line), and so do the line numbers quoted in the evidence.

Two things differ from a ``.py`` file, because tutorials are written across
pages and prose:

* Imports TL002 would add (``F``, ``nn``, ``DataLoader`` used but never
  imported: an earlier page did it) are supplied, on a line of their own where
  the document has a blank one before its code, else in front of the first
  code line when that is a simple statement.
* A run that stops on a name the document never defines (an ``imshow`` helper
  shown only in prose, a ``num_epochs`` set on another page) says so:
  *could not run: `imshow` is never defined in this document (line 150)*.

Used by ``torchlint check --confirm``, ``torchlint confirm FILE[:cell N][:LINE]``
and the language server's "Confirm by running" on Markdown buffers and notebook
cells. Code runs only when one of those asks.
"""

from __future__ import annotations

import ast
import re
import threading
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from torchlint.diagnostics import Confirmation, Finding

__all__ = ["confirm_document", "document_language", "document_program"]

Progress = Callable[[int, int, Finding], None]


def document_language(path: str) -> str:
    """The document kind a path's name suggests: "notebook", "rst" or "markdown" (also MyST, Quarto, .txt)."""
    lower = path.lower()
    if lower.endswith(".ipynb"):
        return "notebook"
    if lower.endswith((".rst", ".rest")):
        return "rst"
    return "markdown"


def document_program(raw: str, path: str, language: str, codes: frozenset[str], conventions: Mapping[str, str] | None = None) -> tuple[Any, str, list[tuple[Finding, Finding]], dict[str, Finding]]:
    """(document, the Python text that runs, [(finding in that text, finding as shown)] of ``codes`` and of
    the rules that run as fixed on the way, {undefined name: its TL002 as shown})."""
    from torchlint.documents import text_findings
    from torchlint.runtime.confirm import AS_FIXED

    # The rules whose findings run as fixed on the way (AS_FIXED) are linted too: they are the context.
    doc, pairs = text_findings(raw, path, language, codes | frozenset(AS_FIXED) | {"TL002"}, conventions)
    undefined: dict[str, Finding] = {}
    missing_imports = []
    for inner, shown in pairs:
        if inner.code != "TL002":
            continue
        name = (inner.data or {}).get("name")
        if isinstance(name, str) and name not in undefined:
            undefined[name] = shown
        m = re.search(r"add `([^`]+)`", inner.message)
        if m and "defined later" not in inner.message:
            missing_imports.append(m.group(1))
    chosen_lines = {f.range.line for f, _ in pairs if f.code != "TL002"}
    source = _with_imports(doc, list(dict.fromkeys(missing_imports)), chosen_lines)
    return doc, source, [(f, m) for f, m in pairs if f.code != "TL002"], undefined


def _with_imports(doc: Any, statements: list[str], busy: set[int]) -> str:
    """The document's Python text with the imports TL002 would add, line numbers unchanged."""
    if not statements:
        return doc.text
    lines = doc.text.split("\n")
    first = next((n for n in range(1, len(doc.line_map)) if doc.line_map[n] is not None and lines[n - 1].strip()), None)
    if first is None:
        return doc.text
    joined = "; ".join(statements)
    if first >= 2 and not lines[first - 2].strip():
        lines[first - 2] = joined  # a blank (prose) line before the code: the imports' own line
        return "\n".join(lines)
    line = lines[first - 1]
    if first in busy or line[:1] in (" ", "\t", "@"):
        return doc.text  # a finding's columns on that line must stay as they are
    try:
        tree = ast.parse(line)
    except SyntaxError:
        return doc.text
    if len(tree.body) != 1 or not isinstance(tree.body[0], (ast.Import, ast.ImportFrom, ast.Assign, ast.Expr)):
        return doc.text  # a compound statement's header (`for x in y:`) cannot follow a `;`
    if isinstance(tree.body[0], ast.ImportFrom) and tree.body[0].module == "__future__":
        return doc.text
    lines[first - 1] = f"{joined}; {line}"
    return "\n".join(lines)


_NAME_ERROR = re.compile(r"NameError: name '(\w+)' is not defined")


def _explained(verdict: Confirmation, undefined: Mapping[str, Finding], claim_line: str) -> Confirmation:
    """A run stopped by a name the document does not define (in time) says so, in the reader's terms."""
    m = _NAME_ERROR.search(verdict.evidence)
    if verdict.status != "could-not-run" or m is None or m.group(1) not in undefined:
        return verdict
    name, tl002 = m.group(1), undefined[m.group(1)]
    where = f"cell {tl002.cell}, line {tl002.range.line}" if tl002.cell is not None else f"line {tl002.range.line}"
    later = re.search(r"defined later, (in [^)]+)", tl002.message)
    if later:
        why = f"`{name}` is used before this document defines it (TL002 at {where}; it is defined later, {later.group(1)})"
    else:
        why = f"`{name}` is never defined in this document (TL002 at {where})"
    what = "this line" if where == claim_line else claim_line
    return Confirmation("could-not-run", f"{why}, so {what} cannot run", {**verdict.detail, "undefined_name": name})


def confirm_document(
    raw: str,
    path: str,
    findings: Sequence[Finding],
    *,
    language: str | None = None,
    device: str = "cpu",
    timeout: float = 20.0,
    worker: Any = None,
    progress: Progress | None = None,
    cancel: threading.Event | None = None,
    conventions: Mapping[str, str] | None = None,
) -> list[Finding]:
    """The document's findings (as shown: cell/block coordinates), the confirmable ones with a verdict.

    ``raw`` is the file's text (a notebook's JSON). Like
    :func:`~torchlint.runtime.confirm.confirm_findings`: one warm ``worker``
    (else one started for the call), ``progress(done, total, finding)`` with the
    findings given here, ``cancel`` stops before the next finding.
    """
    from torchlint.runtime.confirm import confirm_findings, confirmable

    findings = list(findings)
    chosen = [i for i, f in enumerate(findings) if confirmable(f)]
    if not chosen:
        return findings
    codes = frozenset(findings[i].code for i in chosen)
    doc, source, pairs, undefined = document_program(raw, path, language or document_language(path), codes, conventions)
    by_place = {(m.code, m.cell, m.range): f for f, m in pairs}
    out = list(findings)
    inner: list[Finding] = []
    shown: list[int] = []
    for i in chosen:
        f = findings[i]
        match = by_place.get((f.code, f.cell, f.range))
        if match is None:
            out[i] = f.with_confirmation(
                Confirmation("could-not-run", "the finding is not in the document's code as it is now (lint it again)")
            )
            continue
        inner.append(match)
        shown.append(i)
    if not inner:
        return out
    original = {id(m): findings[i] for m, i in zip(inner, shown)}

    def report(n: int, of: int, finding: Finding) -> None:
        if progress is not None:
            progress(n, of, original.get(id(finding), finding))

    confirmed = confirm_findings(
        source, path, inner, device=device, timeout=timeout, worker=worker, progress=report, cancel=cancel,
        context=[f for f, _ in pairs],
    )  # fmt: skip
    for i, m, c in zip(shown, inner, confirmed):
        verdict = c.confirmation
        if verdict is None:
            continue  # cancelled before it ran
        f = findings[i]
        where = f"cell {f.cell}, line {f.range.line}" if f.cell is not None else f"line {f.range.line}"
        verdict = Confirmation(verdict.status, doc.relabel(verdict.evidence), verdict.detail)
        verdict = _explained(verdict, undefined, where)
        out[i] = f.with_confirmation(verdict)
    return out
