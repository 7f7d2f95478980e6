"""Documents: the Python code inside notebooks, Markdown and reStructuredText.

One :class:`Document` serves the CLI, the language server and the runtime: it
holds the original text, the Python text that is linted (code cells or blocks
joined in document order, IPython syntax neutralised) and the map between the
two. Findings are computed on ``Document.text`` and mapped back with
:meth:`Document.map_finding`; fixes are mapped back the same way and applied to
the original (a notebook's JSON is rewritten only inside the changed cells'
``source``).

Layout of ``text``: for Markdown and RST, line N of the text is line N of the
document (lines outside code blocks are blank), so most positions map by a
column shift only; for notebooks the code cells follow each other.

A chunk (cell or block) that does not parse gets its own TL001 and is replaced
in the text by ``from __torchlint_unknown__ import *``: whatever it defined is
unknown, not absent, so rules that reason about what is missing stay silent
(see :data:`torchlint.names.UNKNOWN_MODULE`).
"""

from __future__ import annotations

import ast
import bisect
import functools
import json
import re
import sys
import types
import warnings
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from itertools import accumulate, chain, compress, repeat
from operator import add, attrgetter, contains, is_, le, not_

from torchlint.gc_pause import gc_paused
from torchlint.diagnostics import Edit, FileReport, Finding, Fix, Range, Related, evolve
from torchlint.names import UNKNOWN_MODULE
from torchlint.sources import SourceError, python_lines

DOCUMENT_LANGUAGES = ("markdown", "notebook", "rst")
UNKNOWN_LINE = f"from {UNKNOWN_MODULE} import *"

# Names tutorials use without importing them (an earlier page did), and the module
# each conventionally means. Extended by the ``conventional-imports`` setting.
CONVENTIONAL_IMPORTS: Mapping[str, str] = {
    "torch": "torch",
    "nn": "torch.nn",
    "F": "torch.nn.functional",
    "optim": "torch.optim",
    "tensor": "torch.tensor",
    "Tensor": "torch.Tensor",
    "DataLoader": "torch.utils.data.DataLoader",
    "Dataset": "torch.utils.data.Dataset",
    "TensorDataset": "torch.utils.data.TensorDataset",
    "torchvision": "torchvision",
    "transforms": "torchvision.transforms",
    "datasets": "torchvision.datasets",
    "models": "torchvision.models",
    "np": "numpy",
    "plt": "matplotlib.pyplot",
    "pd": "pandas",
}

# IPython's own names, defined in every notebook and IPython session.
IPYTHON_NAMES = frozenset(
    {"display", "get_ipython", "In", "Out", "_", "__", "___", "_i", "_ii", "_iii", "_ih", "_oh", "_dh", "exit", "quit"}
)

_PY_LANGS = frozenset({"python", "py", "python3", "py3", "ipython", "ipython3", "pycon", "python-repl", "pyodide"})
# Cell magics whose body is Python (the body is linted); any other cell magic skips the cell.
_PY_CELL_MAGICS = frozenset({"time", "timeit", "capture", "prun", "debug", "memit", "mprun"})
# Line magics that may define names we cannot see: what follows them is unknown, not absent.
_UNKNOWN_MAGICS = frozenset({"run", "load", "load_ext", "pylab", "store", "recall", "rerun", "macro"})
_STATEMENT_MAGICS = frozenset({"time", "timeit", "prun", "debug", "memit", "mprun"})


def conventional_import(name: str, qualified: str) -> str:
    """The import statement that binds ``name`` to ``qualified``."""
    if name == qualified:
        return f"import {name}"
    parent, _, last = qualified.rpartition(".")
    if last == name and parent:
        return f"from {parent} import {name}"
    return f"import {qualified} as {name}"


# --- chunks ------------------------------------------------------------------------------------


@dataclass(eq=False)  # (a chunk is itself: equal lines in two cells are two chunks)
class Chunk:
    """One code cell or code block.

    ``lines`` are the Python lines (magics neutralised, prompts removed);
    line k of the chunk is original line ``origin + k`` (a notebook cell's own
    line numbers start at 1) at a column shifted by ``deltas[k]``.
    """

    number: int  # the cell's index among all cells, or the block's among code blocks (1-based)
    origin: int
    lines: list[str]
    deltas: list[int]
    editable: list[bool]
    cell: int | None = None
    console: bool = False  # a >>> block: single-line edits only
    # An unlabelled fence without an import, def or class (a config line, a snippet):
    # linted, but too loosely tied to the document for TL002's "never defined".
    weak: bool = False
    state: str = "code"  # "code" | "broken" | "skipped"
    error: Finding | None = None  # its TL001, in chunk coordinates, when broken
    parses: bool = False  # known to parse as it is (no need to check again)
    # Not yet known to parse: a notebook's cells are checked together, with one parse of
    # the whole text (Document._joint_check); lines are as the cell has them (cell magic blanked).
    unchecked: bool = False
    # Original lines (for notebooks: the cell's source lines), to re-indent multi-line inserts.
    originals: list[str] = field(default_factory=list)
    # The text ``lines`` were cut from, while they are as cut (no ``\r``): a notebook's text is
    # joined from its cells' texts, not from their lines again. Whatever changes ``lines`` clears it.
    source: str | None = None
    # A cell with IPython syntax whose lines were made Python before knowing whether they parse as
    # they are (see Document._joint_check): its lines before that, and the first line changed.
    before: tuple[list[str], list[int], list[bool]] | None = None
    first_change: int = -1

    @property
    def label(self) -> str:
        return f"cell {self.number}" if self.cell is not None else f"block {self.number}"

    def code(self) -> str:
        return "\n".join(self.lines) + "\n"


_MAGIC = re.compile(r"^(?P<indent>[ \t]*)(?P<pct>%{1,2})(?P<name>[A-Za-z_][\w.]*)(?P<rest>.*)$")
_ASSIGN_MAGIC = re.compile(r"^(?P<lhs>[ \t]*[A-Za-z_][\w.,\s\[\]]*?\s*=\s*)(?P<magic>[!%].*)$")
# An assignment with nothing to assign (``model = ``, ``lr = # TODO``, ``x = pass``: an exercise's blank).
# (Possessive where Python has them, 3.11 on: the same matches, with no backtracking after a failed
# attempt at each ``=`` of the text: half the cost of the search.)
_BLANK_ASSIGNMENT = re.compile(
    r"=[ \t]*+(?:pass[ \t]*+)?+(?:#[^\n]*+)?+$" if sys.version_info >= (3, 11) else r"=[ \t]*(?:pass[ \t]*)?(?:#[^\n]*)?$", re.M
)
_HELP = re.compile(r"^[ \t]*(\?{1,2}[\w.\[\]()*]+|[\w.\[\]()*]+\?{1,2})[ \t]*$")


def _whole_tree(text: str) -> ast.Module | None:
    """``ast.parse(text)``, or None when it does not parse or when its statements might not parse
    apart (a parser that honoured ``from __future__ import barry_as_FLUFL``, legal only among the
    module's first statements, would accept ``<>`` after it; CPython's does not, within one text)."""
    return _tree_or_error(text)[0]


def _tree_or_error(text: str) -> tuple[ast.Module | None, int | None]:
    """``_whole_tree(text)`` and, when the text does not parse, the line of the parser's error."""
    with gc_paused():
        try:
            tree = ast.parse(text)
        except SyntaxError as exc:
            return None, exc.lineno
        except (ValueError, RecursionError, MemoryError):
            return None, None
    if "barry_as_FLUFL" in text and any(
        isinstance(node, ast.ImportFrom) and node.module == "__future__" and any(a.name == "barry_as_FLUFL" for a in node.names)
        for node in tree.body
    ):
        return None, None
    return tree, None


_END_LINE = attrgetter("end_lineno")
_SOURCE, _LINES, _STATE = attrgetter("source"), attrgetter("lines"), attrgetter("state")
_LINENO = attrgetter("lineno")
# Document._joint_check parses the text again after each cell that does not parse (an exercise's
# blanks) until the failed parses have cost about this many times the text: then each cell is
# checked on its own (about one parse of the text, and compiling it).
_JOINT_BUDGET = 1


def _starts_statement(body: list[ast.stmt], line: int, column: int) -> bool:
    """Does a statement of ``body``, or of a block within it, start at ``line``, ``column``?"""
    while body:
        k = bisect.bisect_left(list(map(_END_LINE, body)), line)
        if k == len(body) or body[k].lineno > line:
            return False
        stmt = body[k]
        if stmt.lineno == line and stmt.col_offset == column:
            return True
        blocks = [getattr(stmt, name, None) or [] for name in ("body", "orelse", "finalbody")]
        blocks += [h.body for h in getattr(stmt, "handlers", ())] + [case.body for case in getattr(stmt, "cases", ())]
        body = next((b for b in blocks if b and b[0].lineno <= line <= (b[-1].end_lineno or 0)), [])
    return False


def _parses(code: str, likely_refused: bool = False) -> bool:
    """Does ``ast.parse`` accept the code? Compiling it first answers yes for most code at a third of
    the cost (no tree of Python objects is built); what the compiler alone rejects (``return``
    outside a function, a top-level ``await``, nesting too deep for it) is asked of the parser. Code
    likely to be refused (a cell that held up the whole text's parse) is asked of the parser only: a
    refusal costs the compiler what it costs the parser. The parser's refusals are remembered: a
    broken cell is asked again as it is (nothing in it to make Python) and its TL001 is that refusal
    (_syntax_error)."""
    if code in _refused:
        return False
    if not likely_refused:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # (the compiler's SyntaxWarnings: nothing for the user here)
                compile(code, "<chunk>", "exec", dont_inherit=True)
        except Exception:  # noqa: BLE001 (any failure: the parser's answer is the one that counts)
            pass
        else:
            return True
    try:
        ast.parse(code)
    except (SyntaxError, ValueError) as exc:
        if len(_refused) >= 64:
            _refused.clear()
        _refused[code] = exc.with_traceback(None)
        return False
    except (RecursionError, MemoryError):  # (how deep the parser may go depends on the caller's stack)
        return False
    return True


# The code _parses found the parser refuses while building a document, and the parser's exception.
_refused: dict[str, BaseException] = {}


def neutralise(lines: list[str]) -> tuple[list[str], list[int], list[bool]] | None:
    """IPython syntax made into plain Python, line for line: (lines, column shifts, editable),
    or None when the chunk is not Python at all (a ``%%bash`` cell)."""
    done = _neutralise(lines)
    return None if done is None else done[:3]


def _neutralise(lines: list[str]) -> tuple[list[str], list[int], list[bool], bool] | None:
    """IPython syntax made into plain Python, line for line.

    Returns (lines, column shifts, editable, parses as it is) or None when the
    chunk is not Python at all (a ``%%bash`` cell). Lines are only touched when
    the chunk does not parse as it is.
    """
    done = _cell_magic(lines)
    if done is None:
        return None
    out, deltas, editable = done
    return out, deltas, editable, _neutralise_lines(out, deltas, editable)


def _cell_magic(lines: list[str]) -> tuple[list[str], list[int], list[bool]] | None:
    """(lines, column shifts, editable) with a leading ``%%time``-like line blanked, or None
    when a cell magic says the chunk is not Python (``%%bash``)."""
    deltas = [0] * len(lines)
    editable = [True] * len(lines)
    out = list(lines)
    if lines and lines[0] and not lines[0][0].isspace():
        first: int | None = 0  # (most cells: their first line is code)
    else:
        first = next((k for k, line in enumerate(lines) if line.strip()), None)
    if first is not None and lines[first].lstrip().startswith("%%"):
        m = _MAGIC.match(lines[first])
        name = m.group("name") if m else ""
        args = set((m.group("rest") if m else "").replace(",", " ").split())
        # d2lbook's ``%%tab pytorch`` / ``%%tab all``: Python for torch (other frameworks' tabs are skipped).
        if name not in _PY_CELL_MAGICS and not (name == "tab" and args & {"pytorch", "torch", "all"}):
            return None
        out[first] = ""
        editable[first] = False
    return out, deltas, editable


def _neutralise_lines(out: list[str], deltas: list[int], editable: list[bool], likely_refused: bool = False) -> bool:
    """Does the chunk parse as it is? If not, its IPython lines are made Python in place
    (the caller parses the result)."""
    if _parses("\n".join(out) + "\n", likely_refused):
        return True
    _make_python(out, deltas, editable)
    return False  # changed: the caller parses the result


def _make_python(out: list[str], deltas: list[int], editable: list[bool]) -> int:
    """Make the IPython lines Python, in place; the index of the first line changed, or -1."""
    first = -1
    # Only a line holding ``!``, ``%`` or ``?`` can be IPython syntax (found at C level: a cell's
    # other lines are most of it).
    marked: set[int] = set()
    for mark in ("!", "%", "?"):
        marked.update(compress(range(len(out)), map(contains, out, repeat(mark))))
    for k in sorted(marked):
        line = out[k]
        if not editable[k]:
            continue
        stripped = line.lstrip()
        indent = line[: len(line) - len(stripped)]
        if not stripped:
            continue
        filler = indent + "..."
        if stripped.startswith("!"):
            out[k], editable[k] = filler, False
        elif stripped.startswith("%"):
            m = _MAGIC.match(line)
            name = m.group("name") if m else ""
            rest = (m.group("rest") if m else "").strip()
            if name in _STATEMENT_MAGICS and rest and not rest.startswith("-"):
                # %time x = f(): the statement is code; keep it where it is.
                start = line.index(rest, len(indent) + 1 + len(name))
                out[k], deltas[k] = indent + line[start:], start - len(indent)
            elif name in _UNKNOWN_MAGICS and not indent:
                out[k], editable[k] = UNKNOWN_LINE, False
            else:
                out[k], editable[k] = filler, False
        elif _HELP.match(line):
            out[k], editable[k] = filler, False
        else:
            m = _ASSIGN_MAGIC.match(line)
            if m and m.group("lhs").count("=") == 1:
                # files = !ls, x = %sx cmd: the name is bound, to something we do not model.
                out[k], editable[k] = m.group("lhs") + "...", False
        if first < 0 and out[k] is not line:
            first = k
    return first


# --- notebooks -------------------------------------------------------------------------------


@dataclass
class _CellSpan:
    start: int  # offsets of the ``source`` value in the raw JSON text
    end: int
    items: list[tuple[int, int]]  # offsets of each string item when the value is a list


class _Locator:
    """Where each cell's ``source`` value is in the notebook's JSON text (for byte-exact write-back)."""

    _WS = re.compile(r"[ \t\n\r]*")

    def __init__(self, text: str) -> None:
        self.s = text
        self.decoder = json.JSONDecoder()

    def ws(self, i: int) -> int:
        return self._WS.match(self.s, i).end()  # type: ignore[union-attr]

    def value_end(self, i: int) -> int:
        _, end = self.decoder.raw_decode(self.s, i)
        return end

    def members(self, i: int) -> Iterable[tuple[str, int, int]]:
        """(key, value start, value end) of the object at ``i``."""
        s = self.s
        assert s[i] == "{"
        i = self.ws(i + 1)
        if s[i] == "}":
            return
        while True:
            key, i = json.decoder.scanstring(s, i + 1)
            i = self.ws(i)
            assert s[i] == ":"
            start = self.ws(i + 1)
            end = self.value_end(start)
            yield key, start, end
            i = self.ws(end)
            if s[i] == "}":
                return
            assert s[i] == ","
            i = self.ws(i + 1)

    def elements(self, i: int) -> Iterable[tuple[int, int]]:
        s = self.s
        assert s[i] == "["
        i = self.ws(i + 1)
        if s[i] == "]":
            return
        while True:
            end = self.value_end(i)
            yield i, end
            i = self.ws(end)
            if s[i] == "]":
                return
            assert s[i] == ","
            i = self.ws(i + 1)

    def cell_spans(self) -> list[_CellSpan | None]:
        start = self.ws(0)
        for key, a, _ in self.members(start):
            if key != "cells":
                continue
            spans: list[_CellSpan | None] = []
            for ca, _ in self.elements(a):
                span = None
                if self.s[ca] == "{":
                    for k, va, vb in self.members(ca):
                        if k == "source":
                            items = list(self.elements(va)) if self.s[va] == "[" else []
                            span = _CellSpan(va, vb, items)
                spans.append(span)
            return spans
        return []


def _cell_text(source: object) -> str | None:
    if isinstance(source, str):
        return source
    if isinstance(source, list):
        try:
            return "".join(source)
        except TypeError:
            return None  # an item that is not a string
    return None


def read_notebook(raw: str, path: str) -> dict:
    """The notebook's JSON, or a one-line :class:`SourceError`."""
    if not raw or raw.isspace():  # (not ``strip()``: no copy of the whole text to test it)
        raise SourceError(f"{path}: empty file, not a Jupyter notebook")
    try:
        nb = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise SourceError(f"{path}: not a Jupyter notebook: invalid JSON ({exc.msg} at line {exc.lineno} column {exc.colno})") from None
    except (ValueError, RecursionError) as exc:
        raise SourceError(f"{path}: not a Jupyter notebook: {exc}") from None
    if not isinstance(nb, dict) or not isinstance(nb.get("cells"), list):
        if isinstance(nb, dict) and isinstance(nb.get("worksheets"), list):
            raise SourceError(f"{path}: nbformat {nb.get('nbformat', 3)} notebooks are not supported (only nbformat 4); convert it with `jupyter nbconvert --to notebook`")
        raise SourceError(f"{path}: not a Jupyter notebook: the JSON has no \"cells\" list")
    version = nb.get("nbformat")
    if version is not None and version != 4:
        raise SourceError(f"{path}: nbformat {version} notebooks are not supported (only nbformat 4)")
    return nb


def cell_sources(raw: str) -> list[str] | None:
    """Every cell's source (all cells, Markdown included), or None when ``raw`` is not a notebook."""
    try:
        nb = read_notebook(raw, "")
    except SourceError:
        return None
    return [(_cell_text(c.get("source")) or "") if isinstance(c, dict) else "" for c in nb["cells"]]


def _notebook_language(nb: dict) -> str:
    meta = nb.get("metadata") if isinstance(nb.get("metadata"), dict) else {}
    info = meta.get("language_info") if isinstance(meta.get("language_info"), dict) else {}
    kernel = meta.get("kernelspec") if isinstance(meta.get("kernelspec"), dict) else {}
    lang = info.get("name") or kernel.get("language") or "python"
    return str(lang).lower()


def notebook_chunks(nb: dict) -> list[Chunk]:
    chunks: list[Chunk] = []
    if not _notebook_language(nb).startswith("python"):
        return chunks  # an R or Julia notebook: nothing here is Python
    append = chunks.append
    for i, cell in enumerate(nb["cells"], start=1):
        if type(cell) is not dict or cell.get("cell_type") != "code":
            continue
        source = cell.get("source")
        if type(source) is not str:
            source = _cell_text(source)
            if source is None:
                continue
        meta = cell.get("metadata")
        if meta and type(meta) is dict and "vscode" in meta:
            vscode = meta["vscode"]
            if isinstance(vscode, dict) and vscode.get("languageId", "python") not in ("python", "ipython"):
                continue
        if "%" in source or "!" in source or "?" in source or "\\" in source or "\r" in source:
            append(_marked_cell(i, source))
            continue
        # Checked with the other cells, by one parse of the notebook's text. It has no cell magic to
        # blank: its lines are as cut, and its text is kept (the lines are shared with ``originals``
        # until a change: see _settle_alone).
        lines = source.split("\n")  # (python_lines: no "\r" here)
        if not lines[-1]:
            lines.pop()
        n = len(lines)
        append(Chunk(i, 1, lines, [0] * n, [True] * n, i, originals=lines, unchecked=True, source=source))
    return chunks


def _marked_cell(i: int, source: str) -> Chunk:
    """The chunk of a cell whose text holds a mark of IPython syntax, a backslash or a ``\\r``."""
    lines = python_lines(source)
    if _may_need_neutralising(lines, source):
        return _chunk(i, 1, lines, lines, cell=i)
    if ((percent := "%" in source) or "!" in source or "?" in source) and _ipython_hint(lines, source):
        return _ipython_cell(i, lines)
    if "\r" in source or (percent and "%%" in source):
        return _chunk(i, 1, lines, lines, cell=i, defer=True)
    n = len(lines)
    return Chunk(i, 1, lines, [0] * n, [True] * n, i, originals=lines, unchecked=True, source=source)


def _ipython_cell(i: int, lines: list[str]) -> Chunk:
    """A cell that may hold IPython syntax, its lines made Python now and checked with the other
    cells (whether they parse as they are is asked only if the whole text says nothing)."""
    done = _cell_magic(lines)
    if done is None:
        return Chunk(i, 1, list(lines), [0] * len(lines), [False] * len(lines), i, state="skipped", originals=lines)
    out, deltas, editable = done
    before = (list(out), list(deltas), list(editable))
    first = _make_python(out, deltas, editable)
    chunk = Chunk(i, 1, out, deltas, editable, i, originals=lines, unchecked=True)
    if first >= 0:
        chunk.before, chunk.first_change = before, first
    return chunk


def _may_need_neutralising(lines: list[str], source: str | None = None) -> bool:
    """Is the cell to be checked on its own? The others are checked together, by one parse of the
    notebook's text (Document._joint_check), those with IPython syntax (``!pip``, ``%matplotlib``,
    ``obj?``, ``x = !ls``) made Python first. A cell that ends in a line continuation is not: its end
    parses differently alone and followed by other lines. (``source``: the lines' text, when at hand:
    most cells hold no backslash, which one search rules out.)"""
    if source is not None and "\\" not in source:
        return False
    return _ends_continued(lines)


def _ipython_hint(lines: list[str], source: str | None = None) -> bool:
    """Might a line be IPython syntax? With the lines' text at hand (``source``, lines broken at
    ``\n`` only), only the lines holding one of its marks are looked at: each mark's next place
    is found at memchr speed (``%`` of a format string, ``!=``), and the search goes on after
    its line. Each mark asks of its lines only what it can make them: ``%`` and ``!`` a line
    that starts with it or assigns it (``x = !ls``), ``?`` help (``obj?``)."""
    if source is None or "\r" in source:
        return any(_ipython_line(line) for line in lines if "%" in line or "!" in line or "?" in line)
    find, rfind = source.find, source.rfind
    for mark in ("%", "!", "?"):
        at = find(mark)
        while at >= 0:
            end = find("\n", at)
            line = source[rfind("\n", 0, at) + 1 : end if end >= 0 else None]
            if mark == "?":
                if _HELP.match(line) is not None:
                    return True
            elif line.lstrip()[:1] == mark or _ASSIGN_MAGIC.match(line) is not None:
                return True
            if end < 0:
                break
            at = find(mark, end)
    return False


def _ipython_line(line: str) -> bool:
    s = line.lstrip()
    return s[:1] in ("%", "!") or ("?" in s and _HELP.match(line) is not None) or (("!" in s or "%" in s) and _ASSIGN_MAGIC.match(line) is not None)


def _ends_continued(lines: list[str]) -> bool:
    last = next((line for line in reversed(lines) if line.strip()), "")
    return last.endswith("\\")


def _chunk(
    number: int, origin: int, lines: list[str], originals: list[str], cell: int | None = None, console: bool = False, defer: bool = False
) -> Chunk:
    """``defer``: leave the parse check to the Document (see Chunk.unchecked)."""
    done = _cell_magic(lines)
    if done is None:
        return Chunk(number, origin, list(lines), [0] * len(lines), [False] * len(lines), cell, console, state="skipped", originals=originals)
    out, deltas, editable = done
    if defer:
        return Chunk(number, origin, out, deltas, editable, cell, console, originals=originals, unchecked=True)
    parses = _neutralise_lines(out, deltas, editable)
    return Chunk(number, origin, out, deltas, editable, cell, console, originals=originals, parses=parses)


# --- Markdown and RST ------------------------------------------------------------------------

_FENCE = re.compile(r"^(?P<indent>[ \t]*)(?P<fence>`{3,}|~{3,})[ \t]*(?P<info>[^\n]*)$")
_MYST_OPTION = re.compile(r"^:[\w-]+:")
# Top-level lines that continue a statement rather than start one.
_CONTINUATION = re.compile(r"^(?:else|elif|except|finally|case)\b|^[)\]}]")
_IMPORT_LINE = re.compile(r"^(import [\w.]+|from [\w.]+ import [\w(*])")


def fence_language(info: str) -> str | None:
    """The language of a fence's info string ('' for none, None for a non-code block)."""
    info = info.strip()
    if not info:
        return ""
    if info.startswith("{"):
        inner, _, after = info[1:].partition("}")
        words = inner.replace(",", " ").split()
        after_words = after.split()
        if words and words[0] in ("code-cell", "code-block", "code", "jupyter-execute", "ipython", "sourcecode"):
            # MyST directives: ```{code-cell} ipython3 / ```{code-block} python
            lang = after_words[0].lower() if after_words else ("ipython" if words[0] in ("code-cell", "jupyter-execute", "ipython") else "")
            return lang
        for w in words:
            w = w.lstrip(".").lower()
            if w in _PY_LANGS:
                return w  # d2l's {.python .input}, Quarto's {python}
        return words[0].lstrip(".").lower() if words else ""
    word = info.split()[0].lower()
    if word.startswith("."):
        word = word[1:]
    return word.rstrip(",;")


def _strip_prompts(lines: list[str]) -> tuple[list[str], list[int], bool]:
    """A ``>>>`` console block as code: prompt lines keep their code, output lines go blank."""
    first = next((line.lstrip() for line in lines if line.strip()), "")
    if not first.startswith(">>>"):
        return lines, [0] * len(lines), False
    out, deltas = [], []
    for line in lines:
        s = line.lstrip()
        pad = len(line) - len(s)
        if s.startswith((">>> ", "... ")):
            out.append(s[4:])
            deltas.append(pad + 4)
        elif s in (">>>", "..."):
            out.append("")
            deltas.append(0)
        else:
            out.append("")  # the console's output
            deltas.append(0)
    return out, deltas, True


def _holds_code(code: str) -> bool:
    """Does an unlabelled block hold code (an import, def/class, assignment, loop, or a method call),
    rather than prose or a console's output such as ``tensor([1, 2])``?"""
    try:
        tree = ast.parse(code)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return False
    for node in ast.walk(tree):
        if isinstance(node, (ast.Import, ast.ImportFrom, ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef,
                             ast.Assign, ast.AugAssign, ast.AnnAssign, ast.For, ast.While, ast.With, ast.If, ast.Try)):
            return True
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            return True
    return False


def _defines_something(code: str) -> bool:
    try:
        tree = ast.parse(code)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return True  # opens with an import (see _code_block)
    return any(isinstance(n, (ast.Import, ast.ImportFrom, ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) for n in ast.walk(tree))


def _code_block(number: int, start_line: int, body: list[str], raw: list[str], lang: str) -> Chunk | None:
    lines, prompt_deltas, console = _strip_prompts(body)
    # MyST code-cell options (:tags: [...]) at the top of the block, or a --- YAML front block.
    k = 0
    if lines and lines[0].strip() == "---" and lang in ("ipython", "ipython3", "python", "python3", "py") :
        end = next((j for j in range(1, len(lines)) if lines[j].strip() == "---"), None)
        if end is not None:
            lines = [""] * (end + 1) + lines[end + 1 :]
    while k < len(lines) and _MYST_OPTION.match(lines[k]):
        lines[k] = ""
        k += 1
    chunk = _chunk(number, start_line, lines, raw, console=console)
    if lang == "" and (chunk.state == "skipped" or not _holds_code(chunk.code())):
        first = next((line for line in chunk.lines if line.strip()), "")
        if chunk.state == "skipped" or not _IMPORT_LINE.match(first) or _parses(chunk.code()):
            return None  # prose, output or another language
        # Does not parse, but opens with an import: code (cut short, say), not prose.
    if lang == "":
        chunk.weak = not _defines_something(chunk.code())
    # Prompt and indentation shifts add up.
    base = [len(r) - len(b) if b and r.endswith(b) else 0 for r, b in zip(raw, body)]
    chunk.deltas = [d + p + b for d, p, b in zip(chunk.deltas, prompt_deltas, base)]
    if console:
        chunk.editable = [e and bool(line) for e, line in zip(chunk.editable, lines)]
    return chunk


def markdown_chunks(text: str) -> list[Chunk]:
    """The Python code blocks of a Markdown (or MyST, Quarto) document."""
    chunks: list[Chunk] = []
    lines = python_lines(text)
    i = 0
    number = 0
    while i < len(lines):
        m = _FENCE.match(lines[i])
        if not m or (m.group("fence")[0] == "`" and "`" in m.group("info")):
            i += 1
            continue
        fence, indent = m.group("fence"), len(m.group("indent"))
        body: list[str] = []
        raw: list[str] = []
        j = i + 1
        while j < len(lines):
            s = lines[j].strip()
            if s and set(s) == {fence[0]} and len(s) >= len(fence):
                break
            line = lines[j]
            body.append(line[indent:] if line[:indent].strip() == "" else line.lstrip())
            raw.append(line)
            j += 1
        lang = fence_language(m.group("info"))
        if lang is not None and (lang in _PY_LANGS or lang == ""):
            chunk = _code_block(number + 1, i + 2, body, raw, lang)
            if chunk is not None:
                number += 1
                chunks.append(chunk)
        i = j + 1
    return chunks


_RST_DIRECTIVE = re.compile(r"^(?P<indent>[ \t]*)\.\.\s+(?P<name>code-block|code|sourcecode|jupyter-execute|ipython|testcode|doctest)::\s*(?P<arg>\S*)")


def rst_chunks(text: str) -> list[Chunk]:
    """``.. code-block:: python``, ``.. code:: python`` and ``.. jupyter-execute::`` blocks of an RST document."""
    chunks: list[Chunk] = []
    lines = python_lines(text)
    i = 0
    while i < len(lines):
        m = _RST_DIRECTIVE.match(lines[i])
        if not m:
            i += 1
            continue
        name, arg = m.group("name"), m.group("arg").lower()
        base = len(m.group("indent"))
        if name in ("code-block", "code", "sourcecode") and arg not in _PY_LANGS:
            i += 1
            continue
        if name == "ipython":
            i += 1
            continue  # In [1]: prompts: IPython's own format, not linted
        j = i + 1
        while j < len(lines) and lines[j].strip() and _MYST_OPTION.match(lines[j].strip()):
            j += 1  # :linenos:, :caption: ...
        start = j
        body_indent = None
        end = j
        while end < len(lines):
            line = lines[end]
            if line.strip():
                ind = len(line) - len(line.lstrip())
                if ind <= base:
                    break
                body_indent = ind if body_indent is None else min(body_indent, ind)
            end += 1
        while end > start and not lines[end - 1].strip():
            end -= 1
        if body_indent is not None and end > start:
            raw = lines[start:end]
            body = [line[body_indent:] for line in raw]
            chunk = _code_block(len(chunks) + 1, start + 1, body, raw, "python")
            if chunk is not None:
                chunks.append(chunk)
        i = max(end, i + 1)
    return chunks


# --- the document ------------------------------------------------------------------------------


@dataclass(frozen=True)
class DocumentFacts:
    """What rules may ask about the document they lint (``Context.document``)."""

    kind: str
    # text line -> (chunk label, original line, chunk number) for lines inside chunks.
    labels: Mapping[int, tuple[str, int]]
    conventions: Mapping[str, str]
    # Where an added import goes (a line of the first code chunk): see import_line.
    where_imports_go: Callable[[], int | None] | int | None
    # The modules of conventional names the text uses, for rules' trigger words.
    trigger_text: str = ""
    # Text lines of weak chunks (see Chunk.weak).
    weak_lines: frozenset[int] = frozenset()
    # The conventions of the names the compiled code reads (all of them where that is unknown), but
    # for those an import binds to their own module already: the engine's qualified-name gate counts
    # only these as imports. A name the code never reads resolves nothing, and testing its chains on
    # the text (``F.dropout``, ``nn.utils.rnn...`` in a docstring) costs a search each and wakes
    # rules for nothing; a name an import binds to its own module adds nothing to the gate's table.
    read_conventions: Mapping[str, str] | None = None  # (None: set to ``conventions``)

    def __post_init__(self) -> None:
        if self.read_conventions is None:
            object.__setattr__(self, "read_conventions", self.conventions)

    @property
    def import_line(self) -> int | None:
        """Where an added import goes (a line of the first code chunk), found when first asked:
        only a fix asks."""
        where = self.where_imports_go
        if callable(where):
            where = where()
            object.__setattr__(self, "where_imports_go", where)
        return where

    def where(self, line: int) -> str:
        """``block 7 (line 120)`` / ``cell 3``: where a text line is, for messages."""
        label = self.labels.get(line)
        if label is None:
            return f"line {line}"
        name, orig = label
        return f"{name}, line {orig}"

    def chunk_of(self, line: int) -> str | None:
        label = self.labels.get(line)
        return label[0] if label else None


def _unbound_conventional(text: str, conventions: Mapping[str, str], names: frozenset[str] | None = None) -> set[str]:
    """Conventional names the text reads (``nn.``, ``F(``) without binding them itself: their modules
    count as mentioned for rules' trigger words. A cheap look, not a scope analysis.

    A name is read where it is a whole word followed by ``.`` or ``(``, and bound where the text has
    an import line naming it, ``as name``, ``def name``/``class name``, or a line starting
    ``name =``. Each test is a search led by a literal word (C speed); read as one alternation,
    they would be tried at every character of the text. Only names the compiled code reads
    (``names``, see Document._code_names; None: any name may be) are tested at all: a name only a
    string or a comment mentions (``"nn.Linear"``) reads nothing, and most documents, which read few
    conventional names, search nothing."""
    out = set()
    for name in conventions:
        if (names is not None and name not in names) or name not in text:
            continue
        patterns = _conventional_patterns(name)
        if patterns is None:
            continue
        reads, *binds, assigned = patterns
        if reads.search(text) is None or any(b.search(text) is not None for b in binds):
            continue
        if any(_starts_line(text, m.start()) for m in assigned.finditer(text)):
            continue
        out.add(name)
    return out


def _read_as_names(code: types.CodeType, candidates: Iterable[str]) -> set[str]:
    """The ``candidates`` that the code reads as variables where no def binds them (an instruction
    loading a global or a module/class-level name: CPython's own scoping), not only as attributes
    (``report.models``), imports or targets. An annotation CPython never evaluates (a local
    variable's, or any under ``from __future__ import annotations``) reads nothing. A name in a code
    object's co_names that none of its instructions names stands in code the compiler dropped
    (``if False:``), which a reader may still see: it counts. Only the code objects naming a
    candidate are read, each with a few byte searches (decoding every instruction costs more
    than the lint's own walk)."""
    reads, others, extended = _name_instructions()
    wanted = frozenset(candidates)
    out: set[str] = set()
    # The code objects naming a candidate, found a nesting level at a time at C level (a file
    # holds thousands of code objects, few of which name one).
    naming: list[types.CodeType] = []
    level = [code]
    while level:
        naming += compress(level, map(not_, map(wanted.isdisjoint, map(_CO_NAMES, level))))
        level = list(filter(_IS_CODE, chain.from_iterable(map(_CO_CONSTS, level))))
    for c in naming:
        here = wanted.intersection(c.co_names)
        if here <= out:
            continue
        raw = c.co_code
        for name in here - out:
            index = c.co_names.index(name)
            if _names_entry(raw, index, reads, extended) or not _names_entry(raw, index, others, extended):
                out.add(name)
    return out


_CO_NAMES, _CO_CONSTS = attrgetter("co_names"), attrgetter("co_consts")
_IS_CODE = types.CodeType.__instancecheck__


def _names_entry(raw: bytes, index: int, instructions: tuple[tuple[int, int], ...], extended: int) -> bool:
    """Does an instruction among ``instructions`` ((opcode, shift of the index in its argument))
    name co_names entry ``index``? Instructions are two bytes at even offsets; an argument over a
    byte is led by EXTENDED_ARG."""
    for op, shift in instructions:
        for arg in range(index << shift, (index + 1) << shift):
            if arg < 256:
                pattern = bytes((op, arg))
            elif arg < 65536:
                pattern = bytes((extended, arg >> 8, op, arg & 255))
            else:
                return True  # never in practice; say yes rather than guess
            at = raw.find(pattern)
            while at >= 0:
                if at % 2 == 0 and (at < 2 or raw[at - 2] != extended or (arg < 256 and raw[at - 1] == 0)):
                    return True
                at = raw.find(pattern, at + 1)
    return False


@functools.cache
def _name_instructions() -> tuple[tuple[tuple[int, int], ...], tuple[tuple[int, int], ...], int]:
    """(the instructions reading a co_names entry as a variable, the other instructions naming one,
    EXTENDED_ARG), each as (opcode, shift of the entry's index in its argument: 3.11 shifts
    LOAD_GLOBAL's by one bit, 3.12 LOAD_ATTR's too). Learnt from this Python's own compiler: an
    instruction it does not show here names nothing this reader sees, so a name it alone names
    counts as read (the cautious answer)."""
    import dis

    fill = "a0, a1, a2, a3, a4"  # each probed name's index is past these: the shift is unambiguous
    probe = compile(
        f"{fill}\nimport m5\nfrom m6 import n7\ng8\ng8.at9\ng8.me10()\ng8.st11 = 1\ndel g8.de12\ns13 = 1\ndel s13\n"
        f"class C14:\n    {fill}\n    v15 = g8\n    def f(self):\n        {fill}\n        global gl16\n"
        f"        gl16 = g17\n        del gl16\n        return super().su18\n",
        "<probe>",
        "exec",
    )
    reading = {dis.opmap[n] for n in ("LOAD_NAME", "LOAD_GLOBAL", "LOAD_FROM_DICT_OR_GLOBALS") if n in dis.opmap}
    named = set(dis.hasname)
    seen: dict[int, int] = {}
    todo = [probe]
    while todo:
        c = todo.pop()
        todo += [x for x in c.co_consts if isinstance(x, types.CodeType)]
        for ins in dis.get_instructions(c):
            if ins.opcode not in named or not isinstance(ins.argval, str) or ins.argval not in c.co_names:
                continue
            index = c.co_names.index(ins.argval)
            shift = next((k for k in range(4) if ins.arg >> k == index), None)
            if index >= len(fill.split(",")) and shift is not None:
                seen[ins.opcode] = shift
    reads = tuple((op, k) for op, k in seen.items() if op in reading)
    others = tuple((op, k) for op, k in seen.items() if op not in reading)
    return reads, others, dis.EXTENDED_ARG


# CPython 3.11 names in co_names what code it then drops (``if False:``); where a compiler does
# not, its code objects cannot say what the text reads.
_NAMES_KEEP_DEAD_CODE = "nn" in compile("if False:\n    nn.Linear\n", "<check>", "exec").co_names


_IDENTIFIER = re.compile(r"[A-Za-z_]\w*")


@functools.lru_cache(maxsize=256)
def _conventional_patterns(name: str) -> tuple[re.Pattern[str], ...] | None:
    if not _IDENTIFIER.fullmatch(name):
        return None  # never read as a word
    return (
        re.compile(rf"{name}(?<=\b{name})\s*[.(]"),
        re.compile(rf"import\s[^\n]*\b{name}\b"),
        re.compile(rf"as(?<=\bas)\s+{name}\b"),
        re.compile(rf"def(?<=\bdef)\s+{name}\b"),
        re.compile(rf"class(?<=\bclass)\s+{name}\b"),
        re.compile(rf"{name}\s*="),  # at the start of a line: _starts_line
    )


def _starts_line(text: str, at: int) -> bool:
    """Is there only white space between the start of the line and ``at`` (``^\\s*`` in MULTILINE mode)?"""
    before = text[text.rfind("\n", 0, at) + 1 : at]
    return not before or before.isspace()


class _Labels(Mapping[int, tuple[str, int]]):
    """DocumentFacts.labels, computed for the lines asked about (rules ask about a few)."""

    __slots__ = ("_line_map", "_chunks")

    def __init__(self, line_map: Sequence[tuple[int, int] | None], chunks: list[Chunk]) -> None:
        self._line_map = line_map
        self._chunks = chunks

    def __getitem__(self, line: int) -> tuple[str, int]:
        entry = self._line_map[line] if isinstance(line, int) and 0 <= line < len(self._line_map) else None
        if entry is None:
            raise KeyError(line)
        c = self._chunks[entry[0]]
        return c.label, c.origin + entry[1]

    def __iter__(self):
        return (n for n, entry in enumerate(self._line_map) if entry is not None)

    def __len__(self) -> int:
        return sum(1 for entry in self._line_map if entry is not None)


class _CellLines(Sequence[tuple[int, int] | None]):
    """``Document.line_map`` of a notebook's text, where each cell's lines follow the previous cell's
    and a blank line: where each cell starts answers for all of its lines (no entry per line to build)."""

    __slots__ = ("_starts", "_chunks", "ends", "_len")

    def __init__(self, starts: list[int], chunks: list[int], ends: list[int], length: int) -> None:
        self._starts = starts  # the text line of each laid-out chunk's line 0
        self._chunks = chunks  # its index in Document.chunks
        self.ends = ends  # one past its last line: the blank line that follows it
        self._len = length  # lines, line 0 and one past the text's end included (as Markdown's map)

    def start_of(self, ci: int) -> int | None:
        i = bisect.bisect_left(self._chunks, ci)
        return self._starts[i] if i < len(self._chunks) and self._chunks[i] == ci else None

    def __len__(self) -> int:
        return self._len

    def __getitem__(self, n):  # type: ignore[override]
        if not isinstance(n, int):
            raise TypeError("line numbers only")
        if n < 0:
            n += self._len
        if not 0 <= n < self._len:
            raise IndexError(n)
        i = bisect.bisect_right(self._starts, n) - 1
        if i >= 0 and n < self.ends[i]:
            return (self._chunks[i], n - self._starts[i])
        return None

    def __iter__(self) -> Iterator[tuple[int, int] | None]:
        n = 0
        for start, ci, end in zip(self._starts, self._chunks, self.ends):
            while n < start:
                yield None
                n += 1
            for k in range(end - start):
                yield (ci, k)
            n = end
        while n < self._len:
            yield None
            n += 1


class Document:
    """A file's original text, the Python text that is linted, and the map between them."""

    def __init__(self, kind: str, path: str, original: str, chunks: list[Chunk]) -> None:
        self.kind = kind
        self.path = path
        self.original = original
        self.chunks = chunks
        # CPython's tree of ``text`` when building the document parsed it: (text, tree).
        self._tree: tuple[str, ast.Module] | None = None
        self._conventions: Mapping[str, str] | None = None
        self._broken_check([c for c in chunks if not c.unchecked])
        if not self._joint_check():
            self._layout()
            if self._breaks is not None:
                # A notebook whose cells were checked one by one (one does not parse, or holds IPython
                # syntax): the lint parses the text they make all the same, so it is parsed here, once,
                # for the lint's pre-checks, its verdict and the names the code reads to reuse.
                tree = _whole_tree(self.text)
                if tree is not None and self._statements_within_chunks(tree):
                    self._tree = (self.text, tree)

    # -- building --

    def _joint_check(self) -> bool:
        """Settle the unchecked chunks (a notebook's cells) with one parse of the whole text instead
        of one per cell; True when ``text`` is laid out.

        When the text parses and each of its top-level statements lies within one chunk, each
        chunk parses on its own: its lines are tokenized as they would be alone (it starts a
        logical line at column 0, with no bracket, string or continuation open; an indented first
        line would continue the previous chunk's block, or fail), except at its end, where alone
        it meets the end of input, and in the text a blank line: that differs only for a line
        continuation, which such chunks do not end with (see _may_need_neutralising).

        When the text does not parse, the cell the error is in is checked on its own: a cell that
        does not parse alone (an exercise's ``model = ``) is settled as such and the others are
        checked together again, without it; otherwise (or after a few rounds) each is checked on
        its own, as other chunks are. Either way each chunk ends as it would checked alone."""
        pending = [c for c in self.chunks if c.unchecked]
        if not pending:
            return False
        self._layout()
        # An exercise's blanks would each cost a failed parse of the whole text (about twice the
        # parse): the cells that look unfinished are checked on their own first.
        exercises = self._unfinished_cells()
        if exercises:
            self._settle_alone(exercises, likely_refused=True)
            pending = [c for c in pending if c.unchecked]
            if not pending:
                return False
            self._layout()
        spent = 0  # lines parsed up to an error (each failed parse is about twice that)
        while True:
            tree, error_line = _tree_or_error(self.text)
            if tree is not None and self._statements_within_chunks(tree):
                self._settle_together(pending, tree)
                return self._tree is not None
            if tree is not None or error_line is None:
                break
            spent += error_line
            # The error is in its line's cell, or in the cell before, left open (a ``def`` line whose
            # body is all comments: its error is on the next statement's line).
            suspects = [c for c in self._cells_near(error_line) if c.unchecked]
            found = False
            for c in suspects:
                pending.remove(c)
                self._settle_alone([c], likely_refused=True)
                if c.state != "code" or c.error is not None:
                    found = True
                    break
            if not pending:
                return False
            if not found or spent > self.text.count("\n") * _JOINT_BUDGET:
                break
            self._layout()
        self._settle_alone(pending)
        return False

    def _unfinished_cells(self) -> list[Chunk]:
        """The unchecked cells that look like an exercise left for the reader: an assignment with
        nothing to assign (``model = ``, ``lr = # TODO``, ``x = pass``) or a block header that ends the cell (a
        ``def`` whose body is all comments). A guess, from one search of the text for the first and
        a look at each cell's last lines for the second: it only decides which cells are parsed on
        their own first."""
        text, line_map, chunks = self.text, self.line_map, self.chunks
        found: dict[int, Chunk] = {}
        line, counted = 1, 0  # (a match's line, counted on from the previous match's)
        for m in _BLANK_ASSIGNMENT.finditer(text):
            start = text.rfind("\n", 0, m.start()) + 1
            head = text[start : m.start()]
            # (not in a comment, ``# lr = ``; nor a call's keyword argument, ``f(x=`` then its value)
            if head.strip() and "#" not in head and head.count("(") <= head.count(")") and head.count("[") <= head.count("]"):
                line += text.count("\n", counted, start)
                counted = start
                entry = line_map[line] if 0 < line < len(line_map) else None
                if entry is not None and chunks[entry[0]].unchecked:
                    found[entry[0]] = chunks[entry[0]]
        # A block header that ends its cell: the cell's last line that is not blank or a comment
        # ends with a colon (before a comment; not a colon within the comment: ``x = 1  # note:``).
        for ci, c in enumerate(chunks):
            if not c.unchecked:
                continue
            lines = c.lines
            k = len(lines) - 1
            while k >= 0 and lines[k].lstrip(" \t")[:1] in ("", "#"):
                k -= 1
            if k >= 0:
                last = lines[k]
                comment = last.find("#")
                if (last if comment < 0 else last[:comment]).rstrip(" \t").endswith(":"):
                    found[ci] = c
        return [found[ci] for ci in sorted(found)]

    def _settle_alone(self, chunks: list[Chunk], likely_refused: bool = False) -> None:
        """Check chunks on their own, as a Markdown document's blocks are (``likely_refused``: chunks
        that look unfinished or held up the whole text's parse)."""
        for c in chunks:
            c.unchecked = False
            if c.before is not None:
                # IPython syntax made Python before knowing whether the lines parse as they are.
                c.lines, c.deltas, c.editable = c.before
                c.before = None
            elif c.lines is c.originals:
                c.lines = list(c.lines)  # (changed in place below)
            c.parses = _neutralise_lines(c.lines, c.deltas, c.editable, likely_refused)
            if not c.parses:
                c.source = None
        self._broken_check(chunks, likely_refused)

    def _settle_together(self, pending: list[Chunk], tree: ast.Module) -> None:
        """The text parses, each of its statements within one chunk: each chunk parses alone (see
        _joint_check). A cell whose IPython lines were made Python might have parsed as it was
        (``%`` starting a line inside brackets or a string): it did not if its first changed line
        starts a statement, where a line of ``%``, ``!`` or ``obj?`` cannot (the lines before are
        the same); otherwise it is asked."""
        reverted = False
        for c in pending:
            c.unchecked, c.parses = False, True
            if c.before is None:
                continue
            start = self.text_line(self.chunks.index(c), c.first_change)
            line = c.lines[c.first_change]
            if start is not None and _starts_statement(tree.body, start, len(line) - len(line.lstrip())):
                c.parses = False  # (as a cell checked alone whose lines were changed)
            elif _parses("\n".join(c.before[0]) + "\n"):
                c.lines, c.deltas, c.editable = c.before
                reverted = True
            else:
                c.parses = False
            c.before = None
        if not reverted:
            self._tree = (self.text, tree)
            return
        # A cell's lines changed back: its text is parsed again (all chunks are settled).
        self._layout()
        tree = _whole_tree(self.text)
        if tree is not None and self._statements_within_chunks(tree):
            self._tree = (self.text, tree)

    def _cells_near(self, line: int) -> list[Chunk]:
        """The cell a text line is in (a cell's break line: none) and the cell laid out before it."""
        line_map = self.line_map
        if not 0 < line < len(line_map):
            return []
        entry = line_map[line]
        if entry is None:
            entry = line_map[line - 1]  # the break after a cell
            return [] if entry is None else [self.chunks[entry[0]]]
        out = [self.chunks[entry[0]]]
        before = line - entry[1] - 2  # the last line of the cell before, past its break
        entry = line_map[before] if before > 0 else None
        if entry is not None:
            out.append(self.chunks[entry[0]])
        return out

    def _statements_within_chunks(self, tree: ast.Module) -> bool:
        """Does each top-level statement lie within one cell? Only a notebook's cells are checked
        together (the others' text keeps the document's lines: no breaks of their own)."""
        breaks = self._breaks
        if breaks is None:
            return False
        # A notebook's cells are runs of lines between blank breaks: a statement within one cell
        # spans no break. Each break is tested against the one statement that may span it.
        body = tree.body
        if not body:
            return True
        ends = list(map(_END_LINE, body))
        # The statement each break may fall in (the first to end at or after it, for the breaks
        # before the last one's end), found and asked at C level; a decorated one starts at its first
        # decorator's line (rare: asked apart).
        breaks = breaks[: bisect.bisect_right(breaks, ends[-1])]
        n = len(breaks)
        stmts = list(map(body.__getitem__, map(bisect.bisect_left, repeat(ends, n), breaks)))
        if any(map(le, map(_LINENO, stmts), breaks)):
            return False
        decorated = list(map(getattr, stmts, repeat("decorator_list", n), repeat(None, n)))
        if any(decorated):
            for line, decorators in zip(breaks, decorated):
                if decorators and min(d.lineno for d in decorators) <= line:
                    return False
        return True

    def python_tree(self, extra: str = "") -> ast.Module | None:
        """CPython's tree of ``text + extra`` (``extra``: whole top-level statements, a document's
        trigger imports) if building the document parsed ``text``, else None."""
        if self._tree is None or self._tree[0] is not self.text:
            return None
        tree = self._tree[1]
        if not extra:
            return tree
        more = _whole_tree("\n" * self.text.count("\n") + extra)
        if more is None:
            return None
        return ast.Module(body=[*tree.body, *more.body], type_ignores=[])

    def _broken_check(self, chunks: list[Chunk], likely_refused: bool = False) -> None:
        for c in chunks:
            if c.state != "code" or c.parses:
                continue
            code = c.code()
            if _parses(code, likely_refused):
                continue
            if self.kind != "notebook" and self._repair_elision(c):
                continue
            error = _syntax_error(code, self.path, c)
            if self._salvage(c, None if error is None else error.range.line - 1):
                c.error = error  # its TL001 stands; the statements that parse are linted
                continue
            c.state = "broken"
            c.error = error

    def _salvage(self, c: Chunk, error_line: int | None = None) -> bool:
        """Keep the top-level statements of a chunk that parse (an exercise cell's ``ps = `` placeholder
        must not hide the ``it.next()`` above it); each one that does not becomes an unknown marker.
        (``error_line``: the chunk's line, 0-based, of the parser's error: its statement is asked of
        the parser directly.)"""
        starts = []
        previous = ""
        for k, line in enumerate(c.lines):
            if line[:1] not in ("", " ", "\t", "#") and not _CONTINUATION.match(line) and not previous.startswith("@"):
                starts.append(k)
            if line[:1] not in ("", " ", "\t", "#"):
                previous = line
        if len(starts) < 2:
            return False
        starts[0] = 0
        lines, editable = list(c.lines), list(c.editable)
        kept = False
        for a, b in zip(starts, starts[1:] + [len(lines)]):
            if _parses("\n".join(c.lines[a:b]) + "\n", error_line is not None and a <= error_line < b):
                kept = kept or any(line.strip() and not line.lstrip().startswith("#") for line in c.lines[a:b])
                continue
            lines[a : b] = [UNKNOWN_LINE] + [""] * (b - a - 1)
            editable[a : b] = [False] * (b - a)
        if not kept or not _parses("\n".join(lines) + "\n"):
            return False
        c.lines, c.editable, c.source = lines, editable, None
        c.deltas = [0 if line == UNKNOWN_LINE else d for line, d in zip(lines, c.deltas)]
        return True

    def _repair_elision(self, c: Chunk) -> bool:
        """Tutorials elide bodies (``for x in loader:`` then ``# ...``): such a block gets a ``...`` body
        on its closing fence's line, if that makes it parse."""
        last = next((line for line in reversed(c.lines) if line.strip()), None)
        if last is None:
            return False
        indent = len(last) - len(last.lstrip())
        code_lines = [line for line in c.lines if line.strip() and not line.lstrip().startswith("#")]
        candidates = [indent]
        if code_lines and code_lines[-1].rstrip().endswith(":"):
            header = code_lines[-1]
            candidates.insert(0, len(header) - len(header.lstrip()) + 4)
        for n in candidates:
            if _parses("\n".join(c.lines + [" " * n + "..."]) + "\n"):
                c.lines.append(" " * n + "...")
                c.source = None
                c.deltas.append(0)
                c.editable.append(False)
                return True
        return False

    def _layout(self) -> None:
        """Build ``text`` and the per-line map (text line -> (chunk index, k))."""
        if self.kind == "notebook":
            self._layout_cells()
            return
        # The text lines that end a notebook's cells (each a blank line of its own).
        self._breaks: list[int] | None = None
        total = len(python_lines(self.original))
        out = [""] * total
        self.line_map: Sequence[tuple[int, int] | None] = [None] * (total + 2)  # 1-based
        for ci, c in enumerate(self.chunks):
            if c.state == "skipped":
                continue
            lines = c.lines if c.state == "code" else [UNKNOWN_LINE] + [""] * (len(c.lines) - 1)
            if not lines:
                continue
            for k, line in enumerate(lines):
                n = c.origin + k
                while n - 1 >= len(out):
                    out.append("")
                    self.line_map.append(None)
                out[n - 1] = line
                if n >= len(self.line_map):
                    self.line_map.extend([None] * (n - len(self.line_map) + 1))
                self.line_map[n] = (ci, k)
        self.text = "\n".join(out) + "\n" if out else ""
        self.line_map.append(None)

    def _layout_cells(self) -> None:
        """A notebook's text: its cells' lines one after the other, a blank line after each ("one
        past the cell's end" is its own line). A cell's text as it was cut into lines is copied
        whole."""
        chunks = self.chunks
        counts = list(map(len, map(_LINES, chunks)))
        if chunks and 0 not in counts and set(map(_STATE, chunks)) == {"code"}:
            # (most notebooks: every cell is code, laid out at C level) A cell's text and its break:
            # the text less a final "\n", then "\n\n"; a cell whose lines were changed, its lines.
            sources = list(map(_SOURCE, chunks))
            for k in compress(range(len(chunks)), map(is_, sources, repeat(None))):
                sources[k] = "\n".join(chunks[k].lines) + "\n"
            starts = list(accumulate(map(add, counts, repeat(1)), initial=1))
            n = starts.pop()
            ends = list(map(add, starts, counts))
            self.line_map = _CellLines(starts, list(range(len(chunks))), ends, n + 1)
            self._breaks = ends
            self.text = "\n\n".join(map(str.removesuffix, sources, repeat("\n"))) + "\n\n"
            return
        starts = []
        indexes: list[int] = []
        ends: list[int] = []
        pieces: list[str] = []
        n = 1  # (line 0: none)
        for ci, c in enumerate(self.chunks):
            state = c.state
            if state == "skipped":
                continue
            source = c.source
            if state == "code":
                count = len(c.lines)
                if not count:
                    continue
                if source is not None:
                    pieces += (source, "\n" if source[-1:] == "\n" else "\n\n")
                else:
                    pieces += ("\n".join(c.lines), "\n\n")
            else:
                count = max(len(c.lines), 1)
                pieces += ("\n".join([UNKNOWN_LINE] + [""] * (count - 1)), "\n\n")
            starts.append(n)
            indexes.append(ci)
            n += count
            ends.append(n)
            n += 1
        self.line_map = _CellLines(starts, indexes, ends, n + 1)
        self._breaks = ends
        self.text = "".join(pieces)

    # -- facts for rules --

    def facts(self, conventions: Mapping[str, str]) -> DocumentFacts:
        labels = _Labels(self.line_map, self.chunks)
        self._conventions = conventions
        tree = self.python_tree() if conventions else None
        if tree is not None:
            # A conventional name that an import binds to its own module (``import torch.nn as nn``)
            # changes nothing: the engine's gate counts that import already, and where the resolver
            # gives the name its convention, the module is the import's. Only the others are looked
            # at. (The import table is the one the gate then asks for: see gates.imports_of.)
            from torchlint.gates import imports_of

            bound = imports_of(self.text, tree).bindings
            conventions = {n: m for n, m in conventions.items() if m not in bound.get(n, ())}
            names = self._code_names(conventions) if conventions else frozenset()
        else:
            names = None
        used = _unbound_conventional(self.text, conventions, names)
        # The imports a reader would add: valid Python, so that pre-filters that parse (the
        # knowledge prescan) see the conventional names bound, not a syntax error.
        trigger_text = "".join("\n" + conventional_import(n, conventions[n]) for n in sorted(used))
        weak = frozenset()
        if self.kind != "notebook" and any(c.weak for c in self.chunks):  # (only unlabelled fences are weak)
            weak = frozenset(n for n, e in enumerate(self.line_map) if e is not None and self.chunks[e[0]].weak)
        read = None if names is None else {n: m for n, m in conventions.items() if n in names}
        return DocumentFacts(self.kind, labels, dict(self._conventions), self._import_line, trigger_text, weak, read)

    def _code_names(self, candidates: Iterable[str]) -> frozenset[str] | None:
        """The ``candidates`` the code reads as variables (CPython's code object: never in a string
        or a comment, nor as an attribute, ``kb.models``, or a target), or None when the text has no
        tree or does not compile. The compile is the one the lint's verdict then reuses
        (engine.compiled_tree)."""
        tree = self.python_tree()
        if tree is None or not _NAMES_KEEP_DEAD_CODE:
            return None
        from torchlint.engine import compiled_tree

        code = compiled_tree(tree, self.path)
        if code is None:
            return None
        return frozenset(_read_as_names(code, candidates))

    def _import_line(self) -> int | None:
        for ci, c in enumerate(self.chunks):
            if c.state != "code" or c.console:
                continue
            statements = self._chunk_statements(ci)
            if statements is None:
                try:
                    tree = ast.parse(c.code())
                except (SyntaxError, ValueError, RecursionError, MemoryError):
                    continue
                statements = [(stmt, stmt.lineno, stmt.end_lineno) for stmt in tree.body]
            k = 0
            for stmt, lineno, end_lineno in statements:
                if not c.editable[lineno - 1]:
                    k = end_lineno or k  # a neutralised magic (%matplotlib inline): imports go after it
                    continue
                is_doc = k == 0 and isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.Constant) and isinstance(stmt.value.value, str)
                if not (is_doc or isinstance(stmt, (ast.Import, ast.ImportFrom))):
                    break
                k = end_lineno or k
            return self.text_line(ci, k)
        return None

    def _chunk_statements(self, ci: int) -> list[tuple[ast.stmt, int, int | None]] | None:
        """The top-level statements of chunk ``ci`` with their lines in the chunk, from the tree
        building the document parsed (a chunk's statements there are those it has alone), or None."""
        if self._tree is None or self._tree[0] is not self.text or self.kind != "notebook":
            return None
        line_map = self.line_map
        out = []
        for stmt in self._tree[1].body:
            entry = line_map[stmt.lineno]
            if entry[0] < ci:
                continue
            if entry[0] > ci:
                break
            end = line_map[stmt.end_lineno] if stmt.end_lineno is not None else None
            out.append((stmt, entry[1] + 1, None if end is None else end[1] + 1))
        return out

    def text_line(self, ci: int, k: int) -> int | None:
        """The text line of line k (0-based) of chunk ``ci`` (one past its end allowed)."""
        if isinstance(self.line_map, _CellLines):
            # A cell's lines follow each other in the text, from its line 0.
            start = self.line_map.start_of(ci)
            return None if start is None else start + k
        for n, entry in enumerate(self.line_map):
            if entry == (ci, k):
                return n
        if k > 0:
            before = self.text_line(ci, k - 1)
            return None if before is None else before + 1
        return None

    # -- mapping back --

    def _locate(self, line: int, column: int, end: bool = False) -> tuple[Chunk, int, int] | None:
        """(chunk, original line, original column) of a text position."""
        line_map = self.line_map
        entry = line_map[line] if 0 < line < len(line_map) else None
        if entry is not None:
            ci, k = entry
            c = self.chunks[ci]
            if k >= len(c.originals) or (c.state == "code" and c.lines[k] and not c.editable[k] and c.deltas[k] == 0):
                # A neutralised line: point at the whole original line.
                orig = c.originals[k] if k < len(c.originals) else ""
                return c, c.origin + k, len(orig) if end else len(orig) - len(orig.lstrip())
            col = column + c.deltas[k]
            return c, c.origin + k, min(col, len(c.originals[k]))
        # A position just past a chunk (the end of its last line, an insertion after it).
        prev = line - 1
        entry = line_map[prev] if column == 0 and 0 < prev < len(line_map) else None
        if entry is not None:
            ci, k = entry
            c = self.chunks[ci]
            orig = c.originals[k] if k < len(c.originals) else ""
            return c, c.origin + k, len(orig)
        return None

    def map_range(self, r: Range) -> tuple[int | None, Range] | None:
        a = self._locate(r.line, r.column)
        b = self._locate(r.end_line, r.end_column, end=True)
        if a is None:
            return None
        if b is None or b[0] is not a[0]:
            # Ends outside the chunk: stop at the end of the start line.
            orig = a[0].originals[a[1] - a[0].origin] if a[1] - a[0].origin < len(a[0].originals) else ""
            b = (a[0], a[1], max(len(orig), a[2]))
        return a[0].cell, Range(a[1], a[2], b[1], max(b[2], a[2]) if b[1] == a[1] else b[2])

    def map_edit(self, e: Edit) -> Edit | None:
        """An edit in original coordinates, or None when it cannot be made there."""
        a = self._edit_point(e.range.line, e.range.column)
        insert = e.range.line == e.range.end_line and e.range.column == e.range.end_column
        b = a if insert else self._edit_point(e.range.end_line, e.range.end_column)
        if a is None or b is None or a[0] is not b[0]:
            return None
        c = a[0]
        content = e.content
        if "\n" in content:
            if c.console:
                return None
            k = a[1] - c.origin
            orig = c.originals[k] if 0 <= k < len(c.originals) else ""
            prefix = orig[: c.deltas[k]] if 0 <= k < len(c.deltas) else ""
            if prefix.strip():
                return None
            # New lines in an indented block (a list item) need its indentation.
            content = content.replace("\n", "\n" + prefix) if prefix else content
        return Edit(Range(a[1], a[2], b[1], b[2]), content, cell=c.cell)

    def _edit_point(self, line: int, column: int) -> tuple[Chunk, int, int] | None:
        line_map = self.line_map
        entry = line_map[line] if 0 < line < len(line_map) else None
        if entry is not None:
            ci, k = entry
            c = self.chunks[ci]
            if c.state != "code" or k >= len(c.originals):
                return None
            if not c.editable[k] and column != 0:
                return None
            return c, c.origin + k, column + c.deltas[k]
        prev = line - 1
        entry = line_map[prev] if column == 0 and 0 < prev < len(line_map) else None
        if entry is not None:
            ci, k = entry
            c = self.chunks[ci]
            if c.state != "code" or c.console:
                return None
            if c.cell is not None:
                # Appending after a cell's last line.
                return c, c.origin + k + 1, 0
            return c, c.origin + k + 1, 0  # before the closing fence
        return None

    def map_fix(self, fix: Fix | None) -> Fix | None:
        if fix is None:
            return None
        edits = []
        for e in fix.edits:
            mapped = self.map_edit(e)
            if mapped is None:
                return None
            edits.append(mapped)
        return Fix(fix.applicability, fix.message, tuple(edits))

    def map_finding(self, f: Finding) -> Finding | None:
        where = self.map_range(f.range)
        if where is None:
            return None
        cell, rng = where
        related = []
        for r in f.related:
            w = self.map_range(r.range)
            if w is not None:
                related.append(Related(w[1], r.message, cell=w[0]))
        return evolve(f, range=rng, cell=cell, fix=self.map_fix(f.fix), related=tuple(related), message=self.relabel(f.message))

    def relabel(self, text: str) -> str:
        """A notebook's "line N" (of the joined Python text, in a rule's message or a runtime verdict) as
        the reader finds it: "cell 3, line 2". Markdown and RST keep their own line numbers."""
        if self.kind != "notebook" or "line " not in text:
            return text

        def shown(m: re.Match) -> str:
            n = int(m.group(1))
            entry = self.line_map[n] if 0 < n < len(self.line_map) else None
            if entry is None:
                return m.group(0)
            chunk = self.chunks[entry[0]]
            if chunk.cell is None:
                return m.group(0)
            return f"cell {chunk.cell}, line {chunk.origin + entry[1]}"

        return re.sub(r"\bline (\d+)\b", shown, text)

    def chunk_errors(self) -> list[Finding]:
        """The TL001 of every chunk that does not parse, in original coordinates."""
        out = []
        for c in self.chunks:
            if c.error is not None and c.state in ("broken", "code"):
                r = c.error.range
                k = min(max(r.line - 1, 0), max(len(c.originals) - 1, 0))
                orig = c.originals[k] if c.originals else ""
                delta = c.deltas[k] if k < len(c.deltas) else 0
                col = min(r.column + delta, len(orig))
                end = min(max(r.end_column + delta, col), len(orig)) if r.end_line == r.line else len(orig)
                out.append(evolve(c.error, range=Range(c.origin + k, col, c.origin + k, end), cell=c.cell))
        return out

    # -- fixing --

    def apply(self, fixes: list[Fix]) -> tuple[str, int]:
        """Apply (already mapped) fixes to the original; returns (new original text, fixes applied)."""
        from torchlint.fixes import apply_fixes

        if self.kind != "notebook":
            return apply_fixes(self.original, fixes)
        by_cell: dict[int, list[Fix]] = {}
        order: list[Fix] = []
        for fix in fixes:
            cells = {e.cell for e in fix.edits}
            if len(cells) != 1 or None in cells:
                continue  # a fix across cells is left for a later pass (or never)
            by_cell.setdefault(cells.pop(), []).append(fix)  # type: ignore[arg-type]
            order.append(fix)
        sources = cell_sources(self.original) or []
        new_sources: dict[int, str] = {}
        applied = 0
        for cell, cell_fixes in by_cell.items():
            if not 1 <= cell <= len(sources):
                continue
            src = sources[cell - 1]
            if not src.endswith("\n"):
                # An insertion after the last line needs a line break first; the extra one is removed after.
                fixed, n = apply_fixes(src + "\n", cell_fixes)
                fixed = fixed[:-1] if fixed.endswith("\n") else fixed
            else:
                fixed, n = apply_fixes(src, cell_fixes)
            if fixed != src:
                new_sources[cell] = fixed
                applied += n
        if not new_sources:
            return self.original, 0
        return write_cells(self.original, new_sources), applied


def json_lines(raw: str) -> dict[tuple[int, int], int]:
    """(cell, line in the cell) -> the line of the notebook's JSON text that holds it (for
    annotations on the file itself: GitHub, SARIF viewers)."""
    out: dict[tuple[int, int], int] = {}
    try:
        spans = _Locator(raw).cell_spans()
    except (AssertionError, ValueError, IndexError):
        return out
    for cell, span in enumerate(spans, start=1):
        if span is None:
            continue
        if span.items:
            for k, (a, _) in enumerate(span.items, start=1):
                out[(cell, k)] = raw.count("\n", 0, a) + 1
        else:
            line = raw.count("\n", 0, span.start) + 1
            for k in range(1, raw[span.start : span.end].count("\\n") + 2):
                out[(cell, k)] = line
    return out


def text_findings(
    raw: str, path: str, language: str, codes: frozenset[str] | None = None, conventions: Mapping[str, str] | None = None
) -> tuple[Document, list[tuple[Finding, Finding]]]:
    """The document and its findings twice: in the Python text's coordinates (what the runtime
    checker runs) and mapped back to the document (what the user was shown)."""
    from torchlint.engine import LintOptions, lint_source

    with gc_paused():
        doc = build(raw, path, language)
        table = dict(CONVENTIONAL_IMPORTS if conventions is None else conventions)
        facts = doc.facts(table)
        _hand_tree(doc, facts)
        inner = lint_source(doc.text, path, LintOptions(codes=codes, document=facts))
    pairs = [(f, m) for f, m in ((f, doc.map_finding(f)) for f in inner.findings) if m is not None]
    return doc, pairs


def python_facts(text: str, conventions: Mapping[str, str] | None = None) -> DocumentFacts:
    """Facts for Python text linted as if it were a document's one code block (rule examples, tests)."""
    lines = python_lines(text)
    chunk = Chunk(1, 1, lines, [0] * len(lines), [True] * len(lines), originals=lines)
    doc = Document("markdown", "<example>", text, [chunk])
    return doc.facts(CONVENTIONAL_IMPORTS if conventions is None else conventions)


def apply_notebook_fixes(raw: str, fixes: list[Fix]) -> tuple[str, int]:
    """Apply fixes (edits in cell coordinates) to a notebook's JSON text."""
    return Document("notebook", "", raw, []).apply(fixes)


def write_cells(raw: str, new_sources: Mapping[int, str]) -> str:
    """The notebook text with only the given cells' ``source`` values replaced, in the file's own style."""
    spans = _Locator(raw).cell_spans()
    ensure_ascii = _uses_ascii_escapes(raw)
    out = raw
    for cell in sorted(new_sources, reverse=True):
        span = spans[cell - 1] if 0 < cell <= len(spans) else None
        if span is None:
            continue
        out = out[: span.start] + _source_json(raw, span, new_sources[cell], ensure_ascii) + out[span.end :]
    return out


def _uses_ascii_escapes(raw: str) -> bool:
    if any(ord(ch) > 127 for ch in raw):
        return False
    return re.search(r"\\u(?!00[0-7])[0-9a-fA-F]{4}", raw) is not None


def _source_json(raw: str, span: _CellSpan, source: str, ensure_ascii: bool) -> str:
    if raw[span.start] == '"':
        return json.dumps(source, ensure_ascii=ensure_ascii)
    lines = source.splitlines(keepends=True)
    if not lines:
        return "[]"
    line_start = raw.rfind("\n", 0, span.start) + 1
    key_indent = raw[line_start : len(raw[line_start:]) - len(raw[line_start:].lstrip(" \t")) + line_start]
    if span.items:
        first = raw[span.start + 1 : span.items[0][0]]  # "\n    " between [ and the first item
        last = raw[span.items[-1][1] : span.end - 1]  # whitespace before ]
        if len(span.items) > 1:
            sep = raw[span.items[0][1] : span.items[1][0]]
        else:
            sep = "," + first if first else ", "
    else:
        unit = _indent_unit(raw)
        first = "\n" + key_indent + unit
        last = "\n" + key_indent
        sep = "," + first
    items = [json.dumps(line, ensure_ascii=ensure_ascii) for line in lines]
    return "[" + first + sep.join(items) + last + "]"


def _indent_unit(raw: str) -> str:
    m = re.search(r"\n([ \t]+)\S", raw)
    return m.group(1) if m else " "


# --- building documents --------------------------------------------------------------------------


def build(text: str, path: str, kind: str) -> Document:
    """The Document of a file's text. Raises :class:`SourceError` for an unreadable notebook."""
    _refused.clear()  # (what one build learnt: a file's cells are not another's)
    if kind == "notebook":
        # (The decoded JSON goes once its cells are read: most of it is outputs, which, kept through
        # the lint, would hold memory the lint's own objects could reuse.)
        return Document(kind, path, text, notebook_chunks(read_notebook(text, path)))
    if kind == "rst":
        return Document(kind, path, text, rst_chunks(text))
    return Document("markdown", path, text, markdown_chunks(text))


def _syntax_error(code: str, path: str, c: Chunk) -> Finding | None:
    from torchlint.engine import parser_error_finding

    exc = _refused.get(code)  # (the parser's answer: asked again, it gives the same)
    if exc is None:
        try:
            # (No file name: for a file's own text CPython reads the error's line from the file to
            # place the column, and a cell's line N is not the notebook's line N.)
            ast.parse(code)
        except (SyntaxError, ValueError, RecursionError, MemoryError) as err:
            exc = err
        else:
            return None
    f = parser_error_finding(code, exc)
    # An error at the end of input points past the chunk: show it on its last code line.
    last = len(c.lines)
    while last > 1 and not c.lines[last - 1].strip():
        last -= 1
    if f.range.line > last:
        text = c.lines[last - 1] if c.lines else ""
        f = replace(f, range=Range(last, max(len(text) - 1, 0), last, len(text)))
    return f


def _hand_tree(doc: Document, facts: DocumentFacts) -> None:
    """The rules' pre-checks (the TL501/TL502 prescan, the gates) parse the text they are given, the
    document's text plus its trigger imports, and the positions of findings the text: when building
    the document parsed the text, they get that tree instead of parsing it again."""
    tree = doc.python_tree(facts.trigger_text)
    if tree is not None:
        from torchlint.incremental import hold_ast

        if facts.trigger_text:
            hold_ast((doc.text + facts.trigger_text, tree), (doc.text, doc.python_tree()))  # type: ignore[arg-type]
        else:
            hold_ast((doc.text, tree))


def lint_document(doc: Document, options, conventions: Mapping[str, str] | None = None) -> FileReport:
    """Lint a document's code as one module; findings come back in original coordinates."""
    from torchlint.engine import SYNTAX_ERROR_CODE, lint_source

    report = FileReport(path=doc.path, source=doc.original)
    table = dict(CONVENTIONAL_IMPORTS if conventions is None else conventions)
    if not doc.text or doc.text.isspace():  # (not ``strip()``: no copy of the text to test it)
        report.findings = doc.chunk_errors()
        return report
    facts = doc.facts(table)
    _hand_tree(doc, facts)
    inner = lint_source(doc.text, doc.path, evolve(options, document=facts))
    findings = inner.findings
    errors = list(inner.errors)
    if any(f.code == SYNTAX_ERROR_CODE for f in findings):
        # Every chunk parses alone but not together (a block continuing another's
        # indentation, say): lint each on its own so none hides the others.
        mapped = []
        for ci, c in enumerate(doc.chunks):
            if c.state != "code":
                continue
            one = Document.__new__(Document)
            one.__dict__.update(doc.__dict__)
            one.chunks = [c if i == ci else replace(x, state="skipped") for i, x in enumerate(doc.chunks)]
            one._layout()
            part = lint_source(one.text, doc.path, replace(options, document=one.facts(table)))
            mapped.extend(m for m in (one.map_finding(f) for f in part.findings if f.code != SYNTAX_ERROR_CODE) if m is not None)
            errors.extend(part.errors)
    else:
        mapped = [m for m in (doc.map_finding(f) for f in findings) if m is not None]
    mapped.extend(doc.chunk_errors())
    mapped.sort(key=lambda f: (f.cell or 0, f.range, f.code))
    report.findings = mapped
    report.errors = list(dict.fromkeys(errors))
    # The trees handed over go with the document (held, they would be the survivors the collector
    # scans first once it runs again: a .py file's lint lets its tree go too).
    from torchlint.incremental import hold_ast

    hold_ast()
    return report


__all__ = [
    "CONVENTIONAL_IMPORTS",
    "Chunk",
    "Document",
    "DocumentFacts",
    "DOCUMENT_LANGUAGES",
    "build",
    "cell_sources",
    "conventional_import",
    "lint_document",
    "markdown_chunks",
    "neutralise",
    "read_notebook",
    "rst_chunks",
    "write_cells",
]
