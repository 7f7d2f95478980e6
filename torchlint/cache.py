"""The results cache: an unchanged tree re-lints almost instantly.

One JSON file per torchlint build under ``<project root>/.torchlint_cache/``,
mapping each absolute path to the key its last result was computed for and
that result. The key covers the file's bytes, its language and its selected
rules; the file name covers torchlint's version and the source of the
installed rules, so editing a rule (or upgrading) starts a fresh cache.
Anything unreadable or malformed is treated as empty: a cache can only make
a run faster, never wrong or broken.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any

import torchlint
from torchlint.diagnostics import FileReport

CACHE_DIR_NAME = ".torchlint_cache"
_FORMAT = 1


# Parts of torchlint that cannot change a file's findings (the key covers the
# selected codes); everything else (engine, rules, analyses, data) is fingerprinted.
_NOT_AFFECTING_RESULTS = frozenset({"server", "runtime", "output", "cli.py", "cache.py", "config.py", "discovery.py", "__main__.py"})


def _build_fingerprint() -> str:
    """torchlint's version plus the size and mtime of the sources that produce findings (a few dozen stats)."""
    h = hashlib.blake2b(digest_size=8)
    h.update(f"{torchlint.__version__}:{_FORMAT}".encode())
    root = Path(torchlint.__file__).parent
    for dirpath, dirnames, filenames in os.walk(root):
        top = dirpath == str(root)
        dirnames[:] = sorted(d for d in dirnames if d != "__pycache__" and not (top and d in _NOT_AFFECTING_RESULTS))
        for name in sorted(filenames):
            if name.endswith(".py") and not (top and name in _NOT_AFFECTING_RESULTS):
                try:
                    st = os.stat(os.path.join(dirpath, name))
                except OSError:
                    continue
                h.update(f"{os.path.relpath(os.path.join(dirpath, name), root)}:{st.st_size}:{st.st_mtime_ns};".encode())
    _plugin_fingerprint(h)
    return h.hexdigest()


def _plugin_fingerprint(h: "hashlib.blake2b") -> None:
    """Plugin rules produce findings too: their code and version, and the files of their top-level package."""
    import sys

    from torchlint.rules import all_rules, is_builtin

    seen: set[str] = set()
    for code, rule in all_rules().items():
        if is_builtin(rule):
            continue
        h.update(f"plugin:{code}:{rule.__module__}.{rule.__qualname__};".encode())
        top = sys.modules.get(rule.__module__.partition(".")[0])
        files = getattr(top, "__path__", None) or [os.path.dirname(getattr(top, "__file__", None) or "")]
        for directory in files:
            if not directory or directory in seen:
                continue
            seen.add(directory)
            for dirpath, dirnames, filenames in os.walk(directory):
                dirnames[:] = sorted(d for d in dirnames if d != "__pycache__")
                for name in sorted(filenames):
                    if name.endswith(".py"):
                        with contextlib.suppress(OSError):
                            st = os.stat(os.path.join(dirpath, name))
                            h.update(f"{dirpath}/{name}:{st.st_size}:{st.st_mtime_ns};".encode())


def entry_key(data: bytes, language: str, codes: frozenset[str] | None, extra: str = "") -> str:
    """``extra``: anything else findings depend on (the target torch release)."""
    h = hashlib.blake2b(digest_size=16)
    h.update(extra.encode())
    h.update(b"\0")
    h.update(language.encode())
    h.update(b"\0")
    h.update(",".join(sorted(codes)).encode() if codes is not None else b"*")
    h.update(b"\0")
    h.update(data)
    return h.hexdigest()


class Cache:
    def __init__(self, directory: str | os.PathLike[str]) -> None:
        self.directory = Path(directory)
        self.fingerprint = _build_fingerprint()
        self.file = self.directory / f"results-{self.fingerprint}.json"
        self._entries: dict[str, list[Any]] = {}
        self._dirty = False
        self._load()

    def _load(self) -> None:
        try:
            raw = self.file.read_bytes()
        except OSError:
            return
        try:
            doc = json.loads(raw)
            entries = doc["entries"]
            if doc.get("fingerprint") != self.fingerprint or not isinstance(entries, dict):
                return
        except (ValueError, KeyError, TypeError, AttributeError):
            return  # corrupt: start over
        self._entries = entries

    def get(self, abspath: str, key: str, path: str) -> FileReport | None:
        entry = self._entries.get(abspath)
        if not isinstance(entry, list) or len(entry) != 2 or entry[0] != key:
            return None
        try:
            report = FileReport.from_dict({"path": path, "findings": entry[1], "errors": []})
        except (KeyError, TypeError, ValueError, AttributeError):
            return None
        return report

    def put(self, abspath: str, key: str, report: FileReport) -> None:
        if report.errors:
            return  # errors are reported afresh every run, never replayed
        self._entries[abspath] = [key, [f.to_dict() for f in report.findings]]
        self._dirty = True

    def save(self) -> None:
        if not self._dirty:
            return
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            _mark_cache_dir(self.directory)
            # Drop results of files that are gone, and caches of other builds.
            entries = {p: e for p, e in self._entries.items() if os.path.exists(p)}
            doc = {"fingerprint": self.fingerprint, "version": torchlint.__version__, "entries": entries}
            fd, tmp = tempfile.mkstemp(dir=self.directory, prefix=".results-", suffix=".tmp")
            try:
                os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes it private; a cache needn't be
                with os.fdopen(fd, "w", encoding="utf-8") as fh:
                    json.dump(doc, fh, separators=(",", ":"))
                os.replace(tmp, self.file)
            except BaseException:
                with contextlib.suppress(OSError):
                    os.unlink(tmp)
                raise
            for old in self.directory.glob("results-*.json"):
                if old != self.file:
                    with contextlib.suppress(OSError):
                        old.unlink()
        except OSError:
            pass  # a read-only tree just doesn't get a cache
        self._dirty = False


def _mark_cache_dir(directory: Path) -> None:
    gitignore = directory / ".gitignore"
    if not gitignore.exists():
        gitignore.write_text("# Created by torchlint.\n*\n", encoding="utf-8")
    tag = directory / "CACHEDIR.TAG"
    if not tag.exists():
        tag.write_text(
            "Signature: 8a477f597d28d172789f06886806bc55\n# This file is a cache directory tag created by torchlint.\n",
            encoding="utf-8",
        )


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def default_cache_dir(project_root: str) -> str:
    env = os.environ.get("TORCHLINT_CACHE_DIR")
    if env:
        return env
    return os.path.join(project_root, CACHE_DIR_NAME)


__all__ = ["CACHE_DIR_NAME", "Cache", "default_cache_dir", "entry_key"]
