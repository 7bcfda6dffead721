-- Every ```lua block of README.md and docs/*.md runs as written, and the README's quick start
-- works as a newcomer types it. A doc that drifts from the code fails here.
--
-- Each block is a complete program (docs are found by globbing: a new page is covered). It runs
-- in a fresh interpreter of the running profile (5.4 under --run=default, LuaJIT under
-- --run=luajit; $SORA_TEST_LUA / $SORA_TEST_CPATH / $SORA_TEST_LPATH as for every child
-- interpreter, so the rock-tree runs and ASan run it too) with OPENAI_BASE_URL at an emulator
-- and OPENAI_API_KEY set, and must exit 0.
--
-- Where a block runs: in a fresh temporary directory whose entries are symbolic links to the
-- repository root's. A block reads what the repository ships by the paths a reader at the root
-- would type (examples/boat.png), and writes its outputs (boat.mp4) into the temporary
-- directory, removed afterwards: the examples stay natural and the checkout stays clean (the
-- last case checks `git status` did not change).
--
-- A block whose first line is `-- host: nvim` runs in Neovim headless (its work is done when
-- every uv handle it made is closed; an ERROR notification fails it); `-- host: love` runs as
-- the main.lua of a LÖVE game under xvfb-run (the block quits the game itself).
local H = require "support.client"
local cli = require "support.cli"
local emulator = require "support.emulator"

local q = H.shell_quote
local ROOT = os.getenv("PWD") or "."
local KEY = "sk-docs-example"
local BLOCK_SECONDS = 120 -- `timeout` for one block: a stuck block fails instead of hanging

local function lines_of(command)
  local p = assert(io.popen(command))
  local lines = {}
  for line in p:lines() do lines[#lines + 1] = line end
  p:close()
  return lines
end

-- The documentation: README.md and every docs/*.md.
local function doc_files()
  local files = { "README.md" }
  for _, path in ipairs(lines_of("cd " .. q(ROOT) .. " && ls docs/*.md")) do files[#files + 1] = path end
  return files
end

-- The ```lua blocks of a file: { file, line (of the fence), code, host }.
local function lua_blocks(file)
  local found, current = {}, nil
  local n = 0
  for line in io.lines(ROOT .. "/" .. file) do
    n = n + 1
    if current then
      if line:match("^```") then
        current.code = table.concat(current.lines, "\n") .. "\n"
        current.host = current.lines[1] and current.lines[1]:match("^%-%- host: (%w+)")
        found[#found + 1], current = current, nil
      else
        current.lines[#current.lines + 1] = line
      end
    elseif line:match("^```lua%s*$") then
      current = { file = file, line = n, lines = {} }
    end
  end
  assert(current == nil, file .. ": a ```lua block is never closed")
  return found
end

-- A scratch directory that looks like the repository root: a link to each of its entries.
local function scratch_root()
  local dir = H.tempdir()
  local out, status = H.sh("cd " .. q(dir) .. " && ln -s " .. q(ROOT) .. "/* .")
  assert.are.equal(0, status, out)
  return dir
end

-- Runs `command` in `dir` with the OPENAI_* variables at E (others unset); { code, out, err }.
local function run_in(dir, command, E, env)
  local out, err = os.tmpname(), os.tmpname()
  local parts = { "cd", q(dir), "&&", "env", "-u OPENAI_ORG_ID", "-u OPENAI_PROJECT_ID",
                  "-u OPENAI_LOG", "-u OPENAI_CUSTOM_HEADERS", "-u OPENAI_WEBHOOK_SECRET",
                  "OPENAI_BASE_URL=" .. q(E.url), "OPENAI_API_KEY=" .. q(KEY) }
  for name, value in pairs(env or {}) do parts[#parts + 1] = name .. "=" .. q(value) end
  parts[#parts + 1] = "timeout " .. BLOCK_SECONDS .. " " .. command
  parts[#parts + 1] = ">" .. out .. " 2>" .. err .. " </dev/null; echo $?"
  local p = assert(io.popen(table.concat(parts, " ")))
  local code = tonumber(p:read("*a"):match("(%d+)%s*$"))
  p:close()
  local result = { code = code, out = H.read(out), err = H.read(err) }
  os.remove(out)
  os.remove(err)
  return result
end

local function absolute(path_list)
  return (path_list:gsub("[^;]+", function(entry)
    return entry:match("^/") and entry or ROOT .. "/" .. entry
  end))
end

-- A plain block: the profile's interpreter, the module found through LUA_PATH / LUA_CPATH.
local function run_lua(dir, script, E)
  local lua, cpath = cli.interpreter()
  return run_in(dir, lua .. " " .. q(script), E,
    { LUA_PATH = absolute(H.lpath()) .. ";;", LUA_CPATH = cpath .. ";;" })
end

-- Neovim's LuaJIT loads the core built for 5.1.
local function build_51()
  local core = ROOT .. "/build/5.1/sora/core.so"
  assert(H.exists(core), core .. " is missing: make LUA_VERSION=5.1")
  return ROOT .. "/build/5.1/?.so"
end

local NVIM_RUNNER = [[
local uv = vim.loop
package.path = %q .. ";" .. package.path
package.cpath = %q .. ";" .. package.cpath
-- every uv handle the block makes, to know when its work is done
local handles = setmetatable({}, { __mode = "k" })
for _, name in ipairs{ "new_timer", "new_poll", "new_socket_poll", "new_check", "new_idle" } do
  local make = uv[name]
  if make then
    uv[name] = function(...)
      local handle = make(...)
      if handle then handles[handle] = true end
      return handle
    end
  end
end
local errors = {}
vim.notify = function(message, level)
  io.stdout:write(tostring(message), "\n")
  if (level or 0) >= vim.log.levels.ERROR then errors[#errors + 1] = tostring(message) end
end
local function fail(message)
  io.stderr:write(message, "\n")
  vim.cmd("cquit 1")
end
local ok, err = xpcall(dofile, debug.traceback, %q)
if not ok then return fail(err) end
local function idle()
  for handle in pairs(handles) do
    local alive, closing = pcall(handle.is_closing, handle)
    if alive and not closing then return false end
  end
  return true
end
if not vim.wait(%d, idle, 20) then return fail("the block's uv handles are still open") end
if #errors > 0 then return fail(table.concat(errors, "\n")) end
vim.cmd("qa!")
]]

local function run_nvim(dir, script, E)
  local runner = dir .. "/.docs-nvim-runner.lua"
  H.write(runner, NVIM_RUNNER:format(absolute(H.lpath()), build_51(), script,
    (BLOCK_SECONDS - 10) * 1000))
  return run_in(dir, "nvim --headless -i NONE -n -u NONE -c " .. q("luafile " .. runner), E)
end

local LOVE_CONF = [[
function love.conf(t)
  t.identity = "sora-docs"
  t.window.width, t.window.height = 320, 180
  t.modules.audio, t.modules.sound, t.modules.joystick = false, false, false
end
]]

local LOVE_MAIN = [[
package.path = %q .. ";" .. package.path
package.cpath = %q .. ";" .. package.cpath
function love.errorhandler(message)
  io.stderr:write(debug.traceback(tostring(message), 2), "\n")
  os.exit(1)
end
dofile(%q)
]]

local function run_love(dir, script, E)
  local game = dir .. "/.docs-love"
  assert(os.execute("mkdir " .. q(game)))
  H.write(game .. "/conf.lua", LOVE_CONF)
  H.write(game .. "/main.lua", LOVE_MAIN:format(absolute(H.lpath()), build_51(), script))
  return run_in(dir, "xvfb-run -a love " .. q(game), E, { XDG_DATA_HOME = dir })
end

local HOSTS = { nvim = { run = run_nvim, needs = { "nvim" } },
                love = { run = run_love, needs = { "love", "xvfb-run" } } }

local function available(program)
  local _, status = H.sh("command -v " .. program .. " >/dev/null")
  return status == 0
end

local function git_status()
  local out, status = H.sh("cd " .. q(ROOT) .. " && git status --porcelain --untracked-files=all")
  return status == 0 and out or nil
end

describe("the documentation's ```lua blocks", function()
  local E, before

  lazy_setup(function()
    E = emulator.start{ job_seconds = 0.5 }
    before = git_status()
  end)

  lazy_teardown(function()
    if E then E:stop() end
  end)

  for _, file in ipairs(doc_files()) do
    for _, block in ipairs(lua_blocks(file)) do
      local name = string.format("%s:%d%s", block.file, block.line,
        block.host and " (in " .. block.host .. ")" or "")
      local host = block.host and HOSTS[block.host]
      if block.host and not host then
        it(name, function() error("unknown host '" .. block.host .. "' (nvim or love)") end)
      elseif host and not (available(host.needs[1]) and available(host.needs[#host.needs])) then
        it(name, function()
          pending(table.concat(host.needs, " and ") .. " not installed (tools/deps.sh installs them)")
        end)
      else
        it(name .. " runs and exits 0", function()
          local dir = scratch_root()
          local script = dir .. "/.docs-block.lua"
          H.write(script, block.code)
          local r = (host and host.run or run_lua)(dir, script, E)
          H.rmdir(dir)
          assert(r.code == 0, string.format("%s exited %s\n--- stderr\n%s\n--- stdout\n%s",
            name, tostring(r.code), r.err, r.out))
        end)
      end
    end
  end

  it("leave the checkout as it was", function()
    if before == nil then return pending("not a git checkout") end
    assert.are.equal(before, git_status())
  end)
end)
