"""LSP notebook documents (3.17): a Jupyter notebook open in the editor is linted as one Document.

The client sends the notebook (``notebookDocument/didOpen``/``didChange``/``didClose``)
with its cells as text documents of their own (``vscode-notebook-cell:`` URIs);
pygls keeps the cells' order and texts. Here the cells are put together as an
nbformat-4 notebook, linted like a ``.ipynb`` file (names flow from cell to
cell, magics are understood, TL002 knows the document), and each finding goes
back to its cell's URI: diagnostics are published per cell, quick fixes and
``Disable TLxxx for this line`` edit the cells they concern (an import added by
TL002 lands in the first code cell), and fix-all edits every cell it changes.

Cell diagnostics are always pushed (clients pull diagnostics for text
documents, not reliably for cells); a pull for a cell answers with nothing, so
no finding is shown twice.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from lsprotocol import types as lsp

from torchlint.diagnostics import Confirmation, FileReport, Finding
from torchlint.server.convert import LineIndex, diff_edits, lsp_range_overlaps, text_edits, to_diagnostic

if TYPE_CHECKING:
    from torchlint.server.service import TorchlintService

NOTEBOOK_SYNC = lsp.NotebookDocumentSyncOptions(
    notebook_selector=[
        lsp.NotebookDocumentFilterWithCells(
            notebook="jupyter-notebook", cells=[lsp.NotebookCellLanguage(language="python")]
        )
    ],
    save=True,
)


@dataclass
class Cell:
    uri: str
    kind: str  # "code" | "markdown" (nbformat's cell_type)
    version: int | None
    text: str


@dataclass
class NotebookAnalysis:
    version: int | None
    cells: list[Cell]
    raw: str  # the notebook JSON that was linted
    findings: list[Finding]
    # cell URI -> [(finding index, diagnostic)]
    by_cell: dict[str, list[tuple[int, lsp.Diagnostic]]] = field(default_factory=dict)
    indexes: dict[str, LineIndex] = field(default_factory=dict)


@dataclass
class NotebookState:
    uri: str
    path: str | None
    seq: int = 0
    task: asyncio.Task | None = None
    analysis: NotebookAnalysis | None = None
    published: set[str] = field(default_factory=set)
    # "Confirm by running" verdicts, for the notebook text they were run on: (code, cell, range) -> verdict.
    confirmations: dict[tuple[str, int | None, Any], Confirmation] = field(default_factory=dict)
    confirmed_raw: str | None = None


def notebook_json(cells: Sequence[Cell]) -> str:
    """The cells as an nbformat-4 notebook (what torchlint lints for a ``.ipynb`` file)."""
    out = [{"cell_type": c.kind, "metadata": {}, "source": c.text} for c in cells]
    return json.dumps({"cells": out, "metadata": {"language_info": {"name": "python"}}, "nbformat": 4, "nbformat_minor": 5})


class Notebooks:
    """The service's notebook side: state per open notebook, and the per-cell views of its analysis."""

    def __init__(self, service: "TorchlintService") -> None:
        self.service = service
        self.open: dict[str, NotebookState] = {}
        self.cell_owner: dict[str, str] = {}  # cell URI -> notebook URI

    # --- the client's notebook ---

    def _cells(self, uri: str) -> tuple[int | None, list[Cell]] | None:
        got = self.service.documents.notebook(uri)  # type: ignore[attr-defined]
        if got is None:
            return None
        version, cells = got
        out = []
        for cell_uri, kind, language in cells:
            current = self.service.documents.get(cell_uri)
            if current is None:
                continue
            cell_kind = "code" if kind == "code" and language in (None, "python") else "markdown"
            out.append(Cell(cell_uri, cell_kind, current[0], current[1]))
        return version, out

    def is_cell(self, uri: str) -> bool:
        return uri in self.cell_owner

    # --- lifecycle ---

    def did_open(self, uri: str) -> asyncio.Task | None:
        path = None
        if uri.startswith("file:"):
            from pygls.uris import to_fs_path

            path = to_fs_path(uri)
        self.open[uri] = NotebookState(uri, path)
        return self.schedule(uri, 0)

    def did_change(self, uri: str) -> asyncio.Task | None:
        return self.schedule(uri, self.service.settings.debounce_ms / 1000) if uri in self.open else None

    def did_save(self, uri: str) -> asyncio.Task | None:
        return self.schedule(uri, 0) if uri in self.open else None

    def did_close(self, uri: str, cell_uris: Iterable[str] = ()) -> None:
        st = self.open.pop(uri, None)
        gone = set(cell_uris) | (st.published if st else set())
        for cell in list(self.cell_owner):
            if self.cell_owner[cell] == uri:
                del self.cell_owner[cell]
                gone.add(cell)
        for cell in gone:
            self.service.client.publish(cell, None, [])

    def schedule(self, uri: str, delay: float) -> asyncio.Task | None:
        st = self.open.get(uri)
        if st is None:
            return None
        st.seq += 1
        st.task = asyncio.ensure_future(self._lint(st, st.seq, delay))
        return st.task

    # --- linting ---

    async def _lint(self, st: NotebookState, seq: int, delay: float) -> NotebookAnalysis | None:
        if delay > 0:
            await asyncio.sleep(delay)
        if st.seq != seq or self.open.get(st.uri) is not st:
            return None
        got = self._cells(st.uri)
        if got is None:
            return None
        version, cells = got
        raw = notebook_json(cells)
        config = await self.service.file_config(st.path)
        path = st.path or st.uri
        try:
            report: FileReport | None = await self.service.run_job(
                ("lint_notebook", raw, path, config.codes), wanted=lambda: st.seq == seq and self.open.get(st.uri) is st
            )
        except Exception as exc:
            self.service.log(lsp.MessageType.Error, f"torchlint: {st.uri}: could not lint this notebook: {exc}")
            return None
        if report is None or st.seq != seq or self.open.get(st.uri) is not st:
            return None  # superseded
        current = self._cells(st.uri)
        if current is None or [(c.uri, c.text) for c in current[1]] != [(c.uri, c.text) for c in cells]:
            return None  # the notebook changed while it was linted: a newer lint is coming
        for message in report.errors:
            self.service.log(lsp.MessageType.Warning, f"torchlint: {message}")
        findings = report.findings
        if st.confirmed_raw == raw and st.confirmations:
            findings = [
                f.with_confirmation(st.confirmations[(f.code, f.cell, f.range)]) if (f.code, f.cell, f.range) in st.confirmations else f
                for f in findings
            ]
        analysis = self._convert(version, cells, raw, findings)
        st.analysis = analysis
        for c in cells:
            self.cell_owner[c.uri] = st.uri
        shown = set()
        for c in cells:
            diagnostics = [d for _, d in analysis.by_cell.get(c.uri, [])]
            if diagnostics or c.uri in st.published:
                self.service.client.publish(c.uri, c.version, diagnostics)
            if diagnostics:
                shown.add(c.uri)
        for stale in st.published - {c.uri for c in cells}:
            self.service.client.publish(stale, None, [])  # a removed cell keeps no diagnostics
        st.published = shown
        return analysis

    def _convert(self, version: int | None, cells: list[Cell], raw: str, findings: list[Finding]) -> NotebookAnalysis:
        a = NotebookAnalysis(version, cells, raw, findings)
        encoding = self.service.features.position_encoding
        for c in cells:
            a.indexes[c.uri] = LineIndex(c.text, encoding)
        for i, f in enumerate(findings):
            if f.cell is None or not 0 < f.cell <= len(cells):
                continue
            cell = cells[f.cell - 1]
            # Related locations in other cells would point into the wrong text.
            shown = replace(f, related=tuple(r for r in f.related if r.cell in (None, f.cell)))
            d = to_diagnostic(shown, a.indexes[cell.uri], cell.uri, self.service.features.style)
            a.by_cell.setdefault(cell.uri, []).append((i, d))
        return a

    async def analysis_for_cell(self, cell_uri: str) -> NotebookAnalysis | None:
        owner = self.cell_owner.get(cell_uri)
        st = self.open.get(owner) if owner else None
        if st is None:
            return None
        for _ in range(20):
            got = self._cells(st.uri)
            if got is None:
                return None
            a = st.analysis
            if a is not None and [(c.uri, c.text) for c in a.cells] == [(c.uri, c.text) for c in got[1]]:
                return a
            task = st.task
            if task is None or task.done():
                task = self.schedule(st.uri, 0)
            await asyncio.shield(task)  # type: ignore[arg-type]
        return st.analysis

    # --- code actions ---

    def _edit(self, a: NotebookAnalysis, per_cell: dict[str, list[lsp.TextEdit]]) -> lsp.WorkspaceEdit:
        versions = {c.uri: c.version for c in a.cells}
        if self.service.features.document_changes:
            return lsp.WorkspaceEdit(
                document_changes=[
                    lsp.TextDocumentEdit(
                        text_document=lsp.OptionalVersionedTextDocumentIdentifier(uri=uri, version=versions.get(uri)),
                        edits=edits,
                    )
                    for uri, edits in per_cell.items()
                ]
            )
        return lsp.WorkspaceEdit(changes=per_cell)

    def _fix_edit(self, a: NotebookAnalysis, f: Finding) -> lsp.WorkspaceEdit | None:
        assert f.fix is not None
        per_cell: dict[str, list[lsp.TextEdit]] = {}
        for e in f.fix.edits:
            if e.cell is None or not 0 < e.cell <= len(a.cells):
                return None
            uri = a.cells[e.cell - 1].uri
            per_cell.setdefault(uri, []).extend(text_edits([e], a.indexes[uri]))
        return self._edit(a, per_cell)

    async def code_actions(
        self, cell_uri: str, rng: lsp.Range, context: Iterable[lsp.Diagnostic], only: Sequence[str] | None
    ) -> list[lsp.CodeAction] | None:
        from torchlint.fixes import fix_is_applicable
        from torchlint.noqa import noqa_edits
        from torchlint.server.service import CONFIRM_KIND, FIX_ALL_KIND, _kind_wanted, _same_diagnostic

        a = await self.analysis_for_cell(cell_uri)
        if a is None:
            return None
        context = list(context)
        here = [
            (i, d)
            for i, d in a.by_cell.get(cell_uri, [])
            if lsp_range_overlaps(d.range, rng) or any(_same_diagnostic(d, c) for c in context)
        ]
        actions: list[lsp.CodeAction] = []
        if _kind_wanted(lsp.CodeActionKind.QuickFix, only):
            for i, d in here:
                f = a.findings[i]
                if f.fix is None:
                    continue
                edit = self._fix_edit(a, f)
                if edit is None:
                    continue
                unsafe = f.fix.applicability == "unsafe"
                actions.append(
                    lsp.CodeAction(
                        title=f"{f.code}: {f.fix.message}" + (" (unsafe fix: review the change)" if unsafe else ""),
                        kind=lsp.CodeActionKind.QuickFix,
                        diagnostics=[d],
                        is_preferred=not unsafe,
                        edit=edit,
                    )
                )
            cell = next(c for c in a.cells if c.uri == cell_uri)
            for i, d in here:
                f = a.findings[i]
                edits = noqa_edits(cell.text, [replace(f, cell=None)])
                if edits:
                    actions.append(
                        lsp.CodeAction(
                            title=f"Disable {f.code} for this line",
                            kind=lsp.CodeActionKind.QuickFix,
                            diagnostics=[d],
                            edit=self._edit(a, {cell_uri: text_edits(edits, a.indexes[cell_uri])}),
                        )
                    )
        if self.service.settings.runtime_enabled and _kind_wanted(CONFIRM_KIND, only):
            # The notebook's code cells run as one program; the command names the cell by its URI.
            actions += self.service.confirm_actions(cell_uri, [(a.findings[i], d) for i, d in here])
        wants_fix_all = (only is not None and _kind_wanted(FIX_ALL_KIND, only)) or (
            only is not None and _kind_wanted(lsp.CodeActionKind.SourceFixAll, only)
        )
        if wants_fix_all and any(fix_is_applicable(f.fix, unsafe=False) for f in a.findings):
            edit = await self.fix_all_edit(cell_uri, a)
            if edit is not None:
                actions.append(lsp.CodeAction(title="torchlint: fix all auto-fixable problems", kind=FIX_ALL_KIND, edit=edit))
        return actions or None

    async def fix_all_edit(self, cell_uri: str, a: NotebookAnalysis) -> lsp.WorkspaceEdit | None:
        from torchlint.documents import cell_sources  # (the server starts without the analyzer's imports)

        owner = self.cell_owner.get(cell_uri, cell_uri)
        st = self.open.get(owner)
        config = self.service.configs.for_file(st.path if st else None, self.service.settings)
        fixed = await self.service.run_job(("fix_all_notebook", a.raw, (st.path if st else None) or owner, config.codes))
        new = cell_sources(fixed) if isinstance(fixed, str) else None
        if not new or len(new) != len(a.cells):
            return None
        per_cell = {
            c.uri: diff_edits(c.text, text, a.indexes[c.uri]) for c, text in zip(a.cells, new) if text != c.text
        }
        return self._edit(a, per_cell) if per_cell else None

    async def fix_all(self, uri: str) -> tuple[lsp.WorkspaceEdit | None, int]:
        """Fix-all for a notebook (its URI or one of its cells'): the edit and how many findings it fixes."""
        from torchlint.fixes import fix_is_applicable

        nb = self.cell_owner.get(uri, uri)
        st = self.open.get(nb)
        if st is None:
            return None, 0
        cell = next(iter(self.cell_owner_of(nb)), None)
        a = await self.analysis_for_cell(cell) if cell else None
        if a is None:
            return None, 0
        n = sum(1 for f in a.findings if fix_is_applicable(f.fix, unsafe=False))
        return await self.fix_all_edit(cell, a), n  # type: ignore[arg-type]

    # --- confirm by running ---

    async def confirm(self, uri: str, target: dict[str, Any]) -> dict[str, Any]:
        """``torchlint.confirm`` on a cell (``line``/``column`` in the cell) or on a whole notebook's URI."""
        from torchlint.server import confirm as confirming
        from torchlint.server.service import RequestFailed

        nb = self.cell_owner.get(uri, uri)
        st = self.open.get(nb)
        cell = uri if self.is_cell(uri) else next(iter(self.cell_owner_of(nb)), None)
        a = await self.analysis_for_cell(cell) if cell else None
        if st is None or a is None:
            raise RequestFailed(f"torchlint: {uri} has no analysis")
        index = next((n for n, c in enumerate(a.cells, 1) if c.uri == uri), None)
        selected = [
            f for f in a.findings
            if (index is None or f.cell == index) and self.service.confirmable(f) and confirming.matches(target, f)
        ]  # fmt: skip
        if not selected:
            return {"confirmed": 0, "notReproduced": 0, "couldNotRun": 0, "message": "nothing to confirm"}
        plain = [replace(f, confirmation=None) for f in a.findings]
        chosen = [replace(f, confirmation=None) for f in selected]
        results = await self.service.run_confirmations(a.raw, st.path or st.uri, "notebook", chosen, plain)
        if st.confirmed_raw != a.raw:
            st.confirmations, st.confirmed_raw = {}, a.raw
        for f in results:
            if f.confirmation is not None:
                st.confirmations[(f.code, f.cell, f.range)] = f.confirmation
        # Show the evidence on the cells' diagnostics: a fresh analysis picks the verdicts up.
        task = self.schedule(nb, 0)
        if task is not None:
            await asyncio.shield(task)
        return confirming.tally(results)

    def cell_owner_of(self, nb_uri: str) -> list[str]:
        return [c for c, owner in self.cell_owner.items() if owner == nb_uri]


def notebook_cells(notebook: Any) -> list[tuple[str, str, str | None]]:
    """(cell URI, "code" | "markdown", language id or None) of an lsprotocol NotebookDocument, in order."""
    out = []
    for cell in notebook.cells:
        kind = "code" if cell.kind == lsp.NotebookCellKind.Code else "markdown"
        out.append((cell.document, kind, None))
    return out
