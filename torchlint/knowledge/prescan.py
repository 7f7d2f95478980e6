"""Could TL501/TL502 fire in this source at all? A C-speed ``ast`` pass decides before the CST walk.

Nearly every file of a PyTorch project mentions ``torch``, so a substring
trigger would make every file pay for a full CST parse. Instead, the source is
parsed with CPython's own parser (many times faster) and scanned for what the
rules look for, against every recorded release: an attribute of a torch
module or class that some release lacks, a keyword some release's signature
rejects, an object of a known class whose attribute some release lacks. The
scan over-approximates the rules (imports anywhere count, every recorded
release counts), so a False answer is safe; a True one hands the file to the
rules, which decide with scopes and the file's own target.
"""

from __future__ import annotations

import ast
from functools import lru_cache

from torchlint.gates import per_lint, walk
from torchlint.knowledge import Instance, Knowledge, knowledge_for
from torchlint.knowledge import store
from torchlint.knowledge.versions import Target, torchvision_for_torch

_PACKAGES = ("torch", "torchvision", "torchaudio")
_last: tuple[str, frozenset[str]] | None = None


@lru_cache(maxsize=1)
def _all_releases() -> tuple[Knowledge, ...]:
    out = []
    vision = store.available().get("torchvision", ())
    for torch in store.available().get("torch", ()):
        tv = torchvision_for_torch(torch) or (vision[-1] if vision else torch)
        out.append(knowledge_for("<prescan>", Target(torch, tv, "option")))
    return tuple(out)


def warm() -> None:
    """Load the releases a pre-check of a PyTorch file reads (torch's and torchvision's; an
    analysis process does it as it starts, before its first file)."""
    for kb in _all_releases():
        kb.snapshot("torch")
        kb.snapshot("torchvision")


def _dotted(node: ast.AST) -> list[str] | None:
    parts: list[str] = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if not isinstance(node, ast.Name):
        return None
    parts.append(node.id)
    return parts[::-1]


class _Scan:
    def __init__(self, tree: ast.AST) -> None:
        self.tree = tree
        self.aliases: dict[str, set[str]] = {}
        self.star = False
        self.kbs = _all_releases()
        self._owner_names: dict[str, list[frozenset[str] | None]] = {}

    def qualnames(self, node: ast.AST) -> set[str]:
        parts = _dotted(node)
        if not parts:
            return set()
        return {".".join([base, *parts[1:]]) for base in self.aliases.get(parts[0], ())}

    def missing_attribute(self, owner: str, attr: str) -> bool:
        if attr.startswith("_") or owner.split(".", 1)[0] not in _PACKAGES:
            return False
        names = self._owner_names.get(owner)
        if names is None:
            names = self._owner_names[owner] = [kb.attribute_names(owner) for kb in self.kbs]
        return any(n is not None and attr not in n for n in names)

    def instance_missing(self, instance: Instance, attrs: list[str], kb: Knowledge) -> bool:
        current: Instance | None = instance
        for i, attr in enumerate(attrs):
            if current is None or attr.startswith("_"):
                return False
            names = kb.instance_attribute_names(current.cls)
            if names is not None and attr not in names:
                return True
            current = kb.child(current, attr) if i < len(attrs) - 1 else None
        return False

    def run(self) -> frozenset[str]:
        calls: list[ast.Call] = []
        attributes: list[ast.Attribute] = []
        assigned: list[tuple[str, ast.Call]] = []
        imported_from: list[tuple[str, list[str]]] = []
        for node in walk(self.tree):
            if isinstance(node, ast.Import):
                for a in node.names:
                    if a.asname:
                        self.aliases.setdefault(a.asname, set()).add(a.name)
                    else:
                        top = a.name.split(".")[0]
                        self.aliases.setdefault(top, set()).add(top)
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                imported_from.append((node.module, [a.name for a in node.names]))
                for a in node.names:
                    if a.name == "*":
                        self.star = self.star or node.module.split(".")[0] in _PACKAGES
                    else:
                        self.aliases.setdefault(a.asname or a.name, set()).add(f"{node.module}.{a.name}")
            elif isinstance(node, ast.Call):
                calls.append(node)
            elif isinstance(node, ast.Attribute):
                attributes.append(node)
            elif isinstance(node, (ast.Assign, ast.AnnAssign, ast.NamedExpr)) and isinstance(getattr(node, "value", None), ast.Call):
                targets = node.targets if isinstance(node, ast.Assign) else [node.target]
                for t in targets:
                    if isinstance(t, ast.Name):
                        assigned.append((t.id, node.value))  # type: ignore[arg-type]
        if self.star:
            return frozenset({"TL501", "TL502"})
        found: set[str] = set()
        # TL501: imports of missing names.
        for module, names in imported_from:
            if any(self.missing_attribute(module, name) for name in names):
                found.add("TL501")
                break
        # TL501: module and class attributes.
        if "TL501" not in found:
            for node in attributes:
                if any(self.missing_attribute(q, node.attr) for q in self.qualnames(node.value)):
                    found.add("TL501")
                    break
        # TL501: objects of known classes.
        if "TL501" not in found:
            made: dict[str, list[tuple[Instance, Knowledge]]] = {}
            for name, call in assigned:
                for q in self.qualnames(call.func):
                    for kb in self.kbs:
                        inst = kb.returns(q)
                        if inst is not None:
                            made.setdefault(name, []).append((inst, kb))
            for node in attributes:
                parts: list[str] = []
                base: ast.AST = node
                while isinstance(base, ast.Attribute):
                    parts.append(base.attr)
                    base = base.value
                parts.reverse()
                roots: list[tuple[Instance, Knowledge]] = []
                if isinstance(base, ast.Name):
                    roots = made.get(base.id, [])
                elif isinstance(base, ast.Call):
                    roots = [(i, kb) for q in self.qualnames(base.func) for kb in self.kbs if (i := kb.returns(q)) is not None]
                if any(self.instance_missing(inst, parts, kb) for inst, kb in roots):
                    found.add("TL501")
                    break
        # TL502: keywords.
        for call in calls:
            keywords = [k.arg for k in call.keywords if k.arg]
            if not keywords:
                continue
            for q in self.qualnames(call.func):
                if q == "torch.hub.load":
                    found.add("TL502")
                    break
                if q.split(".", 1)[0] not in _PACKAGES:
                    continue
                for kb in self.kbs:
                    accepted = kb.accepted_keywords(q)
                    if accepted is not None and any(k not in accepted for k in keywords):
                        found.add("TL502")
                        break
            if "TL502" in found:
                break
        return frozenset(found)


@per_lint
def _forget() -> None:
    global _last
    _last = None


def may_fire(source: str) -> frozenset[str]:
    """The codes among TL501/TL502 that may report something in ``source`` (all of them when it does not parse)."""
    global _last
    if _last is not None and _last[0] is source:
        return _last[1]
    from torchlint.incremental import python_ast

    try:
        tree = python_ast(source, keep=True)  # the engine's parse cache cuts the file with the same tree
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        result = frozenset({"TL501", "TL502"})
    else:
        result = _Scan(tree).run()
    _last = (source, result)
    return result
