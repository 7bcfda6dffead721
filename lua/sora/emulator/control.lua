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

-- A 400 naming the field at fault (param) as well as in the message.
local function bad(message, field)
  return errors.response(400, message, field, nil)
end

-- Fields that always have a value: null restores the one the server started with.
local DEFAULTED_KEYS = { job_seconds = true, asset_ttl = true, record_limit = true,
  fault_rate = true }

-- The numeric fields of a scripted fault: { integer?, least, most, what the range is }.
local FAULT_NUMBERS = {
  times = { true, 1, 1000000, "an integer from 1 to 1000000" },
  status = { true, 100, 599, "an integer from 100 to 599" },
  delay_ms = { false, 0, 3600000, "a number of milliseconds from 0 to 3600000" },
  stall_ms = { false, 0, 3600000, "a number of milliseconds from 0 to 3600000" },
  after_bytes = { true, 0, 2 ^ 53 - 1, "a non-negative integer" },
}

-- Every field of a scripted fault (docs/emulator.md). Any other is refused by name: a
-- misspelt one ("delay" for delay_ms) would otherwise be dropped, and the fault queued
-- without what the test meant.
local FAULT_FIELDS = { "action", "after_bytes", "body", "delay_ms", "headers", "method", "path",
                       "stall_ms", "status", "times" }

-- The known field one or two letters, or a suffix, away from `name` ("delay" -> delay_ms).
local function nearest_fault_field(name)
  for _, known in ipairs(FAULT_FIELDS) do
    if known:sub(1, #name) == name or name:sub(1, #known) == known then return known end
  end
end

local function unknown_fault_field(spec)
  local unknown = {}
  for name in pairs(spec) do unknown[#unknown + 1] = tostring(name) end
  table.sort(unknown)
  for _, name in ipairs(unknown) do
    local known = false
    for _, field in ipairs(FAULT_FIELDS) do known = known or field == name end
    if not known then
      local near = nearest_fault_field(name)
      return bad(string.format("unknown fault field: %s (%sthe fields: %s)", name,
        near and "did you mean " .. near .. "? " or "", table.concat(FAULT_FIELDS, ", ")), name)
    end
  end
end

-- Checks the fields of a scripted fault that the queue reads as numbers or strings; returns
-- nil or a 400 naming the first bad one (faults.lua checks the action and the path).
local function check_fault(spec)
  local unknown = unknown_fault_field(spec)
  if unknown then return unknown end
  local names = {}
  for name in pairs(FAULT_NUMBERS) do names[#names + 1] = name end
  table.sort(names)
  for _, name in ipairs(names) do
    local v, range = spec[name], FAULT_NUMBERS[name]
    if v ~= nil and not options.in_range(v, range[1], range[2], range[3]) then
      return bad(string.format("fault field %s must be %s", name, range[4]), name)
    end
  end
  if spec.method ~= nil and (type(spec.method) ~= "string" or not spec.method:find("^%a+$")) then
    return bad("fault field method must be an HTTP method name", "method")
  end
  if spec.headers ~= nil then
    if type(spec.headers) ~= "table" then return bad("fault field headers must be an object", "headers") end
    for k, v in pairs(spec.headers) do
      if type(k) ~= "string" or not k:find("^[%w!#$%%&'*+.^_`|~-]+$")
          or type(v) ~= "string" or v:find("[%c]") then
        return bad("fault field headers must map header names to strings without control "
          .. "characters", "headers")
      end
    end
  end
end

-- The path of the first number in a decoded JSON value that JSON cannot carry (NaN,
-- infinities), or nil.
local function non_finite(value, path)
  if type(value) == "number" then
    if value ~= value or value == math.huge or value == -math.huge then return path end
  elseif type(value) == "table" then
    for k, v in pairs(value) do
      local found = non_finite(v, path and (path .. "." .. tostring(k)) or tostring(k))
      if found then return found end
    end
  end
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

-- Sets the config fields given, all or none: any bad value is a 400 naming its field.
local function set_config(server, fields)
  local proposed, reschedule = {}, false
  for k, v in pairs(server.config) do proposed[k] = v end
  for k, v in pairs(fields) do
    local kind = CONFIG_KEYS[k]
    if not kind then return bad("unknown config field: " .. tostring(k), tostring(k)) end
    if v ~= json.null and type(v) ~= kind then
      local what = kind == "table" and "an array" or ("a " .. kind)
      return bad(string.format("config field %s must be %s or null", k, what), k)
    end
    if v == json.null then
      proposed[k] = DEFAULTED_KEYS[k] and server.initial[k] or nil
    else
      proposed[k] = v
    end
    reschedule = reschedule or SCHEDULE_KEYS[k]
  end
  local valid, err, field = options.check(proposed)
  if not valid then return bad("config field " .. err, field) end
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
      local invalid = check_fault(fields)
      if invalid then return invalid end
      local fault, err = server.faults:add(fields)
      if not fault then return bad(err) end
      return ok(fault)
    end
    if m == "DELETE" then server.faults:clear(); return ok({ cleared = true }) end
  elseif path:find("^/__emulator/videos/[^/]+$") and m == "POST" then
    local id = http.unescape(path:match("([^/]+)$"))
    local field = non_finite(fields)
    if field then
      return bad(string.format("forced field %s must be finite: JSON has no NaN or infinity",
        field), field)
    end
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
