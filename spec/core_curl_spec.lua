-- libcurl: the oldest supported version is 7.66.0. CURLOPT_PROTOCOLS_STR (7.85) restricts
-- requests to http and https where it exists; before 7.85 (Ubuntu 22.04 has 7.81), and when
-- the library does not know the option at run time, the older bitmask options do it. This
-- spec builds the module on that fallback path and uses it.
local emulator = require "support.emulator"
local H = require "support.client"

-- The Makefile's LUA_VERSION of the running interpreter (LuaJIT uses the 5.1 ABI).
local LUA_VERSION = rawget(_G, "jit") and "5.1" or _VERSION:match("Lua (%d%.%d)")

describe("libcurl", function()
  it("reports the version it runs with, at least 7.66.0", function()
    local core = require "sora.core"
    local major, minor = core.curl_version:match("^(%d+)%.(%d+)")
    major, minor = tonumber(major), tonumber(minor)
    assert.is_true(major > 7 or (major == 7 and minor >= 66), core.curl_version)
  end)

  it("the module built for the bitmask protocol options works", function()
    local dir = H.tempdir()
    local ok = os.execute("make -s BUILD=" .. H.shell_quote(dir) .. " LUA_VERSION=" .. LUA_VERSION
      .. " CFLAGS='-O0 -DSORA_PROTOCOLS_BITMASK' >" .. H.shell_quote(dir .. "/make.log") .. " 2>&1")
    assert.is_true(ok == true or ok == 0, H.read(dir .. "/make.log"))
    local E = emulator.start{ job_seconds = 0.3, api_key = H.KEY }
    local code = ([[
      package.cpath = DIR .. "/?.so;" .. package.cpath
      local c = require("sora").new{ api_key = "sk-test", base_url = URL, max_retries = 0 }
      local v = assert(c:create{ prompt = "old libcurl" })
      print("CREATED " .. v.prompt)
    ]]):gsub("DIR", string.format("%q", dir)):gsub("URL", string.format("%q", E.url))
    local out = H.run_child(code)
    E:stop()
    assert.matches("CREATED old libcurl", out, 1, true)
    assert.is_true(H.exists(dir .. "/sora/core.so"))
    H.rmdir(dir)
  end)
end)
