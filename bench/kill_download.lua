-- Killed mid-download: a child process downloading a large video to a path is killed with
-- SIGKILL at a random moment, again and again. After each kill the target must hold exactly
-- what it held before (nothing, or the complete previous video) or, if the download had
-- finished, the complete new video: never a partial file. The temporary files killed
-- processes leave behind are counted, and each must carry the documented name
-- `<target>.sora-XXXXXX`. Half the kills hit downloads with `durable = true`.
--
-- Then the cost of `durable = true` (file and directory synced before and after the rename)
-- against the default: the time per download of the large video and of a 1 MB one.
--
-- The reference for "complete" is each video as the curl command-line tool downloads it
-- (`--fail`, whole Content-Length) hashed by sha256sum: independent of the module under
-- test, and fast for hundreds of megabytes where the emulator's pure-Lua digest is not.
-- Prints the seed and every count; the last line is `kill_download: N passed, N failed`.
--
--   LUA_PATH="lua/?.lua;lua/?/init.lua;;" LUA_CPATH="build/5.4/?.so;;" lua5.4 bench/kill_download.lua [--quick] [--kills 50] [--seed N] [--mb 128]
local bench_dir = (arg and arg[0] or ""):match("^(.*)[/\\][^/\\]*$") or "bench"
package.path = bench_dir .. "/?.lua;" .. package.path

local socket = require "socket"
local harness = require "support.harness"

local KEY = "sk-kill"
local USAGE = "usage: kill_download.lua [--quick] [--kills N] [--seed N] [--mb N] [--cost-runs N]"

-- ---- the child: downloads one video to a path, and says when it starts ----------------------

local function child(base_url, id, path, durable, ready_file)
  local sora = require "sora"
  local client = sora.new{ api_key = KEY, base_url = base_url }
  harness.write(ready_file, "ready")
  local ok, err = client:download_content(id, { path = path, durable = durable == "1" or nil })
  if not ok then
    io.stderr:write("download failed: ", tostring(err), "\n")
    os.exit(3, true)
  end
  os.exit(0, true)
end

if arg and arg[1] == "--child" then return child(arg[2], arg[3], arg[4], arg[5], arg[6]) end

-- ---- the parent --------------------------------------------------------------------------

local sora = require "sora"
local process = require "sora.emulator.process"

local opts = harness.options(arg or {}, { quick = false, kills = 0, seed = "", mb = 0,
                                          cost_runs = 0 }, USAGE)
if opts.kills <= 0 then opts.kills = opts.quick and 20 or 50 end
if opts.mb <= 0 then opts.mb = opts.quick and 64 or 128 end
if opts.cost_runs <= 0 then opts.cost_runs = opts.quick and 3 or 5 end

local MB = 1024 * 1024
local checks = harness.checks("kill_download")
local lua = arg[-1] or "lua5.4"

-- A completed video, and its complete bytes' digest as the curl tool downloads them.
local function reference_video(client, control, base_url, dir, label)
  local video = assert(client:create{ prompt = "kill test " .. label })
  control:must("POST", "/videos/" .. video.id, { status = "completed" })
  local path = dir .. "/reference-" .. label
  local command = string.format("curl -sS --fail -o %s -H %s %s", harness.shell_quote(path),
    harness.shell_quote("Authorization: Bearer " .. KEY),
    harness.shell_quote(base_url .. "/videos/" .. video.id .. "/content"))
  local ok = os.execute(command)
  assert(ok == true or ok == 0, "curl could not download the reference: " .. command)
  local digest = { bytes = assert(harness.file_size(path)), sha256 = assert(harness.sha256_file(path)),
                   label = label, id = video.id }
  os.remove(path)
  return digest
end

-- Starts a child downloading video `id` to `target`; returns its pid once it is ready to
-- start the transfer (its interpreter loaded, its client made).
local function start_child(base_url, id, target, durable, dir)
  local ready, pidfile = dir .. "/child.ready", dir .. "/child.pid"
  os.remove(ready)
  local command = string.format("%s %s --child %s %s %s %s %s >>%s 2>&1 </dev/null & echo $! >%s",
    harness.shell_quote(lua), harness.shell_quote(bench_dir .. "/kill_download.lua"),
    harness.shell_quote(base_url), harness.shell_quote(id), harness.shell_quote(target),
    durable and "1" or "0", harness.shell_quote(ready), harness.shell_quote(dir .. "/child.log"),
    harness.shell_quote(pidfile))
  os.execute(command)
  local f = assert(io.open(pidfile))
  local pid = tonumber(f:read("*a"):match("%d+"))
  f:close()
  os.remove(pidfile)
  local deadline = harness.now() + 20
  while not harness.exists(ready) do
    assert(harness.alive(pid) and harness.now() < deadline, "the child did not get ready (see child.log)")
    socket.sleep(0.001)
  end
  return pid, harness.now()
end

local function wait_gone(pid, limit)
  local deadline = harness.now() + limit
  while harness.alive(pid) and harness.now() < deadline do socket.sleep(0.001) end
  return not harness.alive(pid)
end

-- What the target holds: "absent", the label of the video whose complete bytes it holds, or
-- "partial (N bytes)".
local function target_state(target, videos)
  local size = harness.file_size(target)
  if not size then return "absent" end
  local hex = size == videos[1].bytes and harness.sha256_file(target)
  for _, v in ipairs(videos) do
    if size == v.bytes and hex == v.sha256 then return v.label end
  end
  return string.format("partial (%d bytes)", size)
end

-- The temporary files in dir: how many, and those whose name is not `<target>.sora-XXXXXX`.
local function leftovers(dir, target_name)
  local count, strange = 0, {}
  for _, name in ipairs(harness.ls(dir)) do
    if name ~= target_name and not name:match("^child%.") then
      count = count + 1
      local suffix = name:sub(#target_name + 1)
      if name:sub(1, #target_name) ~= target_name or not suffix:match("^%.sora%-%w%w%w%w%w%w$") then
        strange[#strange + 1] = name
      end
      os.remove(dir .. "/" .. name)
    end
  end
  return count, strange
end

-- Calibrates: one uncut download of `video` in a child; returns its seconds from ready to exit.
local function full_download(base_url, video, target, durable, dir)
  local pid, ready_at = start_child(base_url, video.id, target, durable, dir)
  assert(wait_gone(pid, 120), "an uncut download took over 120 s")
  return harness.now() - ready_at
end

local function kill_once(base_url, videos, target, dir, durable, window, previous)
  local next_video = previous == videos[1].label and videos[2] or videos[1]
  local pid, ready_at = start_child(base_url, next_video.id, target, durable, dir)
  local delay = math.random() * window
  socket.sleep(math.max(0, delay - (harness.now() - ready_at)))
  local finished_first = not harness.alive(pid)
  os.execute("kill -KILL " .. pid .. " 2>/dev/null")
  assert(wait_gone(pid, 10), "the child survived SIGKILL")
  local state = target_state(target, videos)
  return state, next_video.label, delay, finished_first
end

local function kill_loop(base_url, videos, dir, windows)
  local target_name = "video.mp4"
  local target = dir .. "/" .. target_name
  local previous = target_state(target, videos)
  local counts = { partial = 0, kept = 0, replaced = 0, finished = 0, left = 0, strange = 0, killed_mid = 0 }
  for i = 1, opts.kills do
    -- one kill in five starts with no target; the others with a complete previous video
    if i % 5 == 1 then
      os.remove(target)
      previous = "absent"
    elseif previous == "absent" then
      full_download(base_url, videos[1], target, false, dir)
      previous = target_state(target, videos)
    end
    local durable = windows.durable and i % 2 == 0
    local state, new, delay, finished_first = kill_once(base_url, videos, target, dir, durable,
      durable and windows.durable or windows.plain, previous)
    local left, strange = leftovers(dir, target_name)
    local outcome = state == previous and "kept" or state == new and "replaced" or "partial"
    counts[outcome] = counts[outcome] + 1
    if finished_first then counts.finished = counts.finished + 1 end
    if left > 0 then counts.killed_mid = counts.killed_mid + 1 end
    counts.left, counts.strange = counts.left + left, counts.strange + #strange
    print(string.format("kill %2d at %6.1f ms%s: before %-8s after %-8s %s, %d temporary file(s)%s",
      i, delay * 1000, durable and " (durable)" or "          ", previous, state, outcome, left,
      #strange > 0 and (" NOT NAMED <target>.sora-XXXXXX: " .. table.concat(strange, " ")) or ""))
    previous = state
  end
  return counts
end

-- Seconds per download of `video` to a path with and without durable, alternating.
local function cost(client, video, dir, runs)
  local times = { plain = {}, durable = {} }
  local path = dir .. "/cost.mp4"
  for _ = 1, runs do
    for _, mode in ipairs({ "plain", "durable" }) do
      os.remove(path)
      local start = harness.now()
      assert(client:download_content(video.id, { path = path, durable = mode == "durable" or nil }))
      times[mode][#times[mode] + 1] = harness.now() - start
    end
  end
  os.remove(path)
  local function median(t) table.sort(t); return t[math.floor((#t + 1) / 2)] end
  return median(times.plain), median(times.durable)
end

local function durable_supported(client, video, dir)
  local ok, err = pcall(client.download_content, client, video.id,
                        { path = dir .. "/probe.mp4", durable = true })
  os.remove(dir .. "/probe.mp4")
  if ok then return true end
  print("durable = true is not available in this build: " .. tostring(err))
  return false
end

local function report_cost(client, control, dir)
  print("\n== the cost of durable = true (median of " .. opts.cost_runs .. " downloads each, "
    .. dir:match("^(.*)/") .. ")")
  for _, size in ipairs({ opts.mb * MB, 1 * MB }) do
    control:must("POST", "/config", { video_bytes = size })
    local video = assert(client:create{ prompt = "cost" })
    control:must("POST", "/videos/" .. video.id, { status = "completed" })
    local plain, durable = cost(client, video, dir, opts.cost_runs)
    print(string.format("%5d MB: default %8.1f ms, durable %8.1f ms (+%.1f ms, x%.2f)",
      math.floor(size / MB), plain * 1000, durable * 1000, (durable - plain) * 1000, durable / plain))
  end
end

-- Uncut downloads in a child, default then durable: the windows the kills are drawn over.
local function calibrate(client, base_url, videos, target, dir)
  local windows = { plain = full_download(base_url, videos[1], target, false, dir) }
  checks:check(target_state(target, videos) == "A", "an uncut download in a child gives the complete video")
  if durable_supported(client, videos[1], dir) then
    windows.durable = full_download(base_url, videos[2], target, true, dir)
  end
  print(string.format("an uncut download, ready to exit: %.1f ms default%s", windows.plain * 1000,
    windows.durable and string.format(", %.1f ms durable", windows.durable * 1000) or ""))
  checks:check(windows.durable ~= nil, "download_content accepts durable = true")
  return windows
end

local function check_kills(counts)
  print(string.format("\n%d kills: target kept %d, replaced by the complete new video %d, partial %d; "
    .. "downloads finished before the kill %d; kills that left temporary files %d (%d files, %d not "
    .. "named <target>.sora-XXXXXX)", opts.kills, counts.kept, counts.replaced, counts.partial,
    counts.finished, counts.killed_mid, counts.left, counts.strange))
  checks:check(counts.partial == 0, "never a partial target after SIGKILL", counts.partial .. " partial")
  checks:check(counts.strange == 0, "every temporary file left behind is named <target>.sora-XXXXXX",
    counts.strange .. " otherwise")
  checks:check(counts.killed_mid > 0, "kills landed mid-download (the test is not vacuous)",
    counts.killed_mid .. " of " .. opts.kills)
end

local function main()
  opts.seed = harness.seed(opts.seed ~= "" and opts.seed or nil)
  print(string.format("kill_download: seed %d, %d kills, %d MB video", opts.seed, opts.kills, opts.mb))
  local emulator = process.spawn{ job_seconds = 0.1, video_bytes = opts.mb * MB }
  local control = harness.control(emulator)
  local client = sora.new{ api_key = KEY, base_url = emulator.url }
  local dir, remove_dir = harness.tempdir("sora-kill")
  local videos = { reference_video(client, control, emulator.url, dir, "A"),
                   reference_video(client, control, emulator.url, dir, "B") }
  checks:check(videos[1].sha256 ~= videos[2].sha256, "the two videos' contents differ",
    "A " .. videos[1].sha256:sub(1, 12) .. ", B " .. videos[2].sha256:sub(1, 12))
  local windows = calibrate(client, emulator.url, videos, dir .. "/video.mp4", dir)
  check_kills(kill_loop(emulator.url, videos, dir, windows))
  if windows.durable then report_cost(client, control, dir) end
  client:close()
  emulator:stop()
  remove_dir()
  print(checks:summary())
  return checks.failed == 0
end

local ok, result = xpcall(main, debug.traceback)
if not ok then
  print("kill_download aborted: " .. tostring(result))
  print((checks:summary():gsub("(%d+) failed$", function(n) return (n + 1) .. " failed" end)))
end
os.exit(ok and result and 0 or 1, true)  -- closing the state: see bench/soak.lua
