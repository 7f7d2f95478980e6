-- Neovim 0.11+: the configuration behind vim.lsp.enable("torchlint").
-- Override any field with vim.lsp.config("torchlint", { ... }).
return require("torchlint").config()
