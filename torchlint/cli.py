"""The ``torchlint`` command: ``check``, ``rule``, ``rules``, ``version``.

Subcommands are rows of :data:`COMMANDS`. Others live in their own modules and
are only imported when used: a row of :data:`EXTERNAL_COMMANDS` names a module
that defines ``configure(parser)`` and ``run(args) -> int``; while the module
does not exist the subcommand is simply not offered. ``check`` itself can be
extended (``check --confirm``) by a module in :data:`CHECK_EXTENSIONS` that
defines ``configure_check(parser)`` and ``after_check(args, reports) -> list[str]``
(it may replace findings in ``reports``, e.g. with confirmed ones, and returns
error lines); it is imported on every ``check``, so it must import lightly.

Exit codes (ruff's): 0 no findings, 1 findings (or, with --diff, changes),
2 usage, config or I/O errors and crashed rules, 130 interrupted.
"""

from __future__ import annotations

import argparse
import difflib
import importlib
import importlib.util
import io
import json
import os
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import NoReturn, TextIO

import torchlint

EXIT_OK, EXIT_FINDINGS, EXIT_ERROR, EXIT_INTERRUPTED = 0, 1, 2, 130


class UsageError(Exception):
    """A bad command line; ``str()`` is the one line shown after ``error:``."""


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line and exit code 2 (never a usage dump)."""

    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{message} (see '{self.prog} --help')")


@dataclass(frozen=True)
class Command:
    name: str
    help: str
    configure: Callable[[argparse.ArgumentParser], None]
    run: Callable[[argparse.Namespace], int]


# name -> (help, module defining configure(parser) and run(args)).
EXTERNAL_COMMANDS: dict[str, tuple[str, str]] = {
    "server": ("run the language server (LSP) on stdio", "torchlint.server.cli"),
    "confirm": ("run flagged code in a sandbox to confirm findings", "torchlint.runtime.commands"),
}
# Modules extending `check` (see the module docstring).
CHECK_EXTENSIONS: tuple[str, ...] = ("torchlint.runtime.commands",)


def _module_exists(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):
        return False


def _check_extensions() -> list[object]:
    out = []
    for name in CHECK_EXTENSIONS:
        if not _module_exists(name):
            continue
        module = importlib.import_module(name)
        if hasattr(module, "configure_check") and hasattr(module, "after_check"):
            out.append(module)
    return out


# --- check --------------------------------------------------------------------


def _configure_check(p: argparse.ArgumentParser) -> None:
    from torchlint.output import FORMATS

    p.add_argument("paths", nargs="*", metavar="PATH", help="files or directories to lint (default: .); - reads stdin")
    fixes = p.add_argument_group("fixes")
    fixes.add_argument("--fix", action="store_true", help="apply fixes in place")
    fixes.add_argument("--unsafe-fixes", action="store_true", help="also offer/apply fixes that may change behaviour")
    fixes.add_argument("--diff", action="store_true", help="print the fixes as a unified diff instead of writing them; exit 1 if there is one")
    fixes.add_argument("--add-noqa", action="store_true", help="add `# noqa: CODE` comments to every line with a finding (Python files)")
    rules = p.add_argument_group("rule selection")
    rules.add_argument("--select", action="append", metavar="CODES", help="rules to enable (comma-separated codes or prefixes, ALL); replaces the config's")
    rules.add_argument("--ignore", action="append", metavar="CODES", help="rules to disable")
    rules.add_argument("--extend-select", action="append", metavar="CODES", help="rules to enable on top of the selection")
    files = p.add_argument_group("file selection")
    files.add_argument("--force-exclude", action="store_true", help="apply exclusions even to paths named on the command line (for pre-commit)")
    files.add_argument(
        "--extension",
        action="append",
        metavar="EXT:LANG",
        help="lint files with extension EXT as LANG (python or markdown), e.g. md:markdown or txt:markdown",
    )
    files.add_argument("--no-respect-gitignore", dest="respect_gitignore", action="store_false", default=None, help="do not skip .gitignored files")
    files.add_argument("--stdin-filename", metavar="PATH", help="the name of the file read from stdin (for config, exclusions and messages)")
    files.add_argument("--show-files", action="store_true", help="list the files that would be linted, and exit")
    out = p.add_argument_group("output")
    out.add_argument("--output-format", choices=FORMATS, default=os.environ.get("TORCHLINT_OUTPUT_FORMAT") or "text", help="default: text (full, with code); concise is one line a finding")
    out.add_argument("-o", "--output-file", metavar="PATH", help="write findings to this file instead of stdout")
    out.add_argument("--statistics", action="store_true", help="show counts per rule instead of each finding")
    out.add_argument("-q", "--quiet", action="store_true", help="print findings but no summary")
    out.add_argument("-s", "--silent", action="store_true", help="print no findings either (errors still go to stderr)")
    out.add_argument("--exit-zero", action="store_true", help="exit 0 even when there are findings")
    run = p.add_argument_group("configuration and performance")
    run.add_argument("--config", metavar="PATH", help="use this pyproject.toml / torchlint.toml (or inline TOML such as \"select=['TL2']\") for every file")
    run.add_argument("--no-cache", action="store_true", help="neither read nor write the results cache")
    run.add_argument("--cache-dir", metavar="DIR", help="where the cache lives (default: .torchlint_cache at the project root; env TORCHLINT_CACHE_DIR)")
    run.add_argument("--jobs", "-j", type=int, metavar="N", help="worker processes (default: every core, one for a few files)")
    for ext in _check_extensions():
        ext.configure_check(p)  # type: ignore[attr-defined]


def _selection_from_args(args: argparse.Namespace):
    from torchlint.config import Selection, split_codes, unknown_selectors

    select = split_codes(args.select)
    ignore = split_codes(args.ignore) or ()
    extend = split_codes(args.extend_select) or ()
    for flag, values in (("--select", select), ("--ignore", ignore), ("--extend-select", extend)):
        bad = unknown_selectors(values or ())
        if bad:
            raise UsageError(
                f"unknown rule code{'s' if len(bad) > 1 else ''} in {flag}: {', '.join(bad)} (see 'torchlint rules')"
            )
    return Selection(select, ignore, extend)


def _extensions_from_args(args: argparse.Namespace) -> dict[str, str]:
    from torchlint.config import LANGUAGES

    out: dict[str, str] = {}
    for value in args.extension or ():
        for item in value.split(","):
            item = item.strip()
            if not item:
                continue
            ext, sep, lang = item.partition(":")
            ext = ext.strip().lstrip(".").lower()
            lang = lang.strip().lower()
            if not sep or not ext or lang not in LANGUAGES:
                raise UsageError(f"--extension {item!r}: expected EXT:LANG with LANG one of {', '.join(LANGUAGES)}")
            out[ext] = lang
    return out


def _display_path(path: str, abspath: str, cwd: str) -> str:
    if os.path.isabs(path):
        prefix = cwd.rstrip("/") + "/"
        if abspath.startswith(prefix):
            return abspath[len(prefix) :]
    return path


def _unified_diff(path: str, before: str, after: str, language: str = "python") -> str:
    if language == "notebook":
        return _notebook_diff(path, before, after)
    a, b = before.splitlines(keepends=True), after.splitlines(keepends=True)
    out = []
    for line in difflib.unified_diff(a, b, fromfile=path, tofile=path):
        out.append(line if line.endswith("\n") else line + "\n\\ No newline at end of file\n")
    return "".join(out)


def _notebook_diff(path: str, before: str, after: str) -> str:
    """One unified diff per changed cell, named ``path:cell N``."""
    from torchlint.documents import cell_sources

    old, new = cell_sources(before) or [], cell_sources(after) or []
    out = []
    for i, (a, b) in enumerate(zip(old, new), start=1):
        if a != b:
            out.append(_unified_diff(f"{path}:cell {i}", a, b))
    return "".join(out)


def _run_check(args: argparse.Namespace) -> int:
    from torchlint.cache import Cache, default_cache_dir
    from torchlint.config import Resolver, inline_config, load_config_file, posix
    from torchlint.discovery import discover, language_of
    from torchlint.output import FORMATS, OutputOptions, statistics, write
    from torchlint.output.text import Style, summary, use_color, write_error
    from torchlint.runner import Job, RunOptions, run
    from torchlint.sources import SourceError, decode

    if args.output_format not in FORMATS:  # a default from TORCHLINT_OUTPUT_FORMAT is not checked by argparse
        raise UsageError(f"TORCHLINT_OUTPUT_FORMAT={args.output_format!r}: expected one of {', '.join(FORMATS)}")
    if args.diff and args.fix:
        args.fix = False  # --diff wins: show, never write
    if args.add_noqa and (args.fix or args.diff or "-" in (args.paths or ())):
        raise UsageError("--add-noqa cannot be combined with --fix, --diff or stdin")
    if args.jobs is not None and args.jobs < 1:
        raise UsageError("--jobs must be at least 1")
    cwd = os.getcwd()
    selection = _selection_from_args(args)
    extensions = _extensions_from_args(args)
    override = None
    if args.config:
        if os.path.exists(args.config) or "=" not in args.config:
            override = load_config_file(args.config)
        else:
            override = inline_config(args.config, cwd)
    if override is not None and (override.torch_version or override.torchvision_version):
        from torchlint.knowledge.target import set_override

        set_override(override.torch_version, override.torchvision_version)
    resolver = Resolver(cli=selection, config_override=override, cwd=cwd)

    paths = args.paths or ["."]
    errors: list[str] = []
    jobs: list[Job] = []
    stdin_mode = "-" in paths
    if stdin_mode:
        if len(paths) > 1:
            raise UsageError("'-' (stdin) cannot be combined with other paths")
        name = args.stdin_filename or "-"
        abspath = posix(args.stdin_filename) if args.stdin_filename else posix(os.path.join(cwd, "-"))
        settings = resolver.settings_for_file(abspath)
        data = sys.stdin.buffer.read()
        if args.force_exclude and args.stdin_filename and _stdin_excluded(abspath, settings, resolver, args):
            if args.fix:
                sys.stdout.buffer.write(data)
            return EXIT_OK
        try:
            text = decode(data, name, settings.max_file_size)
        except SourceError as exc:
            write_error(str(exc))
            return EXIT_ERROR
        language = language_of(os.path.basename(name), settings, extensions, explicit=True) if args.stdin_filename else "python"
        jobs.append(
            Job(_display_path(name, abspath, cwd), None, language or "python", resolver.codes_for(abspath, settings), text,
                conventions=settings.conventional_imports or None, max_bytes=settings.max_file_size)
        )
    else:
        found = discover(
            paths,
            resolver,
            cli_extensions=extensions,
            force_exclude=args.force_exclude,
            respect_gitignore=args.respect_gitignore,
        )
        errors.extend(found.errors)
        for f in found.files:
            jobs.append(
                Job(_display_path(f.path, f.abspath, cwd), f.abspath, f.language, resolver.codes_for(f.abspath, f.settings),
                    conventions=f.settings.conventional_imports or None, max_bytes=f.settings.max_file_size)
            )
        if args.show_files:
            for job in jobs:
                print(job.path)
            for e in errors:
                write_error(e)
            return EXIT_ERROR if errors else EXIT_OK

    cache = None
    if not args.no_cache and not stdin_mode:
        cache = Cache(args.cache_dir or default_cache_dir(resolver.project_root()))
    results = run(
        jobs,
        RunOptions(fix=args.fix or args.diff, unsafe_fixes=args.unsafe_fixes, write=args.fix and not stdin_mode, jobs=args.jobs, cache=cache, contain_crashes=True),
    )
    reports = [r.report for r in results]

    for ext in _check_extensions():
        errors.extend(ext.after_check(args, reports) or ())  # type: ignore[attr-defined]

    for r in reports:
        errors.extend(r.errors)
    for result in results:
        for w in result.warnings:
            sys.stderr.write(f"warning: {w}\n")
    if args.add_noqa:
        added = _add_noqa(results, errors)
        for e in errors:
            write_error(e)
        if not args.silent:
            sys.stderr.write(f"Added {added} noqa directive{'' if added == 1 else 's'}.\n")
        return EXIT_ERROR if errors else EXIT_OK
    for e in errors:
        write_error(e)

    fixed = sum(r.fixes_applied for r in results)
    findings = [f for r in reports for f in r.findings]
    exit_code = EXIT_ERROR if errors else EXIT_OK

    # stdin with --fix/--diff: stdout carries the code (or the diff), findings go to stderr.
    if stdin_mode and (args.fix or args.diff):
        result = results[0] if results else None
        if result is not None and args.diff:
            if result.original is not None:
                sys.stdout.write(_unified_diff(result.job.path, result.original, result.report.source or "", result.job.language))
            return exit_code or (EXIT_FINDINGS if result.original is not None else EXIT_OK)
        if result is not None:
            # Bytes, so the code survives a terminal encoding that cannot show it.
            sys.stdout.flush()
            sys.stdout.buffer.write((result.report.source or "").encode("utf-8"))
            sys.stdout.buffer.flush()
        out_stream: TextIO = sys.stderr
    else:
        out_stream = sys.stdout

    if args.diff:
        changed = [r for r in results if r.original is not None]
        for r in changed:
            sys.stdout.write(_unified_diff(r.job.path, r.original or "", r.report.source or "", r.job.language))
        if not args.quiet and not args.silent:
            n = sum(r.fixes_applied for r in changed)
            word = "error" if n == 1 else "errors"
            sys.stderr.write(f"Would fix {n} {word}.\n" if n else "No errors would be fixed.\n")
        return exit_code or (EXIT_FINDINGS if changed else EXIT_OK)

    if not findings and not stdin_mode and not jobs and not errors and not args.silent:
        sys.stderr.write("warning: no Python files found under the given paths\n")

    opened: TextIO | None = None
    if args.output_file:
        try:
            opened = open(args.output_file, "w", encoding="utf-8")
        except OSError as exc:
            raise UsageError(f"--output-file {args.output_file}: {exc.strerror or exc}") from None
        out_stream = opened
    try:
        color = args.output_format in ("text", "full", "concise") and opened is None and use_color(out_stream)
        options = OutputOptions(unsafe_fixes=args.unsafe_fixes, color=color)
        if not args.silent:
            if args.statistics:
                fmt = "json" if args.output_format == "json" else "text"
                statistics.write(statistics.rows(reports, args.unsafe_fixes), out_stream, fmt)
            else:
                write(args.output_format, reports, out_stream, options, errors=[e for e in errors])
            if args.output_format in ("text", "full", "concise") and not args.quiet:
                for line in summary(findings, options, fixed=fixed, fix_mode=args.fix, style=Style(color), errors=len(errors)):
                    out_stream.write(line + "\n")
    finally:
        if opened is not None:
            opened.close()

    if exit_code:
        return exit_code
    return EXIT_FINDINGS if findings and not args.exit_zero else EXIT_OK


def _add_noqa(results, errors: list[str]) -> int:
    """Write ``# noqa: CODE`` on the lines of the findings; returns how many lines changed."""
    from torchlint.noqa import add_noqa
    from torchlint.runner import _decode_quiet, _encoding_of, write_if_unchanged

    added = 0
    for r in results:
        if r.job.language != "python" or r.job.abspath is None or not r.report.findings or r.report.source is None:
            continue
        new, n = add_noqa(r.report.source, r.report.findings)
        if not n:
            continue
        try:
            with open(r.job.abspath, "rb") as fh:
                data = fh.read()
            encoding = _encoding_of(data)
            unchanged = _decode_quiet(data, r.job.path) == r.report.source
            if not (unchanged and write_if_unchanged(r.job.abspath, data, new.encode(encoding))):
                sys.stderr.write(f"warning: {r.job.path}: changed on disk meanwhile; no noqa comments added (run again)\n")
                continue
        except (OSError, UnicodeEncodeError, LookupError) as exc:
            errors.append(f"{r.job.path}: cannot add noqa comments: {getattr(exc, 'strerror', None) or exc}")
            continue
        added += n
    return added


def _stdin_excluded(abspath: str, settings, resolver, args) -> bool:
    from torchlint.discovery import GitIgnoreStack, excluded_in_project

    if excluded_in_project(abspath, settings):
        return True
    respect = settings.respect_gitignore if args.respect_gitignore is None else args.respect_gitignore
    return respect and GitIgnoreStack().is_ignored(abspath, False)


# --- rule / rules / version -----------------------------------------------------------


def _fixable(rule: type) -> bool:
    return any(getattr(i, "expected_fix", None) is not None for i in getattr(rule, "INVALID", ()))


def _summary_of(rule: type) -> str:
    from torchlint.output.sarif import _what_it_does

    text = _what_it_does(rule.documentation())
    first = text.split(". ")[0].rstrip(".")
    return (first + ".") if first else rule.name


def _rule_json(rule: type) -> dict:
    return {
        "code": rule.code,
        "name": rule.name,
        "summary": _summary_of(rule),
        "fixable": _fixable(rule),
        "severity": rule.severity,
        "confirmable": bool(rule.confirmable),
        "deprecated": bool(rule.deprecated),
        "default_enabled": bool(getattr(rule, "default_enabled", True)),
    }


def _configure_rule(p: argparse.ArgumentParser) -> None:
    p.add_argument("rule", metavar="RULE", help="a code (TL201) or a name (iterator-next-method)")
    p.add_argument("--output-format", choices=("text", "json"), default="text")


def _run_rule(args: argparse.Namespace) -> int:
    from torchlint.rules import get_rule

    rule = get_rule(args.rule)
    if rule is None:
        raise UsageError(f"unknown rule {args.rule!r} (see 'torchlint rules')")
    if args.output_format == "json":
        print(json.dumps({**_rule_json(rule), "documentation": rule.documentation()}, indent=2))
        return EXIT_OK
    lines = [f"# {rule.name} ({rule.code})", ""]
    if not getattr(rule, "default_enabled", True):
        lines += [f"Off by default: enable it with `--extend-select {rule.code}` (or `extend-select` in the config).", ""]
    if _fixable(rule):
        lines += ["Fix is sometimes available.", ""]
    if rule.confirmable:
        lines += ["Findings can be confirmed by running the code (`torchlint check --confirm`).", ""]
    lines.append(rule.documentation())
    print("\n".join(lines))
    return EXIT_OK


def _configure_rules(p: argparse.ArgumentParser) -> None:
    p.add_argument("--output-format", choices=("text", "json"), default="text")


def _run_rules(args: argparse.Namespace) -> int:
    from torchlint.rules import all_rules

    rules = list(all_rules().values())
    if args.output_format == "json":
        print(json.dumps([_rule_json(r) for r in rules], indent=2))
        return EXIT_OK
    rows = [
        (r.code, r.name, "[*]" if _fixable(r) else "   ", ("(off by default) " if not getattr(r, "default_enabled", True) else "") + _summary_of(r))
        for r in rules
    ]
    cw = max((len(r[0]) for r in rows), default=4)
    nw = max((len(r[1]) for r in rows), default=4)
    for code, name, fix, text in rows:
        print(f"{code.ljust(cw)}  {name.ljust(nw)}  {fix}  {text}")
    return EXIT_OK


def _run_version(args: argparse.Namespace) -> int:
    from torchlint.knowledge import known_versions

    print(f"torchlint {torchlint.__version__}")
    print(f"python {sys.version.split()[0]} {sys.executable}")  # editors' health checks show it
    for package, versions in sorted(known_versions().items()):
        print(f"knows {package} {', '.join(str(v) for v in versions)}")
    return EXIT_OK


COMMANDS: list[Command] = [
    Command("check", "lint files and directories", _configure_check, _run_check),
    Command("rule", "explain a rule", _configure_rule, _run_rule),
    Command("rules", "list every rule", _configure_rules, _run_rules),
    Command("version", "print the version", lambda p: None, _run_version),
]


def build_parser(argv: Sequence[str] = ()) -> argparse.ArgumentParser:
    parser = _Parser(
        prog="torchlint",
        description="A linter for PyTorch code: catches the mistakes tutorials teach, and fixes them.",
    )
    parser.add_argument("--version", action="version", version=f"torchlint {torchlint.__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    for cmd in COMMANDS:
        p = sub.add_parser(cmd.name, help=cmd.help, description=cmd.help)
        cmd.configure(p)
        p.set_defaults(_run=cmd.run)
    wanted = next((a for a in argv if not a.startswith("-")), None)
    for name, (help_text, module_name) in EXTERNAL_COMMANDS.items():
        if not _module_exists(module_name):
            continue
        p = sub.add_parser(name, help=help_text, description=help_text)
        if name == wanted:  # import only the subcommand that runs
            module = importlib.import_module(module_name)
            module.configure(p)
            p.set_defaults(_run=module.run)
    return parser


def _main(argv: Sequence[str]) -> int:
    if argv[:1] == ["server"]:
        # What editors start: no other command's options to build (the server answers
        # `initialize` within milliseconds of starting, see torchlint/server/early.py).
        from torchlint.server.launch import add_arguments, serve

        help_text = EXTERNAL_COMMANDS["server"][0]
        server_parser = _Parser(prog="torchlint server", description=help_text)
        add_arguments(server_parser)
        return serve(server_parser.parse_args(argv[1:]))
    parser = build_parser(argv)
    if not argv:
        parser.print_help(sys.stderr)
        return EXIT_ERROR
    args = parser.parse_args(argv)
    if getattr(args, "_run", None) is None:
        parser.print_help(sys.stderr)
        return EXIT_ERROR
    from torchlint.codecache import generated_code

    with generated_code("analysis"):  # (libcst's and the rules' dataclasses, compiled by an earlier run)
        return args._run(args)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point. Returns the exit code; never lets a traceback out (TORCHLINT_DEBUG=1 shows it)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    # Everything heavy (libcst, the rules) is imported inside the try, so even a
    # Ctrl-C during start-up ends quietly with 130.
    try:
        return _main(argv)
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
    except UsageError as exc:
        return _fail(str(exc))
    except BrokenPipeError:
        # The reader went away (| head): stop quietly, without a second error at exit.
        try:
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
        except (OSError, ValueError, io.UnsupportedOperation):
            pass
        return EXIT_FINDINGS
    except Exception as exc:
        config = sys.modules.get("torchlint.config")
        if config is not None and isinstance(exc, config.ConfigError):
            return _fail(str(exc))
        rules = sys.modules.get("torchlint.rules")
        if rules is not None and isinstance(exc, rules.PluginError):
            return _fail(str(exc))
        if os.environ.get("TORCHLINT_DEBUG"):
            raise
        where = ""
        tb = exc.__traceback__
        while tb is not None and tb.tb_next is not None:
            tb = tb.tb_next
        if tb is not None:
            where = f" (at {os.path.basename(tb.tb_frame.f_code.co_filename)}:{tb.tb_lineno})"
        return _fail(f"internal error: {type(exc).__name__}: {exc}{where}; set TORCHLINT_DEBUG=1 for the traceback and please report it")


def _fail(message: str) -> int:
    try:
        from torchlint.output.text import write_error

        write_error(message)
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
    return EXIT_ERROR


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
