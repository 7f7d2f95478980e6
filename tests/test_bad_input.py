"""Bad input gets one clear line and the right exit code, never a traceback, and
never stops the other files from being linted."""

from __future__ import annotations

import builtins
import os
import subprocess
import sys
from pathlib import Path

import libcst as cst
import pytest

from torchlint import cli
from torchlint.rules import all_rules
from torchlint.rules.base import Rule
from torchlint.runner import Job, RunOptions, run as run_jobs

ROOT = Path(__file__).resolve().parent.parent
BAD = "it = iter(loader)\nbatch = it.next()\n"


def run(*args: str, cwd: Path):
    env = {k: v for k, v in os.environ.items() if k not in ("FORCE_COLOR", "NO_COLOR", "TORCHLINT_CACHE_DIR")}
    env["PYTHONPATH"] = str(ROOT)
    p = subprocess.run(
        [sys.executable, "-m", "torchlint", "check", "--no-cache", "--output-format", "concise", *args],
        cwd=cwd, capture_output=True, text=True, env=env, timeout=120,
    )
    assert "Traceback" not in p.stderr and "Traceback" not in p.stdout, p.stderr
    return p


def errors(p) -> list[str]:
    lines = p.stderr.splitlines()
    assert all(line.startswith("error: ") for line in lines), lines
    return [line[len("error: "):] for line in lines]


def flagged(p) -> list[str]:
    return sorted({line.split(":")[0] for line in p.stdout.splitlines() if ": TL" in line})


@pytest.mark.slow
def test_syntax_error_is_a_finding_and_the_rest_is_linted(tmp_path):
    (tmp_path / "broken.py").write_text("def train(model:\n    pass\n")
    (tmp_path / "ok.py").write_text(BAD)
    p = run(".", cwd=tmp_path)
    assert p.returncode == 1  # a finding, not an error
    assert p.stderr == ""
    assert "broken.py:1:10: TL001 SyntaxError: " in p.stdout
    assert flagged(p) == ["broken.py", "ok.py"]


@pytest.mark.slow
@pytest.mark.parametrize(
    "name, data, fragment",
    [
        ("latin.py", b"x = 1\ny = '\xe9t\xe9'\nz = 2\n", "not valid UTF-8 (byte 0xe9"),
        ("first_line.py", b"x = '\xff'\n", ""),
        ("binary.py", b"\x7fELF\x02\x01\x01\x00\x00\x00" + bytes(range(256)), "binary file"),
        ("cookie.py", b"# -*- coding: klingon -*-\nx = 1\n", "klingon"),
        ("utf16.py", "x = 1\n".encode("utf-16"), ""),
    ],
)
def test_unreadable_encodings_are_one_line_errors_exit_2(tmp_path, name, data, fragment):
    (tmp_path / name).write_bytes(data)
    (tmp_path / "ok.py").write_text(BAD)
    p = run(".", cwd=tmp_path)
    assert p.returncode == 2
    assert flagged(p) == ["ok.py"]  # the good file is still linted and reported
    (err,) = errors(p)
    assert err.startswith(f"{name}: ")
    assert fragment in err


@pytest.mark.slow
def test_too_large_file(tmp_path):
    (tmp_path / "huge.py").write_bytes(b"x = 1\n" * 2_000_000)
    p = run("huge.py", cwd=tmp_path)
    assert p.returncode == 2
    (err,) = errors(p)
    assert err.startswith("huge.py: file is too large to lint")


@pytest.mark.slow
def test_missing_paths_and_broken_symlinks(tmp_path):
    (tmp_path / "ok.py").write_text(BAD)
    (tmp_path / "dangling.py").symlink_to(tmp_path / "gone.py")
    p = run("ok.py", "missing.py", "dangling.py", cwd=tmp_path)
    assert p.returncode == 2
    assert flagged(p) == ["ok.py"]
    assert errors(p) == ["missing.py: no such file or directory", "dangling.py: no such file or directory"]


@pytest.mark.slow
def test_empty_and_odd_but_valid_files(tmp_path):
    (tmp_path / "empty.py").write_bytes(b"")
    (tmp_path / "bom.py").write_bytes(b"\xef\xbb\xbf")
    (tmp_path / "crlf.py").write_bytes(b"x = 1\r\ny = 2\r\n")
    (tmp_path / "cr.py").write_bytes(b"x = 1\ry = 2\r")
    (tmp_path / "nonl.py").write_bytes(b"x = 1")
    (tmp_path / "empty.md").write_bytes(b"")
    (tmp_path / "unclosed.md").write_bytes(b"```python\nit = iter(x)\nit.next()\n")
    p = run(".", "empty.md", "unclosed.md", cwd=tmp_path)
    assert p.stderr == ""
    # CommonMark: a fence that is never closed runs to the end of the document, so its code is linted.
    assert "unclosed.md:3:1: TL201 [*] `it.next()` does not exist on Python 3 iterators; use `next(it)`" in p.stdout.splitlines()
    assert flagged(p) == ["unclosed.md"]


@pytest.mark.slow
def test_deep_nesting_is_reported_not_crashed(tmp_path):
    (tmp_path / "deep.py").write_text("x = " + "(" * 3000 + "1" + ")" * 3000 + "\n")
    (tmp_path / "ok.py").write_text(BAD)
    p = run(".", cwd=tmp_path)
    # Deeper than CPython's parser allows: a syntax error (TL001) like any other, not a crash.
    assert p.returncode == 1 and p.stderr == ""
    assert p.stdout.splitlines()[:2] == [
        "deep.py:1:205: TL001 SyntaxError: too many nested parentheses",
        "ok.py:2:9: TL201 [*] `it.next()` does not exist on Python 3 iterators; use `next(it)`",
    ]


@pytest.mark.slow
def test_non_utf8_markdown(tmp_path):
    (tmp_path / "doc.md").write_bytes(b"# Title\n\ncaf\xe9\n```python\nx = 1\n```\n")
    p = run("doc.md", cwd=tmp_path)
    assert p.returncode == 2
    (err,) = errors(p)
    assert err.startswith("doc.md: not valid UTF-8")


@pytest.mark.skipif(os.geteuid() == 0 if hasattr(os, "geteuid") else True, reason="root can read any file")
def test_unreadable_file_real_permissions(tmp_path):
    f = tmp_path / "secret.py"
    f.write_text(BAD)
    f.chmod(0)
    (tmp_path / "ok.py").write_text(BAD)
    try:
        p = run(".", cwd=tmp_path)
    finally:
        f.chmod(0o644)
    assert p.returncode == 2 and flagged(p) == ["ok.py"]
    assert errors(p) == ["secret.py: permission denied"]


def test_unreadable_file(tmp_path, monkeypatch):
    """The same without needing a non-root user: the read itself is refused."""
    secret = tmp_path / "secret.py"
    secret.write_text(BAD)
    ok = tmp_path / "ok.py"
    ok.write_text(BAD)
    real_open = builtins.open

    def guarded(file, *a, **k):
        if str(file).endswith("secret.py"):
            raise PermissionError(13, "Permission denied", str(file))
        return real_open(file, *a, **k)

    monkeypatch.setattr(builtins, "open", guarded)
    results = run_jobs([Job("secret.py", str(secret)), Job("ok.py", str(ok))], RunOptions(jobs=1))
    assert results[0].report.errors == ["secret.py: permission denied"]
    assert [f.code for f in results[1].report.findings] == ["TL201"]


# --- a rule that crashes -----------------------------------------------------------------


class ExplodingRule(Rule):
    """A registered rule with a bug."""

    code = "TL998"
    name = "exploding-rule"
    message = "never"
    triggers = ("boom",)

    def visit_Call(self, node: cst.Call) -> None:
        raise RuntimeError("kaboom")


@pytest.fixture
def exploding_rule(monkeypatch):
    monkeypatch.setitem(all_rules(), "TL998", ExplodingRule)
    yield


@pytest.mark.parametrize("jobs", ["1", "2"])
def test_a_crashing_rule_is_an_error_line_and_everything_else_is_reported(tmp_path, monkeypatch, capsys, exploding_rule, jobs):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "a.py").write_text("boom()\n" + BAD)
    for i in range(8):
        (tmp_path / f"m{i}.py").write_text(BAD * 20)
    code = cli.main(["check", "--no-cache", "--jobs", jobs, "--output-format", "concise", "."])
    out, err = capsys.readouterr()
    assert code == 2
    assert "a.py:3:9: TL201" in out  # the other rule's finding in the same file
    assert sum(1 for line in out.splitlines() if " TL201 " in line) == 1 + 8 * 20
    (line,) = err.splitlines()
    assert line.startswith("error: a.py: rule TL998 (exploding-rule) crashed and was skipped for this file: RuntimeError: kaboom")


def test_crash_errors_are_not_cached(tmp_path, monkeypatch, capsys, exploding_rule):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "a.py").write_text("boom()\n")
    assert cli.main(["check", "."]) == 2
    assert cli.main(["check", "."]) == 2  # still reported from a warm cache
    assert capsys.readouterr().err.count("kaboom") == 2


def test_internal_errors_are_one_line(tmp_path, monkeypatch, capsys):
    import torchlint.runner

    def broken(*a, **k):
        raise ValueError("something unexpected")

    monkeypatch.setattr(torchlint.runner, "run", broken)
    monkeypatch.chdir(tmp_path)
    (tmp_path / "a.py").write_text("x = 1\n")
    monkeypatch.delenv("TORCHLINT_DEBUG", raising=False)
    assert cli.main(["check", "."]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert err.startswith("error: internal error: ValueError: something unexpected")


@pytest.mark.slow
def test_fix_never_leaves_a_corrupted_file(tmp_path):
    """U+2028 in a comment is no line break for Python but is one for str.splitlines():
    a fix must come out right, or not at all (with an error), never garbled."""
    src = "# notes\u2028more notes\nit = iter(loader)\nbatch = it.next()\n"
    f = tmp_path / "a.py"
    f.write_text(src, encoding="utf-8")
    p = run("--fix", "a.py", cwd=tmp_path)
    after = f.read_text(encoding="utf-8")
    if after == src:
        assert p.returncode == 2
        (err,) = errors(p)
        assert err.startswith("a.py: fixes were not applied") or err.startswith("a.py: the fixes produced invalid code")
    else:
        assert after == src.replace("it.next()", "next(it)")
        assert p.returncode == 0
