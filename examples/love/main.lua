-- A small LÖVE game that generates a video with sora while its animation keeps running.
--
-- A paper boat rides the waves at 60 frames a second; press G (or start the game with
-- SORA_LOVE_AUTO=1) and a generation starts as a sora task: create, wait, download. Each frame,
-- love.update calls client:step(0), which advances the transfers and the task without ever
-- waiting, so the boat never stops; the progress is drawn on screen.
--
--   bin/sora-emulator --port 8000 &
--   OPENAI_BASE_URL=http://127.0.0.1:8000/v1 OPENAI_API_KEY=sk-local love examples/love
--
-- sora must be built for LÖVE's LuaJIT (make LUA_VERSION=5.1). Run from a checkout, the game
-- finds the checkout's lua/ and build/5.1/; SORA_LUA_PATH and SORA_LUA_CPATH put other places
-- first. Environment: SORA_LOVE_PROMPT, SORA_LOVE_OUTPUT (default sora-love.mp4),
-- SORA_LOVE_AUTO=1 (generate after half a second of animation, then quit), SORA_LOVE_REPORT
-- (a file for the frame figures, as "name value" lines).

local FRAME = 1 / 60 -- seconds: the game's cadence, kept even where the display has no vsync
local AUTO_START = 0.5 -- seconds: unattended, the first frames (shaders, fonts) pass first
local SLOW_FRAME = 0.020 -- seconds: a frame longer than this is visibly late at 60 Hz

-- ---- finding sora --------------------------------------------------------------------------

local function add_paths()
  local checkout = love.filesystem.getSource():gsub("/examples/love/?$", "")
  package.path = table.concat({ os.getenv("SORA_LUA_PATH") or "",
    checkout .. "/lua/?.lua", checkout .. "/lua/?/init.lua", package.path }, ";")
  package.cpath = table.concat({ os.getenv("SORA_LUA_CPATH") or "",
    checkout .. "/build/5.1/?.so", package.cpath }, ";")
end

-- ---- the game's state ----------------------------------------------------------------------

local game = {
  time = 0,          -- seconds of animation
  status = "press G to generate a video",
  progress = nil,    -- 0..1 while a job runs
  client = nil, task = nil,
  generating = false, -- from the spawn to the end of the download
  auto = false,      -- SORA_LOVE_AUTO=1: generate, report, quit
  auto_started = false,
  stats = { frames = 0, slow_frames = 0, longest_frame = 0, longest_work = 0, longest_step = 0,
            statuses_drawn = 0, -- distinct status lines that reached the screen
            lengths = {} },     -- every frame's length while generating, for the median
  drawn_status = nil,
}

local function set_status(text, progress)
  game.status, game.progress = text, progress
end

-- ---- the generation ---------------------------------------------------------------------

local function generation(client, prompt, output)
  return function()
    local video, err = client:create{ prompt = prompt, seconds = "4" }
    if not video then return nil, err end
    set_status(video.id .. " " .. video.status, 0)
    video, err = video:wait{ on_progress = function(v)
      set_status(string.format("%s %s %d%%", v.id, v.status, v.progress or 0), (v.progress or 0) / 100)
    end }
    if not video then return nil, err end
    local ok, derr = video:download{ path = output, on_progress = function(received, total)
      set_status(string.format("downloading %d / %s bytes", received, tostring(total or "?")),
        total and total > 0 and received / total or nil)
    end }
    if not ok then return nil, derr end
    return video, output
  end
end

-- ---- the report (SORA_LOVE_REPORT) ------------------------------------------------------

local function median(list)
  if #list == 0 then return 0 end
  local sorted = { unpack(list) }
  table.sort(sorted)
  return sorted[math.floor((#sorted + 1) / 2)]
end

local function write_report(video, detail)
  local path = os.getenv("SORA_LOVE_REPORT")
  if not path then return end
  local s = game.stats
  local f = assert(io.open(path, "w"))
  f:write(string.format("frames %d\nslow_frames %d\nmedian_frame_ms %.3f\nlongest_frame_ms %.3f\n"
    .. "longest_work_ms %.3f\nlongest_step_ms %.3f\nstatuses_drawn %d\n", s.frames, s.slow_frames,
    median(s.lengths) * 1000, s.longest_frame * 1000, s.longest_work * 1000,
    s.longest_step * 1000, s.statuses_drawn))
  if video then
    f:write("video ", video.id, "\nstatus ", video.status, "\npath ", detail, "\n")
  else
    f:write("error ", (tostring(detail):gsub("\n", " ")), "\n")
  end
  f:close()
end

-- A generation ended, or could not start: say so on screen, report, and quit when unattended.
local function ended(video, detail)
  game.generating = false
  if video then set_status(video.id .. " saved to " .. detail, 1)
  else set_status(tostring(detail)) end
  write_report(video, detail)
  if game.auto then love.event.quit(video and 0 or 1) end
end

local function finished()
  local video, detail = game.task:result()
  game.client:close()
  ended(video, detail)
end

local function start_generation()
  if game.generating then return end
  local ok, sora = pcall(require, "sora")
  if not ok then return ended(nil, "cannot load sora: " .. tostring(sora)) end
  local made, client = pcall(sora.new, {}) -- OPENAI_API_KEY, OPENAI_BASE_URL
  if not made then return ended(nil, client) end
  game.client = client
  game.task = client:spawn(generation(client,
    os.getenv("SORA_LOVE_PROMPT") or "a paper boat on a stormy sea, seen from a lighthouse",
    os.getenv("SORA_LOVE_OUTPUT") or "sora-love.mp4"))
  game.generating = true
  set_status("creating...", 0)
end

-- ---- LÖVE callbacks --------------------------------------------------------------------------

function love.load()
  add_paths()
  love.graphics.setBackgroundColor(0.05, 0.08, 0.15)
  game.auto = os.getenv("SORA_LOVE_AUTO") == "1"
end

function love.keypressed(key)
  if key == "g" then start_generation()
  elseif key == "escape" then love.event.quit() end
end

function love.update(dt)
  game.time = game.time + dt
  if game.auto and not game.auto_started and game.time >= AUTO_START then
    game.auto_started = true
    start_generation()
  end
  if not game.generating then return end
  local started = love.timer.getTime()
  game.client:step(0) -- never waits: the frame goes on whatever the network does
  local s = game.stats
  s.longest_step = math.max(s.longest_step, love.timer.getTime() - started)
  if game.task:done() then finished() end
end

local function draw_waves(w, h)
  love.graphics.setColor(0.2, 0.45, 0.8)
  for row = 0, 3 do
    local points, y0 = {}, h * 0.6 + row * 28
    for x = 0, w, 16 do
      points[#points + 1] = x
      points[#points + 1] = y0 + math.sin(x / 40 + game.time * (2 + row * 0.5)) * 8
    end
    love.graphics.line(points)
  end
end

local function draw_boat(w, h)
  local x = w / 2 + math.sin(game.time * 0.7) * w * 0.3
  local y = h * 0.6 - 18 + math.sin(x / 40 + game.time * 2) * 8
  love.graphics.push()
  love.graphics.translate(x, y)
  love.graphics.rotate(math.cos(x / 40 + game.time * 2) * 0.2)
  love.graphics.setColor(0.95, 0.95, 0.9)
  love.graphics.polygon("fill", -40, 0, 40, 0, 25, 18, -25, 18)
  love.graphics.polygon("fill", 0, -50, 0, -4, 30, -4)
  love.graphics.pop()
end

local function draw_hud(w)
  love.graphics.setColor(1, 1, 1)
  love.graphics.print(game.status, 16, 16)
  if game.generating and game.status ~= game.drawn_status then
    game.drawn_status = game.status
    game.stats.statuses_drawn = game.stats.statuses_drawn + 1
  end
  if game.progress then
    love.graphics.rectangle("line", 16, 40, w - 32, 14)
    love.graphics.rectangle("fill", 16, 40, (w - 32) * math.min(1, game.progress), 14)
  end
  local s = game.stats
  love.graphics.print(string.format("%d fps   longest frame %.1f ms   longest step(0) %.2f ms",
    love.timer.getFPS(), s.longest_frame * 1000, s.longest_step * 1000), 16, 64)
end

function love.draw()
  local w, h = love.graphics.getDimensions()
  draw_waves(w, h)
  draw_boat(w, h)
  draw_hud(w)
end

-- ---- the frame loop ----------------------------------------------------------------------

-- Counts a frame of the generation: its length (from the previous frame's start) and its
-- work (events, update, draw, present).
local function measure(frame_start, previous_start, work)
  local s = game.stats
  s.frames = s.frames + 1
  if previous_start then
    local length = frame_start - previous_start
    s.longest_frame = math.max(s.longest_frame, length)
    s.lengths[#s.lengths + 1] = length
    if length > SLOW_FRAME then s.slow_frames = s.slow_frames + 1 end
  end
  s.longest_work = math.max(s.longest_work, work)
end

-- LÖVE's own loop, paced at FRAME: a virtual display (xvfb) has no vsync to pace it, and a
-- game that spins as fast as it can measures nothing a player would see.
function love.run()
  love.load(love.arg.parseGameArguments(arg), arg)
  love.timer.step()
  local next_frame, previous_start = love.timer.getTime(), nil
  return function()
    local frame_start = love.timer.getTime()
    love.event.pump()
    for name, a, b, c, d, e, f in love.event.poll() do
      if name == "quit" and not (love.quit and love.quit()) then return a or 0 end
      love.handlers[name](a, b, c, d, e, f)
    end
    local was_generating = game.generating
    love.update(love.timer.step())
    if love.graphics.isActive() then
      love.graphics.origin()
      love.graphics.clear(love.graphics.getBackgroundColor())
      love.draw()
      love.graphics.present()
    end
    local now = love.timer.getTime()
    if was_generating then measure(frame_start, previous_start, now - frame_start) end
    previous_start = was_generating and frame_start or nil
    next_frame = math.max(next_frame + FRAME, now)
    love.timer.sleep(next_frame - now)
  end
end
