-- Scripted faults: tests queue misbehaviour for the next matching requests to
-- see how a client copes with rate limits, server errors and broken networks.

local json = require "sora.emulator.json"
local http = require "sora.emulator.http"

local faults = {}

local ACTIONS = {
  respond = true, reset = true, reset_mid_body = true, stall = true,
  truncate = true, malformed_json = true, html = true, delay = true, fail_video = true,
  lose_answer = true, delay_answer = true,
}

-- Messages for `respond` faults that give a status but no body.
local DEFAULT_ERRORS = {
  [429] = { "Rate limit reached for requests. Please try again in 1s.", "requests",
            "rate_limit_exceeded" },
  [500] = { "The server had an error while processing your request. Sorry about that!",
            "server_error" },
  [502] = { "Bad gateway.", "server_error" },
  [503] = { "The engine is currently overloaded, please try again later.", "server_error" },
}

local Queue = {}
Queue.__index = Queue

function faults.new()
  return setmetatable({ list = {} }, Queue)
end

-- Validates and queues a fault spec; returns it, or nil, message.
function Queue:add(spec)
  if type(spec) ~= "table" then return nil, "fault must be a JSON object" end
  if not ACTIONS[spec.action] then
    return nil, "unknown or missing action: " .. tostring(spec.action)
  end
  if spec.path ~= nil and (type(spec.path) ~= "string" or not pcall(string.find, "", spec.path)) then
    return nil, "path must be a Lua pattern"
  end
  local fault = {
    method = type(spec.method) == "string" and spec.method:upper() or nil,
    path = spec.path, action = spec.action,
    times = tonumber(spec.times) or 1,
    status = tonumber(spec.status), headers = type(spec.headers) == "table" and spec.headers or {},
    body = spec.body, delay_ms = tonumber(spec.delay_ms) or 0,
    after_bytes = tonumber(spec.after_bytes), stall_ms = tonumber(spec.stall_ms),
  }
  self.list[#self.list + 1] = fault
  return fault
end

function Queue:clear()
  self.list = {}
end

-- Returns the first queued fault matching the request and uses up one of its times.
function Queue:take(method, path)
  for i, f in ipairs(self.list) do
    if (not f.method or f.method == method) and (not f.path or path:find(f.path)) then
      f.times = f.times - 1
      if f.times <= 0 then table.remove(self.list, i) end
      return f
    end
  end
  return nil
end

-- The `respond` action's response: the body may be JSON (a table) or text.
local function scripted_response(f, request_id)
  local status = f.status or 500
  local headers = { ["x-request-id"] = request_id, ["content-type"] = "application/json" }
  local body = f.body
  if type(body) == "table" then
    body = json.encode(body)
  elseif body == nil or body == json.null then
    local d = DEFAULT_ERRORS[status] or { (http.reasons[status] or "Error") .. "." }
    body = json.encode({ error = json.ordered({ "message", "type", "param", "code" }, {
      message = d[1], type = d[2] or "invalid_request_error",
      param = json.null, code = d[3] or json.null }) })
  end
  for k, v in pairs(f.headers) do headers[k:lower()] = tostring(v) end
  return { status = status, headers = headers, body = tostring(body) }
end

local HTML = [[<html>
<head><title>502 Bad Gateway</title></head>
<body>
<center><h1>502 Bad Gateway</h1></center>
<hr><center>cloudflare</center>
</body>
</html>
]]

local function body_length(res)
  return type(res.body) == "table" and res.body.length or #(res.body or "")
end

-- How many body bytes a cut-short answer sends: after_bytes, else a share of the body.
local function cut_point(f, length, default_share)
  if f.after_bytes then return f.after_bytes end
  return math.floor(length * (f.after_share or default_share))
end

-- Serves req under fault f. produce() computes the real response.
-- Returns true when the connection may be kept for another request.
function faults.apply(f, conn, req, produce, request_id)
  local head = req.method == "HEAD"
  local a = f.action
  if a == "delay" then
    conn:sleep(f.delay_ms / 1000)
    return http.write_response(conn, produce(), { head = head })
  elseif a == "respond" then
    if f.delay_ms > 0 then conn:sleep(f.delay_ms / 1000) end
    return http.write_response(conn, scripted_response(f, request_id), { head = head })
  elseif a == "fail_video" then
    req.fail_video = true                  -- the created video will end failed
    return http.write_response(conn, produce(), { head = head })
  elseif a == "lose_answer" then
    -- The request is served (a create makes its video), then its answer is lost with the
    -- connection: the client cannot tell this from a reset before anything was made.
    produce()
    conn:close(true)
  elseif a == "delay_answer" then
    -- Served now (a create's video exists at once), answered only after delay_ms.
    local res = produce()
    conn:sleep(f.delay_ms / 1000)
    return http.write_response(conn, res, { head = head })
  elseif a == "reset" then
    conn:close(true)
  elseif a == "stall" then
    -- With stall_ms, a bounded stall then a close; without, until the client hangs up.
    if f.stall_ms then conn:sleep(f.stall_ms / 1000) else conn:drain() end
  elseif a == "reset_mid_body" then
    local res = produce()
    http.write_response(conn, res, { limit = cut_point(f, body_length(res), 0) })
    conn:close(true)
  elseif a == "truncate" then
    -- The real head and Content-Length, then only part of the body and a clean
    -- close: the client sees the connection end early.
    local res = produce()
    local length = body_length(res)
    local sent = cut_point(f, length, 0.5)
    local declared = length
    if sent >= length then declared = sent + 100 end
    http.write_response(conn, res, { limit = sent, declared = declared })
    conn:close()
  elseif a == "malformed_json" then
    return http.write_response(conn, { status = f.status or 200, headers = {
      ["content-type"] = "application/json", ["x-request-id"] = request_id,
    }, body = f.body or '{"id": "video_' }, { head = head })
  elseif a == "html" then
    return http.write_response(conn, { status = f.status or 502, headers = {
      ["content-type"] = "text/html", ["x-request-id"] = request_id,
    }, body = f.body or HTML }, { head = head })
  end
  return false
end

return faults
