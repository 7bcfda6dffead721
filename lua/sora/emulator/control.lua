-- The control API under /__emulator/ (no auth, JSON in and out): tests read
-- recorded requests, queue faults, pin video state, change configuration.

local json = require "sora.emulator.json"
local errors = require "sora.emulator.errors"
local http = require "sora.emulator.http"

local control = {}

local CONFIG_KEYS = { job_seconds = "number", poll_after_ms = "number",
  video_bytes = "number", asset_ttl = "number", api_key = "string" }

local INTEGER_KEYS = { poll_after_ms = true, video_bytes = true }

local function ok(obj)
  return { status = 200, headers = { ["content-type"] = "application/json" },
    body = json.encode(obj) }
end

local function bad(message)
  return errors.response(400, message, nil, nil)
end

local function body_object(req)
  if req.body == "" then return {} end
  local value = json.decode(req.body)
  if type(value) ~= "table" then return nil end
  return value
end

local function config_view(cfg)
  local view = {}
  for k in pairs(CONFIG_KEYS) do
    if cfg[k] == nil then view[k] = json.null else view[k] = cfg[k] end
  end
  return view
end

local function set_config(server, fields)
  for k, v in pairs(fields) do
    local kind = CONFIG_KEYS[k]
    if not kind then return bad("unknown config field: " .. tostring(k)) end
    if v ~= json.null and type(v) ~= kind then
      return bad(string.format("config field %s must be a %s or null", k, kind))
    end
  end
  for k, v in pairs(fields) do
    if v == json.null then
      server.config[k] = nil
    elseif INTEGER_KEYS[k] then
      server.config[k] = math.floor(v)   -- decoded JSON numbers are floats on Lua 5.3+
    else
      server.config[k] = v
    end
  end
  return ok(config_view(server.config))
end

-- Returns the response to a control request.
function control.handle(server, req)
  local path, m = req.path, req.method
  local fields = body_object(req)
  if not fields then return bad("the body must be a JSON object") end
  if path == "/__emulator/requests" then
    if m == "GET" then return ok(json.array(server.recorded)) end
    if m == "DELETE" then server.recorded = {}; return ok({ cleared = true }) end
  elseif path == "/__emulator/faults" then
    if m == "GET" then return ok(json.array(server.faults.list)) end
    if m == "POST" then
      local fault, err = server.faults:add(fields)
      if not fault then return bad(err) end
      return ok(fault)
    end
    if m == "DELETE" then server.faults:clear(); return ok({ cleared = true }) end
  elseif path:find("^/__emulator/videos/[^/]+$") and m == "POST" then
    local id = http.unescape(path:match("([^/]+)$"))
    local v = server.store:force(id, fields)
    if not v then return errors.not_found_video(id) end
    return ok(server.store:render(v))
  elseif path == "/__emulator/config" then
    if m == "GET" then return ok(config_view(server.config)) end
    if m == "POST" then return set_config(server, fields) end
  elseif path == "/__emulator/reset" and m == "POST" then
    server:reset()
    return ok({ reset = true })
  elseif path == "/__emulator/shutdown" and m == "POST" then
    server.shutting_down = true
    return ok({ shutdown = true })
  else
    return errors.response(404, string.format("Invalid URL (%s %s)", m, path))
  end
  return errors.response(405, string.format("Invalid method for URL (%s %s)", m, path))
end

return control
