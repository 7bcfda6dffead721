-- Uploads read only regular files, opened once and streamed from that descriptor (a FIFO
-- never blocks the host, a directory is never sent as an empty image); part headers cannot be
-- injected; strings read from a proxy table stay alive while they are used.
local sora = require "sora"
local H = require "support.client"
local F = require "support.faults"

local PNG = H.FIXTURES .. "ref-1280x720.png"
local CLIP = H.FIXTURES .. "clip.mp4"

describe("integrity of uploads", function()
  local E, c, dir

  lazy_setup(function()
    E, c = H.start({ max_retries = 0 })
  end)

  lazy_teardown(function()
    H.stop(E, c)
  end)

  before_each(function()
    E:clear_faults()
    E:clear_requests()
    dir = F.tempdir()
  end)

  after_each(function()
    H.rmdir(dir)
  end)

  -- Asserts that fn raises an argument error of `call` matching each of `patterns`, and that
  -- no request was sent.
  local function assert_refused(call, fn, ...)
    local ok, msg = pcall(fn)
    assert.is_false(ok)
    assert.is_string(msg)
    assert.matches("bad argument #%d+ to '" .. call .. "'", msg)
    for _, pattern in ipairs({ ... }) do assert.matches(pattern, msg, 1, true) end
    assert.are.same({}, E:requests())
  end

  describe("a path", function()
    -- Runs `code` in a child interpreter (with `c`, a client of the emulator) under a time limit:
    -- an upload that blocks shows as a child killed after 10 s.
    local function run_bounded(code)
      local lua, cpath = H.interpreter()
      local script = dir .. "/child.lua"
      H.write(script, H.child_paths(cpath)
        .. "local sora = require 'sora'\n"
        .. "local c = sora.new{ api_key = " .. string.format("%q", H.KEY) .. ", base_url = "
        .. string.format("%q", E.url) .. ", max_retries = 0 }\n" .. code)
      local p = assert(io.popen("timeout 10 " .. lua .. " " .. H.shell_quote(script) .. " 2>&1; echo \"exit $?\""))
      local out = p:read("*a")
      p:close()
      return out
    end

    it("naming a FIFO raises at once, naming the field and the path, outside and inside a task", function()
      local fifo = dir .. "/ref.png"
      local made = os.execute("mkfifo " .. H.shell_quote(fifo))
      assert.is_true(made == true or made == 0)
      local out = run_bounded(string.format([[
        local fifo = %q
        print(select(2, pcall(c.create, c, { prompt = "p", input_reference = fifo })))
        local task = c:spawn(function()
          return pcall(c.create_character, c, { video = { path = fifo }, name = "n" })
        end)
        c:run()
        print(select(2, task:result()))
      ]], fifo))
      assert.matches("exit 0", out, 1, true)
      assert.matches("bad argument #1 to 'create' (field 'input_reference': '" .. fifo
        .. "' is not a regular file)", out, 1, true)
      assert.matches("field 'video': '" .. fifo .. "' is not a regular file", out, 1, true)
      assert.are.same({}, E:requests())
    end)

    it("naming a directory is refused, even with a content_type", function()
      assert_refused("create", function()
        c:create{ prompt = "p", input_reference = { path = dir, content_type = "image/png" } }
      end, "field 'input_reference'", dir, "is not a regular file")
      assert_refused("create_character", function()
        c:create_character{ video = dir .. "/", name = "n" }
      end, "field 'video'", "is not a regular file")
    end)

    it("is streamed again, whole, when the request is retried", function()
      local once = sora.new{ api_key = H.KEY, base_url = E.url, max_retries = 1 }
      E:fault{ method = "POST", action = "respond", status = 500 }
      local v, err = once:create{ prompt = "retried upload", size = "1280x720", input_reference = PNG }
      once:close()
      assert.is_nil(err)
      assert.is_string(v.id)
      local posts = H.matching(E, "POST", "^/v1/videos$")
      assert.are.equal(2, #posts)
      local size = #H.read(PNG)
      for i = 1, 2 do
        local part = H.part(posts[i], "input_reference")
        assert.are.equal(size, part.size, "attempt " .. i)
        assert.are.equal("image/png", part.content_type)
      end
    end)

    it("leaves no descriptor open, whether the upload is sent or refused", function()
      -- descriptors of this process open on a fixture
      local function open_files()
        local pid = H.read("/proc/self/stat"):match("^(%d+)")
        local p = assert(io.popen("ls -l /proc/" .. pid .. "/fd"))
        local listing = p:read("*a")
        p:close()
        local n = 0
        for _ in listing:gmatch(H.FIXTURES:gsub("%p", "%%%0")) do n = n + 1 end
        return n
      end
      for _ = 1, 5 do
        assert(c:create{ prompt = "sent", size = "1280x720", input_reference = PNG })
        assert.is_false(pcall(c.create, c, { prompt = "refused", input_reference = H.FIXTURES .. "not-an-image.txt" }))
        assert.is_false(pcall(c.create, c, { prompt = "refused", input_reference = { path = PNG, filename = "a\nb" } }))
      end
      collectgarbage()
      collectgarbage()
      assert.are.equal(0, open_files())
    end)

    it("whose file name holds CR or LF is refused", function()
      local evil = dir .. "/ref\r\nX-Injected: 1.png"
      H.write(evil, H.read(PNG))
      assert_refused("create", function()
        c:create{ prompt = "p", input_reference = evil }
      end, "field 'input_reference'", "CR, LF or NUL")
    end)

    it("with a NUL is refused (open would read another file)", function()
      assert_refused("create", function()
        c:create{ prompt = "p", input_reference = { path = PNG .. "\0.evil" } }
      end, "field 'input_reference'", "NUL")
    end)
  end)

  describe("part headers", function()
    local cases = {
      { "content_type", { path = PNG, content_type = "image/png\r\nX-Injected: 1" } },
      { "content_type", { path = PNG, content_type = "image/png\0" } },
      { "content_type", { data = "bytes", content_type = "image/png\nX: 1" } },
      { "filename", { path = PNG, filename = "a.png\r\nX-Injected: 1" } },
      { "filename", { data = H.read(PNG), filename = "a\n.png" } },
      { "filename", { data = H.read(PNG), filename = "a\0.png" } },
    }
    for i, case in ipairs(cases) do
      it("cannot be injected through " .. case[1] .. " (" .. i .. ")", function()
        assert_refused("create", function()
          c:create{ prompt = "p", input_reference = case[2] }
        end, "field 'input_reference'", "the " .. case[1] .. " contains CR, LF or NUL")
      end)
    end

    it("cannot be injected into a video upload", function()
      assert_refused("create_character", function()
        c:create_character{ video = { path = CLIP, filename = "c.mp4\r\nX: 1" }, name = "n" }
      end, "field 'video'", "CR, LF or NUL")
    end)
  end)

  describe("a proxy table whose __index returns fresh strings and collects", function()
    local function proxy(fields)
      return setmetatable({}, { __index = function(_, key)
        local v = fields[key]
        collectgarbage()
        collectgarbage()
        if type(v) == "string" then return (v .. "#"):sub(1, -2) end -- a fresh string
        return v
      end })
    end

    it("gives a path, a filename and a content type that are used intact", function()
      local v, err = c:create{ prompt = "proxy", size = "1280x720", input_reference = proxy{
        path = PNG, filename = "proxy-" .. string.rep("n", 40) .. ".png", content_type = "image/png" } }
      assert.is_nil(err)
      assert.is_string(v.id)
      local part = H.part(E:last_request(), "input_reference")
      assert.are.equal("proxy-" .. string.rep("n", 40) .. ".png", part.filename)
      assert.are.equal("image/png", part.content_type)
      assert.are.equal(#H.read(PNG), part.size)
    end)

    it("gives data that is used intact", function()
      local bytes = H.read(CLIP)
      local ch, err = c:create_character{ video = proxy{ data = bytes }, name = "proxy" }
      assert.is_nil(err)
      assert.is_table(ch)
      local part = H.part(E:last_request(), "video")
      assert.are.equal(#bytes, part.size)
      assert.are.equal("video/mp4", part.content_type)
      assert.are.equal("video.mp4", part.filename)
    end)
  end)
end)
