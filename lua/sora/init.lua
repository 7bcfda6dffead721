--- sora: the OpenAI Videos API (Sora) for Lua.
-- The C core (sora.core) does the HTTP, the bodies and the typed values; this module wraps its
-- endpoints and wires in what reads better in Lua, one file each, each loaded on first use
-- (`require "sora"` compiles only this file: bench/RESULTS.md measures it):
--   sora.tasks   spawn, step, run, sleep, socket_ready, timeout_due: coroutines whose calls
--                yield instead of blocking (until it is loaded no task exists, and calls block)
--   sora.wait    video:refresh, video:wait, create_and_wait, generate
--   sora.lists   client:pages, client:list
--   sora.batch   client:generate_many
--   sora.reconcile  create-type calls: a lost answer looked for, not resent blindly
--   sora.args    the argument checks they share
local core = require "sora.core"

local Client, Video = core.Client, core.Video
local ipairs, require, loaded = ipairs, require, package.loaded

-- An argument error names the program's line, never a file of sora's own: the core skips the
-- files beside this one (sora.args says the same when it loads).
core._lua_dir(debug.getinfo(1, "S").source:match("^(.*[/\\])[^/\\]*$") or "")

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
-- _call gives false and the transfer is started here and awaited. Only sora.tasks's spawn
-- makes a task: until it is loaded, a coroutine's call blocks on its transfer without asking
-- the scheduler (what tasks.await does outside a task).
local function await(client, transfer, err)
  local tasks = loaded["sora.tasks"]
  if tasks then return tasks.await(client, transfer, err) end
  if not transfer then return nil, err end
  return transfer:wait()
end
local start, call = Client._start, Client._call
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

-- The methods written in Lua check their self as the C core's do: video.wait(5) for
-- video:wait(5) is refused naming the call, not with "attempt to index a number value".
-- sora.args says so (args.self), loaded only for the error.
local registry = debug.getregistry()
local function check_self(fname, self, class)
  if type(self) == "userdata" and debug.getmetatable(self) == registry[class] then return self end
  return require("sora.args").self(fname, self, class)
end

function Video:download(opts)
  return check_self("download", self, "sora.Video"):_client():download_content(self.id, opts)
end

function Video:remix(params)
  return check_self("remix", self, "sora.Video"):_client():remix(self.id, params)
end

function Video:delete(opts) -- opts: per-call options, e.g. { with_response = true }
  return check_self("delete", self, "sora.Video"):_client():delete(self.id, opts)
end

-- ---- tasks ------------------------------------------------------------------------------

--- Waits `seconds` while driving the transfers (yields inside a task).
function Client:sleep(seconds)
  local check = require("sora.args").check
  return require("sora.tasks").sleep(check_self("sleep", self, "sora.Client"), check("sleep", 1, seconds, "duration"))
end

--- Runs fn(...) as a task (fn: a function or a callable): inside it, sora calls yield instead
-- of blocking.
function Client:spawn(fn, ...)
  local check = require("sora.args").check
  return require("sora.tasks").spawn(check_self("spawn", self, "sora.Client"), check("spawn", 1, fn, "callable"), ...)
end

--- Advances every transfer and task, waiting at most `timeout` seconds (default 0);
-- returns the number of tasks still running.
function Client:step(timeout)
  local check = require("sora.args").check
  return require("sora.tasks").step(check_self("step", self, "sora.Client"), check("step", 1, timeout, "duration", true))
end

--- Steps until every task has finished.
function Client:run()
  return require("sora.tasks").run(check_self("run", self, "sora.Client"))
end

--- Closes the client: its transfers are aborted and its tasks cancelled. Idempotent; also
-- what a to-be-closed variable does on 5.4. All or nothing: the C core closes first, and from
-- inside a callback of the client it refuses (raises) before anything has changed. Without
-- sora.tasks there is no task to cancel, and it stays unloaded.
local close = Client.close
function Client:close()
  close(self)
  local tasks = loaded["sora.tasks"]
  if tasks then tasks.cancel_all(self) end
end
do
  local meta = debug.getregistry()["sora.Client"]
  if meta.__close then meta.__close = Client.close end
end

-- ---- the host's event loop drives the client (docs/event-loop.md) ------------------------
-- client:watch(on_socket, on_timer [, on_unwatch]) and client:unwatch() are the C core's;
-- client:socket_ready(fd, readable, writable) and client:timeout_due() are sora.tasks's.
function Client:socket_ready(fd, readable, writable)
  local tasks = loaded["sora.tasks"] or require("sora.tasks")
  return tasks.socket_ready(check_self("socket_ready", self, "sora.Client"), fd, readable, writable)
end
function Client:timeout_due()
  local tasks = loaded["sora.tasks"] or require("sora.tasks")
  return tasks.timeout_due(check_self("timeout_due", self, "sora.Client"))
end

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
