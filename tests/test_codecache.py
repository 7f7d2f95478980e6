"""torchlint.codecache: dataclass methods compiled by an earlier process are reused, and nothing else changes."""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
from pathlib import Path

import pytest

from torchlint import codecache
from conftest import ROOT


@pytest.fixture
def cache_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "pycache" / "codecache.test.methods"
    monkeypatch.setattr(codecache, "cache_path", lambda name: str(path))
    monkeypatch.setattr(sys, "dont_write_bytecode", False)
    return path


def _define() -> type:
    @dataclasses.dataclass(frozen=True)
    class Point:
        x: int
        y: int = 0
        tags: list = dataclasses.field(default_factory=list, compare=False)

    return Point


def _behaviour(cls: type) -> tuple:
    a, b = cls(1, 2), cls(1, 2, ["t"])
    try:
        a.x = 3  # type: ignore[misc]
        frozen = False
    except dataclasses.FrozenInstanceError:
        frozen = True
    return (repr(a), a == b, hash(a) == hash(b), frozen, cls(5).tags, dataclasses.astuple(b))


def test_a_second_process_compiles_nothing_and_the_classes_behave_the_same(cache_file, monkeypatch):
    plain = _behaviour(_define())
    with codecache.generated_code("test"):
        first = _behaviour(_define())
    assert cache_file.exists() and cache_file.read_bytes().startswith(codecache._HEADER)

    def no_compile(*args, **kwargs):
        raise AssertionError("compiled again")

    monkeypatch.setattr(codecache.builtins, "compile", no_compile)
    with codecache.generated_code("test"):
        second = _behaviour(_define())
    assert plain == first == second
    assert "exec" not in vars(dataclasses)  # the builtin is dataclasses' exec again


def test_nothing_is_written_where_python_writes_no_bytecode(cache_file, monkeypatch):
    monkeypatch.setattr(sys, "dont_write_bytecode", True)
    with codecache.generated_code("test"):
        _define()
    assert not cache_file.exists()


@pytest.mark.parametrize(
    "content",
    [b"", b"garbage", codecache._HEADER + b"\x00\x01", b"\x00\x00\x00\x00" + codecache._HEADER[4:] + b"{}"],
    ids=["empty", "garbage", "truncated", "another-interpreter"],
)
def test_an_unreadable_file_is_compiled_afresh_and_replaced(cache_file, content):
    cache_file.parent.mkdir(parents=True)
    cache_file.write_bytes(content)
    with codecache.generated_code("test"):
        assert _behaviour(_define())[0].endswith("Point(x=1, y=2, tags=[])")
    assert codecache._load(str(cache_file))  # rewritten whole


def test_within_within_is_one_use(cache_file):
    with codecache.generated_code("test"):
        hook = vars(dataclasses)["exec"]
        with codecache.generated_code("test"):
            assert vars(dataclasses)["exec"] is hook
        assert vars(dataclasses)["exec"] is hook
        _define()
    assert "exec" not in vars(dataclasses)


def test_a_check_keeps_the_methods_where_python_keeps_bytecode(tmp_path):
    # PYTHONPYCACHEPREFIX moves Python's bytecode, and the methods with it.
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env["PYTHONPYCACHEPREFIX"] = str(tmp_path / "prefix")
    target = tmp_path / "train.py"
    target.write_text("import torch\n")
    for _ in range(2):
        done = subprocess.run(
            [sys.executable, "-m", "torchlint", "check", "--no-cache", str(target)],
            cwd=ROOT, env=env, capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
    kept = list((tmp_path / "prefix").rglob("codecache.*.analysis.methods"))
    assert len(kept) == 1
    assert len(codecache._load(str(kept[0]))) > 500  # libcst's and the rules' classes


def _define_attrs() -> type:
    import attr

    @attr.define(frozen=True)
    class Span:
        start: int
        end: int = 0

    return Span


def test_attrs_classes_compile_once_with_the_flags_attrs_gives_them(cache_file, monkeypatch):
    plain = _define_attrs()
    with codecache.generated_code("test", "attr._make"):
        first = _define_attrs()
    monkeypatch.setattr(codecache.builtins, "compile", lambda *a, **k: (_ for _ in ()).throw(AssertionError("compiled again")))
    with codecache.generated_code("test", "attr._make"):
        second = _define_attrs()
    for cls in (first, second):
        # attr._make says `from __future__ import annotations`: its compiles inherit that flag.
        assert cls.__init__.__code__.co_flags == plain.__init__.__code__.co_flags
        assert repr(cls(1, 2)) == repr(plain(1, 2)).replace(plain.__qualname__, cls.__qualname__)
        assert cls(1, 2) == cls(1, 2) and hash(cls(1, 2)) == hash(cls(1, 2))
    import attr._make

    assert "compile" not in vars(attr._make)
