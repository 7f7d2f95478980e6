-- :checkhealth torchlint: the executable, its version and interpreter, the diagnostic
-- mode and the configuration the current buffer is linted with.
local M = {}

local health = vim.health or require("health")
local ok = health.ok or health.report_ok
local info = health.info or health.report_info
local warn = health.warn or health.report_warn
local err = health.error or health.report_error
local start = health.start or health.report_start

-- `torchlint version` through the same command the client runs (cmd up to "server").
local function version_cmd(cmd)
  for i, part in ipairs(cmd) do
    if part == "server" then
      local out = vim.list_slice(cmd, 1, i - 1)
      table.insert(out, "version")
      return out
    end
  end
  return nil
end

local function pyproject_with_torchlint(path)
  local dir = vim.fn.fnamemodify(path ~= "" and path or vim.fn.getcwd() .. "/x", ":p:h")
  while true do
    local candidate = dir .. "/pyproject.toml"
    if vim.fn.filereadable(candidate) == 1 then
      for _, line in ipairs(vim.fn.readfile(candidate)) do
        if line:match("^%s*%[tool%.torchlint[%].]") then
          return candidate
        end
      end
    end
    local parent = vim.fn.fnamemodify(dir, ":h")
    if parent == dir then
      return nil
    end
    dir = parent
  end
end

-- The file buffer checkhealth was started from (the report itself is in a new buffer).
local function source_buffer()
  local best
  for _, b in ipairs(vim.fn.getbufinfo({ buflisted = 1 })) do
    if b.name ~= "" and vim.bo[b.bufnr].buftype == "" and (not best or b.lastused > best.lastused) then
      best = b
    end
  end
  return best and best.bufnr or nil
end

function M.check()
  local tl = require("torchlint")
  local config = tl.current_config()
  local cmd = config.cmd

  start("torchlint: server executable")
  local runnable, problem = tl.check_cmd(cmd)
  if not runnable then
    err(problem)
  elseif type(cmd) == "function" then
    info("cmd is a function: not checked")
  else
    ok(("executable: %s (%s)"):format(vim.fn.exepath(cmd[1]), table.concat(cmd, " ")))
    local vcmd = version_cmd(cmd)
    if vcmd then
      local out = vim.fn.system(vcmd)
      if vim.v.shell_error ~= 0 then
        err(("`%s` failed: %s"):format(table.concat(vcmd, " "), out))
      else
        local version = out:match("torchlint (%S+)")
        local py_version, interpreter = out:match("python (%S+) ([^\n]+)")
        ok("version: torchlint " .. tostring(version))
        if interpreter then
          ok(("interpreter: %s (Python %s)"):format(interpreter, py_version))
        else
          warn("interpreter: not reported by this torchlint version")
        end
      end
    else
      info("version: cmd does not end in `server`; not asked")
    end
  end

  start("torchlint: client")
  local mode = (config.init_options or {}).diagnosticMode or "auto"
  ok(("diagnostic mode: %s (%s)"):format(mode, mode == "pull" and "Neovim pulls diagnostics" or "the server pushes them"))
  if vim.lsp.is_enabled then
    if vim.lsp.is_enabled(tl.name) then
      ok('enabled with vim.lsp.enable("torchlint")')
    else
      warn('not enabled: add vim.lsp.enable("torchlint") to your init.lua (or call require("torchlint").setup())')
    end
  end
  local bufnr = source_buffer()
  local client = bufnr and tl.get_client(bufnr)
  if client then
    ok(("attached to this buffer: client %d, positions in %s"):format(client.id, client.offset_encoding))
  else
    info("no torchlint client is attached to the current file's buffer")
  end

  start("torchlint: configuration")
  local settings = ((config.settings or {}).torchlint) or {}
  info("editor settings: " .. vim.inspect(settings, { newline = " ", indent = "" }))
  local project = pyproject_with_torchlint(bufnr and vim.api.nvim_buf_get_name(bufnr) or "")
  if project then
    ok("project config: " .. project)
  else
    info("project config: none ([tool.torchlint] not found above the current file); torchlint's defaults apply")
  end
  info(("configurationPreference: %s"):format(settings.configurationPreference or "editorFirst (default)"))
  info("server logs: :TorchlintShowLogs (" .. vim.lsp.get_log_path() .. ")")
end

return M
