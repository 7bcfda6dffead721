-- Test helper: runs the emulator in a child process (sora.emulator.process) and drives its
-- control API.
--
--   local emulator = require "support.emulator"
--   local E = emulator.start{ job_seconds = 0.3, api_key = "sk-test" }
--   ... E.url, E.api_key, E:requests(), E:fault{ action = "reset" }, E:stats(),
--   E:digest(id), E.bearer(key) ...
--   E:stop()
--
-- The interpreter is $SORA_EMULATOR_LUA, else lua5.4.

local process = require "sora.emulator.process"
local sora_emulator = require "sora.emulator"
local http = require "socket.http"
local ltn12 = require "ltn12"
local cjson = require "cjson"

local M = {}

local Emulator = {}
Emulator.__index = Emulator

-- The recorded form of "Authorization: Bearer <key>": a fingerprint, never the key.
-- E.bearer(key) works on the module and on a started emulator alike.
function M.bearer(key)
  return sora_emulator.fingerprint("Bearer " .. key)
end
Emulator.bearer = M.bearer

-- Starts an emulator (see sora.emulator.process); errors clearly if it does not come up.
function M.start(opts)
  opts = opts or {}
  local child = process.spawn(opts)
  return setmetatable({ url = child.url, pid = child.pid, child = child, api_key = opts.api_key,
    control_url = child:control_url() }, Emulator)
end

-- Calls the control API; returns the decoded JSON answer.
function Emulator:control(method, path, body)
  local text = body ~= nil and cjson.encode(body) or ""
  local chunks = {}
  local ok, status = http.request{
    url = self.control_url .. path, method = method,
    headers = { ["content-type"] = "application/json", ["content-length"] = #text },
    source = ltn12.source.string(text), sink = ltn12.sink.table(chunks),
  }
  if not ok then error("emulator control " .. method .. " " .. path .. ": " .. tostring(status), 2) end
  local answer = table.concat(chunks)
  if status ~= 200 then
    error(string.format("emulator control %s %s: %s %s", method, path, status, answer), 2)
  end
  return cjson.decode(answer)
end

function Emulator:requests() return self:control("GET", "/requests") end

function Emulator:last_request()
  local list = self:requests()
  return list[#list]
end

function Emulator:clear_requests() return self:control("DELETE", "/requests") end
function Emulator:fault(spec) return self:control("POST", "/faults", spec) end
function Emulator:clear_faults() return self:control("DELETE", "/faults") end
function Emulator:force_video(id, fields) return self:control("POST", "/videos/" .. id, fields) end
-- Removes a video whatever its status (DELETE /v1 refuses queued and running ones).
function Emulator:forget_video(id) return self:control("DELETE", "/videos/" .. id) end
function Emulator:config(fields) return self:control("POST", "/config", fields) end
function Emulator:reset() return self:control("POST", "/reset", {}) end
function Emulator:stats() return self:control("GET", "/stats") end
-- What create-type POSTs made, one entry per Idempotency-Key and body: { key, fingerprint,
-- prompt, made, ids }.
function Emulator:creates() return self:control("GET", "/creates") end
function Emulator:clear_stats() return self:control("DELETE", "/stats") end

-- { sha256, bytes } of what GET /v1/videos/{id}/content?variant= serves.
function Emulator:digest(id, variant)
  return self:control("GET", "/videos/" .. id .. "/digest?variant=" .. (variant or "video"))
end

-- Shuts the emulator down; safe to call twice.
function Emulator:stop()
  self.child:stop()
end

return M
