-- Review 3: a program that ends while sora.luv watches a client with a request in flight.
-- lua_close finalizes every object, newest first: the uv poll and timer handles (made after
-- the client) are finalized before the client, whose __gc then tells the host to stop watching
-- (loop.c, end_watch). sora.luv must take that quietly: its handles are already gone.
local H = require "support.client"
local rawserver = require "support.rawserver"
local tools = require "support.tools"

describe("sora.luv at the end of a program", function()
  it("a client still watched, a request in flight: no host callback fails in lua_close", function()
    local has_luv, why = tools.require_module("luv", "sora.luv is what ends here (Debian lua-luv)")
    if not has_luv then return pending(why) end
    -- the server holds the answer back: the request is on the wire when the program ends
    local S = rawserver.start[[ return function(req, n)
      require("socket").sleep(2)
      return head("200 OK", {"Content-Length: 2"}) .. "{}"
    end ]]
    local out, ok = H.run_child(string.format([[
      local sora = require "sora"
      local uv = require "luv"
      local c = sora.new{ api_key = "sk-test", base_url = %q, max_retries = 0 }
      require("sora.luv").attach(c, uv)
      local task = c:spawn(function() return c:retrieve("video_1") end)
      local stop = uv.new_timer()
      stop:start(200, 0, function() stop:close(); uv.stop() end)
      uv.run()
      assert(not task:done() and c:watching(), "the request ended too soon")
      print("ending")
    ]], S.url))
    S:stop()
    assert.is_true(ok, out)
    assert.matches("ending", out, 1, true)
    assert.is_nil(out:find("callback failed", 1, true), out)
  end)
end)
