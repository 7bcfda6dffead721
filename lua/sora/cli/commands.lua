--- The commands of `sora`: each takes the parsed arguments and a context (the client, the
-- printer, the progress reporter) and returns nil on success or the sora.Error that ended it.
-- Usage errors of the client (a reference that is not an image, a file that cannot be read)
-- are raised by sora and turned into exit code 2 by main.
local sora = require "sora"
local core = require "sora.core"
local check = require "sora.args"

local now, make_error = sora.now, core.error
local format, concat = string.format, table.concat

local commands = {}

local DEFAULT_TIMEOUT = 900 -- seconds, as video:wait
local MIN_DEADLINE = 0.001  -- seconds: sora takes only a positive deadline
local EXTENSIONS = { video = "mp4", thumbnail = "webp", spritesheet = "jpg" }

-- The parameters of a create from the flags.
local function input_reference(args)
  if args.image then return args.image end
  if args.image_url then return { image_url = args.image_url } end
  if args.file_id then return { file_id = args.file_id } end
  return nil
end

local function create_params(args)
  local params = { prompt = args.prompt, model = args.model, seconds = args.seconds,
                   size = args.size, input_reference = input_reference(args) }
  if args.no_check_reference then params.check_reference = false end
  return params
end

local function size_of(path)
  local file = io.open(path, "rb")
  if not file then return 0 end
  local size = file:seek("end")
  file:close()
  return size
end

local function default_output(id, variant)
  return format("%s.%s", id, EXTENSIONS[variant] or "bin")
end

-- ---- waiting and downloading -------------------------------------------------------------------

-- A time budget of `timeout` seconds: a function giving the seconds left of it, as a
-- request's deadline, and the budget itself.
local function budget(timeout)
  timeout = timeout or DEFAULT_TIMEOUT
  local deadline = now() + timeout
  return function()
    local left = deadline - now()
    return left > MIN_DEADLINE and left or MIN_DEADLINE
  end, timeout
end

-- A wait's timeout told against the whole command's --timeout, not the part of it that was
-- left when the wait began.
local function timed_out(err, timeout)
  local video = err.video
  return make_error{ kind = "timeout", video = video, last_error = err.last_error,
    message = format("video %s did not finish within %g s (status %s, %s%%)", video.id, timeout,
      tostring(video.status), tostring(video.progress)) }
end

-- A word of a command line, quoted for a POSIX shell when it needs to be.
local function shell_word(text)
  if text:match("^[%w@%%+=:,./_-]+$") then return text end
  return "'" .. text:gsub("'", "'\\''") .. "'"
end

-- The command that picks a video up again after Ctrl-C: `sora wait ID [-o FILE]` while
-- waiting, `sora download ID -o FILE` while downloading (with the variant when not a video).
local function resume_command(command, id, output, variant)
  local words = { "sora", command, shell_word(id) }
  if output then words[#words + 1] = "-o " .. shell_word(output) end
  if output and variant and variant ~= "video" then words[#words + 1] = "--variant " .. variant end
  return concat(words, " ")
end

-- Waits for `video` within the budget, drawing its progress; the completed video or nil, err.
-- `output` is where a download will follow, for the Ctrl-C hint.
local function wait_for(ctx, video, args, left, timeout, output)
  local reporter, printer = ctx.reporter, ctx.printer
  ctx.resume = resume_command("wait", video.id, output, args.variant)
  reporter:video(video)
  local done, err = video:wait{ timeout = left(), interval = args.interval,
    on_progress = function(v)
      printer:debug(format("poll %s: %s %s%%", v.id, tostring(v.status), tostring(v.progress)))
      reporter:video(v)
    end }
  if done then reporter:video(done) end
  reporter:finish()
  ctx.resume = nil
  if err and err.kind == "timeout" and err.video and not err.status then
    err = timed_out(err, timeout)
  end
  return done, err
end

-- Downloads a video's content to `path` within the budget; returns the result for the
-- printer, or nil, err.
local function download_to(ctx, id, variant, path, deadline)
  local reporter = ctx.reporter
  ctx.printer:debug(format("download %s (%s) to %s", id, variant, path))
  ctx.resume = resume_command("download", id, path, variant)
  local ok, err = ctx.client:download_content(id, { path = path, variant = variant,
    deadline = deadline, on_progress = reporter:shows() and function(received, total)
      reporter:bytes(received, total) end or nil })
  reporter:finish()
  ctx.resume = nil
  if not ok then return nil, err end
  return { id = id, variant = variant, output = path, bytes = size_of(path) }
end

-- After a create (or remix, edit, extend): print the video at once, or wait for it (--wait,
-- -o) and download it (-o); `always` downloads whatever the flags (generate).
local function finish(ctx, video, args, left, timeout, always)
  if not (always or args.wait or args.output) then
    ctx.printer:video(video)
    return nil
  end
  ctx.printer:status(format("created %s (%s)", video.id, tostring(video.status)))
  local output = (always or args.output) and (args.output or default_output(video.id, args.variant))
  local done, err = wait_for(ctx, video, args, left, timeout, output)
  if not done then return err end
  if not output then
    ctx.printer:video(done)
    return nil
  end
  local result
  result, err = download_to(ctx, done.id, args.variant, output, left())
  if not result then return err end
  if ctx.printer.json then
    local fields = done:to_table()
    fields.output, fields.bytes, fields.variant = result.output, result.bytes, result.variant
    ctx.printer:json_line(fields)
  else
    ctx.printer:status(format("%s completed", done.id))
    ctx.printer:downloaded(result)
  end
  return nil
end

-- Raises the usage error "--output: cannot write 'x': why" when `output` could not be written,
-- before anything is sent: a video made for a file that cannot be written is paid for in vain.
-- A default name is checked as "<id>.mp4" (the id is not known yet), in the same directory.
local function check_output(command, output)
  check.output(command, 1, output, "output")
end

-- A request that makes a video (create, remix, edit, extend), then finish.
local function making(ctx, args, always, request)
  if always or args.output then
    check_output(args.command, args.output or default_output("<id>", args.variant))
  end
  local left, timeout = budget(args.timeout)
  local video, err = request(left())
  if not video then return err end
  return finish(ctx, video, args, left, timeout, always)
end

-- ---- the commands -----------------------------------------------------------------------------

-- generate always waits and downloads; create only when asked (--wait, --output).
local function creating(always)
  return function(ctx, args)
    return making(ctx, args, always, function(deadline)
      local params = create_params(args)
      params.deadline = deadline
      return ctx.client:create(params)
    end)
  end
end

commands.generate = creating(true)
commands.create = creating(false)

function commands.remix(ctx, args)
  return making(ctx, args, false, function(deadline)
    return ctx.client:remix(args.id, { prompt = args.prompt, deadline = deadline })
  end)
end

function commands.edit(ctx, args)
  return making(ctx, args, false, function(deadline)
    return ctx.client:edit{ video = args.video, prompt = args.prompt, deadline = deadline }
  end)
end

function commands.extend(ctx, args)
  return making(ctx, args, false, function(deadline)
    return ctx.client:extend{ video = args.video, prompt = args.prompt, seconds = args.seconds,
                              deadline = deadline }
  end)
end

function commands.get(ctx, args)
  local video, err = ctx.client:retrieve(args.id)
  if not video then return err end
  ctx.printer:video(video)
end

function commands.wait(ctx, args)
  check_output("wait", args.output)
  local left, timeout = budget(args.timeout)
  local video, err = ctx.client:retrieve(args.id, { deadline = left() })
  if not video then return err end
  return finish(ctx, video, { wait = true, output = args.output, variant = args.variant,
                              interval = args.interval }, left, timeout)
end

function commands.delete(ctx, args)
  local result, err = ctx.client:delete(args.id)
  if not result then return err end
  ctx.printer:deleted(result)
end

-- One page, or every page with --all; a later page that fails ends the listing with its
-- error after the rows already printed.
function commands.list(ctx, args)
  local query = { limit = args.limit, order = args.order, after = args.after }
  if args.all then
    local ok, err = pcall(function()
      for video in ctx.client:list(query) do ctx.printer:video_row(video) end
    end)
    if not ok then
      if sora.is_error(err) then return err end
      error(err, 0)
    end
    return nil
  end
  local page, err = ctx.client:list_page(query)
  if not page then return err end
  for _, video in ipairs(page.data) do ctx.printer:video_row(video) end
  if #page.data == 0 then ctx.printer:note("no videos") end
  if page.has_more and page.last_id then
    ctx.printer:note(format("more: sora list --after %s", page.last_id))
  end
end

-- To a file (atomically, by sora), or with `-o -` to stdout as it arrives.
function commands.download(ctx, args)
  local variant = args.variant
  if args.output == "-" and ctx.printer.json then -- one stdout: the video's bytes or JSON
    check.fail("download", 1, "option 'output': '-' (stdout) cannot hold the video and --json's "
      .. "JSON; give a file name, or leave out --json")
  end
  if args.output ~= "-" then
    -- as generate and wait do: a path that cannot be written is the command line's mistake
    -- (exit 2), found before the request rather than as an io error after it
    local output = args.output or default_output(args.id, variant)
    check_output("download", output)
    local result, err = download_to(ctx, args.id, variant, output)
    if not result then return err end
    return ctx.printer:downloaded(result)
  end
  local stdout, reporter = io.stdout, ctx.reporter
  local ok, err = ctx.client:download_content(args.id, { variant = variant,
    sink = function(chunk) stdout:write(chunk) end,
    on_progress = function(received, total) reporter:bytes(received, total) end })
  stdout:flush()
  reporter:finish()
  if not ok then return err end
end

function commands.character(ctx, args)
  local character, err
  if args.character_command == "create" then
    character, err = ctx.client:create_character{ video = { path = args.video }, name = args.name }
  else
    character, err = ctx.client:get_character(args.id)
  end
  if not character then return err end
  ctx.printer:character(character)
end

-- `sora batch` (cli/batch.lua): returns its exit code
commands.batch = require("sora.cli.batch").run

return commands
