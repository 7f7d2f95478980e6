"""Running generated snippets for real: the sandbox and the simulated GPU.

Importing this package is cheap and never imports torch; the names below are
loaded from their modules on first use. ``torchlint.runtime.fakedevice``
needs torch and is meant to be imported inside the sandbox.
"""

from __future__ import annotations

import importlib

_EXPORTS = {
    "SandboxError": "torchlint.runtime.sandbox",
    "SandboxResult": "torchlint.runtime.sandbox",
    "SandboxWorker": "torchlint.runtime.sandbox",
    "detect_isolation": "torchlint.runtime.sandbox",
    "run_snippet": "torchlint.runtime.sandbox",
    # The runtime checker's entry points, as the language server uses them.
    "confirm_findings": "torchlint.runtime.confirm",
    "confirm_claim": "torchlint.runtime.confirm",
    "lint_and_confirm": "torchlint.runtime.confirm",
    "start_worker": "torchlint.runtime.confirm",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
