-- The key never surfaces, whichever string a server echoes it in: every string that came from
-- the server (error fields, headers, Video / page / character fields, bodies that are not JSON)
-- is redacted before it is cut, stored or shown; log lines show URLs without query or userinfo.
local sora = require "sora"
local emulator = require "support.emulator"
local H = require "support.client"

-- long enough that a 120-byte excerpt of a page would cut it
local KEY = "sk-LEAK-" .. string.rep("Q", 60) .. "-END"

local function no_key(s, what)
  s = tostring(s)
  assert.is_nil(s:find("LEAK", 1, true), (what or "text") .. " holds the key: " .. s)
  assert.is_nil(s:find("QQQQQQQQ", 1, true), (what or "text") .. " holds part of the key: " .. s)
end

-- Every string in a value, its keys and tostring, nested tables and Video handles included.
local function no_key_anywhere(value, what)
  local seen = {}
  local function walk(v, path)
    if type(v) == "userdata" and tostring(v):find("^sora%.Video") then
      no_key(tostring(v), path)
      v = v:to_table()
    end
    if type(v) == "table" then
      if seen[v] then return end
      seen[v] = true
      no_key(tostring(v), path)
      for k, x in pairs(v) do
        no_key(tostring(k), path .. " (a key)")
        walk(x, path .. "." .. tostring(k))
      end
    else
      no_key(tostring(v), path)
    end
  end
  walk(value, what)
end

describe("redaction of the key", function()
  local E, c, lines, video

  lazy_setup(function()
    E = emulator.start{ job_seconds = 0.3, api_key = KEY }
    c = sora.new{ api_key = KEY, base_url = E.url, max_retries = 0,
                  log = function(line, level) lines[#lines + 1] = line end }
    lines = {}
    video = assert(c:create{ prompt = "redaction" })
    E:force_video(video.id, { status = "completed" })
  end)

  lazy_teardown(function()
    H.stop(E, c)
  end)

  before_each(function()
    E:clear_faults()
    lines = {}
  end)

  after_each(function()
    for i, line in ipairs(lines) do no_key(line, "log line " .. i) end
  end)

  it("in every field of a JSON error and its tostring", function()
    E:fault{ method = "GET", action = "respond", status = 400, body = { error = {
      message = "bad key " .. KEY, type = "t_" .. KEY, param = KEY, code = KEY .. "_code" } } }
    local _, err = c:retrieve(video.id)
    assert.are.equal("bad_request", err.kind)
    assert.matches("[redacted key]", err.message, 1, true)
    assert.matches("[redacted key]", err.param, 1, true)
    no_key_anywhere(err, "err")
  end)

  it("in the request id header, of an error and of a log line", function()
    E:fault{ method = "GET", action = "respond", status = 404,
             headers = { ["x-request-id"] = "req_" .. KEY .. string.rep("z", 100) } }
    local _, err = c:retrieve(video.id)
    assert.are.equal("not_found", err.kind)
    assert.matches("^req_%[redacted key%]z", err.request_id)
    no_key_anywhere(err, "err")
    assert.is_true(#lines > 0)
  end)

  it("in a page that is not JSON, even where the excerpt cuts it", function()
    for _, pad in ipairs({ 0, 60, 100, 110, 119 }) do
      E:fault{ method = "GET", action = "html", status = 502,
               body = string.rep("x", pad) .. KEY .. " trailing" }
      local _, err = c:retrieve(video.id)
      assert.are.equal("internal_server", err.kind)
      no_key_anywhere(err, "err (pad " .. pad .. ")")
    end
  end)

  it("in every string field of a Video, a failed video's error included", function()
    local t = video:to_table()
    t.status = "failed"
    t.prompt = "prompt " .. KEY
    t.error = { code = "c_" .. KEY, message = "failed: " .. KEY }
    t.extra = { nested = { KEY } }
    t[KEY] = "a field named after the key"
    E:fault{ method = "GET", action = "respond", status = 200, body = t }
    local v, err = c:retrieve(video.id)
    assert.is_nil(err)
    assert.matches("[redacted key]", v.error.message, 1, true)
    assert.are.equal("a field named after the key", v:to_table()["[redacted key]"])
    no_key_anywhere(v, "video")
    -- and what wait makes of it
    E:fault{ method = "GET", action = "respond", status = 200, body = t }
    local waited, werr = v:wait{ timeout = 5 }
    assert.is_nil(waited)
    assert.are.equal("failed", werr.kind)
    no_key_anywhere(werr, "wait error")
  end)

  it("in a page and its videos", function()
    local item = video:to_table()
    item.prompt = KEY
    E:fault{ method = "GET", path = "^/v1/videos$", action = "respond", status = 200,
             body = { object = "list", data = { item }, first_id = "video_" .. KEY,
                      last_id = "video_" .. KEY, has_more = false, note = KEY } }
    local got
    for page in c:pages{ limit = 1 } do got = page break end
    assert.are.equal("video_[redacted key]", got.first_id)
    no_key_anywhere(got, "page")
  end)

  it("in a character", function()
    E:fault{ method = "GET", action = "respond", status = 200,
             body = { id = "char_1", name = "name " .. KEY, created_at = 1 } }
    local ch, err = c:get_character("char_1")
    assert.is_nil(err)
    no_key_anywhere(ch, "character")
  end)

  it("in an invalid response's content type", function()
    E:fault{ method = "GET", action = "respond", status = 200, body = "not json",
             headers = { ["content-type"] = "text/" .. KEY } }
    local _, err = c:retrieve(video.id)
    assert.are.equal("invalid_response", err.kind)
    no_key_anywhere(err, "err")
  end)

  it("is not applied to keys shorter than 8 bytes", function()
    local short = sora.new{ api_key = "sk-a", base_url = E.url, max_retries = 0 }
    E:fault{ method = "GET", action = "respond", status = 400,
             body = { error = { message = "sk-a task", type = "t", code = "c" } } }
    local _, err = short:retrieve(video.id)
    short:close()
    assert.are.equal("sk-a task", err.message)
  end)
end)

describe("log lines", function()
  local E, c, lines, video

  lazy_setup(function()
    E = emulator.start{ job_seconds = 0.3, api_key = KEY }
    c = sora.new{ api_key = KEY, base_url = E.url, max_retries = 0,
                  log = function(line) lines[#lines + 1] = line end }
    video = assert(c:create{ prompt = "logs" })
    E:force_video(video.id, { status = "completed" })
  end)

  lazy_teardown(function()
    H.stop(E, c)
  end)

  it("show a redirect's URL without its query, userinfo or the key", function()
    lines = {}
    local host = E.url:match("^http://([^/]+)")
    local location = "http://user:PASSWORD@" .. host .. "/v1/videos/" .. video.id
      .. "/content?X-Amz-Signature=SIGSECRET&token=" .. KEY .. "#frag"
    E:fault{ method = "GET", path = "/content$", action = "respond", status = 302,
             headers = { location = location }, body = "" }
    local bytes, err = c:download_content(video.id)
    assert.is_nil(err)
    assert.is_string(bytes)
    assert.are.equal(2, #lines)
    for _, line in ipairs(lines) do
      no_key(line, "log line")
      assert.is_nil(line:find("SIGSECRET", 1, true), line)
      assert.is_nil(line:find("PASSWORD", 1, true), line)
      assert.is_nil(line:find("user", 1, true), line)
      assert.is_nil(line:find("?", 1, true), line)
      assert.is_nil(line:find("frag", 1, true), line)
    end
    assert.matches("GET http://" .. host:gsub("%p", "%%%0") .. "/v1/videos/" .. video.id
      .. "/content %-> 200", lines[2])
  end)

  it("show a URL whose path echoes the key with the key redacted", function()
    lines = {}
    local location = E.url .. "/videos/" .. video.id .. "/content/" .. KEY
    E:fault{ method = "GET", path = "/content$", action = "respond", status = 302,
             headers = { location = location }, body = "" }
    c:download_content(video.id)
    assert.is_true(#lines >= 2)
    for _, line in ipairs(lines) do no_key(line, "log line") end
    assert.matches("[redacted key]", lines[2], 1, true)
  end)
end)
