-- A journaled batch killed with SIGKILL while a create is in flight, then run again: every
-- job ends with exactly one video made for it and its file verified, nothing is left behind,
-- and a rerun of the finished batch sends no create and no content request. The batch runs in
-- a child Lua process (the same interpreter and module), as a user's program would.
local socket = require "socket"
local H = require "support.client"

-- The child: generate_many over `n` jobs with the journal, then exit 0 (1 if a job failed).
local CHILD = [[
local sora = require "sora"
local base_url, dir, n = arg[1], arg[2], tonumber(arg[3])
local client = sora.new{ api_key = "sk-test", base_url = base_url, timeout = 30 }
local jobs = {}
for i = 1, n do
  jobs[i] = { prompt = "killed batch " .. i, output = dir .. "/job-" .. i .. ".mp4", interval = 0.05 }
end
local _, errors = client:generate_many(jobs, { journal = dir .. "/batch.journal", concurrency = 3 })
for i = 1, n do
  if errors[i] then io.stderr:write("job ", i, ": ", tostring(errors[i]), "\n") os.exit(1) end
end
os.exit(0)
]]

-- Starts the child in the background; returns its pid.
local function spawn(script, base_url, dir, n)
  local lua = H.interpreter()
  local pidfile = dir .. "/child.pid"
  os.execute(string.format("%s %s %s %s %d >>%s 2>&1 </dev/null & echo $! >%s", lua,
    H.shell_quote(script), H.shell_quote(base_url), H.shell_quote(dir), n,
    H.shell_quote(dir .. "/child.log"), H.shell_quote(pidfile)))
  local pid = tonumber(H.read(pidfile):match("%d+"))
  os.remove(pidfile)
  return pid
end

local function alive(pid)
  local ok = os.execute("kill -0 " .. pid .. " 2>/dev/null")
  return ok == true or ok == 0
end

local function wait_until(predicate, seconds, what)
  local deadline = socket.gettime() + seconds
  while not predicate() do
    assert(socket.gettime() < deadline, "timed out waiting for " .. what)
    socket.sleep(0.01)
  end
end

-- Runs the child to its end; true when it exited 0.
local function run_to_end(script, base_url, dir, n)
  local lua = H.interpreter()
  local ok = os.execute(string.format("%s %s %s %s %d >>%s 2>&1 </dev/null", lua,
    H.shell_quote(script), H.shell_quote(base_url), H.shell_quote(dir), n,
    H.shell_quote(dir .. "/child.log")))
  return ok == true or ok == 0
end

-- How many videos the emulator holds per prompt.
local function made_per_prompt(c)
  local made = {}
  for v in c:list{ limit = 100 } do made[v.prompt] = (made[v.prompt] or 0) + 1 end
  return made
end

for _, idempotency in ipairs({ false, true }) do
  describe("a journaled batch killed mid-create (the emulator's Idempotency-Key support "
           .. (idempotency and "on" or "off, as OpenAI's API") .. ")", function()
    local E, c, dir, script
    lazy_setup(function()
      E, c = H.start()
      dir = H.tempdir()
      script = dir .. "/child.lua"
      H.write(script, H.child_paths(select(2, H.interpreter())) .. CHILD)
    end)
    lazy_teardown(function()
      H.stop(E, c)
      H.rmdir(dir)
    end)

    it("makes exactly one video per job, every file verified, and a rerun sends nothing", function()
      E:config{ idempotency = idempotency }
      local n = 4
      -- the first create makes its video at once and is answered only after 1.5 s: the child
      -- is killed while it waits, after the journal recorded the send
      E:fault{ method = "POST", path = "^/v1/videos$", action = "delay_answer", delay_ms = 1500 }
      local pid = spawn(script, E.url, dir, n)
      wait_until(function()
        local f = io.open(dir .. "/batch.journal")
        local text = f and f:read("*a")
        if f then f:close() end
        return text and text:find('"event":"send"', 1, true)
      end, 30, "the first send record")
      socket.sleep(0.3)
      os.execute("kill -KILL " .. pid)
      wait_until(function() return not alive(pid) end, 10, "the child to die")
      assert.is_true(run_to_end(script, E.url, dir, n), H.read(dir .. "/child.log"))

      local made, counted = made_per_prompt(c), {}
      for _, entry in ipairs(E:creates()) do
        counted[entry.prompt] = (counted[entry.prompt] or 0) + entry.made
      end
      for i = 1, n do
        assert.are.equal(1, made["killed batch " .. i], "videos listed for job " .. i)
        assert.are.equal(1, counted["killed batch " .. i], "videos the emulator made for job " .. i)
      end
      local ids = {}
      for line in H.read(dir .. "/batch.journal"):gmatch("[^\n]+") do
        local id, file, sha = line:match('"event":"done".-"video":"([^"]+)".-"file":"([^"]+)".-"sha256":"(%x+)"')
        if id then ids[file] = { id = id, sha256 = sha } end
      end
      for i = 1, n do
        local path = dir .. "/job-" .. i .. ".mp4"
        local digest = E:digest(ids[path].id)
        local sum = H.sh("sha256sum " .. H.shell_quote(path)):match("^(%x+)")
        assert.are.equal(digest.sha256, sum)
        assert.are.equal(digest.sha256, ids[path].sha256)
      end
      for _, name in ipairs(H.ls(dir)) do assert.is_nil(name:find(".sora-", 1, true), name) end

      E:clear_requests()
      assert.is_true(run_to_end(script, E.url, dir, n), H.read(dir .. "/child.log"))
      assert.are.same({}, H.matching(E, "POST", "^/v1/videos$"))
      assert.are.same({}, H.matching(E, "GET", "/content$"))
    end)
  end)
end
