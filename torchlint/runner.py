"""Linting many files: reading, the cache, Markdown, fixes, and all the cores.

The CLI builds a list of :class:`Job` and calls :func:`run`; everything that can
go wrong with one file becomes a one-line entry in its report's ``errors`` so
the other files are still linted.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import io
import stat
import tempfile
import tokenize
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field, replace

from torchlint.cache import Cache, entry_key
from torchlint.diagnostics import FileReport, Finding
from torchlint.engine import SYNTAX_ERROR_CODE, LintOptions, lint_source
from torchlint.fixes import fix_is_applicable, fix_source
from torchlint.rules import all_rules
from torchlint import documents
from torchlint.documents import DOCUMENT_LANGUAGES
from torchlint.sources import SourceError, decode

# A process pool costs ~20-30 ms (fork, collecting results); one core lints about
# 60 KB/s of source that some rule has to look at (a CST parse and a traversal)
# and ~100x that where no rule's trigger occurs (a C syntax check only). So the
# pool pays off beyond a few KB of real work; below this estimate we stay serial.
PARALLEL_MIN_COST = 16 * 1024
PARALLEL_MIN_FILES = 3
_UNTRIGGERED_WEIGHT = 0.02


@dataclass
class Job:
    path: str  # shown to the user
    abspath: str | None  # None: read from ``source`` (stdin)
    language: str = "python"
    codes: frozenset[str] | None = None
    source: str | None = None  # given text (stdin); otherwise the file is read
    # Documents: name -> module for names used without an import (None: the default table).
    conventions: tuple[tuple[str, str], ...] | None = None
    max_bytes: int | None = None  # larger files are skipped (None: sources.MAX_BYTES)


@dataclass
class Result:
    job: Job
    report: FileReport  # ``report.source``: the text the findings refer to (after fixes)
    original: str | None = None  # the text before fixes, when fixes changed it
    fixes_applied: int = 0
    from_cache: bool = False
    encoding: str = "utf-8"
    warnings: list[str] = field(default_factory=list)  # one line each, for stderr

    @property
    def fixed(self) -> str | None:
        if self.original is None:
            return None
        return self.report.source


@dataclass
class RunOptions:
    fix: bool = False  # compute fixed text (for --fix and --diff)
    unsafe_fixes: bool = False
    write: bool = False  # write fixed text back to the files
    jobs: int | None = None  # worker processes; None: every core
    cache: Cache | None = None
    # The CLI's in-process path runs in a forked child, so that a crash in native code
    # (libcst's parser) loses one file, not the run; library callers stay in their process.
    contain_crashes: bool = False


def _target_key(job: Job) -> str:
    """The release the file is linted for: a change of ``torch-version`` must not reuse cached findings."""
    from torchlint.knowledge.target import target_for_path

    t = target_for_path(job.abspath or job.path)
    return f"{t.torch}/{t.torchvision}"


# --- one file -------------------------------------------------------------------


def lint_text(
    text: str,
    path: str,
    language: str,
    codes: frozenset[str] | None,
    conventions: Mapping[str, str] | None = None,
) -> FileReport:
    """Lint one file's text as ``language``; documents (Markdown, notebooks, RST) go through a Document."""
    options = LintOptions(codes=codes)
    if language in DOCUMENT_LANGUAGES:
        return lint_document_text(text, path, language, options, conventions)
    return lint_source(text, path, options)


def lint_document_text(
    text: str, path: str, language: str, options: LintOptions = LintOptions(), conventions: Mapping[str, str] | None = None
) -> FileReport:
    # No cyclic GC from the parse that builds the document to the end of its lint, nor while
    # the document is still there to be scanned (its cells).
    with documents.gc_paused():
        try:
            doc = documents.build(text, path, language)
        except SourceError as exc:
            return FileReport(path=path, source=text, errors=[str(exc)])
        report = documents.lint_document(doc, options, conventions)
        del doc
    return report


def lint_markdown(text: str, path: str, options: LintOptions = LintOptions()) -> FileReport:
    """Lint a Markdown document's Python blocks as one module (names flow between blocks)."""
    return lint_document_text(text, path, "markdown", options)


def fix_text(
    text: str,
    path: str,
    language: str,
    codes: frozenset[str] | None,
    unsafe: bool,
    conventions: Mapping[str, str] | None = None,
) -> tuple[FileReport, int, str | None]:
    """Lint and fix to a fixpoint. Returns (report for the final text, fixes applied, error).

    Fixes that would leave a file that no longer parses are all reverted. A
    notebook's fixes change only the ``source`` of the cells they touch.
    """
    reports: list[FileReport] = []

    def lint(s: str) -> list[Finding]:
        r = lint_text(s, path, language, codes, conventions)
        reports.append(r)
        return r.findings

    apply = None
    if language == "notebook":
        apply = lambda s, fixes: documents.apply_notebook_fixes(s, fixes)  # noqa: E731
    fixed, applied, _ = fix_source(text, lint, unsafe, apply=apply)
    first, last = reports[0], reports[-1]
    if applied and any(f.code == SYNTAX_ERROR_CODE for f in last.findings) and not any(
        f.code == SYNTAX_ERROR_CODE for f in first.findings
    ):
        return first, 0, f"{path}: the fixes produced invalid code, so none were applied (please report this)"
    return last, applied, None


# --- many files -------------------------------------------------------------------

# Work for forked workers: set before the pool forks, so nothing is pickled to them.
_WORK: list[tuple] | None = None


def _do(item: tuple) -> tuple[FileReport, int, str | None]:
    path, text, language, codes, fix, unsafe, conventions = item
    table = _conventions(conventions)
    try:
        if fix:
            report, applied, error = fix_text(text, path, language, codes, unsafe, table)
        else:
            report, applied, error = lint_text(text, path, language, codes, table), 0, None
    except Exception as exc:  # the engine never raises; this guards the rest of the run anyway
        report, applied, error = FileReport(path=path, source=text), 0, None
        report.errors.append(f"{path}: internal error while linting: {type(exc).__name__}: {exc}")
    return report, applied, error


def _do_indices(indices: list[int]) -> list[tuple[int, FileReport, int, str | None, str | None]]:
    assert _WORK is not None
    out = []
    for i in indices:
        report, applied, error = _do(_WORK[i])
        fixed = report.source if applied else None
        report.source = None  # the parent has the original text; only fixed text travels
        out.append((i, report, applied, error, fixed))
    return out


def _do_items(items: list[tuple[int, tuple]]) -> list[tuple[int, FileReport, int, str | None, str | None]]:
    out = []
    for i, item in items:
        report, applied, error = _do(item)
        fixed = report.source if applied else None
        report.source = None
        out.append((i, report, applied, error, fixed))
    return out


def _cost(item: tuple) -> float:
    """Estimated work for one file, in bytes of source that rules must look at.

    Only the rules' substring triggers are consulted: the finer pre-filters (patterns, the
    TL501/TL502 ast scan) cost as much as a tenth of the lint and run again in the worker."""
    _, text, language, codes = item[:4]
    if language != "python" or LintOptions(codes=codes).may_parse(text):
        return float(len(text))
    return len(text) * _UNTRIGGERED_WEIGHT


def _ignore_sigint() -> None:
    # Ctrl-C is the parent's to handle; workers just stop when it shuts the pool down.
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def cpu_count() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def _sequential_main(conn, start: int) -> None:
    _ignore_sigint()
    assert _WORK is not None
    for i in range(start, len(_WORK)):
        conn.send(("start", i))
        report, applied, error = _do(_WORK[i])
        fixed = report.source if applied else None
        report.source = None
        conn.send(("done", (i, report, applied, error, fixed)))
    conn.close()


def _sequential_contained(work: list[tuple]):
    """``_do`` over ``work`` in one forked child at a time; the file a child dies on is reported as crashed."""
    global _WORK
    ctx = multiprocessing.get_context("fork")
    _WORK = work
    start = 0
    try:
        while start < len(work):
            receive, send = ctx.Pipe(duplex=False)
            proc = ctx.Process(target=_sequential_main, args=(send, start), daemon=True)
            proc.start()
            send.close()
            current, first = None, start
            try:
                while True:
                    try:
                        kind, payload = receive.recv()
                    except EOFError:
                        break
                    if kind == "start":
                        current = payload
                    else:
                        current = None
                        start = payload[0] + 1
                        yield payload
            except BaseException:
                proc.terminate()
                raise
            finally:
                receive.close()
                proc.join()
            if current is None and start == first and start < len(work):
                current = start  # died before it could say which file: charge the next one, never loop
            if current is not None:  # the child died on this file
                yield (current, *_crashed(work[current][0], proc.exitcode))
                start = current + 1
    finally:
        _WORK = None


def _execute(work: list[tuple], jobs: int | None, contain_crashes: bool = False):
    """Run ``_do`` over ``work``; yields (index, report, applied, error, fixed)."""
    global _WORK
    n = len(work)
    workers = min(jobs or cpu_count(), n)
    costs = [_cost(w) for w in work] if workers > 1 else []
    if workers <= 1 or (jobs is None and (n < PARALLEL_MIN_FILES or sum(costs) < PARALLEL_MIN_COST)):
        if contain_crashes and n and "fork" in multiprocessing.get_all_start_methods():
            yield from _sequential_contained(work)
            return
        for i, item in enumerate(work):
            report, applied, error = _do(item)
            fixed = report.source if applied else None
            yield i, report, applied, error, fixed
        return
    # Largest files first, in small chunks, so no worker is left with a long tail.
    order = sorted(range(n), key=lambda i: costs[i], reverse=True)
    size = max(1, min(32, n // (workers * 6)))
    chunks = [order[k : k + size] for k in range(0, n, size)]
    all_rules()  # import every rule once, before forking
    methods = multiprocessing.get_all_start_methods()
    use_fork = "fork" in methods
    ctx = multiprocessing.get_context("fork" if use_fork else None)
    _WORK = work if use_fork else None
    executor = ProcessPoolExecutor(max_workers=workers, mp_context=ctx, initializer=_ignore_sigint)
    lost: list[int] = []  # files of chunks whose worker died (a crash in native code, the OOM killer)
    try:
        if use_fork:
            futures = [executor.submit(_do_indices, c) for c in chunks]
        else:
            futures = [executor.submit(_do_items, [(i, work[i]) for i in c]) for c in chunks]
        for chunk, fut in zip(chunks, futures):
            try:
                yield from fut.result()
            except BrokenProcessPool:
                lost.extend(chunk)
        # Each lost file again, alone in a process of its own: the one that crashes
        # is reported as such, the others (mere bystanders of the crash) normally.
        for i in sorted(lost):
            yield (i, *_isolated(work[i], ctx))
    except BaseException:
        for proc in list(getattr(executor, "_processes", {}).values()):
            proc.terminate()
        # (Waiting for the executor's thread, which sees the workers gone at once: left
        # running, it may close its wake-up pipe while the interpreter's exit writes to it.)
        executor.shutdown(wait=True, cancel_futures=True)
        raise
    finally:
        _WORK = None
    executor.shutdown(wait=True)


def _isolated_main(conn, item) -> None:
    _ignore_sigint()
    report, applied, error = _do(item)
    fixed = report.source if applied else None
    report.source = None
    conn.send((report, applied, error, fixed))
    conn.close()


def _isolated(item: tuple[str, str, str, frozenset[str] | None, bool, bool], ctx) -> tuple[FileReport, int, str | None, str | None]:
    """``_do(item)`` in a child process; a child that dies becomes an internal error for this file."""
    path = item[0]
    receive, send = ctx.Pipe(duplex=False)
    proc = ctx.Process(target=_isolated_main, args=(send, item), daemon=True)
    proc.start()
    send.close()
    try:
        result = receive.recv()
    except EOFError:
        result = None
    finally:
        receive.close()
        proc.join()
    if result is not None:
        return result
    return _crashed(path, proc.exitcode)


def _crashed(path: str, code: int | None) -> tuple[FileReport, int, None, None]:
    how = f"signal {signal.Signals(-code).name}" if code is not None and code < 0 and -code in signal.valid_signals() else f"exit status {code}"
    report = FileReport(path=path)
    report.errors.append(f"{path}: internal error: the analyzer crashed on this file ({how}); it was not checked (please report this)")
    return report, 0, None, None


def _read(job: Job) -> tuple[bytes | None, str | None]:
    """The file's bytes, or an error line."""
    assert job.abspath is not None
    try:
        with open(job.abspath, "rb") as fh:
            return fh.read(), None
    except FileNotFoundError:
        return None, f"{job.path}: no such file or directory"
    except IsADirectoryError:
        return None, f"{job.path}: is a directory"
    except PermissionError:
        return None, f"{job.path}: permission denied"
    except OSError as exc:
        return None, f"{job.path}: cannot read: {exc.strerror or exc}"


def _encoding_of(data: bytes) -> str:
    try:
        return tokenize.detect_encoding(io.BytesIO(data).readline)[0]
    except SyntaxError:
        return "utf-8"


def run(jobs: Sequence[Job], options: RunOptions = RunOptions(), on_result: Callable[[Result], None] | None = None) -> list[Result]:
    """Lint (and with ``options.fix``, fix) every job. Results come back in job order."""
    results: list[Result | None] = [None] * len(jobs)
    work: list[tuple] = []
    work_meta: list[tuple[int, str | None, str, bytes | None]] = []  # (job index, cache key, encoding, bytes read)
    cache = options.cache
    for idx, job in enumerate(jobs):
        data = None
        if job.source is not None:
            text, key, encoding = job.source, None, "utf-8"
        else:
            data, error = _read(job)
            if data is None:
                results[idx] = Result(job, FileReport(job.path, errors=[error or f"{job.path}: cannot read"]))
                continue
            key = entry_key(data, _cache_language(job), job.codes, _target_key(job)) if cache is not None else None
            if cache is not None and key is not None and job.abspath is not None:
                hit = cache.get(job.abspath, key, job.path)
                if hit is not None and not (
                    options.fix and any(fix_is_applicable(f.fix, options.unsafe_fixes) for f in hit.findings)
                ):
                    # Text only for showing findings; a cached file decoded before.
                    hit.source = _decode_quiet(data, job.path) if hit.findings else None
                    results[idx] = Result(job, hit, from_cache=True)
                    continue
            try:
                text = decode(data, job.path, _size_limit(job))
            except SourceError as exc:
                results[idx] = Result(job, FileReport(job.path, errors=[str(exc)]))
                continue
            encoding = _encoding_of(data)
        work.append((job.path, text, job.language, job.codes, options.fix, options.unsafe_fixes, job.conventions))
        work_meta.append((idx, key, encoding, data if options.write else None))

    for i, report, applied, error, fixed in _execute(work, options.jobs, options.contain_crashes):
        idx, key, encoding, read = work_meta[i]
        job = jobs[idx]
        original = work[i][1]
        if error:
            report.errors.append(error)
        result = Result(job, report, encoding=encoding, fixes_applied=applied)
        if fixed is not None and fixed != original:
            report.source = fixed
            result.original = original
        else:
            report.source = original
        if options.write and result.original is not None and job.abspath is not None:
            try:
                data = fixed.encode(encoding)  # type: ignore[union-attr]
                written = write_if_unchanged(job.abspath, read, data)
            except (OSError, UnicodeEncodeError, LookupError) as exc:
                report.errors.append(f"{job.path}: cannot write the fixed file: {getattr(exc, 'strerror', None) or exc}")
            else:
                if written:
                    if cache is not None:
                        cache.put(job.abspath, entry_key(data, _cache_language(job), job.codes, _target_key(job)), report)
                else:
                    # Someone else's edit wins: report the text as it was read, write nothing.
                    result.warnings.append(f"{job.path}: changed on disk while being fixed; the fixes were not written (run again)")
                    result.report = report = lint_text(original, job.path, job.language, job.codes, _conventions(job.conventions))
                    result.original, result.fixes_applied = None, 0
        elif cache is not None and key is not None and job.abspath is not None and result.original is None:
            cache.put(job.abspath, key, report)
        results[idx] = result

    out = [r for r in results if r is not None]
    if cache is not None:
        cache.save()
    if on_result is not None:
        for r in out:
            on_result(r)
    return out


def write_if_unchanged(path: str, expected: bytes | None, data: bytes) -> bool:
    """Replace ``path``'s content with ``data`` if it still holds ``expected``; False if it changed.

    Atomic (a temporary file in the same directory, renamed over the target), so a
    reader never sees half a file; keeps the file's mode, writes through symlinks.
    The window between the check and the rename is microseconds, not the run.
    """
    target = os.path.realpath(path)
    try:
        with open(target, "rb") as fh:
            st = os.fstat(fh.fileno())
            current = fh.read()
    except FileNotFoundError:
        return False  # deleted meanwhile: do not bring it back
    if expected is not None and current != expected:
        return False
    fd, tmp = tempfile.mkstemp(prefix=f".{os.path.basename(target)}.", suffix=".torchlint-tmp", dir=os.path.dirname(target))
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, stat.S_IMODE(st.st_mode))
        os.replace(tmp, target)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    return True


# A notebook's bytes are mostly its outputs (images, tables): the limit is for its code.
NOTEBOOK_SIZE_FACTOR = 20


def _size_limit(job: Job) -> int | None:
    if job.language != "notebook":
        return job.max_bytes
    from torchlint.sources import MAX_BYTES

    return (MAX_BYTES if job.max_bytes is None else job.max_bytes) * NOTEBOOK_SIZE_FACTOR


def _conventions(conventions: tuple[tuple[str, str], ...] | None) -> dict[str, str] | None:
    """The conventional-imports table with a config's entries added (None: the default table)."""
    return None if conventions is None else {**documents.CONVENTIONAL_IMPORTS, **dict(conventions)}


def _cache_language(job: Job) -> str:
    """The language part of a cache key (a document's conventional imports change its findings)."""
    return job.language if not job.conventions else f"{job.language}:{job.conventions!r}"


def _decode_quiet(data: bytes, path: str) -> str | None:
    try:
        return decode(data, path)
    except SourceError:
        return None


__all__ = ["Job", "Result", "RunOptions", "cpu_count", "fix_text", "lint_document_text", "lint_markdown", "lint_text", "run"]
