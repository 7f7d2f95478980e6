"""The language server and LSP 3.17 notebook documents: a Jupyter notebook open in an editor
(pytest-lsp client, VS Code profile) is linted as one document, with diagnostics per cell."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from lsprotocol import types as t

from test_server import session

# The language server over stdio, end to end: the full run, not the inner loop.
pytestmark = pytest.mark.slow

CELL_TEXTS = {
    "md": "# Training",
    "c1": "%matplotlib inline\nimport torch\nloader = torch.utils.data.DataLoader([1, 2])",
    "c2": "it = iter(loader)\nbatch = it.next()\ny = F.relu(torch.ones(1))",
}


def cell_uri(nb: Path, name: str) -> str:
    return f"vscode-notebook-cell:{nb.as_posix()}#{name}"


def cell(nb: Path, name: str) -> t.NotebookCell:
    kind = t.NotebookCellKind.Markup if name == "md" else t.NotebookCellKind.Code
    return t.NotebookCell(kind=kind, document=cell_uri(nb, name))


def item(nb: Path, name: str, text: str, version: int = 1) -> t.TextDocumentItem:
    return t.TextDocumentItem(uri=cell_uri(nb, name), language_id="markdown" if name == "md" else "python", version=version, text=text)


async def wait_for(predicate, timeout: float = 30.0):
    deadline = asyncio.get_running_loop().time() + timeout
    while asyncio.get_running_loop().time() < deadline:
        value = predicate()
        if value:
            return value
        await asyncio.sleep(0.05)
    raise AssertionError("timed out")


def codes(client, uri: str) -> list[tuple[str, int]]:
    return sorted((str(d.code), d.range.start.line) for d in client.diagnostics.get(uri, []))


def open_notebook(client, nb: Path, names=("md", "c1", "c2")) -> str:
    uri = nb.as_uri()
    client.notebook_document_did_open(
        t.DidOpenNotebookDocumentParams(
            notebook_document=t.NotebookDocument(uri=uri, notebook_type="jupyter-notebook", version=1, cells=[cell(nb, n) for n in names]),
            cell_text_documents=[item(nb, n, CELL_TEXTS[n]) for n in names],
        )
    )
    return uri


def edit_cell(client, nb: Path, version: int, name: str, text: str, cell_version: int) -> None:
    client.notebook_document_did_change(
        t.DidChangeNotebookDocumentParams(
            notebook_document=t.VersionedNotebookDocumentIdentifier(version=version, uri=nb.as_uri()),
            change=t.NotebookDocumentChangeEvent(
                cells=t.NotebookDocumentCellChanges(
                    text_content=[
                        t.NotebookDocumentCellContentChanges(
                            document=t.VersionedTextDocumentIdentifier(uri=cell_uri(nb, name), version=cell_version),
                            changes=[t.TextDocumentContentChangeWholeDocument(text=text)],
                        )
                    ]
                )
            ),
        )
    )


@pytest.mark.asyncio
async def test_notebook_cells_get_their_diagnostics_and_fixes(tmp_path):
    nb = tmp_path / "train.ipynb"
    async with session(tmp_path, "vscode", {"diagnosticMode": "pull"}) as c:
        open_notebook(c, nb)
        c2 = cell_uri(nb, "c2")
        # Names flow from cell 1 (loader, torch); the magic is no error; F was never imported.
        await wait_for(lambda: codes(c, c2) == [("TL002", 2), ("TL201", 1)])
        assert codes(c, cell_uri(nb, "c1")) == []

        actions = await c.text_document_code_action_async(
            t.CodeActionParams(
                text_document=t.TextDocumentIdentifier(uri=c2),
                range=t.Range(start=t.Position(line=1, character=10), end=t.Position(line=1, character=10)),
                context=t.CodeActionContext(diagnostics=[]),
            )
        )
        titles = [a.title for a in actions]
        assert "TL201: Replace `it.next()` with `next(it)`" in titles and "Disable TL201 for this line" in titles
        fix = next(a for a in actions if a.title.startswith("TL201:"))
        (change,) = fix.edit.document_changes
        assert change.text_document.uri == c2 and change.edits[0].new_text == "next(it)"

        # TL002's import goes into the first code cell, after its imports (and the magic).
        actions = await c.text_document_code_action_async(
            t.CodeActionParams(
                text_document=t.TextDocumentIdentifier(uri=c2),
                range=t.Range(start=t.Position(line=2, character=4), end=t.Position(line=2, character=4)),
                context=t.CodeActionContext(diagnostics=[]),
            )
        )
        tl002 = next(a for a in actions if a.title.startswith("TL002:"))
        (change,) = tl002.edit.document_changes
        assert change.text_document.uri == cell_uri(nb, "c1")
        assert change.edits[0].new_text.strip() == "import torch.nn.functional as F"

        fix_all = await c.text_document_code_action_async(
            t.CodeActionParams(
                text_document=t.TextDocumentIdentifier(uri=c2),
                range=t.Range(start=t.Position(line=0, character=0), end=t.Position(line=0, character=0)),
                context=t.CodeActionContext(diagnostics=[], only=["source.fixAll.torchlint"]),
            )
        )
        (action,) = fix_all
        assert sorted(ch.text_document.uri for ch in action.edit.document_changes) == sorted([c2, cell_uri(nb, "c1")])

        # Editing a cell re-lints the notebook.
        edit_cell(c, nb, 2, "c2", "it = iter(loader)\nbatch = next(it)\ny = F.relu(torch.ones(1))", 2)
        await wait_for(lambda: codes(c, c2) == [("TL002", 2)])

        # Adding a cell that imports F (before cell 2) clears TL002; the cells' order counts.
        c.notebook_document_did_change(
            t.DidChangeNotebookDocumentParams(
                notebook_document=t.VersionedNotebookDocumentIdentifier(version=3, uri=nb.as_uri()),
                change=t.NotebookDocumentChangeEvent(
                    cells=t.NotebookDocumentCellChanges(
                        structure=t.NotebookDocumentCellChangeStructure(
                            array=t.NotebookCellArrayChange(start=2, delete_count=0, cells=[cell(nb, "c3")]),
                            did_open=[item(nb, "c3", "import torch.nn.functional as F")],
                        )
                    )
                ),
            )
        )
        await wait_for(lambda: codes(c, c2) == [])

        # Removing it brings TL002 back.
        c.notebook_document_did_change(
            t.DidChangeNotebookDocumentParams(
                notebook_document=t.VersionedNotebookDocumentIdentifier(version=4, uri=nb.as_uri()),
                change=t.NotebookDocumentChangeEvent(
                    cells=t.NotebookDocumentCellChanges(
                        structure=t.NotebookDocumentCellChangeStructure(
                            array=t.NotebookCellArrayChange(start=2, delete_count=1, cells=[]),
                            did_close=[t.TextDocumentIdentifier(uri=cell_uri(nb, "c3"))],
                        )
                    )
                ),
            )
        )
        await wait_for(lambda: codes(c, c2) == [("TL002", 2)])

        # Moving the defining cell after its use: the names no longer flow.
        c.notebook_document_did_change(
            t.DidChangeNotebookDocumentParams(
                notebook_document=t.VersionedNotebookDocumentIdentifier(version=5, uri=nb.as_uri()),
                change=t.NotebookDocumentChangeEvent(
                    cells=t.NotebookDocumentCellChanges(
                        structure=t.NotebookDocumentCellChangeStructure(
                            array=t.NotebookCellArrayChange(start=1, delete_count=2, cells=[cell(nb, "c2"), cell(nb, "c1")]),
                        )
                    )
                ),
            )
        )
        await wait_for(lambda: ("TL002", 0) in codes(c, c2))
        assert any("defined later, in cell 3" in d.message for d in c.diagnostics[c2])

        c.notebook_document_did_close(
            t.DidCloseNotebookDocumentParams(
                notebook_document=t.NotebookDocumentIdentifier(uri=nb.as_uri()),
                cell_text_documents=[t.TextDocumentIdentifier(uri=cell_uri(nb, n)) for n in ("md", "c1", "c2")],
            )
        )
        await wait_for(lambda: len(c.diagnostics[c2]) == 0)  # closing clears its cells' diagnostics


@pytest.mark.asyncio
async def test_server_advertises_notebook_sync(tmp_path):
    from torchlint.server.notebooks import NOTEBOOK_SYNC
    from torchlint.server.app import create_server

    server = create_server()
    assert server._notebook_document_sync is NOTEBOOK_SYNC
    assert NOTEBOOK_SYNC.notebook_selector[0].notebook == "jupyter-notebook"


@pytest.mark.asyncio
async def test_markdown_buffer_is_linted_when_the_client_sends_it(tmp_path):
    doc = tmp_path / "tutorial.md"
    text = "# Data\n\n```python\nimport torch\nit = iter(torch.utils.data.DataLoader([1]))\nbatch = it.next()\n```\n"
    async with session(tmp_path, "vscode") as c:
        c.text_document_did_open(t.DidOpenTextDocumentParams(t.TextDocumentItem(uri=doc.as_uri(), language_id="markdown", version=1, text=text)))
        await wait_for(lambda: codes(c, doc.as_uri()) == [("TL201", 5)])
        actions = await c.text_document_code_action_async(
            t.CodeActionParams(
                text_document=t.TextDocumentIdentifier(uri=doc.as_uri()),
                range=t.Range(start=t.Position(line=5, character=9), end=t.Position(line=5, character=9)),
                context=t.CodeActionContext(diagnostics=[]),
            )
        )
        fix = next(a for a in actions if a.title.startswith("TL201:"))
        assert fix.edit.document_changes[0].edits[0].new_text == "next(it)"
        assert fix.edit.document_changes[0].edits[0].range.start == t.Position(line=5, character=8)


# --- confirm by running, in notebook cells and Markdown buffers (the real runtime checker) ----------

GPU_CELLS = {
    "g1": "import torch\nimport torch.nn as nn\nfrom torch.utils.data import DataLoader, TensorDataset",
    "g2": "loader = DataLoader(TensorDataset(torch.randn(64, 13), torch.randn(64, 1)), batch_size=8)\n"
          "model = nn.Sequential(nn.Linear(13, 32), nn.ReLU(), nn.Linear(32, 1)).cuda()",
    "g3": "!nvidia-smi\ndataiter = iter(loader)\nfeatures, prices = dataiter.next()",
    "g4": "predicted = model(features)",
}  # fmt: skip


async def confirm_at(c, uri: str, line: int, character: int) -> tuple[t.CodeAction, dict]:
    actions = await c.text_document_code_action_async(
        t.CodeActionParams(
            text_document=t.TextDocumentIdentifier(uri=uri),
            range=t.Range(start=t.Position(line=line, character=character), end=t.Position(line=line, character=character)),
            context=t.CodeActionContext(diagnostics=[], only=["quickfix.torchlint.confirm"]),
        )
    )
    (action,) = actions
    result = await asyncio.wait_for(
        c.workspace_execute_command_async(t.ExecuteCommandParams(command=action.command.command, arguments=action.command.arguments)),
        240,
    )
    return action, result


@pytest.mark.torch
@pytest.mark.asyncio
async def test_confirm_by_running_in_notebook_cells(tmp_path):
    pytest.importorskip("torch")
    nb = tmp_path / "gpu.ipynb"
    names = ("md", "g1", "g2", "g3", "g4")
    async with session(tmp_path, "vscode", {"runtime": {"enabled": True}}) as c:
        c.notebook_document_did_open(
            t.DidOpenNotebookDocumentParams(
                notebook_document=t.NotebookDocument(uri=nb.as_uri(), notebook_type="jupyter-notebook", version=1, cells=[cell(nb, n) for n in names]),
                cell_text_documents=[item(nb, n, {**CELL_TEXTS, **GPU_CELLS}[n]) for n in names],
            )
        )
        g3, g4 = cell_uri(nb, "g3"), cell_uri(nb, "g4")
        await wait_for(lambda: codes(c, g3) == [("TL201", 2)] and codes(c, g4) == [("TL401", 0)])

        # Cell 5 first: its program gets past cell 4's `.next()` (run as next(...)) to the unmoved batch.
        action, result = await confirm_at(c, g4, 0, 20)
        assert action.title == "Confirm TL401 by running the code"
        assert list(action.command.arguments) == [{"uri": g4, "code": "TL401", "line": 1, "column": 18}]
        assert (result["confirmed"], result["message"]) == (1, "1 confirmed")
        await wait_for(lambda: any("confirmed by running" in d.message for d in c.diagnostics.get(g4, [])))
        (d,) = c.diagnostics[g4]
        assert "Expected all tensors to be on the same device" in d.message
        token = next(k for k in c.progress_reports if str(k).startswith("torchlint-confirm-"))
        kinds = [type(v).__name__ for v in c.progress_reports[token]]
        assert kinds[0] == "WorkDoneProgressBegin" and kinds[-1] == "WorkDoneProgressEnd"
        assert any("TL401 at cell 5, line 1 (1/1)" in (getattr(v, "message", "") or "") for v in c.progress_reports[token])

        # Then cell 4's own finding; cell 5 keeps its verdict (same notebook text).
        _, result = await confirm_at(c, g3, 2, 25)
        assert result["confirmed"] == 1
        await wait_for(lambda: any("has no attribute 'next'" in d.message for d in c.diagnostics.get(g3, [])))
        assert "confirmed by running" in c.diagnostics[g4][0].message

        # An edit of any cell drops the verdicts: they belong to the text that ran.
        edit_cell(c, nb, 2, "g2", GPU_CELLS["g2"] + "\n", 2)
        await wait_for(lambda: c.diagnostics.get(g4) and "confirmed" not in c.diagnostics[g4][0].message)


@pytest.mark.torch
@pytest.mark.asyncio
async def test_confirm_by_running_in_a_markdown_buffer(tmp_path):
    pytest.importorskip("torch")
    doc = tmp_path / "tutorial.md"
    text = (
        "# Data\n\n```python\nimport torch\nit = iter(torch.utils.data.DataLoader([1, 2]))\nbatch = it.next()\n```\n\n"
        "Prose.\n\n```python\nimshow(batch)\nmore = iter(make_loader()).next()\n```\n"
    )
    async with session(tmp_path, "vscode", {"runtime": {"enabled": True}}) as c:
        c.text_document_did_open(t.DidOpenTextDocumentParams(t.TextDocumentItem(uri=doc.as_uri(), language_id="markdown", version=1, text=text)))
        await wait_for(lambda: [x for x in codes(c, doc.as_uri()) if x[0] == "TL201"] == [("TL201", 5), ("TL201", 12)])
        action, result = await confirm_at(c, doc.as_uri(), 5, 9)
        assert list(action.command.arguments) == [{"uri": doc.as_uri(), "code": "TL201", "line": 6, "column": 8}]
        assert result["confirmed"] == 1
        await wait_for(lambda: any("confirmed by running: AttributeError" in d.message for d in c.diagnostics.get(doc.as_uri(), [])))
        _, result = await confirm_at(c, doc.as_uri(), 12, 9)
        assert result["couldNotRun"] == 1
        await wait_for(lambda: any("make_loader` is never defined in this document" in d.message for d in c.diagnostics.get(doc.as_uri(), [])))
