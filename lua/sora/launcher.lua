--- What bin/sora and bin/sora-emulator share once they have found the Lua modules (from a
-- checkout: its lua/; installed: the interpreter's own paths). A checkout is run under
-- whatever `lua` is first on the PATH (Debian's alternative can be 5.1 to 5.4 or LuaJIT), so
-- the core is the checkout's build for that Lua; what is missing is said in one line, with
-- the command that provides it, and the program exits 1: never a traceback.
local launcher = {}

local format = string.format

local function exists(path)
  local file = io.open(path, "rb")
  if file then file:close() end
  return file ~= nil
end

-- The ABI a C module is built for ("5.1" for LuaJIT), and the interpreter's name.
local function abi()
  if type(rawget(_G, "jit")) == "table" then return "5.1" end
  return _VERSION:match("%d+%.%d+")
end

local function lua_name()
  if type(rawget(_G, "jit")) == "table" then return "LuaJIT" end
  return _VERSION
end

-- The checkout at `root` provides sora.core from its build for this Lua (build/<abi>/, as
-- `make LUA_VERSION=<abi>` makes it), unless LUA_CPATH already says where the core is (a
-- test's sanitized build, say). Returns true, or nil and the line to print.
function launcher.checkout_core(root)
  local version = abi()
  if os.getenv("LUA_CPATH") or os.getenv("LUA_CPATH_" .. version:gsub("%.", "_")) then return true end
  local build = root .. "/build/" .. version
  if not exists(build .. "/sora/core.so") then
    return nil, format("no build of sora.core for %s in this checkout; run: make%s LUA_VERSION=%s",
      lua_name(), root == "." and "" or " -C " .. root, version)
  end
  package.cpath = build .. "/?.so;" .. package.cpath
  return true
end

-- What provides a module that a command loads, when it is missing.
local PROVIDER = {
  argparse = "Debian: lua-argparse; LuaRocks: argparse",
  cjson = "Debian: lua-cjson; LuaRocks: lua-cjson",
  ["cjson.safe"] = "Debian: lua-cjson; LuaRocks: lua-cjson",
  socket = "Debian: lua-socket; LuaRocks: luasocket",
  ["socket.core"] = "Debian: lua-socket; LuaRocks: luasocket",
  ["sora.core"] = "make install LUA_VERSION=" .. abi() .. ", or luarocks --lua-version "
    .. abi() .. " install sora",
  ["sora.emulator.cli"] = "LuaRocks: sora-emulator",
}

-- The one line said for a module that could not be loaded.
function launcher.load_error(err)
  local missing = tostring(err):match("module '([^']+)' not found")
  if not missing then return (tostring(err):match("[^\n]*")) end
  local provider = PROVIDER[missing]
  return format("the module '%s' is not installed for %s%s", missing, lua_name(),
    provider and " (" .. provider .. ")" or "")
end

-- Says `program: line` on stderr and exits 1.
function launcher.fail(program, line)
  io.stderr:write(program, ": ", line, "\n")
  os.exit(1)
end

-- require(name), or the one line and exit 1.
function launcher.require(program, name)
  local ok, module = pcall(require, name)
  if not ok then launcher.fail(program, launcher.load_error(module)) end
  return module
end

return launcher
