"""Reading files the linter is given: decoding, binary detection, Markdown code blocks.

Every failure is a :class:`SourceError` with a one-line message naming the file,
so callers never show a traceback for bad input.
"""

from __future__ import annotations

import codecs
import io
import re
import tokenize
from dataclasses import dataclass
from pathlib import Path

# The analyzer keeps up to ~1.3 KB of syntax tree and findings per byte of source (a
# file that is all findings: 2 MB took 2.7 GB and 52 s of CPU): past 1 MB one file could
# take more than 1.5 GB. Bigger files (generated code, mostly) are skipped with a
# message; the `max-file-size` setting raises the limit.
MAX_BYTES = 1024 * 1024
MARKDOWN_SUFFIXES = frozenset({".md", ".markdown"})


_LINE = re.compile(r"[^\r\n]*(?:\r\n|\r|\n)|[^\r\n]+$")


def python_lines(text: str, keepends: bool = False) -> list[str]:
    """Lines as Python and libcst count them: broken at \\n, \\r\\n and \\r only.

    ``str.splitlines`` also breaks at form feeds, U+2028 and friends, which would
    shift every position after one of them.
    """
    if not keepends and "\r" not in text:
        lines = text.split("\n")  # the same lines, at C speed: a final "\n" ends the last line
        if not lines[-1]:
            lines.pop()
        return lines
    lines = _LINE.findall(text)
    return lines if keepends else [line.rstrip("\r\n") for line in lines]


class SourceError(Exception):
    """A file that cannot be linted; ``str()`` is the one-line message for the user."""


def too_large(size: int, limit: int) -> str:
    shown, most = _size(size), _size(limit)
    if shown == most:  # 1.04 MB over a 1 MB limit: exact figures, not "1.0 MB > 1.0 MB"
        shown, most = f"{size:,} bytes", f"{limit:,} bytes"
    return f"file is too large to lint ({shown} > {most}); skipped (the `max-file-size` setting raises the limit)"


def _size(n: int) -> str:
    if n >= 1024 * 1024:
        return f"{n / 1024 / 1024:.1f} MB"
    return f"{n / 1024:.0f} KB" if n >= 1024 else f"{n} bytes"


def decode(data: bytes, path: str, max_bytes: int | None = None) -> str:
    limit = MAX_BYTES if max_bytes is None else max_bytes
    if len(data) > limit:
        raise SourceError(f"{path}: {too_large(len(data), limit)}")
    if b"\x00" in data[:8192]:
        raise SourceError(f"{path}: binary file (contains NUL bytes), not Python source")
    try:
        encoding, _ = tokenize.detect_encoding(io.BytesIO(data).readline)
    except SyntaxError as exc:
        # tokenize blames a missing coding cookie for any bad byte on the first two lines.
        try:
            data.decode("utf-8")
        except UnicodeDecodeError as bad:
            raise SourceError(_not_decodable(path, "utf-8", data, bad)) from None
        raise SourceError(f"{path}: {exc.msg if hasattr(exc, 'msg') else exc}") from None
    try:
        codecs.lookup(encoding)
        text = data.decode(encoding)
    except LookupError:
        raise SourceError(f"{path}: unknown source encoding {encoding!r}") from None
    except UnicodeDecodeError as exc:
        raise SourceError(_not_decodable(path, encoding, data, exc)) from None
    if text.startswith("\ufeff"):
        text = text[1:]
    return text


def _not_decodable(path: str, encoding: str, data: bytes, exc: UnicodeDecodeError) -> str:
    return (
        f"{path}: not valid {encoding.upper()} (byte 0x{data[exc.start]:02x} at offset {exc.start}); "
        "save the file as UTF-8 or declare its encoding"
    )


def read_source(path: str | Path) -> str:
    p = Path(path)
    try:
        data = p.read_bytes()
    except FileNotFoundError:
        raise SourceError(f"{p}: no such file or directory") from None
    except IsADirectoryError:
        raise SourceError(f"{p}: is a directory") from None
    except PermissionError:
        raise SourceError(f"{p}: permission denied") from None
    except OSError as exc:
        raise SourceError(f"{p}: cannot read: {exc.strerror or exc}") from None
    return decode(data, str(p))


_FENCE = re.compile(r"^(?P<indent>[ \t]*)(?P<fence>`{3,}|~{3,})[ \t]*(?P<info>[^\s`]*)[^\n]*$")
_PY_INFOS = frozenset({"python", "py", "python3", "py3", "pycon"})


@dataclass(frozen=True)
class CodeBlock:
    start_line: int  # 1-based line of the first code line
    lines: tuple[str, ...]


def markdown_blocks(text: str) -> list[CodeBlock]:
    """The fenced ```python blocks of a Markdown document."""
    blocks: list[CodeBlock] = []
    lines = python_lines(text)
    i = 0
    while i < len(lines):
        m = _FENCE.match(lines[i])
        if not m:
            i += 1
            continue
        fence, indent, info = m.group("fence"), len(m.group("indent")), m.group("info").lower()
        body: list[str] = []
        j = i + 1
        while j < len(lines) and not lines[j].strip().startswith(fence[0] * len(fence)):
            line = lines[j]
            body.append(line[indent:] if line[:indent].strip() == "" else line.lstrip())
            j += 1
        if info in _PY_INFOS:
            blocks.append(CodeBlock(i + 2, tuple(body)))
        i = j + 1
    return blocks


def blocks_as_module(text: str, blocks: list[CodeBlock]) -> str:
    """Python source whose line N is line N of the document (non-code lines blank),
    so findings need no position mapping."""
    total = len(python_lines(text))
    out = [""] * total
    for block in blocks:
        for k, line in enumerate(block.lines):
            out[block.start_line - 1 + k] = line
    return "\n".join(out) + "\n"


def is_markdown(path: str | Path, markdown_suffixes: frozenset[str] = MARKDOWN_SUFFIXES) -> bool:
    return Path(path).suffix.lower() in markdown_suffixes
