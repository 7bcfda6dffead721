-- sora's user commands. Nothing is loaded until a command runs: the C core, libcurl and the
-- plugin's logic (lua/sora/nvim/) stay out of Neovim's startup. See :help sora.
if vim.g.loaded_sora then return end
vim.g.loaded_sora = true

-- A command whose handler is looked up (and its module loaded) only when it runs; a module
-- that cannot load is a notification, never a Lua error.
local function command(name, handler, opts)
  vim.api.nvim_create_user_command(name, function(cmd)
    local ok, commands = pcall(require, "sora.nvim.commands")
    if not ok then
      vim.notify("sora: cannot load the plugin: " .. tostring(commands), vim.log.levels.ERROR)
      return
    end
    commands.run(handler, cmd)
  end, opts)
end

command("SoraGenerate", "generate", { nargs = "*", desc = "sora: generate a video from a prompt" })
command("SoraDownload", "download", { nargs = "*", complete = "file", desc = "sora: download a video" })
command("SoraList", "list", { nargs = "?", desc = "sora: list the latest videos" })
command("SoraCancel", "cancel", { nargs = 0, desc = "sora: cancel the running jobs" })
command("SoraStatus", "status", { nargs = 0, desc = "sora: what is running" })

-- Leaving Neovim aborts what still runs, so that no download is left half-written.
vim.api.nvim_create_autocmd("VimLeavePre", { callback = function()
  local nvim = package.loaded["sora.nvim"]
  if nvim then pcall(nvim.shutdown) end
end })
