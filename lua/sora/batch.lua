--- Batches: client:generate_many(jobs, opts) runs many generations (each a table as for
-- generate) at most `concurrency` at a time, as tasks, with one pace for 429 answers.
--
-- A create whose answer is lost (a reset, a cut body, a timeout, a 5xx) may have made its
-- video: before sending it again the batch looks for that video (sora.reconcile) and adopts
-- it, and sends again, with the same Idempotency-Key, only when none is found. With
-- `journal = path` every step is recorded (sora.journal) before it goes ahead, and a rerun
-- resumes: a job done is skipped, a job with a video waits for it, a job whose create was sent
-- unanswered is reconciled before anything is created.
local core = require "sora.core"
local args = require "sora.args"
local tasks = require "sora.tasks"
local wait = require "sora.wait"
local journal = require "sora.journal"
local reconcile = require "sora.reconcile"

local now, make_error = core.now, core.error
local error, ipairs, select, type, tostring = error, ipairs, select, type, tostring
local format = string.format
local min, max = math.min, math.max
local time = os.time

local batch = {}

local OPTIONS = { concurrency = "count", max_attempts = "count", on_result = "callable",
                  journal = "string", retry_failed = "boolean" }
local DEFAULT_CONCURRENCY = 4
local DEFAULT_ATTEMPTS = 6
-- The longest retry-after the batch waits for, as single calls cap it (csrc/retry.c): a
-- longer demand ends the job with its rate_limit error rather than stalling the whole batch.
local MAX_SERVER_DELAY = 120

-- Answers that say the create was refused, so nothing was made: the job ends with them.
-- After any other failure the create is tried again; when the request had left and its answer
-- was lost (err.maybe_sent: a reset, a timeout, a cut or malformed answer, a bare 5xx) the
-- video may have been made, so the next attempt looks for it first.
local REFUSED = { bad_request = true, authentication = true, permission_denied = true,
                  not_found = true, conflict = true, unprocessable_entity = true,
                  rate_limit = true }

local check = core.Client._check

-- Checks every job before anything is sent (the create's parameters as the C core will read
-- them, and that its output can be written: a typo or a bad path in the last job must not
-- bill the first), and splits each as generate does.
local function prepare(client, jobs)
  local prepared, identities = {}, {}
  for i = 1, #jobs do
    local job = jobs[i]
    if type(job) ~= "table" then
      args.fail("generate_many", 1, "jobs[%d] must be a table, got %s", i, type(job))
    end
    local prefix = format("jobs[%d]: ", i)
    local create, opts, output, variant = wait.split("generate_many", 1, job, prefix)
    local ok, err = pcall(check, client, "create", create)
    if not ok then args.reraise(err, "generate_many", "create", 1, prefix) end
    args.output("generate_many", 1, output, "output", prefix)
    prepared[i] = { index = i, create = create, opts = opts, output = output, variant = variant,
                    identity = journal.identity(create) }
    identities[i] = { create, output }
  end
  for i, id in ipairs(journal.job_ids(identities)) do prepared[i].id = id end
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

-- The pause after the attempt-th failed attempt when the server did not say: 0.5 s doubling,
-- at most 8 s.
local function backoff_delay(attempt)
  return min(0.5 * 2 ^ (attempt - 1), 8)
end

local function back_off(pace, err, attempt)
  local delay = err.retry_after or backoff_delay(attempt)
  pace.until_time = max(pace.until_time, now() + delay)
end

-- True once a worker raised (a bad job, a raising on_result): no new job starts after it.
local function any_failed(workers)
  for _, w in ipairs(workers) do
    if w:done() and select(2, w:result()) ~= nil then return true end
  end
  return false
end

-- ---- the book: the journal, or the same records kept in memory only ------------------------

-- Records a step before it goes ahead; raises when the journal cannot be written, since
-- going ahead unrecorded could make a video that a rerun would make again.
local function record(book, entry)
  local ok, err = book:append(entry)
  if not ok then
    error(make_error{ kind = "io", message = "cannot write the batch's journal: " .. tostring(err) }, 0)
  end
end

-- ---- one job ---------------------------------------------------------------------------------

-- The earliest send time of the job's current create: videos made before it are not its own.
local function first_send(state)
  local first
  for _, send in ipairs(state.sends) do
    if send.at and (not first or send.at < first) then first = send.at end
  end
  return first
end

-- A twin (a job of this batch with the same prompt) whose create is waiting for its answer
-- has a video that would match and that no one has claimed yet. So a look and a twin's create
-- never overlap: a job looks once its twins' creates are answered (which claims their videos),
-- and sends its create once its twins' looks are over. run.flying and run.looking count them
-- by prompt; waits_for waits until `counts` has none of `prompt`, false when the deadline came
-- first. (No yield between the wait and the count that follows it, so the two cannot cross.)
local SETTLE_PAUSE = 0.05
local function waits_for(client, counts, prompt, deadline)
  while (counts[prompt] or 0) > 0 do
    if now() + SETTLE_PAUSE >= deadline then return false end
    client:sleep(SETTLE_PAUSE)
  end
  return true
end

local function no_time_for(what)
  return make_error{ kind = "timeout", message = "no time was left to " .. what .. " once the "
    .. "job's twins were done" }
end

-- Looks for the video that an unanswered create of the job may have made; the video, false
-- when there is none, or nil, err when the look-up failed.
local function look_up(client, job, state, run, deadline)
  local prompt = tostring(job.identity.prompt)
  if not waits_for(client, run.flying, prompt, deadline) then return nil, no_time_for("look") end
  run.looking[prompt] = (run.looking[prompt] or 0) + 1
  local video, err = reconcile.find(client, "create", job.identity, first_send(state) or time())
  run.looking[prompt] = run.looking[prompt] - 1
  if video then return video end
  if video == false then return false end
  return nil, err
end

-- Sends the create once (its retries are the batch's, after a look-up); the key of the
-- job's current create is kept across attempts and processes.
local function send_create(client, job, state, run, deadline)
  local prompt = tostring(job.identity.prompt)
  if not waits_for(client, run.looking, prompt, deadline) then return nil, no_time_for("send") end
  local key = state.key or reconcile.new_key()
  record(run.book, { event = "send", job = job.id, index = job.index, key = key, at = time(),
                 output = job.output, params = job.identity })
  local params = wait.create_params(job.create, deadline)
  params.idempotency_key, params.reconcile, params.max_retries = key, false, 0
  run.flying[prompt] = (run.flying[prompt] or 0) + 1
  local video, err = wait.create(client, "generate_many", params, 1, format("jobs[%d]: ", job.index))
  run.flying[prompt] = run.flying[prompt] - 1
  return video, err
end

-- The job's video: the one recorded, the one an unanswered create made, or a new one; retried
-- on a lost answer (after a look-up) and on 429 (after the batch's pace).
local function obtain_video(client, job, state, run, deadline, timeout)
  if state.video then
    local video = state.fields and core._video(client, state.fields)
    if video then return video end
    return client:retrieve(state.video, { deadline = max(deadline - now(), 0.001) })
  end
  local maybe_made, err = #state.sends > 0, nil
  local pace, max_attempts = run.pace, run.max_attempts
  for attempt = 1, max_attempts do
    if not wait_turn(client, pace, deadline) then return nil, err or job_timed_out(timeout) end
    local video, found
    if maybe_made then found, err = look_up(client, job, state, run, deadline) end
    if found then
      video = found
    elseif found == false or not maybe_made then
      video, err = send_create(client, job, state, run, deadline)
    end
    if video then
      reconcile.claim(client, video.id)
      record(run.book, { event = "video", job = job.id, video = video.id, fields = video:to_table() })
      return video
    end
    if REFUSED[err.kind] and err.kind ~= "rate_limit" then return nil, err end
    if attempt == max_attempts then return nil, err end
    if err.retry_after and err.retry_after > MAX_SERVER_DELAY then return nil, err end
    if err.kind == "rate_limit" then
      back_off(pace, err, attempt) -- every job waits: the server asked the client to
    else
      -- the request left and its answer was lost: the next attempt looks first
      maybe_made = maybe_made or err.maybe_sent == true
      local pause = min(backoff_delay(attempt), deadline - now())
      if pause > 0 then client:sleep(pause) end
    end
  end
end

-- Records how the job ended: its file (size and digest), or its error.
local function record_end(book, job, video, err)
  if video then
    local entry = { event = "done", job = job.id, video = video.id, fields = video:to_table() }
    if job.output then
      local digest, bytes = core._sha256_file(job.output)
      if not digest then
        error(make_error{ kind = "io", message = "cannot read the file just downloaded: " .. bytes }, 0)
      end
      entry.file, entry.bytes, entry.sha256 = job.output, bytes, digest
    end
    return record(book, entry)
  end
  local failed_video = err.kind == "failed" and err.video
  record(book, { event = "failed", job = job.id, kind = err.kind, status = err.status,
                 message = err.message, video = failed_video and failed_video.id or nil,
                 video_failed = failed_video and true or nil })
end

-- One job: its video (created, adopted or recorded), then wait and download as generate
-- does. The job's `timeout` (900 s) bounds all of it, from the moment the job starts.
local function run_job(client, job, state, run)
  local timeout = job.opts.timeout or wait.DEFAULT_TIMEOUT
  local deadline = now() + timeout
  local video, err = obtain_video(client, job, state, run, deadline, timeout)
  if video then
    video, err = wait.finish_generation(video, job.opts, job.output, job.variant, deadline, timeout)
  end
  record_end(run.book, job, video, err)
  return video, err
end

-- ---- resuming ----------------------------------------------------------------------------------

-- True when the job's recorded file is still there with its size and digest.
local function file_intact(done)
  if not done.file then return true end
  local digest, bytes = core._sha256_file(done.file)
  return digest == done.sha256 and bytes == done.bytes
end

-- The error a job that ended failed ended with, from its record.
local function recorded_failure(state)
  local f = state.failed
  return make_error{ kind = f.kind or "failed", status = f.status,
    message = format("%s (as the journal recorded it)", tostring(f.message)) }
end

-- What a rerun does with a job: "skip" (returns the recorded video or error), else "run".
-- A job whose file is gone or changed is downloaded again from its video; a job whose video
-- failed starts afresh only when retry_failed asks for it.
local function resume(client, state, retry_failed)
  local stage = journal.stage(state)
  if stage == "done" then
    if file_intact(state.done) then
      local video = state.fields and core._video(client, state.fields)
      if video then return "skip", video end
    end
    state.done = nil
  elseif stage == "failed" then
    if not retry_failed then return "skip", false, recorded_failure(state) end
    if state.failed.video_failed then
      state.key, state.sends, state.video, state.fields = nil, {}, nil, nil
    end
    state.failed = nil
  end
  return "run"
end

-- The journal's state of each job (a new one when it has none), its videos claimed.
local function open_book(client, path)
  local book, err = journal.open(path)
  if not book then error(make_error{ kind = "io", message = err }, 0) end
  for _, id in ipairs(book:video_ids()) do reconcile.claim(client, id) end
  return book
end

local function state_of(book, job)
  return book:job(job.id)
end

--- Runs the jobs at most `concurrency` (4) at a time; returns videos[i] (or false) and
-- errors[i]. A job refused with 429 is tried again after the batch's pace, a create whose
-- answer was lost after a look-up for its video, up to `max_attempts` (6) times in all;
-- on_result(i, video, err) is called as each job ends. Every job is checked before the first
-- create; a raising on_result makes generate_many raise that error once the jobs already
-- started have ended, and no job starts after it. With `journal = path` the batch resumes
-- from the journal when run again; `retry_failed` runs again the jobs it says failed. Inside
-- a task it yields (the workers are its children: cancelling it cancels them); elsewhere it
-- steps the client until the batch is done.
function batch.generate_many(client, jobs, opts)
  args.self("generate_many", client, "sora.Client")
  jobs = args.table("generate_many", 1, jobs)
  opts = args.options("generate_many", 2, args.table("generate_many", 2, opts, true), OPTIONS)
  local prepared = prepare(client, jobs)
  local book = open_book(client, opts.journal)
  local videos, errors, queue = {}, {}, {}
  local on_result = opts.on_result
  for i, job in ipairs(prepared) do
    -- what downloads of an earlier run killed before their rename left: the batch owns its
    -- outputs, so no other download to them is running
    if opts.journal and job.output then core._remove_temporaries(job.output) end
    local state = state_of(book, job)
    local verdict, video, err = resume(client, state, opts.retry_failed)
    if verdict == "skip" then
      videos[i], errors[i] = video, err
      if on_result then on_result(i, video or nil, err) end
    else
      queue[#queue + 1] = job
    end
  end
  -- what the jobs share: the journal, the pace of 429s, the creates and looks in flight
  local run = { book = book, pace = { until_time = 0 }, flying = {}, looking = {},
                max_attempts = opts.max_attempts or DEFAULT_ATTEMPTS }
  local workers, next_job = {}, 1
  local function worker()
    while next_job <= #queue and not any_failed(workers) do
      local job = queue[next_job]
      next_job = next_job + 1
      local video, err = run_job(client, job, state_of(book, job), run)
      videos[job.index], errors[job.index] = video or false, err
      if on_result then on_result(job.index, video, err) end
    end
  end
  for w = 1, min(opts.concurrency or DEFAULT_CONCURRENCY, #queue) do
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
