--- Drives a sora client's tasks from Neovim's event loop, without ever blocking the editor.
--
-- The one place that decides how sora work advances inside Neovim, so that it can be swapped
-- whole: today a `vim.loop` timer calls client:step(0) every STEP_MS while the client has
-- tasks, and stops as soon as none is left (an idle editor pays nothing). When sora's libcurl
-- socket/timer integration (`require "sora.luv"`) is available, this module is the only one
-- to change: `drive(client, on_tick)` keeps its contract.
--
-- Contract: `driver.drive(client, on_tick)` makes sure the client is being driven; after
-- every advance, on_tick(running) is called on the main loop (any Neovim API may be used
-- there) with the number of tasks still running; driving stops by itself at 0. A step that
-- raises is reported through on_tick(0, message) and stops the driving.
local uv = vim.uv or vim.loop -- vim.uv since Neovim 0.10; vim.loop before

local driver = {}

-- Often enough that a download's chunks and a progress line flow smoothly, rare enough that
-- a 20-minute wait costs the editor nothing it would notice.
driver.STEP_MS = 20

local timers = setmetatable({}, { __mode = "k" }) -- client -> its running timer

local function stop(client)
  local timer = timers[client]
  if not timer then return end
  timers[client] = nil
  timer:stop()
  timer:close()
end

-- One advance: every transfer and task of the client, without waiting.
local function tick(client, on_tick)
  if not timers[client] then return end -- a tick scheduled just before the timer stopped
  local ok, running = pcall(client.step, client, 0)
  if not ok then
    stop(client)
    on_tick(0, tostring(running))
    return
  end
  if running == 0 then stop(client) end
  on_tick(running)
end

--- Starts driving `client` unless it is driven already. Timer callbacks run in libuv's fast
-- context, where most of the Neovim API is off limits: schedule_wrap moves each tick onto
-- the main loop, where tasks and on_tick may call anything.
function driver.drive(client, on_tick)
  if timers[client] then return end
  local timer = uv.new_timer()
  timers[client] = timer
  timer:start(0, driver.STEP_MS, vim.schedule_wrap(function() tick(client, on_tick) end))
end

--- True while `client` is being driven; without a client, while any is.
function driver.driving(client)
  if client == nil then return next(timers) ~= nil end
  return timers[client] ~= nil
end

--- Stops driving `client` (its tasks stay where they are).
driver.stop = stop

return driver
