"""The rule registry: every ``tlNNN_*.py`` module in this package defines one rule."""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Iterable

from torchlint.rules.base import Rule

_REGISTRY: dict[str, type[Rule]] | None = None


def all_rules() -> dict[str, type[Rule]]:
    """Code -> rule class, sorted by code. Imports the rule modules once."""
    global _REGISTRY
    if _REGISTRY is None:
        found: dict[str, type[Rule]] = {}
        for info in pkgutil.iter_modules(__path__):
            if not info.name.startswith("tl"):
                continue
            module = importlib.import_module(f"{__name__}.{info.name}")
            for obj in vars(module).values():
                if isinstance(obj, type) and issubclass(obj, Rule) and obj is not Rule and obj.__module__ == module.__name__:
                    if obj.code in found:
                        raise RuntimeError(f"duplicate rule code {obj.code}")
                    found[obj.code] = obj
        _REGISTRY = dict(sorted(found.items()))
    return _REGISTRY


def get_rule(code_or_name: str) -> type[Rule] | None:
    key = code_or_name.strip()
    for code, rule in all_rules().items():
        if key.upper() == code or key.lower() == rule.name:
            return rule
    return None


def matches(code: str, selector: str) -> bool:
    """ruff-style prefix selection: ``TL`` / ``ALL`` select everything, ``TL1`` the 1xx group."""
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
