--- A webhook receiver on LuaSocket: verifies every event posted to it with sora.webhooks and,
-- when `video.completed` arrives, downloads the video; `video.failed` prints why it failed.
--
--   OPENAI_WEBHOOK_SECRET=whsec_... OPENAI_API_KEY=sk-... [OPENAI_BASE_URL=...] \
--     lua5.4 examples/webhook_receiver.lua [port] [directory]
--
-- port defaults to 8080 (0 picks a free one; the first line printed says which), directory to
-- the current one. Against the local emulator, in two terminals:
--
--   bin/sora-emulator --port 8000 --webhook-url http://127.0.0.1:8080/webhooks \
--     --webhook-secret whsec_c29yYSBlbXVsYXRvciB3ZWJob29rIHNlY3JldCE=
--   OPENAI_WEBHOOK_SECRET=whsec_c29yYSBlbXVsYXRvciB3ZWJob29rIHNlY3JldCE= \
--   OPENAI_API_KEY=sk-local OPENAI_BASE_URL=http://127.0.0.1:8000/v1 \
--     lua5.4 examples/webhook_receiver.lua 8080
--
-- then create a video (sora create "a paper boat", or client:create{...}): its .mp4 appears
-- here when the job completes, with no polling. One request at a time, answered before the
-- download starts, so the sender never waits on it; a delivery retried under the same
-- webhook-id is acknowledged again but handled once.
local socket = require "socket"
local sora = require "sora"

local port = tonumber(arg[1] or "8080")
local directory = arg[2] or "."
local secret = os.getenv("OPENAI_WEBHOOK_SECRET")
if not port or not secret then
  io.stderr:write("usage: OPENAI_WEBHOOK_SECRET=whsec_... lua examples/webhook_receiver.lua [port] [directory]\n")
  os.exit(2)
end

local MAX_BODY = 1024 * 1024 -- events are small; anything bigger is not one
local client = sora.new()
local handled = {} -- webhook-id -> true: the idempotency key of each event

-- Reads one request: { method, path, headers = { lower-case name = value }, body }, or nil, why.
local function read_request(conn)
  local line, err = conn:receive("*l")
  if not line then return nil, err end
  local req = { headers = {} }
  req.method, req.path = line:match("^(%u+) (%S+) HTTP/1%.[01]$")
  if not req.method then return nil, "not an HTTP request" end
  repeat
    line, err = conn:receive("*l")
    if not line then return nil, err end
    local name, value = line:match("^([^:]+):%s*(.-)%s*$")
    if name then req.headers[name:lower()] = value end
  until line == ""
  local length = tonumber(req.headers["content-length"] or "0")
  if not length or length > MAX_BODY then return nil, "no body of an acceptable length" end
  req.body, err = conn:receive(length)
  if not req.body then return nil, err end
  return req
end

local function answer(conn, status, text)
  conn:send(string.format("HTTP/1.1 %d %s\r\ncontent-type: text/plain\r\ncontent-length: %d\r\n"
    .. "connection: close\r\n\r\n%s", status, status == 200 and "OK" or "Error", #text, text))
end

-- What an event asks for: the video of video.completed is downloaded, video.failed says why.
local function act(event)
  local id = event.data and event.data.id
  if event.type == "video.completed" then
    local path = directory .. "/" .. id .. ".mp4"
    local ok, err = client:download_content(id, { path = path })
    print(ok and ("saved " .. path) or ("download of " .. id .. " failed: " .. tostring(err)))
  elseif event.type == "video.failed" then
    local video, err = client:retrieve(id)
    local why = video and video.error and (video.error.code .. ": " .. video.error.message)
    print("video " .. id .. " failed: " .. tostring(why or err))
  else
    print("ignored event " .. tostring(event.type))
  end
  io.stdout:flush()
end

local function serve(conn)
  local req, err = read_request(conn)
  if not req then return answer(conn, 400, tostring(err)) end
  if req.method ~= "POST" then return answer(conn, 405, "POST only") end
  local event
  event, err = sora.webhooks.verify(req.body, req.headers, secret)
  if not event then
    print("refused: " .. tostring(err))
    return answer(conn, 400, err.message)
  end
  answer(conn, 200, "ok") -- before the work: the sender does not wait on a download
  conn:close()
  local id = req.headers["webhook-id"]
  if handled[id] then return end
  handled[id] = true
  act(event)
end

local server = assert(socket.bind("127.0.0.1", port))
print(string.format("listening on http://127.0.0.1:%d/webhooks", select(2, server:getsockname())))
io.stdout:flush()
while true do
  local conn = server:accept()
  if conn then
    conn:settimeout(10)
    serve(conn)
    conn:close()
  end
end
