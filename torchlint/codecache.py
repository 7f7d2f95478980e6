"""Generated methods compiled once per interpreter, not in every process that starts.

Importing libcst creates some 200 dataclasses, torchlint some 120: for each,
``dataclasses`` writes ``__init__``, ``__repr__``, ``__eq__``, ... as source text
and compiles it: about 1,000 compiles, a third of an analysis process's start-up
(~100 ms of the time to a language server's first diagnostics, and of every
``torchlint check``). attrs does the same for lsprotocol's 550 classes (the
language server process's start-up), and cattrs for each type it first converts.

The code compiled depends only on that text and the interpreter. So within
:func:`generated_code`, those modules' ``exec``/``compile`` are given the code
compiled before, read from a file beside torchlint's bytecode (where Python
keeps its own compiled code: the same place, the same trust, the same
``PYTHONDONTWRITEBYTECODE`` and ``PYTHONPYCACHEPREFIX``), and compile only texts
not seen before. Nothing else changes: a text is compiled exactly as the module's
own call would compile it (same file name, the module's ``__future__`` flags).
"""

from __future__ import annotations

import __future__

import builtins
import importlib
import importlib.util
import marshal
import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import CodeType, ModuleType
from typing import Any

# A file's header: the interpreter's bytecode magic (the code objects are its own) and the layout.
_HEADER = importlib.util.MAGIC_NUMBER + b"tl-generated-code-1\n"
_FEATURES = [getattr(__future__, name) for name in __future__.all_feature_names]
_FUTURE_FLAGS = sum({feature.compiler_flag for feature in _FEATURES})
_within: set[str] = set()


def cache_path(name: str) -> str | None:
    """Where the code compiled for ``name`` is kept (None where Python would keep no bytecode either)."""
    try:
        pyc = importlib.util.cache_from_source(__file__)
    except (NotImplementedError, ValueError):  # no cache_tag: bytecode is not cached here
        return None
    return pyc[: -len(".pyc")] + f".{name}.methods"


def _load(path: str) -> dict[str, CodeType]:
    try:
        with open(path, "rb") as fh:
            data = fh.read()
        if not data.startswith(_HEADER):
            return {}
        table = marshal.loads(data[len(_HEADER) :])
    except (OSError, ValueError, EOFError, TypeError):
        return {}  # missing, unreadable or from another interpreter: compiled afresh
    if not isinstance(table, dict):
        return {}
    return {k: v for k, v in table.items() if type(k) is str and type(v) is CodeType}


def _save(path: str, table: dict[str, CodeType]) -> None:
    import tempfile

    try:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=os.path.dirname(path), prefix=".generated-code-")
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(_HEADER + marshal.dumps(table))
            os.chmod(tmp, 0o644)  # (readable by all, as bytecode is: mkstemp makes it private)
            os.replace(tmp, path)  # (two processes writing at once: either file is whole)
        except BaseException:
            os.unlink(tmp)
            raise
    except OSError:
        pass  # a read-only installation: compiled again next time, as its bytecode would be


def _inherited_flags(module: ModuleType) -> int:
    """The ``__future__`` flags that ``compile``/``exec`` called in ``module`` inherit from it."""
    return sum(v.compiler_flag for v in vars(module).values() if any(v is f for f in _FEATURES))


class _Compiler:
    """One process's compiles of generated text: from the table when known, else compiled and noted."""

    def __init__(self, known: dict[str, CodeType]) -> None:
        self.known = known
        self.used: dict[str, CodeType] = {}
        self.compiled = 0

    def code(self, source: str, filename: str, flags: int) -> CodeType:
        key = f"{filename}\0{flags}\0{source}"
        code = self.known.get(key)
        if code is None:
            code = builtins.compile(source, filename, "exec", flags, True)
            self.compiled += 1
        self.used[key] = code
        return code

    def exec_for(self, module: ModuleType) -> Callable[..., Any]:
        inherited = _inherited_flags(module)

        def exec_(source: Any, globals: Any = None, locals: Any = None, /, **kwargs: Any) -> Any:
            if type(source) is str and not kwargs:
                source = self.code(source, "<string>", inherited)
            return builtins.exec(source, globals, locals, **kwargs)

        return exec_

    def compile_for(self, module: ModuleType) -> Callable[..., Any]:
        inherited = _inherited_flags(module)

        def compile_(source: Any, filename: Any, mode: str, flags: int = 0, dont_inherit: bool = False, optimize: int = -1, **kwargs: Any) -> Any:
            if not dont_inherit:
                flags |= inherited  # (what the module's own call would inherit, not this function's)
            if type(source) is str and type(filename) is str and mode == "exec" and not flags & ~_FUTURE_FLAGS and optimize == -1 and not kwargs:
                return self.code(source, filename, flags)
            return builtins.compile(source, filename, mode, flags, True, optimize, **kwargs)

        return compile_


# module -> the builtin it compiles generated text with
_GENERATORS = {"dataclasses": "exec", "attr._make": "compile", "cattrs.gen": "compile"}


@contextmanager
def generated_code(name: str, *modules: str) -> Iterator[None]:
    """Within: ``dataclasses`` (and ``modules``, among ``attr._make`` and ``cattrs.gen``) reuse the
    code compiled by an earlier process of this interpreter, kept under ``name``.

    On leaving, the file is rewritten when something was compiled (what a ``check`` and an
    analysis process define differs a little: each keeps the other's), without what this
    process did not use once it holds much more (classes gone after an upgrade).
    """
    path = cache_path(name)
    if path is None or name in _within:
        yield  # (no place to keep it, or already within)
        return
    compiler = _Compiler(_load(path))
    hooked: list[tuple[ModuleType, str]] = []
    for module_name in ("dataclasses", *modules):
        try:
            module = importlib.import_module(module_name)
        except ImportError:
            continue
        builtin = _GENERATORS[module_name]
        if builtin in vars(module):
            continue  # (another use of this module is under way)
        setattr(module, builtin, compiler.exec_for(module) if builtin == "exec" else compiler.compile_for(module))
        hooked.append((module, builtin))
    _within.add(name)
    try:
        yield
    finally:
        _within.discard(name)
        for module, builtin in hooked:
            delattr(module, builtin)  # the builtin is the module's again
        if compiler.compiled and not sys.dont_write_bytecode:
            known, used = compiler.known, compiler.used
            _save(path, used if len(known) > 2 * len(used) else {**known, **used})
