-- Review of the C core: a field of a server's object whose name holds the key gets its name
-- redacted; its value must stay redacted too (it was put back as it was read, unredacted).
local sora = require "sora"
local emulator = require "support.emulator"
local H = require "support.client"

local KEY = "sk-LEAK-" .. string.rep("Q", 24) .. "-END"

local function no_key_in(t, what)
  for k, v in pairs(t) do
    assert.is_nil(tostring(k):find("LEAK", 1, true), what .. ": a key holds the key: " .. tostring(k))
    if type(v) == "table" then no_key_in(v, what .. "." .. tostring(k))
    else assert.is_nil(tostring(v):find("LEAK", 1, true), what .. "." .. tostring(k) .. " holds the key: " .. tostring(v)) end
  end
end

describe("redaction of a field named after the key", function()
  local E, c, video

  lazy_setup(function()
    E = emulator.start{ job_seconds = 0.3, api_key = KEY }
    c = sora.new{ api_key = KEY, base_url = E.url, max_retries = 0 }
    video = assert(c:create{ prompt = "review redaction" })
    E:force_video(video.id, { status = "completed" })
    assert(video:refresh())
  end)

  lazy_teardown(function()
    H.stop(E, c)
  end)

  before_each(function()
    E:clear_faults()
  end)

  it("redacts its value too", function()
    local t = video:to_table()
    t[KEY] = "echoed: " .. KEY
    t.nested = { [KEY .. "_name"] = KEY, other = { [KEY] = "x" .. KEY } }
    E:fault{ method = "GET", action = "respond", status = 200, body = t }
    local v = assert(c:retrieve(video.id))
    local fields = v:to_table()
    assert.are.equal("echoed: [redacted key]", fields["[redacted key]"])
    assert.are.equal("[redacted key]", fields.nested["[redacted key]_name"])
    no_key_in(fields, "video")
  end)

  it("in a page's extra fields", function()
    E:fault{ method = "GET", path = "^/v1/videos$", action = "respond", status = 200,
             body = { object = "list", data = {}, has_more = false, [KEY] = KEY } }
    local page = assert(c:list_page{ limit = 1 })
    no_key_in(page, "page")
  end)
end)
