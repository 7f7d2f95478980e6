-- :TorchlintFixAll and :TorchlintConfirm act on the current buffer's torchlint client.
-- Starting the server is left to vim.lsp.enable("torchlint") (0.11+) or require("torchlint").setup().
if vim.g.loaded_torchlint then
  return
end
vim.g.loaded_torchlint = true

vim.api.nvim_create_user_command("TorchlintFixAll", function()
  require("torchlint").fix_all(0)
end, { desc = "torchlint: apply every safe fix in this buffer" })

vim.api.nvim_create_user_command("TorchlintConfirm", function()
  require("torchlint").confirm(0)
end, { desc = "torchlint: confirm this buffer's findings by running the code (runtime.enabled)" })

vim.api.nvim_create_user_command("TorchlintShowLogs", function()
  require("torchlint").show_logs()
end, { desc = "torchlint: open the LSP log (the server's messages and stderr)" })

-- 0.11+: vim.lsp.enable("torchlint") with a command that does not exist fails silently
-- (a line in the LSP log); say so once, the first time a Python buffer would have started it.
if vim.lsp.is_enabled then
  vim.api.nvim_create_autocmd("FileType", {
    group = vim.api.nvim_create_augroup("torchlint_check", { clear = true }),
    pattern = "python",
    callback = function(args)
      if vim.bo[args.buf].buftype == "" and vim.lsp.is_enabled("torchlint") then
        require("torchlint").warn_if_unstartable()
      end
    end,
  })
end
