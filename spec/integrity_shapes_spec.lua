-- Server data of the wrong shape is invalid_response naming the field, never a plain Lua error
-- ("table index is NaN", "attempt to index a number value") or an argument error blamed on the
-- caller; transport errors keep libcurl's code as err.curl_code.
local sora = require "sora"
local cjson = require "cjson"
local H = require "support.client"
local F = require "support.faults"

describe("integrity of server data", function()
  local E, c, video

  lazy_setup(function()
    E, c = H.start({ max_retries = 0 })
    video = H.completed_video(c, E, { prompt = "shapes" })
  end)

  lazy_teardown(function()
    H.stop(E, c)
  end)

  before_each(function()
    E:clear_faults()
  end)

  -- The next GET answers `body` with 200; returns the call's results through pcall.
  local function answered(body, call)
    E:fault{ method = "GET", action = "respond", status = 200, body = body }
    return pcall(call)
  end

  local function assert_invalid(field, ok, v, err)
    assert.is_true(ok, "raised: " .. tostring(v))
    assert.is_nil(v)
    assert.is_true(sora.is_error(err), tostring(err))
    assert.are.equal("invalid_response", err.kind, tostring(err))
    assert.matches("'" .. field .. "'", err.message, 1, true)
  end

  local function video_with(fields)
    local t = video:to_table()
    for k, v in pairs(fields) do t[k] = v end
    return t
  end

  local function retrieve() return c:retrieve(video.id) end

  describe("a video", function()
    local cases = {
      { "id", { id = "" } }, { "id", { id = "video_\r\nX-Evil: 1" } }, { "id", { id = 12 } },
      { "status", { status = 5 } }, { "status", { status = cjson.null } },
      { "progress", { progress = "50" } }, { "created_at", { created_at = "yesterday" } },
      { "error", { status = "failed", error = 5 } }, { "error", { status = "failed", error = "boom" } },
      { "code", { status = "failed", error = { code = 7, message = "m" } } },
      { "message", { status = "failed", error = { code = "c", message = {} } } },
      { "size", { size = false } }, { "model", { model = 1 } }, { "seconds", { seconds = {} } },
    }
    for _, case in ipairs(cases) do
      it("whose '" .. case[1] .. "' is " .. cjson.encode(case[2]):gsub("\r\n", "\\r\\n")
        .. " is invalid_response naming it", function()
        assert_invalid(case[1], answered(video_with(case[2]), retrieve))
      end)
    end

    it("reads a JSON null field as nil, known or not; nulls inside a field stay positions", function()
      local ok, v, err = answered(video_with{ remixed_from_video_id = cjson.null,
        future_field = cjson.null, future_object = { gone = cjson.null, kept = 1 },
        future_list = { "a", cjson.null, "b" }, created_at = 1767225600 }, retrieve)
      assert.is_true(ok, tostring(v))
      assert.is_nil(err)
      assert.is_nil(v.remixed_from_video_id)
      assert.is_nil(v.future_field)
      assert.are.equal(1767225600, v.created_at)
      if math.type then assert.are.equal("integer", math.type(v.created_at)) end
      -- inside a field, as the JSON has it: in an array a null is a position (ipairs, #, and
      -- cjson.encode of to_table() need it)
      assert.are.same({ gone = cjson.null, kept = 1 }, v.future_object)
      assert.are.same({ "a", cjson.null, "b" }, v.future_list)
      local t = v:to_table()
      assert.is_nil(t.remixed_from_video_id)
      assert.is_nil(t.future_field)
      assert.are.same({ "a", cjson.null, "b" }, t.future_list)
      assert.are.same(t, cjson.decode(cjson.encode(t)))
      if _VERSION ~= "Lua 5.1" then -- __pairs: what video.field gives, copies included
        local seen = {}
        for k, value in pairs(v) do
          assert.are_not.equal(cjson.null, value, "pairs: " .. tostring(k))
          seen[k] = value
        end
        assert.is_true(seen.id ~= nil and seen.future_object ~= nil)
        assert.is_nil(seen.future_field)
        assert.are.same({ "a", cjson.null, "b" }, seen.future_list)
        seen.future_object.kept = 2
        assert.are.equal(1, v.future_object.kept) -- a copy: the handle stays read-only
      end
    end)

    -- A handle shapes a field when it is first read (video.c): whichever way reads it first,
    -- every way reads the same shape, and reads it again so.
    it("reads the same shape whichever way reads a field first, and again", function()
      local raw = '{"id":"%s","object":"video","status":"in_progress","progress":50.0,'
        .. '"created_at":1767225600.0,"completed_at":null,"seconds":8,"model":"sora-2",'
        .. '"error":null,"future":null,"future_n":2.5,"future_obj":{"a":null}}'
      local function check(v)
        assert.are.equal(50, v.progress)
        assert.are.equal("8", v.seconds)
        assert.is_nil(v.completed_at)
        assert.is_nil(v.error)
        assert.is_nil(v.future)
        assert.are.equal(2.5, v.future_n)
        assert.are.same({ a = cjson.null }, v.future_obj)
        if math.type then
          assert.are.equal("integer", math.type(v.progress))
          assert.are.equal("integer", math.type(v.created_at))
        end
        assert.are.equal("sora.Video (" .. video.id .. ", in_progress, 50%)", tostring(v))
        local t = v:to_table()
        assert.are.same({ id = video.id, object = "video", status = "in_progress", progress = 50,
          created_at = 1767225600, seconds = "8", model = "sora-2", future_n = 2.5,
          future_obj = { a = cjson.null } }, t)
        if math.type then assert.are.equal("integer", math.type(t.progress)) end
      end
      local firsts = {
        function(v) return tostring(v) end,
        function(v) return v:to_table() end,
        function(v) return v.progress, v.seconds, v.error end,
        _VERSION ~= "Lua 5.1" and function(v) for _ in pairs(v) do end end or function(v) return v.id end,
      }
      for i, first in ipairs(firsts) do
        E:fault{ method = "GET", action = "respond", status = 200, body = raw:format(video.id) }
        local v, err = c:retrieve(video.id)
        assert.is_truthy(v, tostring(err))
        first(v)
        check(v)
        check(v) -- the second time, from the shape kept
        if _VERSION ~= "Lua 5.1" then
          local seen = {}
          for k, value in pairs(v) do seen[k] = value end
          assert.are.same(v:to_table(), seen, "way " .. i)
        end
      end
    end)

    it("gives a long array with nulls whole, and to_table() encodes again", function()
      local list = {}
      for i = 1, 20 do list[i] = cjson.null end
      list[21] = "last"
      local ok, v = answered(video_with{ future_list = list }, retrieve)
      assert.is_true(ok, tostring(v))
      assert.are.equal(21, #v.future_list)
      assert.has_no.errors(function() cjson.encode(v:to_table()) end)
    end)

    it("a failed video with an error object is accepted", function()
      local ok, v, err = answered(video_with{ status = "failed",
        error = { code = "moderation_blocked", message = "no" } }, retrieve)
      assert.is_true(ok)
      assert.is_nil(err)
      assert.are.equal("moderation_blocked", v.error.code)
    end)
  end)

  describe("a page", function()
    local function page_with(fields)
      local t = { object = "list", data = { video:to_table() }, first_id = video.id,
                  last_id = video.id, has_more = false }
      for k, v in pairs(fields) do t[k] = v end
      return t
    end

    local function first_page()
      for page in c:pages{ limit = 1 } do return page end
    end

    local cases = {
      { "last_id", { last_id = 5, has_more = true } }, { "first_id", { first_id = {} } },
      { "last_id", { last_id = "", has_more = true } }, { "data", { data = { a = 1 } } },
      { "data", { data = "videos" } }, { "data", { data = cjson.null } },
      { "has_more", { has_more = "yes" } }, { "status", { data = { { id = "video_1" } } } },
    }
    for _, case in ipairs(cases) do
      it("whose '" .. case[1] .. "' is " .. cjson.encode(case[2]) .. " raises invalid_response naming it",
        function()
        E:fault{ method = "GET", path = "^/v1/videos$", action = "respond", status = 200,
                 body = page_with(case[2]) }
        local ok, err = pcall(first_page)
        assert.is_false(ok)
        assert.is_true(sora.is_error(err), tostring(err))
        assert.are.equal("invalid_response", err.kind, tostring(err))
        assert.matches("'" .. case[1] .. "'", err.message, 1, true)
      end)
    end

    it("with a video of the wrong shape names the item", function()
      E:fault{ method = "GET", path = "^/v1/videos$", action = "respond", status = 200,
               body = page_with{ data = { video:to_table(), video_with{ progress = "x" } } } }
      local ok, err = pcall(first_page)
      assert.is_false(ok)
      assert.are.equal("invalid_response", err.kind)
      assert.matches("item 2 of 'data'", err.message, 1, true)
    end)

    it("with a null or a number for a video names it as JSON does", function()
      for _, case in ipairs{ { cjson.null, "null" }, { 5, "number" }, { "v", "string" } } do
        E:fault{ method = "GET", path = "^/v1/videos$", action = "respond", status = 200,
                 body = page_with{ data = { video:to_table(), case[1] } } }
        local ok, err = pcall(first_page)
        assert.is_false(ok)
        assert.are.equal("invalid_response", err.kind)
        assert.matches("item 2 of 'data': expected a video object, got a JSON " .. case[2], err.message, 1, true)
      end
    end)
  end)

  describe("a character", function()
    it("whose id is null is accepted", function()
      local ok, ch, err = answered({ id = cjson.null, name = "Ada", created_at = 1 },
                                   function() return c:get_character("char_1") end)
      assert.is_true(ok)
      assert.is_nil(err)
      assert.is_nil(ch.id)
      assert.are.equal("Ada", ch.name)
    end)

    it("whose id is not a string is invalid_response", function()
      assert_invalid("id", answered({ id = 5, name = "Ada" },
                                    function() return c:get_character("char_1") end))
    end)
  end)

  it("a deleted result without a valid id is invalid_response", function()
    E:fault{ method = "DELETE", action = "respond", status = 200,
             body = { id = "", object = "video.deleted", deleted = true } }
    assert_invalid("id", pcall(function() return c:delete(video.id) end))
  end)

  describe("a transport error", function()
    it("keeps libcurl's code: COULDNT_CONNECT", function()
      local closed = sora.new{ api_key = H.KEY, base_url = "http://127.0.0.1:" .. F.free_port() .. "/v1",
                               max_retries = 0 }
      local v, err = closed:retrieve("video_1")
      closed:close()
      assert.is_nil(v)
      assert.are.equal("connection", err.kind)
      assert.are.equal("COULDNT_CONNECT", err.curl_code)
    end)

    it("keeps libcurl's code: OPERATION_TIMEDOUT", function()
      local quick = sora.new{ api_key = H.KEY, base_url = E.url, max_retries = 0, timeout = 0.3 }
      E:fault{ method = "GET", action = "stall" }
      local v, err = quick:retrieve(video.id)
      quick:close()
      assert.is_nil(v)
      assert.are.equal("timeout", err.kind)
      assert.are.equal("OPERATION_TIMEDOUT", err.curl_code)
    end)

    it("keeps libcurl's code for a reset: RECV_ERROR or GOT_NOTHING", function()
      -- a fresh client: libcurl itself resends on a kept-alive connection that dies unanswered
      local fresh = sora.new{ api_key = H.KEY, base_url = E.url, max_retries = 0 }
      E:fault{ method = "GET", action = "reset" }
      local v, err = fresh:retrieve(video.id)
      fresh:close()
      assert.is_nil(v)
      assert.are.equal("connection", err.kind)
      assert.is_string(err.curl_code)
      assert.is_truthy(err.curl_code == "RECV_ERROR" or err.curl_code == "GOT_NOTHING", err.curl_code)
    end)

    it("an HTTP error has no curl_code", function()
      local v, err = c:retrieve("video_unknown")
      assert.is_nil(v)
      assert.are.equal("not_found", err.kind)
      assert.is_nil(err.curl_code)
    end)
  end)
end)
