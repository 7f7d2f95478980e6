"""The public Python API, re-exported by ``torchlint`` (documented in docs/api.md).

Three functions mirror the command line: :func:`lint_source` and
:func:`fix_source` for text, :func:`lint_paths` for files and directories with
the project's ``[tool.torchlint]`` settings. They honour ``select``/``ignore``
(codes or prefixes, as ``--select``/``--ignore``), ``# noqa`` comments and,
for paths, per-file ignores; plugin rules take part like built-in ones.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence

from torchlint.diagnostics import Finding

__all__ = ["LintError", "fix_source", "lint_paths", "lint_source"]


class LintError(Exception):
    """Linting finished but something could not be checked: a rule crashed, or a file could not be read.

    ``errors`` are one-line messages; ``findings`` (for :func:`lint_source`) or
    ``results`` (for :func:`lint_paths`) hold what was found anyway.
    """

    def __init__(
        self,
        errors: Sequence[str],
        findings: Sequence[Finding] = (),
        results: dict[str, list[Finding]] | None = None,
    ) -> None:
        super().__init__("; ".join(errors))
        self.errors = list(errors)
        self.findings = list(findings)
        self.results = dict(results or {})


def _codes(select: Iterable[str] | str | None, ignore: Iterable[str] | str) -> frozenset[str]:
    from torchlint.config import Selection, resolve_codes, unknown_selectors

    sel = _selectors(select) if select is not None else None
    ign = _selectors(ignore)
    unknown = unknown_selectors([*(sel or ()), *ign])
    if unknown:
        raise ValueError(f"unknown rule code or prefix: {', '.join(unknown)} (see `torchlint rules`)")
    return resolve_codes([Selection(select=sel, ignore=ign)])


def _selectors(value: Iterable[str] | str) -> tuple[str, ...]:
    # A bare string is one selector list, as on the command line: "TL1,TL201".
    items = [value] if isinstance(value, str) else list(value)
    return tuple(p.strip() for item in items for p in item.split(",") if p.strip())


def _language(path: str) -> str:
    from torchlint.config import EXPLICIT_EXTENSIONS

    ext = os.path.splitext(path)[1].lstrip(".").lower()
    return EXPLICIT_EXTENSIONS.get(ext, "python")


def lint_source(
    text: str,
    path: str = "<string>",
    *,
    select: Iterable[str] | str | None = None,
    ignore: Iterable[str] | str = (),
) -> list[Finding]:
    """Lint ``text`` and return its findings, sorted by position.

    ``path`` names the file in findings and picks the language as for a file
    named on the command line: ``*.ipynb`` notebooks, Markdown (``*.md``,
    ``*.markdown``, ``*.qmd``, ``*.myst``) and ``*.rst`` have their Python code
    linted (positions are in the document); anything else is Python. ``select`` (default: every rule) and ``ignore`` take codes or
    prefixes (``"TL2"``, ``"ALL"``, a plugin's ``"EX101"``), as a list or one
    comma-separated string; an unknown one raises :class:`ValueError`. A syntax
    error is a ``TL001`` finding. A rule that crashes raises :class:`LintError`
    after the other rules ran (their findings are in ``exc.findings``).
    """
    from torchlint.runner import lint_text

    report = lint_text(text, path, _language(path), _codes(select, ignore))
    if report.errors:
        raise LintError(report.errors, report.findings)
    return report.findings


def fix_source(
    text: str,
    path: str = "<string>",
    *,
    select: Iterable[str] | str | None = None,
    ignore: Iterable[str] | str = (),
    unsafe: bool = False,
) -> str:
    """``text`` with the fixes of its findings applied (as ``torchlint check --fix``).

    Only safe fixes unless ``unsafe`` (``--unsafe-fixes``). Fixes are applied
    and the text re-linted until nothing more can be fixed. Same arguments and
    errors as :func:`lint_source`.
    """
    from torchlint.runner import fix_text

    report, _applied, error = fix_text(text, path, _language(path), _codes(select, ignore), unsafe)
    errors = [*report.errors, *([error] if error else [])]
    if errors:
        raise LintError(errors, report.findings)
    return report.source if report.source is not None else text


def lint_paths(
    paths: Iterable[str | os.PathLike[str]],
    *,
    select: Iterable[str] | str | None = None,
    ignore: Iterable[str] | str = (),
    respect_gitignore: bool | None = None,
) -> dict[str, list[Finding]]:
    """Lint files and directories the way ``torchlint check PATHS`` does; path -> findings.

    Directories are walked with the same exclusions; each file follows the
    closest ``pyproject.toml``'s ``[tool.torchlint]`` (its selection and
    per-file ignores), with ``select``/``ignore`` applied over it like the
    command-line flags. Every linted file is a key (paths as found, relative
    ones relative to the working directory), clean files with an empty list.
    ``respect_gitignore`` overrides the config's ``respect-gitignore``. Nothing
    is cached or written, and it runs in this process. A bad config
    raises :class:`ValueError`; unreadable files, missing paths and crashed
    rules raise :class:`LintError` once everything else is linted.
    """
    from torchlint.config import ConfigError, Resolver, Selection
    from torchlint.discovery import discover
    from torchlint.runner import Job, RunOptions, run

    sel = _selectors(select) if select is not None else None
    ign = _selectors(ignore)
    _codes(sel, ign)  # reject unknown selectors up front
    resolver = Resolver(cli=Selection(select=sel, ignore=ign))
    try:
        found = discover([os.fspath(p) for p in paths], resolver, respect_gitignore=respect_gitignore)
        jobs = [Job(f.path, f.abspath, f.language, resolver.codes_for(f.abspath, f.settings)) for f in found.files]
    except ConfigError as exc:
        raise ValueError(str(exc)) from None
    results = run(jobs, RunOptions(jobs=1))
    out = {r.job.path: r.report.findings for r in results}
    errors = [*found.errors, *(e for r in results for e in r.report.errors)]
    if errors:
        raise LintError(errors, results=out)
    return out
