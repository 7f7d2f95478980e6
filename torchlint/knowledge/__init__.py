"""What torchlint knows about the PyTorch API, for the release a file targets.

Rules reach it as ``self.context.knowledge`` (a :class:`Knowledge`) and ask
questions; they never open the data files. Every answer is for the file's
target release (``knowledge.target``: ``[tool.torchlint] torch-version``, else
the project's declared dependencies, else the newest release known; see
``target.py``). Answers are three-valued where certainty matters:
``True``/``False`` when the recorded API settles it, ``None`` when it cannot be
known (a package or module not recorded, a class with ``__getattr__``, a
signature Python cannot read). A rule stays silent on ``None``.

Typical questions::

    kb = self.context.knowledge
    kb.target.torch                                   # Version(2, 13, 0); str() -> "2.13"
    kb.kind("torch.nn.Linear")                        # "class"  (None: not known)
    kb.has_attribute("torchvision.models", "Sequential")   # False
    kb.attribute_names("torch.nn")                    # frozenset of names, or None
    kb.instance_has("torch.nn.Linear", "in_features") # True ("instance": what __init__ sets too)
    kb.returns("torchvision.models.resnet18")         # Instance("torchvision.models.resnet.ResNet", builder=...)
    kb.child(instance, "fc")                          # Instance("torch.nn.modules.linear.Linear")
    kb.signature("torch.nn.Conv2d")                   # Signature: .keywords, .has_var_keyword
    kb.accepts_keyword("torch.nn.LSTM", "batch_first")  # True / False / None
    kb.deprecation("torch.cuda.amp.autocast")         # a deprecations.Deprecation active in the target, or None
    kb.removal("torch.symeig")                        # the entry when removed in the target, or None
    kb.exists("torch.amp.GradScaler")                 # is it there in the target release? True/False/None
    kb.versions_with("torch.nn.Buffer")               # the recorded releases that have it

Loading is lazy: the first question of a process reads the one gzipped JSON
file of the chosen release (about 10-20 ms); linting never imports torch.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from functools import lru_cache

from torchlint.knowledge import store
from torchlint.knowledge.deprecations import DEPRECATIONS, Deprecation, by_api
from torchlint.knowledge.store import Signature, Snapshot
from torchlint.knowledge.target import target_for_path
from torchlint.knowledge.versions import Target, Version

__all__ = ["Instance", "Knowledge", "Signature", "Target", "Version", "known_versions", "knowledge_for"]


@dataclass(frozen=True)
class Instance:
    """An object of class ``cls`` (canonical name); ``builder``: the torchvision builder that made it."""

    cls: str
    builder: str | None = None


def known_versions() -> dict[str, tuple[Version, ...]]:
    """Package -> releases recorded in the knowledge base (for ``torchlint version``)."""
    return store.available()


def _package(qualname: str) -> str:
    return qualname.split(".", 1)[0]


class Knowledge:
    """API facts for one target. Cheap to create; snapshots are loaded on first use and shared."""

    def __init__(self, target: Target) -> None:
        self.target = target
        self._snapshots: dict[str, Snapshot | None] = {}

    # -- snapshots --------------------------------------------------------------------

    def _version_for(self, package: str) -> Version | None:
        if package == "torch":
            return self.target.torch
        if package == "torchvision":
            return self.target.torchvision
        return store.newest(package)

    def snapshot(self, package: str) -> Snapshot | None:
        """The recorded release used for ``package``: the newest not after the target, else the oldest."""
        if package not in self._snapshots:
            version = self._version_for(package) if package in store.PACKAGES else None
            self._snapshots[package] = store.snapshot_for(package, version) if version is not None else None
        return self._snapshots[package]

    def exact(self, package: str = "torch") -> bool:
        """Is the target release itself recorded (not a neighbour standing in)?"""
        snap = self.snapshot(package)
        version = self._version_for(package)
        return snap is not None and version is not None and snap.version.release == version.release

    # -- names ------------------------------------------------------------------------

    def kind(self, qualname: str) -> str | None:
        """``"module"``, ``"class"``, ``"function"`` or ``"value"`` for a dotted name; None when unknown or missing."""
        snap = self.snapshot(_package(qualname))
        found = snap.resolve(qualname) if snap else None
        return found[0] if found else None

    def canonical(self, qualname: str) -> str | None:
        """Where the object is defined (``torch.nn.Linear`` -> ``torch.nn.modules.linear.Linear``)."""
        snap = self.snapshot(_package(qualname))
        found = snap.resolve(qualname) if snap else None
        return found[1] if found else None

    def public_name(self, canonical: str) -> str:
        """The shortest spelling of a class that resolves to it: ``torch.nn.modules.linear.Linear``
        -> ``torch.nn.Linear`` (``canonical`` itself when no shorter one does)."""
        module, _, cls = canonical.rpartition(".")
        parts = module.split(".")
        for i in range(1, len(parts) + 1):
            candidate = ".".join(parts[:i]) + "." + cls
            if self.canonical(candidate) == canonical:
                return candidate
        return canonical

    def attribute_names(self, qualname: str) -> frozenset[str] | None:
        """Every attribute of a module or class; None when it cannot be known for certain."""
        snap = self.snapshot(_package(qualname))
        found = snap.resolve(qualname) if snap else None
        if found is None or snap is None:
            return None
        kind, canonical = found
        if kind == "module":
            if snap.module_is_open(canonical) and canonical != _package(canonical):
                return None
            return snap.module_names(canonical)
        if kind == "class":
            return snap.class_attributes(canonical, instance=False)
        return None

    def has_attribute(self, qualname: str, name: str) -> bool | None:
        names = self.attribute_names(qualname)
        return None if names is None else name in names

    def instance_attribute_names(self, cls: str) -> frozenset[str] | None:
        """What an instance of ``cls`` (any spelling) has: class attributes plus what its methods set on self."""
        snap = self.snapshot(_package(cls))
        if snap is None:
            return None
        canonical = cls if cls in snap.classes else self.canonical(cls)
        if canonical is None or canonical not in snap.classes:
            return None
        return snap.class_attributes(canonical, instance=True)

    def instance_has(self, cls: str, name: str) -> bool | None:
        names = self.instance_attribute_names(cls)
        return None if names is None else name in names

    # -- values -----------------------------------------------------------------------

    def returns(self, qualname: str) -> Instance | None:
        """What calling ``qualname`` gives: an instance of the class, or the model a torchvision builder builds."""
        snap = self.snapshot(_package(qualname))
        found = snap.resolve(qualname) if snap else None
        if found is None or snap is None:
            return None
        kind, canonical = found
        if kind == "class":
            return Instance(canonical)
        if kind == "function":
            built = snap.builders.get(canonical)
            if built is not None:
                return Instance(built["returns"], canonical)
        return None

    def child(self, instance: Instance, name: str) -> Instance | None:
        """A direct child module of a model a builder made (``resnet18().fc`` -> ``nn.Linear``)."""
        if instance.builder is None:
            return None
        snap = self.snapshot(_package(instance.builder))
        built = snap.builders.get(instance.builder) if snap else None
        if built is None:
            return None
        cls = built["children"].get(name)
        return Instance(cls) if cls else None

    # -- calls ------------------------------------------------------------------------

    def signature(self, qualname: str) -> Signature | None:
        """The parameters of a function, or of a class's constructor; None when not readable."""
        snap = self.snapshot(_package(qualname))
        found = snap.resolve(qualname) if snap else None
        if found is None or snap is None:
            return None
        kind, canonical = found
        if kind == "class":
            return snap.init_signature(canonical)
        if kind == "function":
            return snap.function_signature(canonical)
        return None

    def accepted_keywords(self, qualname: str) -> frozenset[str] | None:
        """Every keyword a call accepts, following ``**kwargs`` forwarded to a parent ``__init__``; None: any may be."""
        snap = self.snapshot(_package(qualname))
        found = snap.resolve(qualname) if snap else None
        if found is None or snap is None:
            return None
        kind, canonical = found
        if kind == "function":
            sig = snap.function_signature(canonical)
            if sig is None:
                return None
            built = snap.builders.get(canonical)
            if built is not None:
                # A torchvision builder: its own parameters, the legacy flags its decorator
                # takes (TL202's business), and what it forwards to the model class.
                own = sig.keywords | {"pretrained", "pretrained_backbone"}
                if not sig.has_var_keyword:
                    return own
                model = self._class_keywords(snap, built["returns"])
                return None if model is None else own | model
            if sig.has_var_keyword:
                return None
            return sig.keywords
        if kind != "class":
            return None
        return self._class_keywords(snap, canonical)

    def _class_keywords(self, snap: Snapshot, canonical: str) -> frozenset[str] | None:
        names: set[str] = set()
        mro = snap.mro(canonical)
        for i, c in enumerate(mro):
            entry = snap.classes.get(c)
            if entry is None:
                return None
            if "init" not in entry:
                continue
            if entry["init"] is None:
                return None
            sig = Signature(tuple(entry["init"]), entry.get("kwargs_to"))
            names |= sig.keywords
            if not sig.has_var_keyword:
                return frozenset(names)
            if sig.kwargs_to != "super().__init__":
                return None
            # Forwarded to the next class in the MRO that defines __init__.
        return None

    def keyword_in_any_release(self, qualname: str, keyword: str) -> bool:
        """Does some recorded release of the package accept ``keyword`` (or not know)?"""
        package = _package(qualname)
        for version in store.available().get(package, ()):
            other = Knowledge(Target(version if package == "torch" else self.target.torch,
                                     version if package == "torchvision" else self.target.torchvision, "option"))
            names = other.accepted_keywords(qualname)
            if names is None or keyword in names:
                return True
        return False

    def accepts_keyword(self, qualname: str, keyword: str) -> bool | None:
        names = self.accepted_keywords(qualname)
        return None if names is None else keyword in names

    # -- deprecations -----------------------------------------------------------------

    def _entries(self, qualname: str) -> tuple[Deprecation, ...]:
        return _by_api().get(qualname, ())

    def _target_of(self, entry: Deprecation) -> Version:
        return (self.target.torchvision if entry.package == "torchvision" else self.target.torch).release

    def deprecation(self, qualname: str, keyword: str | None = None) -> Deprecation | None:
        """The entry for ``qualname`` (or its ``keyword``) deprecated but not yet removed in the target."""
        for entry in self._entries(qualname):
            if (keyword is None) != (entry.keyword is None) or (keyword and keyword not in entry.keywords()):
                continue
            target = self._target_of(entry)
            removed = entry.removed_version
            if entry.since_version.release <= target and (removed is None or target < removed.release):
                return entry
        return None

    def removal(self, qualname: str, keyword: str | None = None) -> Deprecation | None:
        """The entry for ``qualname`` when the target release no longer has it (calling it raises)."""
        for entry in self._entries(qualname):
            if (keyword is None) != (entry.keyword is None) or (keyword and keyword not in entry.keywords()):
                continue
            removed = entry.removed_version
            if removed is not None and removed.release <= self._target_of(entry):
                return entry
        return None

    def deprecated_keywords(self, qualname: str) -> tuple[Deprecation, ...]:
        return tuple(e for e in self._entries(qualname) if e.keyword)

    def exists(self, qualname: str) -> bool | None:
        """Is ``qualname`` in the target release? Needed before suggesting it as a replacement."""
        package = _package(qualname)
        snap = self.snapshot(package)
        if snap is None:
            return None
        if snap.resolve(qualname) is not None:
            version = self._version_for(package)
            # A newer snapshot standing in for an older target proves nothing about the target.
            if version is not None and version.release < snap.version.release:
                since = _replacement_since().get(qualname)
                return None if since is None else since.release <= version.release
            return True
        if self.exact(package):
            return False
        since = _replacement_since().get(qualname)
        version = self._version_for(package)
        return None if since is None or version is None else since.release <= version.release

    def versions_with(self, qualname: str) -> tuple[Version, ...]:
        """The recorded releases in which ``qualname`` exists (each fact's provenance)."""
        package = _package(qualname)
        return tuple(v for v in store.available().get(package, ()) if store.load(package, v).resolve(qualname))

    # -- helpers ----------------------------------------------------------------------

    @staticmethod
    def close_match(name: str, candidates: frozenset[str] | set[str]) -> str | None:
        """The one candidate close to ``name`` (a typo), or None when none or several are."""
        public = [c for c in candidates if not c.startswith("_") or name.startswith("_")]
        matches = difflib.get_close_matches(name, public, n=2, cutoff=0.6)
        if len(matches) == 1:
            return matches[0]
        if len(matches) == 2:
            # ``Dataloader``: the class ``DataLoader`` rather than the module ``dataloader``.
            same_case = [m for m in matches if m[:1] == name[:1]]
            if len(same_case) == 1 and matches[0].lower() == matches[1].lower():
                return same_case[0]
            # Two candidates: take the first only when it is clearly closer.
            a, b = (difflib.SequenceMatcher(None, name, m).ratio() for m in matches)
            if a - b >= 0.08:
                return matches[0]
        return None


@lru_cache(maxsize=1)
def _by_api() -> dict[str, tuple[Deprecation, ...]]:
    return by_api()


@lru_cache(maxsize=1)
def _replacement_since() -> dict[str, Version]:
    out: dict[str, Version] = {}
    for entry in DEPRECATIONS:
        if entry.replacement and entry.replacement_version is not None and "." in entry.replacement:
            out[entry.replacement] = entry.replacement_version
    return out


@lru_cache(maxsize=256)
def _knowledge(target: Target) -> Knowledge:
    return Knowledge(target)


def knowledge_for(path: str, target: Target | None = None) -> Knowledge:
    """The Knowledge for a file: ``target`` if given, else the file's own (see ``target.py``)."""
    return _knowledge(target if target is not None else target_for_path(path))
