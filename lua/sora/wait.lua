--- Waiting and polling: video:refresh, video:wait, and the conveniences built on them,
-- client:create_and_wait (create, wait) and client:generate (create, wait, download).
--
-- Time budgets propagate: a wait's timeout is a deadline, and every request made on its behalf
-- (each poll, the create before it, the download after it) gets the time left as its own
-- `deadline`, so a hanging server cannot hold a wait past its timeout.
local core = require "sora.core"
local args = require "sora.args"
local tasks = require "sora.tasks"
local reconcile = require "sora.reconcile"

local now, make_error = core.now, core.error
local type, pairs, tostring = type, pairs, tostring
local format = string.format
local min = math.min

local wait = {}

wait.DEFAULT_TIMEOUT = 900 -- seconds: a long sora-2-pro job still fits
local DEFAULT_INTERVAL = 1       -- seconds, when neither the caller nor the server says
local DEFAULT_MAX_INTERVAL = 8   -- seconds, as the Go SDK caps it
local INTERVAL_GROWTH = 1.25     -- per poll, so long jobs are polled less often
local MIN_DEADLINE = 0.001       -- seconds: the C core takes only a positive deadline

wait.OPTIONS = { timeout = "duration", interval = "duration", max_interval = "duration",
                 on_progress = "callable" }

-- The seconds left before `deadline`, as a request's deadline option.
local function left_before(deadline)
  local left = deadline - now()
  return left > MIN_DEADLINE and left or MIN_DEADLINE
end

--- Retrieves the video again and updates this handle in place; returns it, or nil, err.
-- `deadline` (monotonic seconds) bounds the request, retries included.
local function refresh(video, deadline)
  local fresh, err = video:_client():retrieve(video.id, deadline and { deadline = left_before(deadline) })
  if not fresh then return nil, err end
  return video:_update(fresh)
end

-- The per-call options of the retrieve a refresh makes, checked here so that a mistake names
-- 'refresh'.
local REFRESH_OPTIONS = { with_response = "boolean", max_retries = "retries", timeout = "positive",
                          deadline = "positive" }

--- video:refresh([{ with_response, max_retries, timeout, deadline }]): the handle, updated in
-- place (and the response of the retrieve that updated it), or nil, err.
function wait.refresh(video, opts)
  args.self("refresh", video, "sora.Video")
  if opts == nil then return refresh(video) end
  opts = args.options("refresh", 1, args.table("refresh", 1, opts), REFRESH_OPTIONS)
  local fresh, response = video:_client():retrieve(video.id, {
    with_response = opts.with_response, max_retries = opts.max_retries, timeout = opts.timeout,
    deadline = opts.deadline })
  if not fresh then return nil, response end
  return video:_update(fresh), response
end

-- Conveniences that make several requests have no one response to give: with_response is
-- refused there by name, rather than passed to their create and its answer dropped.
local function refuse_with_response(fname, n, params, prefix)
  if params.with_response ~= nil then
    args.fail(fname, n, "%soption 'with_response' is for single requests: %s makes several "
              .. "(ask create, retrieve or download_content for theirs)", prefix or "", fname)
  end
end

local function failure(video)
  local detail = video.error or {}
  return make_error{
    kind = "failed",
    message = format("video %s failed: %s", video.id, detail.message or "no reason given"),
    code = detail.code,
    video = video,
  }
end

local function timed_out(video, timeout, last_error)
  return make_error{
    kind = "timeout",
    message = format("video %s did not finish within %g s (status %s, %s%%)",
      video.id, timeout, tostring(video.status), tostring(video.progress)),
    video = video,
    last_error = last_error,
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
-- video that costs minutes must not be lost to one reset connection or one 503. A usage error
-- (a call from inside a callback, a closed client) is raised by the C core, never returned,
-- so it ends the wait at once.
local TRANSIENT = { connection = true, timeout = true, internal_server = true, rate_limit = true,
                    invalid_response = true }

-- Polls until the video completes, fails, or `deadline` passes (`timeout` is the budget the
-- caller gave, for the message). Options as checked by wait.OPTIONS.
local function wait_until(video, opts, deadline, timeout)
  local client, on_progress = video:_client(), opts.on_progress
  local polls, last_error = 0, nil
  while true do
    local status = video.status
    if status == "completed" then return video end
    if status == "failed" then return nil, failure(video) end
    local left = deadline - now()
    if left <= 0 then return nil, timed_out(video, timeout, last_error) end
    tasks.sleep(client, min(poll_delay(video, opts, polls), left), "wait")
    polls = polls + 1
    if deadline - now() <= 0 then return nil, timed_out(video, timeout, last_error) end
    local ok, err = refresh(video, deadline)
    if ok then
      last_error = nil
      if on_progress then on_progress(video) end
    elseif TRANSIENT[err.kind] then
      last_error = err
    else
      return nil, err
    end
  end
end

--- video:wait{ timeout, interval, max_interval, on_progress }: polls until the video
-- completes (returns it) or fails or times out (nil, err). Transient poll failures are
-- retried until the deadline; the last one is kept as err.last_error. Each poll gets the time
-- left as its deadline, so the wait returns within its timeout (plus a few milliseconds).
function wait.wait(video, opts)
  args.self("wait", video, "sora.Video")
  opts = args.options("wait", 1, args.table("wait", 1, opts, true), wait.OPTIONS)
  local timeout = opts.timeout or wait.DEFAULT_TIMEOUT
  return wait_until(video, opts, now() + timeout, timeout)
end

local start = core.Client._start

--- client:create(params) made on behalf of the public call `fname`: an argument error of the
-- C core names `fname` (and `prefix`, where in its arguments the parameters sit). Only the
-- start is protected, never the wait for the answer, so that a task still yields on PUC 5.1.
function wait.create(client, fname, params, n, prefix)
  return reconcile.send(client, "create", function(c, name, p)
    local ok, transfer, err = pcall(start, c, name, p)
    if not ok then args.reraise(wait.hint_own_option(transfer, fname), fname, name, n, prefix) end
    return transfer, err
  end, params)
end

-- A copy of a create's parameters whose own deadline is at most what is left before `deadline`.
local function create_params(params, deadline)
  local copy = {}
  for name, value in pairs(params) do copy[name] = value end
  local left = left_before(deadline)
  -- a deadline that is not a number is left for the C core to refuse
  if copy.deadline == nil or (type(copy.deadline) == "number" and copy.deadline > left) then
    copy.deadline = left
  end
  return copy
end
wait.create_params = create_params

--- client:create_and_wait(params, wait_opts): create, then wait; the completed video or nil,
-- err. wait_opts.timeout (900 s) bounds the whole call, the create included.
function wait.create_and_wait(client, params, wait_opts)
  args.self("create_and_wait", client, "sora.Client")
  args.table("create_and_wait", 1, params)
  refuse_with_response("create_and_wait", 1, params)
  wait_opts = args.options("create_and_wait", 2, args.table("create_and_wait", 2, wait_opts, true),
                           wait.OPTIONS)
  local timeout = wait_opts.timeout or wait.DEFAULT_TIMEOUT
  local deadline = now() + timeout
  local video, err = wait.create(client, "create_and_wait", create_params(params, deadline))
  if not video then return nil, err end
  return wait_until(video, wait_opts, deadline, timeout)
end

-- generate's own options; the other keys of its table go to create.
local GENERATE_LOCAL = { output = "string", variant = "string", timeout = "duration",
                         interval = "duration", max_interval = "duration", on_progress = "callable" }

--- The C core's "unknown option 'outptu'" for a generation's parameters, with the nearest of
-- generate's own names when one is near: the core knows only create's names, and a misspelt
-- output or interval reaches it. Any other error is returned as it is.
function wait.hint_own_option(err, fname)
  if fname == "create_and_wait" or type(err) ~= "string" then return err end
  local name = err:match("unknown option '([^']*)'%)$")
  local nearest = name and args.nearest(name, GENERATE_LOCAL)
  if not nearest then return err end
  return err:sub(1, -2) .. format(" (did you mean '%s'?))", nearest)
end

--- Splits the parameters of a generation into those of create, of wait, and the output file,
-- checking generate's own options (`prefix` names a batch's job in messages).
function wait.split(fname, n, params, prefix)
  local create, opts, output, variant = {}, {}, nil, nil
  refuse_with_response(fname, n, params, prefix)
  for name, value in pairs(params) do
    local kind = GENERATE_LOCAL[name]
    if kind then
      args.option(fname, n, name, value, kind, prefix)
      if name == "output" then output = value
      elseif name == "variant" then variant = value
      else opts[name] = value end
    else
      create[name] = value
    end
  end
  return create, opts, output, variant
end

--- Waits for a created video and downloads it to `output` (when given), all before
-- `deadline`; returns the video, or nil, err (and the video, when it exists).
function wait.finish_generation(video, opts, output, variant, deadline, timeout)
  local err
  video, err = wait_until(video, opts, deadline, timeout)
  if not video then return nil, err, err and err.video end
  if not output then return video end
  if deadline - now() <= 0 then
    return nil, make_error{ kind = "timeout", video = video, message =
      format("video %s completed, but no time was left to download it within %g s", video.id, timeout) },
      video
  end
  local ok, derr = video:download{ path = output, variant = variant, deadline = left_before(deadline) }
  if not ok then return nil, derr, video end
  return video
end

--- client:generate{ prompt = "...", output = "out.mp4", timeout = ... }: create, wait,
-- download. `timeout` (900 s) bounds the whole call: the create, every poll and the download
-- each get the time left. Returns the video; on failure nil, err (and the video, when it
-- exists).
function wait.generate(client, params)
  args.self("generate", client, "sora.Client")
  params = args.table("generate", 1, params)
  local create, opts, output, variant = wait.split("generate", 1, params)
  args.output("generate", 1, output, "output") -- before the create: no video paid for in vain
  local timeout = opts.timeout or wait.DEFAULT_TIMEOUT
  local deadline = now() + timeout
  local video, err = wait.create(client, "generate", create_params(create, deadline))
  if not video then return nil, err end
  return wait.finish_generation(video, opts, output, variant, deadline, timeout)
end

return wait
