-- Runs the `sora` command as a user would: `lua bin/sora ...` in a child process, through
-- pipes (or a pseudo-terminal made by util-linux's `script`), with LUA_PATH / LUA_CPATH at the
-- checkout and only the environment a test gives it.
--
--   local cli = require "support.cli"
--   local r = cli.run({ "get", id }, { OPENAI_API_KEY = ..., OPENAI_BASE_URL = ... })
--   r.code, r.stdout, r.stderr
local H = require "support.client"

local M = {}

local ROOT = os.getenv("PWD") or "."

-- The interpreter of the running busted profile and the module built for its ABI, or the
-- one named ("lua5.4" or "luajit").
function M.interpreter(name)
  if name == "luajit" then return "luajit", ROOT .. "/build/5.1/?.so" end
  if name then return name, ROOT .. "/build/" .. name:match("%d%.%d") .. "/?.so" end
  local lua, cpath = H.interpreter()
  if not cpath:match("^/") then cpath = ROOT .. "/" .. cpath end
  if lua:match("/") and not lua:match("^/") then lua = ROOT .. "/" .. lua end -- sanlua
  return lua, cpath
end

-- The shell command that runs `sora args...` with exactly `env` for OPENAI_* (others unset);
-- opts.lua names the interpreter, opts.root another tree holding bin/sora and lua/.
function M.command(args, env, opts)
  local lua, cpath = M.interpreter(opts.lua)
  local root = opts.root or ROOT
  local parts = { "env", "-u OPENAI_API_KEY", "-u OPENAI_BASE_URL", "-u OPENAI_ORG_ID",
                  "-u OPENAI_PROJECT_ID", "-u OPENAI_LOG", "-u OPENAI_CUSTOM_HEADERS",
                  "LUA_PATH=" .. H.shell_quote(root .. "/lua/?.lua;" .. root .. "/lua/?/init.lua;;"),
                  "LUA_CPATH=" .. H.shell_quote(cpath .. ";;") }
  for name, value in pairs(env or {}) do parts[#parts + 1] = name .. "=" .. H.shell_quote(value) end
  parts[#parts + 1] = lua .. " " .. H.shell_quote(root .. "/bin/sora")
  for _, a in ipairs(args) do parts[#parts + 1] = H.shell_quote(a) end
  return table.concat(parts, " ")
end

-- Runs it with stdout and stderr on pipes (files here, read back), in `dir` when given;
-- returns { code, stdout, stderr }. Works on every Lua: the exit code is echoed by the shell,
-- since io.popen's close gives it only on 5.2+.
function M.run(args, env, opts)
  opts = opts or {}
  local out, err = os.tmpname(), os.tmpname()
  local cd = opts.dir and ("cd " .. H.shell_quote(opts.dir) .. " && ") or ""
  local p = assert(io.popen(cd .. M.command(args, env, opts) .. " >" .. out .. " 2>" .. err
    .. " </dev/null; echo $?"))
  local code = tonumber(p:read("*a"):match("(%d+)%s*$"))
  p:close()
  local result = { code = code, stdout = H.read(out), stderr = H.read(err) }
  os.remove(out)
  os.remove(err)
  return result
end

-- Runs it on a pseudo-terminal (`script -qfec CMD /dev/null`): its stdout and stderr are the
-- terminal, whose output comes back as `output` (with the terminal's CR LF line ends).
function M.run_tty(args, env, opts)
  opts = opts or {}
  local cd = opts.dir and ("cd " .. H.shell_quote(opts.dir) .. " && ") or ""
  local inner = M.command(args, env, opts) .. "; echo \"exit=$?\""
  local p = assert(io.popen(cd .. "script -qfec " .. H.shell_quote(inner) .. " /dev/null </dev/null"))
  local output = p:read("*a")
  p:close()
  return { code = tonumber(output:match("exit=(%d+)")), output = output }
end

-- The environment that points the command at emulator E with its key.
function M.env(E, extra)
  local env = { OPENAI_API_KEY = H.KEY, OPENAI_BASE_URL = E.url }
  for k, v in pairs(extra or {}) do env[k] = v end
  return env
end

-- What a spec file of the command starts with: an emulator whose jobs take `job_seconds`, the
-- environment pointing at it, and a scratch directory; M.stop removes them.
function M.start(job_seconds)
  local E = require("support.emulator").start{ job_seconds = job_seconds, api_key = H.KEY }
  return E, M.env(E), H.tempdir()
end

function M.stop(E, dir)
  if E then E:stop() end
  if dir then H.rmdir(dir) end
end

function M.decode(line)
  return require("cjson").decode(line)
end

-- Python's json module, with strict UTF-8, on each non-empty line of `text`: a JSON parser
-- that refuses what cjson lets through (invalid UTF-8). Returns true, or false and its reason.
local STRICT_JSON = [[
import json, sys
for line in sys.stdin.buffer.read().split(b"\n"):
    if line.strip():
        json.loads(line.decode("utf-8"))
]]

function M.strict_json(text)
  local input = os.tmpname()
  H.write(input, text)
  local out, status = H.sh("python3 -c " .. H.shell_quote(STRICT_JSON) .. " <" .. input)
  os.remove(input)
  if status == 0 then return true end
  return false, out
end

-- The non-empty lines of a text.
function M.lines(text)
  local lines = {}
  for line in text:gmatch("[^\r\n]+") do lines[#lines + 1] = line end
  return lines
end

return M
