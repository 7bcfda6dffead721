-- Test helper: runs bin/sora-emulator as a subprocess and drives its control API.
--
--   local emulator = require "support.emulator"
--   local E = emulator.start{ job_seconds = 0.3, api_key = "sk-test" }
--   ... E.url, E.api_key, E:requests(), E:fault{ action = "reset" } ...
--   E:stop()
--
-- The interpreter is $SORA_EMULATOR_LUA, else lua5.4.

local socket = require "socket"
local http = require "socket.http"
local ltn12 = require "ltn12"
local cjson = require "cjson"

local M = {}

local START_TIMEOUT = 5

-- The checkout root: this file is spec/support/emulator.lua.
local function root()
  local source = debug.getinfo(1, "S").source:match("^@(.*)$") or ""
  local dir = source:match("^(.*)/spec/support/[^/]*$")
  return dir or "."
end

local function shell_quote(s)
  return "'" .. tostring(s):gsub("'", "'\\''") .. "'"
end

local function read_file(path)
  local f = io.open(path, "rb")
  if not f then return "" end
  local s = f:read("*a")
  f:close()
  return s
end

-- True while pid runs (a zombie left for a non-reaping init counts as gone).
local function alive(pid)
  local stat = read_file("/proc/" .. pid .. "/stat")
  if stat ~= "" then return not stat:match("^%d+ %b() Z") end
  local ok = os.execute("kill -0 " .. pid .. " 2>/dev/null")
  return ok == true or ok == 0
end

local FLAGS = { job_seconds = "--job-seconds", api_key = "--api-key",
  asset_ttl = "--asset-ttl", poll_after_ms = "--poll-after-ms", video_bytes = "--video-bytes" }

local Emulator = {}
Emulator.__index = Emulator

-- Starts an emulator; errors clearly if it is not listening within 5 seconds.
function M.start(opts)
  opts = opts or {}
  local lua = os.getenv("SORA_EMULATOR_LUA") or "lua5.4"
  local args = { shell_quote(lua), shell_quote(root() .. "/bin/sora-emulator"),
    "--host", "127.0.0.1", "--port", "0", "--quiet" }
  for key, flag in pairs(FLAGS) do
    if opts[key] ~= nil then
      args[#args + 1] = flag
      args[#args + 1] = shell_quote(opts[key])
    end
  end
  local out, err, pidfile = os.tmpname(), os.tmpname(), os.tmpname()
  -- sh runs the simple command in a background child, so $! is the emulator's pid.
  os.execute(table.concat(args, " ") .. " >" .. out .. " 2>" .. err .. " </dev/null & echo $! >"
    .. pidfile)
  local pid = read_file(pidfile):match("%d+")
  os.remove(pidfile)
  local deadline = socket.gettime() + START_TIMEOUT
  local url
  repeat
    url = read_file(out):match("sora%-emulator listening on (http://%S+)")
    if url or not (pid and alive(pid)) then break end
    socket.sleep(0.02)
  until socket.gettime() > deadline
  if not url then
    if pid then os.execute("kill " .. pid .. " 2>/dev/null") end
    local stderr = read_file(err)
    os.remove(out); os.remove(err)
    error(string.format("sora-emulator (%s) did not start within %d s%s", lua, START_TIMEOUT,
      stderr ~= "" and (": " .. stderr) or ""), 2)
  end
  local self = setmetatable({ url = url, pid = pid, api_key = opts.api_key,
    files = { out, err }, control_url = url:gsub("/v1$", "") .. "/__emulator" }, Emulator)
  return self
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
function Emulator:config(fields) return self:control("POST", "/config", fields) end
function Emulator:reset() return self:control("POST", "/reset", {}) end

-- Shuts the emulator down (then kills it if it lingers); safe to call twice.
function Emulator:stop()
  if self.stopped then return end
  self.stopped = true
  pcall(self.control, self, "POST", "/shutdown", {})
  if self.pid then
    local deadline = socket.gettime() + 2
    while alive(self.pid) and socket.gettime() < deadline do socket.sleep(0.02) end
    if alive(self.pid) then os.execute("kill " .. self.pid .. " 2>/dev/null") end
  end
  for _, f in ipairs(self.files) do os.remove(f) end
end

return M
