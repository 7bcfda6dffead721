--- `sora batch JOBS -o DIR`: many videos from a file of jobs, through client:generate_many
-- with a journal, so that a rerun after a crash or Ctrl-C resumes where the batch stopped and
-- makes no video twice (docs/cli.md, "Batches").
--
-- JOBS is JSON Lines (one object per line: prompt, model, size, seconds, input_reference,
-- output) or text (one prompt per line, --model, --size, --seconds for all). A job's output is
-- relative to DIR (default: DIR/NNNN.mp4, its line number). Results go to stdout, one line per
-- finished job; the live display and the summary of failed jobs to stderr.
local cjson = require "cjson"
local exit = require "sora.cli.exit"
local journal = require "sora.journal"
local wait = require "sora.wait"

local format, floor = string.format, math.floor
local ipairs, pairs, type, tostring = ipairs, pairs, type, tostring

local batch = {}

-- The fields a line of a JSON Lines file may have.
local JOB_FIELDS = { prompt = "string", model = "string", size = "string", seconds = "string",
                     input_reference = "any", output = "string" }
-- The API's defaults, for --dry-run's counts of what a job that does not say would make.
local DEFAULTS = { model = "sora-2", size = "720x1280", seconds = "4" }

--- Declares the command's arguments and flags on `cmd` (an argparse command).
function batch.declare(cmd, number, integer)
  cmd:argument("jobs", "A JSON Lines file (one job a line: prompt, model, size, seconds, "
    .. "input_reference, output) or a text file (one prompt a line).")
  cmd:option("-o --output", "The directory for the videos (default: the current one)."):argname("<dir>")
  cmd:option("--model", "Model for jobs that do not name one.")
  cmd:option("--size", "Resolution for jobs that do not name one.")
  cmd:option("--seconds", "Duration for jobs that do not name one.")
  cmd:option("--journal", "The journal (default: JOBS.journal beside JOBS); a rerun resumes from it.")
    :argname("<path>")
  cmd:option("--concurrency", "Jobs at a time (default 4)."):convert(integer)
  cmd:option("--timeout", "Seconds each job may take (default 900)."):convert(number)
  cmd:option("--interval", "Seconds between polls (default: the server's hint, growing)."):convert(number)
  cmd:flag("--dry-run", "Print how many videos and seconds of video would be made; send nothing.")
  cmd:flag("--status", "Summarise the journal; send nothing.")
  cmd:flag("--retry-failed", "Run again the jobs the journal says failed.")
end

-- ---- reading the jobs ---------------------------------------------------------------------

local function read_file(path)
  local file, err = io.open(path, "rb")
  if not file then return nil, err end
  local text = file:read("*a")
  file:close()
  return text
end

local function join(dir, path)
  if path:sub(1, 1) == "/" or dir == nil or dir == "" or dir == "." then return path end
  return dir:gsub("/+$", "") .. "/" .. path
end

-- One job from a JSON line; nil and what is wrong with it.
local function json_job(line)
  local ok, job = pcall(cjson.decode, line)
  if not ok or type(job) ~= "table" then return nil, "not a JSON object" end
  for name, value in pairs(job) do
    local kind = JOB_FIELDS[name]
    if not kind then return nil, format("unknown field '%s'", tostring(name)) end
    if kind == "string" and type(value) == "number" and name == "seconds" then
      job.seconds = tostring(floor(value))
    elseif kind == "string" and type(value) ~= "string" then
      return nil, format("field '%s' must be a string", name)
    end
  end
  if type(job.prompt) ~= "string" then return nil, "no prompt" end
  return job
end

--- The jobs of the file at `path` as generate tables (with .line, the line they came from);
-- nil and why when it cannot be read or a line is not a job.
function batch.read_jobs(path, args)
  local text, err = read_file(path)
  if not text then return nil, err end
  local first = text:match("^%s*(%S)")
  local is_json = first == "{"
  local jobs, number = {}, 0
  for line in (text .. "\n"):gmatch("([^\n]*)\n") do
    number = number + 1
    line = line:gsub("\r$", "")
    if line:match("%S") then
      local job
      if is_json then
        job, err = json_job(line)
        if not job then return nil, format("%s: line %d: %s", path, number, err) end
      else
        job = { prompt = line }
      end
      job.model, job.size = job.model or args.model, job.size or args.size
      job.seconds = job.seconds or args.seconds
      job.output = join(args.output, job.output or format("%04d.mp4", number))
      job.timeout, job.interval = args.timeout, args.interval
      job.line = number
      jobs[#jobs + 1] = job
    end
  end
  return jobs
end

-- The generate tables (without the line numbers generate_many would refuse).
local function generate_tables(jobs)
  local list = {}
  for i, job in ipairs(jobs) do
    local t = {}
    for k, v in pairs(job) do if k ~= "line" then t[k] = v end end
    list[i] = t
  end
  return list
end

-- ---- what is in the journal ------------------------------------------------------------------

-- Each job's stage in the journal (aligned with jobs), and the journal.
local function stages(jobs, path)
  local book, err = journal.open(path)
  if not book then return nil, err end
  local identities, out = {}, {}
  for i, t in ipairs(generate_tables(jobs)) do
    local create, _, output = wait.split("batch", 1, t)
    identities[i] = { create, output }
  end
  for i, id in ipairs(journal.job_ids(identities)) do
    out[i] = { stage = journal.stage(book.jobs[id]), state = book.jobs[id] }
  end
  return out, book
end

local function dry_run(jobs, journal_path, out)
  local found = stages(jobs, journal_path) or {}
  local groups, order, videos, seconds, skipped = {}, {}, 0, 0, 0
  for i, job in ipairs(jobs) do
    if found[i] and (found[i].stage == "done" or found[i].stage == "video") then
      skipped = skipped + 1
    else
      local key = (job.model or DEFAULTS.model) .. "\t" .. (job.size or DEFAULTS.size)
      if not groups[key] then
        groups[key] = { videos = 0, seconds = 0 }
        order[#order + 1] = key
      end
      local s = tonumber(job.seconds or DEFAULTS.seconds) or 0
      groups[key].videos, groups[key].seconds = groups[key].videos + 1, groups[key].seconds + s
      videos, seconds = videos + 1, seconds + s
    end
  end
  table.sort(order)
  out:write(format("%-14s %-11s %7s %8s\n", "model", "size", "videos", "seconds"))
  for _, key in ipairs(order) do
    local model, size = key:match("^(.-)\t(.*)$")
    out:write(format("%-14s %-11s %7d %8d\n", model, size, groups[key].videos, groups[key].seconds))
  end
  out:write(format("%-26s %7d %8d\n", "total", videos, seconds))
  if skipped > 0 then
    out:write(format("(%d jobs already made, per %s, are not counted)\n", skipped, journal_path))
  end
  return exit.OK
end

local STAGE_NAMES = { done = "done", failed = "failed", video = "made, not yet downloaded",
                      sent = "create sent, answer not recorded", new = "not started" }
local STAGE_ORDER = { "done", "failed", "video", "sent", "new" }

local function status(jobs, journal_path, out)
  local found, book = stages(jobs, journal_path)
  if not found then
    io.stderr:write("sora batch: ", tostring(book), "\n")
    return exit.IO
  end
  local counts = {}
  for _, f in ipairs(found) do counts[f.stage] = (counts[f.stage] or 0) + 1 end
  out:write(format("%s: %d jobs\n", journal_path, #jobs))
  for _, stage in ipairs(STAGE_ORDER) do
    if counts[stage] then out:write(format("  %-34s %d\n", STAGE_NAMES[stage], counts[stage])) end
  end
  for i, f in ipairs(found) do
    if f.stage == "failed" then
      out:write(format("  failed: line %d: %s: %s\n", jobs[i].line, tostring(f.state.failed.kind),
        tostring(f.state.failed.message)))
    end
  end
  if book.ignored > 0 then
    out:write(format("  (%d line(s) of the journal were not records: a torn last line)\n", book.ignored))
  end
  return exit.OK
end

-- ---- the live display --------------------------------------------------------------------------

local Display = {}
Display.__index = Display

local function stderr_is_terminal()
  local ok = os.execute("test -t 2")
  if type(ok) == "number" then return ok == 0 end
  return ok == true
end

local function new_display(total, terminal)
  return setmetatable({ total = total, terminal = terminal, running = {}, order = {}, drawn = 0,
                        ok = 0, failed = 0, out = io.stderr }, Display)
end

local function short(text, width)
  text = tostring(text or ""):gsub("%s+", " ")
  if #text > width then text = text:sub(1, width - 3) .. "..." end
  return text
end

-- Redraws the block: one line per running job, then the total.
function Display:draw()
  local lines = {}
  for _, i in ipairs(self.order) do
    local r = self.running[i]
    lines[#lines + 1] = format("job %-5d %-28s %-11s %3d%%  %s", r.line, r.id or "", r.status or "",
      r.progress or 0, short(r.prompt, 30))
  end
  lines[#lines + 1] = format("%d of %d done, %d failed, %d running", self.ok,
    self.total, self.failed, #self.order)
  local text = (self.drawn > 0 and format("\27[%dA", self.drawn) or "")
  for _, line in ipairs(lines) do text = text .. "\27[2K" .. line .. "\n" end
  for _ = #lines + 1, self.drawn do text = text .. "\27[2K\n" end
  local extra = self.drawn - #lines
  if extra > 0 then text = text .. format("\27[%dA", extra) end
  self.out:write(text)
  self.out:flush()
  self.drawn = #lines
end

function Display:progress(job, video)
  local r = self.running[job.line]
  if not r then
    r = { line = job.line, prompt = job.prompt }
    self.running[job.line] = r
    self.order[#self.order + 1] = job.line
    if not self.terminal then self.out:write(format("job %d: %s created\n", job.line, video.id)) end
  end
  r.id, r.status, r.progress = video.id, video.status, floor(tonumber(video.progress) or 0)
  if self.terminal then self:draw() end
end

function Display:ended(job, video, err)
  if self.running[job.line] then
    self.running[job.line] = nil
    for k, line in ipairs(self.order) do
      if line == job.line then table.remove(self.order, k) break end
    end
  end
  if video then self.ok = self.ok + 1 else self.failed = self.failed + 1 end
  if self.terminal then return self:draw() end
  if video then
    self.out:write(format("job %d: done %s\n", job.line, job.output))
  else
    self.out:write(format("job %d: failed: %s\n", job.line, tostring(err)))
  end
end

-- ---- running ---------------------------------------------------------------------------------

-- Checks every output before anything is sent, naming the line of the first that fails.
local function check_outputs(jobs, err_out)
  local check = require("sora.core")._check_output
  for _, job in ipairs(jobs) do
    local ok, why = check(job.output)
    if not ok then
      err_out:write(format("sora batch: line %d: cannot write '%s': %s\n", job.line, job.output, why))
      return false
    end
  end
  return true
end

local function result_line(ctx, job, video)
  if ctx.printer.json then
    local fields = video:to_table()
    fields.output, fields.line = job.output, job.line
    return ctx.printer:json_line(fields)
  end
  ctx.printer:write(format("%d\t%s\t%s", job.line, video.id, job.output))
end

local function summary(jobs, errors, err_out)
  local failed = {}
  for i, job in ipairs(jobs) do
    if errors[i] then failed[#failed + 1] = job end
  end
  if #failed == 0 then return exit.OK end
  err_out:write(format("sora batch: %d of %d jobs failed:\n", #failed, #jobs))
  for i, job in ipairs(jobs) do
    if errors[i] then
      err_out:write(format("  line %d (%s): %s\n", job.line, short(job.prompt, 40), tostring(errors[i])))
    end
  end
  err_out:write("(rerun to resume; --retry-failed runs the failed jobs again)\n")
  return exit.BATCH
end

local function journal_path(args)
  return args.journal or (args.jobs .. ".journal")
end

--- What needs no client: --dry-run and --status. Returns an exit code, or nil to go on.
function batch.offline(args)
  if not (args.dry_run or args.status) then return nil end
  local jobs, err = batch.read_jobs(args.jobs, args)
  if not jobs then
    io.stderr:write("sora batch: ", tostring(err), "\n")
    return exit.USAGE
  end
  if args.status then return status(jobs, journal_path(args), io.stdout) end
  return dry_run(jobs, journal_path(args), io.stdout)
end

--- Runs the batch; returns the exit code.
function batch.run(ctx, args)
  local jobs, err = batch.read_jobs(args.jobs, args)
  if not jobs then
    io.stderr:write("sora batch: ", tostring(err), "\n")
    return exit.USAGE
  end
  if not check_outputs(jobs, io.stderr) then return exit.USAGE end
  local display = new_display(#jobs, args.progress ~= "lines" and args.progress ~= "none"
    and stderr_is_terminal())
  local list = generate_tables(jobs)
  for i, t in ipairs(list) do
    local job = jobs[i]
    t.on_progress = function(video)
      if args.progress ~= "none" then display:progress(job, video) end
    end
  end
  local _, errors = ctx.client:generate_many(list, {
    journal = journal_path(args), concurrency = args.concurrency, retry_failed = args.retry_failed,
    on_result = function(i, video, job_err)
      if args.progress ~= "none" then display:ended(jobs[i], video, job_err) end
      if video then result_line(ctx, jobs[i], video) end
    end })
  return summary(jobs, errors, io.stderr)
end

return batch
