--- Batches: client:generate_many(jobs, opts) runs many generations (each a table as for
-- generate) at most `concurrency` at a time, as tasks, with one pace for 429 answers.
local core = require "sora.core"
local args = require "sora.args"
local tasks = require "sora.tasks"
local wait = require "sora.wait"

local now, make_error = core.now, core.error
local error, ipairs, select, type = error, ipairs, select, type
local format = string.format
local min, max = math.min, math.max

local batch = {}

local OPTIONS = { concurrency = "count", max_attempts = "count", on_result = "callable" }
local DEFAULT_CONCURRENCY = 4
local DEFAULT_ATTEMPTS = 6
-- The longest retry-after the batch waits for, as single calls cap it (csrc/retry.c): a
-- longer demand ends the job with its rate_limit error rather than stalling the whole batch.
local MAX_SERVER_DELAY = 120

local check = core.Client._check

-- Checks every job before anything is sent (the create's parameters as the C core will read
-- them: a typo or a bad file in the last job must not bill the first), and splits each as
-- generate does.
local function prepare(client, jobs)
  local prepared = {}
  for i = 1, #jobs do
    local job = jobs[i]
    if type(job) ~= "table" then
      args.fail("generate_many", 1, "jobs[%d] must be a table, got %s", i, type(job))
    end
    local prefix = format("jobs[%d]: ", i)
    local create, opts, output, variant = wait.split("generate_many", 1, job, prefix)
    create.max_retries = 0 -- the batch handles 429 itself, so that all jobs back off together
    local ok, err = pcall(check, client, "create", create)
    if not ok then args.reraise(err, "generate_many", "create", 1, prefix) end
    prepared[i] = { create = create, opts = opts, output = output, variant = variant }
  end
  return prepared
end

local function job_timed_out(timeout, last_error)
  return make_error{ kind = "timeout", last_error = last_error,
    message = format("the job did not finish within %g s", timeout) }
end

-- Waits for the batch's pace (set when the server answered 429); false when the pace
-- reaches past the job's deadline.
local function wait_turn(client, pace, deadline)
  local pause = pace.until_time - now()
  if pause >= deadline - now() then return false end
  if pause > 0 then client:sleep(pause) end
  return true
end

local function back_off(pace, err, attempt)
  local delay = err.retry_after or min(0.5 * 2 ^ (attempt - 1), 8)
  pace.until_time = max(pace.until_time, now() + delay)
end

-- True once a worker raised (a bad job, a raising on_result): no new job starts after it.
local function any_failed(workers)
  for _, w in ipairs(workers) do
    if w:done() and select(2, w:result()) ~= nil then return true end
  end
  return false
end

-- One job: create, retried on 429 after the batch's pace, then wait and download as generate
-- does. The job's `timeout` (900 s) bounds all of it, from the moment the job starts.
local function run_job(client, i, job, pace, max_attempts)
  local timeout = job.opts.timeout or wait.DEFAULT_TIMEOUT
  local deadline = now() + timeout
  local err
  for attempt = 1, max_attempts do
    if not wait_turn(client, pace, deadline) then return nil, err or job_timed_out(timeout) end
    local video
    video, err = wait.create(client, "generate_many", wait.create_params(job.create, deadline), 1,
                             format("jobs[%d]: ", i))
    if video then
      return wait.finish_generation(video, job.opts, job.output, job.variant, deadline, timeout)
    end
    if err.kind ~= "rate_limit" or attempt == max_attempts then return nil, err end
    if err.retry_after and err.retry_after > MAX_SERVER_DELAY then return nil, err end
    back_off(pace, err, attempt)
  end
end

--- Runs the jobs at most `concurrency` (4) at a time; returns videos[i] (or false) and
-- errors[i]. A job refused with 429 is tried again after the batch's pace, up to
-- `max_attempts` (6) times; on_result(i, video, err) is called as each job ends. Every job is
-- checked before the first create; a raising on_result makes generate_many raise that error
-- once the jobs already started have ended, and no job starts after it. Inside a task it yields (the workers are its children: cancelling it cancels them);
-- elsewhere it steps the client until the batch is done.
function batch.generate_many(client, jobs, opts)
  jobs = args.table("generate_many", 1, jobs)
  opts = args.options("generate_many", 2, args.table("generate_many", 2, opts, true), OPTIONS)
  local prepared = prepare(client, jobs)
  local videos, errors, next_job = {}, {}, 1
  local pace = { until_time = 0 }
  local max_attempts, on_result = opts.max_attempts or DEFAULT_ATTEMPTS, opts.on_result
  local workers = {}
  local function worker()
    while next_job <= #prepared and not any_failed(workers) do
      local i = next_job
      next_job = i + 1
      local video, err = run_job(client, i, prepared[i], pace, max_attempts)
      videos[i], errors[i] = video or false, err
      if on_result then on_result(i, video, err) end
    end
  end
  for w = 1, min(opts.concurrency or DEFAULT_CONCURRENCY, #prepared) do
    workers[w] = tasks.spawn(client, worker)
  end
  tasks.join(client, workers)
  for _, w in ipairs(workers) do
    local ok, err = w:result()
    if ok == nil and err ~= nil then error(err, 0) end -- a raising on_result, or a cancel
  end
  return videos, errors
end

return batch
