"""Command-line glue of the runtime checker: ``check --confirm`` and ``torchlint confirm``.

Importing this module is cheap (no torch, no sandbox): ``torchlint check``
imports it on every run to offer ``--confirm``. Code runs only when the user
asks for it with ``--confirm`` or ``torchlint confirm``.

Hooks for :mod:`torchlint.cli`: ``configure_check(parser)`` /
``after_check(args, reports)`` extend ``check``; ``configure(parser)`` /
``run(args)`` are the ``confirm`` subcommand. The same functions under their
descriptive names: :func:`add_confirm_arguments`, :func:`confirm_reports`,
:func:`confirm_command`.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import re
import sys
from collections.abc import Sequence
from typing import Any, TextIO

from torchlint.diagnostics import FileReport, Finding

DEFAULT_TIMEOUT = 20.0
BAR_WIDTH = 20
EXIT_OK, EXIT_CONFIRMED, EXIT_ERROR = 0, 1, 2


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError("must be more than 0 seconds")
    return value


def add_confirm_arguments(parser: argparse.ArgumentParser, *, flag: bool = True) -> None:
    """``--confirm`` (when ``flag``), ``--confirm-timeout SECONDS`` and ``--device {cpu,cuda}``."""
    group = parser.add_argument_group("runtime confirmation (runs code, in a sandbox)")
    if flag:
        group.add_argument(
            "--confirm",
            action="store_true",
            help="run the flagged code in a sandbox with real PyTorch and report whether each finding is confirmed",
        )
    group.add_argument(
        "--confirm-timeout",
        type=_seconds,
        default=DEFAULT_TIMEOUT,
        metavar="SECONDS",
        help=f"time limit per confirmed finding (default: {DEFAULT_TIMEOUT:g})",
    )
    group.add_argument(
        "--device",
        choices=("cpu", "cuda"),
        default="cpu",
        help="cpu (default; a GPU is simulated where a finding needs one) or cuda (a real GPU)",
    )


def torch_missing() -> str | None:
    """Why confirmations cannot run here, or None."""
    try:
        found = importlib.util.find_spec("torch") is not None
    except (ImportError, ValueError):
        found = False
    if not found:
        return "confirming findings needs PyTorch in this Python environment (pip install 'torchlint[runtime]')"
    return None


class ProgressBar:
    """``Confirming 3/7 [######......] path:line TL301`` on a terminal; silent otherwise."""

    def __init__(self, stream: TextIO, total: int) -> None:
        self.stream = stream
        self.total = total
        try:
            self.enabled = stream.isatty()
        except (AttributeError, ValueError):
            self.enabled = False
        self.done = 0
        self._width = 0

    def show(self, path: str, finding: Finding) -> None:
        if not self.enabled:
            return
        filled = BAR_WIDTH * self.done // max(self.total, 1)
        bar = "#" * filled + "." * (BAR_WIDTH - filled)
        text = f"Confirming {self.done + 1}/{self.total} [{bar}] {path}:{finding.range.line} {finding.code}"
        columns = _columns(self.stream)
        if len(text) > columns - 1:
            text = text[: columns - 2] + "…"
        pad = max(self._width - len(text), 0)
        self.stream.write("\r" + text + " " * pad)
        self.stream.flush()
        self._width = len(text)

    def clear(self) -> None:
        if self.enabled and self._width:
            self.stream.write("\r" + " " * self._width + "\r")
            self.stream.flush()
            self._width = 0


def _columns(stream: TextIO) -> int:
    try:
        return os.get_terminal_size(stream.fileno()).columns
    except (AttributeError, OSError, ValueError):
        return 80


def _python_file(report: FileReport) -> bool:
    return report.path.endswith((".py", ".pyw")) or report.path in ("-", "<stdin>")


def confirm_reports(
    reports: list[FileReport],
    args: argparse.Namespace,
    stream: TextIO | None = None,
    *,
    worker: Any = None,
) -> list[str]:
    """Attach confirmations to the findings of ``reports`` in place; returns error lines.

    One warm sandbox worker serves every file. The progress bar goes to
    ``stream`` (stderr by default) only when it is a terminal.
    """
    from torchlint.diagnostics import Confirmation
    from torchlint.runtime.confirm import confirm_findings, confirmable, new_worker

    stream = stream if stream is not None else sys.stderr
    todo = [(r, [f for f in r.findings if confirmable(f)]) for r in reports]
    todo = [(r, fs) for r, fs in todo if fs]
    total = sum(len(fs) for _, fs in todo)
    if not total:
        return []
    missing = torch_missing()
    if missing:
        return [missing]
    device = getattr(args, "device", "cpu") or "cpu"
    timeout = float(getattr(args, "confirm_timeout", DEFAULT_TIMEOUT) or DEFAULT_TIMEOUT)
    errors: list[str] = []
    bar = ProgressBar(stream, total)
    own = None
    if worker is None:
        wants_tv = any(f.code == "TL202" for _, fs in todo for f in fs)
        own = worker = new_worker(device, torchvision=wants_tv)
    try:
        for report, chosen in todo:
            language = _language(report, args)
            if report.source is None:
                reason = "the file's text is not available"
                done = {id(f): f.with_confirmation(Confirmation("could-not-run", reason)) for f in chosen}
                report.findings = [done.get(id(f), f) for f in report.findings]
                bar.done += len(chosen)
                continue

            def progress(n: int, of: int, finding: Finding, report: FileReport = report) -> None:
                if n < of:
                    bar.show(report.path, finding)
                    bar.done += 1

            try:
                if language != "python":
                    # A notebook or tutorial: its code cells/blocks joined as one program (magics
                    # neutralised), run like a .py file; the verdicts go back to the cells and blocks.
                    from torchlint.runtime.documents import confirm_document

                    confirmed = confirm_document(
                        report.source, report.path, chosen, language=language, device=device, timeout=timeout,
                        worker=worker, progress=progress,
                    )  # fmt: skip
                else:
                    confirmed = confirm_findings(
                        report.source, report.path, chosen, device=device, timeout=timeout, worker=worker,
                        progress=progress,
                    )  # fmt: skip
            except Exception as exc:  # noqa: BLE001 - one file's failure must not lose the others
                errors.append(f"{report.path}: confirmation failed: {type(exc).__name__}: {exc}")
                continue
            by_id = {id(f): c for f, c in zip(chosen, confirmed)}
            report.findings = [by_id.get(id(f), f) for f in report.findings]
    finally:
        bar.clear()
        if own is not None:
            own.close()
    return errors


def _language(report: FileReport, args: argparse.Namespace) -> str:
    """python, markdown, notebook or rst: what `check` linted the file as (--extension first, then its name)."""
    from torchlint.runtime.documents import document_language

    name = report.path.rsplit("/", 1)[-1]
    ext = name.rsplit(".", 1)[-1].lower() if "." in name else ""
    for value in getattr(args, "extension", None) or ():
        for item in str(value).split(","):
            e, sep, lang = item.strip().partition(":")
            if sep and e.strip().lstrip(".").lower() == ext and lang.strip().lower() in ("python", "markdown", "notebook", "rst"):
                return lang.strip().lower()
    if _python_file(report):
        return "python"
    return document_language(report.path)


# --- hooks for `torchlint check` ------------------------------------------------


def configure_check(parser: argparse.ArgumentParser) -> None:
    add_confirm_arguments(parser)


def after_check(args: argparse.Namespace, reports: list[FileReport]) -> list[str]:
    if not getattr(args, "confirm", False):
        return []
    # With --fix, the findings left refer to the fixed text, which is what runs.
    return confirm_reports(reports, args)


# --- `torchlint confirm FILE[:LINE]` ----------------------------------------------


def configure(parser: argparse.ArgumentParser) -> None:
    from torchlint.output import FORMATS

    parser.add_argument(
        "target",
        metavar="FILE[:LINE]",
        help="the file, optionally with the line of the finding to confirm; for a notebook FILE:cell N[:LINE]",
    )
    parser.add_argument(
        "--extension",
        action="append",
        metavar="EXT:LANG",
        help="read files with extension EXT as LANG (python, markdown, notebook or rst), e.g. txt:markdown",
    )
    parser.add_argument("--select", metavar="CODES", help="only these rules (comma-separated codes)")
    parser.add_argument("--output-format", choices=FORMATS, default="text", help="default: text")
    parser.add_argument(
        "--show-program",
        action="store_true",
        help="also print the program torchlint runs for each finding (the extracted code)",
    )
    add_confirm_arguments(parser, flag=False)


_TARGET = re.compile(r"^(?P<path>.+?)(?::cell ?(?P<cell>\d+))?(?::(?P<line>\d+))?$")


def _split_target(target: str) -> tuple[str, int | None, int | None]:
    """``FILE``, ``FILE:LINE``, ``NOTEBOOK:cell N`` or ``NOTEBOOK:cell N:LINE`` (as the text output prints
    places) -> (path, cell, line). A file whose own name ends like that wins."""
    if os.path.exists(target):
        return target, None, None
    m = _TARGET.match(target)
    if m is None:
        return target, None, None
    cell, line = m.group("cell"), m.group("line")
    return m.group("path"), int(cell) if cell else None, int(line) if line else None


def _target_language(path: str, args: argparse.Namespace) -> str | None:
    from torchlint.config import Resolver
    from torchlint.discovery import language_of

    try:
        settings = Resolver().settings_for_file(os.path.abspath(path))
    except Exception:  # noqa: BLE001 - the configuration's own errors are reported by codes_for
        settings = None
    extensions: dict[str, str] = {}
    for value in getattr(args, "extension", None) or ():
        for item in str(value).split(","):
            e, sep, lang = item.strip().partition(":")
            if sep:
                extensions[e.strip().lstrip(".").lower()] = lang.strip().lower()
    if settings is None:
        return extensions.get(path.rsplit(".", 1)[-1].lower(), "python" if path.endswith((".py", ".pyw")) else None)
    return language_of(os.path.basename(path), settings, extensions, explicit=True)


def run(args: argparse.Namespace) -> int:
    from torchlint.output import OutputOptions, write
    from torchlint.output.text import use_color, write_error
    from torchlint.runner import lint_text
    from torchlint.sources import SourceError, read_source

    path, cell, line = _split_target(args.target)
    if line is not None and line < 1:
        write_error(f"{args.target}: line numbers start at 1")
        return EXIT_ERROR
    if cell is not None and cell < 1:
        write_error(f"{args.target}: cells are numbered from 1")
        return EXIT_ERROR
    language = _target_language(path, args) or "python"
    if cell is not None and language != "notebook":
        write_error(f"{args.target}: `:cell N` is for notebooks (.ipynb); {path} is read as {language}")
        return EXIT_ERROR
    try:
        source = read_source(path)
    except SourceError as exc:
        write_error(str(exc))
        return EXIT_ERROR
    from torchlint.config import ConfigError, Resolver, posix

    try:
        # The project's configuration decides the rules, as for `check` (ignores, per-file-ignores).
        codes = Resolver().codes_for(posix(path))
    except ConfigError as exc:
        write_error(str(exc))
        return EXIT_ERROR
    if args.select:
        codes = codes & frozenset(c.strip().upper() for c in args.select.split(",") if c.strip())
    report = lint_text(source, path, language, codes)
    if cell is not None:
        report.findings = [f for f in report.findings if f.cell == cell]
    if line is not None:
        report.findings = [f for f in report.findings if f.range.line <= line <= f.range.end_line]
    from torchlint.runtime.confirm import confirmable

    report.findings = [f for f in report.findings if confirmable(f)]
    if not report.findings:
        where = args.target if (line is not None or cell is not None) else path
        sys.stderr.write(f"{where}: no finding that can be confirmed by running\n")
        return EXIT_ERROR if report.errors else EXIT_OK
    args.extension = [f"{path.rsplit('.', 1)[-1]}:{language}"] if "." in os.path.basename(path) else None
    errors = confirm_reports([report], args)
    for e in [*errors, *report.errors]:
        write_error(e)
    out = sys.stdout
    write(args.output_format, [report], out, OutputOptions(color=use_color(out) and args.output_format in ("text", "full", "concise")))
    if args.show_program:
        _show_programs(source, path, language, report.findings, args, out)
    if errors:
        return EXIT_ERROR
    confirmed = any(f.confirmation is not None and f.confirmation.status == "confirmed" for f in report.findings)
    return EXIT_CONFIRMED if confirmed else EXIT_OK


def _show_programs(source: str, path: str, language: str, findings: Sequence[Finding], args: argparse.Namespace, out: TextIO) -> None:
    from torchlint.diagnostics import Confirmation
    from torchlint.runtime.confirm import AS_FIXED, Claim, prepare, with_passes
    from torchlint.runtime.confirmers import Options
    from torchlint.runtime.extract import render

    options = Options(device=args.device, timeout=args.confirm_timeout)
    shown: dict[int, Finding | None] = {id(f): f for f in findings}
    program = source
    codes = frozenset(f.code for f in findings) | frozenset(AS_FIXED)
    if language != "python":
        from torchlint.runtime.documents import document_program

        _, program, pairs, _ = document_program(source, path, language, codes)
        inner = {(m.code, m.cell, m.range): f for f, m in pairs}
        shown = {id(f): inner.get((f.code, f.cell, f.range)) for f in findings}
        context = [f for f, _ in pairs]
    else:
        from torchlint.engine import LintOptions, lint_source

        context = lint_source(source, path, LintOptions(codes=codes)).findings
        by_place = {(c.code, c.range): c for c in context}
        shown = {id(f): by_place.get((f.code, f.range), f) for f in findings}
    for f in findings:
        where = f"cell {f.cell}:{f.range.line}" if f.cell is not None else str(f.range.line)
        out.write(f"\n# --- the program run for {path}:{where} {f.code} ---\n")
        target = shown.get(id(f))
        if target is None:
            out.write("# (none: the finding is not in the document's code)\n")
            continue
        claim = Claim.from_finding(target)
        others = [Claim.from_finding(c) for c in context if c.code == claim.code and c is not target]
        job = prepare(program, path, claim, with_passes(options, claim, [Claim.from_finding(c) for c in context]), others)
        if isinstance(job, Confirmation):
            out.write(f"# (none: {job.evidence})\n")
            continue
        out.write(render(program, job.plan) + "\n")


def confirm_command(argv: Sequence[str] | None = None) -> int:
    """``torchlint confirm FILE[:LINE] ...`` as a function (argv without the subcommand)."""
    parser = argparse.ArgumentParser(prog="torchlint confirm", description="run flagged code in a sandbox to confirm findings")
    configure(parser)
    args = parser.parse_args(list(sys.argv[1:] if argv is None else argv))
    return run(args)
