-- Validation of the emulator's options, shared by new{}, the launcher's flags and the control
-- API's config: every value finite, of its type and in its range, so that nothing accepted
-- can stall a request or a video later.

local random_faults = require "sora.emulator.random_faults"

local options = {}

local DAY = 86400

-- Numeric options: { name, integer?, least, most, what the message says of the range }.
-- job_seconds 0 settles videos at once (the launcher makes it 1 ms).
local NUMBERS = {
  { "job_seconds", false, 0, DAY, "a number of seconds from 0 to 86400" },
  { "asset_ttl", false, 0, 10 * 365 * DAY, "a number of seconds from 0 to 315360000" },
  { "poll_after_ms", true, 0, DAY * 1000, "an integer from 0 to 86400000" },
  { "video_bytes", true, 0, 2 ^ 40, "an integer from 0 to 1099511627776 (1 TiB)" },
  { "fault_rate", false, 0, 1, "a number in 0..1" },
  { "fault_seed", true, 0, 2 ^ 53 - 1, "a non-negative integer below 2^53" },
  { "record_limit", true, 0, 1000000, "an integer from 0 to 1000000" },
  { "max_connections", true, 1, 2 ^ 31, "a positive integer" },
  { "max_body_bytes", true, 1, 2 ^ 40, "an integer from 1 to 1099511627776" },
  { "max_held_bytes", true, 1, 2 ^ 40, "an integer from 1 to 1099511627776" },
}

-- Whether v is a number, finite, within least..most, and an integer when asked.
local function in_range(v, integer, least, most)
  if type(v) ~= "number" or v ~= v or v == math.huge or v == -math.huge then return false end
  if integer and v ~= math.floor(v) then return false end
  return v >= least and v <= most
end

-- Checks an array of strings: a table whose keys are exactly 1..n.
local function is_array(t)
  if type(t) ~= "table" then return false end
  local n = 0
  for _ in pairs(t) do n = n + 1 end
  for i = 1, n do if t[i] == nil then return false end end
  return true
end

local function check_kinds(kinds)
  if not is_array(kinds) then return nil, "fault_kinds must be an array of kinds" end
  local known = {}
  for _, kind in ipairs(random_faults.KINDS) do known[kind] = true end
  for _, kind in ipairs(kinds) do
    if not known[kind] then
      return nil, string.format("fault_kinds: unknown fault kind '%s' (known: %s)",
        tostring(kind), table.concat(random_faults.KINDS, ", "))
    end
  end
  return true
end

--- Checks the options of a table (absent ones pass); returns true or nil, message, the
-- name of the option at fault. The message names the option.
function options.check(o)
  for _, spec in ipairs(NUMBERS) do
    local name = spec[1]
    if o[name] ~= nil and not in_range(o[name], spec[2], spec[3], spec[4]) then
      return nil, string.format("%s must be %s", name, spec[5]), name
    end
  end
  local key = o.api_key
  if key ~= nil and (type(key) ~= "string" or not key:find("^[%w%p]+$")) then
    return nil, "api_key must be a non-empty string without spaces or control characters",
      "api_key"
  end
  if o.fault_kinds ~= nil then
    local ok, err = check_kinds(o.fault_kinds)
    if not ok then return nil, err, "fault_kinds" end
  end
  if o.idempotency ~= nil and type(o.idempotency) ~= "boolean" then
    return nil, "idempotency must be a boolean", "idempotency"
  end
  local delay = o.answer_delay_ms
  if delay ~= nil and not (is_array(delay) and #delay == 2 and in_range(delay[1], true, 0, DAY * 1000)
      and in_range(delay[2], true, delay[1], DAY * 1000)) then
    return nil, "answer_delay_ms must be [lo, hi]: integers, 0 <= lo <= hi <= 86400000",
      "answer_delay_ms"
  end
  local ok, err = require("sora.emulator.webhooks").check(o)
  if not ok then
    return nil, err, err:match("^(webhook_%a+)")
      or (o.webhook_secret ~= nil and "webhook_secret" or "webhook_url")
  end
  return true
end

options.in_range = in_range

return options
