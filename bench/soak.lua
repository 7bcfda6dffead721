-- The soak: thousands of jobs under a seeded rain of faults, every one accounted for.
--
-- Starts its own emulator with its random fault schedule on (a share of the /v1 requests gets
-- a 429, a 5xx, a reset, a reset mid-body, a stall, a truncated body, malformed JSON, or a
-- video that fails), then runs the jobs as tasks of one client, at most --concurrency at a
-- time. A job creates a video, waits for it and downloads it to a path; the file is then
-- verified (size and SHA-256, by coreutils) against the digest the emulator serves for that
-- video. Every job must end in exactly one of two ways: a verified file, or `nil, err` with an
-- error of a documented kind. A job that ends neither way is *lost*; a wrong file, a file left
-- by a failed job, or a `.sora-` temporary file left behind is *corrupt*.
--
-- Then, twice, 1,000 requests are held open at once against the same emulator (each answered
-- after a delay) while a probe request must still be served, and the emulator's memory is read
-- around each round; last, bench/kill_download.lua kills a downloading process with SIGKILL
-- again and again, and bench/batch_kill.lua does the same to a process running a journaled
-- batch of 200 jobs (500 without --quick) until the batch is done.
--
-- Prints the seed, the counts, descriptors and RSS before and after, the emulator's requests,
-- connections and memory, and the wall time; exits non-zero when a job is lost or corrupt,
-- when descriptors do not return to the baseline, or when any other check fails. The last line
-- is `soak: N passed, N failed`. A failing run replays with its seed: the emulator draws the
-- same sequence of faults (which request meets which depends on the timing of the requests).
--
--   make soak [QUICK=1] [SEED=n] [JOBS=n] [FAULT_RATE=0.2] [CONCURRENCY=n]
--   LUA_PATH="lua/?.lua;lua/?/init.lua;;" LUA_CPATH="build/5.4/?.so;;" lua5.4 bench/soak.lua --quick
local bench_dir = (arg and arg[0] or ""):match("^(.*)[/\\][^/\\]*$") or "bench"
package.path = bench_dir .. "/?.lua;" .. package.path

local sora = require "sora"
local process = require "sora.emulator.process"
local harness = require "support.harness"
local socket = require "socket"

local USAGE = [[
usage: soak.lua [--quick] [--seed N] [--jobs N] [--fault-rate R] [--concurrency N]
                [--connections N] [--kills N] [--video-kb N] [--job-seconds S]
                [--phase-seconds S] [--no-kill]]

local opts = harness.options(arg or {}, {
  quick = false, seed = "", jobs = 0, fault_rate = 0.2, concurrency = 50, connections = 1000,
  kills = 0, video_kb = 256, job_seconds = 1, no_kill = false, phase_seconds = 0,
}, USAGE)
if opts.jobs <= 0 then opts.jobs = opts.quick and 200 or 2000 end
if opts.kills <= 0 then opts.kills = opts.quick and 20 or 50 end
-- A stuck run ends as lost jobs, never as a hung CI: jobs still running then are counted lost.
if opts.phase_seconds <= 0 then opts.phase_seconds = 240 + opts.jobs * 0.6 end
assert(opts.fault_rate >= 0 and opts.fault_rate <= 1, "--fault-rate must be between 0 and 1")
assert(opts.concurrency >= 1 and opts.connections >= 1, "--concurrency and --connections must be >= 1")

local KEY = "sk-soak"
local WAIT_TIMEOUT = 120     -- seconds a job waits for its video
local HOLD_MS = 6000         -- how long each of the held connections is kept waiting

-- The kinds README documents; an error of any other kind is not "named".
local KINDS = {}
for kind in ([[bad_request authentication permission_denied not_found conflict
  unprocessable_entity rate_limit internal_server api_status connection timeout
  invalid_response failed aborted io]]):gmatch("%S+") do KINDS[kind] = true end

local checks = harness.checks("soak")

local function count(n) return tonumber(n) and string.format("%d", n) or "n/a" end
local function mb(kb) return kb and string.format("%.1f MB", kb / 1024) or "n/a" end

local function rss_line(label)
  return string.format("%s: descriptors %d, RSS %s, peak RSS %s", label, harness.fd_count(),
    mb(harness.proc_status_kb("self", "VmRSS")), mb(harness.proc_status_kb("self", "VmHWM")))
end

-- ---- the verifier's self-check ----------------------------------------------------------
-- The harness must be able to fail: a right file passes, and a file with one byte changed, a
-- short file, a missing file and a stray temporary file are each caught.

local function temp_files(dir)
  local found = {}
  for _, name in ipairs(harness.ls(dir)) do
    if name:find("%.sora%-") then found[#found + 1] = name end
  end
  return found
end

local function self_check(dir)
  local data = string.rep("soak verifier self-check ", 4000)
  local path = dir .. "/self-check.bin"
  harness.write(path, data)
  local digest = { bytes = #data, sha256 = assert(harness.sha256_file(path)) }
  local good = harness.verify_file(path, digest) == "ok"
  harness.write(path, data:sub(1, 5000) .. string.char((data:byte(5001) + 1) % 256) .. data:sub(5002))
  local flipped = harness.verify_file(path, digest)
  harness.write(path, data:sub(1, #data - 1))
  local short = harness.verify_file(path, digest)
  os.remove(path)
  local missing = harness.verify_file(path, digest)
  harness.write(dir .. "/job.mp4.sora-Ab12Cd", "partial")
  local strays = #temp_files(dir)
  os.remove(dir .. "/job.mp4.sora-Ab12Cd")
  checks:check(good and flipped == "different" and short == "short" and missing == "missing"
    and strays == 1, "verifier self-check: a right file passes; one changed byte, a short file, "
    .. "a missing file and a stray .sora- file are caught",
    string.format("right %s, changed byte %s, short %s, missing %s, strays %d",
      tostring(good), flipped, short, missing, strays))
end

-- ---- the jobs ---------------------------------------------------------------------------

-- A job's video is deleted once its outcome is known (a completed or failed video; one still
-- being made cannot be), as a tidy program would, so the emulator's store stays small. A delete
-- that fails is reported apart: the job's outcome is its file or its error.
local function delete_video(client, job, video)
  local deleted, err = client:delete(video.id)
  if not deleted then job.delete_err = err end
end

-- One job, inside a task: true, or nil, err, the stage that failed. The digest to verify
-- against is fetched before the video is deleted.
local function run_job(client, control, job)
  local video, err = client:create{ prompt = "soak job " .. job.index, model = "sora-2", seconds = "4" }
  if not video then return nil, err, "create" end
  job.id = video.id
  local completed
  completed, err = video:wait{ timeout = WAIT_TIMEOUT }
  if not completed then
    if err.kind == "failed" then delete_video(client, job, video) end
    return nil, err, "wait"
  end
  local ok
  ok, err = video:download{ path = job.path }
  if ok then job.digest, job.digest_err = control:digest(video.id) end
  delete_video(client, job, video)
  if not ok then return nil, err, "download" end
  return true
end

-- What the settled jobs came to: verified, failed (with a named error), lost, corrupt.
local function new_tally()
  return { verified = 0, failed = 0, lost = 0, corrupt = 0, by_kind = {}, by_stage = {},
           deletes_failed = {}, problems = {} }
end

local function note(tally, class, job, detail)
  tally[class] = tally[class] + 1
  if #tally.problems < 20 then
    tally.problems[#tally.problems + 1] = string.format("job %d (%s): %s: %s", job.index,
      tostring(job.id), class, detail:sub(1, 200))
  end
end

local function bump(t, key) t[key] = (t[key] or 0) + 1 end

-- A job that says it succeeded: its file must match the emulator's digest.
local function settle_success(tally, job)
  local digest = job.digest
  if not digest then return note(tally, "lost", job, "no digest to verify against: " .. tostring(job.digest_err)) end
  local verdict, detail = harness.verify_file(job.path, digest)
  if verdict == "ok" then
    tally.verified = tally.verified + 1
    os.remove(job.path)
  elseif verdict == "missing" then
    note(tally, "lost", job, "reported success but wrote no file")
  else
    note(tally, "corrupt", job, verdict .. ": " .. detail .. " (kept at " .. job.path .. ")")
  end
end

-- A job that failed: its error must be a sora error of a documented kind, and its target
-- must not exist (a failed download leaves nothing at a fresh path).
local function settle_failure(tally, job, err, stage)
  if not (sora.is_error(err) and KINDS[err.kind]) then
    return note(tally, "lost", job, "ended with neither a file nor a named error: " .. tostring(err))
  end
  if harness.exists(job.path) then
    return note(tally, "corrupt", job, "failed (" .. tostring(err) .. ") but left a file at its path")
  end
  tally.failed = tally.failed + 1
  bump(tally.by_kind, err.kind)
  bump(tally.by_stage, stage .. ":" .. err.kind)
end

-- Settles a finished task: a verified file, a named failure, or else lost or corrupt.
local function settle(tally, job, task)
  local ok, err, stage = task:result()
  if job.delete_err then
    bump(tally.deletes_failed, sora.is_error(job.delete_err) and KINDS[job.delete_err.kind]
      and job.delete_err.kind or "unnamed: " .. tostring(job.delete_err))
  end
  if ok == true then return settle_success(tally, job) end
  if task.status ~= "done" then return note(tally, "lost", job, "the task raised: " .. tostring(err)) end
  settle_failure(tally, job, err, stage or "?")
end

-- The settling itself must be able to fail: before the faults start, a real job whose file
-- then gets one byte changed is settled as corrupt, one whose file is removed as lost, one
-- that raises as lost, and an untouched one as verified.
local function canary(emulator, control, dir)
  local client = sora.new{ api_key = KEY, base_url = emulator.url, timeout = 30 }
  local tally, tamper = new_tally(), {
    function(job) harness.flip_byte(job.path, 1000) end,
    function(job) os.remove(job.path) end,
    function(job) job.task = client:spawn(function() error("a job that raises") end) end,
    function() end,
  }
  for i, change in ipairs(tamper) do
    local job = { index = -i, path = string.format("%s/canary-%d.mp4", dir, i) }
    job.task = client:spawn(run_job, client, control, job)
    client:run()
    change(job)
    client:run()
    settle(tally, job, job.task)
    os.remove(job.path)
  end
  client:close()
  checks:check(tally.corrupt == 1 and tally.lost == 2 and tally.verified == 1,
    "settling self-check: a changed byte is corrupt, a missing file and a raising task are lost, "
    .. "a right file is verified", string.format("corrupt %d, lost %d, verified %d",
      tally.corrupt, tally.lost, tally.verified))
end

-- Memory every tenth of the jobs: this process's Lua heap after a full collection and its
-- RSS, the emulator's Lua heap and RSS. Returns the emulator's stats.
local function sample(control, settled, total)
  collectgarbage()
  local stats = control:get("/stats") or {}
  print(string.format("  [%3d%%] %5d/%d settled  client: Lua heap %s, RSS %s  emulator: Lua heap %s, "
    .. "RSS %s, open connections %s", math.floor(100 * settled / total), settled, total,
    mb(collectgarbage("count")), mb(harness.proc_status_kb("self", "VmRSS")),
    mb(stats.lua_memory_kb), mb(control:rss_kb()), count(stats.connections_open)))
  return stats
end

-- Runs every job as a task, at most opts.concurrency at once, settling each as it ends. A job's
-- record exists only while it runs, so that what the harness keeps does not grow with the jobs.
local function run_jobs(tally, client, control, dir)
  local running, next_job, settled = {}, 1, 0
  local deadline, every = harness.now() + opts.phase_seconds, math.max(1, math.floor(opts.jobs / 10))
  local memory = {}
  while (next_job <= opts.jobs or #running > 0) and harness.now() < deadline do
    while #running < opts.concurrency and next_job <= opts.jobs do
      local job = { index = next_job, path = string.format("%s/job-%05d.mp4", dir, next_job) }
      job.task = client:spawn(run_job, client, control, job)
      running[#running + 1], next_job = job, next_job + 1
    end
    client:step(0.05)
    for i = #running, 1, -1 do
      local job = running[i]
      if job.task:done() then
        table.remove(running, i)
        settle(tally, job, job.task)
        settled = settled + 1
        if settled % every == 0 then memory[#memory + 1] = sample(control, settled, opts.jobs) end
      end
    end
  end
  for _, job in ipairs(running) do
    job.task:cancel()
    note(tally, "lost", job, "still running when the phase's time (" .. opts.phase_seconds .. " s) ran out")
  end
  for i = next_job, opts.jobs do
    note(tally, "lost", { index = i }, "never started: the phase's time ran out")
  end
  return memory
end

-- ---- 1,000 connections at once -----------------------------------------------------------

-- The emulator's Lua heap (kB, after its own collection) and RSS (kB), and its stats.
local function emulator_memory(control)
  local stats = control:get("/stats") or {}
  return stats.lua_memory_kb, control:rss_kb(), stats
end

-- Waits (at most 5 s) until the emulator has seen the client's connections close.
local function connections_closed(control)
  local deadline = harness.now() + 5
  repeat
    local stats = control:get("/stats") or {}
    if (tonumber(stats.connections_open) or 0) <= 1 then return end  -- 1: this request's own
    socket.sleep(0.05)
  until harness.now() > deadline
end

-- One round: opts.connections retrieves held HOLD_MS each, and a probe sent halfway through.
-- Returns how many were answered, the probe's seconds (nil if unanswered), the stats while the
-- connections were still open.
local function hold_round(client, control, held_id, probe_id)
  control:must("POST", "/faults", { method = "GET", path = "^/v1/videos/" .. held_id .. "$",
                                    times = opts.connections, action = "delay", delay_ms = HOLD_MS })
  local tasks, start = {}, harness.now()
  for i = 1, opts.connections do tasks[i] = client:spawn(client.retrieve, client, held_id) end
  while harness.now() - start < HOLD_MS / 2000 do client:step(0.05) end
  local probe_start, probe_seconds = harness.now(), nil
  client:spawn(function()
    if client:retrieve(probe_id) then probe_seconds = harness.now() - probe_start end
  end)
  while client:step(0.05) > 0 and harness.now() - start < HOLD_MS / 1000 + 120 do end
  local answered = 0
  for _, task in ipairs(tasks) do
    if task:done() and task:result() then answered = answered + 1 end
  end
  return answered, probe_seconds, control:get("/stats") or {}
end

-- Holds opts.connections requests open at once, twice, with a client of its own, and sends
-- one more request while they are held: every one must be answered, and the emulator's memory
-- after the second round must be what it was after the first.
local function hold_connections(control, base_url)
  print(string.format("\n== %d connections at once (each request held %d ms), two rounds",
    opts.connections, HOLD_MS))
  control:must("POST", "/config", { fault_rate = 0 })
  local setup = sora.new{ api_key = KEY, base_url = base_url, max_retries = 0 }
  local held, probe = assert(setup:create{ prompt = "held" }), assert(setup:create{ prompt = "probe" })
  setup:close()
  control:must("POST", "/videos/" .. held.id, { status = "completed" })
  control:must("DELETE", "/stats")
  local heap, rss = emulator_memory(control)
  print(string.format("emulator before: Lua heap %s, RSS %s", mb(heap), mb(rss)))
  for round = 1, 2 do
    local client = sora.new{ api_key = KEY, base_url = base_url, timeout = 120, max_retries = 0 }
    control:must("DELETE", "/stats")
    local answered, probe_seconds, stats = hold_round(client, control, held.id, probe.id)
    client:close()
    connections_closed(control)
    heap, rss = emulator_memory(control)
    print(string.format("round %d: answered %d of %d; the probe sent while they were held: %s; "
      .. "max open at once %s; emulator Lua heap with them open %s, after they closed %s, RSS %s",
      round, answered, opts.connections, probe_seconds and string.format("answered in %.2f s",
      probe_seconds) or "not answered", count(stats.max_connections_open), mb(stats.lua_memory_kb),
      mb(heap), mb(rss)))
    checks:check(answered == opts.connections and probe_seconds ~= nil, string.format(
      "round %d: all %d held requests and the probe answered", round, opts.connections),
      answered .. " held answered")
    checks:check((tonumber(stats.max_connections_open) or 0) >= opts.connections, string.format(
      "round %d: the emulator had %d connections open at once", round, opts.connections),
      "max_connections_open " .. count(stats.max_connections_open))
  end
end

-- ---- the kill tests (child processes) -----------------------------------------------------

-- Runs bench/<name>.lua with the soak's kills and seed, printing its lines, and takes in the
-- counts of its summary line ("<name>: N passed, N failed").
local function run_child_test(name, what)
  local lua = arg[-1] or "lua5.4"
  local command = string.format("%s %s --kills %d --seed %d%s 2>&1", harness.shell_quote(lua),
    harness.shell_quote(bench_dir .. "/" .. name .. ".lua"), opts.kills, opts.seed,
    opts.quick and " --quick" or "")
  print("\n== " .. command)
  local p = io.popen(command)
  local lines = {}
  for line in p:lines() do
    print(line)
    lines[#lines + 1] = line
  end
  p:close()
  checks:absorb(table.concat(lines, "\n"), name, what)
end

-- ---- the run --------------------------------------------------------------------------------

local function sorted_counts(t)
  local keys = {}
  for k in pairs(t) do keys[#keys + 1] = k end
  table.sort(keys)
  local parts = {}
  for _, k in ipairs(keys) do parts[#parts + 1] = k .. " " .. count(t[k]) end
  return #parts > 0 and table.concat(parts, ", ") or "none"
end

local function report_jobs(tally, stats, seconds)
  print(string.format("\njobs %d: verified %d, failed with a named error %d, lost %d, corrupt %d",
    opts.jobs, tally.verified, tally.failed, tally.lost, tally.corrupt))
  print("failures by kind: " .. sorted_counts(tally.by_kind))
  print("failures by stage: " .. sorted_counts(tally.by_stage))
  print("deletes that failed (reported apart): " .. sorted_counts(tally.deletes_failed))
  for _, line in ipairs(tally.problems) do print("  " .. line) end
  print(string.format("emulator: %s requests, %s connections accepted, %s videos; faults injected: %s",
    count(stats.requests), count(stats.connections_accepted), count(stats.videos),
    sorted_counts(type(stats.faults) == "table" and stats.faults or {})))
  print(string.format("job phase: %.1f s (%.1f jobs/s)", seconds, opts.jobs / seconds))
end

local function check_jobs(tally, stats, dir)
  local strays = temp_files(dir)
  for _, name in ipairs(strays) do print("  temporary file left behind: " .. dir .. "/" .. name) end
  tally.corrupt = tally.corrupt + #strays
  checks:check(tally.verified + tally.failed + tally.lost + tally.corrupt - #strays == opts.jobs,
    "every job was counted once")
  checks:check(tally.lost == 0, "no job lost", tally.lost .. " lost")
  checks:check(tally.corrupt == 0, "no wrong file and no temporary file left behind",
    tally.corrupt .. " corrupt, " .. #strays .. " temporary files")
  checks:check(tally.verified > 0, "jobs completed with a verified file", tally.verified .. " verified")
  local unnamed = 0
  for kind, n in pairs(tally.deletes_failed) do
    if not KINDS[kind] then unnamed = unnamed + n end
  end
  checks:check(unnamed == 0, "every delete that failed returned an error of a named kind",
    unnamed .. " otherwise")
  local injected = 0
  for _, n in pairs(type(stats.faults) == "table" and stats.faults or {}) do injected = injected + n end
  checks:check(opts.fault_rate == 0 or injected > 0, "the emulator injected faults", count(injected) .. " faults")
end

-- The emulator's memory over the job phase, from the samples taken every tenth of the jobs.
local function report_memory(samples)
  local heap = {}
  for _, stats in ipairs(samples) do
    if tonumber(stats.lua_memory_kb) then heap[#heap + 1] = stats.lua_memory_kb end
  end
  if #heap == 0 then return end
  local first, last = heap[1], heap[#heap]
  table.sort(heap)
  print(string.format("emulator Lua heap over the jobs: first %s, last %s, lowest %s, highest %s",
    mb(first), mb(last), mb(heap[1]), mb(heap[#heap])))
end

local function start_emulator()
  local emulator = process.spawn{ job_seconds = opts.job_seconds }
  local control = harness.control(emulator)
  control:must("POST", "/config", { video_bytes = opts.video_kb * 1024, record_limit = 100 })
  return emulator, control
end

-- The job phase on a client of its own: returns the tally.
local function job_phase(emulator, control, dir)
  local tally = new_tally()
  control:must("POST", "/config", { fault_rate = opts.fault_rate, fault_seed = opts.seed })
  control:must("DELETE", "/stats")
  local client = sora.new{ api_key = KEY, base_url = emulator.url, timeout = 30 }
  local start = harness.now()
  local samples = run_jobs(tally, client, control, dir)
  local seconds = harness.now() - start
  local stats = control:get("/stats") or {}
  client:close()
  report_jobs(tally, stats, seconds)
  report_memory(samples)
  check_jobs(tally, stats, dir)
  return tally
end

local function print_header()
  print(string.format("soak: seed %d, jobs %d, concurrency %d, fault rate %.2f, video %d KB, "
    .. "%d connections, %d kills (replay: make soak SEED=%d JOBS=%d FAULT_RATE=%s CONCURRENCY=%d)",
    opts.seed, opts.jobs, opts.concurrency, opts.fault_rate, opts.video_kb, opts.connections,
    opts.kills, opts.seed, opts.jobs, tostring(opts.fault_rate), opts.concurrency))
  print(_VERSION .. (rawget(_G, "jit") and (" / " .. jit.version) or ""))
end

local function main()
  opts.seed = harness.seed(opts.seed ~= "" and opts.seed or nil)
  print_header()
  local wall = harness.now()
  local dir, remove_dir = harness.tempdir("sora-soak")
  self_check(dir)
  local emulator, control = start_emulator()
  canary(emulator, control, dir)
  collectgarbage()
  local fd_before = harness.fd_count()
  print(rss_line("before"))

  local tally = job_phase(emulator, control, dir)
  collectgarbage()
  print(rss_line("after the jobs"))
  hold_connections(control, emulator.url)
  collectgarbage()
  collectgarbage()
  local fd_after = harness.fd_count()
  print(rss_line("after"))
  checks:check(fd_after == fd_before, "descriptors back to the baseline",
    string.format("%d before, %d after", fd_before, fd_after))
  checks:check(control:get("/stats") ~= nil, "the emulator still answers at the end")
  emulator:stop()

  if not opts.no_kill then
    run_child_test("kill_download", "the kill test ran to its summary")
    run_child_test("batch_kill", "the batch kill test ran to its summary")
  end
  if tally.corrupt == 0 then remove_dir() else print("corrupt files kept in " .. dir) end
  print(string.format("\nwall time %.1f s, seed %d", harness.now() - wall, opts.seed))
  print(checks:summary())
  return checks.failed == 0
end

local ok, result = xpcall(main, debug.traceback)
if not ok then
  print("soak aborted: " .. tostring(result))
  print((checks:summary():gsub("(%d+) failed$", function(n) return (n + 1) .. " failed" end)))
end
-- Closing the state runs every finaliser, so that LeakSanitizer (make soak-asan) sees what the
-- module did not free.
os.exit(ok and result and 0 or 1, true)
