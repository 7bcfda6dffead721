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
local tools = require "support.tools"

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
  return run_in(dir, tools.xvfb_run(game) .. " love " .. q(game), E, { XDG_DATA_HOME = dir })
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

-- The README's quick start, as a newcomer types it: its ```sh lines, run from a copy of the
-- root, with hello.lua written from its ```lua block. Two lines are not run as typed: `make`
-- (the suite runs on a build already made: the spec checks it is there) and the emulator's,
-- which gets `--port 0` (port 8000 may be taken on a shared machine); the URL it prints then
-- stands for the README's http://127.0.0.1:8000/v1 in the lines after it.
describe("README's quick start", function()
  local section = H.read(ROOT .. "/README.md"):match("\n## Quick start[^\n]*\n(.-)\n## ")
  local README_URL = "http://127.0.0.1:8000/v1"

  local function blocks_of(kind)
    local found = {}
    for code in section:gmatch("\n```" .. kind .. "\n(.-)\n```") do found[#found + 1] = code end
    return found
  end

  local dir, emulator_pid

  lazy_teardown(function()
    if emulator_pid then os.execute("kill " .. emulator_pid .. " 2>/dev/null") end
    if dir then H.rmdir(dir) end
  end)

  it("gives a video file and a second one from `sora generate`", function()
    assert(section, "README.md has no '## Quick start' section")
    assert(H.exists(ROOT .. "/build/5.4/sora/core.so"), "the quick start needs `make` (build/5.4)")
    local hello = blocks_of("lua")[1]
    assert(hello and section:match("`hello.lua`"), "no hello.lua block in the quick start")
    dir = scratch_root()
    H.write(dir .. "/hello.lua", hello .. "\n")
    local commands = {}
    for _, block in ipairs(blocks_of("sh")) do
      for line in block:gmatch("[^\n]+") do
        local command = line:gsub("%s+#.*$", "")
        local emulator_command = command:match("^(.-bin/sora%-emulator[^&]*)&$")
        if emulator_command then
          local log = dir .. "/emulator.log"
          local out = H.sh("cd " .. q(dir) .. " && exec " .. emulator_command .. " --port 0 >" .. log
            .. " 2>&1 </dev/null & echo $!")
          emulator_pid = assert(tonumber(out:match("(%d+)")))
          local printed
          for _ = 1, 100 do
            printed = H.exists(log) and H.read(log):match("sora%-emulator listening on (%S+)")
            if printed then break end
            os.execute("sleep 0.1")
          end
          assert(printed, "the emulator printed no URL: " .. (H.exists(log) and H.read(log) or ""))
          assert.matches("^http://127%.0%.0%.1:%d+/v1$", printed)
          commands.url = printed
        elseif command ~= "make" then
          commands[#commands + 1] = commands.url and command:gsub(README_URL:gsub("%p", "%%%0"),
            commands.url) or command
        end
      end
    end
    assert(commands.url, "the quick start starts no emulator")
    local script = table.concat(commands, "\n")
    assert.matches("lua5.4 hello.lua", script, 1, true)
    assert.matches("bin/sora generate", script, 1, true)
    local out, status = H.sh("cd " .. q(dir) .. " && env -u OPENAI_API_KEY -u OPENAI_BASE_URL"
      .. " -u LUA_PATH -u LUA_CPATH -u LUA_PATH_5_4 -u LUA_CPATH_5_4 timeout 120 sh -e -c "
      .. q(script) .. " </dev/null")
    assert.are.equal(0, status, out)
    for _, video in ipairs{ "hello.mp4", "boat.mp4" } do
      assert.is_true(H.exists(dir .. "/" .. video), video .. " was not written:\n" .. out)
      assert.are.equal("ftyp", H.read(dir .. "/" .. video):sub(5, 8))
    end
  end)
end)
