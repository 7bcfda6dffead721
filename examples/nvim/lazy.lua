-- The sora plugin with lazy.nvim: save as ~/.config/nvim/lua/plugins/sora.lua (or put the
-- table in your lazy.setup{ ... } list). lazy runs `make nvim` after each install or update,
-- which builds the C core for Neovim's LuaJIT at lua/sora/core.so and the help tags.
return {
  -- the repository's URL, or dir = "~/src/sora" for a local checkout
  dir = "~/src/sora",
  build = "make nvim",
  cmd = { "SoraGenerate", "SoraDownload", "SoraList", "SoraCancel", "SoraStatus" },
  opts = {
    output_dir = "~/Videos",
    model = "sora-2",
    seconds = "8",
    -- every other key goes to sora.new: api_key, base_url, timeout, max_retries, headers...
  },
  config = function(_, opts)
    require("sora.nvim").setup(opts)
  end,
}
