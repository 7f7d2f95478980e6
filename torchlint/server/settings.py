"""What to lint with: client settings merged over ``[tool.torchlint]``.

Client settings arrive in ``initializationOptions`` and in
``workspace/didChangeConfiguration`` (either bare or under a ``torchlint`` key):

    {"select": ["TL2"], "ignore": ["TL201"], "runtime": {"enabled": false},
     "logLevel": "warning"}

The project file is found the way the CLI finds it (the closest pyproject.toml
with a ``[tool.torchlint]`` table, via :mod:`torchlint.config`). How the
editor's ``select``/``ignore`` combine with it is ``configurationPreference``,
as in ruff's editor integration:

- ``editorFirst`` (default): the editor's ``select``, when set, replaces the
  project's; the ``ignore`` lists of both apply (as do the project's
  ``extend-select`` and per-file ignores). Within the merged selection the
  most specific selector decides a code and ``ignore`` wins a tie, so the
  project's ``ignore = ["TL201"]`` survives an editor ``select = ["TL2"]``.
- ``filesystemFirst``: the same, but the project's ``select`` wins when both
  set one.
- ``editorOnly``: the project file is not read; only the editor's settings.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from torchlint.config import Codes
from torchlint.server.early import DIAGNOSTIC_MODES, settings_section  # shared with the early initialize answer

if TYPE_CHECKING:
    from torchlint.config import Selection

# The rule registry (and with it libcst: a quarter of a second) is imported on first use
# only. Nor does this module import lsprotocol: the server process reads a first document's
# settings with it while pygls is still loading (launch.py).

# The LSP MessageType of each level (Error 1, Warning 2, Info 3, Log 4).
LOG_LEVELS = {"error": 1, "warning": 2, "warn": 2, "info": 3, "debug": 4, "log": 4}
DEFAULT_DEBOUNCE_MS = 150
# auto: push to every client, and answer pulls where the client can pull; push: push only;
# pull: pull only, for clients that would show pushed and pulled diagnostics twice.
PREFERENCES = ("editorFirst", "filesystemFirst", "editorOnly")


@dataclass(frozen=True)
class ClientSettings:
    select: tuple[str, ...] | None = None
    ignore: tuple[str, ...] | None = None
    runtime_enabled: bool = False
    log_level: str = "warning"
    # Advanced, read from initializationOptions only (they shape the capabilities).
    diagnostic_mode: str = "auto"
    debounce_ms: int = DEFAULT_DEBOUNCE_MS
    configuration_preference: str = "editorFirst"
    problems: tuple[str, ...] = field(default=(), compare=False)

    @property
    def log_threshold(self) -> int:
        """The highest LSP ``MessageType`` that reaches the client."""
        return LOG_LEVELS.get(self.log_level, 2)

    def selection(self) -> Selection:
        from torchlint.config import Selection

        return Selection(select=self.select, ignore=self.ignore or ())


_section = settings_section  # shared with early.py, which reads diagnosticMode before this module loads


def parse_settings(raw: Any, base: ClientSettings | None = None) -> ClientSettings:
    """Read client settings; a bad value is reported in ``problems`` and the old value kept."""
    base = base or ClientSettings()
    data = _section(raw)
    problems: list[str] = []
    values: dict[str, Any] = {}

    def codes(key: str) -> None:
        if key not in data:
            return
        value = data[key]
        if value is None:
            values[key] = None
            return
        if isinstance(value, str):
            value = [p for p in value.replace(",", " ").split() if p]
        if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) for v in value):
            problems.append(f"setting `{key}` must be a list of rule codes, got {value!r}")
            return
        from torchlint.config import unknown_selectors

        bad = unknown_selectors(value)
        if bad:
            problems.append(f"setting `{key}`: unknown rule code{'s' if len(bad) > 1 else ''} {', '.join(bad)} (ignored)")
            value = [v for v in value if v not in bad]
        values[key] = tuple(value)

    codes("select")
    codes("ignore")

    runtime = data.get("runtime")
    enabled = data.get("runtime.enabled", runtime.get("enabled") if isinstance(runtime, Mapping) else None)
    if enabled is not None:
        if isinstance(enabled, bool):
            values["runtime_enabled"] = enabled
        else:
            problems.append(f"setting `runtime.enabled` must be true or false, got {enabled!r}")

    level = data.get("logLevel", data.get("log_level"))
    if level is not None:
        if isinstance(level, str) and level.lower() in LOG_LEVELS:
            values["log_level"] = level.lower()
        else:
            problems.append(f"setting `logLevel` must be one of error, warning, info, debug; got {level!r}")

    mode = data.get("diagnosticMode")
    if mode is not None:
        if mode in DIAGNOSTIC_MODES:
            values["diagnostic_mode"] = mode
        else:
            problems.append(f"setting `diagnosticMode` must be one of {', '.join(DIAGNOSTIC_MODES)}; got {mode!r}")

    preference = data.get("configurationPreference")
    if preference is not None:
        if preference in PREFERENCES:
            values["configuration_preference"] = preference
        else:
            problems.append(f"setting `configurationPreference` must be one of {', '.join(PREFERENCES)}; got {preference!r}")

    debounce = data.get("debounceMs")
    if debounce is not None:
        if isinstance(debounce, (int, float)) and not isinstance(debounce, bool) and 0 <= debounce <= 10_000:
            values["debounce_ms"] = int(debounce)
        else:
            problems.append(f"setting `debounceMs` must be a number of milliseconds, got {debounce!r}")

    return ClientSettings(
        select=values.get("select", base.select),
        ignore=values.get("ignore", base.ignore),
        runtime_enabled=values.get("runtime_enabled", base.runtime_enabled),
        log_level=values.get("log_level", base.log_level),
        diagnostic_mode=values.get("diagnostic_mode", base.diagnostic_mode),
        debounce_ms=values.get("debounce_ms", base.debounce_ms),
        configuration_preference=values.get("configuration_preference", base.configuration_preference),
        problems=tuple(problems),
    )


@dataclass(frozen=True)
class FileConfig:
    """The rule codes for one file, and where they came from."""

    codes: Codes  # resolved in the analysis processes (see torchlint.config.Codes)
    config_path: str | None  # the pyproject.toml that applied, if any
    error: str | None = None  # a broken config: shown to the user, defaults used meanwhile
    max_bytes: int | None = None  # the project's max-file-size (None: torchlint.sources.MAX_BYTES)


def merge_selections(project: Selection, client: ClientSettings, preference: str) -> Selection:
    """One selection from the project's and the editor's (see the module docstring)."""
    from torchlint.config import Selection

    if client.select is None:
        select = project.select
    elif project.select is None or preference == "editorFirst":
        select = client.select
    else:
        select = project.select
    return Selection(select=select, ignore=(*project.ignore, *(client.ignore or ())), extend_select=project.extend_select)


class ProjectConfigs:
    """``[tool.torchlint]`` lookups with change detection.

    The CLI's :class:`torchlint.config.Resolver` caches forever; here it is
    replaced whenever a config file it read changes (checked by mtime on each
    lint, and on ``workspace/didChangeWatchedFiles``), so edits to
    pyproject.toml apply without a restart.
    """

    def __init__(self, cwd: str | None = None) -> None:
        self._cwd = cwd or os.getcwd()
        self._resolver: Any = None  # a torchlint.config.Resolver, made on first use
        self._stamps: dict[str, tuple[int, int] | None] = {}

    @staticmethod
    def _stamp(path: str) -> tuple[int, int] | None:
        try:
            st = os.stat(path)
        except OSError:
            return None
        return st.st_mtime_ns, st.st_size

    def changed(self) -> bool:
        """Has a config file read so far changed? Resets the lookups if so."""
        for path, stamp in self._stamps.items():
            if self._stamp(path) != stamp:
                self.reset()
                return True
        return False

    def reset(self) -> None:
        self._resolver = None
        self._stamps.clear()

    def for_file(self, path: str | None, client: ClientSettings) -> FileConfig:
        from torchlint.config import ConfigError, Resolver, posix

        if self._resolver is None:
            self._resolver = Resolver(cwd=self._cwd)
        layers = [client.selection()]
        if path is None or not os.path.isabs(path) or client.configuration_preference == "editorOnly":
            return FileConfig(Codes(tuple(layers)), None)
        abspath = posix(path)
        try:
            settings = self._resolver.settings_for_file(abspath)
        except ConfigError as exc:
            self._remember_candidates(abspath)
            return FileConfig(Codes(tuple(layers)), None, str(exc))
        if settings.path is not None:
            self._stamps.setdefault(os.path.join(settings.root, "pyproject.toml"), self._stamp(os.path.join(settings.root, "pyproject.toml")))
        self._remember_candidates(abspath)
        merged = merge_selections(settings.selection, client, client.configuration_preference)
        codes = Codes((merged,), tuple(settings.ignored_codes(abspath)))
        return FileConfig(codes, settings.path, max_bytes=settings.max_file_size)

    def _remember_candidates(self, abspath: str) -> None:
        # Every pyproject.toml between the file and the root can start or stop
        # applying: watch them all (absent ones too, so creating one counts).
        d = os.path.dirname(abspath)
        while True:
            candidate = os.path.join(d, "pyproject.toml")
            if candidate not in self._stamps:
                self._stamps[candidate] = self._stamp(candidate)
            parent = os.path.dirname(d)
            if parent == d:
                break
            d = parent


log = logging.getLogger("torchlint.server")
