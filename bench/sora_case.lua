-- sora's side of bench/run.lua: one case per process, on whichever Lua runs it (5.4, LuaJIT).
-- Prints one line of key=value figures, as bench/limit.c does; raises when anything fails, so
-- that a broken run cannot pass for a fast one.
--
--   retrieve BASE ID N            N sequential client:retrieve(ID)
--   list BASE                     for v in client:list{ limit = 100 }: every video of every page
--   sink BASE ID                  download_content into a sink that discards each chunk
--   file BASE ID PATH             download_content to PATH
--   tasks BASE ID TASKS N         TASKS tasks, each N retrieves, stepped until all are done
--   rss BASE ID N                 N retrieves; resident memory after 1,000 and after N
--   step BASE ID BIG PATH         step(0) while 31 tasks poll and one downloads BIG to PATH
--   startup                       require "sora" + sora.new(), split into what each part costs
local MODE = arg[1]

local function status_kb(field)
  local f = io.open("/proc/self/status")
  if not f then return -1 end
  local text = f:read("*a")
  f:close()
  return tonumber(text:match(field .. ":%s*(%d+)")) or -1
end

local function emit(figures)
  local keys, parts = {}, {}
  for k in pairs(figures) do keys[#keys + 1] = k end
  table.sort(keys)
  for _, k in ipairs(keys) do parts[#parts + 1] = k .. "=" .. tostring(figures[k]) end
  print(table.concat(parts, " "))
end

-- require + new, in this fresh process: libcurl and its libraries, lua-cjson, the module.
-- LuaSocket's clock is loaded first, so that its own cost is not counted.
if MODE == "startup" then
  local clock = require("socket").gettime
  local t0 = clock()
  local libcurl = package.loadlib("libcurl.so.4", "*") -- global, as the module's dlopen would find it
  local t1 = clock()
  require "cjson"
  local t2 = clock()
  local sora = require "sora"
  local t3 = clock()
  local client = sora.new{ api_key = "sk-bench", base_url = "http://127.0.0.1:9/v1" }
  local t4 = clock()
  client:close()
  local function ms(s) return string.format("%.3f", s * 1000) end
  emit{ libcurl_ms = ms(t1 - t0), libcurl_loaded = libcurl and 1 or 0, cjson_ms = ms(t2 - t1),
        require_ms = ms(t3 - t2), new_ms = ms(t4 - t3), own_ms = ms(t4 - t2), total_ms = ms(t4 - t0) }
  return
end

local sora = require "sora"
local now = sora.now
local BASE = arg[2]
local client = sora.new{ api_key = "sk-bench", base_url = BASE, tls_verify = false, max_retries = 0 }

local function retrieve_loop(id, n)
  for _ = 1, n do
    local video, err = client:retrieve(id)
    if not video then error("retrieve: " .. tostring(err), 0) end
  end
end

local cases = {}

function cases.retrieve(id, n)
  n = tonumber(n)
  local start = now()
  retrieve_loop(id, n)
  return { seconds = now() - start, count = n }
end

function cases.list()
  local start, count = now(), 0
  for video in client:list{ limit = 100 } do
    if video.id == nil then error("a video without an id", 0) end
    count = count + 1
  end
  return { seconds = now() - start, count = count }
end

function cases.sink(id)
  local received = 0
  local start = now()
  assert(client:download_content(id, { sink = function(chunk) received = received + #chunk end }))
  return { seconds = now() - start, count = received }
end

function cases.file(id, path)
  local start = now()
  assert(client:download_content(id, { path = path }))
  local seconds = now() - start
  local f = assert(io.open(path, "rb"))
  local size = f:seek("end")
  f:close()
  return { seconds = seconds, count = size }
end

-- TASKS tasks of N retrieves each, all at once: the connections they open are counted by the
-- server (bench/run.lua reads nginx's log), the time here.
function cases.tasks(id, tasks, n)
  tasks, n = tonumber(tasks), tonumber(n)
  local start, spawned = now(), {}
  for i = 1, tasks do spawned[i] = client:spawn(retrieve_loop, id, n) end
  client:run()
  for i, task in ipairs(spawned) do
    local ok, err = task:result()
    if ok == nil and err ~= nil then error("task " .. i .. ": " .. tostring(err), 0) end
  end
  return { seconds = now() - start, count = tasks * n }
end

function cases.rss(id, n)
  n = tonumber(n)
  local start = now()
  retrieve_loop(id, 1000)
  collectgarbage()
  local after_1k = status_kb("VmRSS")
  retrieve_loop(id, n - 1000)
  collectgarbage()
  return { seconds = now() - start, count = n, rss_1k_kb = after_1k, rss_end_kb = status_kb("VmRSS") }
end

local function percentile(sorted, p)
  return sorted[math.max(1, math.ceil(#sorted * p))] or 0
end

-- step(0) as a host's frame loop calls it, 32 transfers live: 31 tasks polling a video (a
-- retrieve every 5 ms, the tasks staggered over those 5 ms as jobs started at different times
-- are) until one more task has downloaded BIG to a file (ended, renamed).
function cases.step(id, big, path)
  local finished = false
  local download = client:spawn(function()
    local ok, err = client:download_content(big, { path = path })
    finished = true
    return ok, err
  end)
  local function poll(i) -- as a task waiting for a job polls it; jobs started at other times
    client:sleep(0.005 * i / 31)
    while not finished do
      assert(client:retrieve(id))
      client:sleep(0.005)
    end
  end
  for i = 1, 31 do client:spawn(poll, i) end
  local steps, last, longest_at = {}, 0, 0
  local start = now()
  local cpu, longest_cpu = {}, 0 -- CPU time of each step: a long wall time without it was spent
  local f0 = now()                 -- waiting (preempted on a shared machine, blocked in write)
  client:step(0)                   -- the first step starts the 32 requests: reported apart
  local first = now() - f0
  while not download:done() do
    local t0, c0 = now(), os.clock()
    client:step(0)
    last = now() - t0
    steps[#steps + 1] = last
    cpu[#cpu + 1] = os.clock() - c0
    if last >= (steps[longest_at] or 0) then longest_at, longest_cpu = #steps, cpu[#cpu] end
  end
  local seconds = now() - start
  assert(download:result())
  client:run()
  table.sort(steps)
  table.sort(cpu)
  local function ms(s) return string.format("%.3f", s * 1000) end
  return { seconds = seconds, count = #steps, p50_ms = ms(percentile(steps, 0.5)),
           p99_ms = ms(percentile(steps, 0.99)), max_ms = ms(steps[#steps]), end_ms = ms(last), max_at = longest_at, first_ms = ms(first),
           longest_cpu_ms = ms(longest_cpu), cpu_p99_ms = ms(percentile(cpu, 0.99)), cpu_max_ms = ms(cpu[#cpu]) }
end

local run = cases[MODE]
if not run then error("sora_case: unknown case " .. tostring(MODE), 0) end
local unpack = table.unpack or unpack
local figures = run(unpack(arg, 3))
client:close()
figures.seconds = string.format("%.6f", figures.seconds)
figures.hwm_kb = status_kb("VmHWM")
emit(figures)
