-- What bench/soak.lua and bench/kill_download.lua share: the emulator's control API, file
-- verification against a digest, the process's descriptors and memory, a tally of checks.
--
-- Verification hashes with coreutils' sha256sum, which is independent of the module under test
-- and of the emulator's own SHA-256.
local socket = require "socket"
local http = require "socket.http"
local ltn12 = require "ltn12"
local cjson = require "cjson"
local lfs = require "lfs"

local harness = {}

harness.now = socket.gettime

function harness.shell_quote(s)
  return "'" .. tostring(s):gsub("'", "'\\''") .. "'"
end

-- ---- the emulator's control API -----------------------------------------------------------

local function control_request(base, method, path, body)
  local chunks, source = {}, nil
  local headers = {}
  if body ~= nil then
    local encoded = cjson.encode(body)
    source = ltn12.source.string(encoded)
    headers["content-type"] = "application/json"
    headers["content-length"] = tostring(#encoded)
  end
  local ok, status = http.request{ url = base .. path, method = method, headers = headers,
                                   source = source, sink = ltn12.sink.table(chunks) }
  if not ok then return nil, string.format("%s %s: %s", method, path, tostring(status)) end
  local text = table.concat(chunks)
  if status ~= 200 then
    return nil, string.format("%s %s: HTTP %s %s", method, path, tostring(status), text:sub(1, 200))
  end
  local decoded_ok, value = pcall(cjson.decode, text)
  if not decoded_ok then return nil, string.format("%s %s: not JSON: %s", method, path, text:sub(1, 200)) end
  return value
end

local Control = {}
Control.__index = Control

--- A client of an emulator's control API; `emulator` is a sora.emulator.process handle.
function harness.control(emulator)
  return setmetatable({ base = emulator:control_url(), pid = emulator.pid }, Control)
end

function Control:get(path) return control_request(self.base, "GET", path) end
function Control:post(path, body) return control_request(self.base, "POST", path, body or {}) end
function Control:delete(path) return control_request(self.base, "DELETE", path) end

--- Like get/post, but raises naming the request when it fails: the harness cannot go on.
function Control:must(method, path, body)
  local value, err = control_request(self.base, method, path, body)
  if value == nil then error("emulator control API: " .. err, 2) end
  return value
end

--- {sha256 = hex, bytes = n} of what the content endpoint serves for the video.
function Control:digest(id, variant)
  return self:get("/videos/" .. id .. "/digest?variant=" .. (variant or "video"))
end

--- Resident memory of the emulator process in kB (nil once it is gone).
function Control:rss_kb()
  return harness.proc_status_kb(self.pid, "VmRSS")
end

-- ---- files ----------------------------------------------------------------------------------

function harness.file_size(path)
  return lfs.attributes(path, "size")
end

function harness.exists(path)
  return lfs.attributes(path, "mode") ~= nil
end

--- The SHA-256 of a file as lower-case hex (coreutils), or nil, message.
function harness.sha256_file(path)
  local p = io.popen("sha256sum -b -- " .. harness.shell_quote(path) .. " 2>&1")
  local out = p:read("*a")
  p:close()
  local hex = out:match("^(%x+) ")
  if not hex or #hex ~= 64 then return nil, "sha256sum: " .. out:gsub("%s+$", "") end
  return hex:lower()
end

--- Compares a file with a digest {sha256, bytes}: "ok", or a word saying what is wrong
-- ("missing", "short", "long", "different") and a detail.
function harness.verify_file(path, digest)
  local size = harness.file_size(path)
  if not size then return "missing", path .. " does not exist" end
  if size < digest.bytes then return "short", string.format("%d of %d bytes", size, digest.bytes) end
  if size > digest.bytes then return "long", string.format("%d bytes, expected %d", size, digest.bytes) end
  local hex, err = harness.sha256_file(path)
  if not hex then return "unreadable", err end
  if hex ~= digest.sha256:lower() then
    return "different", string.format("sha256 %s, expected %s", hex, digest.sha256)
  end
  return "ok"
end

--- Changes the byte at `offset` (0-based) of a file in place: a file that is wrong by one byte.
function harness.flip_byte(path, offset)
  local f = assert(io.open(path, "r+b"))
  f:seek("set", offset)
  local b = assert(f:read(1), "the file is shorter than the offset"):byte()
  f:seek("set", offset)
  f:write(string.char((b + 1) % 256))
  f:close()
end

--- The names in a directory, sorted (without . and ..).
function harness.ls(dir)
  local names = {}
  for name in lfs.dir(dir) do
    if name ~= "." and name ~= ".." then names[#names + 1] = name end
  end
  table.sort(names)
  return names
end

--- A fresh empty directory under $TMPDIR (or /tmp), and a function that removes it.
function harness.tempdir(tag)
  local p = io.popen("mktemp -d \"${TMPDIR:-/tmp}/" .. tag .. ".XXXXXX\"")
  local dir = p:read("*l")
  p:close()
  assert(dir and dir ~= "", "mktemp -d failed")
  return dir, function() os.execute("rm -rf -- " .. harness.shell_quote(dir)) end
end

function harness.write(path, data)
  local f = assert(io.open(path, "wb"))
  f:write(data)
  f:close()
end

-- ---- this process ---------------------------------------------------------------------------

--- A field of /proc/<pid>/status in kB (VmRSS, VmHWM), or nil.
function harness.proc_status_kb(pid, field)
  local f = io.open("/proc/" .. tostring(pid) .. "/status")
  if not f then return nil end
  local text = f:read("*a")
  f:close()
  return tonumber(text:match(field .. ":%s*(%d+)"))
end

--- Open descriptors of this process (the directory handle that counts them excluded).
function harness.fd_count()
  local n = 0
  for name in lfs.dir("/proc/self/fd") do
    if name ~= "." and name ~= ".." then n = n + 1 end
  end
  return n - 1
end

--- True while pid runs (a zombie counts as gone).
function harness.alive(pid)
  local f = io.open("/proc/" .. tostring(pid) .. "/stat")
  if not f then return false end
  local stat = f:read("*a")
  f:close()
  return not stat:match("^%d+ %b() Z")
end

--- Seeds from the kernel when no seed is given; returns the seed.
function harness.seed(given)
  local seed = tonumber(given)
  if not seed then
    local f = io.open("/dev/urandom", "rb")
    local bytes = f and f:read(4) or ""
    if f then f:close() end
    seed = os.time() % 100000
    for i = 1, #bytes do seed = (seed * 256 + bytes:byte(i)) % 2147483647 end
  end
  math.randomseed(seed)
  return seed
end

-- ---- command line ---------------------------------------------------------------------------

--- Parses `--name value` and `--flag` arguments against defaults (a number default takes
-- numbers; a boolean default makes a flag). Raises naming an unknown or malformed argument.
function harness.options(argv, defaults, usage)
  local opts = {}
  for k, v in pairs(defaults) do opts[k] = v end
  local i = 1
  while i <= #argv do
    local name = argv[i]:match("^%-%-([%w-]+)$")
    local key = name and name:gsub("-", "_")
    if not key or defaults[key] == nil then error(usage .. "\nunknown argument: " .. argv[i], 0) end
    if type(defaults[key]) == "boolean" then
      opts[key] = true
    else
      local value = argv[i + 1]
      if type(defaults[key]) == "number" then value = tonumber(value) end
      if value == nil then error(usage .. "\n--" .. name .. " needs a value", 0) end
      opts[key] = value
      i = i + 1
    end
    i = i + 1
  end
  return opts
end

-- ---- checks ---------------------------------------------------------------------------------

local Checks = {}
Checks.__index = Checks

--- A tally of named checks; each prints one "PASS"/"FAIL" line as it is made.
function harness.checks(prefix)
  return setmetatable({ prefix = prefix, passed = 0, failed = 0 }, Checks)
end

function Checks:check(ok, what, detail)
  if ok then self.passed = self.passed + 1 else self.failed = self.failed + 1 end
  print(string.format("%s  %s%s", ok and "PASS" or "FAIL", what,
    detail and ("  (" .. detail .. ")") or ""))
  return ok
end

--- Adds the counts of a child's summary line ("<prefix>: N passed, N failed"), or one failure.
function Checks:absorb(output, prefix, what)
  local passed, failed = output:match(prefix .. ": (%d+) passed, (%d+) failed%s*$")
  if not passed then return self:check(false, what, "no summary line from the child") end
  self.passed, self.failed = self.passed + tonumber(passed), self.failed + tonumber(failed)
  return tonumber(failed) == 0
end

function Checks:summary()
  return string.format("%s: %d passed, %d failed", self.prefix, self.passed, self.failed)
end

return harness
