-- Secrets, everywhere a person looks: with an API key and a base URL that holds a password in
-- play, nothing a person reads shows either: not an error (its text and every field), not a
-- log line, not the command's messages (plain, -v, -vv, --json, a usage error), not the
-- Neovim plugin's notifications, not `:checkhealth sora`. Each runs through the real stack,
-- against the emulator, a dead port and a server that refuses the key.
local sora = require "sora"
local emulator = require "support.emulator"
local H = require "support.client"
local cli = require "support.cli"

local KEY = "sk-edges-SECRET-0123456789abcdef"
local PASSWORD = "pw-Hidden-4242"
local DEAD = "http://alice:" .. PASSWORD .. "@127.0.0.1:1/v1"

-- The URL of a server with the password in its userinfo.
local function with_password(url)
  return (url:gsub("^http://", "http://alice:" .. PASSWORD .. "@"))
end

-- Fails when text shows the key or the password (or a recognisable piece of either).
local function clean(text, what)
  text = tostring(text)
  for _, secret in ipairs{ KEY, KEY:sub(4, 20), PASSWORD, "alice:", "bob:" } do
    local at = text:find(secret, 1, true)
    assert.is_nil(at, what .. " shows a secret: " .. text:sub(math.max(1, (at or 1) - 80), (at or 1) + 80))
  end
  return text
end

-- Every string in a value, its fields' names and values, tables walked (cycles once).
local function clean_value(value, what, seen)
  seen = seen or {}
  if type(value) ~= "table" then return clean(value, what) end
  if seen[value] then return end
  seen[value] = true
  clean(tostring(value), what)
  for k, v in pairs(value) do
    clean(k, what .. " (a field name)")
    clean_value(v, what .. "." .. tostring(k), seen)
  end
end

describe("secrets, everywhere a person looks", function()
  local E, refusing

  lazy_setup(function()
    E = emulator.start{ job_seconds = 0.3, api_key = KEY }
    refusing = emulator.start{ job_seconds = 0.3, api_key = "sk-another-key-entirely-000" }
  end)

  lazy_teardown(function()
    if E then E:stop() end
    if refusing then refusing:stop() end
  end)

  local SERVERS = {
    { "a dead port", function() return DEAD end },
    { "a server refusing the key", function() return with_password(refusing.url) end },
    { "the emulator", function() return with_password(E.url) end },
  }

  it("in the library: errors, their fields, log lines, the client's own text", function()
    for _, server in ipairs(SERVERS) do
      local lines = {}
      local c = sora.new{ api_key = KEY, base_url = server[2](), max_retries = 0, timeout = 5,
                          log = function(line) lines[#lines + 1] = line end }
      clean(tostring(c), server[1] .. ": tostring(client)")
      local proxied = sora.new{ api_key = KEY, base_url = server[2](), max_retries = 0,
                                proxy = "http://bob:" .. PASSWORD .. "@127.0.0.1:1",
                                log = function(line) lines[#lines + 1] = line end }
      clean_value({ proxied:retrieve("video_x") }, server[1] .. ": an error through a proxy")
      proxied:close()
      clean(c:base_url(), server[1] .. ": client:base_url()")
      local _, err = c:retrieve("video_missing")
      clean_value(err, server[1] .. ": retrieve's error")
      _, err = c:create{ prompt = "a secret test" }
      if err then clean_value(err, server[1] .. ": create's error") end
      local ok, raised = pcall(function() for _ in c:list{ limit = 1 } do end end)
      if not ok then clean_value(raised, server[1] .. ": list raised") end
      assert.is_true(#lines > 0, server[1] .. ": no log line")
      clean(table.concat(lines, "\n"), server[1] .. ": log lines")
      c:close()
    end
  end)

  it("in the command: messages, -v and -vv logs, --json, usage errors", function()
    for _, server in ipairs(SERVERS) do
      local env = { OPENAI_API_KEY = KEY, OPENAI_BASE_URL = server[2]() }
      for _, args in ipairs{ { "list" }, { "get", "video_missing" }, { "-v", "list" },
                             { "-vv", "get", "video_missing" }, { "--json", "get", "video_missing" },
                             { "--json", "list" }, { "delete" }, { "--json", "create" },
                             { "--api-key", KEY, "--base-url", server[2](), "get", "video_x" },
                             { "--base-url", server[2](), "--max-retries", "x", "list" },
                             { "--proxy", "http://bob:" .. PASSWORD .. "@127.0.0.1:1", "-vv", "list" },
                             { "--proxy", "http://bob:" .. PASSWORD .. "@127.0.0.1:1", "--json", "list" } } do
        local r = cli.run(args, env)
        local what = server[1] .. ": sora " .. table.concat(args, " ")
        clean(r.stdout, what .. " (stdout)")
        clean(r.stderr, what .. " (stderr)")
      end
    end
  end)

  describe("in Neovim", function()
    local nvim = require "support.nvim_checkout"
    if not nvim.available() then
      it("needs nvim", function() pending("nvim is not installed (tools/deps.sh installs it)") end)
      return
    end
    local function session(...) return select(2, nvim.session(...)) end

    it("in :checkhealth sora and the commands' notifications", function()
      for _, server in ipairs(SERVERS) do
        local setup = string.format("{ api_key = %q, base_url = %q, max_retries = 0, timeout = 5 }",
                                    KEY, server[2]())
        local health = session("checkhealth sora", setup)
        assert.matches("base URL", health)
        clean(health, server[1] .. ": :checkhealth sora")
        local listed = session("SoraList 5", setup, "listed")
        assert.matches(server[1] == "the emulator" and "listed" or "sora: ", listed)
        clean(listed, server[1] .. ": :SoraList")
        local dir = H.tempdir()
        local downloaded = session("SoraDownload video_missing " .. dir .. "/x.mp4", setup, "saved")
        H.rmdir(dir)
        assert.matches("sora: ", downloaded)
        clean(downloaded, server[1] .. ": :SoraDownload")
      end
    end)
  end)
end)
