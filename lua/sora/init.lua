--- sora: the OpenAI Videos API (Sora) for Lua.
-- The C core (sora.core) does the HTTP, the bodies and the typed values; this module adds
-- what reads better in Lua: waiting and polling, the list iterators and conveniences.
local core = require "sora.core"
local tasks = require "sora.tasks"

local Client, Video = core.Client, core.Video
local now, make_error = core.now, core.error
local error, type, pairs, ipairs = error, type, pairs, ipairs
local format = string.format
local min, max = math.min, math.max

local sora = {
  _VERSION = core._VERSION,
  curl_version = core.curl_version,
  new = core.new,
  is_error = core.is_error,
  now = now,
}

-- ---- argument checks ------------------------------------------------------------------

local function check_table(fname, arg, value, optional)
  if value == nil and optional then return {} end
  if type(value) ~= "table" then
    error(format("bad argument #%d to '%s' (table expected, got %s)", arg, fname, type(value)), 3)
  end
  return value
end

-- Raises for a key that is not in `allowed` (name -> expected Lua type).
local function check_options(fname, arg, opts, allowed)
  for name, value in pairs(opts) do
    local expected = allowed[name]
    if expected == nil then
      error(format("bad argument #%d to '%s' (unknown option '%s')", arg, fname, tostring(name)), 3)
    elseif type(value) ~= expected then
      error(format("bad argument #%d to '%s' (option '%s' must be a %s, got %s)",
        arg, fname, name, expected, type(value)), 3)
    end
  end
  return opts
end

-- ---- the endpoints --------------------------------------------------------------------

-- Each endpoint starts its transfer in C, then waits for it: blocking, or yielding inside a
-- task. C names the endpoint in argument errors, however it was reached.
local start, await = Client._start, tasks.await
for _, name in ipairs(core.endpoints) do
  Client[name] = function(self, ...)
    return await(self, start(self, name, ...))
  end
end

--- Waits `seconds` while driving the transfers (yields inside a task).
function Client:sleep(seconds)
  if type(seconds) ~= "number" or seconds < 0 then
    error(format("bad argument #1 to 'sleep' (non-negative number expected, got %s)", type(seconds)), 2)
  end
  return tasks.sleep(self, seconds)
end

-- ---- tasks ------------------------------------------------------------------------------

--- Runs fn(...) as a task: inside it, sora calls yield instead of blocking.
function Client:spawn(fn, ...)
  if type(fn) ~= "function" then
    error(format("bad argument #1 to 'spawn' (function expected, got %s)", type(fn)), 2)
  end
  return tasks.spawn(self, fn, ...)
end

--- Advances every transfer and task, waiting at most `timeout` seconds (default 0);
-- returns the number of tasks still running.
function Client:step(timeout)
  if timeout ~= nil and (type(timeout) ~= "number" or timeout < 0) then
    error(format("bad argument #1 to 'step' (non-negative number expected, got %s)", type(timeout)), 2)
  end
  return tasks.step(self, timeout)
end

--- Steps until every task has finished.
function Client:run()
  return tasks.run(self)
end

--- Closes the client: its tasks are cancelled and its transfers aborted. Idempotent; also
-- what a to-be-closed variable does on 5.4.
local close = Client.close
function Client:close()
  tasks.cancel_all(self)
  return close(self)
end
do
  local meta = debug.getregistry()["sora.Client"]
  if meta.__close then meta.__close = Client.close end
end

-- ---- videos ---------------------------------------------------------------------------

--- Retrieves the video again and updates this handle in place; returns it, or nil, err.
function Video:refresh()
  local fresh, err = self:_client():retrieve(self.id)
  if not fresh then return nil, err end
  return self:_update(fresh)
end

local WAIT_OPTIONS = { timeout = "number", interval = "number", max_interval = "number",
                       on_progress = "function" }
local DEFAULT_WAIT_TIMEOUT = 900 -- seconds: a long sora-2-pro job still fits
local DEFAULT_INTERVAL = 1       -- seconds, when neither the caller nor the server says
local DEFAULT_MAX_INTERVAL = 8   -- seconds, as the Go SDK caps it
local INTERVAL_GROWTH = 1.25     -- per poll, so long jobs are polled less often

local function failure(video)
  local detail = video.error or {}
  return make_error{
    kind = "failed",
    message = format("video %s failed: %s", video.id, detail.message or "no reason given"),
    code = detail.code,
    video = video,
  }
end

local function timed_out(video, timeout)
  return make_error{
    kind = "timeout",
    message = format("video %s did not finish within %g s (status %s, %s%%)",
      video.id, timeout, tostring(video.status), tostring(video.progress)),
    video = video,
  }
end

-- The caller's interval is kept as given; otherwise the server's hint (or 1 s) grows gently.
local function poll_delay(video, opts, polls)
  if opts.interval then return opts.interval end
  local hint = video:_poll_after()
  local base = hint and hint / 1000 or DEFAULT_INTERVAL
  return min(base * INTERVAL_GROWTH ^ polls, opts.max_interval or DEFAULT_MAX_INTERVAL)
end

-- Failures that say nothing about the video: a wait keeps polling through them, since a
-- video that costs minutes must not be lost to one reset connection or one 503.
local TRANSIENT = { connection = true, timeout = true, internal_server = true, rate_limit = true,
                    invalid_response = true }

--- Polls until the video completes (returns it) or fails or times out (nil, err). Transient
-- poll failures are retried until the deadline; the last one is kept as err.last_error.
function Video:wait(opts)
  opts = check_options("wait", 1, check_table("wait", 1, opts, true), WAIT_OPTIONS)
  local timeout = opts.timeout or DEFAULT_WAIT_TIMEOUT
  local client, on_progress = self:_client(), opts.on_progress
  local deadline, polls, last_error = now() + timeout, 0, nil
  while true do
    local status = self.status
    if status == "completed" then return self end
    if status == "failed" then return nil, failure(self) end
    local left = deadline - now()
    if left <= 0 then
      local err = timed_out(self, timeout)
      err.last_error = last_error
      return nil, err
    end
    client:sleep(max(0, min(poll_delay(self, opts, polls), left)))
    polls = polls + 1
    local ok, err = self:refresh()
    if ok then
      last_error = nil
      if on_progress then on_progress(self) end
    elseif TRANSIENT[err.kind] then
      last_error = err
    else
      return nil, err
    end
  end
end

function Video:download(opts)
  return self:_client():download_content(self.id, opts)
end

function Video:remix(params)
  return self:_client():remix(self.id, params)
end

function Video:delete()
  return self:_client():delete(self.id)
end

-- ---- listing --------------------------------------------------------------------------

local LIST_OPTIONS = { after = "string", limit = "number", order = "string" }

--- Iterates over list pages: for page in client:pages{ limit = 50 } do ... end
-- Follows last_id; stops when has_more is false, a page is empty, last_id is missing, or the
-- server repeats a cursor (a broken server must not make the loop endless). Raises the error
-- object if a page cannot be fetched, as io.lines raises.
function Client:pages(params)
  params = check_options("pages", 1, check_table("pages", 1, params, true), LIST_OPTIONS)
  local query = { after = params.after, limit = params.limit, order = params.order }
  local seen, finished = {}, false
  return function()
    if finished then return nil end
    local page, err = self:list_page(query)
    if not page then
      finished = true
      error(err, 0)
    end
    local last = page.last_id
    if not page.has_more or #page.data == 0 or last == nil or last == "" or seen[last] then
      finished = true
    else
      seen[last] = true
      query.after = last
    end
    return page
  end
end

--- Iterates over every video, page after page: for video in client:list() do ... end
function Client:list(params)
  local next_page = self:pages(params)
  local data, i = {}, 0
  return function()
    while true do
      i = i + 1
      local video = data[i]
      if video ~= nil then return video end
      local page = next_page()
      if page == nil then return nil end
      data, i = page.data, 0
    end
  end
end

-- ---- conveniences ---------------------------------------------------------------------

--- create, then wait: returns the completed video or nil, err.
function Client:create_and_wait(params, wait_opts)
  local video, err = self:create(params)
  if not video then return nil, err end
  return video:wait(wait_opts)
end

local GENERATE_LOCAL = { output = "string", variant = "string", timeout = "number",
                         interval = "number", max_interval = "number", on_progress = "function" }

-- Splits generate's parameters into those of create, of wait, and the output file.
local function split_generate(fname, params)
  params = check_table(fname, 1, params)
  local create, wait, output, variant = {}, {}, nil, nil
  for name, value in pairs(params) do
    if GENERATE_LOCAL[name] then
      check_options(fname, 1, { [name] = value }, GENERATE_LOCAL)
      if name == "output" then output = value
      elseif name == "variant" then variant = value
      else wait[name] = value end
    else
      create[name] = value
    end
  end
  return create, wait, output, variant
end

-- Waits for a created video and downloads it; nil, err (and the video) on failure.
local function finish_generation(video, wait, output, variant)
  local err
  video, err = video:wait(wait)
  if not video then return nil, err, err and err.video end
  if output then
    local ok, derr = video:download{ path = output, variant = variant }
    if not ok then return nil, derr, video end
  end
  return video
end

--- create, wait, download: client:generate{ prompt = "...", output = "out.mp4" }.
-- Returns the video; on failure nil, err (and the video, when it exists).
function Client:generate(params)
  local create, wait, output, variant = split_generate("generate", params)
  local video, err = self:create(create)
  if not video then return nil, err end
  return finish_generation(video, wait, output, variant)
end

-- ---- batches ------------------------------------------------------------------------------

local BATCH_OPTIONS = { concurrency = "number", max_attempts = "number", on_result = "function" }
local DEFAULT_CONCURRENCY = 4
local DEFAULT_BATCH_ATTEMPTS = 6

-- The batch's shared pace: when the server answers 429 to one job, every job waits.
local function wait_turn(client, pace)
  local left = pace.until_time - now()
  if left > 0 then client:sleep(left) end
end

local function back_off(pace, err, attempt)
  local delay = err.retry_after or min(0.5 * 2 ^ (attempt - 1), 8)
  pace.until_time = max(pace.until_time, now() + delay)
end

-- One job: create (the batch handles 429 itself, so all jobs back off together), then wait
-- and download as generate does.
local function run_job(client, job, pace, max_attempts)
  local create, wait, output, variant = split_generate("generate_many", job)
  create.max_retries = 0
  for attempt = 1, max_attempts do
    wait_turn(client, pace)
    local video, err = client:create(create)
    if video then return finish_generation(video, wait, output, variant) end
    if err.kind ~= "rate_limit" or attempt == max_attempts then return nil, err end
    back_off(pace, err, attempt)
  end
end

--- Runs many generations (each a table as for generate) at most `concurrency` at a time;
-- returns videos[i] (or false) and errors[i]. Inside a task it yields; elsewhere it steps
-- the client until the batch is done. opts: concurrency (4), max_attempts per job on 429
-- (6), on_result(i, video, err).
function Client:generate_many(jobs, opts)
  jobs = check_table("generate_many", 1, jobs)
  opts = check_options("generate_many", 2, check_table("generate_many", 2, opts, true), BATCH_OPTIONS)
  local videos, errors, next_job = {}, {}, 1
  local pace = { until_time = 0 }
  local max_attempts = opts.max_attempts or DEFAULT_BATCH_ATTEMPTS
  local function worker()
    while next_job <= #jobs do
      local i = next_job
      next_job = i + 1
      local video, err = run_job(self, jobs[i], pace, max_attempts)
      videos[i], errors[i] = video or false, err
      if opts.on_result then opts.on_result(i, video, err) end
    end
  end
  local workers = {}
  for w = 1, min(opts.concurrency or DEFAULT_CONCURRENCY, #jobs) do
    workers[w] = tasks.spawn(self, worker)
  end
  tasks.join(self, workers)
  for _, w in ipairs(workers) do
    local ok, err = w:result()
    if ok == nil and err ~= nil then error(err, 0) end -- a raising on_result
  end
  return videos, errors
end

return sora
