--- :checkhealth sora: the module is found and loads, which libcurl it uses, whether a key is
-- configured (never shown), and whether the base URL answers.
local M = {}

-- Neovim 0.10 names these start/ok/...; 0.8 and 0.9 report_start/...; 0.7 has the same names
-- in the `health` module.
local health = vim.health or require "health"
local start = health.start or health.report_start
local ok = health.ok or health.report_ok
local warn = health.warn or health.report_warn
local fail = health.error or health.report_error
local info = health.info or health.report_info

local CHECK_TIMEOUT = 5 -- seconds: a checkhealth that hangs on a dead server helps nobody

local function check_core()
  local found = vim.api.nvim_get_runtime_file("lua/sora/core.so", false)[1]
    or package.searchpath("sora.core", package.cpath)
  if not found then
    fail("sora.core (the C module) was not found on the runtimepath or package.cpath",
      { "Run `make nvim` in the plugin's directory (your plugin manager's build step), "
        .. "which builds lua/sora/core.so for Neovim's LuaJIT" })
    return nil
  end
  info("sora.core: " .. found)
  local loaded, core = pcall(require, "sora.core")
  if not loaded then
    local advice = { "Rebuild it for Neovim's LuaJIT: `make nvim` in the plugin's directory" }
    if tostring(core):find("cjson", 1, true) then
      advice = { "sora.core needs lua-cjson for Lua 5.1 (Debian/Ubuntu: apt install lua-cjson)" }
    end
    fail("sora.core does not load: " .. tostring(core), advice)
    return nil
  end
  ok(string.format("sora %s loaded (%s)", tostring(core._VERSION), jit and jit.version or _VERSION))
  ok("libcurl " .. tostring(core.curl_version))
  return core
end

-- Where the key comes from, without ever showing it.
local function check_key(options)
  if type(options.api_key) == "string" and options.api_key ~= "" then
    ok("API key: set in setup()")
  elseif options.api_key_cmd then
    ok("API key: read from the command given as api_key_cmd in setup()")
  elseif (os.getenv("OPENAI_API_KEY") or "") ~= "" then
    ok("API key: from $OPENAI_API_KEY")
  else
    fail("no API key", { "export OPENAI_API_KEY=..., or require('sora.nvim').setup{ api_key = ... }" })
    return false
  end
  return true
end

-- One small request (the first page of the video list, one entry) with a short timeout.
local function check_reachable(sora, options, have_key)
  if not have_key then options.api_key = "sk-sora-checkhealth" end -- a 401 still proves it answers
  options.timeout, options.max_retries = CHECK_TIMEOUT, 0
  local made, client = pcall(sora.new, options)
  if not made then
    fail("the client cannot be made: " .. tostring(client):gsub("^.-:%d+: ", ""))
    return
  end
  local page, err = client:list_page{ limit = 1 }
  local url = client:base_url() -- as the client shows it: never its userinfo (a password)
  client:close()
  if page then
    ok("base URL " .. url .. " is reachable and accepts the key")
  elseif err.kind == "authentication" or err.kind == "permission_denied" then
    local say = have_key and fail or warn
    say(string.format("base URL %s is reachable but refused the key (%s %s)", url,
      tostring(err.status), err.kind))
  elseif err.kind == "connection" or err.kind == "timeout" then
    fail("base URL " .. url .. " is not reachable: " .. tostring(err))
  else
    warn(string.format("base URL %s answered with an error: %s", url, tostring(err)))
  end
end

function M.check()
  start("sora")
  if not check_core() then return end
  local loaded, sora = pcall(require, "sora")
  if not loaded then
    fail("the sora Lua module does not load: " .. tostring(sora))
    return
  end
  local options = require("sora.nvim").client_options()
  check_reachable(sora, options, check_key(options))
end

return M
