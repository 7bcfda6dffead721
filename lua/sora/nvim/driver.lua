--- Drives a sora client's tasks from Neovim's event loop, without ever blocking the editor.
--
-- The one place that decides how sora work advances inside Neovim. The client is attached
-- to Neovim's own libuv loop through sora.luv (libcurl's socket and timer interface): Neovim
-- watches the client's sockets and one timer, and sora runs only when one of them is ready,
-- so a 20-minute wait costs the editor nothing, with no polling timer. The work runs through
-- vim.schedule, on the main loop, where tasks and on_tick may call any Neovim API.
--
-- Contract: `driver.drive(client, on_tick)` makes sure the client is being driven; after
-- every advance, on_tick(running) is called on the main loop with the number of tasks still
-- running; driving stops by itself at 0 (the client is detached: it holds no uv handle). An
-- advance that raises is reported through on_tick(0, message) and stops the driving.
local luv = require "sora.luv"

local uv = vim.uv or vim.loop -- vim.uv since Neovim 0.10; vim.loop before

local driver = {}

local detaches = setmetatable({}, { __mode = "k" }) -- client -> detach() of its attachment

local function stop(client)
  local detach = detaches[client]
  if not detach then return end
  detaches[client] = nil
  detach()
end

--- Starts driving `client` unless it is driven already.
function driver.drive(client, on_tick)
  if detaches[client] then return end
  detaches[client] = luv.attach(client, uv, {
    -- on the main loop, protected: a raising advance stops the driving instead of becoming
    -- an error message of the editor's
    schedule = function(advance)
      vim.schedule(function()
        if not detaches[client] then return end -- scheduled just before the driving stopped
        local ok, err = pcall(advance)
        if not ok then
          stop(client)
          on_tick(0, tostring(err))
        end
      end)
    end,
    on_advance = function(running)
      if running == 0 then stop(client) end
      on_tick(running)
    end,
  })
end

--- True while `client` is being driven; without a client, while any is.
function driver.driving(client)
  if client == nil then return next(detaches) ~= nil end
  return detaches[client] ~= nil
end

--- Stops driving `client` (its tasks stay where they are).
driver.stop = stop

return driver
