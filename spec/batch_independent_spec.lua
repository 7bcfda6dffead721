-- The journaled batch checked against a server that is not the emulator: a few dozen lines of
-- a fake Videos API (support.rawserver) that ignores Idempotency-Key, makes the video of every
-- create at once, loses the answer to the first create and answers the second only after
-- 3 s. A batch in a child process is killed while that second create is in flight, then run
-- again: the fake server's own count says each job got exactly one video.
local socket = require "socket"
local cjson = require "cjson"
local H = require "support.client"
local rawserver = require "support.rawserver"

local FAKE = [==[
local socket = require "socket"
local cjson = require "cjson"
local videos, by_id, count, creates = {}, {}, {}, 0

local function date() return os.date("!%a, %d %b %Y %H:%M:%S GMT") end

local function answer(status, content_type, body)
  return head(status, { "Content-Type: " .. content_type, "Content-Length: " .. #body,
                        "Date: " .. date(), "Connection: close" }) .. body, false
end

local function json(value) return answer("200 OK", "application/json", cjson.encode(value)) end

-- the prompt of a create, sent as JSON or as multipart/form-data
local function prompt_of(body)
  body = body or ""
  local ok, decoded = pcall(cjson.decode, body)
  if ok and type(decoded) == "table" then return decoded.prompt end
  return body:match('name="prompt"\r\n\r\n(.-)\r\n%-%-')
end

local function create(req)
  creates = creates + 1
  local prompt = prompt_of(req.body)
  local video = { id = "video_fake" .. creates, object = "video", status = "completed",
                  progress = 100, model = "sora-2", size = "720x1280", seconds = "4",
                  prompt = prompt, created_at = os.time() }
  table.insert(videos, 1, video)
  by_id[video.id] = video
  count[prompt] = (count[prompt] or 0) + 1
  if creates == 1 then return nil, false end   -- made, then the answer is lost
  if creates == 2 then socket.sleep(3) end     -- made at once, answered 3 s later
  return json(video)
end

return function(req)
  local path = req.path
  if req.method == "POST" and path == "/v1/videos" then return create(req) end
  if path == "/count" then return json(count) end
  if path:match("^/v1/videos%?") or path == "/v1/videos" then
    return json({ object = "list", data = videos, has_more = false,
                  first_id = videos[1] and videos[1].id, last_id = videos[#videos] and videos[#videos].id })
  end
  local id, content = path:match("^/v1/videos/([%w_]+)(/?c?o?n?t?e?n?t?)")
  local video = id and by_id[id]
  if not video then
    return answer("404 Not Found", "application/json", '{"error":{"message":"no such video","type":"invalid_request_error"}}')
  end
  if content == "/content" then return answer("200 OK", "video/mp4", string.rep(video.id, 500)) end
  return json(video)
end
]==]

local CHILD = [[
local sora = require "sora"
local base_url, dir = arg[1], arg[2]
local client = sora.new{ api_key = "sk-test", base_url = base_url, timeout = 30 }
local jobs = {}
for i = 1, 3 do jobs[i] = { prompt = "fake " .. i, output = dir .. "/fake-" .. i .. ".mp4", interval = 0.05 } end
local _, errors = client:generate_many(jobs, { journal = dir .. "/fake.journal", concurrency = 1 })
for i = 1, 3 do if errors[i] then io.stderr:write(tostring(errors[i]), "\n") os.exit(1) end end
os.exit(0)
]]

describe("a journaled batch against a fake server that ignores Idempotency-Key", function()
  local S, dir
  lazy_setup(function()
    S = rawserver.start(FAKE)
    dir = H.tempdir()
  end)
  lazy_teardown(function()
    if S then S:stop() end
    H.rmdir(dir)
  end)

  it("killed while a create is in flight, then rerun: one video per job", function()
    local lua, cpath = H.interpreter()
    local script = dir .. "/child.lua"
    H.write(script, H.child_paths(cpath) .. CHILD)
    local command = string.format("%s %s %s %s >>%s 2>&1 </dev/null", lua, H.shell_quote(script),
      H.shell_quote(S.url), H.shell_quote(dir), H.shell_quote(dir .. "/child.log"))
    os.execute(command .. " & echo $! >" .. H.shell_quote(dir .. "/pid"))
    local pid = H.read(dir .. "/pid"):match("%d+")
    -- the second create (job 2) is in flight once the server has seen it
    local deadline = socket.gettime() + 30
    repeat
      socket.sleep(0.05)
      local posts = 0
      for _, r in ipairs(S:requests()) do if r.method == "POST" then posts = posts + 1 end end
      assert(socket.gettime() < deadline, "the second create never came")
    until posts >= 2
    socket.sleep(0.5)
    os.execute("kill -KILL " .. pid)
    local ok = os.execute(command)
    assert.is_true(ok == true or ok == 0, H.read(dir .. "/child.log"))
    local counts = cjson.decode((H.sh("curl -s " .. H.shell_quote(S.url:gsub("/v1$", "") .. "/count"))))
    assert.are.same({ ["fake 1"] = 1, ["fake 2"] = 1, ["fake 3"] = 1 }, counts)
    for i = 1, 3 do
      assert.is_truthy(H.read(dir .. "/fake-" .. i .. ".mp4"):find("^video_fake%d"))
    end
  end)
end)
