-- Shared helpers for the client specs: fixtures, temporary directories, child processes.
local M = {}

M.KEY = "sk-test"
M.FIXTURES = "spec/fixtures/"
M.MEDIA = "lua/sora/emulator/media/"

function M.read(path)
  local f = assert(io.open(path, "rb"))
  local s = f:read("*a")
  f:close()
  return s
end

function M.fixture(name) return M.read(M.FIXTURES .. name) end
function M.media(name) return M.read(M.MEDIA .. name) end

function M.exists(path)
  local f = io.open(path, "rb")
  if f then f:close() end
  return f ~= nil
end

function M.write(path, data)
  local f = assert(io.open(path, "wb"))
  f:write(data)
  f:close()
end

local function shell_quote(s)
  return "'" .. tostring(s):gsub("'", "'\\''") .. "'"
end
M.shell_quote = shell_quote

-- Runs a shell command; returns its output (stderr included) and its exit status.
function M.sh(command)
  local p = assert(io.popen(command .. " 2>&1; echo \"exit-status $?\""))
  local out = p:read("*a")
  p:close()
  local status = tonumber(out:match("exit%-status (%d+)%s*$"))
  return (out:gsub("exit%-status %d+%s*$", "")), status
end

-- A fresh empty directory; remove it with M.rmdir.
function M.tempdir()
  local p = assert(io.popen("mktemp -d"))
  local dir = p:read("*l")
  p:close()
  assert(dir and dir ~= "", "mktemp -d failed")
  return dir
end

function M.rmdir(dir)
  if dir and dir:match("^/tmp/") then os.execute("rm -rf " .. shell_quote(dir)) end
end

-- The names in a directory, sorted.
function M.ls(dir)
  local p = assert(io.popen("ls -A " .. shell_quote(dir)))
  local names = {}
  for line in p:lines() do names[#names + 1] = line end
  p:close()
  table.sort(names)
  return names
end

-- The interpreter and module paths of the running busted profile ($SORA_TEST_LUA and
-- $SORA_TEST_CPATH override them, for runs under a sanitizer).
function M.interpreter()
  local lua, cpath = os.getenv("SORA_TEST_LUA"), os.getenv("SORA_TEST_CPATH")
  if lua and lua ~= "" and cpath and cpath ~= "" then return lua, cpath end
  if rawget(_G, "jit") then return "luajit", "build/5.1/?.so" end
  local v = _VERSION:match("Lua (%d%.%d)")
  return "lua" .. v, "build/" .. v .. "/?.so"
end

-- The Lua path a child interpreter puts first: the checkout's lua/, or $SORA_TEST_LPATH (the
-- tree of an installed rock, for make test-all).
function M.lpath()
  local lpath = os.getenv("SORA_TEST_LPATH")
  if lpath and lpath ~= "" then return lpath end
  return "lua/?.lua;lua/?/init.lua"
end

-- The first lines of a child's script: M.lpath() and the module path of M.interpreter().
function M.child_paths(cpath)
  return "package.path = '" .. M.lpath() .. ";' .. package.path\n"
    .. "package.cpath = '" .. cpath .. ";' .. package.cpath\n"
end

-- Runs `code` in a child interpreter with `env` (name -> value, false = unset); returns its
-- stdout and whether it exited 0.
function M.run_child(code, env)
  local lua, cpath = M.interpreter()
  local script = os.tmpname()
  M.write(script, M.child_paths(cpath) .. code)
  local parts = { "env" }
  for _, name in ipairs({ "OPENAI_API_KEY", "OPENAI_BASE_URL", "OPENAI_ORG_ID",
                          "OPENAI_PROJECT_ID", "OPENAI_CUSTOM_HEADERS" }) do
    parts[#parts + 1] = "-u " .. name
  end
  for name, value in pairs(env or {}) do
    if value then parts[#parts + 1] = name .. "=" .. shell_quote(value) end
  end
  parts[#parts + 1] = lua .. " " .. shell_quote(script) .. " 2>&1"
  local p = assert(io.popen(table.concat(parts, " ")))
  local out = p:read("*a")
  local ok = p:close()
  os.remove(script)
  return out, ok == true or ok == 0
end

-- Requests recorded by the emulator that match method and a path pattern.
function M.matching(E, method, pattern)
  local found = {}
  for _, r in ipairs(E:requests()) do
    if (not method or r.method == method) and (not pattern or r.path:match(pattern)) then
      found[#found + 1] = r
    end
  end
  return found
end

-- A multipart part by name, with JSON nulls as nil.
function M.part(request, name)
  local null = require("cjson").null
  for _, p in ipairs(request.parts or {}) do
    if p.name == name then
      local copy = {}
      for k, v in pairs(p) do
        if v ~= null then copy[k] = v end
      end
      return copy
    end
  end
end

-- Makes a video and forces it completed, so that remix, edits and content work at once.
function M.completed_video(client, E, params)
  local video = assert(client:create(params or { prompt = "a completed video" }))
  E:force_video(video.id, { status = "completed" })
  assert(video:refresh())
  return video
end

-- An emulator (jobs of 0.3 s, the test key) and a client of it with `client_opts`.
function M.start(client_opts)
  local E = require("support.emulator").start{ job_seconds = 0.3, api_key = M.KEY }
  local opts = { api_key = M.KEY, base_url = E.url }
  for name, value in pairs(client_opts or {}) do opts[name] = value end
  return E, require("sora").new(opts)
end

-- Closes what M.start made (either may be nil when the setup failed).
function M.stop(E, c)
  if c then c:close() end
  if E then E:stop() end
end

function M.is_integer(n)
  if math.type then return math.type(n) == "integer" end
  return type(n) == "number" and n == math.floor(n)
end

return M
