"""Code the API rules do not judge against the recorded torch/torchvision API.

TL203/TL204 (deprecated and removed APIs), TL501 (nonexistent attributes) and
TL502 (unexpected keywords) compare what a file names with what the target
release has (torchlint/knowledge). Some code is written for other releases, or is
the package itself, and is left alone:

- a package's own sources using that package (:func:`inside_own_package`; the
  pre-check :func:`may_concern_other_packages` skips such a file before any parse);
- compatibility code: an ``if`` on the installed release (:func:`version_test`), an
  ``except`` fallback, a ``try`` whose handlers catch a missing attribute or
  import (:func:`catches_missing_api`); the mixins :class:`CompatibilityCode` and
  :class:`GuardedCompatibilityCode` tell a rule where its traversal is with respect to them;
- the dotted module names of import statements, which are paths rather than
  attribute reads (:func:`import_path_parts`);
- names the file sets or writes as strings itself (:func:`names_the_file_defines`).
"""

from __future__ import annotations

import os
import re
from functools import lru_cache
from typing import Any

import libcst as cst

from torchlint.names import dotted_name
from torchlint.walk import children as _children


# -- a package's own sources ---------------------------------------------------------


@lru_cache(maxsize=1024)
def _inside_package(directory: str, package: str) -> bool:
    """Is ``directory`` inside the source tree of ``package`` (a ``<package>/__init__.py`` above it)?"""
    d = directory
    while True:
        head, tail = os.path.split(d)
        if tail == package and os.path.isfile(os.path.join(d, "__init__.py")):
            return True
        if not tail or head == d:
            return False
        d = head


def inside_own_package(path: str, qualname: str) -> bool:
    """Is the file part of the package that defines ``qualname`` (torch's own sources using torch)?"""
    if not path or path.startswith("<"):
        return False
    return _inside_package(os.path.dirname(os.path.abspath(path)), qualname.split(".", 1)[0])


def may_concern_other_packages(source: str, path: str, packages: tuple[str, ...], also: "re.Pattern[str] | None" = None) -> bool:
    """Could ``source`` name an API of one of ``packages`` other than the one(s) the file belongs to?

    TL203/TL204/TL501/TL502 never report a package's own sources using that package
    (``inside_own_package``), and a qualified name of another package comes from an import
    that names it. ``also``: a pattern of further words that let such a name in (``hub``:
    ``torch.hub.load`` of a torchvision model). False skips the file before any parse.
    """
    own = [p for p in packages if inside_own_package(path, p)]
    if not own:
        return True
    if also is not None and also.search(source) is not None:
        return True
    others = [p for p in packages if p not in own and p in source]
    if not others:
        return False
    # ... an import naming one, not a word in a string or a comment (`"torchvision::nms"`).
    from torchlint.gates import import_table

    table = import_table(source)
    return table is None or any(m.split(".", 1)[0] in others for m in (*table.modules, *table.stars))


# -- compatibility code ----------------------------------------------------------------


def is_version_test(test: cst.BaseExpression) -> bool:
    """Does an ``if`` test look at the installed release (``torch.__version__``, ``hasattr(torch, ...)``)?

    Walks the (small) test expression for a name mentioning a version, or a ``hasattr`` call; no codegen.
    """
    stack: list[cst.CSTNode] = [test]
    while stack:
        node = stack.pop()
        if isinstance(node, cst.Name) and ("version" in node.value.lower() or node.value == "hasattr"):
            return True
        if isinstance(node, cst.SimpleString) and "version" in node.value.lower():
            return True
        stack.extend(_children(node))
    return False


def version_test(context: Any, test: cst.BaseExpression) -> bool:
    """:func:`is_version_test`, once per ``if`` of the file for all the rules that ask (on visit and on leave)."""
    seen = context.cache.get("version_tests")
    if seen is None:
        seen = context.cache["version_tests"] = {}
    found = seen.get(id(test))
    if found is None:
        found = seen[id(test)] = is_version_test(test)
    return found


# Handlers that make a missing attribute an expected, handled case.
_MISSING_API = frozenset({"AttributeError", "ImportError", "ModuleNotFoundError", "Exception", "BaseException"})


def catches_missing_api(handler: cst.ExceptHandler) -> bool:
    """Does the handler catch a missing attribute or import (a bare ``except`` does)?"""
    if handler.type is None:
        return True
    types = handler.type.elements if isinstance(handler.type, cst.Tuple) else [handler.type]
    for t in types:
        expr = t.value if isinstance(t, cst.Element) else t
        name = dotted_name(expr)
        if name is not None and name.rsplit(".", 1)[-1] in _MISSING_API:
            return True
    return False


class CompatibilityCode:
    """Mixin for a Rule: ``compat_fallback`` counts the enclosing ``except`` handlers and
    ``if`` statements on the installed version (code that runs on some other release).
    Its ``visit_ExceptHandler`` does not chain to other mixins'."""

    compat_fallback = 0

    def visit_ExceptHandler(self, node: cst.ExceptHandler) -> None:
        self.compat_fallback += 1

    def leave_ExceptHandler(self, node: cst.ExceptHandler) -> None:
        self.compat_fallback -= 1

    def visit_If(self, node: cst.If) -> None:
        if version_test(self.context, node.test):  # type: ignore[attr-defined]
            self.compat_fallback += 1

    def leave_If(self, node: cst.If) -> None:
        if version_test(self.context, node.test):  # type: ignore[attr-defined]
            self.compat_fallback -= 1


class GuardedCompatibilityCode(CompatibilityCode):
    """:class:`CompatibilityCode`, and ``compat_guarded``: the enclosing ``try`` statements (all
    their parts) with a handler that catches a missing attribute or import."""

    compat_guarded = 0

    def visit_Try(self, node: cst.Try) -> None:
        if any(catches_missing_api(h) for h in node.handlers):
            self.compat_guarded += 1

    def leave_Try(self, node: cst.Try) -> None:
        if any(catches_missing_api(h) for h in node.handlers):
            self.compat_guarded -= 1


# -- import paths and the file's own names -------------------------------------------


def import_path_parts(node: cst.BaseExpression) -> set[int]:
    """The ids of the ``Attribute`` nodes of a dotted name in an import statement
    (``torch.nn`` in ``import torch.nn``): module paths, not attribute reads."""
    out = set()
    while isinstance(node, cst.Attribute):
        out.add(id(node))
        node = node.value
    return out


def names_the_file_defines(source: str) -> tuple[frozenset[str], frozenset[str]]:
    """Attribute names the file assigns (``x.name =``) and the identifiers it writes as strings
    (``setattr(m, "name", ...)``, ``hasattr(m, "name")``): names the file makes its own business."""
    assigned = frozenset(re.findall(r"\.\s*(\w+)\s*(?::[^=\n]*)?=(?!=)", source))
    strings = frozenset(re.findall(r"""["'](\w+)["']""", source))
    return assigned, strings


__all__ = [
    "CompatibilityCode",
    "GuardedCompatibilityCode",
    "catches_missing_api",
    "import_path_parts",
    "inside_own_package",
    "is_version_test",
    "may_concern_other_packages",
    "names_the_file_defines",
    "version_test",
]
