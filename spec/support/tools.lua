-- What a spec needs from the machine beyond the module: a command or a Lua module. The one
-- place that decides what a missing one means: away from CI the spec ends pending and says
-- why; under CI=true it fails, since the test targets install every tool their specs use
-- (tools/deps.sh test) and a quiet skip there would hide what was never run.
--
--   local ok, why = tools.require_tool("strace", "the durable-download check traces fsync")
--   if not ok then return pending(why) end
--
-- (busted's `pending` exists only in a spec's own environment, hence the spec calls it.)
local M = {}

local function succeeded(status) return status == true or status == 0 end

function M.ci()
  local ci = os.getenv("CI")
  return ci == "true" or ci == "1"
end

function M.have(command)
  return succeeded(os.execute("command -v " .. command .. " >/dev/null 2>&1"))
end

-- A need that is not met: raises under CI, else returns false and the message for pending.
function M.missing(what, why)
  local message = what .. " is missing: " .. why .. " (tools/deps.sh test installs it)"
  if M.ci() then error("CI=true and " .. message, 2) end
  return false, message
end

-- true when `command` is on the PATH; else see M.missing.
function M.require_tool(command, why)
  if M.have(command) then return true end
  return M.missing("the command '" .. command .. "'", why)
end

-- true and the module when the running Lua can require `name`; else see M.missing.
function M.require_module(name, why)
  local ok, module = pcall(require, name)
  if ok then return true, module end
  return M.missing("the Lua module '" .. name .. "'", why)
end

-- true when pkg-config knows `name` (a library's headers are installed); else see M.missing.
function M.require_pkg(name, why)
  if M.have("pkg-config") and succeeded(os.execute("pkg-config --exists " .. name)) then return true end
  return M.missing("pkg-config's " .. name, why)
end

-- build/host (examples/host.c, a C program embedding Lua 5.4) and the 5.4 module, made now:
-- true, or false and why (the compiler or the headers are missing; see M.missing).
function M.build_host()
  local cc = (os.getenv("CC") or "cc"):match("%S+")
  local ok, why = M.require_tool(cc, "examples/host.c is compiled")
  if ok then ok, why = M.require_pkg("lua5.4", "examples/host.c embeds Lua 5.4 (liblua5.4-dev)") end
  if not ok then return false, why end
  local p = assert(io.popen("make -s LUA_VERSION=5.4 all host 2>&1; echo \"exit $?\""))
  local out = p:read("*a")
  p:close()
  assert(out:match("exit 0\n$"), "make host failed:\n" .. out)
  return true
end

-- The start of a shell command that runs an X client (LÖVE) under a virtual display of its
-- own: `tools.xvfb_run(dir) .. " love game"`. xvfb-run takes a free display number (-a) and
-- keeps its authority file and the X server's messages in `dir`, the caller's temporary
-- directory. Left to itself it makes a directory in /tmp and removes it when the client
-- exits; that removal failed now and then while several ran at once (make test-all runs
-- five Luas together), and xvfb-run then exits 5 ("problem while cleaning up temporary
-- directory") after a game that went well. With -f it makes no directory.
function M.xvfb_run(dir)
  local function q(s) return "'" .. s:gsub("'", "'\\''") .. "'" end
  return "xvfb-run -a -f " .. q(dir .. "/xvfb-auth") .. " -e " .. q(dir .. "/xvfb.log")
end

return M
