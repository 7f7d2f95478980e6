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
