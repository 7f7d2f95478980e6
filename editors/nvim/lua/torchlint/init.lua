-- torchlint for Neovim: the language server's client configuration and commands.
--
-- Neovim 0.11+: lsp/torchlint.lua (next to this plugin's lua/) makes
--   vim.lsp.enable("torchlint")
-- work; customise with vim.lsp.config("torchlint", { ... }).
-- Neovim 0.7-0.10: require("torchlint").setup({ ... }) starts the server for
-- Python buffers itself. On 0.11+ setup() calls vim.lsp.config/enable for you.

local M = {}

M.name = "torchlint"

local function has(feature)
  return vim.fn.has(feature) == 1
end

local function notify(msg, level)
  vim.notify(msg, level or vim.log.levels.INFO)
end

-- Client method calls changed from client.request(...) to client:request(...) in 0.11.
local function request(client, method, params, handler, bufnr)
  if has("nvim-0.11") then
    return client:request(method, params, handler, bufnr)
  end
  return client.request(method, params, handler, bufnr)
end

local function request_sync(client, method, params, timeout_ms, bufnr)
  if has("nvim-0.11") then
    return client:request_sync(method, params, timeout_ms, bufnr)
  end
  return client.request_sync(method, params, timeout_ms, bufnr)
end

-- Pull diagnostics (0.10+) are only re-requested on edits; when the server
-- learns something new between edits (settings changed, "Confirm by running"
-- finished) it asks for a refresh, which Neovim 0.11 does not handle itself.
function M.on_diagnostic_refresh(_, _, ctx)
  local client = vim.lsp.get_client_by_id(ctx.client_id)
  if client then
    for bufnr in pairs(client.attached_buffers or {}) do
      if vim.api.nvim_buf_is_loaded(bufnr) then
        request(client, "textDocument/diagnostic", {
          textDocument = vim.lsp.util.make_text_document_params(bufnr),
        }, nil, bufnr)
      end
    end
  end
  return vim.NIL
end

-- Does this Neovim pull diagnostics (textDocument/diagnostic, 0.10+)?
function M.client_pulls()
  local caps = vim.lsp.protocol.make_client_capabilities()
  return caps.textDocument ~= nil and caps.textDocument.diagnostic ~= nil
end

--- The client configuration: what lsp/torchlint.lua returns on 0.11+, and what
--- setup() starts on older versions. `overrides` are merged over it.
function M.config(overrides)
  local config = {
    cmd = { "torchlint", "server" },
    filetypes = { "python" },
    root_markers = { "pyproject.toml", ".git" },
    -- Passed through to the server unchanged (see docs/editors.md): select, ignore,
    -- runtime = { enabled = false }, logLevel.
    settings = { torchlint = {} },
    capabilities = { workspace = { diagnostics = { refreshSupport = true } } },
    handlers = { ["workspace/diagnostic/refresh"] = M.on_diagnostic_refresh },
  }
  if M.client_pulls() then
    -- The server pushes to every client and also answers pulls; Neovim keeps pushed and
    -- pulled diagnostics in separate namespaces and would show each finding twice.
    -- Neovim 0.7-0.9 cannot pull and keeps the server's default (push).
    config.init_options = { diagnosticMode = "pull" }
  end
  overrides = vim.deepcopy(overrides or {})
  -- Markdown buffers are opt-in: `lint_markdown = true` adds the markdown and quarto
  -- filetypes (the server lints their Python code blocks; notebooks need an editor with
  -- notebook documents).
  if overrides.lint_markdown then
    config.filetypes = { "python", "markdown", "quarto" }
  end
  overrides.lint_markdown = nil
  return vim.tbl_deep_extend("force", config, overrides)
end

--- The configuration in use: vim.lsp.config's (0.11+, lsp/torchlint.lua merged with the
--- user's overrides) or the one setup() was given on older versions.
function M.current_config()
  if vim.lsp.config and vim.lsp.enable then
    local ok, config = pcall(function()
      return vim.lsp.config[M.name]
    end)
    if ok and config then
      return config
    end
  end
  return M._legacy_config or M.config()
end

--- Is the server command runnable? Returns ok, and the problem when it is not.
function M.check_cmd(cmd)
  if type(cmd) == "function" then
    return true
  end
  if type(cmd) ~= "table" or type(cmd[1]) ~= "string" then
    return false, "cmd must be a list such as { \"torchlint\", \"server\" }"
  end
  if vim.fn.executable(cmd[1]) == 0 then
    return false,
      ("`%s` is not executable (not found on $PATH). Install torchlint where Neovim finds it "
        .. "(pip install torchlint, or the wheel from editors/vscode's .vsix), or point the client at it: "
        .. 'vim.lsp.config("torchlint", { cmd = { "/path/to/python", "-m", "torchlint", "server" } }). '
        .. "See :checkhealth torchlint"):format(cmd[1])
  end
  return true
end

local warned = false

--- Tell the user once per session that the server cannot start (Neovim itself only
--- writes it to the LSP log, and vim.lsp.enable then shows nothing at all).
function M.warn_if_unstartable(config)
  config = config or M.current_config()
  local ok, problem = M.check_cmd(config and config.cmd)
  if not ok and not warned then
    warned = true
    notify("torchlint: the language server cannot start: " .. problem, vim.log.levels.WARN)
  end
  return ok
end

--- Open the LSP log, where Neovim writes the server's stderr and log messages
--- (`:TorchlintShowLogs`; more detail with settings.torchlint.logLevel = "info"
--- and vim.lsp.set_log_level("info")).
function M.show_logs()
  vim.cmd("split " .. vim.fn.fnameescape(vim.lsp.get_log_path()))
  vim.cmd("normal! G")
end

--- The torchlint client attached to `bufnr` (default: current buffer), or nil.
function M.get_client(bufnr)
  bufnr = (bufnr == nil or bufnr == 0) and vim.api.nvim_get_current_buf() or bufnr
  if vim.lsp.get_clients then
    return vim.lsp.get_clients({ bufnr = bufnr, name = M.name })[1]
  end
  for _, client in pairs(vim.lsp.buf_get_clients(bufnr)) do
    if client.name == M.name then
      return client
    end
  end
  return nil
end

local function fix_all_params(bufnr)
  return {
    textDocument = { uri = vim.uri_from_bufnr(bufnr) },
    range = { start = { line = 0, character = 0 }, ["end"] = { line = 0, character = 0 } },
    context = { diagnostics = {}, only = { "source.fixAll.torchlint" } },
  }
end

-- The buffer (0 or nil: the current one) and its torchlint client; warns when there is none.
local function attached(bufnr)
  bufnr = (bufnr == nil or bufnr == 0) and vim.api.nvim_get_current_buf() or bufnr
  local client = M.get_client(bufnr)
  if not client then
    notify("torchlint: no torchlint server is attached to this buffer", vim.log.levels.WARN)
  end
  return bufnr, client
end

local function apply_fix_all(client, result)
  local applied = false
  for _, action in ipairs(result or {}) do
    if action.edit then
      vim.lsp.util.apply_workspace_edit(action.edit, client.offset_encoding)
      applied = true
    end
  end
  return applied
end

--- Apply every safe fix torchlint has for the buffer (`:TorchlintFixAll`).
--- opts.sync = true waits for the server (use it in a BufWritePre autocmd).
function M.fix_all(bufnr, opts)
  opts = opts or {}
  local client
  bufnr, client = attached(bufnr)
  if not client then
    return false
  end
  local params = fix_all_params(bufnr)
  if opts.sync then
    local response, err = request_sync(client, "textDocument/codeAction", params, opts.timeout_ms or 5000, bufnr)
    if not response or response.err then
      notify("torchlint: fix all failed: " .. tostring(err or (response and response.err.message)), vim.log.levels.ERROR)
      return false
    end
    return apply_fix_all(client, response.result)
  end
  request(client, "textDocument/codeAction", params, function(err, result)
    if err then
      notify("torchlint: fix all failed: " .. tostring(err.message), vim.log.levels.ERROR)
      return
    end
    if not apply_fix_all(client, result) then
      notify("torchlint: nothing to fix")
    end
    if opts.on_done then
      opts.on_done()
    end
  end, bufnr)
  return true
end

--- Run the flagged code to confirm torchlint's findings in the buffer
--- (`:TorchlintConfirm`). Needs settings.torchlint.runtime.enabled = true.
function M.confirm(bufnr, opts)
  opts = opts or {}
  local client
  bufnr, client = attached(bufnr)
  if not client then
    return false
  end
  local params = { command = "torchlint.confirm", arguments = { { uri = vim.uri_from_bufnr(bufnr) } } }
  request(client, "workspace/executeCommand", params, function(err, result)
    if err then
      notify(tostring(err.message), vim.log.levels.ERROR)
    else
      notify("torchlint: " .. tostring(result and result.message or "done"))
    end
    if opts.on_done then
      opts.on_done(err, result)
    end
  end, bufnr)
  return true
end

-- Neovim 0.7-0.10: find the project root the way 0.11's root_markers do.
local function find_root(path, markers)
  local dir = vim.fn.fnamemodify(path, ":p:h")
  while true do
    for _, marker in ipairs(markers) do
      if vim.loop.fs_stat(dir .. "/" .. marker) then
        return dir
      end
    end
    local parent = vim.fn.fnamemodify(dir, ":h")
    if parent == dir then
      return nil
    end
    dir = parent
  end
end

local legacy_clients = {} -- root_dir -> client id

local function attach_legacy(bufnr, config)
  local name = vim.api.nvim_buf_get_name(bufnr)
  if name == "" or vim.bo[bufnr].buftype ~= "" or not M.warn_if_unstartable(config) then
    return
  end
  local root = find_root(name, config.root_markers) or vim.fn.getcwd()
  local id = legacy_clients[root]
  if id and vim.lsp.get_client_by_id(id) and not vim.lsp.get_client_by_id(id).is_stopped() then
    vim.lsp.buf_attach_client(bufnr, id)
    return
  end
  local client_config = {
    name = M.name,
    cmd = config.cmd,
    root_dir = root,
    workspace_folders = { { uri = vim.uri_from_fname(root), name = root } },
    settings = config.settings,
    -- The settings go along as initializationOptions, so the first lint already uses them.
    init_options = vim.tbl_deep_extend("force", {}, (config.settings or {}).torchlint or {}, config.init_options or {}),
    -- start_client does not merge capabilities with the defaults itself.
    capabilities = vim.tbl_deep_extend("force", vim.lsp.protocol.make_client_capabilities(), config.capabilities or {}),
    handlers = config.handlers,
    on_attach = config.on_attach,
    on_init = function(client, result)
      -- 0.7 does not send the settings by itself.
      client.notify("workspace/didChangeConfiguration", { settings = config.settings })
      if config.on_init then
        config.on_init(client, result)
      end
    end,
  }
  id = vim.lsp.start_client(client_config)
  if id then
    legacy_clients[root] = id
    vim.lsp.buf_attach_client(bufnr, id)
  end
end

--- Start torchlint for Python buffers.
--- On Neovim 0.11+ this is vim.lsp.config("torchlint", opts) + vim.lsp.enable("torchlint").
--- On 0.7-0.10 it starts one client per project root (root_markers) itself.
function M.setup(opts)
  opts = vim.deepcopy(opts or {})
  if opts.lint_markdown then
    opts.filetypes = { "python", "markdown", "quarto" }
  end
  opts.lint_markdown = nil
  if vim.lsp.config and vim.lsp.enable then
    vim.lsp.config(M.name, opts)
    vim.lsp.enable(M.name)
    return
  end
  local config = M.config(opts)
  M._legacy_config = config
  local group = vim.api.nvim_create_augroup("torchlint", { clear = true })
  vim.api.nvim_create_autocmd("FileType", {
    group = group,
    pattern = config.filetypes,
    callback = function(args)
      attach_legacy(args.buf, config)
    end,
  })
  -- Buffers opened before setup().
  for _, bufnr in ipairs(vim.api.nvim_list_bufs()) do
    if vim.api.nvim_buf_is_loaded(bufnr) and vim.tbl_contains(config.filetypes, vim.bo[bufnr].filetype) then
      attach_legacy(bufnr, config)
    end
  end
end

return M
