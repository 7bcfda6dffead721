--- Tasks: coroutines whose sora calls yield instead of blocking, driven by client:step.
--
-- Inside a task, a request starts its transfer and yields; step() drives every transfer of
-- the client on its one libcurl multi handle, then resumes the tasks that can go on. Outside a
-- task the same calls block. Yields happen in Lua only (never across a C call), so this works
-- on Lua 5.1 and LuaJIT as on 5.4; C keeps no coroutine.
--
-- A step costs in proportion to the tasks that can go on, not to all tasks: a task is resumed
-- only from the ready queue, and it gets there when its transfer ends (C queues the transfers
-- that tasks await in the client's state: transfer:_notify), when its sleep ends (sleepers
-- are kept in a heap by wake time), when the tasks it joins have finished (each finishing task
-- counts down its joiners), or after a bare coroutine.yield().
local core = require "sora.core"
local args = require "sora.args"

local make_error, now = core.error, core.now
local coroutine, setmetatable, select, error, pairs = coroutine, setmetatable, select, error, pairs
local unpack = table.unpack or unpack
local min, max = math.min, math.max

local tasks = {}

-- coroutine -> its task, whatever the client: a task spawned from inside a task of another
-- client is still its child. Weak both ways, so that it never keeps a coroutine or its task
-- (and through it the client) alive: on 5.1 and LuaJIT a weak-keyed table is no ephemeron, and
-- the task, which holds its coroutine, would keep its own key alive. A running task is held by
-- its scheduler (`all`), so its entry stays while it matters.
local task_of_thread = setmetatable({}, { __mode = "kv" })

-- ---- the scheduler of a client ----------------------------------------------------------

-- Kept in the client's state table (client:_state()), beside `finished`, the queue of ended
-- transfers that C fills:
--   ready      tasks to resume at the next pass, in order
--   sleepers   a binary heap of sleeping tasks, earliest wake_at first
--   awaiting   transfer -> the task that waits for it
--   by_thread  coroutine -> task; all: task -> true; count: tasks still running
--   client     the client (a cycle through its own user value, which the collector handles)
-- The C core owns when work is due: it hears of every change here (report_due) and itself
-- marks work due when it queues a finished transfer, and tells a watching host.
local function scheduler(client)
  local state = client:_state()
  local s = state.tasks
  if not s then
    s = { state = state, ready = {}, sleepers = {}, awaiting = {}, by_thread = {}, all = {},
          count = 0, client = client }
    state.tasks = s
  end
  return s
end

local function make_ready(s, task)
  if task.queued then return end
  task.queued = true
  s.ready[#s.ready + 1] = task
end

-- ---- the sleepers' heap, ordered by task.wake_at -------------------------------------------

local function heap_push(heap, task)
  local i = #heap + 1
  heap[i] = task
  while i > 1 do
    local parent = (i - i % 2) / 2
    if heap[parent].wake_at <= task.wake_at then break end
    heap[i], heap[parent] = heap[parent], task
    i = parent
  end
end

local function heap_pop(heap)
  local top, n = heap[1], #heap
  local last = heap[n]
  heap[n] = nil
  n = n - 1
  if n == 0 then return top end
  local i = 1
  while true do
    local child = 2 * i
    if child > n then break end
    if child < n and heap[child + 1].wake_at < heap[child].wake_at then child = child + 1 end
    if last.wake_at <= heap[child].wake_at then break end
    heap[i] = heap[child]
    i = child
  end
  heap[i] = last
  return top
end

-- A heap entry is stale once its task stopped sleeping (cancelled): dropped when it surfaces.
local function is_sleeping(task)
  return task.status == "running" and task.waiting == "sleep"
end

--- Seconds until the first sleeping task wakes, or nil.
local function next_wake(s)
  local heap = s.sleepers
  while heap[1] and not is_sleeping(heap[1]) do heap_pop(heap) end
  return heap[1] and heap[1].wake_at - now()
end

--- Seconds until the scheduler has work: 0 when a task can go on now, else until the first
-- sleeper wakes (at least 0), or nil when nothing is due.
local function next_due(s)
  if s.ready[1] or s.state.finished then return 0 end
  local wake = next_wake(s)
  return wake and max(0, wake)
end

-- Tells the C core when this scheduler next has work (which tells a watching host): after
-- every pass and every change made outside one (spawn, cancel). Nothing on a closed client.
local function report_due(s)
  if not s.state.closed then s.client:_tasks_due(next_due(s)) end
end

-- Moves the tasks whose transfer ended or whose sleep is over to the ready queue.
local function collect_woken(s)
  local state = s.state
  local finished = state.finished
  if finished then
    state.finished = nil -- C starts a new queue
    for i = 1, #finished do
      local task = s.awaiting[finished[i]]
      if task then
        s.awaiting[finished[i]] = nil
        make_ready(s, task)
      end
    end
  end
  local heap, t = s.sleepers, now()
  while heap[1] and (not is_sleeping(heap[1]) or heap[1].wake_at <= t) do
    local task = heap_pop(heap)
    if is_sleeping(task) then make_ready(s, task) end
  end
end

-- ---- where a task can yield ------------------------------------------------------------------

-- PUC Lua 5.1 cannot yield across a C call (pcall, a metamethod) or a for-in iterator call:
-- true when every frame between here and the task's function is a plain Lua call.
local function yieldable_51()
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

-- Lua 5.2 yields across pcall and metamethods but not across other C functions (a
-- string.gsub callback, a table.sort comparator).
local function yieldable_52()
  for level = 3, 1000 do
    local info = debug.getinfo(level, "Sf")
    if not info then break end
    if info.what == "C" and info.func ~= pcall and info.func ~= xpcall then return false end
  end
  return true
end

-- Where a task cannot yield, its sora calls block instead of raising "attempt to yield across
-- a C-call boundary". 5.3+ and LuaJIT say so themselves.
local can_yield = coroutine.isyieldable
if not can_yield then
  can_yield = (_VERSION == "Lua 5.1" and not rawget(_G, "jit")) and yieldable_51 or yieldable_52
end

--- The task of `client` that is running now and can yield here, or nil (the main thread, a
-- plain coroutine, a callback a C function called).
function tasks.current(client)
  local co, main = coroutine.running() -- 5.1: nil on the main thread; 5.2+: it, true
  if co == nil or main then return nil end -- the common case of a script, and the cheapest
  local task = scheduler(client).by_thread[co]
  if task and not can_yield() then return nil end
  return task
end

-- Yields the task until the scheduler resumes it for `why` ("transfer", "sleep", "join").
local function suspend(task, why)
  task.waiting = why
  coroutine.yield()
  task.waiting = nil
end

--- Waits for a transfer: yields inside a task, blocks elsewhere. Returns its value, err.
function tasks.await(client, transfer, err)
  if not transfer then return nil, err end
  local task = tasks.current(client)
  if not task then return transfer:wait() end
  if not transfer:done() then
    local s = scheduler(client)
    transfer:_notify() -- when it ends, C queues it in state.finished
    task.transfer, s.awaiting[transfer] = transfer, task
    repeat suspend(task, "transfer") until transfer:done()
    task.transfer = nil
  end
  return transfer:result()
end

--- Sleeps `seconds`: yields inside a task; elsewhere waits while driving the transfers (a
-- zero sleep drives them once, so that a call from a callback is refused there too). `call`
-- is the public call that sleeps, named by that refusal (default "sleep").
function tasks.sleep(client, seconds, call)
  local task = tasks.current(client)
  if not task then
    client:_sleep(seconds, call)
    if seconds == 0 then client:_drive(0) end
    return
  end
  local s = scheduler(client)
  task.wake_at = now() + seconds
  repeat
    heap_push(s.sleepers, task)
    suspend(task, "sleep")
  until now() >= task.wake_at
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
  local left = 0
  for _, t in ipairs(list) do
    if t.status == "running" then
      left = left + 1
      t.joiners = t.joiners or {}
      t.joiners[#t.joiners + 1] = task
    end
  end
  task.join_left = left
  while not all_done(list) do suspend(task, "join") end
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

-- Counts down the joiners of a task that finished; a joiner whose count reaches 0 is ready.
local function wake_joiners(s, task)
  for _, joiner in ipairs(task.joiners or {}) do
    if joiner.status == "running" and joiner.waiting == "join" then
      joiner.join_left = joiner.join_left - 1
      if joiner.join_left <= 0 then make_ready(s, joiner) end
    end
  end
  task.joiners = nil
end

local function finish(task, status, err)
  local s = task.scheduler
  task.status, task.err = status, err
  s.by_thread[task.co], s.all[task], task_of_thread[task.co] = nil, nil, nil
  s.count = s.count - 1
  if task.transfer then s.awaiting[task.transfer] = nil end
  if task.parent then task.parent.children[task] = nil end
  wake_joiners(s, task)
end

-- Raised through a task that is cancelled while it runs, to unwind it; resume() knows it.
local CANCELLED = setmetatable({}, { __tostring = function() return "the task was cancelled" end })

-- Stops a task that is not running now: its transfer is aborted, its coroutine never resumed.
local function stop(task)
  if task.transfer and not task.transfer:done() then task.transfer:cancel() end
  if coroutine.close and coroutine.status(task.co) == "suspended" then coroutine.close(task.co) end
  finish(task, "cancelled", make_error{ kind = "aborted", message = "the task was cancelled" })
end

-- The task and every task it spawned, and they spawned, ..., children before parents.
local function descendants_first(task, out)
  for child in pairs(task.children or {}) do descendants_first(child, out) end
  out[#out + 1] = task
  return out
end

--- Cancels the task and every task it spawned (its descendants): their transfers are aborted
-- and freed, their coroutines never resumed, so nothing more is sent for them once cancel
-- returns. A task that cancels itself (or an ancestor) stops there. All or nothing: the
-- transfers are aborted first, so that from inside a callback, where the C core refuses,
-- the first refusal raises before anything has changed.
function Task:cancel()
  if self.status ~= "running" then return false end
  local running, unwind, victims = coroutine.running(), false, {}
  for _, task in ipairs(descendants_first(self, {})) do
    if task.co == running then unwind = true
    elseif task.status == "running" then victims[#victims + 1] = task end
  end
  for _, task in ipairs(victims) do
    if task.transfer and not task.transfer:done() then task.transfer:cancel() end
  end
  local schedulers = {}
  for _, task in ipairs(victims) do
    stop(task) -- its joiners may be ready now
    schedulers[task.scheduler] = true
  end
  for s in pairs(schedulers) do report_due(s) end
  if unwind then error(CANCELLED, 0) end
  return true
end

function Task:__tostring()
  return "sora.Task (" .. self.status .. ")"
end

-- Resumes a task once and records how it ended, if it did.
local function resume(s, task)
  local arguments = task.args or { n = 0 }
  task.args = nil
  local results = pack(coroutine.resume(task.co, unpack(arguments, 1, arguments.n)))
  if task.status ~= "running" then return end -- cancelled while it ran
  if not results[1] and results[2] == CANCELLED then
    finish(task, "cancelled", make_error{ kind = "aborted", message = "the task cancelled itself" })
  elseif not results[1] then
    finish(task, "failed", results[2])
  elseif coroutine.status(task.co) == "dead" then
    task.results = { n = results.n - 1, unpack(results, 2, results.n) }
    finish(task, "done")
  elseif not task.waiting then
    make_ready(s, task) -- a bare coroutine.yield(): resumed at every pass
  end
end

--- Starts fn(...) as a task of client; it first runs at the next step. A task spawned by a
-- task (of any client) is its child: cancelling the parent cancels it.
function tasks.spawn(client, fn, ...)
  client:_usable("spawn", true) -- a closed client raises, as for every other call
  local s = scheduler(client)
  local body = fn
  if type(fn) ~= "function" then body = function(...) return fn(...) end end -- a callable
  local parent = task_of_thread[coroutine.running() or 0]
  local task = setmetatable({ scheduler = s, co = coroutine.create(body), args = pack(...),
                              status = "running", parent = parent }, Task)
  if parent then
    parent.children = parent.children or {}
    parent.children[task] = true
  end
  s.by_thread[task.co], s.all[task] = task, true
  task_of_thread[task.co] = task
  s.count = s.count + 1
  make_ready(s, task)
  report_due(s) -- a loop watching the client runs it soon
  return task
end

-- One pass: resumes the tasks that were ready when it began; those made ready meanwhile
-- wait for the next pass. A task that is not suspended (it is running: it stepped another
-- client whose task stepped this one) stays queued.
local function run_pass(s)
  collect_woken(s)
  local batch = s.ready
  if #batch > 0 then
    s.ready = {}
    for i = 1, #batch do
      local task = batch[i]
      task.queued = nil
      if task.status == "running" then
        if coroutine.status(task.co) == "suspended" then resume(s, task) else make_ready(s, task) end
      end
    end
  end
  report_due(s)
end

--- Advances transfers and tasks, waiting at most `timeout` seconds (default 0) for
-- activity. Returns the number of tasks still running.
function tasks.step(client, timeout)
  if tasks.current(client) then
    args.usage("step and run drive the tasks; a task of the same client cannot call them")
  end
  -- refused (closed, or from a callback) before any task runs: a refused call changes nothing
  client:_usable("step")
  local s = scheduler(client)
  local state = s.state
  run_pass(s)
  if state.closed then return s.count end -- a task closed it just now
  local due = next_due(s)
  client:_drive(due and min(timeout or 0, due) or timeout or 0)
  run_pass(s)
  return s.count
end

-- ---- the host's event loop (client:watch, docs/event-loop.md) ------------------------------

-- After the C core acted on what the host reported: the tasks that can go on run, and the
-- host's timer covers the next sleeper (C adds libcurl's timer and the retries to it).
local function loop_pass(client)
  local s = scheduler(client)
  run_pass(s)
  return s.count
end

local function check_not_in_task(client, call)
  if tasks.current(client) then
    args.usage(call .. " drives the tasks; a task of the same client cannot call it")
  end
end

--- The host saw `fd` ready: libcurl acts on it, then the tasks that can go on run. Returns the
-- number of tasks still running.
function tasks.socket_ready(client, fd, readable, writable)
  check_not_in_task(client, "socket_ready")
  client:_socket_action(fd, readable, writable)
  return loop_pass(client)
end

--- The host's timer fired: libcurl's due timeouts and retries run, then the tasks whose sleep
-- ended. Returns the number of tasks still running.
function tasks.timeout_due(client)
  check_not_in_task(client, "timeout_due")
  client:_timeout_action()
  return loop_pass(client)
end

--- After the client closed: cancels every running task but the one running now, which goes
-- on after the close (its next sora call raises "closed").
function tasks.cancel_all(client)
  local s, running = scheduler(client), coroutine.running()
  s.state.closed = true
  local list = {}
  for task in pairs(s.all) do list[#list + 1] = task end
  for _, task in ipairs(list) do
    if task.co ~= running and task.status == "running" then stop(task) end
  end
end

--- Steps until every task has finished.
function tasks.run(client)
  while tasks.step(client, 1) > 0 do end
end

tasks.Task = Task
return tasks
