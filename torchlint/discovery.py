"""Which files to lint: walking directories, exclusions, .gitignore, languages.

The rules follow ruff: directories are walked for ``*.py`` / ``*.pyi`` (plus
extensions mapped with ``--extension``), skipping excluded names, virtualenvs
(any directory holding ``pyvenv.cfg``) and ``.gitignore``d paths. A path named
on the command line is linted even if excluded, unless ``--force-exclude``.
"""

from __future__ import annotations

import os
import re
import stat
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from torchlint.config import (
    DEFAULT_EXTENSIONS,
    EXPLICIT_EXTENSIONS,
    NOT_PYTHON_EXTENSIONS,
    Resolver,
    Settings,
    glob_to_regex,
    posix,
)

# --- .gitignore ----------------------------------------------------------------


@dataclass(frozen=True)
class _IgnoreRule:
    regex: re.Pattern[str]
    negated: bool
    dir_only: bool


class GitIgnore:
    """The patterns of one ``.gitignore`` file, matched relative to its directory.

    Implements gitignore(5): ``#`` comments, ``\\`` escapes, trailing-space
    trimming, ``!`` negation, a trailing ``/`` for directories only, a ``/`` at
    the start or middle anchoring the pattern to this directory (otherwise it
    matches a name at any depth), ``*``, ``?``, ``[...]`` and ``**``. The last
    matching pattern decides.
    """

    def __init__(self, base: str, text: str) -> None:
        self.base = base.rstrip("/")  # absolute posix directory
        self.rules: list[_IgnoreRule] = []
        for raw in text.splitlines():
            rule = self._parse(raw)
            if rule is not None:
                self.rules.append(rule)

    @staticmethod
    def _parse(raw: str) -> _IgnoreRule | None:
        line = raw.rstrip("\r")
        # Trailing spaces are dropped unless escaped with a backslash.
        stripped = line.rstrip(" ")
        if stripped.endswith("\\") and len(stripped) < len(line):
            stripped += " "
        line = stripped
        if not line or line.startswith("#"):
            return None
        negated = False
        if line.startswith("!"):
            negated, line = True, line[1:]
        elif line.startswith("\\!") or line.startswith("\\#"):
            line = line[1:]
        dir_only = line.endswith("/") and not line.endswith("\\/")
        if dir_only:
            line = line.rstrip("/")
        if not line:
            return None
        anchored = "/" in line
        if line.startswith("/"):
            line = line[1:]
        body = glob_to_regex(line, braces=False)
        if not anchored:
            body = "(?:.*/)?" + body
        return _IgnoreRule(re.compile(body), negated, dir_only)

    def match(self, abspath: str, is_dir: bool) -> bool | None:
        """True: ignored, False: re-included by ``!``, None: no pattern matched."""
        prefix = self.base + "/"
        if not abspath.startswith(prefix):
            return None
        rel = abspath[len(prefix) :]
        for rule in reversed(self.rules):
            if rule.dir_only and not is_dir:
                continue
            if rule.regex.fullmatch(rel):
                return not rule.negated
        return None


def _read_gitignore(directory: str) -> GitIgnore | None:
    path = directory.rstrip("/") + "/.gitignore"
    try:
        with open(path, encoding="utf-8", errors="replace") as fh:
            text = fh.read()
    except OSError:
        return None
    return GitIgnore(directory, text)


def _is_ignored(stack: Iterable[GitIgnore], abspath: str, is_dir: bool) -> bool:
    """Deeper .gitignore files take precedence over shallower ones."""
    for gi in reversed(list(stack)):
        verdict = gi.match(abspath, is_dir)
        if verdict is not None:
            return verdict
    return False


def find_git_root(directory: str) -> str | None:
    d = directory
    while True:
        if os.path.exists(d.rstrip("/") + "/.git"):
            return d
        parent = os.path.dirname(d)
        if parent == d:
            return None
        d = parent


class GitIgnoreStack:
    """The .gitignore files that apply in each directory, read once each."""

    def __init__(self) -> None:
        self._stacks: dict[str, tuple[GitIgnore, ...]] = {}

    def for_dir(self, directory: str) -> tuple[GitIgnore, ...]:
        """The stack for an absolute posix directory: its own .gitignore and its
        parents' up to the git root (only the directory itself outside a repository)."""
        if directory in self._stacks:
            return self._stacks[directory]
        root = find_git_root(directory)
        parent = os.path.dirname(directory)
        if root is None or directory == root or parent == directory:
            base: tuple[GitIgnore, ...] = ()
            if root is not None and directory == root:
                info = _read_info_exclude(root)
                base = (info,) if info else ()
        else:
            base = self.for_dir(parent)
        own = _read_gitignore(directory)
        stack = base + ((own,) if own else ())
        self._stacks[directory] = stack
        return stack

    def push(self, directory: str, parent_stack: tuple[GitIgnore, ...]) -> tuple[GitIgnore, ...]:
        """The stack of a subdirectory reached while walking."""
        if directory not in self._stacks:
            own = _read_gitignore(directory)
            self._stacks[directory] = parent_stack + ((own,) if own else ())
        return self._stacks[directory]

    def is_ignored(self, abspath: str, is_dir: bool) -> bool:
        """Is the path, or any directory above it (up to the git root), ignored?"""
        d = os.path.dirname(abspath)
        if _is_ignored(self.for_dir(d), abspath, is_dir):
            return True
        root = find_git_root(d)
        while root is not None and d != root and os.path.dirname(d) != d:
            parent = os.path.dirname(d)
            if _is_ignored(self.for_dir(parent), d, True):
                return True
            d = parent
        return False


def _read_info_exclude(root: str) -> GitIgnore | None:
    path = root.rstrip("/") + "/.git/info/exclude"
    try:
        with open(path, encoding="utf-8", errors="replace") as fh:
            return GitIgnore(root, fh.read())
    except OSError:
        return None


# --- walking -------------------------------------------------------------------


@dataclass(frozen=True)
class SourceFile:
    path: str  # as the user will see it (relative paths stay relative)
    abspath: str  # absolute posix
    language: str  # "python" | "markdown" | "notebook" | "rst"
    settings: Settings
    explicit: bool = False


@dataclass
class Discovery:
    files: list[SourceFile] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


def language_of(name: str, settings: Settings, cli_extensions: Mapping[str, str], explicit: bool) -> str | None:
    ext = name.rsplit(".", 1)[-1].lower() if "." in name else ""
    if ext in cli_extensions:
        return cli_extensions[ext]
    for e, lang in settings.extensions:
        if e == ext:
            return lang
    if explicit:
        # Like ruff: a file named on the command line is Python unless its extension says otherwise
        # (and None for data formats, which would pass as Python by accident: see NOT_PYTHON_EXTENSIONS).
        if ext in NOT_PYTHON_EXTENSIONS:
            return None
        return EXPLICIT_EXTENSIONS.get(ext, "python")
    return DEFAULT_EXTENSIONS.get(ext)


def excluded_in_project(abspath: str, settings: Settings) -> bool:
    """Is the path, or a directory above it inside the project, excluded by the settings?"""
    if settings.is_excluded(abspath):
        return True
    root = settings.root.rstrip("/")
    d = os.path.dirname(abspath)
    while d.startswith(root + "/"):
        if settings.is_excluded(d):
            return True
        d = os.path.dirname(d)
    return False


def discover(
    paths: Iterable[str],
    resolver: Resolver,
    *,
    cli_extensions: Mapping[str, str] | None = None,
    force_exclude: bool = False,
    respect_gitignore: bool | None = None,
) -> Discovery:
    """Expand paths into files to lint (sorted, each once)."""
    cli_extensions = dict(cli_extensions or {})
    out = Discovery()
    seen: set[str] = set()
    gitignores = GitIgnoreStack()

    def use_gitignore(settings: Settings) -> bool:
        return settings.respect_gitignore if respect_gitignore is None else respect_gitignore

    def add(path: str, abspath: str, settings: Settings, language: str, explicit: bool) -> None:
        if abspath in seen:
            return
        seen.add(abspath)
        out.files.append(SourceFile(path, abspath, language, settings, explicit))

    def excluded_with_ancestors(abspath: str, settings: Settings, is_dir: bool) -> bool:
        # --force-exclude: the path or a directory above it (inside the project) is excluded.
        if excluded_in_project(abspath, settings):
            return True
        return use_gitignore(settings) and gitignores.is_ignored(abspath, is_dir)

    def walk(dir_path: str, dir_abs: str, stack: tuple[GitIgnore, ...]) -> None:
        try:
            entries = sorted(os.scandir(dir_path or "."), key=lambda e: e.name)
        except PermissionError:
            out.errors.append(f"{dir_path}: permission denied")
            return
        except OSError as exc:
            out.errors.append(f"{dir_path}: cannot read directory: {exc.strerror or exc}")
            return
        settings = resolver.settings_for_dir(dir_abs)
        gi = use_gitignore(settings)
        for entry in entries:
            child = os.path.join(dir_path, entry.name) if dir_path else entry.name
            child_abs = dir_abs.rstrip("/") + "/" + entry.name
            try:
                is_dir = entry.is_dir(follow_symlinks=False)
                is_file = entry.is_file()
            except OSError:
                continue
            if is_dir:
                if settings.is_excluded(child_abs) or (gi and _is_ignored(stack, child_abs, True)):
                    continue
                if os.path.exists(os.path.join(child, "pyvenv.cfg")):
                    continue  # a virtualenv, whatever its name
                child_stack = gitignores.push(child_abs, stack) if gi else stack
                walk(child, child_abs, child_stack)
            elif is_file:
                language = language_of(entry.name, settings, cli_extensions, explicit=False)
                if language is None:
                    continue
                if settings.is_excluded(child_abs) or (gi and _is_ignored(stack, child_abs, False)):
                    continue
                add(child, child_abs, settings, language, explicit=False)

    for raw in paths:
        path = os.path.normpath(raw) if raw not in ("", ".") else "."
        abspath = posix(path)
        try:
            st = os.stat(path)
        except FileNotFoundError:
            out.errors.append(f"{raw}: no such file or directory")
            continue
        except PermissionError:
            out.errors.append(f"{raw}: permission denied")
            continue
        except OSError as exc:
            out.errors.append(f"{raw}: {exc.strerror or exc}")
            continue
        if stat.S_ISDIR(st.st_mode):
            settings = resolver.settings_for_dir(abspath)
            if force_exclude and excluded_with_ancestors(abspath, settings, True):
                continue
            stack = gitignores.for_dir(abspath) if use_gitignore(settings) else ()
            walk("" if path == "." else path, abspath, stack)
        else:
            settings = resolver.settings_for_file(abspath)
            if force_exclude and excluded_with_ancestors(abspath, settings, False):
                continue
            language = language_of(os.path.basename(path), settings, cli_extensions, explicit=True)
            if language is None:
                ext = path.rsplit(".", 1)[-1].lower()
                out.errors.append(
                    f"{raw}: not a file torchlint reads (.{ext}); to lint it anyway, map its extension, "
                    f"e.g. --extension {ext}:python or {ext}:markdown"
                )
                continue
            add(path, abspath, settings, language, explicit=True)
    out.files.sort(key=lambda f: f.path)
    return out


__all__ = ["Discovery", "GitIgnore", "GitIgnoreStack", "SourceFile", "discover", "language_of"]
