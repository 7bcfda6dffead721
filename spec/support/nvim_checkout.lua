-- A headless Neovim session on the checkout itself (no package install, no `make nvim`):
-- the repository on the runtimepath (plugin/sora.lua, lua/sora/health.lua), Lua paths at lua/
-- and build/5.1 (run `make LUA_VERSION=5.1` first), spec/support/nvim_session.lua as init.lua.
--
--   local nvim = require "support.nvim_checkout"
--   if nvim.available() then
--     local r, text = nvim.session("SoraList 5", "{ api_key = ... }", "listed")
--   end
-- r is nvim_session.lua's result (notifications, lines, command_error, ...); text is all of it
-- a person could see (what nvim printed, errors, the buffer, every notification), one string.
local H = require "support.client"
local cjson = require "cjson"

local M = {}

function M.available()
  return select(2, H.sh("command -v nvim >/dev/null")) == 0
end

function M.session(command, setup, stop_at)
  local root = (H.sh("pwd")):match("[^\n]+")
  local dir = H.tempdir()
  local result = dir .. "/result.json"
  local paths = "package.path = '" .. root .. "/lua/?.lua;" .. root .. "/lua/?/init.lua;"
    .. "/usr/share/lua/5.1/?.lua;/usr/share/lua/5.1/?/init.lua;' .. package.path; "
    .. "package.cpath = '" .. root .. "/build/5.1/?.so;/usr/lib/x86_64-linux-gnu/lua/5.1/?.so;' .. package.cpath"
  local env = "env -u OPENAI_API_KEY -u OPENAI_BASE_URL XDG_CONFIG_HOME=" .. dir .. " XDG_DATA_HOME=" .. dir
    .. " XDG_STATE_HOME=" .. dir .. " XDG_CACHE_HOME=" .. dir
    .. " SORA_SESSION_RESULT=" .. H.shell_quote(result) .. " SORA_SESSION_COMMAND=" .. H.shell_quote(command)
    .. (setup and " SORA_SESSION_SETUP=" .. H.shell_quote(setup) or "")
    .. (stop_at and " SORA_SESSION_UNTIL=" .. H.shell_quote(stop_at) or "")
  local out = H.sh(env .. " timeout 60 nvim --headless -i NONE -n --cmd " .. H.shell_quote("set rtp^=" .. root)
    .. " --cmd " .. H.shell_quote("lua " .. paths) .. " -u " .. H.shell_quote(root .. "/spec/support/nvim_session.lua")
    .. " </dev/null")
  assert(H.exists(result), "no result; nvim said: " .. out)
  local r = cjson.decode(H.read(result))
  H.rmdir(dir)
  local texts = { out, r.command_error or "", r.session_error or "", table.concat(r.lines or {}, "\n") }
  for _, n in ipairs(r.notifications) do texts[#texts + 1] = n.message end
  return r, table.concat(texts, "\n")
end

return M
