"""Settings: ``[tool.torchlint]`` in pyproject.toml, merged with the command line.

As in ruff, each file is governed by the closest ``pyproject.toml`` above it
that has a ``[tool.torchlint]`` table (a pyproject without one is passed over),
paths in that table are relative to the file's directory, and flags given on
the command line override it. ``--config`` names one file for every path.

Anything wrong in a config raises :class:`ConfigError` whose ``str()`` is the
one line the CLI prints after ``error:``.
"""

from __future__ import annotations

import difflib
import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    try:
        import tomli as tomllib  # type: ignore[no-redef]
    except ModuleNotFoundError:  # pragma: no cover - depends on the interpreter
        tomllib = None  # type: ignore[assignment]

# The rule registry (and with it libcst and every rule) is imported by the functions
# that need it: reading a config file does not, so the language server process can
# find a file's settings without loading the rules (its analysis processes do).

# Directories (and files) skipped while walking, unless ``exclude`` replaces the list.
DEFAULT_EXCLUDE: tuple[str, ...] = (
    ".git",
    ".hg",
    ".svn",
    ".bzr",
    ".venv",
    "venv",
    ".direnv",
    ".eggs",
    ".tox",
    ".nox",
    ".mypy_cache",
    ".pytest_cache",
    ".ruff_cache",
    ".torchlint_cache",
    ".ipynb_checkpoints",
    "__pycache__",
    "__pypackages__",
    "_build",
    "buck-out",
    "build",
    "dist",
    "node_modules",
    "site-packages",
)

LANGUAGES = ("python", "markdown", "notebook", "rst")
# Extension (no dot, lower case) -> language, for files found by walking directories.
DEFAULT_EXTENSIONS: Mapping[str, str] = {"py": "python", "pyi": "python", "ipynb": "notebook"}
# Files named on the command line are also recognised by these.
EXPLICIT_EXTENSIONS: Mapping[str, str] = {
    **DEFAULT_EXTENSIONS,
    "md": "markdown",
    "markdown": "markdown",
    "qmd": "markdown",
    "myst": "markdown",
    "rst": "rst",
}
# Named on the command line, these are not linted as Python (that would pass a JSON
# file, a dict expression, as clean): one error line asks for an --extension mapping.
NOT_PYTHON_EXTENSIONS = frozenset(
    {
        "json", "jsonl", "yaml", "yml", "toml", "cfg", "ini", "csv", "tsv", "txt", "log", "xml", "html", "htm",
        "css", "js", "ts", "sh", "bash", "c", "cc", "cpp", "h", "hpp", "cu", "java", "go", "rs", "r", "jl", "tex",
        "pdf", "png", "jpg", "jpeg", "gif", "svg", "zip", "gz", "tar", "pt", "pth", "pkl", "npy", "npz", "onnx",
    }
)

KNOWN_KEYS = (
    "select",
    "ignore",
    "extend-select",
    "per-file-ignores",
    "extend-per-file-ignores",
    "exclude",
    "extend-exclude",
    "respect-gitignore",
    "extension",
    "torch-version",
    "torchvision-version",
    "conventional-imports",
    "max-file-size",
)


class ConfigError(Exception):
    """A config or command-line setting that cannot be used; ``str()`` is one line."""


# --- globs --------------------------------------------------------------------


def glob_to_regex(pattern: str, *, braces: bool = True) -> str:
    """Translate a path glob to a regex (no anchors).

    ``*`` and ``?`` stop at ``/``; ``**`` crosses directories (``**/x``, ``a/**``,
    ``a/**/b`` as in git); ``[...]`` classes (``[!x]`` negates); ``{a,b}``
    alternatives when ``braces``; ``\\x`` is a literal ``x``.
    """
    out: list[str] = []
    i, n = 0, len(pattern)
    depth = 0
    while i < n:
        c = pattern[i]
        if c == "*":
            if pattern.startswith("**", i):
                at_start = i == 0 or pattern[i - 1] == "/"
                j = i + 2
                if at_start and j < n and pattern[j] == "/":
                    out.append("(?:.*/)?")  # **/ : zero or more directories
                    i = j + 1
                    continue
                if at_start and j == n:
                    out.append(".*")  # trailing /** : everything inside
                    i = j
                    continue
                out.append("[^/]*")  # other ** behave like *
                i = j
                continue
            out.append("[^/]*")
        elif c == "?":
            out.append("[^/]")
        elif c == "[":
            j = i + 1
            if j < n and pattern[j] in "!^":
                j += 1
            if j < n and pattern[j] == "]":
                j += 1
            while j < n and pattern[j] != "]":
                j += 1
            if j >= n:
                out.append(re.escape(c))
            else:
                body = pattern[i + 1 : j]
                negate = body[:1] in ("!", "^")
                if negate:
                    body = body[1:]
                body = body.replace("\\", "\\\\")
                out.append(f"[{'^/' if negate else ''}{body}]")
                i = j
        elif c == "\\" and i + 1 < n:
            i += 1
            out.append(re.escape(pattern[i]))
        elif braces and c == "{":
            depth += 1
            out.append("(?:")
        elif braces and c == "}" and depth:
            depth -= 1
            out.append(")")
        elif braces and c == "," and depth:
            out.append("|")
        else:
            out.append(re.escape(c))
        i += 1
    if depth:  # unbalanced braces: take the pattern literally
        return glob_to_regex(pattern, braces=False)
    return "".join(out)


@dataclass(frozen=True)
class PathPattern:
    """An ``exclude`` / ``per-file-ignores`` pattern, ruff-style.

    A pattern without ``/`` matches a file or directory name anywhere
    (``build``, ``test_*.py``); one with ``/`` is a path relative to ``root``
    (``docs/*.py``, ``src/**/gen_*.py``); an absolute one matches absolute paths.
    """

    pattern: str
    root: str  # absolute, posix

    @property
    def _regex(self) -> re.Pattern[str]:
        return _compile(self.pattern)

    def matches(self, abspath: str) -> bool:
        """``abspath``: an absolute posix path of the file or directory."""
        pat = self.pattern
        if "/" not in pat.rstrip("/"):
            return bool(self._regex.fullmatch(abspath.rsplit("/", 1)[-1]))
        if os.path.isabs(pat):
            return bool(self._regex.fullmatch(abspath))
        root = self.root.rstrip("/") + "/"
        if not abspath.startswith(root):
            return False
        return bool(self._regex.fullmatch(abspath[len(root) :]))


@lru_cache(maxsize=1024)
def _compile(pattern: str) -> re.Pattern[str]:
    pat = pattern.rstrip("/")
    if pat.startswith("./"):
        pat = pat[2:]
    return re.compile(glob_to_regex(pat))


def posix(path: str | os.PathLike[str]) -> str:
    return os.path.abspath(path).replace(os.sep, "/")


# --- rule selection -----------------------------------------------------------


@dataclass(frozen=True)
class Selection:
    """One layer of rule selection (a config file, or the command line)."""

    select: tuple[str, ...] | None = None
    ignore: tuple[str, ...] = ()
    extend_select: tuple[str, ...] = ()

    def is_empty(self) -> bool:
        return self.select is None and not self.ignore and not self.extend_select


def _specificity(selector: str) -> int:
    s = selector.strip().upper()
    return 0 if s == "ALL" else len(s)


def resolve_codes(layers: Iterable[Selection], ignore: Iterable[str] = ()) -> frozenset[str]:
    """Apply selection layers in order, ruff's way.

    A layer with ``select`` starts over from it; within a layer the most
    specific matching selector decides a code (``ignore = ["TL2"]`` with
    ``extend-select = ["TL201"]`` keeps TL201) and ``ignore`` wins a tie.
    ``ignore`` afterwards (per-file ignores) removes codes outright. The
    starting set is the default one: off-by-default rules need a selector.
    """
    from torchlint.rules import all_rules, default_codes, matches

    codes = list(all_rules())
    enabled = set(default_codes())
    for layer in layers:
        if layer.is_empty():
            continue
        positives = list(layer.extend_select)
        if layer.select is not None:
            positives = list(layer.select) + positives
            base: set[str] = set()
        else:
            base = enabled
        new: set[str] = set()
        for code in codes:
            best: tuple[int, int] | None = None  # (specificity, 0 = ignore / 1 = select)
            for s in positives:
                if matches(code, s):
                    cand = (_specificity(s), 1)
                    best = cand if best is None or cand > best else best
            for s in layer.ignore:
                if matches(code, s):
                    cand = (_specificity(s), 0)
                    if best is None or cand[0] >= best[0]:
                        best = cand
            if best is None:
                if code in base:
                    new.add(code)
            elif best[1] == 1:
                new.add(code)
        enabled = new
    ignored = list(ignore)
    return frozenset(c for c in codes if c in enabled and not any(matches(c, s) for s in ignored))


@dataclass(frozen=True)
class Codes:
    """A rule selection, resolved to codes (:meth:`resolve`) where the rules are loaded.

    The language server's process never resolves one: resolving imports the rule
    registry (libcst and every rule: 0.4 s of CPU and 15 MB), which its analysis
    processes have anyway. Two lints used the same rules when their ``Codes`` are equal.
    """

    layers: tuple[Selection, ...]
    ignore: tuple[str, ...] = ()

    def resolve(self) -> frozenset[str]:
        return _resolve(self)

    # Where a frozenset of codes is expected (LintOptions.codes), it acts as one.
    def __contains__(self, code: object) -> bool:
        return code in self.resolve()

    def __iter__(self):  # type: ignore[no-untyped-def]
        return iter(self.resolve())

    def __len__(self) -> int:
        return len(self.resolve())


@lru_cache(maxsize=64)
def _resolve(codes: Codes) -> frozenset[str]:
    return resolve_codes(codes.layers, codes.ignore)


def resolved(codes: "Codes | frozenset[str] | None") -> frozenset[str] | None:
    """The codes of a job (analysis processes and the server's fallback thread call this)."""
    return codes.resolve() if isinstance(codes, Codes) else codes


def unknown_selectors(selectors: Iterable[str]) -> list[str]:
    from torchlint.rules import is_valid_selector

    return [s for s in selectors if not is_valid_selector(s)]


def split_codes(values: Iterable[str] | None) -> tuple[str, ...] | None:
    """``--select TL1,TL2 --select TL3`` -> ("TL1", "TL2", "TL3")."""
    if values is None:
        return None
    out: list[str] = []
    for v in values:
        out.extend(p.strip() for p in v.split(",") if p.strip())
    return tuple(out)


# --- settings -----------------------------------------------------------------


@dataclass(frozen=True)
class Settings:
    """One config file's settings (or the defaults, when no config applies)."""

    root: str  # absolute posix directory that relative patterns are anchored to
    path: str | None = None  # the config file, None for the defaults
    selection: Selection = Selection()
    per_file_ignores: tuple[tuple[PathPattern, tuple[str, ...]], ...] = ()
    exclude: tuple[PathPattern, ...] = ()
    respect_gitignore: bool = True
    extensions: tuple[tuple[str, str], ...] = ()
    # The releases to lint for; the knowledge base reads them (knowledge/target.py).
    torch_version: str | None = None
    torchvision_version: str | None = None
    # Documents: extra name = "qualified.name" entries for names used without an import.
    conventional_imports: tuple[tuple[str, str], ...] = ()
    # Files larger than this many bytes are skipped with a message (None: sources.MAX_BYTES).
    max_file_size: int | None = None

    @classmethod
    def default(cls, root: str | os.PathLike[str]) -> "Settings":
        r = posix(root)
        return cls(root=r, exclude=tuple(PathPattern(p, r) for p in DEFAULT_EXCLUDE))

    def is_excluded(self, abspath: str) -> bool:
        return any(p.matches(abspath) for p in self.exclude)

    def ignored_codes(self, abspath: str) -> tuple[str, ...]:
        out: list[str] = []
        for pattern, codes in self.per_file_ignores:
            if pattern.matches(abspath):
                out.extend(codes)
        return tuple(out)


def load_toml(path: Path, display: str | os.PathLike[str] | None = None) -> dict[str, Any]:
    """Parse a TOML file; errors name it as ``display`` (default: the path)."""
    shown = path if display is None else display
    if tomllib is None:  # pragma: no cover
        raise ConfigError(f"{shown}: reading TOML needs Python 3.11 or the 'tomli' package")
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"{shown}: cannot read: {exc.strerror or exc}") from None
    try:
        return tomllib.loads(data.decode("utf-8"))
    except UnicodeDecodeError:
        raise ConfigError(f"{shown}: not valid UTF-8") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{shown}: invalid TOML: {exc}") from None


def _table_of(doc: dict[str, Any], path: Path) -> dict[str, Any] | None:
    tool = doc.get("tool")
    if not isinstance(tool, dict) or "torchlint" not in tool:
        return None
    table = tool["torchlint"]
    if not isinstance(table, dict):
        raise ConfigError(f"{path}: [tool.torchlint] must be a table")
    return table


def settings_from_table(table: Mapping[str, Any], root: str, where: str) -> Settings:
    """Validate a ``[tool.torchlint]`` table. ``where`` prefixes every message."""

    def fail(what: str) -> ConfigError:
        return ConfigError(f"{where}: [tool.torchlint] {what}")

    for key in table:
        if key not in KNOWN_KEYS:
            close = difflib.get_close_matches(key.replace("_", "-"), KNOWN_KEYS, n=1)
            hint = f" (did you mean `{close[0]}`?)" if close else ""
            raise fail(f"unknown key `{key}`{hint}; known keys: {', '.join(KNOWN_KEYS)}")

    def str_list(key: str) -> tuple[str, ...] | None:
        if key not in table:
            return None
        value = table[key]
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise fail(f"`{key}` must be a list of strings, got {_describe(value)}")
        return tuple(value)

    def codes(key: str, value: tuple[str, ...] | None) -> tuple[str, ...] | None:
        if value is None:
            return None
        bad = unknown_selectors(value)
        if bad:
            raise fail(f"unknown rule code{'s' if len(bad) > 1 else ''} in `{key}`: {', '.join(bad)}")
        return value

    select = codes("select", str_list("select"))
    ignore = codes("ignore", str_list("ignore")) or ()
    extend_select = codes("extend-select", str_list("extend-select")) or ()

    pfi: list[tuple[PathPattern, tuple[str, ...]]] = []
    for key in ("per-file-ignores", "extend-per-file-ignores"):
        if key not in table:
            continue
        value = table[key]
        if not isinstance(value, dict):
            raise fail(f"`{key}` must be a table of glob = [codes], got {_describe(value)}")
        for glob, cs in value.items():
            if not isinstance(cs, list) or not all(isinstance(c, str) for c in cs):
                raise fail(f"`{key}` entry {glob!r} must be a list of rule codes, got {_describe(cs)}")
            bad = unknown_selectors(cs)
            if bad:
                raise fail(f"unknown rule code{'s' if len(bad) > 1 else ''} in `{key}` entry {glob!r}: {', '.join(bad)}")
            pfi.append((PathPattern(glob, root), tuple(cs)))

    exclude = str_list("exclude")
    extend_exclude = str_list("extend-exclude") or ()
    patterns = (DEFAULT_EXCLUDE if exclude is None else exclude) + extend_exclude

    respect = table.get("respect-gitignore", True)
    if not isinstance(respect, bool):
        raise fail(f"`respect-gitignore` must be true or false, got {_describe(respect)}")

    ext_table = table.get("extension", {})
    if not isinstance(ext_table, dict):
        raise fail(f"`extension` must be a table of extension = language, got {_describe(ext_table)}")
    extensions: list[tuple[str, str]] = []
    for ext, lang in ext_table.items():
        if lang not in LANGUAGES:
            raise fail(f"`extension` entry {ext!r}: unknown language {lang!r} (expected one of {', '.join(LANGUAGES)})")
        extensions.append((ext.lstrip(".").lower(), lang))

    versions: dict[str, str] = {}
    for key in ("torch-version", "torchvision-version"):
        if key in table:
            value = table[key]
            if not isinstance(value, str) or not re.fullmatch(r"\d+(\.\d+){0,2}", value.strip()):
                raise fail(f"`{key}` must be a release like \"2.4\", got {_describe(value)}")
            versions[key] = value.strip()
    conv = table.get("conventional-imports", {})
    if not isinstance(conv, dict) or not all(
        isinstance(k, str) and k.isidentifier() and isinstance(v, str) and v and all(p.isidentifier() for p in v.split("."))
        for k, v in conv.items()
    ):
        raise fail("`conventional-imports` must be a table of name = \"qualified.name\" (e.g. np = \"numpy\")")

    max_file_size = None
    if "max-file-size" in table:
        value = table["max-file-size"]
        m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([KMG]B)?\s*", value, re.IGNORECASE) if isinstance(value, str) else None
        if isinstance(value, int) and not isinstance(value, bool) and value > 0:
            max_file_size = value
        elif m is not None and float(m.group(1)) > 0:
            scale = {None: 1, "KB": 1024, "MB": 1024**2, "GB": 1024**3}[m.group(2) and m.group(2).upper()]
            max_file_size = int(float(m.group(1)) * scale)
        else:
            raise fail(f"`max-file-size` must be a size in bytes or like \"4MB\", got {_describe(value)}")

    return Settings(
        max_file_size=max_file_size,
        conventional_imports=tuple(sorted(conv.items())),
        root=root,
        path=where,
        selection=Selection(select, ignore, extend_select),
        per_file_ignores=tuple(pfi),
        exclude=tuple(PathPattern(p, root) for p in patterns),
        respect_gitignore=respect,
        extensions=tuple(extensions),
        torch_version=versions.get("torch-version"),
        torchvision_version=versions.get("torchvision-version"),
    )


def _describe(value: Any) -> str:
    kind = {str: "a string", bool: "a boolean", int: "an integer", float: "a number", list: "a list", dict: "a table"}
    return f"{kind.get(type(value), type(value).__name__)} ({value!r})" if not isinstance(value, (list, dict)) else kind[type(value)]


def load_config_file(path: str | os.PathLike[str]) -> Settings:
    """``--config PATH``: a pyproject.toml (its [tool.torchlint]) or a file of top-level keys."""
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"{p}: config file not found")
    doc = load_toml(p)
    root = posix(p.parent)
    if p.name == "pyproject.toml":
        table = _table_of(doc, p)
        return settings_from_table(table or {}, root, str(p))
    # A torchlint.toml may also spell it [tool.torchlint].
    table = _table_of(doc, p)
    return settings_from_table(doc if table is None else table, root, str(p))


def inline_config(text: str, cwd: str) -> Settings:
    """``--config "select = ['TL2']"``: TOML key/values, as ruff accepts."""
    if tomllib is None:  # pragma: no cover
        raise ConfigError("--config: reading TOML needs Python 3.11 or the 'tomli' package")
    try:
        table = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"--config {text!r}: neither a file nor valid TOML: {exc}") from None
    return settings_from_table(table, posix(cwd), "--config")


@dataclass
class Resolver:
    """Finds the settings for each directory, once per directory."""

    cli: Selection = Selection()
    config_override: Settings | None = None
    cwd: str = field(default_factory=os.getcwd)
    _by_dir: dict[str, Settings] = field(default_factory=dict)
    _by_file: dict[str, Settings | None] = field(default_factory=dict)
    _codes: dict[tuple[Settings, tuple[str, ...]], frozenset[str]] = field(default_factory=dict)

    def settings_for_dir(self, directory: str) -> Settings:
        """``directory``: absolute posix path."""
        if self.config_override is not None:
            return self.config_override
        chain: list[str] = []
        d = directory
        found: Settings | None = None
        while True:
            if d in self._by_dir:
                found = self._by_dir[d]
                break
            chain.append(d)
            s = self._read_dir(d)
            if s is not None:
                found = s
                break
            parent = os.path.dirname(d)
            if parent == d:
                break
            d = parent
        if found is None:
            found = self._default()
        for c in chain:
            self._by_dir[c] = found
        return found

    def settings_for_file(self, abspath: str) -> Settings:
        return self.settings_for_dir(os.path.dirname(abspath) or "/")

    def _read_dir(self, d: str) -> Settings | None:
        candidate = d.rstrip("/") + "/pyproject.toml"
        if candidate in self._by_file:
            return self._by_file[candidate]
        result: Settings | None = None
        p = Path(candidate)
        if p.is_file():
            shown = self._display(p)
            table = _table_of(load_toml(p, shown), shown)
            if table is not None:
                result = settings_from_table(table, d, str(shown))
        self._by_file[candidate] = result
        return result

    def _default(self) -> Settings:
        key = "<default>"
        if key not in self._by_file or self._by_file[key] is None:
            self._by_file[key] = Settings.default(self.cwd)
        return self._by_file[key]  # type: ignore[return-value]

    def _display(self, p: Path) -> Path:
        try:
            return p.relative_to(self.cwd) if p.is_absolute() else p
        except ValueError:
            return p

    def codes_for(self, abspath: str, settings: Settings | None = None) -> frozenset[str]:
        settings = settings or self.settings_for_file(abspath)
        ignored = settings.ignored_codes(abspath)
        key = (settings, ignored)
        codes = self._codes.get(key)
        if codes is None:
            codes = resolve_codes([settings.selection, self.cli], ignored)
            self._codes[key] = codes
        return codes

    def project_root(self) -> str:
        """Where the cache lives: the config's directory for the working directory, else the git root, else cwd."""
        if self.config_override is not None and self.config_override.path not in (None, "--config"):
            return self.config_override.root
        s = self.settings_for_dir(posix(self.cwd))
        if s.path is not None and s.path != "--config":
            return s.root
        d = posix(self.cwd)
        while True:
            if os.path.exists(d.rstrip("/") + "/.git"):
                return d
            parent = os.path.dirname(d)
            if parent == d:
                return posix(self.cwd)
            d = parent


__all__ = [
    "ConfigError",
    "DEFAULT_EXCLUDE",
    "PathPattern",
    "Resolver",
    "Selection",
    "Settings",
    "glob_to_regex",
    "load_config_file",
    "resolve_codes",
]
