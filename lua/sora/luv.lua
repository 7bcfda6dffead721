--- sora.luv: a libuv loop (luv, or Neovim's vim.loop) drives a sora client.
--
--   local detach = require("sora.luv").attach(client [, uv [, opts]])
--   ... uv.run() -- or Neovim's own loop: no polling timer, no step() ...
--   detach()     -- or client:close(): every uv handle of the client is closed
--
-- One uv poll handle per socket libcurl waits on and one uv timer, created when sora asks for
-- them and closed as soon as it no longer does: an idle client holds no uv handle, so it
-- keeps no loop running and is collected once the program drops it. See docs/event-loop.md.
local ceil = math.ceil
local unpack = table.unpack or unpack

local M = {}

-- Neovim's loop, else luv.
local function default_uv()
  local vim = rawget(_G, "vim")
  if vim and (vim.uv or vim.loop) then return vim.uv or vim.loop end
  return require "luv"
end

-- Inside Neovim a uv callback may not call most of the editor's API, which tasks' callbacks
-- (on_progress) often do: there the calls into sora go through vim.schedule.
local function default_schedule()
  local vim = rawget(_G, "vim")
  return vim and vim.schedule or nil
end

-- A handle luv has finalized is left alone: lua_close finalizes the uv handles (made after the
-- client) before the client, whose __gc then tells the host to stop watching them.
local function close(handle)
  local ok, closing = pcall(handle.is_closing, handle)
  if ok and not closing then handle:close() end
end

--- Wires `client` to the loop `uv`. opts.schedule(fn), when given, runs each call into sora
-- later (Neovim: vim.schedule, the default there). opts.on_advance(running), when given, is
-- called after each advance with the number of tasks still running. Returns detach(), which stops it: the
-- client goes back to being stepped (docs/event-loop.md). Closing the client detaches too.
-- Checks attach's arguments, as the rest of sora does: "bad argument #n to 'attach' (...)".
local function check_arguments(client, uv, opts)
  local args = require "sora.args" -- not at load: the Neovim plugin loads this file before sora
  local meta = getmetatable(client)
  if type(meta) ~= "table" or rawget(meta, "__name") ~= "sora.Client" then
    args.fail("attach", 1, "sora.Client expected, got %s", type(client))
  end
  if uv ~= nil and not (type(uv) == "table" and type(uv.new_timer) == "function") then
    args.fail("attach", 2, "a luv module expected, got %s", type(uv))
  end
  args.options("attach", 3, args.table("attach", 3, opts, true), { schedule = "any", on_advance = "callable" })
  if opts and opts.schedule ~= nil and opts.schedule ~= false and not args.is_callable(opts.schedule) then
    args.fail("attach", 3, "option 'schedule' must be a function or false, got %s", type(opts.schedule))
  end
end

function M.attach(client, uv, opts)
  check_arguments(client, uv, opts)
  uv = uv or default_uv()
  opts = opts or {}
  local schedule, on_advance = opts.schedule, opts.on_advance
  if schedule == nil then schedule = default_schedule() end
  local new_poll = uv.new_socket_poll or uv.new_poll
  local polls, timer, attached = {}, nil, true

  local function call(fn, ...)
    if not schedule then return fn(...) end
    local n, args = select("#", ...), { ... }
    schedule(function()
      if attached then fn(unpack(args, 1, n)) end
    end)
  end

  -- after every advance the host may want to know how many tasks are left (a status line)
  local function advanced(running)
    if on_advance then on_advance(running) end
  end

  local function socket_ready(fd, readable, writable)
    if attached then advanced(client:socket_ready(fd, readable, writable)) end
  end

  local armed -- the timer is set for sora and has not fired
  local function timeout_due()
    if attached then advanced(client:timeout_due()) end
    if not armed and timer then -- spent, and sora asked for no other: no handle stays
      close(timer)
      timer = nil
    end
  end

  local function on_socket(fd, readable, writable)
    local poll = polls[fd]
    if not readable and not writable then
      if poll then
        polls[fd] = nil
        close(poll)
      end
      return
    end
    if not poll then
      poll = new_poll(fd)
      polls[fd] = poll
    end
    poll:start((readable and "r" or "") .. (writable and "w" or ""), function(err, events)
      -- on an error libcurl looks at the socket itself (neither flag)
      events = not err and events or ""
      call(socket_ready, fd, events:find("r", 1, true) ~= nil, events:find("w", 1, true) ~= nil)
    end)
  end

  local function on_timer(seconds)
    armed = seconds ~= nil
    if seconds == nil then
      if timer then
        close(timer)
        timer = nil
      end
      return
    end
    timer = timer or uv.new_timer()
    uv.update_time() -- the loop's cached time may be behind: the timer must not fire early
    timer:start(ceil(seconds * 1000), 0, function()
      armed = false
      call(timeout_due)
    end)
  end

  local function on_unwatch()
    attached = false
    for fd, poll in pairs(polls) do
      polls[fd] = nil
      close(poll)
    end
    on_timer(nil)
  end

  local watching, err = pcall(client.watch, client, on_socket, on_timer, on_unwatch)
  if not watching then require("sora.args").reraise(err, "attach", "watch") end -- closed, or already watched
  return function()
    if attached then client:unwatch() end
  end
end

return M
