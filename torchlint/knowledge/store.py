"""The recorded API snapshots: one gzipped JSON file per package and release.

File ``data/<package>-<version>.json.gz``, written by ``generate.py``::

    {"format": 1, "package": "torch", "version": "2.13.0", "python": "3.11",
     "modules":   {"torch.nn": {"names": {"Linear": "c:torch.nn.modules.linear.Linear", "init": "m:torch.nn.init",
                                          "functional": "m:...", "x": "v"},
                                "submodules": ["attention", ...], "open": false}},
     "classes":   {"torch.nn.modules.linear.Linear": {"bases": [...], "attrs": [own __dict__ names],
                   "annotations": [...], "inst": [what methods set on self], "open": false,
                   "init": ["1in_features", "1bias=True", ...], "kwargs_to": "super().__init__"}},
     "functions": {"torch.nn.functional.relu": {"sig": [...] | null, "kwargs_to": "..."}},
     "builders":  {"torchvision.models.resnet.resnet18": {"returns": "torchvision.models.resnet.ResNet",
                   "children": {"fc": "torch.nn.modules.linear.Linear", ...}}}}

A signature entry is a kind digit (0 positional-only, 1 positional-or-keyword,
2 ``*args``, 3 keyword-only, 4 ``**kwargs``), the name, and ``=default`` when
there is one. A name a module's ``dir()`` lists is ``m:`` a submodule, ``c:``
a class, ``f:`` a function (by the qualified name it is defined under), ``v``
anything else, ``?`` when reading it raised.

Nothing here imports torch; files are read on first use and kept for the
process (the language server's workers and the CLI's pool share them by fork).
"""

from __future__ import annotations

import gzip
import json
import sys
import threading
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


def _strings(value: Any) -> Any:
    kind = type(value)
    if kind is str:
        return sys.intern(value)
    if kind is list:
        return [_strings(v) for v in value]
    return value


def _shared_strings(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """A JSON object with its strings interned: the releases of a package record mostly
    the same names and signatures, and a process loads them all (knowledge/prescan.py);
    shared, they take 17 MB instead of 34 for torch's three and torchvision's two."""
    return {sys.intern(k): _strings(v) for k, v in pairs}


@lru_cache(maxsize=None)
def _load(package: str, version: Version) -> "Snapshot":
    for path in DATA_DIR.glob(f"{package}-*.json.gz"):
        if Version.parse(path.name[len(package) + 1 :]) == version:
            with gzip.open(path, "rb") as fh:
                return Snapshot(json.loads(fh.read(), object_pairs_hook=_shared_strings))
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
        self.modules: dict[str, dict[str, Any]] = doc["modules"]
        self.classes: dict[str, dict[str, Any]] = doc["classes"]
        self.functions: dict[str, dict[str, Any]] = doc["functions"]
        self.builders: dict[str, dict[str, Any]] = doc.get("builders", {})
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
