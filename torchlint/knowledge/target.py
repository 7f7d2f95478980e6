"""Which torch / torchvision release a file is linted for.

For a file, the directories above it are searched, closest first; the first
that says something decides:

1. ``[tool.torchlint] torch-version = "2.4"`` / ``torchvision-version`` in its
   ``pyproject.toml``;
2. the project's declared dependencies there: ``[project] dependencies`` and
   ``optional-dependencies`` in ``pyproject.toml``, then ``requirements*.txt``
   files; the lowest release a specifier admits (``torch>=2.1,<2.5`` -> 2.1,
   ``torch==2.3.1`` -> 2.3.1, ``torch~=2.2`` -> 2.2);
3. else the newest release the knowledge base has.

When only one of torch / torchvision is known, the other is the release made
with it (torchvision 0.N+15 goes with torch 2.N). ``--config`` with a
``torch-version`` sets :func:`set_override` for the whole run.
"""

from __future__ import annotations

import os
import re
from functools import lru_cache
from pathlib import Path
from typing import Any

from torchlint.knowledge import store
from torchlint.knowledge.versions import Target, Version, torch_for_torchvision, torchvision_for_torch

_override: dict[str, Version] = {}

# ``torch>=2.1,<2.5`` / ``torchvision == 0.19.*`` / ``torch[extra]>=2`` ; environment markers are ignored.
_REQ = re.compile(r"^\s*(torchvision|torch)(?![\w.-])\s*(\[[^\]]*\])?\s*(\(?\s*[<>=!~][^;#]*)?", re.I)
_SPEC = re.compile(r"(===|==|~=|>=|>|<=|<|!=)\s*([0-9][0-9.*]*)")


def set_override(torch: str | None = None, torchvision: str | None = None) -> None:
    """Versions from ``--config`` (or an API caller) that win over every file's own."""
    _override.clear()
    for key, value in (("torch", torch), ("torchvision", torchvision)):
        v = Version.parse(value) if value else None
        if v is not None:
            _override[key] = v
    target_for_directory.cache_clear()


def lowest_admitted(specifier: str) -> Version | None:
    """The lowest release a PEP 440 specifier admits, as far as a linter needs it."""
    lowest: Version | None = None
    for op, text in _SPEC.findall(specifier):
        if op in ("<", "<=", "!="):
            continue
        v = Version.parse(text.rstrip(".*"))
        if v is not None and (lowest is None or v > lowest):
            lowest = v  # several lower bounds: the tightest one holds
    return lowest


def parse_requirement(line: str) -> tuple[str, Version] | None:
    line = line.split("#", 1)[0].strip()
    m = _REQ.match(line)
    if m is None or not m.group(3):
        return None
    v = lowest_admitted(m.group(3))
    return (m.group(1).lower(), v) if v is not None else None


def _from_requirements(lines: list[str]) -> dict[str, Version]:
    found: dict[str, Version] = {}
    for line in lines:
        parsed = parse_requirement(line)
        if parsed is not None:
            name, v = parsed
            # Several lines (extras, requirement files): the lowest admitted anywhere.
            if name not in found or v < found[name]:
                found[name] = v
    return found


def _read_toml(path: Path) -> dict[str, Any] | None:
    from torchlint.config import ConfigError, load_toml

    try:
        return load_toml(path)
    except ConfigError:
        return None


def versions_in_directory(directory: str) -> tuple[dict[str, Version], str, str] | None:
    """What ``directory`` itself declares: ({package: version}, source, file), or None."""
    d = Path(directory)
    pyproject = d / "pyproject.toml"
    if pyproject.is_file():
        doc = _read_toml(pyproject) or {}
        table = doc.get("tool", {}).get("torchlint", {}) if isinstance(doc.get("tool"), dict) else {}
        configured: dict[str, Version] = {}
        if isinstance(table, dict):
            for key, package in (("torch-version", "torch"), ("torchvision-version", "torchvision")):
                v = Version.parse(table[key]) if isinstance(table.get(key), str) else None
                if v is not None:
                    configured[package] = v
        if configured:
            return configured, "config", str(pyproject)
        project = doc.get("project") if isinstance(doc.get("project"), dict) else {}
        lines = [x for x in project.get("dependencies", []) if isinstance(x, str)]
        optional = project.get("optional-dependencies", {})
        if isinstance(optional, dict):
            for group in optional.values():
                if isinstance(group, list):
                    lines.extend(x for x in group if isinstance(x, str))
        declared = _from_requirements(lines)
        if declared:
            return declared, "dependencies", str(pyproject)
    try:
        names = sorted(os.listdir(d))
    except OSError:
        return None
    for name in names:
        if name.startswith("requirements") and name.endswith(".txt"):
            try:
                text = (d / name).read_text(encoding="utf-8", errors="replace")
            except OSError:
                continue
            declared = _from_requirements(text.splitlines())
            if declared:
                return declared, "dependencies", str(d / name)
    return None


def complete(found: dict[str, Version], source: str, where: str | None) -> Target:
    """A Target from what was found: the missing package follows the other, else the newest known."""
    torch = found.get("torch")
    vision = found.get("torchvision")
    if torch is None and vision is not None:
        torch = torch_for_torchvision(vision)
    if vision is None and torch is not None:
        vision = torchvision_for_torch(torch)
    torch = torch or store.newest("torch") or Version(2, 13)
    vision = vision or store.newest("torchvision") or torchvision_for_torch(torch) or Version(0, 28)
    return Target(torch, vision, source, where)


@lru_cache(maxsize=4096)
def target_for_directory(directory: str) -> Target:
    if _override:
        return complete(dict(_override), "config", "--config")
    d = os.path.abspath(directory)
    while True:
        found = versions_in_directory(d)
        if found is not None:
            return complete(*found)
        parent = os.path.dirname(d)
        if parent == d:
            return complete({}, "newest", None)
        d = parent


def target_for_path(path: str) -> Target:
    """The target for a file (``<stdin>`` and other non-paths: the working directory's)."""
    if not path or path.startswith("<"):
        return target_for_directory(os.getcwd())
    return target_for_directory(os.path.dirname(os.path.abspath(path)))
