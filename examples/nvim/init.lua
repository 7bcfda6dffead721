-- Tries the sora plugin straight from this checkout, with no other configuration or plugin:
--
--   make nvim                          # the core for Neovim's LuaJIT, at lua/sora/core.so
--   bin/sora-emulator --port 8000 &    # or a real key and no OPENAI_BASE_URL
--   OPENAI_BASE_URL=http://127.0.0.1:8000/v1 OPENAI_API_KEY=sk-local \
--     nvim --clean -u examples/nvim/init.lua
--
-- then :SoraGenerate a paper boat at dusk, :SoraList, :checkhealth sora, :help sora.
-- For a lasting install use a plugin manager or a package (examples/nvim/lazy.lua, :help
-- sora-install); this file only shows what the plugin needs: the checkout on the runtimepath.
local this = vim.fn.fnamemodify(debug.getinfo(1, "S").source:sub(2), ":p")
local checkout = vim.fn.fnamemodify(this, ":h:h:h")

vim.opt.runtimepath:prepend(checkout) -- plugin/sora.lua, lua/sora/, doc/sora.txt
vim.cmd("silent! helptags " .. vim.fn.fnameescape(checkout .. "/doc"))

require("sora.nvim").setup{
  output_dir = vim.fn.getcwd(), -- videos land here as <video id>.mp4
  seconds = "4",
}

-- What is running, at the right of the statusline.
vim.o.laststatus = 2
vim.o.statusline = "%f %= %{v:lua.require'sora.nvim'.status()} "
