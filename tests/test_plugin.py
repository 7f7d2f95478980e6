"""Plugin rules, end to end, with the sample plugin (examples/torchlint-example).

The plugin must work as a built-in rule does: the CLI, ``[tool.torchlint]``,
``# noqa``, SARIF, the API, the cache and the language server. Subprocesses get
it on their ``PYTHONPATH`` (this interpreter, and the environment the rest of
the suite runs in, never see it): for the fast tests as installed metadata sees
it, its ``dist-info`` (entry points read from its pyproject.toml) beside its
sources; one slow test builds and installs it for real with pip. Plugins that
cannot be used are made up on the spot and must stop torchlint with one line.
"""

from __future__ import annotations

import contextlib
import importlib
import io
import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from lsprotocol import types as t
from pytest_lsp import ClientServerConfig, client_capabilities

from conftest import ROOT

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    tomllib = pytest.importorskip("tomli")

EXAMPLE = ROOT / "examples" / "torchlint-example"
URL = "https://github.com/torchlint/torchlint/blob/main/examples/torchlint-example/README.md"

TRAIN = """\
import torch

state = torch.load("ckpt.pt", weights_only=True)
resumed = torch.load("ckpt.pt", weights_only=True)  # noqa: EX101
it = iter(loader)
batch = it.next()
"""


def write_dist_info(base: Path, name: str, version: str, entry_points: dict[str, str]) -> None:
    info = base / f"{name.replace('-', '_')}-{version}.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")
    lines = [f"{k} = {v}" for k, v in entry_points.items()]
    (info / "entry_points.txt").write_text("[torchlint.rules]\n" + "\n".join(lines) + "\n")


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> tuple[Path, ...]:
    """The sample plugin as an installed distribution looks to importlib.metadata, without a build."""
    project = tomllib.loads((EXAMPLE / "pyproject.toml").read_text())["project"]
    base = tmp_path_factory.mktemp("plugin-site")
    write_dist_info(base, project["name"], project["version"], project["entry-points"]["torchlint.rules"])
    return (base, EXAMPLE / "src")


def env_with(*paths: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["PYTHONPATH"] = os.pathsep.join([*map(str, paths), str(ROOT)])
    env["NO_COLOR"] = "1"
    return env


@contextlib.contextmanager
def plugins_on_path(*paths: Path):
    """As a fresh process with ``paths`` on its PYTHONPATH would see the rules; everything is put back afterwards."""
    from torchlint import rules

    entries = [str(p) for p in paths]
    saved = (list(sys.path), rules._REGISTRY, rules._FAILURE, os.getcwd(), set(sys.modules))
    sys.path[:0] = entries
    importlib.invalidate_caches()
    rules._REGISTRY = rules._FAILURE = None  # rebuilt from the entry points now on sys.path
    try:
        yield
    finally:
        sys.path[:], rules._REGISTRY, rules._FAILURE = saved[0], saved[1], saved[2]
        os.chdir(saved[3])
        for name in set(sys.modules) - saved[4]:
            if any(str(getattr(sys.modules[name], "__file__", None) or "").startswith(e) for e in entries):
                del sys.modules[name]


def torchlint(site: tuple[Path, ...] | None, *args: str, cwd: Path, extra: tuple[Path, ...] = ()) -> subprocess.CompletedProcess[str]:
    """``torchlint ARGS`` with the plugin installed, in this process (a new interpreter per call costs seconds)."""
    from torchlint import cli

    out, err = io.StringIO(), io.StringIO()
    with plugins_on_path(*extra, *(site or ())):
        os.chdir(cwd)
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = cli.main(list(args))
    return subprocess.CompletedProcess(["torchlint", *args], code, out.getvalue(), err.getvalue())


def concise(site: tuple[Path, ...], *args: str, cwd: Path) -> list[str]:
    p = torchlint(site, "check", "--no-cache", "--output-format", "concise", *args, cwd=cwd)
    assert p.returncode in (0, 1), p.stderr
    return [line for line in p.stdout.splitlines() if line and not line.startswith(("Found", "No fixes", "["))]


def test_plugin_rule_is_listed_and_documented(site, tmp_path):
    p = torchlint(site, "rules", cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    (row,) = [line for line in p.stdout.splitlines() if line.startswith("EX101")]
    assert "torch-load-map-location" in row and "[*]" in row
    assert "TL201" in p.stdout  # beside the built-in rules
    p = torchlint(site, "rule", "torch-load-map-location", cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    assert p.stdout.startswith("# torch-load-map-location (EX101)")
    assert "## Why is this bad?" in p.stdout and "## Fix safety" in p.stdout


def test_cli_reports_selects_ignores_and_honours_noqa(site, tmp_path):
    (tmp_path / "train.py").write_text(TRAIN)
    assert concise(site, "train.py", cwd=tmp_path) == [
        "train.py:3:9: EX101 `torch.load` without `map_location=`: a checkpoint saved on a GPU will not load without one",
        "train.py:6:9: TL201 [*] `it.next()` does not exist on Python 3 iterators; use `next(it)`",
    ]  # line 4's `# noqa: EX101` holds
    assert [x.split()[1] for x in concise(site, "--select", "EX", "train.py", cwd=tmp_path)] == ["EX101"]
    assert [x.split()[1] for x in concise(site, "--ignore", "EX101", "train.py", cwd=tmp_path)] == ["TL201"]
    # `TL` is torchlint's own rules, not the plugin's.
    assert [x.split()[1] for x in concise(site, "--select", "TL", "train.py", cwd=tmp_path)] == ["TL201"]
    # Without the plugin, its code is unknown: a config error, not a silent no-op.
    p = torchlint(None, "check", "--no-cache", "--select", "EX101", "train.py", cwd=tmp_path)
    assert p.returncode == 2 and "EX101" in p.stderr


def test_cli_applies_the_plugin_fix_only_when_unsafe_fixes_are_asked_for(site, tmp_path):
    (tmp_path / "train.py").write_text(TRAIN)
    p = torchlint(site, "check", "--no-cache", "--fix", "--select", "EX101", "train.py", cwd=tmp_path)
    assert p.returncode == 1 and (tmp_path / "train.py").read_text() == TRAIN
    p = torchlint(site, "check", "--no-cache", "--fix", "--unsafe-fixes", "--select", "EX101", "train.py", cwd=tmp_path)
    assert p.returncode == 0, p.stdout + p.stderr
    fixed = (tmp_path / "train.py").read_text()
    assert 'state = torch.load("ckpt.pt", weights_only=True, map_location="cpu")\n' in fixed
    assert 'resumed = torch.load("ckpt.pt", weights_only=True)  # noqa: EX101\n' in fixed


def test_config_select_ignore_and_per_file_ignores(site, tmp_path):
    (tmp_path / "pyproject.toml").write_text(
        textwrap.dedent(
            """
            [tool.torchlint]
            select = ["EX1", "TL2"]
            ignore = ["TL201"]
            per-file-ignores = { "legacy/*" = ["EX101"] }
            """
        )
    )
    (tmp_path / "train.py").write_text(TRAIN)
    (tmp_path / "legacy").mkdir()
    (tmp_path / "legacy" / "old.py").write_text(TRAIN)
    assert [x.split()[:2] for x in concise(site, ".", cwd=tmp_path)] == [["train.py:3:9:", "EX101"]]
    (tmp_path / "pyproject.toml").write_text('[tool.torchlint]\nignore = ["EX101"]\n')
    assert [x.split()[1] for x in concise(site, ".", cwd=tmp_path)] == ["TL201", "TL201"]
    (tmp_path / "pyproject.toml").write_text('[tool.torchlint]\nignore = ["EX102"]\n')
    p = torchlint(site, "check", "--no-cache", ".", cwd=tmp_path)
    assert p.returncode == 2 and "EX102" in p.stderr and "Traceback" not in p.stderr


def test_sarif_describes_the_plugin_rule(site, tmp_path):
    (tmp_path / "train.py").write_text(TRAIN)
    p = torchlint(site, "check", "--no-cache", "--output-format", "sarif", "train.py", cwd=tmp_path)
    assert p.returncode == 1, p.stderr
    run = json.loads(p.stdout)["runs"][0]
    rules = run["tool"]["driver"]["rules"]
    (ex,) = [r for r in rules if r["id"] == "EX101"]
    assert ex["name"] == "torch-load-map-location"
    assert ex["helpUri"] == URL
    assert ex["shortDescription"]["text"].startswith("Checks for `torch.load(...)` calls that do not say where")
    assert "## Fix safety" in ex["help"]["markdown"]
    (result,) = [r for r in run["results"] if r["ruleId"] == "EX101"]
    assert rules[result["ruleIndex"]] is ex or rules[result["ruleIndex"]]["id"] == "EX101"
    assert result["locations"][0]["physicalLocation"]["region"]["startLine"] == 3


def test_api_and_cache_see_the_plugin(site):
    import torchlint
    from torchlint.cache import _build_fingerprint

    def observe() -> tuple[list[str], list[str] | str, str]:
        try:
            selected: list[str] | str = [f.code for f in torchlint.lint_source(TRAIN, "train.py", select="EX")]
        except ValueError as exc:
            selected = str(exc)
        return [f.code for f in torchlint.lint_source(TRAIN, "train.py")], selected, _build_fingerprint()

    with plugins_on_path(*site):
        with_plugin = observe()
    with plugins_on_path():
        without = observe()
    assert with_plugin[:2] == (["EX101", "TL201"], ["EX101"])
    assert without[:2] == (["TL201"], "unknown rule code or prefix: EX (see `torchlint rules`)")
    # Installing (or changing) a plugin changes results: the cache must not serve the old ones.
    assert with_plugin[2] != without[2]


@pytest.mark.slow  # a pytest run of its own
def test_the_plugin_tests_itself_with_torchlint_testing(site):
    p = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(EXAMPLE / "tests")],
        cwd=EXAMPLE,
        env=env_with(*site),
        capture_output=True,
        text=True,
    )
    assert p.returncode == 0, p.stdout + p.stderr
    assert " passed" in p.stdout and "failed" not in p.stdout


def test_contributing_worked_example_is_the_sample_rule():
    # CONTRIBUTING.md walks through this rule; its logic must be the code that is tested here.
    guide = (ROOT / "CONTRIBUTING.md").read_text(encoding="utf-8")
    source = (EXAMPLE / "src" / "torchlint_example" / "map_location.py").read_text(encoding="utf-8")
    body = source[source.index("    def visit_Call") :]
    assert body in guide


# --- plugins that cannot be used ---------------------------------------------------------


def fake_plugin(base: Path, dist: str, entry: str, module: str, source: str) -> Path:
    """An installed distribution as importlib.metadata sees it: a module and a dist-info directory."""
    base.mkdir(parents=True, exist_ok=True)
    (base / f"{module}.py").write_text(textwrap.dedent(source))
    name, _, value = entry.partition(" = ")
    write_dist_info(base, dist, "1.0", {name: value})
    return base


RULE_SOURCE = """
    from torchlint import Rule

    class Clashing(Rule):
        '''A rule.'''
        code = "{code}"
        name = "{name}"
        message = "clash"
"""


@pytest.mark.parametrize(
    "code,name,expected",
    [
        ("TL201", "my-rule", "rule code TL201 clashes with the built-in rule TL201 (iterator-next-method)"),
        ("EX101", "my-rule", "rule code EX101 clashes with plugin EX101 = 'torchlint_example.map_location:TorchLoadMapLocation' (from torchlint-example 0.1.0)"),
        ("ZZ100", "iterator-next-method", "rule name iterator-next-method is already used by TL201"),
        ("TL999", "my-rule", "rule code TL999 uses the prefix TL, which is reserved for built-in rules"),
        ("zz1", "my-rule", "has code 'zz1'; expected capital letters then digits"),
    ],
)
def test_a_clashing_or_malformed_plugin_is_one_line_and_exit_2(site, tmp_path, code, name, expected):
    bad = fake_plugin(tmp_path / "bad", "bad-plugin", "bad = bad_rules:Clashing", "bad_rules", RULE_SOURCE.format(code=code, name=name))
    (tmp_path / "x.py").write_text("x = 1\n")
    for args in (["check", "--no-cache", "x.py"], ["rules"]):
        p = torchlint(site, *args, cwd=tmp_path, extra=(bad,))
        assert p.returncode == 2, p.stdout + p.stderr
        lines = p.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: plugin "), p.stderr
        assert expected in lines[0], lines[0]
    assert "bad = 'bad_rules:Clashing' (from bad-plugin 1.0)" in lines[0]


def test_a_plugin_that_fails_to_import_is_one_line_and_exit_2(tmp_path):
    bad = fake_plugin(tmp_path / "bad", "broken-plugin", "broken = broken_rules:Rule1", "broken_rules", "import no_such_module_zz\n")
    (tmp_path / "x.py").write_text("x = 1\n")
    p = torchlint(None, "check", "--no-cache", "x.py", cwd=tmp_path, extra=(bad,))
    assert p.returncode == 2
    assert p.stderr.strip() == (
        "error: plugin broken = 'broken_rules:Rule1' (from broken-plugin 1.0) failed to load: "
        "ModuleNotFoundError: No module named 'no_such_module_zz'"
    )


def test_a_module_entry_point_contributes_all_its_rules(tmp_path):
    two = """
        import libcst as cst
        from torchlint import Rule

        class NoPrint(Rule):
            code, name, message = "ZZ101", "no-print", "print() in library code"
            def visit_Call(self, node: cst.Call) -> None:
                if self.context.qualname(node.func) == "builtins.print":
                    self.report(node)

        class NoExit(Rule):
            code, name, message = "ZZ102", "no-exit", "exit() in library code"
            def visit_Call(self, node: cst.Call) -> None:
                if self.context.qualname(node.func) == "builtins.exit":
                    self.report(node)
    """
    plugin = fake_plugin(tmp_path / "mod", "two-rules", "zz = zz_rules", "zz_rules", two)
    (tmp_path / "x.py").write_text("print(1)\nexit(0)\n")
    p = torchlint(None, "check", "--no-cache", "--output-format", "concise", "--select", "ZZ", "x.py", cwd=tmp_path, extra=(plugin,))
    assert p.returncode == 1, p.stderr
    assert [line.split()[1] for line in p.stdout.splitlines()[:2]] == ["ZZ101", "ZZ102"]


# --- the language server -----------------------------------------------------------------


@pytest.mark.slow  # a language server end to end
@pytest.mark.asyncio
async def test_server_reports_the_plugin_rule_with_its_link(site, tmp_path):
    (tmp_path / "pyproject.toml").write_text('[tool.torchlint]\nselect = ["EX", "TL201"]\n')
    path = tmp_path / "train.py"
    path.write_text(TRAIN)
    config = ClientServerConfig(server_command=[sys.executable, "-m", "torchlint", "server"], server_env=env_with(*site))
    client = await config.start()
    try:
        await client.initialize_session(
            t.InitializeParams(capabilities=client_capabilities("visual-studio-code"), root_uri=tmp_path.as_uri())
        )
        uri = path.as_uri()
        client.text_document_did_open(t.DidOpenTextDocumentParams(t.TextDocumentItem(uri, "python", 1, TRAIN)))
        await client.wait_for_notification(t.TEXT_DOCUMENT_PUBLISH_DIAGNOSTICS)
        diagnostics = client.diagnostics[uri]
        assert [(d.code, d.range.start.line) for d in diagnostics] == [("EX101", 2), ("TL201", 5)]
        ex = diagnostics[0]
        assert ex.source == "torchlint" and ex.code_description is not None and ex.code_description.href == URL
        hover = await client.text_document_hover_async(t.HoverParams(t.TextDocumentIdentifier(uri), t.Position(2, 12)))
        assert hover is not None and "torch-load-map-location" in hover.contents.value and URL in hover.contents.value
        await client.shutdown_session()
    finally:
        if client._server is not None and client._server.returncode is None:
            client._server.kill()
        await client.stop()


@pytest.mark.slow  # pip builds the wheel, fetching its build backend (setuptools) from the package index
def test_pip_installs_the_sample_plugin_and_torchlint_finds_it(tmp_path):
    source = tmp_path / "src"
    # A copy: pip builds in the source tree, and the checkout must stay clean.
    shutil.copytree(EXAMPLE, source, ignore=shutil.ignore_patterns("build", "*.egg-info", "__pycache__"))
    target = tmp_path / "site"
    p = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--target", str(target), str(source)],
        capture_output=True,
        text=True,
    )
    assert p.returncode == 0, p.stdout + p.stderr
    (info,) = target.glob("torchlint_example-*.dist-info")
    assert "EX101 = torchlint_example.map_location:TorchLoadMapLocation" in (info / "entry_points.txt").read_text()
    (tmp_path / "train.py").write_text(TRAIN)
    p = torchlint((target,), "check", "--no-cache", "--output-format", "concise", "--select", "EX", "train.py", cwd=tmp_path)
    assert p.returncode == 1, p.stderr
    assert p.stdout.splitlines()[0].startswith("train.py:3:9: EX101 ")


@pytest.mark.asyncio
async def test_server_shows_an_unusable_plugin_and_publishes_nothing(tmp_path, monkeypatch):
    from test_service import GatedPool, make_service, open_doc

    from torchlint import rules

    message = "plugin bad = 'bad_rules:Clashing' (from bad-plugin 1.0): rule code TL201 clashes with the built-in rule TL201 (iterator-next-method)"
    monkeypatch.setattr(rules, "_FAILURE", rules.PluginError(message))
    pool = GatedPool()
    service, client, docs = make_service(tmp_path, pool=pool)
    for name in ("a.py", "b.py"):
        assert await open_doc(service, docs, (tmp_path / name).as_uri(), TRAIN) is None
    assert client.shown == [f"torchlint: {message}"]  # once, however many files
    assert client.published == [] and pool.jobs == []


def _declared(group: str = "torchlint.rules") -> list[str]:
    from importlib.metadata import entry_points

    return sorted(ep.value for ep in entry_points(group=group))


def test_no_plugin_anywhere_is_known_without_importlib_metadata(tmp_path, monkeypatch):
    # rules._may_have_plugins looks where importlib.metadata looks; it may say "maybe", never "no" wrongly.
    import zipfile

    from torchlint.rules import _may_have_plugins

    assert _may_have_plugins() is bool(_declared())  # this environment as it is
    other = tmp_path / "other"
    write_dist_info(other, "unrelated", "1.0", {})
    (other / "unrelated-1.0.dist-info" / "entry_points.txt").write_text("[console_scripts]\nu = unrelated:main\n")
    (other / "old.egg-info").write_text("an .egg-info file has no entry points\n")
    monkeypatch.syspath_prepend(str(other))
    importlib.invalidate_caches()
    assert (_may_have_plugins(), _declared()) == (False, [])
    # A plugin in a dist-info, in an .egg directory, in a zip archive on the path.
    plugin = tmp_path / "plugin"
    write_dist_info(plugin, "some-plugin", "2.0", {"X1": "some_plugin:X1"})
    egg = tmp_path / "eggy-1.0-py3.11.egg"
    (egg / "EGG-INFO").mkdir(parents=True)
    (egg / "EGG-INFO" / "PKG-INFO").write_text("Metadata-Version: 1.1\nName: eggy\nVersion: 1.0\n")
    (egg / "EGG-INFO" / "entry_points.txt").write_text("[torchlint.rules]\nE1 = eggy:E1\n")
    archive = tmp_path / "zipped.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("zipped-1.0.dist-info/METADATA", "Metadata-Version: 2.1\nName: zipped\nVersion: 1.0\n")
        zf.writestr("zipped-1.0.dist-info/entry_points.txt", "[torchlint.rules]\nZ1 = zipped:Z1\n")
    for place, value in ((plugin, "some_plugin:X1"), (egg, "eggy:E1"), (archive, "zipped:Z1")):
        with monkeypatch.context() as m:
            m.syspath_prepend(str(place))
            importlib.invalidate_caches()
            assert (_may_have_plugins(), value in _declared()) == (True, True), place.name
