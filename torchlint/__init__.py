"""torchlint: a linter and language server for PyTorch code.

The public API (docs/api.md)::

    import torchlint

    findings = torchlint.lint_source(text, "train.py", select=["TL2"])
    fixed = torchlint.fix_source(text, "train.py")
    by_path = torchlint.lint_paths(["src/"])

and, for rules of your own (plugins): :class:`Rule`, :class:`Invalid`,
:class:`FixSpec` and the fix operations, tested with :mod:`torchlint.testing`.

Importing ``torchlint`` stays cheap: the names below are loaded on first use
(the language server and the CLI start without libcst until they need it).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

# Public name -> the module that defines it.
_EXPORTS = {
    "lint_source": "torchlint.api",
    "fix_source": "torchlint.api",
    "lint_paths": "torchlint.api",
    "LintError": "torchlint.api",
    "Finding": "torchlint.diagnostics",
    "Fix": "torchlint.diagnostics",
    "Edit": "torchlint.diagnostics",
    "Range": "torchlint.diagnostics",
    "Related": "torchlint.diagnostics",
    "Rule": "torchlint.rules.base",
    "Invalid": "torchlint.rules.base",
    "Context": "torchlint.rules.base",
    "FixSpec": "torchlint.rules.base",
    "RelatedSpec": "torchlint.rules.base",
    "Replace": "torchlint.rules.base",
    "InsertBefore": "torchlint.rules.base",
    "InsertAfter": "torchlint.rules.base",
    "InsertAtLine": "torchlint.rules.base",
}

__all__ = ["__version__", *_EXPORTS]

if TYPE_CHECKING:
    from torchlint.api import LintError, fix_source, lint_paths, lint_source
    from torchlint.diagnostics import Edit, Finding, Fix, Range, Related
    from torchlint.rules.base import (
        Context,
        FixSpec,
        InsertAfter,
        InsertAtLine,
        InsertBefore,
        Invalid,
        RelatedSpec,
        Replace,
        Rule,
    )


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'torchlint' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_EXPORTS})
