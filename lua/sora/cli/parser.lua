--- The command line of `sora`, declared with argparse: every command, its arguments and a
-- flag for every parameter of the API call it makes (the OpenAI Videos API as in
-- /videos-openapi: model, prompt, seconds, size, input_reference for creates; limit, order,
-- after for lists; variant for downloads). Values are checked here only where the API's
-- answer would come too late or not at all (numbers, local choices); the API's own enums
-- (model, seconds, size) are left to the server, since gateways extend them.
local argparse = require "argparse"

local parser = {}

local VARIANTS = { "video", "thumbnail", "spritesheet" }

local function number(text)
  local value = tonumber(text)
  if value and value >= 0 and value == value then return value end
  return nil, "a non-negative number expected, got '" .. text .. "'"
end

local function integer(text)
  local value = tonumber(text)
  if value and value >= 0 and value == math.floor(value) then return math.floor(value) end
  return nil, "a non-negative integer expected, got '" .. text .. "'"
end

-- A file to download to after a wait: stdout would mix the video's bytes with the lines
-- that tell how the wait went, so `-o -` belongs to `sora download` alone.
local function file_path(text)
  if text == "-" then return nil, "'-' (stdout) is for sora download; give a file name" end
  return text
end

local GLOBAL_EPILOG = [[
Global options (before or after the command): --api-key, --api-key-cmd, --base-url, --proxy, --organization,
--project, --json, --progress, --max-retries, -v, -q. See `sora --help`.]]

-- The parameters of a create (POST /videos).
local function create_flags(cmd)
  cmd:argument("prompt", "Text prompt that describes the video.")
  cmd:option("--model", "Model (sora-2, sora-2-pro, ...; the server's default: sora-2).")
  cmd:option("--seconds", "Clip duration in seconds (4, 8, 12; the server's default: 4).")
  cmd:option("--size", "Resolution, width x height (720x1280, 1280x720, 1024x1792, 1792x1024).")
  cmd:mutex(
    cmd:option("-i --image", "Reference image to upload (JPEG, PNG or WebP) as input_reference."):argname("<path>"),
    cmd:option("--image-url", "input_reference by URL (or a base64 data URL)."):argname("<url>"),
    cmd:option("--file-id", "input_reference by the id of an uploaded file."):argname("<id>"))
  cmd:flag("--no-check-reference", "Upload --image even when its dimensions differ from --size "
    .. "(by default that is refused before anything is sent).")
end

-- Waiting and downloading after a create, remix, edit or extend.
local function finish_flags(cmd, always)
  if not always then
    cmd:flag("-w --wait", "Wait until the video completes (or fails).")
  end
  cmd:option("-o --output", always and "Where to write the video (default: <id>.mp4)."
    or "Wait, then download the video to this file."):argname("<path>"):convert(file_path)
  cmd:option("--variant", "What to download."):choices(VARIANTS):default("video")
  cmd:option("--timeout", "Seconds the whole command may take (default 900)."):convert(number)
  cmd:option("--interval", "Seconds between polls (default: the server's hint, growing)."):convert(number)
end

local function command(p, name, summary)
  return p:command(name, summary):epilog(GLOBAL_EPILOG)
end

local function add_commands(p)
  local generate = command(p, "generate", "Create a video, wait for it and download it.")
  create_flags(generate)
  finish_flags(generate, true)

  local create = command(p, "create", "Start a video (POST /videos); prints it at once.")
  create_flags(create)
  finish_flags(create)

  command(p, "get", "Show a video (GET /videos/{id}).")
    :argument("id", "The video's id.")

  local list = command(p, "list", "List videos (GET /videos): one page, or --all of them.")
  list:option("--limit", "Videos per page (0-100; the server's default: 20)."):convert(integer)
  list:option("--order", "By creation time."):choices{ "asc", "desc" }
  list:option("--after", "Start after this video id (a cursor)."):argname("<id>")
  list:flag("-a --all", "Follow the pages to the end.")

  command(p, "delete", "Delete a video (DELETE /videos/{id}).")
    :argument("id", "The video's id.")

  local remix = command(p, "remix", "Remix a completed video (POST /videos/{id}/remix).")
  remix:argument("id", "The video to remix.")
  remix:argument("prompt", "What to change.")
  finish_flags(remix)

  local download = command(p, "download", "Download a video's content (GET /videos/{id}/content).")
  download:argument("id", "The video's id.")
  download:option("-o --output", "Where to write it (default: <id>.mp4, .webp or .jpg; - for stdout).")
    :argname("<path>")
  download:option("--variant", "What to download."):choices(VARIANTS):default("video")

  local wait = command(p, "wait", "Wait until a video completes or fails.")
  wait:argument("id", "The video's id.")
  wait:option("-o --output", "Then download it to this file."):argname("<path>"):convert(file_path)
  wait:option("--variant", "What to download."):choices(VARIANTS):default("video")
  wait:option("--timeout", "Seconds to wait (default 900)."):convert(number)
  wait:option("--interval", "Seconds between polls (default: the server's hint, growing)."):convert(number)

  local edit = command(p, "edit", "Edit a video (POST /videos/edits).")
  edit:argument("video", "A video id, or a video file to upload (a path with / or .).")
  edit:argument("prompt", "How to edit it.")
  finish_flags(edit)

  local extend = command(p, "extend", "Extend a video (POST /videos/extensions).")
  extend:argument("video", "A video id, or a video file to upload (a path with / or .).")
  extend:argument("prompt", "What happens next.")
  extend:option("--seconds", "Length of the new segment in seconds (4, 8, 12, 16, 20).")
    :args(1):count(1)
  finish_flags(extend)

  local character = command(p, "character", "Create or show a character (/videos/characters).")
  character:command_target("character_command")
  local ccreate = character:command("create", "Create a character from a video file (POST).")
  ccreate:argument("video", "The video file.")
  ccreate:option("--name", "Display name (1-80 characters)."):count(1)
  character:command("get", "Show a character (GET /videos/characters/{id}).")
    :argument("id", "The character's id.")

  require("sora.cli.batch").declare(command(p, "batch", "Make many videos from a file of jobs, "
    .. "resumable (a journal)."), number, integer)

  local emulator = command(p, "emulator", "Run the local emulator of the API (sora-emulator).")
  emulator:handle_options(false)
  emulator:argument("arguments", "Its options: see `sora emulator --help`."):args("*")
end

local function add_globals(p)
  p:option("--api-key", "API key (default: $OPENAI_API_KEY; prefer the environment, "
    .. "since a command line is visible to other users)."):argname("<key>")
  p:option("--api-key-cmd", "A command that prints the API key (e.g. 'pass show openai'); "
    .. "used when --api-key is not given, before $OPENAI_API_KEY."):argname("<command>")
  p:option("--proxy", "Proxy URL (default: $https_proxy and the other lower-case variables)."):argname("<url>")
  p:option("--base-url", "API base URL (default: $OPENAI_BASE_URL, else https://api.openai.com/v1)."):argname("<url>")
  p:option("--organization", "OpenAI organization (default: $OPENAI_ORG_ID).")
  p:option("--project", "OpenAI project (default: $OPENAI_PROJECT_ID).")
  p:option("--max-retries", "Retries of a failed request (default 2)."):convert(integer)
  p:flag("--json", "Machine-readable output: one JSON object (one per line for lists).")
  p:option("--progress", "Progress while waiting and downloading: a bar on a terminal, "
    .. "else lines."):choices{ "auto", "bar", "lines", "none" }:default("auto")
  p:flag("-v --verbose", "Log each request to stderr (twice: and debug detail)."):count("*")
  p:flag("-q --quiet", "No progress or status lines on stderr (errors still are).")
  p:flag("--version", "Show the versions of sora and libcurl and exit.")
end

--- The parser of the whole command line. Its `error` raises { usage = ..., message = ... }
-- (for the command being parsed) instead of exiting, so that main chooses the exit code.
function parser.new()
  local p = argparse("sora", "Make videos with the OpenAI Videos API (Sora) from the shell.")
    :epilog("Exit codes: 0 ok, 1 other, 2 usage, 3 bad request, 4 authentication, 5 not found,\n"
      .. "6 rate limit, 7 server, 8 connection, 9 timeout, 10 video failed, 11 local file,\n"
      .. "12 jobs of a batch failed.\n"
      .. "Documentation: docs/cli.md.")
  p:command_target("command")
  p:require_command(false)
  add_globals(p)
  add_commands(p)
  p.error = function(current, message)
    error({ usage = current:get_usage(), message = message }, 0)
  end
  return p
end

return parser
