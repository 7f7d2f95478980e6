"""``torchlint server``, as a subcommand of the CLI (see torchlint.cli.EXTERNAL_COMMANDS)."""

from __future__ import annotations

import argparse


def configure(parser: argparse.ArgumentParser) -> None:
    parser.description = "Run the torchlint language server: LSP over stdin/stdout, for editors."
    from torchlint.server.launch import add_arguments

    add_arguments(parser)


def run(args: argparse.Namespace) -> int:
    from torchlint.server.launch import serve

    return serve(args)
