-- make bench: sora against the limit (bench/limit.c), the curl command line and the official
-- Node SDK, in one run, on one machine, against servers it starts itself and stops by PID.
--
-- Every case runs each contender in a process of its own, interleaved: a round runs every
-- contender once, the order rotated from round to round, and the figures compared are the
-- ratios taken within each round (the machine's load drifts between rounds, less within one),
-- then their median over the rounds. Prints figures and writes bench/RESULTS.md; asserts no
-- timing (a contender that fails, or answers wrongly, fails the run).
--
--   lua5.4 bench/run.lua [--quick] [--rounds N] [--out FILE] [--only CASE]
-- --only runs one case (retrieve, list, download, tls, step, rss, startup, jobs, callgrind),
-- whatever the run's size would skip, and prints it; RESULTS.md is left as it is.
-- Expects build/5.4 and build/5.1 modules and build/bench/limit (the Makefile's bench target).
-- Node is skipped when `node` or the npm package cannot be had (installed under build/npm).
local socket = require "socket"
package.path = "bench/?.lua;" .. package.path
local nginx = require "support.nginx"

local MiB = 1024 * 1024
local QUICK, ROUNDS, OUT, ONLY = false, nil, "bench/RESULTS.md", nil
do
  local i = 1
  while arg[i] do
    if arg[i] == "--quick" then QUICK = true
    elseif arg[i] == "--rounds" then i = i + 1; ROUNDS = tonumber(arg[i])
    elseif arg[i] == "--out" then i = i + 1; OUT = arg[i]
    elseif arg[i] == "--only" then i = i + 1; ONLY = arg[i]
    else error("run.lua: unknown argument " .. arg[i], 0) end
    i = i + 1
  end
end

-- Sizes of the full run (< 10 minutes on 2 shared cores) and of QUICK=1 (< 2 minutes).
local P = QUICK and {
  rounds = 5, file_rounds = 5, retrieves = 2000, sink = 100 * MiB, tasks = 64, per_task = 5, tls_rounds = 1,
  rss = 10000, step_mb = 300, startup_reps = 5, node = true, callgrind = false, jobs = false,
} or {
  rounds = 5, file_rounds = 15, retrieves = 5000, sink = 1024 * MiB, tasks = 64, per_task = 50, tls_rounds = 3,
  rss = 100000, step_mb = 300, startup_reps = 10, node = true, callgrind = true, jobs = true,
}
P.rounds = ROUNDS or P.rounds
-- writing a file is the noisiest case on a VM (the page cache's memory comes and goes with the
-- host's balloon: docs/performance.md): three times the rounds
P.file_rounds = ROUNDS or P.file_rounds

local now = socket.gettime
local ENV54 = 'LUA_PATH="lua/?.lua;lua/?/init.lua;;" LUA_CPATH="build/5.4/?.so;;"'
local ENVJIT = 'LUA_PATH="lua/?.lua;lua/?/init.lua;;" LUA_CPATH="build/5.1/?.so;;"'
local LIMIT = "build/bench/limit"
local NPM_DIR = "build/npm"

local report = {} -- lines of RESULTS.md
local function out(fmt, ...)
  local line = select("#", ...) > 0 and string.format(fmt, ...) or fmt
  print(line)
  report[#report + 1] = line
end

local function q(s) return "'" .. tostring(s):gsub("'", "'\\''") .. "'" end

local function capture(cmd)
  local p = assert(io.popen(cmd .. " 2>&1"))
  local text = p:read("*a")
  local ok, _, code = p:close()
  return text, (ok == true or ok == 0) and 0 or (code or 1)
end

-- Runs a contender's command; returns its figures (the last key=value line) and the wall time.
local function run(cmd)
  local start = now()
  local text, code = capture(cmd)
  local wall = now() - start
  if code ~= 0 then error("bench: failed (" .. code .. "): " .. cmd .. "\n" .. text, 0) end
  local figures, last = { wall = wall }, nil
  for line in text:gmatch("[^\n]+") do
    if line:match("^[%w_]+=") then last = line end
  end
  for k, v in (last or ""):gmatch("([%w_]+)=(%S+)") do figures[k] = tonumber(v) or v end
  return figures
end

local function median(list)
  local sorted = {}
  for i, v in ipairs(list) do sorted[i] = v end
  table.sort(sorted)
  local n = #sorted
  if n == 0 then return 0 / 0 end
  if n % 2 == 1 then return sorted[(n + 1) / 2] end
  return (sorted[n / 2] + sorted[n / 2 + 1]) / 2
end

-- ---- the machine, the contenders ----------------------------------------------------------

local function first_line(cmd)
  return (capture(cmd):match("[^\n]*") or "?")
end

local node_sdk -- the path of the SDK's entry point, or nil
local function find_node()
  if not P.node or capture("command -v node") == "" then return nil end
  local entry = NPM_DIR .. "/node_modules/openai/index.mjs"
  if not io.open(entry) then
    os.execute("mkdir -p " .. NPM_DIR)
    capture("cd " .. NPM_DIR .. " && npm install --no-audit --no-fund --silent openai")
  end
  if not io.open(entry) then return nil end
  return os.getenv("PWD") .. "/" .. entry
end

local function machine()
  out("# sora benchmark results")
  out("")
  out("Written by `make bench%s` (bench/run.lua) on %s UTC.", QUICK and " QUICK=1" or "", os.date("!%Y-%m-%d %H:%M"))
  out("Each contender runs in its own process; a round runs every contender once, in an order")
  out("rotated from round to round, after one discarded warm-up run of each; a ratio is taken")
  out("within each round, and the median over %d rounds is shown (times are medians too).", P.rounds)
  out("`limit` is bench/limit.c: one reused libcurl easy handle, CURLOPT_NOSIGNAL, a 128 KiB")
  out("receive buffer, each body decoded by lua-cjson through the Lua C API. The machine is shared:")
  out("read the ratios, which are taken within rounds, more than the absolute figures.")
  out("")
  out("| machine | |")
  out("|---|---|")
  out("| CPU | %s |", first_line("grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//'"))
  out("| cores | %s (load average at start: %s) |", first_line("nproc"), first_line("cut -d' ' -f1-3 /proc/loadavg"))
  out("| kernel | %s |", first_line("uname -sr"))
  out("| libcurl | %s |", first_line("curl --version"))
  out("| nginx | %s |", first_line("nginx -v"))
  out("| Lua | %s; %s |", first_line("lua5.4 -v"), first_line("luajit -v"))
  out("| Node | %s, npm openai %s |", node_sdk and first_line("node --version") or "not run",
      node_sdk and first_line("node -p \"require('./" .. NPM_DIR .. "/node_modules/openai/package.json').version\"") or "-")
  out("| sora | %s |", first_line("git rev-parse --short HEAD") .. (capture("git status --porcelain csrc lua") == "" and "" or " (with uncommitted changes)"))
  out("")
end

-- ---- rounds --------------------------------------------------------------------------------

-- contenders: list of { name, cmd = function(round) -> command }. Returns figures[name][round].
local function rounds(contenders, n)
  local figures = {}
  for _, c in ipairs(contenders) do
    figures[c.name] = {}
    local warm = run(c.cmd(0)) -- discarded: the page cache, nginx's and the disk's first time
    if c.after then c.after(warm) end
  end
  for r = 1, n or P.rounds do
    for k = 0, #contenders - 1 do
      local c = contenders[(r - 1 + k) % #contenders + 1]
      figures[c.name][r] = run(c.cmd(r))
      if c.after then c.after(figures[c.name][r]) end
    end
  end
  return figures
end

-- Median over rounds of fn(figures of round r).
local function per_round(figures, fn)
  local values = {}
  for r = 1, #figures[next(figures)] do values[r] = fn(function(name) return figures[name][r] end) end
  return median(values)
end

local function time_of(f) return f.seconds or f.wall end

-- Issue 18's targets, noted by the cases that measure them and listed at the end of the run.
local targets = {}
local function target(case, goal, figure, met, format)
  targets[#targets + 1] = { case = case, goal = goal, figure = (format or "%.2fx"):format(figure), met = met }
end

local function list_targets()
  out("## Issue 18's targets")
  out("")
  out("| case | target | this run | |")
  out("|---|---|---|---|")
  for _, t in ipairs(targets) do
    out("| %s | %s | %s | %s |", t.case, t.goal, t.figure, t.met and "met" or "missed")
  end
  out("")
end

local function table_of(title, figures, names, unit_fn, unit)
  out("### %s", title)
  out("")
  out("| contender | median time | %s | time ÷ limit | speed × limit |", unit)
  out("|---|---|---|---|---|")
  for _, name in ipairs(names) do
    if figures[name] then
      local t = per_round(figures, function(f) return time_of(f(name)) end)
      local ratio = per_round(figures, function(f) return time_of(f(name)) / time_of(f("limit")) end)
      local speed = per_round(figures, function(f) return time_of(f("limit")) / time_of(f(name)) end)
      out("| %s | %.3f s | %s | %.2f | %.2f |", name, t, unit_fn(t), ratio, speed)
    end
  end
  out("")
end

-- ---- cases ---------------------------------------------------------------------------------

local S -- the nginx server
local TMP -- its directory, and the downloads'

local function sora54(args) return ENV54 .. " lua5.4 bench/sora_case.lua " .. args end
local function sorajit(args) return ENVJIT .. " luajit bench/sora_case.lua " .. args end
local function node(args) return "OPENAI_SDK_PATH=" .. q(node_sdk) .. " node bench/node_sdk.mjs " .. args end

local function case_retrieve()
  local base, n = S:url("http"), P.retrieves
  local url = base .. "/videos/video_bench"
  local contenders = {
    { name = "limit", cmd = function() return string.format("%s retrieve %s %d", LIMIT, url, n) end },
    { name = "limit, sora's headers", cmd = function()
      return string.format("LIMIT_HEADERS=sora %s retrieve %s %d", LIMIT, url, n)
    end },
    { name = "curl CLI", cmd = function()
      return string.format("curl -s -H 'Authorization: Bearer sk-bench' %s >/dev/null", q(url .. "?n=[1-" .. n .. "]"))
    end },
    { name = "sora 5.4", cmd = function() return sora54(string.format("retrieve %s video_bench %d", base, n)) end },
    { name = "sora LuaJIT", cmd = function() return sorajit(string.format("retrieve %s video_bench %d", base, n)) end },
  }
  if node_sdk then
    contenders[#contenders + 1] = { name = "Node SDK", cmd = function() return node(string.format("retrieve %s video_bench %d", base, n)) end }
  end
  local f = rounds(contenders)
  table_of(string.format("%d sequential retrieves (plain HTTP/1.1, one connection)", n), f,
    { "limit", "limit, sora's headers", "curl CLI", "sora 5.4", "sora LuaJIT", "Node SDK" },
    function(t) return string.format("%.0f req/s", n / t) end, "rate")
  out("The curl CLI's time is its whole process (start included); the others time their loop.")
  out("`limit, sora's headers` sends the `Accept` and `User-Agent` headers sora sends (as the")
  out("official SDKs do) besides the key. Speed × that limit, within rounds:")
  for _, name in ipairs({ "sora 5.4", "sora LuaJIT" }) do
    local bare = per_round(f, function(g) return time_of(g("limit")) / time_of(g(name)) end)
    local same = per_round(f, function(g) return time_of(g("limit, sora's headers")) / time_of(g(name)) end)
    out("%s: %.2fx.", name, same)
    target("retrieves, " .. name, ">= 1.0x the limit with sora's headers", same, same >= 1.0)
    target("retrieves, " .. name, ">= 0.9x the bare limit", bare, bare >= 0.9)
  end
  if f["Node SDK"] then
    out("Node SDK ÷ sora 5.4 (time, within rounds): %.1fx.",
      per_round(f, function(g) return time_of(g("Node SDK")) / time_of(g("sora 5.4")) end))
  end
  out("")
end

local function case_list()
  local base = S:url("http")
  local contenders = {
    { name = "limit", cmd = function() return LIMIT .. " list " .. q(base .. "/videos?limit=100") end },
    { name = "sora 5.4", cmd = function() return sora54("list " .. base) end },
    { name = "sora LuaJIT", cmd = function() return sorajit("list " .. base) end },
  }
  if node_sdk then
    contenders[#contenders + 1] = { name = "Node SDK", cmd = function() return node("list " .. base) end }
  end
  for _, c in ipairs(contenders) do
    c.after = function(fig) assert(fig.count == 10000, c.name .. " listed " .. tostring(fig.count) .. " videos") end
  end
  local f = rounds(contenders)
  table_of("Iterate 10,000 videos (100 pages of 100)", f, { "limit", "sora 5.4", "sora LuaJIT", "Node SDK" },
    function(t) return string.format("%.2f µs/video", t / 10000 * 1e6) end, "per video")
  for _, name in ipairs({ "sora 5.4", "sora LuaJIT" }) do
    local ratio = per_round(f, function(g) return time_of(g(name)) / time_of(g("limit")) end)
    target("10,000 videos listed, " .. name, "<= 1.15x the limit's time", ratio, ratio <= 1.15)
  end
  if f["Node SDK"] then
    out("Node SDK ÷ sora 5.4 (time, within rounds): %.1fx.",
      per_round(f, function(g) return time_of(g("Node SDK")) / time_of(g("sora 5.4")) end))
    out("")
  end
end

-- A large body into a Lua sink function, then to a file; peak RSS of each process. The limit
-- calls a Lua function with each chunk too: the same work as a sink, less the module.
local function case_download(name, bytes)
  local base = S:url("http")
  local url = base .. "/videos/" .. name .. "/content"
  local path = TMP .. "/out.mp4"
  local function remove() os.remove(path) end
  local sink = rounds({
    { name = "limit", cmd = function() return LIMIT .. " sink " .. url end },
    { name = "curl CLI", cmd = function() return "curl -s -o /dev/null " .. url end },
    { name = "sora 5.4", cmd = function() return sora54("sink " .. base .. " " .. name) end },
    { name = "sora LuaJIT", cmd = function() return sorajit("sink " .. base .. " " .. name) end },
  })
  local file = rounds({
    { name = "limit", cmd = function() return LIMIT .. " file " .. url .. " " .. path end, after = remove },
    { name = "curl CLI", cmd = function() return "curl -s -o " .. path .. " " .. url end, after = remove },
    { name = "sora 5.4", cmd = function() return sora54("file " .. base .. " " .. name .. " " .. path) end, after = remove },
    { name = "sora LuaJIT", cmd = function() return sorajit("file " .. base .. " " .. name .. " " .. path) end, after = remove },
  }, P.file_rounds)
  local mib = bytes / MiB
  local rate = function(t) return string.format("%.0f MiB/s", mib / t) end
  local names = { "limit", "curl CLI", "sora 5.4", "sora LuaJIT" }
  table_of(string.format("%d MiB into a Lua sink (a function that counts each chunk and drops it)", mib), sink, names, rate, "rate")
  table_of(string.format("%d MiB to a file (`path`; limit: stdio writing 16 KiB at a time to a .part file, "
    .. "renamed; %d rounds)", mib, P.file_rounds), file, names, rate, "rate")
  out("Peak RSS (VmHWM) at %d MiB, and over the limit's, within rounds:", mib)
  out("")
  out("| contender | sink | sink − limit | file | file − limit |")
  out("|---|---|---|---|---|")
  for _, n in ipairs({ "limit", "sora 5.4", "sora LuaJIT" }) do
    local function hwm(f) return per_round(f, function(g) return g(n).hwm_kb end) end
    local function over(f) return per_round(f, function(g) return g(n).hwm_kb - g("limit").hwm_kb end) end
    out("| %s | %.1f MiB | %+.2f MiB | %.1f MiB | %+.2f MiB |", n, hwm(sink) / 1024, over(sink) / 1024,
      hwm(file) / 1024, over(file) / 1024)
  end
  out("(curl CLI's whole process is not comparable and is left out.)")
  out("")
  return sink, file
end

-- 64 tasks at once over TLS, HTTP/1.1 and HTTP/2: connections counted in nginx's log.
local function case_tls_tasks()
  out("### %d concurrent tasks × %d retrieves over TLS", P.tasks, P.per_task)
  out("")
  out("| round | server | connections | protocol | time | req/s |")
  out("|---|---|---|---|---|---|")
  local times = { h1 = {}, h2 = {} }
  for r = 1, P.tls_rounds do
    for _, kind in ipairs(r % 2 == 1 and { "h1", "h2" } or { "h2", "h1" }) do
      local from = #S:log_lines(kind)
      local f = run(sora54(string.format("tasks %s video_bench %d %d", S:url(kind), P.tasks, P.per_task)))
      local conns, proto = S:connections_since(kind, from)
      times[kind][r] = f.seconds
      out("| %d | %s | %d | %s | %.3f s | %.0f |", r, kind == "h1" and "HTTP/1.1" or "HTTP/2", conns, proto or "?",
        f.seconds, P.tasks * P.per_task / f.seconds)
    end
  end
  out("")
  out("Median time: HTTP/1.1 %.3f s, HTTP/2 %.3f s (h2 ÷ h1 %.2f).", median(times.h1), median(times.h2),
    median(times.h2) / median(times.h1))
  out("")
end

local function case_rss()
  out("### %d requests on one client", P.rss)
  out("")
  out("| Lua | RSS after 1,000 | RSS after %d | difference | time |", P.rss)
  out("|---|---|---|---|---|")
  for _, c in ipairs({ { "sora 5.4", sora54 }, { "sora LuaJIT", sorajit } }) do
    local f = run(c[2](string.format("rss %s video_bench %d", S:url("http"), P.rss)))
    out("| %s | %.2f MiB | %.2f MiB | %+.3f MiB | %.2f s |", c[1], f.rss_1k_kb / 1024, f.rss_end_kb / 1024,
      (f.rss_end_kb - f.rss_1k_kb) / 1024, f.seconds)
  end
  out("")
end

local function case_step()
  out("### step(0) with 32 live transfers: 31 tasks polling, one %d MB download to a new file", P.step_mb)
  out("")
  out("The 31 tasks each retrieve a video every 5 ms (as tasks waiting for jobs poll them, staggered")
  out("over the 5 ms as jobs started at different times are); the host")
  out("calls step(0) in a tight loop until the download has ended (written, closed, renamed). The")
  out("first step, which starts the 32 requests, is shown apart. CPU: the process's CPU time in the")
  out("step; a step far longer than its CPU time was waiting (preempted, or blocked in the kernel).")
  out("")
  out("| Lua | steps | median | p99 | max (its CPU) | CPU p99 | CPU max | the last step | first step |")
  out("|---|---|---|---|---|---|---|---|---|")
  for _, c in ipairs({ { "sora 5.4", sora54 }, { "sora LuaJIT", sorajit } }) do
    local path = TMP .. "/step.mp4"
    local f = run(c[2](string.format("step %s video_bench big_step %s", S:url("http"), path)))
    os.remove(path)
    out("| %s | %d | %.3f ms | %.3f ms | %.3f ms (%.3f) | %.3f ms | %.3f ms | %.3f ms | %.3f ms |", c[1], f.count,
      f.p50_ms, f.p99_ms, f.max_ms, f.longest_cpu_ms, f.cpu_p99_ms, f.cpu_max_ms, f.end_ms, f.first_ms)
  end
  out("")
end

local function case_startup()
  out("### `require \"sora\"` + `sora.new()`")
  out("")
  local contenders = {
    { name = "sora 5.4", cmd = function() return sora54("startup") end },
    { name = "sora LuaJIT", cmd = function() return sorajit("startup") end },
    { name = "limit", cmd = function() return LIMIT .. " startup" end }, -- curl_global_init alone
  }
  if node_sdk then
    contenders[#contenders + 1] = { name = "Node SDK", cmd = function() return node("startup") end }
  end
  local f = rounds(contenders, P.startup_reps)
  local function med(name, key) return per_round(f, function(g) return g(name)[key] or 0 end) end
  local function own(name) return per_round(f, function(g) return g(name).own_ms - g("limit").startup_ms end) end
  out("In-process, medians of %d fresh processes (LuaSocket's clock loaded first). sora.new() starts", P.startup_reps)
  out("libcurl (curl_global_init, its TLS library's start: %.2f ms timed alone by the limit, within", med("limit", "startup_ms"))
  out("rounds); sora's own part is require + new less that.")
  out("")
  out("| contender | libcurl (dlopen) | lua-cjson | require \"sora\" | sora.new() | require + new | sora's own part | total |")
  out("|---|---|---|---|---|---|---|---|")
  for _, n in ipairs({ "sora 5.4", "sora LuaJIT" }) do
    out("| %s | %.2f ms | %.2f ms | %.2f ms | %.3f ms | %.2f ms | %.2f ms | %.2f ms |", n, med(n, "libcurl_ms"),
      med(n, "cjson_ms"), med(n, "require_ms"), med(n, "new_ms"), med(n, "own_ms"), own(n), med(n, "total_ms"))
    target("require + new, " .. n, "sora's own part <= 1.0 ms", own(n), own(n) <= 1.0, "%.2f ms")
  end
  if node_sdk then
    out("| Node SDK | - | - | import 'openai' %.2f ms | new OpenAI() %.3f ms | - | - | %.2f ms |", med("Node SDK", "import_ms"),
      med("Node SDK", "new_ms"), med("Node SDK", "total_ms"))
  end
  out("")
  -- whole processes: the interpreter alone, then with the module and a client
  local function wall(cmd)
    local t = {}
    for i = 1, P.startup_reps do t[i] = run(cmd).wall end
    return median(t)
  end
  local bare54 = wall("lua5.4 -e ''")
  local full54 = wall(ENV54 .. " lua5.4 -e 'require(\"sora\").new{ api_key = \"sk-bench\", base_url = \"http://127.0.0.1:9/v1\" }:close()'")
  local barejit = wall("luajit -e ''")
  local fulljit = wall(ENVJIT .. " luajit -e 'require(\"sora\").new{ api_key = \"sk-bench\", base_url = \"http://127.0.0.1:9/v1\" }:close()'")
  out("Whole process (fork, exec, the interpreter, the module, a client, exit), medians of %d:", P.startup_reps)
  out("lua5.4 alone %.1f ms, with sora %.1f ms (+%.1f ms); luajit alone %.1f ms, with sora %.1f ms (+%.1f ms).",
    bare54 * 1000, full54 * 1000, (full54 - bare54) * 1000, barejit * 1000, fulljit * 1000, (fulljit - barejit) * 1000)
  local libs = first_line("ldd build/5.4/sora/core.so | wc -l")
  out("The module links %s shared libraries (ldd: libcurl and what it needs: TLS, HTTP/2, IDN, LDAP, SSH...).", libs)
  out("")
end

local function case_jobs()
  out("### 64 jobs (create, wait, download) through tasks against the emulator, and one alone")
  out("")
  out("```")
  local text, code = capture(ENV54 .. " lua5.4 bench/step_latency.lua")
  if code ~= 0 then error("bench: bench/step_latency.lua failed:\n" .. text, 0) end
  for line in text:gmatch("[^\n]+") do out(line) end
  out("```")
  out("")
end

-- Instructions per request and per listed video: callgrind's totals of a short and a long run,
-- differenced, so that start-up is left out.
local function callgrind_total(cmd, options)
  local file = TMP .. "/callgrind.out"
  -- the environment's assignments (NAME=value or NAME="value") stay in front of valgrind
  local env, program = "", cmd
  while true do
    local assignment, rest = program:match('^(%u[%w_]*="[^"]*" )(.*)$')
    if not assignment then assignment, rest = program:match('^(%u[%w_]*=%S+ )(.*)$') end
    if not assignment then break end
    env, program = env .. assignment, rest
  end
  local valgrind = "valgrind --tool=callgrind " .. (options or "") .. " --callgrind-out-file=" .. file .. " "
  local text, code = capture(env .. valgrind .. program)
  if code ~= 0 then error("bench: callgrind failed: " .. cmd .. "\n" .. text, 0) end
  local total = text:match("Collected : (%d+)")
  os.remove(file)
  return tonumber(total)
end

-- The module as it was before issue 18's work (BENCH_BEFORE, a commit of this repository's
-- history), built under TMP from `git archive`, for the instruction counts' "before" rows:
-- returns its LUA_PATH/LUA_CPATH prefixes for 5.4 and LuaJIT, or nil and why (a shallow clone).
local BEFORE = os.getenv("BENCH_BEFORE") or "7358569"
local function build_before()
  local dir = TMP .. "/before"
  local _, missing = capture("git cat-file -e " .. q(BEFORE .. "^{commit}"))
  if missing ~= 0 then return nil, "commit " .. BEFORE .. " is not in this clone" end
  local text, code = capture(string.format("mkdir -p %s && git archive %s | tar -x -C %s && "
    .. "make -C %s LUA_VERSION=5.4 && make -C %s LUA_VERSION=5.1", q(dir), q(BEFORE), q(dir), q(dir), q(dir)))
  if code ~= 0 then error("bench: building " .. BEFORE .. " failed:\n" .. text, 0) end
  local function env(build)
    return string.format('LUA_PATH="%s/lua/?.lua;%s/lua/?/init.lua;;" LUA_CPATH="%s/build/%s/?.so;;"',
      dir, dir, dir, build)
  end
  return { env54 = env("5.4"), envjit = env("5.1") }
end

local function case_callgrind()
  if capture("command -v valgrind") == "" then return end
  local past, why_not = build_before()
  local base = S:url("http")
  local url = base .. "/videos/video_bench"
  out("### Instructions (callgrind, Ir): per retrieve and per listed video")
  out("")
  out("| contender | per retrieve | per listed video |")
  out("|---|---|---|")
  local rows = {
    { "limit", function(n) return string.format("%s retrieve %s %d", LIMIT, url, n) end,
      function() return LIMIT .. " list " .. q(base .. "/videos?limit=100") end },
    { "limit, with sora's Accept and User-Agent", function(n)
        return string.format("LIMIT_HEADERS=sora %s retrieve %s %d", LIMIT, url, n) end,
      function() return "LIMIT_HEADERS=sora " .. LIMIT .. " list " .. q(base .. "/videos?limit=100") end },
    { "sora 5.4", function(n) return sora54(string.format("retrieve %s video_bench %d", base, n)) end,
      function() return sora54("list " .. base) end },
    { "sora LuaJIT", function(n) return sorajit(string.format("retrieve %s video_bench %d", base, n)) end,
      function() return sorajit("list " .. base) end },
  }
  if past then
    for _, c in ipairs({ { "5.4", past.env54 .. " lua5.4" }, { "LuaJIT", past.envjit .. " luajit" } }) do
      local function case(args) return c[2] .. " bench/sora_case.lua " .. args end
      rows[#rows + 1] = { "sora " .. c[1] .. ", before issue 18 (" .. BEFORE .. ")",
        function(n) return case(string.format("retrieve %s video_bench %d", base, n)) end,
        function() return case("list " .. base) end }
    end
  end
  for _, row in ipairs(rows) do
    -- 100 and 600: the runs' own variation (hash seeds, the collector's timing: ±80k Ir) is
    -- spread over 500 retrieves
    local short, long = callgrind_total(row[2](100)), callgrind_total(row[2](600))
    local list = callgrind_total(row[3]())
    local per_retrieve = (long - short) / 500
    out("| %s | %.0f | %.0f |", row[1], per_retrieve, (list - (short - 100 * per_retrieve)) / 10000)
  end
  out("")
  out("Per retrieve: (Ir of 600 retrieves − Ir of 100) ÷ 500. Per listed video: (Ir of the 10,000-video")
  out("list − Ir of a run with no requests, estimated from the retrieve runs) ÷ 10,000. The second")
  out("row is the limit sending the two headers more that sora sends (as the official SDKs do):")
  out("what libcurl's handling of them costs, which sora pays on every request.")
  if past then
    out("The \"before\" rows are this repository at %s, built from `git archive` in this run", BEFORE)
    out("(BENCH_BEFORE=REF names another commit).")
  else
    out("No \"before\" rows: %s.", why_not)
  end
  out("")
  -- require + new: a script that loads libcurl and lua-cjson, then one that goes on to require
  -- sora and make a client; what curl_global_init (libcurl's start) costs in the second is
  -- libcurl's, not sora's, and so is OPENSSL_cleanup, the exit handler it leaves behind
  -- (0.5 M with OpenSSL 3), which the timed figures do not see
  local libs_only = 'require "socket"; package.loadlib("libcurl.so.4", "*"); require "cjson"'
  local with_sora = libs_only .. '; require("sora").new{ api_key = "sk-bench", base_url = "http://127.0.0.1:9/v1" }:close()'
  out("`require \"sora\"` + `sora.new()`, after libcurl and lua-cjson are loaded (Ir):")
  out("")
  out("| contender | libcurl's start (curl_global_init) | its TLS library's cleanup at exit | sora's own part |")
  out("|---|---|---|---|")
  local startups = { { "sora 5.4", ENV54 .. " lua5.4" }, { "sora LuaJIT", ENVJIT .. " luajit" } }
  if past then
    startups[3] = { "sora 5.4, before issue 18", past.env54 .. " lua5.4" }
    startups[4] = { "sora LuaJIT, before issue 18", past.envjit .. " luajit" }
  end
  for _, row in ipairs(startups) do
    local loaded, full = callgrind_total(row[2] .. " -e " .. q(libs_only)), callgrind_total(row[2] .. " -e " .. q(with_sora))
    local curl = callgrind_total(row[2] .. " -e " .. q(with_sora), "--toggle-collect=curl_global_init")
    local cleanup = callgrind_total(row[2] .. " -e " .. q(with_sora), "--toggle-collect=OPENSSL_cleanup")
    out("| %s | %.0f | %.0f | %.0f |", row[1], curl, cleanup, full - loaded - curl - cleanup)
  end
  out("")
end

-- ---- main ----------------------------------------------------------------------------------

local function main()
  local started = now()
  local needs_node = { retrieve = true, list = true, startup = true }
  if not ONLY or needs_node[ONLY] then node_sdk = find_node() end
  TMP = first_line("mktemp -d /tmp/sora-bench.XXXXXX")
  local big = { ["big_" .. math.floor(P.sink / MiB)] = P.sink, big_step = P.step_mb * 1000 * 1000 }
  if not QUICK then big.big_100 = 100 * MiB end
  if ONLY and ONLY ~= "download" and ONLY ~= "step" then big = {} end -- only they read the big files
  S = nginx.start(TMP, big)
  local ok, err = pcall(function()
    if ONLY then
      local cases = { retrieve = case_retrieve, list = case_list, tls = case_tls_tasks, step = case_step, rss = case_rss,
        startup = case_startup, jobs = case_jobs, callgrind = case_callgrind,
        download = function() case_download("big_" .. math.floor(P.sink / MiB), P.sink) end }
      if not cases[ONLY] then error("run.lua: unknown case " .. ONLY, 0) end
      return cases[ONLY]()
    end
    machine()
    out("## Results")
    out("")
    case_retrieve()
    case_list()
    if not QUICK then case_download("big_100", 100 * MiB) end
    case_download("big_" .. math.floor(P.sink / MiB), P.sink)
    case_tls_tasks()
    case_step()
    case_rss()
    case_startup()
    if P.jobs then case_jobs() end
    if P.callgrind then case_callgrind() end
    list_targets()
    out("The whole run took %.0f s.", now() - started)
  end)
  S:stop()
  os.execute("rm -rf " .. q(TMP))
  if not ok then
    io.stderr:write(tostring(err), "\n")
    os.exit(1)
  end
  if ONLY then return end
  local f = assert(io.open(OUT, "w"))
  f:write(table.concat(report, "\n"), "\n")
  f:close()
  print("written: " .. OUT)
end

main()
