-- The seeded random fault schedule: a set share of /v1 requests meets a fault
-- drawn from the catalogue, so a soak sees a steady rain of them. The generator
-- is the emulator's own (Park-Miller), so a seed gives the same schedule on every
-- Lua for the same order of requests.

local random_faults = {}

-- The catalogue, in drawing order. `applies(req, route)` says where a kind makes sense:
-- route is "content", "create" (POST /v1/videos) or "json" (every other endpoint).
local CATALOGUE = {
  { kind = "rate_limit", applies = function() return true end },
  { kind = "server_error", applies = function() return true end },
  { kind = "reset", applies = function() return true end },
  { kind = "reset_mid_body", applies = function(req, route) return route == "content" end },
  { kind = "stall", applies = function() return true end },
  -- Only on GETs: a truncated answer to a POST would leave the client unsure it was served.
  { kind = "truncate", applies = function(req) return req.method == "GET" end },
  { kind = "malformed_json", applies = function(req, route) return route ~= "content" end },
  { kind = "video_fails", applies = function(req, route) return route == "create" end },
  -- A create-type POST (every POST) is served, then its answer is lost or comes late.
  { kind = "answer_lost", applies = function(req) return req.method == "POST" end },
  { kind = "answer_delayed", applies = function(req) return req.method == "POST" end },
}

-- How late a delayed answer comes, in ms, unless the config's answer_delay_ms says.
random_faults.ANSWER_DELAY_MS = { 1000, 2000 }

random_faults.KINDS = {}
for i, entry in ipairs(CATALOGUE) do random_faults.KINDS[i] = entry.kind end

local MODULUS, MULTIPLIER = 2147483647, 48271

local Schedule = {}
Schedule.__index = Schedule

-- Returns a schedule faulting `rate` (0..1) of requests with `kinds` (a set; nil = all),
-- drawn from a generator seeded with `seed` (an integer).
-- answer_delay_ms: { lo, hi } for answer_delayed (default ANSWER_DELAY_MS).
function random_faults.new(rate, seed, kinds, answer_delay_ms)
  local state = math.floor(seed) % (MODULUS - 1) + 1   -- 1..MODULUS-1, never 0
  return setmetatable({ rate = rate or 0, seed = seed, kinds = kinds, state = state,
    answer_delay_ms = answer_delay_ms or random_faults.ANSWER_DELAY_MS }, Schedule)
end

-- A uniform draw in [0, 1). The product stays below 2^53, exact on doubles.
function Schedule:draw()
  self.state = (self.state * MULTIPLIER) % MODULUS
  return (self.state - 1) / (MODULUS - 1)
end

-- An integer in lo..hi.
function Schedule:between(lo, hi)
  return lo + math.floor(self:draw() * (hi - lo + 1))
end

-- What a route is, for the catalogue.
local function route_of(req)
  if req.method == "GET" and req.path:find("^/v1/videos/[^/]+/content$") then return "content" end
  if req.method == "POST" and req.path == "/v1/videos" then return "create" end
  return "json"
end

-- The fault a kind becomes: a spec for faults.apply, its parameters drawn now.
local function build(self, kind)
  if kind == "rate_limit" then
    if self:draw() < 0.5 then
      return { action = "respond", status = 429, headers = {
        ["retry-after"] = string.format("%d", self:between(1, 2)) } }
    end
    return { action = "respond", status = 429, headers = {
      ["retry-after-ms"] = string.format("%d", self:between(100, 2000)) } }
  elseif kind == "server_error" then
    local statuses = { 500, 502, 503 }
    return { action = "respond", status = statuses[self:between(1, 3)], headers = {} }
  elseif kind == "reset_mid_body" or kind == "truncate" then
    return { action = kind, after_share = self:draw() }
  elseif kind == "stall" then
    return { action = "stall", stall_ms = self:between(1000, 3000) }
  elseif kind == "video_fails" then
    return { action = "fail_video" }
  elseif kind == "answer_lost" then
    return { action = "lose_answer" }
  elseif kind == "answer_delayed" then
    local range = self.answer_delay_ms
    return { action = "delay_answer", delay_ms = self:between(range[1], range[2]) }
  end
  return { action = kind }   -- reset, malformed_json
end

-- Returns the fault for the next request (a spec for faults.apply, with `kind`), or nil.
-- Every request takes one draw, and a faulted one a few more, so the schedule depends only
-- on the seed and the order of requests.
function Schedule:next(req)
  if self.rate <= 0 then return nil end
  if self:draw() >= self.rate then return nil end
  local route, candidates = route_of(req), {}
  for _, entry in ipairs(CATALOGUE) do
    if (not self.kinds or self.kinds[entry.kind]) and entry.applies(req, route) then
      candidates[#candidates + 1] = entry.kind
    end
  end
  local pick = self:between(1, math.max(1, #candidates))  -- drawn even with no candidate
  local kind = candidates[pick]
  if not kind then return nil end
  local fault = build(self, kind)
  fault.kind, fault.times, fault.delay_ms, fault.headers = kind, 1, fault.delay_ms or 0,
    fault.headers or {}
  return fault
end

return random_faults
