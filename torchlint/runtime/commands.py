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
            if report.source is not None and not _python_file(report):
                # A notebook or tutorial: its code blocks/cells joined as one program (magics
                # neutralised), run like a .py file; the evidence goes back to the documents' findings.
                try:
                    done = _confirm_document(report, chosen, device, timeout, worker, bar)
                except Exception as exc:  # noqa: BLE001 - one file's failure must not lose the others
                    errors.append(f"{report.path}: confirmation failed: {type(exc).__name__}: {exc}")
                    continue
                report.findings = [done.get(id(f), f) for f in report.findings]
                continue
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
                confirmed = confirm_findings(
                    report.source, report.path, chosen, device=device, timeout=timeout, worker=worker, progress=progress
                )
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


def _document_language(path: str) -> str:
    lower = path.lower()
    return "notebook" if lower.endswith(".ipynb") else "rst" if lower.endswith(".rst") else "markdown"


def _confirm_document(report: FileReport, chosen: list[Finding], device: str, timeout: float, worker: Any, bar: Any) -> dict[int, Finding]:
    """Confirm a document's findings: run its Python text, attach the verdicts to the findings shown."""
    from torchlint.diagnostics import Confirmation
    from torchlint.documents import text_findings
    from torchlint.runtime.confirm import confirm_findings

    codes = frozenset(f.code for f in chosen)
    doc, pairs = text_findings(report.source or "", report.path, _document_language(report.path), codes | {"TL002"})
    undefined = {f.data.get("name"): f for f, _ in pairs if f.code == "TL002"}
    pairs = [(f, m) for f, m in pairs if f.code in codes]
    source = _with_conventional_imports(doc, [f for f in undefined.values()])
    by_place = {(m.code, m.cell, m.range): f for f, m in pairs}
    text_chosen, originals, done = [], [], {}
    for f in chosen:
        inner = by_place.get((f.code, f.cell, f.range))
        if inner is None:
            done[id(f)] = f.with_confirmation(Confirmation("could-not-run", "the finding is not in the document's code as run"))
            bar.done += 1
            continue
        text_chosen.append(inner)
        originals.append(f)

    def progress(n: int, of: int, finding: Finding) -> None:
        if n < of:
            bar.show(report.path, finding)
            bar.done += 1

    confirmed = confirm_findings(
        source, report.path, text_chosen, device=device, timeout=timeout, worker=worker, progress=progress,
        context=[f for f, _ in pairs],
    )
    for f, c in zip(originals, confirmed):
        verdict = c.confirmation
        if verdict is not None and verdict.status == "could-not-run":
            m = re.search(r"NameError: name '(\w+)' is not defined", verdict.evidence)
            if m and m.group(1) in undefined:
                verdict = Confirmation(
                    "could-not-run", f"`{m.group(1)}` is never defined in this document (TL002), so the code cannot run", verdict.detail
                )
        done[id(f)] = f.with_confirmation(verdict) if verdict is not None else f
    return done


def _with_conventional_imports(doc: Any, undefined: list[Finding]) -> str:
    """The document's text with the imports TL002 would add (``F`` -> torch.nn.functional) written on a
    blank line before the first code line, so a tutorial that imported them on an earlier page runs."""
    statements = []
    for f in undefined:
        m = re.search(r"add `([^`]+)`", f.message)
        if m and "defined later" not in f.message:
            statements.append(m.group(1))
    if not statements:
        return doc.text
    lines = doc.text.split("\n")
    first_code = next((n for n in range(1, len(doc.line_map)) if doc.line_map[n] is not None), None)
    if first_code is None or first_code < 2 or lines[first_code - 2].strip():
        return doc.text  # no blank line before the code to put them on (a notebook's first cell)
    lines[first_code - 2] = "; ".join(statements)
    return "\n".join(lines)


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

    parser.add_argument("target", metavar="FILE[:LINE]", help="the file, optionally with the line of the finding to confirm")
    parser.add_argument("--select", metavar="CODES", help="only these rules (comma-separated codes)")
    parser.add_argument("--output-format", choices=FORMATS, default="text", help="default: text")
    parser.add_argument(
        "--show-program",
        action="store_true",
        help="also print the program torchlint runs for each finding (the extracted code)",
    )
    add_confirm_arguments(parser, flag=False)


def _split_target(target: str) -> tuple[str, int | None]:
    path, sep, line = target.rpartition(":")
    if sep and line.isdigit() and path:
        return path, int(line)
    return target, None


def run(args: argparse.Namespace) -> int:
    from torchlint.engine import LintOptions, lint_source
    from torchlint.output import OutputOptions, write
    from torchlint.output.text import use_color, write_error
    from torchlint.sources import SourceError, read_source

    path, line = _split_target(args.target)
    if line is not None and line < 1:
        write_error(f"{args.target}: line numbers start at 1")
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
    report = lint_source(source, path, LintOptions(codes=codes))
    if line is not None:
        report.findings = [f for f in report.findings if f.range.line <= line <= f.range.end_line]
    from torchlint.runtime.confirm import confirmable

    report.findings = [f for f in report.findings if confirmable(f)]
    if not report.findings:
        where = f"{path}:{line}" if line is not None else path
        sys.stderr.write(f"{where}: no finding that can be confirmed by running\n")
        return EXIT_ERROR if report.errors else EXIT_OK
    errors = confirm_reports([report], args)
    for e in [*errors, *report.errors]:
        write_error(e)
    out = sys.stdout
    write(args.output_format, [report], out, OutputOptions(color=use_color(out) and args.output_format in ("text", "full", "concise")))
    if args.show_program:
        _show_programs(source, path, report.findings, args, out)
    if errors:
        return EXIT_ERROR
    confirmed = any(f.confirmation is not None and f.confirmation.status == "confirmed" for f in report.findings)
    return EXIT_CONFIRMED if confirmed else EXIT_OK


def _show_programs(source: str, path: str, findings: Sequence[Finding], args: argparse.Namespace, out: TextIO) -> None:
    from torchlint.diagnostics import Confirmation
    from torchlint.runtime.confirm import Claim, prepare
    from torchlint.runtime.confirmers import Options
    from torchlint.runtime.extract import render

    options = Options(device=args.device, timeout=args.confirm_timeout)
    for f in findings:
        out.write(f"\n# --- the program run for {path}:{f.range.line} {f.code} ---\n")
        job = prepare(source, path, Claim.from_finding(f), options)
        if isinstance(job, Confirmation):
            out.write(f"# (none: {job.evidence})\n")
            continue
        out.write(render(source, job.plan) + "\n")


def confirm_command(argv: Sequence[str] | None = None) -> int:
    """``torchlint confirm FILE[:LINE] ...`` as a function (argv without the subcommand)."""
    parser = argparse.ArgumentParser(prog="torchlint confirm", description="run flagged code in a sandbox to confirm findings")
    configure(parser)
    args = parser.parse_args(list(sys.argv[1:] if argv is None else argv))
    return run(args)
