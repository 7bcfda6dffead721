-- Never pay twice, proven: a journaled batch (client:generate_many with `journal`) runs in a
-- child process against an emulator that ignores Idempotency-Key (as OpenAI's API does) and
-- whose fault schedule loses create answers after making the video, delays them 1-2 s, resets
-- connections and answers 429 and 5xx. The child is killed with SIGKILL at random moments,
-- again and again, and started again with the same journal each time, until the batch is done.
--
-- Then: the emulator's count of videos made for each job (GET /__emulator/creates, by prompt)
-- must be exactly 1; every job's file must match, by size and by coreutils' sha256sum, the
-- digest the emulator serves for the job's video and the one the journal recorded; no
-- temporary file may be left; and one more run of the finished batch must send no request at
-- all (no create, no content request). Prints the seed and the figures; the last line is
-- `batch_kill: N passed, N failed`.
--
--   LUA_PATH="lua/?.lua;lua/?/init.lua;;" LUA_CPATH="build/5.4/?.so;;" lua5.4 bench/batch_kill.lua [--quick] [--jobs 200] [--kills 20] [--seed N]
local bench_dir = (arg and arg[0] or ""):match("^(.*)[/\\][^/\\]*$") or "bench"
package.path = bench_dir .. "/?.lua;" .. package.path

local socket = require "socket"
local cjson = require "cjson"
local harness = require "support.harness"

local KEY = "sk-batch-kill"
local USAGE = "usage: batch_kill.lua [--quick] [--jobs N] [--kills N] [--seed N] [--fault-rate R] "
  .. "[--concurrency N] [--window S]"

-- ---- the child: the batch, with its journal; exit 0 when every job succeeded ----------------

local function prompt_of(i) return string.format("batch soak job %d", i) end

local function child(base_url, dir, n, concurrency)
  local sora = require "sora"
  local client = sora.new{ api_key = KEY, base_url = base_url, timeout = 30 }
  local jobs = {}
  for i = 1, tonumber(n) do
    jobs[i] = { prompt = prompt_of(i), output = string.format("%s/job-%04d.mp4", dir, i),
                interval = 0.1, timeout = 120 }
  end
  -- retry_failed: a job that met one fault too many is run again (from its video, if it has one)
  local _, errors = client:generate_many(jobs, { journal = dir .. "/batch.journal",
    concurrency = tonumber(concurrency), retry_failed = true })
  local failed = 0
  for i = 1, #jobs do
    if errors[i] then
      failed = failed + 1
      io.stderr:write(string.format("job %d: %s\n", i, tostring(errors[i])))
    end
  end
  client:close()
  os.exit(failed == 0 and 0 or 1, true)
end

if arg and arg[1] == "--child" then return child(arg[2], arg[3], arg[4], arg[5]) end

-- ---- the parent -------------------------------------------------------------------------------

local process = require "sora.emulator.process"

local opts = harness.options(arg or {}, { quick = false, jobs = 0, kills = 0, seed = "",
  fault_rate = 0.15, concurrency = 25, window = 0 }, USAGE)
if opts.jobs <= 0 then opts.jobs = opts.quick and 200 or 500 end
if opts.kills <= 0 then opts.kills = opts.quick and 20 or 50 end
-- about a second: short enough that every kill lands while jobs remain (a run makes the
-- progress of its life less its start, and a resumed job's look-up pauses 1 s)
if opts.window <= 0 then opts.window = 1 end

local checks = harness.checks("batch_kill")
local lua = arg[-1] or "lua5.4"
local FINAL_RUNS = 5 -- runs to the end allowed after the kills (a run may end with failed jobs)

local function child_command(base_url, dir)
  return string.format("%s %s --child %s %s %d %d", harness.shell_quote(lua),
    harness.shell_quote(bench_dir .. "/batch_kill.lua"), harness.shell_quote(base_url),
    harness.shell_quote(dir), opts.jobs, opts.concurrency)
end

local function wait_gone(pid, limit)
  local deadline = harness.now() + limit
  while harness.alive(pid) and harness.now() < deadline do socket.sleep(0.005) end
  return not harness.alive(pid)
end

-- One run killed after a random delay in [0.05 s, window]; returns the delay and whether the
-- run had already ended by itself.
local function killed_run(base_url, dir)
  local pidfile = dir .. "/child.pid"
  os.execute(string.format("%s >>%s 2>&1 </dev/null & echo $! >%s", child_command(base_url, dir),
    harness.shell_quote(dir .. "/child.log"), harness.shell_quote(pidfile)))
  local f = assert(io.open(pidfile))
  local pid = tonumber(f:read("*a"):match("%d+"))
  f:close()
  os.remove(pidfile)
  local delay = 0.05 + math.random() * (opts.window - 0.05)
  socket.sleep(delay)
  local ended = not harness.alive(pid)
  os.execute("kill -KILL " .. pid .. " 2>/dev/null")
  assert(wait_gone(pid, 10), "the child survived SIGKILL")
  return delay, ended
end

local function run_to_end(base_url, dir)
  local ok = os.execute(string.format("%s >>%s 2>&1 </dev/null", child_command(base_url, dir),
    harness.shell_quote(dir .. "/child.log")))
  return ok == true or ok == 0
end

-- The journal's records, and what it says about the jobs: the done record of each output
-- path, how many jobs were sent more than once (resumed or retried), the lines ignored.
local function read_journal(path)
  local f = assert(io.open(path, "rb"))
  local text = f:read("*a")
  f:close()
  local done, sends, ignored = {}, {}, 0
  for line in text:gmatch("[^\n]+") do
    local ok, r = pcall(cjson.decode, line)
    if not ok then
      ignored = ignored + 1
    elseif r.event == "done" then
      done[r.file] = r
    elseif r.event == "send" then
      sends[r.job] = (sends[r.job] or 0) + 1
    end
  end
  local resent = 0
  for _, n in pairs(sends) do if n > 1 then resent = resent + 1 end end
  return done, resent, ignored, #text
end

local function made_per_prompt(control)
  local made = {}
  for _, entry in ipairs(control:must("GET", "/creates")) do
    if entry.prompt then made[entry.prompt] = (made[entry.prompt] or 0) + entry.made end
  end
  return made
end

local function temp_files(dir)
  local found = 0
  for _, name in ipairs(harness.ls(dir)) do
    if name:find("%.sora%-") then found = found + 1 end
  end
  return found
end

-- Every job made exactly once; returns how many were not, and the total made.
local function check_made(control)
  local made, wrong, total = made_per_prompt(control), 0, 0
  for i = 1, opts.jobs do
    local n = made[prompt_of(i)] or 0
    total = total + n
    if n ~= 1 then
      wrong = wrong + 1
      if wrong <= 10 then print(string.format("  job %d: %d videos made", i, n)) end
    end
  end
  checks:check(wrong == 0, string.format("the emulator made exactly 1 video for each of the %d jobs",
    opts.jobs), string.format("%d jobs with another count; %d videos made in all", wrong, total))
  return total
end

-- Every file: its size and sha256sum against the emulator's digest and the journal's record.
local function check_files(control, dir, done)
  local verified, problems = 0, 0
  for i = 1, opts.jobs do
    local path = string.format("%s/job-%04d.mp4", dir, i)
    local record = done[path]
    local digest = record and control:digest(record.video)
    local verdict = digest and harness.verify_file(path, digest) or "no done record"
    if verdict == "ok" and digest.sha256 == record.sha256 and digest.bytes == record.bytes then
      verified = verified + 1
    else
      problems = problems + 1
      if problems <= 10 then print(string.format("  %s: %s", path, tostring(verdict))) end
    end
  end
  checks:check(problems == 0, "every job's file verified by size and SHA-256 (sha256sum) against "
    .. "the emulator's digest and the journal's record", string.format("%d verified, %d not",
      verified, problems))
  return verified
end

-- One more run of the finished batch: no request may reach /v1.
local function check_rerun(control, base_url, dir)
  control:must("DELETE", "/requests")
  local start = harness.now()
  local ok = run_to_end(base_url, dir)
  local seconds = harness.now() - start
  local sent = 0
  for _, r in ipairs(control:must("GET", "/requests")) do
    if tostring(r.path):find("^/v1/") then sent = sent + 1 end
  end
  checks:check(ok and sent == 0, "a rerun of the finished batch sent no request (no create, no "
    .. "content request)", string.format("exit %s, %d requests", tostring(ok), sent))
  return seconds
end

local function main()
  opts.seed = harness.seed(opts.seed ~= "" and opts.seed or nil)
  math.randomseed(opts.seed)
  print(string.format("batch_kill: seed %d, jobs %d, kills %d, window %.1f s, fault rate %.2f, "
    .. "concurrency %d", opts.seed, opts.jobs, opts.kills, opts.window, opts.fault_rate, opts.concurrency))
  local dir, remove_dir = harness.tempdir("sora-batch-kill")
  local emulator = process.spawn{ job_seconds = 1, idempotency = false, record_limit = 100000 }
  local control = harness.control(emulator)
  control:must("POST", "/config", { video_bytes = 64 * 1024, fault_rate = opts.fault_rate,
    fault_seed = opts.seed, fault_kinds = { "answer_lost", "answer_delayed", "reset", "rate_limit",
    "server_error" } })
  local start, ended_first = harness.now(), 0
  for k = 1, opts.kills do
    local delay, ended = killed_run(emulator.url, dir)
    if ended then ended_first = ended_first + 1 end
    if k % 5 == 0 or k == opts.kills then
      print(string.format("  kill %2d at %.2f s%s", k, delay, ended and " (the run had ended)" or ""))
    end
  end
  local done_by_kills = 0
  for _ in pairs((read_journal(dir .. "/batch.journal"))) do done_by_kills = done_by_kills + 1 end
  local runs, finished = 0, false
  while runs < FINAL_RUNS and not finished do
    runs = runs + 1
    finished = run_to_end(emulator.url, dir)
  end
  local batch_seconds = harness.now() - start
  checks:check(finished, "the batch finished after the kills", string.format("%d runs to the end", runs))
  local stats = control:must("GET", "/stats")
  control:must("POST", "/config", { fault_rate = 0 })
  local done, resent, ignored, journal_bytes = read_journal(dir .. "/batch.journal")
  local total = check_made(control)
  local verified = check_files(control, dir, done)
  local strays = temp_files(dir)
  checks:check(strays == 0, "no temporary file left", strays .. " left")
  local rerun_seconds = check_rerun(control, emulator.url, dir)
  local faults = {}
  for kind, n in pairs(type(stats.faults) == "table" and stats.faults or {}) do
    faults[#faults + 1] = kind .. " " .. n
  end
  table.sort(faults)
  print(string.format("batch: %d jobs, %d kills (%d after the run had ended; %d jobs done when "
    .. "the kills ended), then %d run(s) to the end; %.1f s in all", opts.jobs, opts.kills,
    ended_first, done_by_kills, runs, batch_seconds))
  print(string.format("videos made %d, files verified %d, jobs sent more than once (resumed or "
    .. "retried) %d, journal %d bytes (%d torn line(s) ignored), rerun of the finished batch %.2f s",
    total, verified, resent, journal_bytes, ignored, rerun_seconds))
  print(string.format("emulator: %s requests; faults injected: %s", tostring(stats.requests),
    #faults > 0 and table.concat(faults, ", ") or "none"))
  emulator:stop()
  if checks.failed == 0 then remove_dir() else print("kept for inspection: " .. dir) end
  print(checks:summary())
  return checks.failed == 0
end

local ok, result = xpcall(main, debug.traceback)
if not ok then
  print("batch_kill aborted: " .. tostring(result))
  print((checks:summary():gsub("(%d+) failed$", function(n) return (n + 1) .. " failed" end)))
end
os.exit(ok and result and 0 or 1, true)
