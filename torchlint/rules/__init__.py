"""The rule registry: every ``tlNNN_*.py`` module in this package defines one rule,
and installed plugins add theirs through the ``torchlint.rules`` entry-point group.

A plugin's entry point names a :class:`Rule` subclass, or a module whose own
``Rule`` subclasses are all taken (docs/api.md). Plugin rules are registry rules
like the built-in ones: selection, ``# noqa``, per-file ignores, ``torchlint
rules``, SARIF and the language server all read this registry.
"""

from __future__ import annotations

import importlib
import os
import pkgutil
import re
import sys
import types
from collections.abc import Iterable

from torchlint.rules.base import Rule

ENTRY_POINT_GROUP = "torchlint.rules"
# Codes must be what ``# noqa: CODE`` and selectors can name; ``TL`` is kept for built-ins
# so that ``--select TL`` means torchlint's own rules and no plugin can take a future code.
_CODE = re.compile(r"[A-Z]+[0-9]+")
_NAME = re.compile(r"[a-z][a-z0-9]*(-[a-z0-9]+)*")
_RESERVED_PREFIX = "TL"


class PluginError(Exception):
    """A plugin that cannot be used (does not load, bad or clashing code); ``str()`` is one line."""


_REGISTRY: dict[str, type[Rule]] | None = None
_FAILURE: PluginError | None = None


def all_rules() -> dict[str, type[Rule]]:
    """Code -> rule class (built-in and plugin), sorted by code. Imports the rules once.

    Raises :class:`PluginError` (every call) when a plugin cannot be loaded.
    """
    global _REGISTRY, _FAILURE
    if _FAILURE is not None:
        raise _FAILURE
    if _REGISTRY is None:
        found: dict[str, type[Rule]] = {}
        for info in pkgutil.iter_modules(__path__):
            if not info.name.startswith("tl"):
                continue
            module = importlib.import_module(f"{__name__}.{info.name}")
            for obj in _rules_defined_in(module):
                if obj.code in found:
                    raise RuntimeError(f"duplicate rule code {obj.code}")
                found[obj.code] = obj
        try:
            _add_plugins(found)
        except PluginError as exc:
            _FAILURE = exc
            raise
        _REGISTRY = dict(sorted(found.items()))
    return _REGISTRY


def _rules_defined_in(module: types.ModuleType) -> list[type[Rule]]:
    return [
        obj
        for obj in vars(module).values()
        if isinstance(obj, type) and issubclass(obj, Rule) and obj is not Rule and obj.__module__ == module.__name__
    ]


def _may_have_plugins() -> bool:
    """False only when no installed distribution can declare a ``torchlint.rules`` entry point.

    ``importlib.metadata`` costs a process about 35 ms (25 to import it, 12 to read every
    distribution's entry points here): every analysis process of the language server and
    every ``torchlint check`` pays it, and almost none has a plugin. This looks where it
    looks, in the same way (each ``sys.path`` directory's ``*.dist-info`` and ``*.egg-info``
    directories, an ``*.egg`` directory's ``EGG-INFO``), for an ``entry_points.txt`` that
    mentions the group at all; anything it cannot look into the same way (a zip archive
    on the path, an import hook that finds distributions of its own) counts as maybe.
    """
    from importlib.machinery import PathFinder

    group = ENTRY_POINT_GROUP.encode()
    if any(hasattr(finder, "find_distributions") and finder is not PathFinder for finder in sys.meta_path):
        return True
    for entry in sys.path:
        if not isinstance(entry, str):
            return True
        try:
            names = os.listdir(entry or ".")
        except OSError:
            if os.path.exists(entry):
                return True  # a file on the path: a zip archive importlib.metadata reads
            continue
        egg = entry.lower().endswith(".egg")
        for name in names:
            low = name.lower()
            if low.endswith((".dist-info", ".egg-info")) or (egg and low == "egg-info"):
                try:
                    with open(os.path.join(entry or ".", name, "entry_points.txt"), "rb") as fh:
                        if group in fh.read():
                            return True
                except OSError:
                    continue  # no entry points (or an .egg-info file, which has none)
    return False


def _add_plugins(found: dict[str, type[Rule]]) -> None:
    if not _may_have_plugins():
        return
    from importlib.metadata import entry_points

    builtin = set(found)
    origin: dict[str, str] = {}
    # Sorted, so that which of two clashing plugins is named first does not depend on sys.path order.
    for ep in sorted(entry_points(group=ENTRY_POINT_GROUP), key=lambda e: (e.name, e.value)):
        dist = getattr(ep, "dist", None)
        where = f"plugin {ep.name} = {ep.value!r}" + (f" (from {dist.name} {dist.version})" if dist is not None else "")
        try:
            obj = ep.load()
        except Exception as exc:  # a broken plugin is the user's to fix: say which and why, in one line
            raise PluginError(f"{where} failed to load: {type(exc).__name__}: {exc}") from None
        if isinstance(obj, types.ModuleType):
            rules = _rules_defined_in(obj)
        elif isinstance(obj, type) and issubclass(obj, Rule) and obj is not Rule:
            rules = [obj]
        else:
            raise PluginError(f"{where} is neither a torchlint Rule subclass nor a module of them")
        if not rules:
            raise PluginError(f"{where} defines no Rule subclass")
        for rule in rules:
            code, name = getattr(rule, "code", None), getattr(rule, "name", None)
            if not isinstance(code, str) or not _CODE.fullmatch(code):
                raise PluginError(f"{where}: rule {rule.__name__} has code {code!r}; expected capital letters then digits, like EX101")
            if code in builtin:
                raise PluginError(f"{where}: rule code {code} clashes with the built-in rule {code} ({found[code].name})")
            if code.startswith(_RESERVED_PREFIX):
                raise PluginError(f"{where}: rule code {code} uses the prefix TL, which is reserved for built-in rules")
            if not isinstance(name, str) or not _NAME.fullmatch(name):
                raise PluginError(f"{where}: rule {code} has name {name!r}; expected kebab-case, like torch-load-map-location")
            if code in found:
                if found[code] is rule:  # the same class named by two entry points
                    continue
                raise PluginError(f"{where}: rule code {code} clashes with {origin[code]}")
            clash = next((c for c, r in found.items() if r.name == name), None)
            if clash is not None:
                raise PluginError(f"{where}: rule name {name} is already used by {clash}")
            found[code] = rule
            origin[code] = where


def is_builtin(rule: type[Rule]) -> bool:
    return rule.__module__.startswith(f"{__name__}.")


def get_rule(code_or_name: str) -> type[Rule] | None:
    key = code_or_name.strip()
    for code, rule in all_rules().items():
        if key.upper() == code or key.lower() == rule.name:
            return rule
    return None


def matches(code: str, selector: str) -> bool:
    """ruff-style prefix selection: ``ALL`` selects everything, ``TL1`` the 1xx group."""
    selector = selector.strip().upper()
    return selector == "ALL" or code.startswith(selector)


def is_valid_selector(selector: str) -> bool:
    return any(matches(code, selector) for code in all_rules())


def default_codes() -> frozenset[str]:
    """The rules that run when nothing is selected: all but the off-by-default ones."""
    return frozenset(code for code, rule in all_rules().items() if rule.default_enabled)


def select_codes(select: Iterable[str] | None, ignore: Iterable[str] = ()) -> frozenset[str]:
    """``select=None`` is the default set; any selector (``ALL``, a prefix, a code) also picks off-by-default rules."""
    base = default_codes() if select is None else None
    selectors = list(select) if select is not None else ["ALL"]
    ignore = list(ignore)
    return frozenset(
        code
        for code in all_rules()
        if (base is None or code in base)
        and any(matches(code, s) for s in selectors)
        and not any(matches(code, i) for i in ignore)
    )
