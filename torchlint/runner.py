"""Linting many files: reading, the cache, Markdown, fixes, and all the cores.

The CLI builds a list of :class:`Job` and calls :func:`run`; everything that can
go wrong with one file becomes a one-line entry in its report's ``errors`` so
the other files are still linted.
"""

from __future__ import annotations

import ast
import multiprocessing
import os
import signal
import io
import stat
import tempfile
import tokenize
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field, replace

from torchlint.cache import Cache, entry_key
from torchlint.diagnostics import Edit, FileReport, Finding, Fix, Range, Related
from torchlint.engine import SYNTAX_ERROR_CODE, LintOptions, lint_source
from torchlint.fixes import fix_is_applicable, fix_source
from torchlint.rules import all_rules
from torchlint.sources import CodeBlock, SourceError, blocks_as_module, decode, markdown_blocks, python_lines

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


def _target_key(job: Job) -> str:
    """The release the file is linted for: a change of ``torch-version`` must not reuse cached findings."""
    from torchlint.knowledge.target import target_for_path

    t = target_for_path(job.abspath or job.path)
    return f"{t.torch}/{t.torchvision}"


# --- one file -------------------------------------------------------------------


def lint_text(text: str, path: str, language: str, codes: frozenset[str] | None) -> FileReport:
    options = LintOptions(codes=codes)
    if language == "markdown":
        return lint_markdown(text, path, options)
    return lint_source(text, path, options)


def _without_prompts(block: CodeBlock) -> tuple[CodeBlock, bool]:
    """A ``>>>`` console block as code: prompt lines keep their code, output lines go blank."""
    first = next((line for line in block.lines if line.strip()), "")
    if not first.startswith(">>>"):
        return block, False
    lines = []
    for line in block.lines:
        if line.startswith((">>> ", "... ")):
            lines.append(line[4:])
        else:
            lines.append("")  # bare prompts and the console's output
    return CodeBlock(block.start_line, tuple(lines)), True


def _parses(block: CodeBlock) -> bool:
    try:
        ast.parse("\n".join(block.lines) + "\n")
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return False
    return True


class _MarkdownMap:
    """Maps positions in the blocks' module (same line numbers) back to the document's columns."""

    def __init__(self, text: str, blocks: list[tuple[CodeBlock, bool]]) -> None:
        doc_lines = python_lines(text)
        self.delta: dict[int, int] = {}
        # line -> (first line, one past last line, fixes allowed)
        self.span: dict[int, tuple[int, int, bool]] = {}
        self._indented: dict[int, bool] = {}  # block start -> its fence is indented
        for block, console in blocks:
            end = block.start_line + len(block.lines)
            indented = False
            for k, line in enumerate(block.lines):
                n = block.start_line + k
                orig = doc_lines[n - 1] if n - 1 < len(doc_lines) else ""
                d = len(orig) - len(line) if line and orig.endswith(line) else 0
                self.delta[n] = d
                indented = indented or (d > 0 and not console)
            for n in range(block.start_line, end + 1):
                self.span[n] = (block.start_line, end, not console)
            self._indented[block.start_line] = indented

    def range(self, r: Range) -> Range:
        return Range(r.line, r.column + self.delta.get(r.line, 0), r.end_line, r.end_column + self.delta.get(r.end_line, 0))

    def fix(self, fix: Fix | None) -> Fix | None:
        if fix is None:
            return None
        for e in fix.edits:
            a, b = self.span.get(e.range.line), self.span.get(e.range.end_line)
            if a is None or a != b or not a[2]:
                return None  # outside a code block, across prose, or in a console block
            # Only col 0 of the closing fence line is inside the block.
            if e.range.end_line == a[1] and e.range.end_column != 0:
                return None
            if "\n" in e.content and self._indented.get(a[0]):
                return None  # new lines would need the block's indentation
        return Fix(fix.applicability, fix.message, tuple(Edit(self.range(e.range), e.content) for e in fix.edits))

    def finding(self, f: Finding) -> Finding:
        return replace(
            f,
            range=self.range(f.range),
            fix=self.fix(f.fix),
            related=tuple(Related(self.range(r.range), r.message) for r in f.related),
        )


def _elision_repaired(block: CodeBlock, total_lines: int) -> CodeBlock | None:
    """Tutorials elide bodies (``for x in loader:`` then ``# ...``): give such a block a
    ``...`` body on its closing fence's line (blank in the module), if that makes it parse."""
    fence_line = block.start_line + len(block.lines)
    if fence_line > total_lines:
        return None
    last = next((line for line in reversed(block.lines) if line.strip()), None)
    if last is None:
        return None
    indent = len(last) - len(last.lstrip())
    code_lines = [line for line in block.lines if line.strip() and not line.lstrip().startswith("#")]
    candidates = [indent]
    if code_lines and code_lines[-1].rstrip().endswith(":"):
        header = code_lines[-1]
        candidates.insert(0, len(header) - len(header.lstrip()) + 4)
    for n in candidates:
        repaired = CodeBlock(block.start_line, block.lines + (" " * n + "...",))
        if _parses(repaired):
            return repaired
    return None


def _block_syntax_error(text: str, path: str, block: CodeBlock) -> list[Finding]:
    """TL001 for one block, placed inside it (an error at end of input points past the block)."""
    found = lint_source(blocks_as_module(text, [block]), path, LintOptions(codes=frozenset())).findings
    last = block.start_line + len(block.lines) - 1
    while last > block.start_line and not block.lines[last - block.start_line].strip():
        last -= 1
    out = []
    for f in found:
        if f.range.line > last or f.range.line < block.start_line:
            col = len(block.lines[last - block.start_line]) if block.lines else 0
            f = replace(f, range=Range(last, max(col - 1, 0), last, col))
        out.append(f)
    return out


def lint_markdown(text: str, path: str, options: LintOptions = LintOptions()) -> FileReport:
    """Lint a document's ```python blocks as one module (names flow between blocks).

    If that module does not parse, blocks that only elide a body (``# ...``) get
    a ``...`` body, the blocks that still do not parse on their own get a syntax
    error each, and the rest are linted together (or, if they only fail together,
    one by one), so one broken block does not hide the findings of the others.
    """
    report = FileReport(path=path, source=text)
    pairs = [_without_prompts(b) for b in markdown_blocks(text)]
    if not pairs:
        return report
    blocks = [b for b, _ in pairs]
    mapping = _MarkdownMap(text, pairs)
    inner = lint_source(blocks_as_module(text, blocks), path, options)
    if any(f.code == SYNTAX_ERROR_CODE for f in inner.findings):
        total = len(python_lines(text))
        good: list[CodeBlock] = []
        broken: list[CodeBlock] = []
        for b in blocks:
            if _parses(b):
                good.append(b)
            else:
                repaired = _elision_repaired(b, total)
                (good if repaired is not None else broken).append(repaired or b)
        merged = FileReport(path=path)
        if good:
            rest = lint_source(blocks_as_module(text, good), path, options)
            if any(f.code == SYNTAX_ERROR_CODE for f in rest.findings):
                # Each block parses but they fail together: lint each on its own.
                rest = FileReport(path=path)
                for b in good:
                    one = lint_source(blocks_as_module(text, [b]), path, options)
                    rest.findings.extend(one.findings)
                    rest.errors.extend(one.errors)
            merged.findings.extend(rest.findings)
            merged.errors.extend(rest.errors)
        for b in broken:
            merged.findings.extend(_block_syntax_error(text, path, b))
        inner = merged
    report.findings = sorted((mapping.finding(f) for f in inner.findings), key=lambda f: (f.range, f.code))
    report.errors = list(dict.fromkeys(inner.errors))
    return report


def fix_text(text: str, path: str, language: str, codes: frozenset[str] | None, unsafe: bool) -> tuple[FileReport, int, str | None]:
    """Lint and fix to a fixpoint. Returns (report for the final text, fixes applied, error).

    Fixes that would leave a file that no longer parses are all reverted.
    """
    reports: list[FileReport] = []

    def lint(s: str) -> list[Finding]:
        r = lint_text(s, path, language, codes)
        reports.append(r)
        return r.findings

    fixed, applied, _ = fix_source(text, lint, unsafe)
    first, last = reports[0], reports[-1]
    if applied and any(f.code == SYNTAX_ERROR_CODE for f in last.findings) and not any(
        f.code == SYNTAX_ERROR_CODE for f in first.findings
    ):
        return first, 0, f"{path}: the fixes produced invalid code, so none were applied (please report this)"
    return last, applied, None


# --- many files -------------------------------------------------------------------

# Work for forked workers: set before the pool forks, so nothing is pickled to them.
_WORK: list[tuple[str, str, str, frozenset[str] | None, bool, bool]] | None = None


def _do(item: tuple[str, str, str, frozenset[str] | None, bool, bool]) -> tuple[FileReport, int, str | None]:
    path, text, language, codes, fix, unsafe = item
    try:
        if fix:
            report, applied, error = fix_text(text, path, language, codes, unsafe)
        else:
            report, applied, error = lint_text(text, path, language, codes), 0, None
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


def _cost(item: tuple[str, str, str, frozenset[str] | None, bool, bool]) -> float:
    """Estimated work for one file, in bytes of source that rules must look at."""
    _, text, language, codes, _, _ = item
    if language != "python" or LintOptions(codes=codes).active_rule_classes(text):
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


def _execute(work: list[tuple[str, str, str, frozenset[str] | None, bool, bool]], jobs: int | None):
    """Run ``_do`` over ``work``; yields (index, report, applied, error, fixed)."""
    global _WORK
    n = len(work)
    workers = min(jobs or cpu_count(), n)
    costs = [_cost(w) for w in work] if workers > 1 else []
    if workers <= 1 or (jobs is None and (n < PARALLEL_MIN_FILES or sum(costs) < PARALLEL_MIN_COST)):
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
        executor.shutdown(wait=False, cancel_futures=True)
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
    code = proc.exitcode
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
    work: list[tuple[str, str, str, frozenset[str] | None, bool, bool]] = []
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
            key = entry_key(data, job.language, job.codes, _target_key(job)) if cache is not None else None
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
                text = decode(data, job.path)
            except SourceError as exc:
                results[idx] = Result(job, FileReport(job.path, errors=[str(exc)]))
                continue
            encoding = _encoding_of(data)
        work.append((job.path, text, job.language, job.codes, options.fix, options.unsafe_fixes))
        work_meta.append((idx, key, encoding, data if options.write else None))

    for i, report, applied, error, fixed in _execute(work, options.jobs):
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
                        cache.put(job.abspath, entry_key(data, job.language, job.codes, _target_key(job)), report)
                else:
                    # Someone else's edit wins: report the text as it was read, write nothing.
                    result.warnings.append(f"{job.path}: changed on disk while being fixed; the fixes were not written (run again)")
                    result.report = report = lint_text(original, job.path, job.language, job.codes)
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


def _decode_quiet(data: bytes, path: str) -> str | None:
    try:
        return decode(data, path)
    except SourceError:
        return None


__all__ = ["Job", "Result", "RunOptions", "cpu_count", "fix_text", "lint_markdown", "lint_text", "run"]
