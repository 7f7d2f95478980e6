"""The pre-commit hook, run for real: ``pre-commit try-repo`` against a copy of
this working tree committed into a temporary repository (try-repo clones a
repository's HEAD, so the copy keeps the test independent of what is committed)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
BAD = "it = iter(loader)\nbatch = it.next()\n"
CLEAN = "def add(a, b):\n    return a + b\n"

pytestmark = pytest.mark.slow

GIT_ENV = {
    "GIT_AUTHOR_NAME": "torchlint tests",
    "GIT_AUTHOR_EMAIL": "tests@example.invalid",
    "GIT_COMMITTER_NAME": "torchlint tests",
    "GIT_COMMITTER_EMAIL": "tests@example.invalid",
    "GIT_CONFIG_NOSYSTEM": "1",
}


def git(*args: str, cwd: Path, env: dict) -> None:
    subprocess.run(["git", *args], cwd=cwd, env=env, check=True, capture_output=True, text=True)


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    if shutil.which("git") is None:
        pytest.fail("git is needed for the pre-commit test (apt-get install git)")
    base = tmp_path_factory.mktemp("precommit")
    env = {k: v for k, v in os.environ.items() if not k.startswith("GIT_") and k not in ("FORCE_COLOR", "TORCHLINT_CACHE_DIR")}
    env.update(GIT_ENV)
    env["HOME"] = str(base / "home")  # no user git config
    (base / "home").mkdir()
    env["PRE_COMMIT_HOME"] = str(base / "pre-commit-home")
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"

    hooks = base / "hook-repo"
    hooks.mkdir()
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", ".torchlint_cache")
    shutil.copytree(ROOT / "torchlint", hooks / "torchlint", ignore=ignore)
    for name in ("pyproject.toml", "README.md", ".pre-commit-hooks.yaml"):
        shutil.copy2(ROOT / name, hooks / name)
    git("init", "-q", cwd=hooks, env=env)
    git("add", "-A", cwd=hooks, env=env)
    git("commit", "-q", "-m", "hook repo snapshot", cwd=hooks, env=env)

    project = base / "project"
    project.mkdir()
    (project / "bad.py").write_text(BAD)
    (project / "clean.py").write_text(CLEAN)
    (project / "fixtures").mkdir()
    (project / "fixtures" / "flagged_example.py").write_text(BAD)
    (project / "pyproject.toml").write_text('[tool.torchlint]\nextend-exclude = ["fixtures"]\n')
    (project / "notes.txt").write_text(BAD)
    git("init", "-q", cwd=project, env=env)
    git("add", "-A", cwd=project, env=env)
    git("commit", "-q", "-m", "project", cwd=project, env=env)
    return hooks, project, env


def try_repo(setup, *files: str) -> subprocess.CompletedProcess[str]:
    hooks, project, env = setup
    return subprocess.run(
        [sys.executable, "-m", "pre_commit", "try-repo", str(hooks), "torchlint", "--verbose", "--files", *files],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )


def test_hook_fails_on_a_flagged_file(setup):
    p = try_repo(setup, "bad.py")
    out = p.stdout + p.stderr
    assert p.returncode == 1, out
    assert "bad.py:2:9: TL201" in out
    assert "Failed" in out


def test_hook_passes_on_a_clean_file(setup):
    p = try_repo(setup, "clean.py")
    out = p.stdout + p.stderr
    assert p.returncode == 0, out
    assert "Passed" in out


def test_hook_respects_exclusions_and_file_types(setup):
    # fixtures/ is excluded by the project's config (--force-exclude), notes.txt is not Python.
    p = try_repo(setup, "fixtures/flagged_example.py", "notes.txt", "clean.py")
    out = p.stdout + p.stderr
    assert p.returncode == 0, out
    assert "TL201" not in out
