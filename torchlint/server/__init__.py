"""``torchlint server``: the language server (LSP over stdio, pygls 2).

Entry point: :func:`main` (``main(argv)``, returns an exit code). The CLI
dispatches ``torchlint server ARGS`` to it; ``python -m torchlint.server``
runs it directly.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from torchlint.rules.base import Rule
    from torchlint.server.app import TorchlintServer
    from torchlint.server.confirm import Runtime


def main(
    argv: Sequence[str] | None = None, *, extra_rules: Iterable[type["Rule"]] = (), runtime: "Runtime | None" = None
) -> int:
    """``runtime``: what runs "Confirm by running" (default: torchlint.runtime's sandbox)."""
    # pygls is imported only when the server runs (and then on a thread while
    # `initialize` is answered): `torchlint check` never pays for it.
    from torchlint.server.launch import main as run

    return run(argv, extra_rules=extra_rules, runtime=runtime)


def create_server(extra_rules: Iterable[type["Rule"]] = (), runtime: "Runtime | None" = None) -> "TorchlintServer":
    from torchlint.server.app import create_server as create

    return create(extra_rules, runtime)


__all__ = ["create_server", "main"]
