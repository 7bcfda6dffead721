--- Runs the emulator in a child process, for the demo, tests and scripts that need a server
-- while their own Lua thread blocks in the client.
--
--   local process = require "sora.emulator.process"
--   local emulator = process.spawn{ job_seconds = 2 }   -- a free port on 127.0.0.1
--   ... sora.new{ api_key = "sk-local", base_url = emulator.url } ...
--   emulator:stop()
local socket = require "socket"

local process = {}

local START_TIMEOUT = 5 -- seconds

local FLAGS = { job_seconds = "--job-seconds", api_key = "--api-key", asset_ttl = "--asset-ttl",
                poll_after_ms = "--poll-after-ms", video_bytes = "--video-bytes",
                fault_rate = "--fault-rate", fault_seed = "--fault-seed",
                fault_kinds = "--fault-kinds", record_limit = "--record-limit",
                max_connections = "--max-connections", max_body_bytes = "--max-body-bytes",
                max_held_bytes = "--max-held-bytes",
                webhook_url = "--webhook-url", webhook_secret = "--webhook-secret",
                idempotency = "--idempotency", answer_delay_ms = "--answer-delay-ms" }

-- A flag's value: lists (fault_kinds) are comma-separated.
local function flag_value(value)
  if type(value) == "table" then return table.concat(value, ",") end
  return tostring(value)
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

-- True while pid runs (a zombie counts as gone).
local function alive(pid)
  local stat = read_file("/proc/" .. pid .. "/stat")
  if stat ~= "" then return not stat:match("^%d+ %b() Z") end
  local ok = os.execute("kill -0 " .. pid .. " 2>/dev/null")
  return ok == true or ok == 0
end

-- The tree this module was loaded from (".../lua/" in a checkout), so the child finds the same
-- sora; the rest of its path stays its own, since it may be another Lua version.
local function module_root()
  local source = debug.getinfo(1, "S").source
  return source:match("^@(.*)sora[/\\]emulator[/\\]process%.lua$") or ""
end

local function command(lua, args)
  local quoted, root = {}, module_root()
  for i, a in ipairs(args) do quoted[i] = string.format("%q", a) end
  local code = string.format("package.path=%q..package.path; require('sora.emulator.cli').main{%s}",
    root .. "?.lua;" .. root .. "?/init.lua;", table.concat(quoted, ","))
  return shell_quote(lua) .. " -e " .. shell_quote(code)
end

local Emulator = {}
Emulator.__index = Emulator

--- Starts an emulator on 127.0.0.1 and a free port. opts: job_seconds, api_key, asset_ttl,
-- poll_after_ms, video_bytes, fault_rate, fault_seed, fault_kinds (a list), record_limit,
-- max_connections, max_body_bytes, max_held_bytes, webhook_url, webhook_secret, idempotency,
-- answer_delay_ms (as for sora.emulator.new), lua (the interpreter; default $SORA_EMULATOR_LUA
-- or lua5.4), log (a path for the request log; default none). Returns a handle with url, pid
-- and stop; raises if the server is not listening within 5 s.
function process.spawn(opts)
  opts = opts or {}
  local lua = opts.lua or os.getenv("SORA_EMULATOR_LUA") or "lua5.4"
  local args = { "--host", "127.0.0.1", "--port", "0" }
  if not opts.log then args[#args + 1] = "--quiet" end
  for key, flag in pairs(FLAGS) do
    if opts[key] ~= nil then
      args[#args + 1] = flag
      args[#args + 1] = flag_value(opts[key])
    end
  end
  local out, err, pidfile = os.tmpname(), opts.log or os.tmpname(), os.tmpname()
  -- sh runs the command as a background child, so $! is the emulator's pid
  os.execute(command(lua, args) .. " >" .. out .. " 2>" .. shell_quote(err) .. " </dev/null & echo $! >" .. pidfile)
  local pid = read_file(pidfile):match("%d+")
  os.remove(pidfile)
  local deadline, url = socket.gettime() + START_TIMEOUT
  repeat
    url = read_file(out):match("sora%-emulator listening on (http://%S+)")
    if url or not (pid and alive(pid)) then break end
    socket.sleep(0.02)
  until socket.gettime() > deadline
  local stderr = read_file(err)
  os.remove(out)
  if not opts.log then os.remove(err) end
  if not url then
    if pid then os.execute("kill " .. pid .. " 2>/dev/null") end
    error(string.format("sora-emulator (%s) did not start within %d s%s", lua, START_TIMEOUT,
      stderr ~= "" and (": " .. stderr) or ""), 2)
  end
  return setmetatable({ url = url, pid = pid }, Emulator)
end

--- The base URL of the emulator's control API (/__emulator).
function Emulator:control_url()
  return (self.url:gsub("/v1$", "")) .. "/__emulator"
end

--- Shuts the emulator down (through its control API, then by signal); safe to call twice.
function Emulator:stop()
  if self.stopped then return end
  self.stopped = true
  local http = require "socket.http"
  pcall(http.request, self:control_url() .. "/shutdown", "{}")
  if self.pid then
    local deadline = socket.gettime() + 2
    while alive(self.pid) and socket.gettime() < deadline do socket.sleep(0.02) end
    if alive(self.pid) then os.execute("kill " .. self.pid .. " 2>/dev/null") end
  end
end

return process
