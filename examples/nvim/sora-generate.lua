-- sora-generate: generate a video from Neovim without freezing the editor.
--
-- The generation runs as a sora task: its create, wait and download yield instead of
-- blocking, and a libuv timer calls client:step(0) every STEP_MS on Neovim's main loop, so
-- typing, redraws and other plugins go on while the video is made. The timer stops when no
-- generation is left.
--
-- Install: copy this file to ~/.config/nvim/lua/sora-generate.lua and make the sora module
-- reachable from Neovim's LuaJIT (the 5.1 build: `make LUA_VERSION=5.1`, see the README).
--
--   require("sora-generate").generate{ prompt = "a paper boat at dusk", output = "~/boat.mp4" }
--   require("sora-generate").setup()          -- adds  :SoraGenerate a paper boat at dusk
--
-- The server and key come from OPENAI_BASE_URL / OPENAI_API_KEY, or from setup{ base_url =
-- ..., api_key = ... }.
local M = {}

local uv = vim.uv or vim.loop -- vim.uv since Neovim 0.10; vim.loop before

local STEP_MS = 20 -- often enough for a smooth progress line, rare enough to cost nothing

local config = { output = "sora.mp4" }
local client, timer
local watched = {} -- generations whose end has not been reported yet

local function notify(message, level)
  vim.notify("sora: " .. message, level or vim.log.levels.INFO)
end

-- One shared client: its connections and its one multi handle serve every generation.
local function get_client()
  if not client then
    client = require("sora").new{ base_url = config.base_url, api_key = config.api_key }
  end
  return client
end

-- Reports the generations that ended since the last tick, to the user and to on_done.
local function report_finished()
  for i = #watched, 1, -1 do
    local w = watched[i]
    if w.task:done() then
      table.remove(watched, i)
      local video, err = w.task:result()
      if video then notify(string.format("%s saved to %s", video.id, w.output))
      else vim.notify(tostring(err), vim.log.levels.ERROR) end -- already reads "sora: ..."
      if w.on_done then w.on_done(video, video and w.output or err) end
    end
  end
end

local function stop_timer()
  if timer then
    timer:stop()
    timer:close()
    timer = nil
  end
end

-- One tick: advance every transfer and task without waiting, then report what ended.
local function tick()
  if not timer then return end -- a tick scheduled just before the timer stopped
  local ok, running = pcall(client.step, client, 0)
  if not ok then
    notify("step failed: " .. tostring(running), vim.log.levels.ERROR)
    running = 0
  end
  report_finished()
  if running == 0 then stop_timer() end
end

-- Starts the timer unless it runs. Timer callbacks run in libuv's fast context, where most of
-- the Neovim API is off limits; schedule_wrap moves each tick onto the main loop, so the
-- task's on_progress (which echoes) may call any API.
local function drive()
  if timer then return end
  timer = uv.new_timer()
  timer:start(0, STEP_MS, vim.schedule_wrap(tick))
end

local function echo_progress(video)
  vim.api.nvim_echo({ { string.format("sora: %s %s %d%%", video.id, video.status,
    video.progress or 0) } }, false, {})
end

--- Starts a generation and returns its sora task at once. opts: prompt (required), output
-- (default "sora.mp4"), model, seconds, size, on_done(video, path) or on_done(nil, err).
function M.generate(opts)
  local c, output = get_client(), vim.fn.expand(opts.output or config.output)
  local task = c:spawn(function()
    local video = assert(c:create{ prompt = opts.prompt, model = opts.model,
                                   seconds = opts.seconds, size = opts.size })
    notify(video.id .. " " .. video.status)
    video = assert(video:wait{ on_progress = echo_progress })
    assert(video:download{ path = output })
    return video
  end)
  watched[#watched + 1] = { task = task, output = output, on_done = opts.on_done }
  drive()
  return task
end

--- Optional: settings (base_url, api_key, output) and the :SoraGenerate {prompt} command.
function M.setup(opts)
  config = vim.tbl_extend("force", config, opts or {})
  vim.api.nvim_create_user_command("SoraGenerate", function(cmd)
    M.generate{ prompt = cmd.args }
  end, { nargs = "+", desc = "Generate a video with sora" })
end

return M
