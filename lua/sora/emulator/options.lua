-- Validation of the emulator's fault, recording and connection options, shared by new{},
-- the launcher's flags and the control API's config.

local random_faults = require "sora.emulator.random_faults"

local options = {}

-- Checks the options of a table (absent ones pass); returns true or nil, message.
function options.check(o)
  local rate = o.fault_rate
  if rate ~= nil and (type(rate) ~= "number" or not (rate >= 0 and rate <= 1)) then
    return nil, "fault_rate must be a number in 0..1"
  end
  local seed = o.fault_seed
  if seed ~= nil and (type(seed) ~= "number" or seed ~= math.floor(seed) or seed < 0
      or seed >= 2^53) then
    return nil, "fault_seed must be a non-negative integer"
  end
  local limit = o.record_limit
  if limit ~= nil and (type(limit) ~= "number" or limit ~= math.floor(limit) or limit < 0) then
    return nil, "record_limit must be a non-negative integer"
  end
  local cap = o.max_connections
  if cap ~= nil and (type(cap) ~= "number" or cap ~= math.floor(cap) or cap < 1) then
    return nil, "max_connections must be a positive integer"
  end
  if o.fault_kinds ~= nil then
    if type(o.fault_kinds) ~= "table" then return nil, "fault_kinds must be an array of kinds" end
    local known = {}
    for _, kind in ipairs(random_faults.KINDS) do known[kind] = true end
    for _, kind in ipairs(o.fault_kinds) do
      if not known[kind] then
        return nil, string.format("unknown fault kind '%s' (known: %s)", tostring(kind),
          table.concat(random_faults.KINDS, ", "))
      end
    end
  end
  if o.idempotency ~= nil and type(o.idempotency) ~= "boolean" then
    return nil, "idempotency must be a boolean"
  end
  local delay = o.answer_delay_ms
  if delay ~= nil and (type(delay) ~= "table" or #delay ~= 2 or type(delay[1]) ~= "number"
      or type(delay[2]) ~= "number" or delay[1] ~= math.floor(delay[1])
      or delay[2] ~= math.floor(delay[2]) or delay[1] < 0 or delay[2] < delay[1]) then
    return nil, "answer_delay_ms must be [lo, hi]: integers, 0 <= lo <= hi"
  end
  local ok, err = require("sora.emulator.webhooks").check(o)
  if not ok then return nil, err end
  return true
end

return options
