"""The ``torchlint`` command, run as a user runs it: ``python -m torchlint`` in a subprocess."""

from __future__ import annotations

import contextlib
import io
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from torchlint import cli
from torchlint.config import Resolver, posix
from torchlint.discovery import GitIgnore, discover

ROOT = Path(__file__).resolve().parent.parent

BAD = "it = iter(loader)\nbatch = it.next()\n"
FIXED = "it = iter(loader)\nbatch = next(it)\n"
CLEAN = "def add(a, b):\n    return a + b\n"


def run(*args: str, cwd: Path, stdin: str | bytes | None = None, env: dict | None = None, timeout: float = 120):
    e = {k: v for k, v in os.environ.items() if k not in ("FORCE_COLOR", "NO_COLOR", "TORCHLINT_CACHE_DIR", "TORCHLINT_OUTPUT_FORMAT")}
    e["PYTHONPATH"] = str(ROOT)
    e.update(env or {})
    binary = isinstance(stdin, bytes)
    p = subprocess.run(
        [sys.executable, "-m", "torchlint", *args],
        cwd=cwd,
        input=stdin,
        capture_output=True,
        text=not binary,
        env=e,
        timeout=timeout,
    )
    if not binary:
        assert "Traceback" not in p.stderr, p.stderr
    return p


def inproc(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    """``cli.main`` in this process: the same code path without interpreter start-up."""
    out, err = io.StringIO(), io.StringIO()
    old_cwd = os.getcwd()
    saved = {k: os.environ.pop(k) for k in ("FORCE_COLOR", "NO_COLOR", "TORCHLINT_CACHE_DIR", "TORCHLINT_OUTPUT_FORMAT") if k in os.environ}
    os.chdir(cwd)
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = cli.main(list(args))
    finally:
        os.chdir(old_cwd)
        os.environ.update(saved)
    return subprocess.CompletedProcess(list(args), code, out.getvalue(), err.getvalue())


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def concise(*args: str, cwd: Path):
    return inproc("check", "--no-cache", "--output-format", "concise", *args, cwd=cwd)


def flagged_paths(stdout: str) -> list[str]:
    return sorted({line.split(":")[0] for line in stdout.splitlines() if ": TL" in line})


# --- exit codes and the basic output -------------------------------------------------


@pytest.mark.slow
def test_clean_tree_exits_0(tmp_path):
    write(tmp_path / "a.py", CLEAN)
    p = run("check", cwd=tmp_path)
    assert p.returncode == 0
    assert p.stdout == "All checks passed!\n"


@pytest.mark.slow
def test_findings_exit_1_with_ruff_style_text(tmp_path):
    write(tmp_path / "train.py", BAD)
    p = run("check", "--no-cache", cwd=tmp_path)
    assert p.returncode == 1
    assert p.stdout == textwrap.dedent(
        """\
        train.py:2:9: TL201 [*] `it.next()` does not exist on Python 3 iterators; use `next(it)`
          |
        2 | batch = it.next()
          |         ^^^^^^^^^ TL201
          |
          = help: Replace `it.next()` with `next(it)`

        Found 1 error.
        [*] 1 fixable with the --fix option.
        """
    )


@pytest.mark.slow
def test_exit_zero(tmp_path):
    write(tmp_path / "a.py", BAD)
    assert run("check", "--exit-zero", cwd=tmp_path).returncode == 0


def test_default_path_is_the_working_directory(tmp_path):
    write(tmp_path / "pkg" / "a.py", BAD)
    p = concise(cwd=tmp_path)
    assert p.returncode == 1
    assert flagged_paths(p.stdout) == [os.path.join("pkg", "a.py")]


def test_missing_path_is_an_error_but_the_rest_is_linted(tmp_path):
    write(tmp_path / "a.py", BAD)
    p = concise("a.py", "nope.py", "nodir/", cwd=tmp_path)
    assert p.returncode == 2
    assert flagged_paths(p.stdout) == ["a.py"]
    assert p.stderr.splitlines() == [
        "error: nope.py: no such file or directory",
        "error: nodir/: no such file or directory",
    ]


def test_no_arguments_prints_help_and_exits_2(tmp_path):
    p = run(cwd=tmp_path)
    assert p.returncode == 2 and "usage: torchlint" in p.stderr


@pytest.mark.slow
@pytest.mark.parametrize(
    "args, fragment",
    [
        (("check", "--frobnicate"), "unrecognized arguments: --frobnicate"),
        (("check", "--output-format", "xml"), "argument --output-format: invalid choice: 'xml'"),
        (("check", "--select", "TL201,TL999"), "unknown rule code in --select: TL999"),
        (("check", "--ignore", "NOPE"), "unknown rule code in --ignore: NOPE"),
        (("check", "--extension", "txt"), "--extension 'txt': expected EXT:LANG"),
        (("check", "--extension", "txt:latex"), "expected EXT:LANG"),
        (("check", "--jobs", "0"), "--jobs must be at least 1"),
        (("frob",), "invalid choice: 'frob'"),
        (("rule", "TL999"), "unknown rule 'TL999'"),
        (("check", "-", "a.py"), "'-' (stdin) cannot be combined with other paths"),
    ],
)
def test_usage_errors_are_one_line_and_exit_2(tmp_path, args, fragment):
    p = run(*args, cwd=tmp_path)
    assert p.returncode == 2
    assert p.stderr.count("\n") == 1 and p.stderr.startswith("error: "), p.stderr
    assert fragment in p.stderr
    assert p.stdout == ""


@pytest.mark.slow
def test_bad_output_format_from_the_environment(tmp_path):
    p = run("check", cwd=tmp_path, env={"TORCHLINT_OUTPUT_FORMAT": "xml"})
    assert p.returncode == 2
    assert p.stderr.startswith("error: TORCHLINT_OUTPUT_FORMAT='xml': expected one of") and p.stderr.count("\n") == 1
    write(tmp_path / "a.py", BAD)
    p = run("check", "--no-cache", cwd=tmp_path, env={"TORCHLINT_OUTPUT_FORMAT": "concise"})
    assert p.stdout.startswith("a.py:2:9: TL201") and p.stdout.count("|") == 0


@pytest.mark.slow
def test_quiet_and_silent(tmp_path):
    write(tmp_path / "a.py", BAD)
    p = run("check", "--no-cache", "-q", "--output-format", "concise", cwd=tmp_path)
    assert p.returncode == 1 and p.stdout.splitlines() == [p.stdout.splitlines()[0]]
    assert p.stdout.startswith("a.py:2:9: TL201")
    p = run("check", "--no-cache", "--silent", cwd=tmp_path)
    assert p.returncode == 1 and p.stdout == ""
    write(tmp_path / "a.py", CLEAN)
    assert run("check", "-q", cwd=tmp_path).stdout == ""


@pytest.mark.slow
def test_version(tmp_path):
    import torchlint

    lines = run("version", cwd=tmp_path).stdout.splitlines()
    assert lines[0] == f"torchlint {torchlint.__version__}"
    # The releases the knowledge base was generated from.
    assert any(line.startswith("knows torch ") and "2.13" in line for line in lines[1:])
    assert run("--version", cwd=tmp_path).stdout == f"torchlint {torchlint.__version__}\n"


@pytest.mark.slow
def test_output_file(tmp_path):
    write(tmp_path / "a.py", BAD)
    p = run("check", "--no-cache", "--output-format", "json", "-o", "out.json", cwd=tmp_path)
    assert p.returncode == 1 and p.stdout == ""
    assert json.loads((tmp_path / "out.json").read_text())[0]["code"] == "TL201"


# --- rule selection ------------------------------------------------------------------------


def test_select_ignore_extend_select(tmp_path):
    write(tmp_path / "a.py", BAD + "def f(:\n")
    write(tmp_path / "b.py", BAD)
    assert concise("b.py", "--select", "TL202", cwd=tmp_path).returncode == 0
    assert concise("b.py", "--ignore", "TL2", cwd=tmp_path).returncode == 0
    assert concise("b.py", "--select", "TL202", "--extend-select", "TL201", cwd=tmp_path).returncode == 1
    # A syntax error is always reported.
    p = concise("a.py", "--select", "TL202", cwd=tmp_path)
    assert p.returncode == 1 and " TL001 " in p.stdout


# --- fixes --------------------------------------------------------------------------------------


@pytest.mark.slow
def test_fix_writes_and_reports(tmp_path):
    f = write(tmp_path / "a.py", BAD)
    p = run("check", "--no-cache", "--fix", cwd=tmp_path)
    assert p.returncode == 0, p.stdout
    assert f.read_text() == FIXED
    assert p.stdout == "Found 1 error (1 fixed, 0 remaining).\n"
    p = run("check", "--no-cache", "--fix", cwd=tmp_path)
    assert p.returncode == 0 and p.stdout == "All checks passed!\n"


@pytest.mark.slow
def test_fix_keeps_remaining_findings_and_exit_1(tmp_path):
    f = write(tmp_path / "a.py", BAD)
    write(tmp_path / "b.py", "def f(:\n")
    p = run("check", "--no-cache", "--fix", "--output-format", "concise", cwd=tmp_path)
    assert p.returncode == 1
    assert f.read_text() == FIXED
    assert "Found 2 errors (1 fixed, 1 remaining)." in p.stdout


@pytest.mark.slow
def test_fix_preserves_encoding_bom_and_line_endings(tmp_path):
    f = tmp_path / "a.py"
    f.write_bytes(b"\xef\xbb\xbf# caf\xc3\xa9\r\nit = iter(l)\r\nb = it.next()\r\n")
    latin = tmp_path / "b.py"
    latin.write_bytes(b"# -*- coding: latin-1 -*-\n# caf\xe9\nit = iter(l)\nb = it.next()\n")
    p = run("check", "--no-cache", "--fix", cwd=tmp_path)
    assert p.returncode == 0, p.stdout + p.stderr
    assert f.read_bytes() == b"\xef\xbb\xbf# caf\xc3\xa9\r\nit = iter(l)\r\nb = next(it)\r\n"
    assert latin.read_bytes() == b"# -*- coding: latin-1 -*-\n# caf\xe9\nit = iter(l)\nb = next(it)\n"


@pytest.mark.slow
def test_diff_shows_and_does_not_write(tmp_path):
    f = write(tmp_path / "a.py", BAD)
    p = run("check", "--no-cache", "--diff", cwd=tmp_path)
    assert p.returncode == 1
    assert f.read_text() == BAD
    assert p.stdout == textwrap.dedent(
        """\
        --- a.py
        +++ a.py
        @@ -1,2 +1,2 @@
         it = iter(loader)
        -batch = it.next()
        +batch = next(it)
        """
    )
    assert p.stderr == "Would fix 1 error.\n"
    write(tmp_path / "a.py", CLEAN)
    p = run("check", "--no-cache", "--diff", cwd=tmp_path)
    assert p.returncode == 0 and p.stdout == ""


@pytest.mark.slow
def test_diff_marks_a_missing_final_newline(tmp_path):
    write(tmp_path / "a.py", BAD.rstrip("\n"))
    p = run("check", "--no-cache", "--diff", cwd=tmp_path)
    assert "+batch = next(it)\n\\ No newline at end of file\n" in p.stdout


@pytest.mark.slow
def test_add_noqa(tmp_path):
    f = write(tmp_path / "a.py", BAD + "it2 = iter(x)\nit2.next()  # noqa: TL999\n")
    write(tmp_path / "b.py", "def f(:\n")  # a syntax error cannot be suppressed
    p = run("check", "--no-cache", "--add-noqa", cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    assert p.stderr == "Added 2 noqa directives.\n"
    assert f.read_text() == "it = iter(loader)\nbatch = it.next()  # noqa: TL201\nit2 = iter(x)\nit2.next()  # noqa: TL999, TL201\n"
    p = run("check", "--no-cache", "--output-format", "concise", cwd=tmp_path)
    assert p.returncode == 1 and " TL201 " not in p.stdout and " TL001 " in p.stdout
    assert run("check", "--add-noqa", "--fix", cwd=tmp_path).returncode == 2


# --- stdin ------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_stdin(tmp_path):
    p = run("check", "--output-format", "concise", "-", cwd=tmp_path, stdin=BAD)
    assert p.returncode == 1 and p.stdout.startswith("-:2:9: TL201")
    p = run("check", "--output-format", "concise", "--stdin-filename", "src/train.py", "-", cwd=tmp_path, stdin=BAD)
    assert p.stdout.startswith("src/train.py:2:9: TL201")


@pytest.mark.slow
def test_stdin_fix_prints_the_fixed_code(tmp_path):
    p = run("check", "--fix", "--stdin-filename", "t.py", "-", cwd=tmp_path, stdin=BAD)
    assert p.returncode == 0
    assert p.stdout == FIXED
    # Without a fix (`next` is rebound here), the code comes back unchanged and the finding goes to stderr.
    unfixable = "next = None\nit = iter(loader)\nbatch = it.next()\n"
    p = run("check", "--fix", "--stdin-filename", "t.py", "-", cwd=tmp_path, stdin=unfixable)
    assert p.returncode == 1
    assert p.stdout == unfixable
    assert p.stderr.startswith("t.py:3:9: TL201 ")


@pytest.mark.slow
def test_stdin_diff(tmp_path):
    p = run("check", "--diff", "-", cwd=tmp_path, stdin=BAD)
    assert p.returncode == 1 and "+batch = next(it)" in p.stdout


@pytest.mark.slow
def test_stdin_markdown_by_filename(tmp_path):
    doc = "# Title\n\n```python\nit = iter(l)\nx = it.next()\n```\n"
    p = run("check", "--output-format", "concise", "--ignore", "TL002", "--stdin-filename", "README.md", "-", cwd=tmp_path, stdin=doc)
    assert p.returncode == 1 and p.stdout.startswith("README.md:5:5: TL201")


@pytest.mark.slow
def test_stdin_force_exclude(tmp_path):
    write(tmp_path / "pyproject.toml", '[tool.torchlint]\nextend-exclude = ["gen"]\n')
    p = run("check", "--force-exclude", "--stdin-filename", "gen/a.py", "-", cwd=tmp_path, stdin=BAD)
    assert p.returncode == 0 and p.stdout == ""
    p = run("check", "--force-exclude", "--fix", "--stdin-filename", "gen/a.py", "-", cwd=tmp_path, stdin=BAD)
    assert p.returncode == 0 and p.stdout == BAD


@pytest.mark.slow
def test_stdin_not_utf8(tmp_path):
    p = run("check", "-", cwd=tmp_path, stdin=b"x = '\xff'\n")
    assert p.returncode == 2
    err = p.stderr.decode()
    assert err.startswith("error: -: ") and err.count("\n") == 1
    assert "UTF-8" in err or "encoding" in err


# --- statistics ----------------------------------------------------------------------------------------


def test_statistics(tmp_path):
    write(tmp_path / "a.py", BAD + "it2 = iter(x)\nit2.next()\n")
    write(tmp_path / "b.py", "def f(:\n")
    p = inproc("check", "--no-cache", "--statistics", cwd=tmp_path)
    assert p.returncode == 1
    assert p.stdout.splitlines()[:2] == ["2\tTL201\t[*] iterator-next-method", "1\tTL001\t[ ] syntax-error"]
    p = inproc("check", "--no-cache", "--statistics", "--output-format", "json", cwd=tmp_path)
    assert json.loads(p.stdout) == [
        {"code": "TL201", "name": "iterator-next-method", "count": 2, "fixable": True},
        {"code": "TL001", "name": "syntax-error", "count": 1, "fixable": False},
    ]


# --- rule, rules ---------------------------------------------------------------------------------------------


def test_rule_by_code_and_by_name(tmp_path):
    from torchlint.rules import get_rule

    doc = get_rule("TL201").documentation()
    for key in ("TL201", "tl201", "iterator-next-method"):
        p = inproc("rule", key, cwd=tmp_path)
        assert p.returncode == 0
        assert p.stdout.startswith("# iterator-next-method (TL201)\n")
        assert doc in p.stdout
    data = json.loads(inproc("rule", "TL201", "--output-format", "json", cwd=tmp_path).stdout)
    assert data["code"] == "TL201" and data["documentation"] == doc and data["fixable"] is True


@pytest.mark.slow
def test_rules_lists_every_rule(tmp_path):
    from torchlint.rules import all_rules

    p = run("rules", cwd=tmp_path)
    assert p.returncode == 0
    lines = p.stdout.splitlines()
    assert [line.split()[0] for line in lines] == list(all_rules())
    tl201 = next(line for line in lines if line.startswith("TL201"))
    assert "iterator-next-method" in tl201 and "[*]" in tl201
    data = json.loads(inproc("rules", "--output-format", "json", cwd=tmp_path).stdout)
    assert [d["code"] for d in data] == list(all_rules())
    assert {"code", "name", "fixable", "summary"} <= set(data[0])


# --- discovery -----------------------------------------------------------------------------------------------


def show_files(tmp_path: Path, *args: str, errors: bool = False) -> list[str]:
    """The files ``check`` would lint; ``errors``: the listing also reports errors (exit 2)."""
    p = inproc("check", "--show-files", *args, cwd=tmp_path)
    assert p.returncode == (2 if errors else 0), p.stderr
    return p.stdout.split()


def test_walk_skips_default_excludes_and_virtualenvs(tmp_path):
    for rel in (
        "src/a.py",
        "src/b.pyi",
        "src/notes.md",
        "src/data.txt",
        ".git/hooks/x.py",
        ".venv/lib/x.py",
        "venv/x.py",
        "build/x.py",
        "dist/x.py",
        "node_modules/p/x.py",
        "src/__pycache__/x.py",
        ".tox/x.py",
        ".nox/x.py",
        "lib/site-packages/x.py",
        ".torchlint_cache/x.py",
        "myenv/lib/x.py",
    ):
        write(tmp_path / rel, CLEAN)
    write(tmp_path / "myenv" / "pyvenv.cfg", "home = /usr\n")
    assert show_files(tmp_path) == [os.path.join("src", "a.py"), os.path.join("src", "b.pyi")]


def test_explicit_paths_are_linted_even_if_excluded_unless_force_exclude(tmp_path):
    write(tmp_path / "pyproject.toml", '[tool.torchlint]\nextend-exclude = ["fixtures"]\n')
    write(tmp_path / "fixtures" / "sub" / "f.py", BAD)
    write(tmp_path / "build" / "b.py", BAD)
    assert show_files(tmp_path) == []
    assert show_files(tmp_path, "fixtures") == [os.path.join("fixtures", "sub", "f.py")]
    assert show_files(tmp_path, "fixtures/sub/f.py", "build/b.py") == [
        os.path.join("build", "b.py"),
        os.path.join("fixtures", "sub", "f.py"),
    ]
    # pre-commit names files and passes --force-exclude: excluded directories above count.
    assert show_files(tmp_path, "--force-exclude", "fixtures/sub/f.py", "build/b.py", "fixtures") == []


def test_markdown_only_when_named_or_mapped(tmp_path):
    write(tmp_path / "doc.md", "```python\nl = [1]\nit = iter(l)\nit.next()\n```\n")
    write(tmp_path / "tut.txt", "```python\nl = [1]\nit = iter(l)\nit.next()\n```\n")
    assert show_files(tmp_path) == []
    assert show_files(tmp_path, "doc.md") == ["doc.md"]
    assert show_files(tmp_path, "--extension", "md:markdown") == ["doc.md"]
    assert show_files(tmp_path, "--extension", "txt:markdown,md:markdown") == ["doc.md", "tut.txt"]
    p = concise("--extension", "txt:markdown", "tut.txt", cwd=tmp_path)
    assert p.returncode == 1 and p.stdout.startswith("tut.txt:4:1: TL201")


def test_extension_mapping_from_config(tmp_path):
    write(tmp_path / "pyproject.toml", '[tool.torchlint]\nextension = {txt = "markdown"}\n')
    write(tmp_path / "tut.txt", "```python\nit = iter(l)\nit.next()\n```\n")
    assert show_files(tmp_path) == ["tut.txt"]


def test_gitignore_in_a_repository(tmp_path):
    (tmp_path / ".git").mkdir()
    write(
        tmp_path / ".gitignore",
        textwrap.dedent(
            """\
            # comment
            /top_only.py
            generated/
            *_pb2.py
            docs/**/auto_*.py
            logs
            !keep_pb2.py
            \\#hash.py
            trailing.py   \n"""
        ),
    )
    files = [
        "top_only.py",
        "sub/top_only.py",
        "generated/g.py",
        "sub/generated/g.py",
        "a_pb2.py",
        "sub/b_pb2.py",
        "keep_pb2.py",
        "docs/x/y/auto_z.py",
        "docs/auto_w.py",
        "docs/manual.py",
        "logs/l.py",
        "#hash.py",
        "trailing.py",
        "ok.py",
    ]
    for rel in files:
        write(tmp_path / rel, CLEAN)
    # A nested .gitignore adds patterns and can re-include.
    write(tmp_path / "sub" / ".gitignore", "!top_only.py\nlocal.py\n")
    write(tmp_path / "sub" / "local.py", CLEAN)
    write(tmp_path / "other" / "local.py", CLEAN)
    assert show_files(tmp_path) == sorted(
        os.path.join(*p.split("/"))
        for p in ["sub/top_only.py", "keep_pb2.py", "docs/manual.py", "ok.py", "other/local.py"]
    )
    assert "a_pb2.py" in show_files(tmp_path, "--no-respect-gitignore")
    # Named explicitly: linted anyway, unless --force-exclude.
    assert show_files(tmp_path, "generated/g.py") == [os.path.join("generated", "g.py")]
    assert show_files(tmp_path, "--force-exclude", "generated/g.py", "a_pb2.py", "ok.py") == ["ok.py"]


def test_gitignore_of_a_parent_directory_applies_to_a_subdirectory_run(tmp_path):
    (tmp_path / ".git").mkdir()
    write(tmp_path / ".gitignore", "gen_*.py\n")
    write(tmp_path / "pkg" / "gen_a.py", CLEAN)
    write(tmp_path / "pkg" / "a.py", CLEAN)
    p = inproc("check", "--show-files", "pkg", cwd=tmp_path)
    assert p.stdout.split() == [os.path.join("pkg", "a.py")]
    p = inproc("check", "--show-files", ".", cwd=tmp_path / "pkg")
    assert p.stdout.split() == ["a.py"]


@pytest.mark.parametrize(
    "pattern, path, is_dir, expected",
    [
        ("foo", "foo", False, True),
        ("foo", "a/b/foo", True, True),
        ("/foo", "a/foo", False, None),
        ("/foo", "foo", False, True),
        ("foo/", "foo", False, None),
        ("foo/", "a/foo", True, True),
        ("a/b", "a/b", False, True),
        ("a/b", "x/a/b", False, None),  # a slash in the middle anchors it
        ("*.py", "a/b/c.py", False, True),
        ("a/*.py", "a/b/c.py", False, None),
        ("**/foo", "x/y/foo", False, True),
        ("a/**", "a/x/y", False, True),
        ("a/**/b", "a/b", True, True),
        ("a/**/b", "a/x/y/b", True, True),
        ("f[0-9].py", "f7.py", False, True),
        ("f?.py", "f77.py", False, None),
        ("\\!x", "!x", False, True),
        ("  ", "x", False, None),
    ],
)
def test_gitignore_patterns(pattern, path, is_dir, expected):
    gi = GitIgnore("/r", pattern + "\n")
    assert gi.match("/r/" + path, is_dir) is expected


def test_gitignore_last_match_wins_and_negation():
    gi = GitIgnore("/r", "*.log\n!keep.log\nkeep.log\n")
    assert gi.match("/r/keep.log", False) is True
    gi = GitIgnore("/r", "*.log\n!keep.log\n")
    assert gi.match("/r/keep.log", False) is False
    assert gi.match("/r/x.log", False) is True


def test_discover_in_process_sorted_and_unique(tmp_path):
    write(tmp_path / "b.py", CLEAN)
    write(tmp_path / "a" / "c.py", CLEAN)
    r = Resolver(cwd=str(tmp_path))
    os.chdir(tmp_path)
    found = discover([".", "b.py", str(tmp_path / "b.py")], r)
    assert [f.path for f in found.files] == [os.path.join("a", "c.py"), "b.py"]
    assert all(f.abspath == posix(tmp_path / f.path) for f in found.files)


# --- markdown ------------------------------------------------------------------------------------------------


def test_markdown_positions_are_the_documents(tmp_path):
    doc = textwrap.dedent(
        """\
        # Training

        Load the data:

        ```python
        it = iter(loader)
        ```

        1. Then, in a list:

           ```py
           images, labels = it.next()
           ```

        ```bash
        pip install torch
        ```

        ```pycon
        >>> it2 = iter(loader)
        >>> it2.next()
        tensor([1])
        ```
        """
    )
    write(tmp_path / "README.md", doc)
    p = concise("README.md", cwd=tmp_path)
    assert p.returncode == 1
    assert [line.split(" ")[0] for line in p.stdout.splitlines() if "TL201" in line] == [
        "README.md:12:21:",
        "README.md:21:5:",
    ]


def test_one_broken_markdown_block_does_not_hide_the_others(tmp_path):
    doc = textwrap.dedent(
        """\
        ```python
        import torch
        it = iter(loader)
        ```

        ```python
        for x in loader
            print(x)
        ```

        ```python
        batch = it.next()
        ```

        ```python
        with torch.no_grad():
            # ... your evaluation here
        ```
        """
    )
    write(tmp_path / "t.md", doc)
    p = concise("t.md", cwd=tmp_path)
    assert p.returncode == 1
    codes = [(line.split(":")[1], line.split(" ")[1]) for line in p.stdout.splitlines() if ": TL" in line]
    # The broken block gets its syntax error; the elided `# ...` body is not one. `loader` is
    # used before the broken block, so that block cannot have defined it.
    assert codes == [("3", "TL002"), ("7", "TL001"), ("12", "TL201")]


@pytest.mark.slow
def test_markdown_fix(tmp_path):
    doc = "Intro\n\n```python\nit = iter(loader)\nbatch = it.next()\n```\n\n- item\n\n  ```python\n  it = iter(l)\n  b = it.next()\n  ```\n"
    f = write(tmp_path / "t.md", doc)
    p = run("check", "--no-cache", "--fix", "--ignore", "TL002", "t.md", cwd=tmp_path)
    assert p.returncode == 0, p.stdout
    assert f.read_text() == doc.replace("it.next()", "next(it)")


# --- cache -----------------------------------------------------------------------------------------------------


def cache_file(root: Path) -> Path:
    files = list((root / ".torchlint_cache").glob("results-*.json"))
    assert len(files) == 1, files
    return files[0]


@pytest.mark.slow
def test_cache_is_written_once_and_reused(tmp_path):
    write(tmp_path / "a.py", BAD)
    write(tmp_path / "b.py", CLEAN)
    first = run("check", "--output-format", "json", cwd=tmp_path)
    assert first.returncode == 1
    cf = cache_file(tmp_path)
    assert (tmp_path / ".torchlint_cache" / ".gitignore").read_text().splitlines()[-1] == "*"
    # Prove the second run reads the cache: doctor the cached finding's message.
    doc = json.loads(cf.read_text())
    key = posix(tmp_path / "a.py")
    doc["entries"][key][1][0]["message"] = "from the cache"
    cf.write_text(json.dumps(doc))
    second = run("check", "--output-format", "json", cwd=tmp_path)
    assert json.loads(second.stdout)[0]["message"] == "from the cache"
    # --no-cache ignores it; a changed file is linted again.
    assert json.loads(run("check", "--no-cache", "--output-format", "json", cwd=tmp_path).stdout)[0]["message"] != "from the cache"
    write(tmp_path / "a.py", BAD + "\n")
    assert json.loads(run("check", "--output-format", "json", cwd=tmp_path).stdout)[0]["message"] != "from the cache"


@pytest.mark.slow
def test_cache_depends_on_the_selection(tmp_path):
    write(tmp_path / "a.py", BAD)
    assert run("check", cwd=tmp_path).returncode == 1
    assert run("check", "--ignore", "TL201", cwd=tmp_path).returncode == 0
    assert run("check", cwd=tmp_path).returncode == 1


@pytest.mark.slow
@pytest.mark.parametrize("garbage", [b"", b"{not json", b"[]", b'{"fingerprint": 1, "entries": []}', b"\x00\xff" * 10])
def test_corrupt_cache_is_ignored(tmp_path, garbage):
    write(tmp_path / "a.py", BAD)
    run("check", cwd=tmp_path)
    cf = cache_file(tmp_path)
    cf.write_bytes(garbage)
    p = run("check", "--output-format", "concise", cwd=tmp_path)
    assert p.returncode == 1 and p.stdout.startswith("a.py:2:9: TL201") and p.stderr == ""
    # and it is rewritten in good order
    assert json.loads(cache_file(tmp_path).read_text())["entries"]


@pytest.mark.slow
def test_cache_corrupt_entry_is_ignored(tmp_path):
    write(tmp_path / "a.py", BAD)
    run("check", cwd=tmp_path)
    cf = cache_file(tmp_path)
    doc = json.loads(cf.read_text())
    entry = doc["entries"][posix(tmp_path / "a.py")]
    entry[1] = [{"code": "TL201"}]  # truncated finding
    cf.write_text(json.dumps(doc))
    p = run("check", "--output-format", "concise", cwd=tmp_path)
    assert p.returncode == 1 and p.stdout.startswith("a.py:2:9: TL201")


@pytest.mark.slow
def test_no_cache_and_cache_dir(tmp_path):
    write(tmp_path / "a.py", BAD)
    run("check", "--no-cache", cwd=tmp_path)
    assert not (tmp_path / ".torchlint_cache").exists()
    run("check", "--cache-dir", "elsewhere", cwd=tmp_path)
    assert list((tmp_path / "elsewhere").glob("results-*.json"))
    run("check", cwd=tmp_path, env={"TORCHLINT_CACHE_DIR": str(tmp_path / "env_cache")})
    assert list((tmp_path / "env_cache").glob("results-*.json"))


@pytest.mark.slow
def test_cache_lives_at_the_project_root(tmp_path):
    write(tmp_path / "pyproject.toml", "[tool.torchlint]\n")
    write(tmp_path / "pkg" / "a.py", BAD)
    run("check", ".", cwd=tmp_path / "pkg")
    assert (tmp_path / ".torchlint_cache").is_dir()
    assert not (tmp_path / "pkg" / ".torchlint_cache").exists()


@pytest.mark.slow
def test_read_only_cache_location_is_not_an_error(tmp_path):
    write(tmp_path / "a.py", BAD)
    (tmp_path / "blocker").write_text("a file where the cache directory would go")
    p = run("check", "--cache-dir", "blocker/cache", "--output-format", "concise", cwd=tmp_path)
    assert p.returncode == 1 and p.stderr == ""


# --- many files, all cores ----------------------------------------------------------------------------------------


@pytest.mark.slow
def test_parallel_and_serial_agree(tmp_path):
    for i in range(40):
        body = BAD if i % 3 == 0 else ("def f(:\n" if i % 7 == 0 else CLEAN * (i % 5 + 1))
        write(tmp_path / f"d{i % 4}" / f"m{i}.py", body)
    one = run("check", "--no-cache", "--jobs", "1", "--output-format", "json", cwd=tmp_path)
    two = run("check", "--no-cache", "--jobs", "2", "--output-format", "json", cwd=tmp_path)
    auto = run("check", "--no-cache", "--output-format", "json", cwd=tmp_path)
    assert one.returncode == two.returncode == auto.returncode == 1
    assert one.stdout == two.stdout == auto.stdout
    # 14 files with .next() (i % 3 == 0) and 4 syntax errors (7, 14, 28, 35).
    assert len(json.loads(one.stdout)) == 18


def _children(pid: int) -> list[str]:
    try:
        return Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except OSError:
        return []


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/task").exists(), reason="needs Linux /proc to see the worker processes")
def test_ctrl_c_exits_130_quietly(tmp_path):
    big = "import torchvision\n" + "".join(f"def f{i}(a):\n    return torchvision.ops.nms(a, a, {i})\n" for i in range(400))
    for i in range(150):  # far more than a few seconds of work
        write(tmp_path / f"m{i}.py", big)
    e = {k: v for k, v in os.environ.items() if k != "FORCE_COLOR"}
    e["PYTHONPATH"] = str(ROOT)
    proc = subprocess.Popen(
        [sys.executable, "-m", "torchlint", "check", "--no-cache", "."],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=e,
    )
    # Interrupt in the middle of the work: once the worker processes exist.
    # (A signal during the interpreter's own start-up, before Python handles
    # SIGINT at all, just kills the process; that is not what this tests.)
    deadline = time.monotonic() + 120
    while not _children(proc.pid) and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert proc.poll() is None, "finished before it could be interrupted"
    time.sleep(0.3)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, (out, err)
    assert err == "" and out == ""


# --- color ------------------------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_color(tmp_path):
    write(tmp_path / "a.py", BAD)
    assert "\x1b[" not in run("check", "--no-cache", cwd=tmp_path).stdout  # not a TTY
    assert "\x1b[" in run("check", "--no-cache", cwd=tmp_path, env={"FORCE_COLOR": "1"}).stdout
    assert "\x1b[" not in run("check", "--no-cache", cwd=tmp_path, env={"FORCE_COLOR": "1", "NO_COLOR": "1"}).stdout
    # Machine formats are never colored.
    assert "\x1b[" not in run("check", "--no-cache", "--output-format", "json", cwd=tmp_path, env={"FORCE_COLOR": "1"}).stdout


# --- room for subcommands and check extensions owned elsewhere ----------------------------------------------------


def test_external_subcommand_and_check_extension(tmp_path, monkeypatch, capsys):
    pkg = tmp_path / "ext_pkg"
    write(pkg / "__init__.py", "")
    write(
        pkg / "sub.py",
        textwrap.dedent(
            """\
            def configure(parser):
                parser.add_argument("--port", type=int, default=0)

            def run(args):
                print(f"serving on {args.port}")
                return 0
            """
        ),
    )
    write(
        pkg / "confirm.py",
        textwrap.dedent(
            """\
            from torchlint.diagnostics import Confirmation

            def configure_check(parser):
                parser.add_argument("--confirm", action="store_true")

            def after_check(args, reports):
                if not args.confirm:
                    return []
                for r in reports:
                    r.findings = [f.with_confirmation(Confirmation("confirmed", "AttributeError: no attribute 'next'")) for f in r.findings]
                return ["a.py: sandbox note"]
            """
        ),
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(cli, "EXTERNAL_COMMANDS", {"serve": ("serve things", "ext_pkg.sub"), "ghost": ("absent", "ext_pkg.nope")})
    monkeypatch.setattr(cli, "CHECK_EXTENSIONS", ("ext_pkg.confirm", "ext_pkg.missing"))
    monkeypatch.chdir(tmp_path)
    write(tmp_path / "a.py", BAD)

    assert cli.main(["serve", "--port", "7"]) == 0
    assert capsys.readouterr().out == "serving on 7\n"
    assert cli.main(["ghost"]) == 2  # a module that does not exist is no subcommand
    assert "invalid choice: 'ghost'" in capsys.readouterr().err

    assert cli.main(["check", "--no-cache", "--output-format", "concise", "a.py"]) == 1
    assert "runtime" not in capsys.readouterr().out
    assert cli.main(["check", "--no-cache", "--confirm", "--output-format", "concise", "a.py"]) == 2
    captured = capsys.readouterr()
    assert "= runtime: confirmed at runtime: AttributeError: no attribute 'next'" in captured.out
    assert captured.err == "error: a.py: sandbox note\n"
