-- Randomness is per client: retry jitter comes from a generator each client seeds from the
-- system's random source, so processes (and clients) that meet a 429 together do not retry
-- together. client:_jitter() draws from the generator retries use.
local sora = require "sora"
local H = require "support.client"

local function draws(client, n)
  local values = {}
  for i = 1, n do values[i] = client:_jitter() end
  return values
end

describe("retry jitter", function()
  it("is a number in [0, 1)", function()
    local c = sora.new{ api_key = H.KEY }
    local sum = 0
    for _, x in ipairs(draws(c, 1000)) do
      assert.is_true(x >= 0 and x < 1)
      sum = sum + x
    end
    assert.is_true(sum > 0) -- not stuck at zero
    c:close()
  end)

  it("differs between two clients of one process", function()
    local a, b = sora.new{ api_key = H.KEY }, sora.new{ api_key = H.KEY }
    assert.are_not.same(draws(a, 8), draws(b, 8))
    a:close()
    b:close()
  end)

  it("differs between two processes", function()
    local child = [[
      local c = require("sora").new{ api_key = "sk-test" }
      local values = {}
      for i = 1, 8 do values[i] = string.format("%.17g", c:_jitter()) end
      print("JITTER " .. table.concat(values, " "))
    ]]
    local first, ok1 = H.run_child(child)
    local second, ok2 = H.run_child(child)
    assert.is_true(ok1, first)
    assert.is_true(ok2, second)
    first, second = first:match("JITTER ([^\n]+)"), second:match("JITTER ([^\n]+)")
    assert.is_string(first)
    assert.is_string(second)
    assert.are_not.equal(first, second)
  end)
end)
