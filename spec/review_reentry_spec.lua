-- Review of the C core: options are read through __index, which is user code, and user code
-- may close the client. A request whose options' __index closed its client went on with the
-- freed client (its base URL, its handles): a segfault. The call now raises "closed" after
-- reading its options. Each case runs in a child interpreter, so that a crash fails this spec
-- and not the run.
local H = require "support.client"

local PRELUDE = [[
local sora = require "sora"
local c = sora.new{ api_key = "sk-test", base_url = "http://127.0.0.1:9/v1", max_retries = 0 }
local function closing() return setmetatable({}, { __index = function() c:close() end }) end
]]

local function run(call)
  local out, ok = H.run_child(PRELUDE .. "local ok, err = pcall(function() " .. call .. " end)\n"
    .. "print('RESULT', ok, err)\nprint('CLIENT', tostring(c))\n")
  assert.is_true(ok, out)
  return out
end

describe("an options table whose __index closes the client", function()
  it("makes a request raise that the client is closed", function()
    for _, case in ipairs({
      { "retrieve", [[c:_start("retrieve", "video_1", closing())]] },
      { "retrieve", [[c:retrieve("video_1", closing())]] },
      { "create", [[c:create(setmetatable({ prompt = "p" }, { __index = function() c:close() end }))]] },
      { "download_content", [[c:download_content("video_1", closing())]] },
    }) do
      local out = run(case[2])
      assert.matches("RESULT\tfalse\t[^\n]*calling '" .. case[1] .. "' on a closed sora.Client", out)
      assert.matches("CLIENT\tsora.Client (closed)", out, 1, true)
    end
  end)

  it("and so does one whose input_reference's __index closes it", function()
    local out = run([[c:create{ prompt = "p", input_reference = setmetatable({ image_url = "https://x/y.png" },
      { __index = function() c:close() end }) }]])
    assert.matches("RESULT\tfalse\t[^\n]*calling 'create' on a closed sora.Client", out)
  end)
end)
