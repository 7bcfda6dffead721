-- Downloads are whole or nothing: answers that do not add up (a 206 nobody asked for, a resume
-- of another length, a Content-Range that disagrees with its body) are invalid_response and the
-- target is untouched; libcurl frames the body (chunked with Content-Length, trailers); the
-- target must be a regular file, keeps its mode, and is never a descriptor a child inherits.
local sora = require "sora"
local H = require "support.client"
local F = require "support.faults"
local rawserver = require "support.rawserver"
local tools = require "support.tools"

local OLD = "the old file"

-- Whether a shell command succeeded (os.execute gives true on 5.2+, 0 on 5.1 and LuaJIT).
local function sh(command)
  local ok = os.execute(command)
  return ok == true or ok == 0
end

describe("integrity of downloads", function()
  local S, c, dir

  before_each(function()
    dir = F.tempdir()
  end)

  after_each(function()
    if c then c:close() end
    if S then S:stop() end
    c, S = nil, nil
    H.rmdir(dir)
  end)

  -- A server running `script` and a client of it (one retry unless said otherwise).
  local function serve(script, opts)
    S = rawserver.start(script)
    local o = { api_key = H.KEY, base_url = S.url, max_retries = 1 }
    for k, v in pairs(opts or {}) do o[k] = v end
    c = sora.new(o)
  end

  -- A 300,000-byte body cut after `sent` bytes, then `answer` (a Lua expression of the server
  -- script) to the resume: the file must be the whole body, asked for from byte `sent` on.
  local function assert_cut_and_resumed(sent, answer)
    serve(string.format([[return function(req, n)
      if n == 1 then return head("200 OK", { "Content-Length: 300000" }) .. synthetic(0, %d) end
      return %s
    end]], sent, answer))
    local out = dir .. "/out.mp4"
    assert(c:download_content("video_1", { path = out }))
    assert.are.equal("bytes=" .. sent .. "-", S:requests()[2].headers.range)
    F.assert_synthetic_exact(H.read(out), 300000)
    assert.are.same({ "out.mp4" }, H.ls(dir))
  end

  -- Downloads to dir/out.mp4 over an existing file; asserts invalid_response, the old file
  -- untouched and no temporary file left.
  local function assert_refused(pattern)
    local out = dir .. "/out.mp4"
    H.write(out, OLD)
    local ok, err = c:download_content("video_1", { path = out })
    assert.is_nil(ok)
    assert.is_true(sora.is_error(err))
    assert.are.equal("invalid_response", err.kind, tostring(err))
    if pattern then assert.matches(pattern, err.message) end
    assert.are.equal(OLD, H.read(out))
    assert.are.same({ "out.mp4" }, H.ls(dir))
    return err
  end

  describe("a 206", function()
    it("to a request that sent no Range is invalid_response, to a path and to a string", function()
      serve[[return function(req)
        return head("206 Partial Content", { "Content-Range: bytes 0-9/10", "Content-Length: 10" })
          .. "0123456789"
      end]]
      assert_refused("206")
      local bytes, err = c:download_content("video_1")
      assert.is_nil(bytes)
      assert.are.equal("invalid_response", err.kind)
      for _, r in ipairs(S:requests()) do assert.is_nil(r.headers.range) end
    end)

    it("resuming with another total than the first answer's length is invalid_response", function()
      -- 300,000 announced, 150,000 sent; the resume claims a 450,000-byte file
      serve[[return function(req, n)
        if n == 1 then
          return head("200 OK", { "Content-Length: 300000" }) .. synthetic(0, 150000)
        end
        return head("206 Partial Content", { "Content-Range: bytes 150000-299999/450000",
                                             "Content-Length: 150000" }) .. synthetic(150000, 300000)
      end]]
      assert_refused("total")
      assert.are.equal("bytes=150000-", S:requests()[2].headers.range)
    end)

    it("whose Content-Range disagrees with its body is invalid_response", function()
      -- the range says 150,000 bytes follow; the body has none: 150,000 of 300,000 bytes
      serve[[return function(req, n)
        if n == 1 then
          return head("200 OK", { "Content-Length: 300000" }) .. synthetic(0, 150000)
        end
        return head("206 Partial Content", { "Content-Range: bytes 150000-299999/300000",
                                             "Content-Length: 0" })
      end]]
      assert_refused("Content%-Range")
    end)

    it("whose Content-Range ends before the total is invalid_response", function()
      serve[[return function(req, n)
        if n == 1 then
          return head("200 OK", { "Content-Length: 300000" }) .. synthetic(0, 150000)
        end
        return head("206 Partial Content", { "Content-Range: bytes 150000-199999/300000",
                                             "Content-Length: 50000" }) .. synthetic(150000, 200000)
      end]]
      assert_refused("Content%-Range")
    end)

    -- A file is written 16 KiB at a time (download.c): the cut comes while every byte was still
    -- gathered (10,000), at a whole piece (16,384), or after some reached the file.
    for _, sent in ipairs({ 10000, 16384, 150000, 200000 }) do
      it("that resumes exactly is kept, byte-identical (cut after " .. sent .. " bytes)", function()
        assert_cut_and_resumed(sent, string.format([[head("206 Partial Content", {
          "Content-Range: bytes %d-299999/300000", "Content-Length: %d" }) .. synthetic(%d, 300000)]],
          sent, 300000 - sent, sent))
      end)
    end
  end)

  describe("a 200 to a resume", function()
    for _, sent in ipairs({ 200000, 10000 }) do
      it("starts the file over, byte-identical (cut after " .. sent .. " bytes)", function()
        assert_cut_and_resumed(sent, [[head("200 OK", { "Content-Length: 300000" }) .. synthetic(0, 300000)]])
      end)
    end
  end)

  describe("framing", function()
    local CHUNKED = [[
      local function chunked(body, trailers)
        return string.format("%x\r\n", #body) .. body .. "\r\n0\r\n" .. (trailers or "") .. "\r\n"
      end
      return function(req)
        local body = req.path:match("/content") and synthetic(0, 5000)
          or '{"id":"video_1","object":"video","status":"queued","progress":0,"created_at":1}'
        local headers = { "Transfer-Encoding: chunked", "x-request-id: req_header" }
        BODY
      end]]

    it("a complete chunked body that also carries Content-Length is whole", function()
      serve((CHUNKED:gsub("BODY", [[
        headers[#headers + 1] = "Content-Length: 10"
        return head("200 OK", headers) .. chunked(body)]], 1)))
      local out = dir .. "/out.mp4"
      local ok, err = c:download_content("video_1", { path = out })
      assert.is_nil(err)
      assert.is_true(ok)
      F.assert_synthetic_exact(H.read(out), 5000)
    end)

    it("a Content-Length trailer does not make a complete body short", function()
      serve((CHUNKED:gsub("BODY", [[
        headers[#headers + 1] = "Trailer: Content-Length"
        return head("200 OK", headers) .. chunked(body, "Content-Length: 999999\r\n")]], 1)))
      local bytes, err = c:download_content("video_1")
      assert.is_nil(err)
      F.assert_synthetic_exact(bytes, 5000)
    end)

    it("a trailer does not overwrite the request id", function()
      serve(CHUNKED:gsub("BODY", [[
        headers[#headers + 1] = "Trailer: x-request-id"
        return head("404 Not Found", headers)
          .. chunked('{"error":{"message":"gone","type":"invalid_request_error","code":"x"}}',
                     "x-request-id: req_trailer\r\n")]], 1), { max_retries = 0 })
      local v, err = c:retrieve("video_1")
      assert.is_nil(v)
      assert.are.equal("not_found", err.kind)
      assert.are.equal("req_header", err.request_id)
    end)

    it("a body shorter than its Content-Length is a connection error with curl_code", function()
      serve([[return function(req)
        return head("200 OK", { "Content-Length: 10000" }) .. synthetic(0, 4000)
      end]], { max_retries = 0 })
      local out = dir .. "/out.mp4"
      local ok, err = c:download_content("video_1", { path = out })
      assert.is_nil(ok)
      assert.are.equal("connection", err.kind)
      assert.are.equal("PARTIAL_FILE", err.curl_code)
      assert.are.same({}, H.ls(dir))
    end)
  end)

  describe("the target", function()
    local function assert_not_regular(path, what)
      serve[[return function() return head("200 OK", { "Content-Length: 3" }) .. "abc" end]]
      local ok, err = c:download_content("video_1", { path = path })
      assert.is_nil(ok, what)
      assert.are.equal("io", err.kind, what)
      assert.matches(path, err.message, 1, true)
      assert.matches("not a regular file", err.message, 1, true)
      assert.are.same({}, S:requests(), what)
    end

    it("naming a FIFO, a socket or a character device is refused with kind io, before any request", function()
      local fifo = dir .. "/fifo"
      assert(sh("mkfifo " .. H.shell_quote(fifo)))
      assert_not_regular(fifo, "fifo")
      assert.is_true(sh("test -p " .. H.shell_quote(fifo)))
      c:close() S:stop()
      local unix = require "socket.unix"
      local sock = assert(unix())
      assert(sock:bind(dir .. "/sock"))
      assert_not_regular(dir .. "/sock", "socket")
      sock:close()
      c:close() S:stop()
      -- a link to /dev/null: the link is followed to the device (as root, /dev/null itself
      -- would otherwise be replaced)
      assert(sh("ln -s /dev/null " .. H.shell_quote(dir .. "/null")))
      assert_not_regular(dir .. "/null", "character device")
      assert.is_true(sh("test -c /dev/null"))
      assert.is_true(sh("test -L " .. H.shell_quote(dir .. "/null")))
      assert.are.same({ "fifo", "null", "sock" }, H.ls(dir))
    end)

    it("keeps the mode of a file it replaces", function()
      serve[[return function() return head("200 OK", { "Content-Length: 3" }) .. "abc" end]]
      local out = dir .. "/private.mp4"
      H.write(out, OLD)
      assert(sh("chmod 600 " .. H.shell_quote(out)))
      assert(c:download_content("video_1", { path = out }))
      assert.are.equal("abc", H.read(out))
      local p = io.popen("stat -c %a " .. H.shell_quote(out))
      local mode = p:read("*l")
      p:close()
      assert.are.equal("600", mode)
    end)

    it("is written through a descriptor no child process inherits", function()
      serve[[return function()
        return head("200 OK", { "Content-Length: 200000" }) .. synthetic(0, 200000)
      end]]
      local out = dir .. "/out.mp4"
      local seen, listing = false, nil
      assert(c:download_content("video_1", { path = out, on_progress = function()
        if seen then return end
        seen = true
        local p = io.popen("ls -l /proc/self/fd/ 2>/dev/null")
        listing = p:read("*a")
        p:close()
      end }))
      assert.is_true(seen)
      assert.is_string(listing)
      assert.is_nil(listing:find(".sora-", 1, true), listing)
    end)
  end)
end)

-- What the download does to the file system, seen by strace in a child process: a durable
-- download syncs the file before the rename and the directory after; a fresh temporary file
-- is never truncated (ext4 would flush it whole at close); it is opened close-on-exec.
describe("integrity of downloads on disk", function()
  local S, dir

  -- true, or false and why (see support/tools.lua)
  local function can_strace()
    local ok, why = tools.require_tool("strace", "it sees the download's system calls")
    if ok and not sh("strace -o /dev/null true >/dev/null 2>&1") then
      return tools.missing("ptrace", "strace cannot trace a child here")
    end
    return ok, why
  end

  before_each(function()
    dir = F.tempdir()
    S = rawserver.start[[return function()
      return head("200 OK", { "Content-Length: 100000" }) .. synthetic(0, 100000)
    end]]
  end)

  after_each(function()
    S:stop()
    H.rmdir(dir)
  end)

  -- The system calls of a child that downloads to dir/out.mp4 with `opts` (Lua source).
  local function traced(opts)
    local lua, cpath = H.interpreter()
    local script, log = dir .. "/child.lua", dir .. "/strace.log"
    H.write(script, H.child_paths(cpath)
      .. "local c = require('sora').new{ api_key = 'sk-test', base_url = " .. string.format("%q", S.url)
      .. ", max_retries = 0 }\n"
      .. "assert(c:download_content('video_1', { path = " .. string.format("%q", dir .. "/out.mp4")
      .. ", " .. opts .. " }))\n")
    -- LeakSanitizer cannot run under ptrace: off for a sanitized child, the other checks stay
    local ok = sh("ASAN_OPTIONS=detect_leaks=0 strace -f -qq -o " .. H.shell_quote(log)
      .. " -e trace=openat,open,fsync,fdatasync,ftruncate,rename,renameat,renameat2 "
      .. lua .. " " .. H.shell_quote(script) .. " >" .. H.shell_quote(dir .. "/out.txt") .. " 2>&1")
    assert(ok, H.read(dir .. "/out.txt"))
    local calls = {}
    for line in io.lines(log) do calls[#calls + 1] = line end
    F.assert_synthetic_exact(H.read(dir .. "/out.mp4"), 100000)
    return calls
  end

  -- Index of the first call matching pattern after index `from`, or nil.
  local function find(calls, pattern, from)
    for i = (from or 0) + 1, #calls do
      if calls[i]:find(pattern) then return i, calls[i] end
    end
  end

  it("durable = true syncs the file before the rename and the directory after", function()
    local ok, why = can_strace()
    if not ok then return pending(why) end
    local calls = traced("durable = true")
    local open_at, open_line = find(calls, "%.sora%-%w+\", O_.*= %d+$")
    assert.is_number(open_at, table.concat(calls, "\n"))
    assert.matches("O_CLOEXEC", open_line)
    local fd = open_line:match("= (%d+)$")
    local sync_at = find(calls, "fsync%(" .. fd .. "%)", open_at)
    local rename_at = find(calls, "rename", open_at)
    assert.is_number(sync_at, table.concat(calls, "\n"))
    assert.is_number(rename_at, table.concat(calls, "\n"))
    assert.is_true(sync_at < rename_at)
    local dir_at, dir_line = find(calls, "\"" .. dir:gsub("%p", "%%%0") .. "\", O_RDONLY", rename_at)
    assert.is_number(dir_at, table.concat(calls, "\n"))
    assert.is_number(find(calls, "fsync%(" .. dir_line:match("= (%d+)$") .. "%)", dir_at))
  end)

  it("is not durable by default, and never truncates the fresh temporary file", function()
    local ok, why = can_strace()
    if not ok then return pending(why) end
    local calls = traced("")
    assert.is_number(find(calls, "rename"))
    assert.is_nil(find(calls, "fsync"), table.concat(calls, "\n"))
    assert.is_nil(find(calls, "ftruncate"), table.concat(calls, "\n"))
  end)

  it("durable must be a boolean", function()
    local c = sora.new{ api_key = H.KEY, base_url = S.url, max_retries = 0 }
    local ok, msg = pcall(c.download_content, c, "video_1", { path = dir .. "/out.mp4", durable = "yes" })
    c:close()
    assert.is_false(ok)
    assert.matches("field 'durable' must be a boolean", msg, 1, true)
    assert.are.same({}, S:requests())
  end)

  it("video:download takes durable too", function()
    local E, c = H.start({ max_retries = 0 })
    local video = H.completed_video(c, E, { prompt = "durable" })
    local ok, err = video:download{ path = dir .. "/v.mp4", durable = true }
    H.stop(E, c)
    assert.is_nil(err)
    assert.is_true(ok)
    assert.is_true(#H.read(dir .. "/v.mp4") > 0)
  end)
end)
