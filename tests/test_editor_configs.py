"""The editor configuration examples under editors/ start torchlint's language
server for Python, alongside the usual Python server, with settings the server
accepts."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    tomllib = pytest.importorskip("tomli")

EDITORS = Path(__file__).resolve().parents[1] / "editors"

SERVER_COMMANDS = (
    ["torchlint", "server"],
    ["python", "-m", "torchlint", "server"],
    ["python3", "-m", "torchlint", "server"],
)
CLIENT_SETTING_KEYS = {"select", "ignore", "runtime", "logLevel"}


# What every example sends: the project's selection (no `select`: an empty list would switch every
# rule off), nothing ignored, info logging, and never running user code without opting in.
EXAMPLE_SETTINGS = {"ignore": [], "logLevel": "info", "runtime": {"enabled": False}}


def check_client_settings(options: dict) -> None:
    assert set(options) <= CLIENT_SETTING_KEYS, f"unknown torchlint settings: {set(options) - CLIENT_SETTING_KEYS}"
    assert options == EXAMPLE_SETTINGS


@pytest.fixture(scope="module")
def helix() -> dict:
    return tomllib.loads((EDITORS / "helix" / "languages.toml").read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def zed() -> dict:
    return json.loads((EDITORS / "zed" / "settings.json").read_text(encoding="utf-8"))


def test_helix_starts_torchlint_server(helix: dict) -> None:
    server = helix["language-server"]["torchlint"]
    assert [server["command"], *server.get("args", [])] in SERVER_COMMANDS


def test_helix_attaches_torchlint_to_python_next_to_another_server(helix: dict) -> None:
    python = [lang for lang in helix["language"] if lang["name"] == "python"]
    assert len(python) == 1
    names = [s if isinstance(s, str) else s["name"] for s in python[0]["language-servers"]]
    assert "torchlint" in names
    assert len(names) >= 2, "torchlint should run alongside a general Python language server"


def test_helix_client_settings(helix: dict) -> None:
    check_client_settings(helix["language-server"]["torchlint"]["config"])


def test_zed_starts_torchlint_server(zed: dict) -> None:
    binary = zed["lsp"]["torchlint"]["binary"]
    assert [binary["path"], *binary.get("arguments", [])] in SERVER_COMMANDS


def test_zed_attaches_torchlint_to_python_next_to_the_defaults(zed: dict) -> None:
    servers = zed["languages"]["Python"]["language_servers"]
    assert "torchlint" in servers
    # "..." keeps Zed's default Python servers running as well.
    assert "..." in servers or len(servers) >= 2


def test_zed_client_settings(zed: dict) -> None:
    lsp = zed["lsp"]["torchlint"]
    check_client_settings(lsp["initialization_options"])
    check_client_settings(lsp["settings"]["torchlint"])


def test_examples_parse_cleanly_with_the_server_settings_reader(helix: dict, zed: dict) -> None:
    from torchlint.server.settings import parse_settings

    for options in (
        helix["language-server"]["torchlint"]["config"],
        zed["lsp"]["torchlint"]["initialization_options"],
        zed["lsp"]["torchlint"]["settings"],  # under a `torchlint` key, as workspace/configuration sends it
    ):
        parsed = parse_settings(options)
        assert parsed.problems == ()
        assert (parsed.select, parsed.ignore, parsed.runtime_enabled, parsed.log_level) == (None, (), False, "info")


def test_check_client_settings_rejects_what_the_examples_must_not_do() -> None:
    # The checker itself must fail on the mistakes it exists for (and on an empty config).
    for bad in ({}, {**EXAMPLE_SETTINGS, "select": []}, {**EXAMPLE_SETTINGS, "runtime": {"enabled": True}}, {**EXAMPLE_SETTINGS, "selct": ["TL2"]}):
        with pytest.raises(AssertionError):
            check_client_settings(bad)
