"""[tool.torchlint] settings: validation, discovery by walking up, rule selection, patterns."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from torchlint.config import (
    ConfigError,
    PathPattern,
    Resolver,
    Selection,
    Settings,
    glob_to_regex,
    inline_config,
    load_config_file,
    posix,
    resolve_codes,
    settings_from_table,
)
from torchlint.rules import all_rules, default_codes

ROOT = Path(__file__).resolve().parent.parent
ALL = frozenset(all_rules())
DEFAULT = default_codes()


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("FORCE_COLOR", "TORCHLINT_OUTPUT_FORMAT")}
    env["PYTHONPATH"] = str(ROOT)
    return subprocess.run(
        [sys.executable, "-m", "torchlint", *args], cwd=cwd, capture_output=True, text=True, env=env, timeout=120
    )


# --- globs and patterns ----------------------------------------------------------


@pytest.mark.parametrize(
    "glob, path, expected",
    [
        ("*.py", "a.py", True),
        ("*.py", "d/a.py", False),  # * stops at /
        ("**/*.py", "a.py", True),
        ("**/*.py", "d/e/a.py", True),
        ("d/**", "d/e/a.py", True),
        ("d/**", "d", False),
        ("a/**/b", "a/b", True),
        ("a/**/b", "a/x/y/b", True),
        ("a/**/b", "a/xb", False),
        ("test_?.py", "test_1.py", True),
        ("test_?.py", "test_12.py", False),
        ("[ab].py", "b.py", True),
        ("[!ab].py", "b.py", False),
        ("[!ab].py", "c.py", True),
        ("{docs,tests}/*.py", "tests/x.py", True),
        ("{docs,tests}/*.py", "src/x.py", False),
        (r"\*.py", "*.py", True),
        (r"\*.py", "a.py", False),
        ("a+b(c).py", "a+b(c).py", True),  # regex metacharacters are literal
    ],
)
def test_glob_to_regex(glob, path, expected):
    assert bool(re.fullmatch(glob_to_regex(glob), path)) is expected


def test_pattern_without_slash_matches_a_name_anywhere(tmp_path):
    p = PathPattern("gen_*.py", posix(tmp_path))
    assert p.matches(posix(tmp_path / "a" / "b" / "gen_x.py"))
    assert not p.matches(posix(tmp_path / "gen_x" / "y.py"))


def test_pattern_with_slash_is_relative_to_the_config(tmp_path):
    p = PathPattern("docs/*.py", posix(tmp_path))
    assert p.matches(posix(tmp_path / "docs" / "x.py"))
    assert not p.matches(posix(tmp_path / "sub" / "docs" / "x.py"))
    assert not p.matches("/elsewhere/docs/x.py")
    assert PathPattern("./docs/", posix(tmp_path)).matches(posix(tmp_path / "docs"))


# --- rule selection -------------------------------------------------------------------


def test_default_selects_every_rule_on_by_default():
    assert resolve_codes([]) == DEFAULT
    assert DEFAULT == {c for c, r in all_rules().items() if r.default_enabled}


def test_off_by_default_rules_need_a_selector():
    off = ALL - DEFAULT
    assert off, "some rules are off by default (TorchFix's noisy ones)"
    # Any selector that matches picks them: ALL, a prefix, the code.
    assert resolve_codes([Selection(select=("ALL",))]) == ALL
    assert off <= resolve_codes([Selection(select=("TL",))])
    code = sorted(off)[0]
    assert resolve_codes([Selection(extend_select=(code,))]) == DEFAULT | {code}
    assert code in resolve_codes([Selection(select=(code[:3],))])  # its group, e.g. TL7
    # A layer that only ignores starts from the default set.
    assert resolve_codes([Selection(ignore=("TL201",))]) == DEFAULT - {"TL201"}


def test_select_replaces_and_ignore_removes():
    assert resolve_codes([Selection(select=("TL2",))]) == {c for c in ALL if c.startswith("TL2")}
    assert "TL201" not in resolve_codes([Selection(ignore=("TL201",))])


def test_more_specific_selector_wins_within_a_layer():
    codes = resolve_codes([Selection(select=("ALL",), ignore=("TL2",), extend_select=("TL201",))])
    assert "TL201" in codes
    assert not any(c.startswith("TL2") and c != "TL201" for c in codes)


def test_ignore_wins_a_tie():
    assert "TL201" not in resolve_codes([Selection(select=("TL201",), ignore=("TL201",))])


def test_command_line_layer_overrides_config():
    config = Selection(select=("TL201",))
    assert resolve_codes([config, Selection(select=("TL2",))]) == {c for c in ALL if c.startswith("TL2")}
    # --extend-select adds to the config's selection; --ignore removes from it.
    assert resolve_codes([config, Selection(extend_select=("TL001",))]) == {"TL001", "TL201"}
    assert resolve_codes([Selection(), Selection(ignore=("TL201",))]) == DEFAULT - {"TL201"}


def test_per_file_ignores_remove_outright():
    assert "TL201" not in resolve_codes([Selection(select=("TL201",))], ignore=("TL2",))


# --- validating a table ----------------------------------------------------------------


def table_error(table: dict) -> str:
    with pytest.raises(ConfigError) as exc:
        settings_from_table(table, "/p", "pyproject.toml")
    msg = str(exc.value)
    assert "\n" not in msg
    assert msg.startswith("pyproject.toml: [tool.torchlint] ")
    return msg


def test_unknown_key_is_named_with_a_suggestion():
    msg = table_error({"selct": ["TL2"]})
    assert "unknown key `selct`" in msg and "did you mean `select`" in msg


def test_unknown_rule_codes_are_named():
    msg = table_error({"select": ["TL201", "TL999", "XYZ"]})
    assert "unknown rule codes in `select`: TL999, XYZ" in msg
    assert "TL998" in table_error({"ignore": ["TL998"]})
    assert "TL997" in table_error({"per-file-ignores": {"*.py": ["TL997"]}})


@pytest.mark.parametrize(
    "table, fragment",
    [
        ({"select": "TL201"}, "`select` must be a list of strings, got a string ('TL201')"),
        ({"ignore": [1]}, "`ignore` must be a list of strings"),
        ({"exclude": {"a": 1}}, "`exclude` must be a list of strings, got a table"),
        ({"per-file-ignores": ["x"]}, "`per-file-ignores` must be a table"),
        ({"per-file-ignores": {"*.py": "TL201"}}, "entry '*.py' must be a list of rule codes"),
        ({"respect-gitignore": "yes"}, "`respect-gitignore` must be true or false"),
        ({"extension": {"txt": "latex"}}, "unknown language 'latex'"),
    ],
)
def test_bad_values(table, fragment):
    assert fragment in table_error(table)


def test_valid_table():
    s = settings_from_table(
        {
            "select": ["TL2"],
            "ignore": ["TL202"],
            "extend-select": ["TL001"],
            "per-file-ignores": {"tests/*.py": ["TL201"]},
            "exclude": ["gen"],
            "extend-exclude": ["docs/build"],
            "respect-gitignore": False,
            "extension": {".TXT": "markdown"},
        },
        "/p",
        "pyproject.toml",
    )
    assert s.selection == Selection(("TL2",), ("TL202",), ("TL001",))
    assert s.ignored_codes("/p/tests/test_a.py") == ("TL201",)
    assert s.ignored_codes("/p/src/a.py") == ()
    # exclude replaces the defaults; extend-exclude adds.
    assert s.is_excluded("/p/x/gen") and s.is_excluded("/p/docs/build")
    assert not s.is_excluded("/p/build")
    assert s.respect_gitignore is False
    assert s.extensions == (("txt", "markdown"),)


def test_defaults_exclude_the_usual_directories():
    s = Settings.default("/p")
    for name in (".git", ".venv", "venv", "build", "dist", "node_modules", "__pycache__", ".tox", ".nox",
                 "site-packages", ".torchlint_cache"):
        assert s.is_excluded(f"/p/a/{name}"), name
    assert not s.is_excluded("/p/src")


# --- finding the config -------------------------------------------------------------------


def test_closest_pyproject_with_a_torchlint_table_wins(tmp_path):
    write(tmp_path / "pyproject.toml", '[tool.torchlint]\nselect = ["TL201"]\n')
    write(tmp_path / "pkg" / "pyproject.toml", '[project]\nname = "pkg"\n')  # no table: passed over
    write(tmp_path / "pkg" / "sub" / "pyproject.toml", '[tool.torchlint]\nselect = ["TL202"]\n')
    r = Resolver(cwd=str(tmp_path))
    assert r.settings_for_dir(posix(tmp_path / "pkg")).path.endswith(os.path.join("", "pyproject.toml"))
    assert r.codes_for(posix(tmp_path / "pkg" / "a.py")) == {"TL201"}
    assert r.codes_for(posix(tmp_path / "pkg" / "sub" / "deep" / "a.py")) == {"TL202"}


def test_settings_are_read_once_per_directory(tmp_path, monkeypatch):
    write(tmp_path / "pyproject.toml", '[tool.torchlint]\nselect = ["TL201"]\n')
    import torchlint.config as config

    reads = []
    real = config.load_toml
    monkeypatch.setattr(config, "load_toml", lambda p, *a: reads.append(p) or real(p, *a))
    r = Resolver(cwd=str(tmp_path))
    for i in range(20):
        r.codes_for(posix(tmp_path / "a" / "b" / f"f{i}.py"))
    assert len(reads) == 1


def test_cli_selection_overrides_the_config(tmp_path):
    write(tmp_path / "pyproject.toml", '[tool.torchlint]\nselect = ["TL201"]\n')
    r = Resolver(cli=Selection(select=("TL202",)), cwd=str(tmp_path))
    assert r.codes_for(posix(tmp_path / "a.py")) == {"TL202"}


def test_no_config_means_defaults(tmp_path):
    r = Resolver(cwd=str(tmp_path))
    s = r.settings_for_dir(posix(tmp_path))
    assert s.path is None and r.codes_for(posix(tmp_path / "x.py")) == DEFAULT


def test_config_file_option(tmp_path):
    cfg = write(tmp_path / "conf" / "torchlint.toml", 'select = ["TL201"]\n')
    s = load_config_file(cfg)
    assert s.selection.select == ("TL201",)
    assert s.root == posix(tmp_path / "conf")
    py = write(tmp_path / "other" / "pyproject.toml", '[tool.torchlint]\nignore = ["TL201"]\n')
    assert load_config_file(py).selection.ignore == ("TL201",)
    with pytest.raises(ConfigError, match="config file not found"):
        load_config_file(tmp_path / "nope.toml")


def test_inline_config():
    assert inline_config("select = ['TL2']", "/p").selection.select == ("TL2",)
    with pytest.raises(ConfigError):
        inline_config("select = [", "/p")


def test_invalid_toml_is_one_line(tmp_path):
    write(tmp_path / "pyproject.toml", "[tool.torchlint\nselect = 1\n")
    with pytest.raises(ConfigError) as exc:
        Resolver(cwd=str(tmp_path)).settings_for_dir(posix(tmp_path))
    assert "invalid TOML" in str(exc.value) and "\n" not in str(exc.value)


# --- through the command line --------------------------------------------------------------


@pytest.mark.slow
def test_cli_reports_config_errors_with_exit_2(tmp_path):
    write(tmp_path / "pyproject.toml", '[tool.torchlint]\nselect = ["TL201", "TL999"]\n')
    write(tmp_path / "a.py", "x = 1\n")
    p = cli("check", ".", cwd=tmp_path)
    assert p.returncode == 2
    assert p.stderr.strip() == "error: pyproject.toml: [tool.torchlint] unknown rule code in `select`: TL999"
    assert "Traceback" not in p.stderr


@pytest.mark.slow
def test_cli_bad_toml_exit_2(tmp_path):
    write(tmp_path / "pyproject.toml", "[tool.torchlint]\nselect = [\n")
    write(tmp_path / "a.py", "x = 1\n")
    p = cli("check", "a.py", cwd=tmp_path)
    assert p.returncode == 2
    assert p.stderr.startswith("error: pyproject.toml: invalid TOML") and p.stderr.count("\n") == 1


@pytest.mark.slow
def test_cli_per_file_ignores_and_nested_configs(tmp_path):
    bad = "it = iter(loader)\nbatch = it.next()\n"
    write(tmp_path / "pyproject.toml", '[tool.torchlint]\nper-file-ignores = {"tests/*" = ["TL201"]}\n')
    write(tmp_path / "tests" / "t.py", bad)
    write(tmp_path / "src" / "s.py", bad)
    write(tmp_path / "lib" / "pyproject.toml", '[tool.torchlint]\nignore = ["TL2"]\n')
    write(tmp_path / "lib" / "l.py", bad)
    p = cli("check", "--output-format", "concise", "--no-cache", cwd=tmp_path)
    assert p.returncode == 1, p.stderr
    flagged = {line.split(":")[0] for line in p.stdout.splitlines() if "TL201" in line}
    assert flagged == {os.path.join("src", "s.py")}


@pytest.mark.slow
def test_cli_config_option_applies_everywhere(tmp_path):
    write(tmp_path / "sub" / "pyproject.toml", '[tool.torchlint]\nselect = ["TL201"]\n')
    write(tmp_path / "sub" / "a.py", "it = iter(loader)\nbatch = it.next()\n")
    cfg = write(tmp_path / "strict.toml", 'select = ["TL202"]\n')
    p = cli("check", "--no-cache", "--config", str(cfg), "sub", cwd=tmp_path)
    assert p.returncode == 0, p.stdout + p.stderr
    p = cli("check", "--no-cache", "--config", "select = ['TL201']", "sub", cwd=tmp_path)
    assert p.returncode == 1
    p = cli("check", "--no-cache", "--config", "missing.toml", "sub", cwd=tmp_path)
    assert p.returncode == 2 and "missing.toml: config file not found" in p.stderr


@pytest.mark.slow
def test_cli_exclude_from_config(tmp_path):
    write(tmp_path / "pyproject.toml", '[tool.torchlint]\nextend-exclude = ["generated", "docs/*.py"]\n')
    for rel in ("generated/g.py", "docs/d.py", "docs/keep/k.py", "src/s.py"):
        write(tmp_path / rel, "x = 1\n")
    p = cli("check", "--show-files", cwd=tmp_path)
    assert p.returncode == 0
    assert p.stdout.split() == [os.path.join("docs", "keep", "k.py"), os.path.join("src", "s.py")]
