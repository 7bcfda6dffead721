--- sora: the OpenAI Videos API (Sora) for Lua.
-- The C core (sora.core) does the HTTP, the bodies and the typed values; this module wraps its
-- endpoints and wires in what reads better in Lua, one file each:
--   sora.tasks   spawn, step, run: coroutines whose calls yield instead of blocking
--   sora.wait    video:refresh, video:wait, create_and_wait, generate    (loaded on first use)
--   sora.lists   client:pages, client:list                               (loaded on first use)
--   sora.batch   client:generate_many                                    (loaded on first use)
--   sora.reconcile  create-type calls: a lost answer looked for, not resent blindly (first use)
--   sora.args    the argument checks they share
local core = require "sora.core"
local args = require "sora.args"
local tasks = require "sora.tasks"

local Client, Video = core.Client, core.Video
local ipairs = ipairs

local sora = {
  _VERSION = core._VERSION,
  curl_version = core.curl_version,
  new = core.new,
  is_error = core.is_error,
  now = core.now,
}

-- ---- the endpoints --------------------------------------------------------------------

-- Each endpoint starts its transfer in C, then waits for it: blocking, or yielding inside a
-- task. C names the endpoint in argument errors, however it was reached. The create-type calls
-- (every POST of the API) go through sora.reconcile: a lost answer is looked for before the
-- create is sent again.
local CREATE_TYPE = { create = true, remix = true, edit = true, extend = true, create_character = true }
-- Outside any coroutine, C runs the whole call (start, wait, result) at once (_call); elsewhere
-- _call gives false and the transfer is started here and awaited.
local start, call, await = Client._start, Client._call, tasks.await
for _, name in ipairs(core.endpoints) do
  if CREATE_TYPE[name] then
    Client[name] = function(self, ...)
      return require("sora.reconcile").send(self, name, start, ...)
    end
  else
    Client[name] = function(self, ...)
      local value, err = call(self, name, ...)
      if value ~= false then return value, err end
      return await(self, start(self, name, ...))
    end
  end
end

function Video:download(opts)
  return self:_client():download_content(self.id, opts)
end

function Video:remix(params)
  return self:_client():remix(self.id, params)
end

function Video:delete(opts) -- opts: per-call options, e.g. { with_response = true }
  return self:_client():delete(self.id, opts)
end

-- ---- tasks ------------------------------------------------------------------------------

--- Waits `seconds` while driving the transfers (yields inside a task).
function Client:sleep(seconds)
  return tasks.sleep(self, args.check("sleep", 1, seconds, "duration"))
end

--- Runs fn(...) as a task (fn: a function or a callable): inside it, sora calls yield instead
-- of blocking.
function Client:spawn(fn, ...)
  return tasks.spawn(self, args.check("spawn", 1, fn, "callable"), ...)
end

--- Advances every transfer and task, waiting at most `timeout` seconds (default 0);
-- returns the number of tasks still running.
function Client:step(timeout)
  return tasks.step(self, args.check("step", 1, timeout, "duration", true))
end

--- Steps until every task has finished.
function Client:run()
  return tasks.run(self)
end

--- Closes the client: its transfers are aborted and its tasks cancelled. Idempotent; also
-- what a to-be-closed variable does on 5.4. All or nothing: the C core closes first, and from
-- inside a callback of the client it refuses (raises) before anything has changed.
local close = Client.close
function Client:close()
  close(self)
  tasks.cancel_all(self)
end
do
  local meta = debug.getregistry()["sora.Client"]
  if meta.__close then meta.__close = Client.close end
end

-- ---- the host's event loop drives the client (docs/event-loop.md) ------------------------
-- client:watch(on_socket, on_timer [, on_unwatch]) and client:unwatch() are the C core's.
Client.socket_ready, Client.timeout_due = tasks.socket_ready, tasks.timeout_due

-- ---- waiting, lists, batches --------------------------------------------------------------

-- Loaded on first use: `require "sora"` compiles only what every program needs (a Lua file
-- costs its compilation; bench/RESULTS.md measures require). methods[name] is a stub until
-- the first call, which puts module[name] in its place and tail-calls it, so an argument
-- error still names the caller's line.
local function on_first_use(methods, module, names)
  for _, name in ipairs(names) do
    methods[name] = function(...)
      local method = require(module)[name]
      methods[name] = method
      return method(...)
    end
  end
end
on_first_use(Video, "sora.wait", { "refresh", "wait" })
on_first_use(Client, "sora.wait", { "create_and_wait", "generate" })
on_first_use(Client, "sora.lists", { "pages", "list" })
on_first_use(Client, "sora.batch", { "generate_many" })

-- ---- webhooks: sora.webhooks.verify, sora.webhooks.sign (sora/webhooks.lua) ----------------

-- Loaded on first use: most programs never verify a webhook, and `require "sora"` stays cheap
-- (bench/RESULTS.md measures it).
setmetatable(sora, { __index = function(self, name)
  if name ~= "webhooks" then return nil end
  local webhooks = require "sora.webhooks"
  rawset(self, name, webhooks)
  return webhooks
end })

return sora
