"""The recorded API snapshots: one gzipped JSON file per package and release.

File ``data/<package>-<version>.json.gz``, written by ``generate.py``::

    {"format": 2, "package": "torch", "python": "3.11", "version": "2.13.0",
     "builders":  {"torchvision.models.resnet.resnet18": {"returns": "torchvision.models.resnet.ResNet",
                   "children": {"fc": "torch.nn.modules.linear.Linear", ...}}},
     "classes":   {"torch.nn.modules.linear.Linear": {"bases": [...], "attrs": [own __dict__ names],
                   "annotations": [...], "inst": [what methods set on self], "open": false,
                   "init": ["1in_features", "1bias=True", ...], "kwargs_to": "super().__init__"}},
     "functions": {"torch.nn.functional.relu": {"sig": [...] | null, "kwargs_to": "..."}},
     "modules":   {"torch.nn": {"names": {"Linear": "c:torch.nn.modules.linear.Linear", "init": "m:torch.nn.init",
                                          "functional": "m:...", "x": "v"},
                                "submodules": ["attention", ...], "open": false}}}

A signature entry is a kind digit (0 positional-only, 1 positional-or-keyword,
2 ``*args``, 3 keyword-only, 4 ``**kwargs``), the name, and ``=default`` when
there is one. A name a module's ``dir()`` lists is ``m:`` a submodule, ``c:``
a class, ``f:`` a function (by the qualified name it is defined under), ``v``
anything else, ``?`` when reading it raised.

Layout (format 2): the same JSON document as format 1, written one entry per
line: the first line holds the other keys (``{"format":2,...,"version":"2.13.0",``),
then each section opens on a line of its own (``"classes":{``), one line per
entry follows (``"torch.nn.modules.linear.Linear":{...},``, sorted by name),
and the section closes on a line of its own (``},``; the last ``}`` closes the
document). So a snapshot is indexed without parsing it: each entry stays JSON
text until a question needs it (:class:`Section`). A process reads every
release of torch and torchvision (the TL501/TL502 pre-check, knowledge/prescan.py)
and asks about a few hundred entries of their tens of thousands: indexing the
five files takes about 50 ms where decoding them whole took 250 ms, and the
text of all of them takes less memory than their decoded objects did.
Format 1 files (the same document on one line) are read whole.

Nothing here imports torch; files are read on first use and kept for the
process (the language server's workers and the CLI's pool share them by fork).
"""

from __future__ import annotations

import gzip
import json
import sys
import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from torchlint.knowledge.versions import Version

DATA_DIR = Path(__file__).resolve().parent / "data"
PACKAGES = ("torch", "torchvision", "torchaudio")

_lock = threading.Lock()


@lru_cache(maxsize=1)
def available() -> dict[str, tuple[Version, ...]]:
    """Package -> the releases recorded, oldest first."""
    found: dict[str, list[Version]] = {}
    if DATA_DIR.is_dir():
        for path in DATA_DIR.glob("*.json.gz"):
            package, _, version = path.name[: -len(".json.gz")].partition("-")
            v = Version.parse(version)
            if package in PACKAGES and v is not None:
                found.setdefault(package, []).append(v)
    return {p: tuple(sorted(vs)) for p, vs in found.items()}


def newest(package: str) -> Version | None:
    versions = available().get(package)
    return versions[-1] if versions else None


def snapshot_for(package: str, target: Version) -> "Snapshot | None":
    """The recorded release closest to ``target``: the newest not after it, else the oldest."""
    versions = available().get(package)
    if not versions:
        return None
    older = [v for v in versions if v.release <= target.release]
    chosen = older[-1] if older else versions[0]
    return load(package, chosen)


SECTIONS = ("builders", "classes", "functions", "modules")


def _strings(value: Any) -> Any:
    kind = type(value)
    if kind is str:
        return sys.intern(value)
    if kind is list:
        return [_strings(v) for v in value]
    return value


def _shared_strings(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """A JSON object with its strings interned: the releases of a package record mostly
    the same names and signatures, and a process reads them all (knowledge/prescan.py)."""
    return {sys.intern(k): _strings(v) for k, v in pairs}


class Section(Mapping):
    """One section of a snapshot (name -> entry), each entry decoded the first time it is asked for."""

    __slots__ = ("_raw", "_decoded")

    def __init__(self, raw: dict[str, str], decoded: dict[str, Any] | None = None) -> None:
        self._raw = raw  # name -> the entry's JSON text (a trailing comma allowed)
        self._decoded: dict[str, Any] = {} if decoded is None else decoded

    @classmethod
    def of(cls, entries: dict[str, Any]) -> "Section":
        """A section already decoded (a format 1 file)."""
        return cls({}, entries)

    def __getitem__(self, name: str) -> Any:
        try:
            return self._decoded[name]
        except KeyError:
            pass
        text = self._raw[name]
        value = json.loads(text[:-1] if text[-1:] == "," else text, object_pairs_hook=_shared_strings)
        self._decoded[sys.intern(name)] = value  # (the name as the index holds it, not the caller's copy)
        return value

    def get(self, name: str, default: Any = None) -> Any:
        try:
            return self[name]
        except KeyError:
            return default

    def __contains__(self, name: object) -> bool:
        return name in self._decoded or name in self._raw

    def __iter__(self) -> Iterator[str]:
        # A section read from format 2 has every name in its index (decoded ones too).
        return iter(self._raw if self._raw else self._decoded)

    def __len__(self) -> int:
        return len(self._raw if self._raw else self._decoded)


def _index(lines: list[str]) -> dict[str, str]:
    """Entry lines (``"name":{...},``) -> {name: the entry's text}."""
    out = {}
    for name, sep, entry in (line.partition('":') for line in lines):
        if name[:1] != '"' or not sep or "\\" in name:
            raise ValueError(f"not an entry line: {name[:60]!r}")
        out[sys.intern(name[1:])] = entry
    return out


def parse(text: str) -> dict[str, Any]:
    """A snapshot file's text -> its document, the sections as :class:`Section` (see the module docstring)."""
    lines = text.split("\n")
    head = lines[0]
    if head[:1] == "{" and head[-1:] == ",":
        try:
            doc = json.loads(head[:-1] + "}")
            if doc.get("format") == 2:
                pos = 1
                while True:
                    opener = lines[pos]
                    if not (opener[:1] == '"' and opener[-3:] == '":{' and opener[1:-3] in SECTIONS):
                        raise ValueError(f"not a section: {opener[:60]!r}")
                    end = min(_find(lines, "},", pos + 1), _find(lines, "}", pos + 1))
                    doc[opener[1:-3]] = Section(_index(lines[pos + 1 : end]))
                    pos = end + 1
                    if lines[end] == "}":  # the last section; the document's own brace follows
                        break
                if lines[pos] != "}" or any(lines[pos + 1 :]):
                    raise ValueError("not the end of the document")
                return doc
        except (ValueError, IndexError):
            pass  # not laid out as format 2: read it whole
    doc = json.loads(text, object_pairs_hook=_shared_strings)
    for key in SECTIONS:
        if key in doc:
            doc[key] = Section.of(doc[key])
    return doc


def _find(lines: list[str], line: str, start: int) -> int:
    try:
        return lines.index(line, start)
    except ValueError:
        return len(lines)


@lru_cache(maxsize=None)
def _load(package: str, version: Version) -> "Snapshot":
    for path in DATA_DIR.glob(f"{package}-*.json.gz"):
        if Version.parse(path.name[len(package) + 1 :]) == version:
            with gzip.open(path, "rb") as fh:
                return Snapshot(parse(fh.read().decode("utf-8")))
    raise FileNotFoundError(f"no knowledge file for {package} {version}")


def load(package: str, version: Version) -> "Snapshot":
    with _lock:
        return _load(package, version)


@dataclass(frozen=True)
class Signature:
    """A callable's parameters as recorded (see the module docstring for the encoding)."""

    params: tuple[str, ...]
    # Where a ``**kwargs`` goes when it is only forwarded (dotted source text).
    kwargs_to: str | None = None

    def _split(self) -> list[tuple[str, str, bool]]:
        out = []
        for p in self.params:
            kind, rest = p[0], p[1:]
            name, eq, _ = rest.partition("=")
            out.append((kind, name, bool(eq)))
        return out

    @property
    def keywords(self) -> frozenset[str]:
        """Names that may be passed as keywords."""
        return frozenset(name for kind, name, _ in self._split() if kind in "13")

    @property
    def has_var_keyword(self) -> bool:
        return any(p.startswith("4") for p in self.params)

    @property
    def has_var_positional(self) -> bool:
        return any(p.startswith("2") for p in self.params)

    def parameter_names(self) -> list[str]:
        return [name for _, name, _ in self._split()]


class Snapshot:
    """One package release's recorded API, with name resolution over it."""

    def __init__(self, doc: dict[str, Any]) -> None:
        self.package: str = doc["package"]
        self.version = Version.parse(doc["version"]) or Version(0)
        self.version_text: str = doc["version"]
        self.modules: Mapping[str, dict[str, Any]] = doc["modules"]
        self.classes: Mapping[str, dict[str, Any]] = doc["classes"]
        self.functions: Mapping[str, dict[str, Any]] = doc["functions"]
        self.builders: Mapping[str, dict[str, Any]] = doc.get("builders") or Section.of({})
        self._mro: dict[str, tuple[str, ...]] = {}
        self._attributes: dict[tuple[str, bool], frozenset[str] | None] = {}

    # -- what a dotted name is ------------------------------------------------------

    def resolve(self, qualname: str) -> tuple[str, str] | None:
        """``("module"|"class"|"function"|"value", canonical)`` for a public dotted name, else None (unknown or missing)."""
        parts = qualname.split(".")
        # The longest recorded module prefix.
        for i in range(len(parts), 0, -1):
            module = ".".join(parts[:i])
            if module in self.modules:
                break
        else:
            return None
        current: tuple[str, str] = ("module", module)
        for part in parts[i:]:
            nxt = self.member(current, part)
            if nxt is None:
                return None
            current = nxt
        return current

    def member(self, of: tuple[str, str], name: str) -> tuple[str, str] | None:
        kind, canonical = of
        if kind == "module":
            entry = self.modules.get(canonical)
            if entry is None:
                return None
            ref = entry["names"].get(name)
            if ref is None:
                if name in entry.get("submodules", ()):
                    sub = f"{canonical}.{name}"
                    return ("module", sub)
                return None
            return _ref(ref, f"{canonical}.{name}")
        if kind == "class":
            if self.class_has(canonical, name) is True:
                return ("value", f"{canonical}.{name}")
        return None

    def module_names(self, module: str) -> frozenset[str] | None:
        entry = self.modules.get(module)
        if entry is None:
            return None
        return frozenset(entry["names"]) | frozenset(entry.get("submodules", ()))

    def module_is_open(self, module: str) -> bool:
        entry = self.modules.get(module)
        return entry is None or bool(entry.get("open"))

    # -- classes --------------------------------------------------------------------

    def mro(self, cls: str) -> tuple[str, ...]:
        """The class and its recorded bases, depth first (enough for membership questions)."""
        if cls in self._mro:
            return self._mro[cls]
        out: list[str] = []
        todo = [cls]
        while todo:
            c = todo.pop(0)
            if c in out:
                continue
            out.append(c)
            entry = self.classes.get(c)
            if entry:
                todo.extend(entry.get("bases", ()))
        self._mro[cls] = tuple(out)
        return self._mro[cls]

    def class_attributes(self, cls: str, instance: bool) -> frozenset[str] | None:
        """Every name the class (or, with ``instance``, its instances) has; None when it cannot be known."""
        # Asked for the same classes on every lint (the prescan, TL501): a snapshot never changes.
        key = (cls, instance)
        if key in self._attributes:
            return self._attributes[key]
        names = self._attributes[key] = self._class_attributes(cls, instance)
        return names

    def _class_attributes(self, cls: str, instance: bool) -> frozenset[str] | None:
        names: set[str] = set(_OBJECT_ATTRS)
        for c in self.mro(cls):
            entry = self.classes.get(c)
            if entry is None:
                if c in ("builtins.object", "typing.Generic"):
                    continue
                return None  # a base we did not record
            if entry.get("open"):
                return None
            names.update(entry.get("attrs", ()))
            names.update(entry.get("annotations", ()))
            names.update(entry.get("meta", ()))
            if instance:
                names.update(entry.get("inst", ()))
        return frozenset(names)

    def class_has(self, cls: str, name: str, instance: bool = False) -> bool | None:
        names = self.class_attributes(cls, instance)
        if names is None:
            return None
        return name in names

    def init_signature(self, cls: str) -> Signature | None:
        for c in self.mro(cls):
            entry = self.classes.get(c)
            if entry is None:
                return None
            if "init" in entry:
                sig = entry["init"]
                return None if sig is None else Signature(tuple(sig), entry.get("kwargs_to"))
        return None

    def function_signature(self, func: str) -> Signature | None:
        entry = self.functions.get(func)
        if entry is None or entry.get("sig") is None:
            return None
        return Signature(tuple(entry["sig"]), entry.get("kwargs_to"))


_OBJECT_ATTRS = frozenset(dir(object)) | {"__dict__", "__weakref__", "__module__", "__annotations__"}


def _ref(ref: str, where: str) -> tuple[str, str]:
    if ref.startswith("m:"):
        return ("module", ref[2:])
    if ref.startswith("c:"):
        return ("class", ref[2:])
    if ref.startswith("f:"):
        return ("function", ref[2:])
    return ("value", where)
