--- Tasks: coroutines whose sora calls yield instead of blocking, driven by client:step.
--
-- Inside a task, a request starts its transfer and yields; step() drives every transfer of
-- the client on its one libcurl multi handle, then resumes the tasks whose transfer finished
-- or whose sleep ended. Outside a task the same calls block. Yields happen in Lua only (never
-- across a C call), so this works on Lua 5.1 and LuaJIT as on 5.4; C keeps no coroutine.
local core = require "sora.core"

local make_error, now = core.error, core.now
local coroutine, setmetatable, select, unpack = coroutine, setmetatable, select, table.unpack or unpack
local min, max = math.min, math.max

local tasks = {}

-- Per client: { list = {task...}, by_thread = {[coroutine] = task} } in the client's state.
local function scheduler(client)
  local state = client:_state()
  local s = state.tasks
  if not s then
    s = { list = {}, by_thread = {} }
    state.tasks = s
  end
  return s
end

-- PUC Lua 5.1 cannot yield across a C call (pcall, a metamethod) or a for-in iterator call.
-- There a call that cannot yield blocks instead: true when every frame between here and the
-- task's function is a plain Lua call. LuaJIT and 5.2+ need no such check.
local PUC51 = _VERSION == "Lua 5.1" and not rawget(_G, "jit")

local function yieldable_here()
  local frames, level = {}, 3
  while true do
    local info = debug.getinfo(level, "Sn")
    if not info then break end
    frames[#frames + 1] = info
    level = level + 1
  end
  for i = 1, #frames - 1 do -- the last frame is the task's function, started by resume
    local info, caller = frames[i], frames[i + 1]
    if info.what == "C" or info.name == "(for generator)" then return false end
    -- an unnamed Lua frame was called from C (a metamethod), unless it was a tail call
    if info.what == "Lua" and info.namewhat == "" and caller.what ~= "tail" then return false end
  end
  return true
end

--- The task of `client` that is running now, or nil (the main thread, a plain coroutine, or
-- on PUC 5.1 a place from which the task cannot yield).
function tasks.current(client)
  local co = coroutine.running()
  local task = co and scheduler(client).by_thread[co]
  if task and PUC51 and not yieldable_here() then return nil end
  return task
end

--- Waits for a transfer: yields inside a task, blocks elsewhere. Returns its value, err.
function tasks.await(client, transfer, err)
  if not transfer then return nil, err end
  local task = tasks.current(client)
  if not task then return transfer:wait() end
  task.transfer = transfer
  repeat coroutine.yield() until transfer:done()
  task.transfer = nil
  return transfer:result()
end

--- Sleeps `seconds`: yields inside a task, and elsewhere waits while driving the transfers.
function tasks.sleep(client, seconds)
  local task = tasks.current(client)
  if not task then return client:_sleep(seconds) end
  task.wake_at = now() + seconds
  repeat coroutine.yield() until now() >= task.wake_at
  task.wake_at = nil
end

local function all_done(list)
  for _, task in ipairs(list) do
    if task.status == "running" then return false end
  end
  return true
end

--- Waits until every task of `list` has finished: yields inside a task, else steps.
function tasks.join(client, list)
  local task = tasks.current(client)
  if not task then
    while not all_done(list) do tasks.step(client, 1) end
    return
  end
  task.joining = list
  repeat coroutine.yield() until all_done(list)
  task.joining = nil
end

-- ---- the Task object --------------------------------------------------------------------

local Task = {}
Task.__index = Task

local function pack(...) return { n = select("#", ...), ... } end

--- true once the task returned, raised or was cancelled.
function Task:done()
  return self.status ~= "running"
end

--- The function's results; nil, err when it raised (err is what it raised) or was
-- cancelled (err.kind == "aborted"). Raises if the task is still running.
function Task:result()
  if self.status == "running" then error("the task has not finished", 2) end
  if self.status == "done" then return unpack(self.results, 1, self.results.n) end
  return nil, self.err
end

local function finish(task, status, err)
  local s = scheduler(task.client)
  task.status, task.err = status, err
  s.by_thread[task.co] = nil
  for i, t in ipairs(s.list) do
    if t == task then
      table.remove(s.list, i)
      break
    end
  end
end

-- Raised through a task that cancels itself, to unwind it; resume() recognises it.
local CANCELLED = setmetatable({}, { __tostring = function() return "the task was cancelled" end })

--- Cancels the task: its transfer is aborted and freed, the coroutine is never resumed. A
-- task that cancels itself stops there.
function Task:cancel()
  if self.status ~= "running" then return false end
  if coroutine.running() == self.co then error(CANCELLED, 0) end
  if self.transfer then self.transfer:cancel() end
  if coroutine.close then coroutine.close(self.co) end
  finish(self, "cancelled", make_error{ kind = "aborted", message = "the task was cancelled" })
  return true
end

function Task:__tostring()
  return "sora.Task (" .. self.status .. ")"
end

local function resume(task)
  local results = pack(coroutine.resume(task.co, unpack(task.args, 1, task.args.n)))
  task.args = { n = 0 }
  if not results[1] and results[2] == CANCELLED then
    finish(task, "cancelled", make_error{ kind = "aborted", message = "the task cancelled itself" })
  elseif not results[1] then
    finish(task, "failed", results[2])
  elseif coroutine.status(task.co) == "dead" then
    task.results = { n = results.n - 1, unpack(results, 2, results.n) }
    finish(task, "done")
  end
end

-- A task that is running now (it called step itself) or dead is not resumed.
local function ready(task)
  if coroutine.status(task.co) ~= "suspended" then return false end
  if task.transfer then return task.transfer:done() end
  if task.joining then return all_done(task.joining) end
  if task.wake_at then return now() >= task.wake_at end
  return true
end

--- Starts fn(...) as a task of client; it first runs at the next step.
function tasks.spawn(client, fn, ...)
  local task = setmetatable({ client = client, co = coroutine.create(fn), args = pack(...),
                              status = "running" }, Task)
  local s = scheduler(client)
  s.list[#s.list + 1] = task
  s.by_thread[task.co] = task
  return task
end

-- Resumes every task that can go on; returns seconds until a sleeping task wakes (or nil).
local function resume_ready(s)
  local snapshot, wake = { unpack(s.list) }, nil
  for _, task in ipairs(snapshot) do
    if task.status == "running" and ready(task) then resume(task) end
    if task.status == "running" and task.wake_at and not task.transfer then
      wake = min(wake or math.huge, task.wake_at - now())
    end
  end
  return wake
end

--- Advances transfers and tasks, waiting at most `timeout` seconds (default 0) for
-- activity. Returns the number of tasks still running.
function tasks.step(client, timeout)
  if tasks.current(client) then
    error("step and run drive the tasks; a task of the same client cannot call them", 3)
  end
  local s = scheduler(client)
  if client:_state().closed then error("calling 'step' on a closed sora.Client", 3) end
  local wake = resume_ready(s)
  if client:_state().closed then return #s.list end -- a task closed it just now
  local wait = timeout or 0
  for _, task in ipairs(s.list) do
    if ready(task) then wait = 0 end
  end
  if wake then wait = min(wait, max(0, wake)) end
  client:_drive(wait)
  resume_ready(s)
  return #s.list
end

--- Cancels every running task of the client (before it closes) but the one running now,
-- which goes on after the close (its next sora call raises "closed").
function tasks.cancel_all(client)
  local s, co = scheduler(client), coroutine.running()
  client:_state().closed = true
  for _, task in ipairs({ unpack(s.list) }) do
    if task.co ~= co then task:cancel() end
  end
end

--- Steps until every task has finished.
function tasks.run(client)
  while tasks.step(client, 1) > 0 do end
end

tasks.Task = Task
return tasks
