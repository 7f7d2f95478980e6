"""No input takes down a run or hides other files' results; CPython judges syntax;
``--fix`` never overwrites an edit it did not see.

Inputs that crashed or stalled the process run in a subprocess, under a timeout.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from torchlint.engine import LintOptions, lint_source
from torchlint.output.text import OutputOptions, Style, summary

ROOT = Path(__file__).resolve().parent.parent
BAD = "it = iter(loader)\nbatch = it.next()\n"


def check(*args: str, cwd: Path, timeout: float = 120) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("FORCE_COLOR", "NO_COLOR", "TORCHLINT_CACHE_DIR")}
    env["PYTHONPATH"] = str(ROOT)
    p = subprocess.run(
        [sys.executable, "-m", "torchlint", "check", "--no-cache", "--output-format", "concise", *args],
        cwd=cwd, capture_output=True, text=True, env=env, timeout=timeout,
    )
    assert "Traceback" not in p.stderr + p.stdout, p.stderr
    return p


def flagged(p) -> list[str]:
    return sorted({line.split(":")[0] for line in p.stdout.splitlines() if ": TL" in line})


# --- CPython is the judge of syntax ------------------------------------------------


@pytest.mark.parametrize(
    "source, message, line, col",
    [
        ("it = iter(x)\ns = b'\xc3\xa9'\nbatch = it.next()\n", "SyntaxError: bytes can only contain ASCII literal characters", 2, 4),
        ("it = iter(x)\nx = " + "(" * 300 + "it.next()" + ")" * 300 + "\n", "SyntaxError: too many nested parentheses", 2, 204),
        ("def f():\n    pass\nreturn it.next()\n", "SyntaxError: 'return' outside function", 3, 0),
    ],
)
@pytest.mark.parametrize("codes", [None, frozenset({"TL201"}), frozenset()])
def test_what_cpython_rejects_is_tl001_whatever_is_selected(source, message, line, col, codes):
    with pytest.raises(SyntaxError) as python:
        compile(source, "t.py", "exec")
    report = lint_source(source, "t.py", LintOptions(codes=codes))
    (f,) = report.findings
    assert (f.code, f.message, f.range.line, f.range.column) == ("TL001", message, line, col)
    assert python.value.lineno == line and python.value.offset == col + 1
    assert f.fix is None


@pytest.mark.slow
def test_what_cpython_rejects_is_never_fixed(tmp_path):
    source = "it = iter(x)\ns = b'\xc3\xa9'\nbatch = it.next()\n"
    (tmp_path / "t.py").write_text(source, encoding="utf-8")
    p = check("--fix", "t.py", cwd=tmp_path)
    assert p.returncode == 1
    assert "t.py:2:5: TL001 SyntaxError: bytes can only contain ASCII literal characters" in p.stdout
    assert (tmp_path / "t.py").read_text(encoding="utf-8") == source


# --- nesting that crashed libcst or stalled it -----------------------------------------


@pytest.mark.slow
def test_nesting_beyond_python_or_the_analyzer_never_crashes_the_run(tmp_path):
    # 1,400 parentheses segfaulted libcst; 5,000 chained calls parsed for minutes, then crashed;
    # 1,000 chained calls are valid Python but take libcst seconds and grow quadratically.
    (tmp_path / "parens.py").write_text("it = iter(x)\nx = " + "(" * 1400 + "it.next()" + ")" * 1400 + "\n")
    (tmp_path / "chain.py").write_text("it = iter(x)\nx = it" + ".next()" * 5000 + "\n")
    (tmp_path / "valid_deep.py").write_text("it = iter(x)\nx = it" + ".next()" * 1000 + "\n")
    (tmp_path / "ok.py").write_text(BAD)
    for jobs in ("1", "2"):
        p = check("-j", jobs, ".", cwd=tmp_path, timeout=60)
        assert p.returncode == 2, p.stderr
        assert flagged(p) == ["chain.py", "ok.py", "parens.py"]
        assert "parens.py:2:205: TL001 SyntaxError: too many nested parentheses" in p.stdout
        assert "chain.py:1:1: TL001 too deeply nested for Python to compile" in p.stdout
        assert p.stderr.splitlines() == [
            "error: valid_deep.py: not analysed: nested too deeply for the analyzer "
            "(valid Python, but a statement nests deeper than 999 levels)"
        ]
        assert "All checks passed!" not in p.stdout + p.stderr


@pytest.mark.slow
def test_python_is_judged_at_its_own_recursion_limit_not_ours(tmp_path):
    # torchlint raises the recursion limit for deep CST walks; `python file.py` does not.
    (tmp_path / "ok.py").write_text("x = it" + ".next()" * 400 + "\n")
    (tmp_path / "deep.py").write_text("x = it" + ".next()" * 2500 + "\n")
    p = check("--select", "TL202", ".", cwd=tmp_path, timeout=60)  # in a subprocess: libcst must never see deep.py
    assert p.stdout.splitlines()[0].startswith("deep.py:1:1: TL001 too deeply nested for Python to compile")
    assert flagged(p) == ["deep.py"]
    fresh = subprocess.run([sys.executable, str(tmp_path / "deep.py")], capture_output=True, text=True)
    assert "RecursionError" in fresh.stderr


# --- a crash in one file is that file's ---------------------------------------------


CRASHER = r"""
import os, signal, sys
from torchlint import cli, runner

real = runner.lint_text
def lint_text(text, *args, **kwargs):
    if "CRASH" in text:
        os.kill(os.getpid(), signal.SIGSEGV)  # what libcst's parser did on deep input
    return real(text, *args, **kwargs)
runner.lint_text = lint_text
sys.exit(cli.main(sys.argv[1:]))
"""


@pytest.mark.slow
@pytest.mark.parametrize("jobs", ["1", "2"])
def test_a_worker_crash_is_an_internal_error_for_that_file_only(tmp_path, jobs):
    # -j1 lints in a forked child too: a crash there must not take the run down either.
    (tmp_path / "crash.py").write_text("# CRASH\n" + BAD)
    (tmp_path / "crash_too.py").write_text("# CRASH\n" + BAD)
    for k in range(6):
        (tmp_path / f"ok{k}.py").write_text(BAD + "x = 1\n" * 2000)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    p = subprocess.run(
        [sys.executable, "-c", CRASHER, "check", "--no-cache", "-j", jobs, "--output-format", "concise", "."],
        cwd=tmp_path, capture_output=True, text=True, env=env, timeout=120,
    )
    assert "Traceback" not in p.stderr and "BrokenProcessPool" not in p.stderr
    assert p.returncode == 2
    assert flagged(p) == [f"ok{k}.py" for k in range(6)]
    assert p.stderr.splitlines() == [
        f"error: {name}: internal error: the analyzer crashed on this file (signal SIGSEGV); "
        "it was not checked (please report this)"
        for name in ("crash.py", "crash_too.py")
    ]
    assert "All checks passed!" not in p.stdout


def test_no_all_checks_passed_when_a_file_failed():
    assert summary([], OutputOptions(), style=Style(False)) == ["All checks passed!"]
    (line,) = summary([], OutputOptions(), style=Style(False), errors=1)
    assert "passed" not in line and "1 error" in line


# --- --fix writes only what it read, atomically ----------------------------------------------


def _editing_during_the_run(monkeypatch, target: Path, action):
    """Make the first lint of ``target`` also change it on disk, as an editor or `git checkout` would."""
    from torchlint import runner

    real = runner.lint_text
    # A file, not a variable: the CLI lints in a forked child, whose memory the parent never sees.
    done = target.parent / ".edited"

    def lint_text(text, path, *args, **kwargs):
        if not done.exists() and Path(path).name == target.name:
            done.touch()
            action()
        return real(text, path, *args, **kwargs)

    monkeypatch.setattr(runner, "lint_text", lint_text)


@pytest.mark.parametrize("edit", ["modified", "deleted"])
def test_fix_never_overwrites_an_edit_made_during_the_run(tmp_path, monkeypatch, capsys, edit):
    from torchlint import cli

    target = tmp_path / "train.py"
    target.write_text(BAD)
    (tmp_path / "other.py").write_text(BAD)
    users = "it = iter(loader)\nbatch = it.next()  # the user's edit\n"
    _editing_during_the_run(monkeypatch, target, (lambda: target.write_text(users)) if edit == "modified" else target.unlink)
    monkeypatch.chdir(tmp_path)
    code = cli.main(["check", "--no-cache", "--fix", "--output-format", "concise", "train.py", "other.py"])
    out, err = capsys.readouterr()
    if edit == "modified":
        assert target.read_text() == users
    else:
        assert not target.exists()
    assert err == "warning: train.py: changed on disk while being fixed; the fixes were not written (run again)\n"
    assert (tmp_path / "other.py").read_text() == "it = iter(loader)\nbatch = next(it)\n"
    assert "train.py:2:9: TL201" in out  # still there: it was not fixed
    assert code == 1


def test_fix_writes_atomically_keeping_mode_and_links(tmp_path, monkeypatch):
    from torchlint import cli

    real = tmp_path / "src" / "train.py"
    real.parent.mkdir()
    real.write_bytes(BAD.replace("\n", "\r\n").encode())
    real.chmod(0o751)
    link = tmp_path / "train.py"
    link.symlink_to(real)
    inode = real.stat().st_ino
    monkeypatch.chdir(tmp_path)
    assert cli.main(["check", "--no-cache", "--fix", "--quiet", "train.py"]) == 0
    assert link.is_symlink()
    assert real.read_bytes() == b"it = iter(loader)\r\nbatch = next(it)\r\n"
    assert oct(real.stat().st_mode & 0o7777) == oct(0o751)
    assert real.stat().st_ino != inode  # a new file renamed over the old one
    assert sorted(p.name for p in real.parent.iterdir()) == ["train.py"]  # no temporary file left


# --- line endings -------------------------------------------------------------------------


def _examples(code: str, fixed_only: bool):
    from torchlint.rules import all_rules

    return [c for c in all_rules()[code].INVALID if c.expected_fix is not None or not fixed_only]


@pytest.mark.parametrize("ending", ["\r\n", "\r"])
@pytest.mark.parametrize("code", ["TL101", "TL401"])
def test_fixes_insert_lines_with_the_files_own_ending(code, ending):
    from torchlint.fixes import fix_source

    options = LintOptions(codes=frozenset({code}))
    cases = [c for c in _examples(code, True) if c.expected_fix.count("\n") > c.code.count("\n")]
    assert cases, f"{code} has no example whose fix inserts a line"
    for case in cases:
        source = case.code.replace("\n", ending)
        fixed, applied, _ = fix_source(source, lambda s: lint_source(s, "t.py", options).findings, unsafe=True)
        assert applied
        assert fixed == case.expected_fix.replace("\n", ending)


def test_tl301_triggers_in_cr_only_files():
    options = LintOptions(codes=frozenset({"TL301"}))
    cases = _examples("TL301", False)
    assert cases
    for case in cases:
        lf = [(f.code, f.range, f.message) for f in lint_source(case.code, "t.py", options).findings]
        cr = [(f.code, f.range, f.message) for f in lint_source(case.code.replace("\n", "\r"), "t.py", options).findings]
        assert cr == lf and len(lf) == case.count


# --- a newcomer's environment ---------------------------------------------------------------


def test_the_test_extra_has_what_the_tests_use():
    import re
    import tomllib

    extra = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]["test"]
    names = {re.split(r"[<>=!~\[ ;]", r, maxsplit=1)[0].lower() for r in extra}
    # torch does not depend on numpy; Tensor.numpy() and torch.from_numpy need it.
    uses = [p.name for p in (ROOT / "tests").glob("test_*.py") if re.search(r"\.numpy\(\)|from_numpy\(|^import numpy", p.read_text(), re.M)]
    assert uses
    assert "numpy" in names, f"{uses} use numpy; the test extra lacks it"


def test_ci_runs_the_readmes_commands_in_a_fresh_virtualenv(tmp_path):
    script = (ROOT / ".ci" / "run").read_text()
    assert 'python3 -m venv --clear "$venv"' in script
    # The commands CI runs are the ones the README shows, read from it.
    (awk_line,) = [line for line in script.splitlines() if "awk" in line and "README.md" in line]
    extract = awk_line[awk_line.index("awk") : awk_line.rindex(")")]
    p = subprocess.run(["bash", "-c", extract], cwd=ROOT, capture_output=True, text=True, check=True)
    readme_top = (ROOT / "README.md").read_text().split("```sh\n", 1)[1].split("```", 1)[0]
    assert p.stdout.splitlines() == [line for line in readme_top.splitlines() if line and not line.startswith("#")]
    assert len(p.stdout.splitlines()) == 2 and "pytest" in p.stdout


# --- big files ----------------------------------------------------------------------------------


def test_text_output_splits_a_file_once_not_once_per_finding(monkeypatch):
    # 150,000 findings in a 2 MB file: splitting the file again for each one took minutes.
    import io
    import re

    from torchlint.output import text as text_output

    calls = []

    class Counting:
        def split(self, source):
            calls.append(len(source))
            return re.compile(r"\r\n|\r|\n").split(source)

    monkeypatch.setattr(text_output, "_LINE_BREAK", Counting())
    source = "it = iter(x)\n" + "y = it.next()\n" * 300
    report = lint_source(source, "many.py")
    assert len(report.findings) == 300
    out = io.StringIO()
    text_output.write([report], out, OutputOptions())
    assert out.getvalue().count("TL201") == 600  # header and underline of each
    assert len(calls) == 1


@pytest.mark.slow
def test_files_over_the_size_limit_are_skipped_with_a_message_and_a_setting(tmp_path):
    big = "x = 1\n" * 200_000  # 1.2 MB (no rule triggers: linted at C speed once allowed)
    (tmp_path / "generated.py").write_text(big + "y = x.next\n")
    (tmp_path / "ok.py").write_text(BAD)
    p = check(".", cwd=tmp_path)
    assert p.returncode == 2
    assert flagged(p) == ["ok.py"]
    assert p.stderr.splitlines() == [
        "error: generated.py: file is too large to lint (1.1 MB > 1.0 MB); skipped (the `max-file-size` setting raises the limit)"
    ]
    (tmp_path / "pyproject.toml").write_text('[tool.torchlint]\nmax-file-size = "2MB"\n')
    p = check(".", cwd=tmp_path)
    assert p.returncode == 1 and p.stderr == ""
    assert flagged(p) == ["ok.py"]
    (tmp_path / "pyproject.toml").write_text("[tool.torchlint]\nmax-file-size = 1000\n")
    p = check(".", cwd=tmp_path)
    assert "error: generated.py: file is too large to lint (1.1 MB > 1000 bytes)" in p.stderr  # a plain number: bytes
    assert flagged(p) == ["ok.py"]
    (tmp_path / "pyproject.toml").write_text('[tool.torchlint]\nmax-file-size = "huge"\n')
    p = check(".", cwd=tmp_path)
    assert p.returncode == 2
    assert "`max-file-size` must be a size in bytes or like \"4MB\"" in p.stderr


def test_a_file_just_over_the_limit_is_shown_in_exact_bytes():
    from torchlint.sources import too_large

    # Rounded, both sides would read "1.0 MB".
    assert too_large(1_092_000, 1 << 20).startswith("file is too large to lint (1,092,000 bytes > 1,048,576 bytes)")
    assert too_large(4096, 2048).startswith("file is too large to lint (4 KB > 2 KB)")
