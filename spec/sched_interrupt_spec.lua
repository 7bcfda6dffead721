-- Interrupts and errors from user code travel as themselves (issue 16, class 2): what a debug
-- hook raises while a sink or on_progress runs (Lua's SIGINT handler is one: lua.c sets a hook
-- that raises "interrupted!") reaches the caller unchanged, never as an out-of-memory io error;
-- and Ctrl-C ends a blocking call promptly, however long libcurl would wait.
local H = require "support.client"

describe("an error a debug hook raises during a callback", function()
  local E, c, video

  lazy_setup(function()
    E, c = H.start({ max_retries = 0 })
    video = H.completed_video(c, E, { prompt = "hooks" })
  end)

  lazy_teardown(function()
    H.stop(E, c)
  end)

  -- Sets a hook (mask, count) that raises `message` the first time it fires, as lua.c's lstop
  -- does: it clears itself (here: puts the previous one back), then raises.
  -- The hook it replaces (gcstress.lua's, say) comes back after it fired, and after the call.
  local unpack = table.unpack or unpack
  local previous
  local function restore_hook()
    debug.sethook(unpack(previous, 1, 3))
  end

  local function hook_once(message, mask, count)
    local fired = false -- LuaJIT may call a hook again after it cleared itself
    debug.sethook(function()
      if fired then return end
      fired = true
      restore_hook()
      error(message, 0)
    end, mask, count)
  end

  before_each(function()
    previous = { debug.gethook() }
  end)

  -- Whether the interpreter names the frame of a hook of this kind, so that a message raised
  -- there gets no traceback added: 5.4 always; 5.3 only for a hook called from a Lua function
  -- (a count hook; a return or every-kind hook fires first as debug.sethook, a C function,
  -- returns); 5.1, 5.2 and LuaJIT never.
  local function names_hook(kind)
    if rawget(_G, "jit") then return false end
    if _VERSION == "Lua 5.4" then return true end
    return _VERSION == "Lua 5.3" and kind == "count"
  end

  local function download_with(callback_option, mask, count)
    local opts = {}
    opts[callback_option] = function()
      if not opts.hooked then
        opts.hooked = true
        hook_once("interrupted!", mask, count)
      end
    end
    if callback_option == "on_progress" then opts.path = os.tmpname() end
    local r = { pcall(c.download_content, c, video.id, opts) }
    restore_hook()
    if opts.path then os.remove(opts.path) end
    return r
  end

  for _, option in ipairs({ "sink", "on_progress" }) do
    for _, hook in ipairs({ { "call", "c", 0 }, { "return", "r", 0 }, { "count", "", 1 },
                            { "every kind", "crl", 1 } }) do
      it("raises as itself from a " .. option .. " (a " .. hook[1] .. " hook)", function()
        local r = download_with(option, hook[2], hook[3])
        assert.is_false(r[1], tostring(r[2]))
        if names_hook(hook[1]) or hook[1] == "call" then -- a call hook fires before the function runs
          assert.are.equal("interrupted!", r[2])
        else -- raised inside the function, where 5.1, 5.2 and LuaJIT cannot tell a hook's frame
          assert.are.equal("interrupted!\nstack traceback:", r[2]:sub(1, 29))
        end
      end)
    end
  end

  it("raises a table as itself", function()
    local raised = setmetatable({}, { __tostring = function() return "budget spent" end })
    local armed = false
    local opts = { sink = function()
      if not armed then
        armed = true
        hook_once(raised, "c", 0)
      end
    end }
    local ok, err = pcall(c.download_content, c, video.id, opts)
    restore_hook()
    assert.is_false(ok)
    assert.are.equal(raised, err)
  end)

  it("leaves the client usable", function()
    assert.are.equal(video.id, assert(c:retrieve(video.id)).id)
  end)
end)

describe("Ctrl-C during the sora command", function()
  local cli = require "support.cli"
  local exit = require "sora.cli.exit"
  local E, env, dir, id

  lazy_setup(function()
    E, env, dir = cli.start(60)
    local created = cli.run({ "--json", "create", "ctrl-c" }, env)
    id = cli.decode(created.stdout).id
  end)

  lazy_teardown(function()
    cli.stop(E, dir)
  end)

  before_each(function()
    E:clear_faults()
  end)

  -- Runs `sora args...`, sends it one SIGINT after a second, and returns its exit code, the
  -- seconds it took from the signal to its end, and its stderr. A command still running 30 s
  -- later is killed (then the code is 137).
  local function interrupt(args)
    local err = os.tmpname()
    local p = io.popen("cd " .. H.shell_quote(dir) .. " && { " .. cli.command(args, env, {})
      .. " >/dev/null 2>" .. err .. " </dev/null & pid=$!; sleep 1; start=$(date +%s.%N);"
      .. " kill -INT $pid; ( trap 'kill $s; exit' TERM; sleep 30 & s=$!; wait $s; kill -KILL $pid ) >/dev/null 2>&1 &"
      .. " guard=$!;"
      .. " wait $pid; code=$?; end=$(date +%s.%N); kill $guard 2>/dev/null;"
      .. " echo \"$code $start $end\"; }")
    local out = p:read("*a")
    p:close()
    local code, started, ended = out:match("(%d+) ([%d.]+) ([%d.]+)%s*$")
    local stderr = H.read(err)
    os.remove(err)
    return tonumber(code), tonumber(ended) - tonumber(started), stderr
  end

  local function needs_sigint_handler()
    local interpreter = os.getenv("SORA_TEST_LUA")
    return interpreter and interpreter:find("sanlua", 1, true)
  end

  -- stall: the emulator's fault that answers nothing until the client hangs up
  local phases = {
    { "create, its request stalled", { "create", "a storm" }, { method = "POST", path = "/videos$" } },
    { "get, its request stalled", { "get", "ID" }, { method = "GET", path = "/videos/video_[%w_]+$" } },
    { "list, its request stalled", { "list" }, { method = "GET", path = "/videos$" } },
    { "download, its request stalled", { "download", "ID", "-o", "out.mp4" },
      { method = "GET", path = "/content" } },
    { "download to stdout, its request stalled", { "download", "ID", "-o", "-" },
      { method = "GET", path = "/content" } },
    { "wait, between two polls", { "wait", "ID", "--interval", "60", "--progress", "none" } },
    { "wait, its poll stalled", { "wait", "ID", "--progress", "none" },
      { method = "GET", path = "/videos/video_[%w_]+$" } },
    { "list --all, its request stalled", { "list", "--all" }, { method = "GET", path = "/videos$" } },
    { "generate, its create stalled", { "generate", "a storm", "-o", "g1.mp4" },
      { method = "POST", path = "/videos$" } },
    { "generate, while it waits", { "generate", "a storm", "-o", "g2.mp4", "--interval", "60" } },
    { "generate, its poll stalled", { "generate", "a storm", "-o", "g3.mp4" },
      { method = "GET", path = "/videos/video_[%w_]+$" } },
  }
  for _, phase in ipairs(phases) do
    it("exits 130 at once: " .. phase[1], function()
      if needs_sigint_handler() then return pending("needs lua.c's SIGINT handler") end
      if phase[3] then
        local fault = { action = "stall", times = 10 }
        for k, v in pairs(phase[3]) do fault[k] = v end
        E:fault(fault)
      end
      local args = {}
      for i, a in ipairs(phase[2]) do args[i] = a == "ID" and id or a end
      E:force_video(id, { status = args[1] == "download" and "completed" or "in_progress" })
      local code, seconds, stderr = interrupt(args)
      assert.are.equal(exit.INTERRUPTED, code, stderr)
      assert.is_true(seconds < 10, "ended " .. seconds .. " s after the signal")
      assert.matches("interrupted", stderr)
    end)
  end
end)
