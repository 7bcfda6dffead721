--- sora inside Neovim: generations, downloads and listings that never block the editor and
-- never raise at the user.
--
-- Every piece of sora work runs as a sora task (client:spawn) that lua/sora/nvim/driver.lua
-- advances from Neovim's event loop; when a task ends, its outcome becomes one vim.notify
-- call. Every failure, whether the plugin's core is missing, the key is absent, the base URL
-- is invalid, the API refuses, or the video fails, is a notification at ERROR level (a cancel
-- the user asked for is INFO), never a Lua error; only a mistake in the arguments of a Lua call
-- raises, naming the call at the caller's line, as sora's own functions do (bad argument #1 to
-- 'list' (...)). The commands (plugin/sora.lua) and :help sora (doc/sora.txt) sit on top of this.
local driver = require "sora.nvim.driver"

local M = {}

local levels = vim.log.levels

-- What the plugin itself takes; every other setup() key goes to sora.new (api_key, base_url,
-- organization, project, timeout, max_retries, headers, and whatever sora.new accepts).
local PLUGIN_OPTIONS = { output_dir = true, model = true, seconds = true, size = true,
                         progress = true }

local defaults = { output_dir = ".", progress = true }

local config = vim.deepcopy(defaults)
local client_options = {}
local client -- created on first use, after setup()
local jobs = {} -- the work whose end has not been reported yet, oldest first

local function notify(message, level)
  vim.notify("sora: " .. message, level or levels.INFO)
end

-- An error of the work a command started names the command (`who`, ":SoraDownload"): with
-- several jobs running, "sora: :SoraDownload: not_found (404): ..." says which one failed.
-- The Lua calls leave `who` nil. A sora error prints as "sora: kind: ..." already; its
-- prefix is put back in front of the command's name.
local function notify_error(err, who)
  local text = tostring(err):gsub("^sora: ", "", 1)
  vim.notify("sora: " .. (who and who .. ": " or "") .. text, levels.ERROR)
end

-- "file:12: bad argument #1 to 'new' (no API key: ...)" -> "no API key: ...": the user
-- configured something, they did not call a function.
local function configuration_message(message)
  message = tostring(message)
  return message:match("^.-bad argument #%d+ to '[^']*' %((.*)%)$") or message:gsub("^.-:%d+: ", "")
end

--- The plugin's settings and the options given to sora.new. Safe to call again: later
-- generations use the new settings, running ones finish with the client they started on.
function M.setup(opts)
  if opts ~= nil and type(opts) ~= "table" then
    notify_error("setup expects a table of options, got " .. type(opts))
    return
  end
  config, client_options = vim.deepcopy(defaults), {}
  for key, value in pairs(opts or {}) do
    if PLUGIN_OPTIONS[key] then config[key] = value else client_options[key] = value end
  end
  client = nil
end

--- A copy of the options setup() keeps for sora.new (:checkhealth sora reads them).
function M.client_options()
  return vim.deepcopy(client_options)
end

-- The shared client: its connections and its one libcurl multi handle serve every job.
-- Returns nil after notifying (naming `who`) when sora cannot be loaded or rejects the
-- configuration.
local function get_client(who)
  if client then return client end
  local loaded, sora = pcall(require, "sora")
  if not loaded then
    notify_error("cannot load the sora module: " .. tostring(sora)
      .. " (build it with `make nvim` in the plugin directory; see :checkhealth sora)", who)
    return nil
  end
  local ok, made = pcall(sora.new, vim.deepcopy(client_options))
  if not ok then
    notify_error(configuration_message(made), who)
    return nil
  end
  client = made
  return client
end

-- ---- reporting -----------------------------------------------------------------------------

-- Tells the user and the caller's on_done how one job ended. Callbacks run protected: a
-- raising on_done is one more notification, never an error in the driver's tick.
local function report(job)
  local ok, value, detail = pcall(job.task.result, job.task)
  if not ok then value, detail = nil, value end
  if value then
    local shown, err = pcall(job.on_success, value, detail)
    if not shown then notify_error(err) end
  elseif job.cancelled then
    notify((tostring(detail):gsub("^sora: ", ""))) -- asked for (:SoraCancel): INFO, not an error
  else
    notify_error(detail, job.who)
  end
  if job.on_done then
    local fine, err = pcall(job.on_done, value, detail)
    if not fine then notify_error("on_done: " .. tostring(err)) end
  end
end

-- Reports, oldest first, every job that ended since the last advance. The list is replaced
-- before any report, so a callback that starts a new job adds it to the new list.
local function report_finished()
  local ended, running = {}, {}
  for _, job in ipairs(jobs) do
    if job.task:done() then ended[#ended + 1] = job else running[#running + 1] = job end
  end
  if #ended == 0 then return end
  jobs = running
  for _, job in ipairs(ended) do report(job) end
end

-- After a step raised (a bug, not an API failure): the tasks of that client cannot go on, so
-- they are cancelled and reported like any failure.
local function on_tick(running, step_error)
  if step_error then
    notify_error("the driver stopped: " .. step_error)
    for _, job in ipairs(jobs) do pcall(job.task.cancel, job.task) end
  end
  report_finished()
  if running == 0 then vim.cmd("redrawstatus") end
end

-- Starts fn as a task of client c and remembers how to report its end. job: what (a short
-- description), on_success(value, detail), on_done (the caller's), and any progress fields.
local function start(c, job, fn)
  local ok, task = pcall(c.spawn, c, fn)
  if not ok then
    notify_error(task)
    return nil
  end
  job.task, job.client = task, c
  jobs[#jobs + 1] = job
  driver.drive(c, on_tick)
  return task
end

-- The client, or nil after telling the user and the caller's on_done why there is none.
local function client_for(on_done, who)
  local c = get_client(who)
  if not c and on_done then pcall(on_done, nil, "sora: no client (see the notification)") end
  return c
end

-- ---- generate ------------------------------------------------------------------------------

local function progress_echo(job)
  return function(video)
    job.status, job.progress = video.status, video.progress or 0
    if config.progress then
      vim.api.nvim_echo({ { string.format("sora: %s %s %d%%", video.id, video.status,
        video.progress or 0) } }, false, {})
    end
  end
end

-- What each variant of a video's content is (the API's media types).
local EXTENSIONS = { video = "mp4", thumbnail = "webp", spritesheet = "jpg" }

local function output_path(opts, id, variant)
  if opts.output and opts.output ~= "" then return vim.fn.expand(opts.output) end
  return string.format("%s/%s.%s", vim.fn.expand(config.output_dir or "."), id,
    EXTENSIONS[variant or "video"] or "bin")
end

-- The task of a generation: create, wait, download; nil, err at the first failure. `job`
-- carries its id, status and progress for M.status().
local function generation(c, opts, job)
  return function()
    local video, err = c:create{ prompt = opts.prompt, model = opts.model or config.model,
      seconds = opts.seconds or config.seconds, size = opts.size or config.size,
      input_reference = opts.image and vim.fn.expand(opts.image) }
    if not video then return nil, err end
    job.id = video.id
    notify(string.format("%s %s: %q", video.id, video.status, opts.prompt))
    video, err = video:wait{ on_progress = progress_echo(job) }
    if not video then return nil, err end
    local path = output_path(opts, video.id)
    job.status = "downloading"
    local ok, derr = video:download{ path = path }
    if not ok then return nil, derr end
    return video, path
  end
end

-- Whether the generation's file could be written, checked before the create (a video made
-- for a file that cannot be written is paid for in vain); false after notifying. The default
-- name is checked as "<id>.mp4" in output_dir, the id being unknown before the create.
-- Whether `path` could be written, checked before the request (:SoraGenerate's create,
-- :SoraDownload's download): false after notifying (naming `who`) and telling on_done.
-- `option` names where the path came from ("output_dir" for a default name), or nil for a
-- path given as it is.
local function writable(path, option, on_done, who)
  local ok, why = require("sora.core")._check_output(path)
  if ok then return true end
  local message = string.format("%scannot write '%s': %s",
    option and "option '" .. option .. "': " or "", path, why)
  notify_error(message, who)
  if on_done then pcall(on_done, nil, "sora: " .. message) end
  return false
end

-- A generation's file; the default name is checked as "<id>.mp4" in output_dir, the id being
-- unknown before the create.
local function output_writable(opts, who)
  local option = opts.output and opts.output ~= "" and "output" or "output_dir"
  return writable(output_path(opts, "<id>"), option, opts.on_done, who)
end

-- M.generate; `who` names the command that asked, in error notifications.
local function generate(who, opts)
  opts = opts or {}
  if type(opts.prompt) ~= "string" or not opts.prompt:find("%S") then
    notify("a prompt is needed: :SoraGenerate {prompt}", levels.ERROR)
    if opts.on_done then pcall(opts.on_done, nil, "sora: a prompt is needed") end
    return nil
  end
  local c = client_for(opts.on_done, who)
  if not c or not output_writable(opts, who) then return nil end
  local job = { what = "generate", status = "creating", progress = 0, on_done = opts.on_done,
    who = who,
    on_success = function(video, path) notify(string.format("%s saved to %s", video.id, path)) end }
  return start(c, job, generation(c, opts, job))
end

--- Starts a generation and returns its sora task at once (nil after notifying, when it
-- cannot start). opts: prompt (required), output (default <output_dir>/<video id>.mp4),
-- model, seconds, size, image (an input reference), on_done(video, path) or on_done(nil, err).
function M.generate(opts)
  return generate(nil, opts)
end

-- ---- download, list, cancel, status -------------------------------------------------------

-- M.download; `who` names the command that asked, in error notifications.
local function download(who, id, path, opts)
  if id == nil or id == "" then
    notify("a video id is needed: :SoraDownload {id} [path]", levels.ERROR)
    return nil
  end
  local c = client_for(type(opts) == "table" and opts.on_done or nil, who)
  if not c then return nil end
  local args = require "sora.args" -- loaded with sora: a mistake raises, as sora's calls do
  args.check("download", 1, id, "string")
  args.check("download", 2, path, "string", true)
  opts = args.options("download", 3, args.table("download", 3, opts, true),
                      { variant = "string", on_done = "callable" })
  local given = path and path ~= ""
  local target = output_path({ output = path }, id, opts.variant)
  if not writable(target, not given and "output_dir" or nil, opts.on_done, who) then return nil end
  local job = { what = "download " .. id, on_done = opts.on_done, who = who,
    on_success = function() notify(string.format("%s saved to %s", id, target)) end }
  return start(c, job, function()
    local ok, err = c:download_content(id, { path = target, variant = opts.variant })
    if not ok then return nil, err end
    return id, target
  end)
end

--- Downloads a video's content (variant: "video", "thumbnail" or "spritesheet") to `path`
-- (default <output_dir>/<id>.mp4, .webp or .jpg) without blocking; returns the task, or nil
-- after notifying when `path` cannot be written (checked before the request).
function M.download(id, path, opts)
  return download(nil, id, path, opts)
end

local function video_line(v)
  return string.format("%-40s %-12s %3d%%  %-8s %-10s %s", v.id, tostring(v.status),
    v.progress or 0, tostring(v.model), tostring(v.size), v.prompt or "")
end

-- Shows lines in a scratch buffer named sora://videos, reusing it.
local function show_videos(lines)
  local buf = vim.fn.bufnr("sora://videos")
  if buf == -1 then
    buf = vim.api.nvim_create_buf(true, true)
    vim.api.nvim_buf_set_name(buf, "sora://videos")
  end
  vim.api.nvim_buf_set_option(buf, "modifiable", true)
  vim.api.nvim_buf_set_lines(buf, 0, -1, false, lines)
  vim.api.nvim_buf_set_option(buf, "modifiable", false)
  vim.api.nvim_set_current_buf(buf)
end

--- The most videos a page lists (the API's limit).
M.LIST_LIMIT = 100

-- M.list; `who` names the command that asked, in error notifications.
local function list(who, opts)
  local c = client_for(type(opts) == "table" and opts.on_done or nil, who)
  if not c then return nil end
  local args = require "sora.args" -- loaded with sora: a mistake raises, as sora's calls do
  opts = args.options("list", 1, args.table("list", 1, opts, true), { limit = "count", on_done = "callable" })
  if opts.limit and opts.limit > M.LIST_LIMIT then
    args.fail("list", 1, "option 'limit' must be at most %d, got %.14g", M.LIST_LIMIT, opts.limit)
  end
  local job = { what = "list", on_done = opts.on_done, who = who, on_success = function(page)
    local lines = {}
    for _, v in ipairs(page.data) do lines[#lines + 1] = video_line(v) end
    if #lines == 0 then lines[1] = "(no videos)" end
    show_videos(lines)
    notify(string.format("listed %d video%s", #page.data, #page.data == 1 and "" or "s"))
  end }
  return start(c, job, function()
    local page, err = c:list_page{ limit = opts.limit or 20, order = "desc" }
    if not page then return nil, err end
    return page
  end)
end

--- Lists the latest videos (default 20) in a scratch buffer, without blocking; returns the task.
function M.list(opts)
  return list(nil, opts)
end

-- What the commands (sora.nvim.commands) call: generate, download and list as the command
-- `who` (":SoraDownload"), whose name their error notifications carry.
M._as_command = { generate = generate, download = download, list = list }

--- Cancels every running job; returns how many were cancelled.
function M.cancel()
  local count = 0
  for _, job in ipairs(jobs) do
    if not job.task:done() and job.task:cancel() then
      job.cancelled = true
      count = count + 1
    end
  end
  notify(count == 0 and "nothing to cancel" or string.format("cancelled %d job(s)", count))
  report_finished() -- each cancelled job ends now, as "aborted"
  return count
end

--- One line for a statusline: "sora: 2 jobs, video_ab12 45%", or "" when idle.
function M.status()
  if #jobs == 0 then return "" end
  local parts = {}
  for _, job in ipairs(jobs) do
    if job.id then parts[#parts + 1] = string.format("%s %s %d%%", job.id, job.status, job.progress)
    else parts[#parts + 1] = job.what end
  end
  return string.format("sora: %d job%s, %s", #jobs, #jobs == 1 and "" or "s", table.concat(parts, ", "))
end

--- Closes the clients of the jobs still running (their transfers are aborted, so no
-- download is left half-written) and forgets them. plugin/sora.lua calls it on VimLeavePre.
function M.shutdown()
  local closing = {}
  if client then closing[client] = true end
  for _, job in ipairs(jobs) do
    if job.client then closing[job.client] = true end
  end
  for c in pairs(closing) do
    driver.stop(c)
    pcall(c.close, c)
  end
  jobs, client = {}, nil
end

--- The jobs not yet reported, oldest first: { what, task, id, status, progress } each.
function M.jobs()
  local shown = {}
  for i, job in ipairs(jobs) do
    shown[i] = { what = job.what, task = job.task, id = job.id, status = job.status,
                 progress = job.progress }
  end
  return shown
end

return M
