-- The control API under /__emulator/ (no auth, JSON in and out): tests read
-- recorded requests, queue faults, pin video state, change configuration.

local json = require "sora.emulator.json"
local errors = require "sora.emulator.errors"
local http = require "sora.emulator.http"
local api = require "sora.emulator.api"
local sha256 = require "sora.emulator.sha256"
local options = require "sora.emulator.options"
local socket = require "socket"

local control = {}

local CONFIG_KEYS = { job_seconds = "number", poll_after_ms = "number",
  video_bytes = "number", asset_ttl = "number", api_key = "string", record_limit = "number",
  fault_rate = "number", fault_seed = "number", fault_kinds = "table",
  webhook_url = "string", webhook_secret = "string", idempotency = "boolean",
  answer_delay_ms = "table" }

local INTEGER_KEYS = { poll_after_ms = true, video_bytes = true, record_limit = true,
  fault_seed = true }

-- Fields whose change restarts the random fault schedule.
local SCHEDULE_KEYS = { fault_rate = true, fault_seed = true, fault_kinds = true,
  answer_delay_ms = true }

local DIGEST_CHUNK = 256 * 1024   -- about 40 ms of hashing on Lua 5.4 between pauses

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

local unpack_list = table.unpack or unpack

local function config_view(cfg)
  local view = {}
  for k in pairs(CONFIG_KEYS) do
    if cfg[k] == nil then
      view[k] = json.null
    elseif type(cfg[k]) == "table" then
      view[k] = json.array({ unpack_list(cfg[k]) })
    else
      view[k] = cfg[k]
    end
  end
  return view
end

local function set_config(server, fields)
  local proposed, reschedule = {}, false
  for k, v in pairs(server.config) do proposed[k] = v end
  for k, v in pairs(fields) do
    local kind = CONFIG_KEYS[k]
    if not kind then return bad("unknown config field: " .. tostring(k)) end
    if v ~= json.null and type(v) ~= kind then
      local what = kind == "table" and "an array" or ("a " .. kind)
      return bad(string.format("config field %s must be %s or null", k, what))
    end
    if v == json.null then
      proposed[k] = nil
    else
      proposed[k] = v
    end
    reschedule = reschedule or SCHEDULE_KEYS[k]
  end
  local valid, err = options.check(proposed)
  if not valid then return bad(err) end
  for k, v in pairs(proposed) do
    -- decoded JSON numbers are floats on Lua 5.3+
    if INTEGER_KEYS[k] and type(v) == "number" then proposed[k] = math.floor(v) end
  end
  server.config = proposed
  server:trim_recorded()
  if reschedule then server:schedule_faults() end
  if fields.webhook_url ~= nil then server.webhooks:track_all() end
  return ok(config_view(server.config))
end

-- Returns { sha256, bytes } of what the content endpoint serves for video v and a variant,
-- hashed a slice at a time, letting other connections run in between; cached by the
-- bytes' own name, so videos that share content share the work.
local function digest(server, v, variant)
  local src, key = api.content_source(server, v, variant)
  local cached = server.digests[key]
  if cached then return cached end
  local hash, pos = sha256.new(), 0
  while pos < src.length do
    local n = math.min(DIGEST_CHUNK, src.length - pos)
    hash:update(src.read(pos, n))
    pos = pos + n
    if pos < src.length then coroutine.yield("t", socket.gettime()) end
  end
  cached = json.ordered({ "sha256", "bytes" }, { sha256 = hash:hex(), bytes = src.length })
  server.digests[key] = cached
  return cached
end

local function video_digest(server, req)
  local id = http.unescape(req.path:match("^/__emulator/videos/([^/]+)/digest$"))
  local v = server.store:get(id)
  if not v then return errors.not_found_video(id) end
  local variant, err = api.variant(req.query.variant)
  if not variant then return err end
  return ok(digest(server, v, variant))
end

local function counters(server)
  return ok(json.ordered({ "requests", "connections_accepted", "connections_open",
    "max_connections_open", "connections_refused", "faults", "lua_memory_kb", "videos",
    "recorded" }, server:stats_view()))
end

-- Returns the response to a control request.
function control.handle(server, req)
  local path, m = req.path, req.method
  local fields = body_object(req)
  if not fields then return bad("the body must be a JSON object") end
  if path == "/__emulator/requests" then
    if m == "GET" then return ok(server:recorded_list()) end
    if m == "DELETE" then server:clear_recorded(); return ok({ cleared = true }) end
  elseif path == "/__emulator/stats" then
    if m == "GET" then return counters(server) end
    if m == "DELETE" then server:reset_stats(); return ok({ cleared = true }) end
  elseif path:find("^/__emulator/videos/[^/]+/digest$") then
    if m == "GET" then return video_digest(server, req) end
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
  elseif path:find("^/__emulator/videos/[^/]+$") and m == "DELETE" then
    -- The server loses a video whatever its status (the API refuses to delete running jobs).
    local id = http.unescape(path:match("([^/]+)$"))
    if not server.store:delete(id) then return errors.not_found_video(id) end
    return ok({ id = id, forgotten = true })
  elseif path == "/__emulator/creates" then
    -- what create-type POSTs made, counted by Idempotency-Key and body (sora.emulator.idempotency)
    if m == "GET" then return ok(server.idempotency:creates_view()) end
  elseif path == "/__emulator/webhooks" then
    -- every attempt to deliver a webhook, oldest first (see sora.emulator.webhooks)
    if m == "GET" then return ok(server.webhooks:list()) end
    if m == "DELETE" then server.webhooks:clear(); return ok({ cleared = true }) end
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
