-- Argument errors name the public call at the caller's line, whatever layer found them:
-- sora.luv, sora.webhooks (and the C core under them), and the Neovim plugin, whose commands
-- name themselves (":SoraList") and say what was wrong, never an inner call or a plugin line.
local sora = require "sora"
local H = require "support.client"

local THIS = "public_names_spec%.lua:%d+: "

-- What fn(...) raised; it must raise.
local function raised(fn, ...)
  local ok, err = pcall(fn, ...)
  assert.is_false(ok, "expected an error")
  return tostring(err)
end

describe("sora.luv.attach", function()
  local has_luv = pcall(require, "luv")
  if not has_luv then
    it("needs luv", function() pending("luv is not installed (tools/deps.sh installs it)") end)
    return
  end
  local luv, uv = require "sora.luv", require "luv"

  it("names itself and the argument at the caller's line", function()
    local c = sora.new{ api_key = H.KEY, base_url = "http://127.0.0.1:1/v1" }
    assert.matches(THIS .. "bad argument #1 to 'attach' %(sora.Client expected, got nil%)",
                   raised(luv.attach, nil))
    assert.matches(THIS .. "bad argument #1 to 'attach' %(sora.Client expected, got table%)",
                   raised(luv.attach, {}))
    assert.matches(THIS .. "bad argument #2 to 'attach' %(a luv module expected, got number%)",
                   raised(luv.attach, c, 42))
    assert.matches(THIS .. "bad argument #3 to 'attach' %(table expected, got number%)",
                   raised(luv.attach, c, uv, 5))
    assert.matches(THIS .. "bad argument #3 to 'attach' %(option 'schedule' must be a function or false, got number%)",
                   raised(luv.attach, c, uv, { schedule = 5 }))
    assert.matches(THIS .. "bad argument #3 to 'attach' %(option 'on_advance' must be a function, got string%)",
                   raised(luv.attach, c, uv, { on_advance = "x" }))
    assert.matches(THIS .. "bad argument #3 to 'attach' %(unknown option 'shedule' %(did you mean 'schedule'%?%)%)",
                   raised(luv.attach, c, uv, { shedule = print }))
    local detach = luv.attach(c, uv)
    assert.matches(THIS .. "calling 'attach' on a sora.Client that a loop already watches",
                   raised(luv.attach, c, uv))
    detach()
    uv.run("nowait") -- the handles' closes done: luv 1.44 crashes at exit on a close never run
    c:close()
    assert.matches(THIS .. "calling 'attach' on a closed sora.Client", raised(luv.attach, c, uv))
  end)
end)

describe("sora.webhooks", function()
  it("names sign and its option for a timestamp no integer holds, at the caller's line", function()
    for _, t in ipairs{ 2 ^ 63, -2 ^ 63 * 2, 1e300 } do
      assert.matches(THIS .. "bad argument #3 to 'sign' %(option 'timestamp' must be",
                     raised(sora.webhooks.sign, "{}", "whsec_" .. ("a"):rep(24), { timestamp = t }))
    end
  end)
end)

describe("the Neovim plugin's commands", function()
  local nvim = require "support.nvim_checkout"
  if not nvim.available() then
    it("needs nvim", function() pending("nvim is not installed (tools/deps.sh installs it)") end)
    return
  end
  local E
  lazy_setup(function() E = require("support.emulator").start{ job_seconds = 0.3, api_key = H.KEY } end)
  lazy_teardown(function() if E then E:stop() end end)

  local function setup() return string.format("{ api_key = %q, base_url = %q }", H.KEY, E.url) end

  -- The one ERROR notification of a command, which must name it and say what was wrong.
  local function refusal(command, ...)
    local r, text = nvim.session(command, setup(), "listed")
    local errors = {}
    for _, n in ipairs(r.notifications) do
      if n.level >= 4 then errors[#errors + 1] = n.message end
    end
    assert.are.equal(1, #errors, text)
    local name = ":" .. command:match("^%S+")
    assert.truthy(errors[1]:find(name, 1, true), errors[1])
    for _, said in ipairs{ ... } do assert.truthy(errors[1]:find(said, 1, true), errors[1]) end
    assert.is_nil(errors[1]:find("%.lua:%d"), errors[1]) -- no plugin source line
    assert.is_nil(errors[1]:find("list_page", 1, true), errors[1])
    assert.is_nil(errors[1]:find("internal error", 1, true), errors[1])
    return errors[1]
  end

  it(":SoraList with a limit that is not 1 to 100 names itself and the limit", function()
    refusal("SoraList 99999999999999999999", "99999999999999999999", "limit")
    refusal("SoraList 0", "'0'", "limit")
    refusal("SoraList 2.5", "'2.5'")
    refusal("SoraList many", "'many'")
  end)

  it(":SoraList without an argument lists (Neovim 0.7 gives it one empty word)", function()
    local r, text = nvim.session("SoraList", setup(), "listed")
    assert.truthy(text:find("listed %d+ video"), text)
    for _, n in ipairs(r.notifications) do assert.is_true(n.level < 4, n.message) end
  end)

  it(":SoraDownload without an id names itself", function()
    refusal("SoraDownload", "id")
  end)

  it("the plugin's Lua functions name themselves at the caller's line", function()
    local r = nvim.session("lua require('sora.nvim').list{ limit = 1e20 }", setup())
    assert.matches("%[string \":lua\"%]:1: bad argument #1 to 'list' %(option 'limit' must be",
                   tostring(r.command_error))
    r = nvim.session("lua require('sora.nvim').download(42)", setup())
    assert.matches("%[string \":lua\"%]:1: bad argument #1 to 'download' %(string expected, got 42%)",
                   tostring(r.command_error))
  end)
end)
