--- The `sora` command: make videos with the OpenAI Videos API from the shell.
--
--   local code = require("sora.cli").main(arg)   -- bin/sora does this, then os.exit(code)
--
-- One file per concern: parser.lua (argparse: commands and flags), commands.lua (what each
-- command does with the client), output.lua (text and JSON), progress.lua (the bar and the
-- plain lines), exit.lua (the exit codes). docs/cli.md documents the whole command.
local parser = require "sora.cli.parser"
local exit = require "sora.cli.exit"
local output = require "sora.cli.output"

local format = string.format

local cli = {}

-- Flags named by the client's fields and options in its argument errors.
local FLAG_OF = {
  input_reference = "--image", prompt = "<prompt>", model = "--model", seconds = "--seconds",
  size = "--size", video = "<video>", name = "--name", limit = "--limit", order = "--order",
  after = "--after", variant = "--variant", path = "--output", output = "--output", timeout = "--timeout",
  interval = "--interval", max_retries = "--max-retries", base_url = "--base-url",
  organization = "--organization", project = "--project", api_key = "--api-key",
  api_key_cmd = "--api-key-cmd", proxy = "--proxy",
}

-- A raised "bad argument #1 to 'create' (field 'input_reference': ...)" as the command line
-- knows it ("--image: ..."); nil for any other error.
local function argument_error(err)
  if type(err) ~= "string" then return nil end
  local detail = err:match("bad argument #%d+ to '[^']+' %((.*)%)$")
  if not detail then return nil end
  return (detail:gsub("^(%a+) '([%w_]+)'", function(what, name)
    if what ~= "field" and what ~= "option" then return nil end
    return FLAG_OF[name] or ("'" .. name .. "'")
  end))
end

-- The values of --api-key in argv, to be redacted even from usage errors.
local function secrets_of(argv)
  local secrets = { os.getenv("OPENAI_API_KEY") }
  for i = 1, #argv do
    local inline = argv[i]:match("^%-%-api%-key=(.+)$")
    if inline then secrets[#secrets + 1] = inline end
    if argv[i] == "--api-key" and argv[i + 1] then secrets[#secrets + 1] = argv[i + 1] end
  end
  return secrets
end

-- Whether --json is among the options (before a "--" that ends them).
local function wants_json(argv)
  for i = 1, #argv do
    if argv[i] == "--" then return false end
    if argv[i] == "--json" then return true end
  end
  return false
end

-- "unknown option '--prompt'" (or '--promt') from a command whose usage has <prompt>: the
-- argument is given without an option name; the usage line says which arguments it has.
local function explain_unknown(message, usage)
  local flag = message:match("^unknown option '%-%-([%w_-]+)'$")
  if not flag then return message end
  local arguments = {}
  for name in usage:gsub("%-[%w-]+ <[^>]*>", ""):gmatch("<([%w_]+)>") do
    if name ~= "command" then arguments[name] = true end
  end
  local name = require("sora.args").nearest(flag, arguments)
  if not name then return message end
  return format("%s: <%s> is an argument, given without an option name", message, name)
end

local function parse(argv, printer)
  local p = parser.new()
  local ok, args = pcall(p.parse, p, argv)
  if ok then return args, p end
  if type(args) ~= "table" or not args.usage then error(args, 0) end
  local message = explain_unknown(args.message, args.usage)
  printer:usage_error(format("%s\n\nsora: %s (try --help)\n", args.usage, message), message)
  return nil
end

local function version()
  local sora = require "sora"
  print(format("sora %s (libcurl %s, %s)", sora._VERSION, sora.curl_version,
    type(jit) == "table" and jit.version or _VERSION))
  return exit.OK
end

-- `sora emulator ...`: the emulator's own command line, when its module is installed.
local function emulator(args, printer)
  local ok, emulator_cli = pcall(require, "sora.emulator.cli")
  if not ok then
    local missing = tostring(emulator_cli):match("module '([^']+)' not found")
    if missing == "sora.emulator.cli" then
      printer.err:write("sora emulator: the module sora.emulator is not installed; it comes "
        .. "with the sora-emulator rock (luarocks install sora-emulator)\n")
    elseif missing then
      printer.err:write(format("sora emulator: it needs the module '%s' (LuaSocket: luarocks "
        .. "install luasocket, or apt-get install lua-socket)\n", missing))
    else
      printer.err:write("sora emulator: ", tostring(emulator_cli), "\n")
    end
    return exit.OTHER
  end
  emulator_cli.main(args.arguments)
  return exit.OK
end

-- The request log of -v: a line per request (method, URL, status, time, request id), through
-- the printer, which ends a progress bar first. The client logs a retried attempt twice (its
-- line, then the same with ", retrying in N ms"; each tells the time it was made): -v shows it
-- once, -vv both.
local function request_log(args, printer)
  local verbose, last = args.verbose or 0, nil
  if verbose == 0 then return nil end
  return function(line)
    local timeless = line:gsub(", %d+ ms", "", 1)
    local repeated = last and timeless:sub(1, #last) == last
    last = timeless
    if not repeated or verbose >= 2 then printer:log(line) end
  end
end

-- The client, from the flags and the environment; nil and an exit code when it cannot be.
local function client_for(args, printer)
  -- the key: --api-key, else --api-key-cmd's output, else the environment (sora.new's order)
  local key = args.api_key or (not args.api_key_cmd and os.getenv("OPENAI_API_KEY")) or nil
  if (not key or key == "") and not args.api_key_cmd then
    printer:error(args.command, "no API key: set OPENAI_API_KEY or pass --api-key or --api-key-cmd")
    return nil, exit.AUTH
  end
  local sora = require "sora"
  local ok, client = pcall(sora.new, {
    api_key = key, api_key_cmd = not args.api_key and args.api_key_cmd or nil,
    base_url = args.base_url, proxy = args.proxy, organization = args.organization,
    project = args.project, max_retries = args.max_retries, log = request_log(args, printer),
  })
  if ok then
    printer:debug(format("base URL %s, max retries %s, sora %s, libcurl %s", client:base_url(),
      tostring(args.max_retries or 2), sora._VERSION, sora.curl_version))
    return client
  end
  local message = argument_error(client) or tostring(client)
  printer:error(args.command, message)
  -- a key command that fails or prints nothing leaves no key: as without one
  return nil, message:find("--api-key-cmd", 1, true) and exit.AUTH or exit.USAGE
end

-- Runs the command; returns its exit code.
local function run(args, printer)
  local client, code = client_for(args, printer)
  if not client then return code end
  local progress = require "sora.cli.progress"
  local mode = args.quiet and "none" or progress.mode(args.progress)
  local ctx = { client = client, printer = printer, reporter = progress.new(mode, io.stderr) }
  printer.reporter = ctx.reporter
  local commands = require "sora.cli.commands"
  local ok, err = pcall(commands[args.command], ctx, args)
  client:close()
  if ok and err == nil then return exit.OK end
  if ok and type(err) == "number" then return err end -- a command that chose its exit code
  if ok or require("sora").is_error(err) then
    printer:error(args.command, err)
    return exit.for_error(err)
  end
  -- the interpreter's SIGINT handler raises "interrupted!" at the next Lua instruction (on 5.1,
  -- 5.2 and LuaJIT, one that lands inside on_progress comes back with a traceback appended)
  if type(err) == "string" and (err:match("interrupted!$") or err:match("interrupted!\nstack traceback:")) then
    -- what was being done when it came: the command that picks the video up again
    local hint = ctx.resume and "; resume with: " .. ctx.resume or ""
    printer:error(args.command, "interrupted" .. hint, "interrupted", { resume = ctx.resume })
    return exit.INTERRUPTED
  end
  local usage = argument_error(err)
  printer:error(args.command, usage or err, usage and "usage" or nil)
  return usage and exit.USAGE or exit.OTHER
end

--- Runs the command line `argv` (a list of strings, as `arg`); returns the exit code.
function cli.main(argv)
  local args = {}
  for i = 1, #argv do args[i] = argv[i] end
  -- --json as written, before the parser has read it: a usage error is JSON too
  local printer = output.new(wants_json(args), secrets_of(args))
  local parsed, p = parse(args, printer)
  if not parsed then return exit.USAGE end
  printer.json, printer.quiet, printer.verbose = parsed.json, parsed.quiet, parsed.verbose or 0
  if parsed.version then return version() end
  if not parsed.command then
    printer:usage_error(p:get_usage() .. "\n\nsora: a command is required (try --help)\n",
      "a command is required")
    return exit.USAGE
  end
  if parsed.command == "emulator" then return emulator(parsed, printer) end
  if parsed.command == "batch" then -- --dry-run and --status need no key and send nothing
    local code = require("sora.cli.batch").offline(parsed)
    if code then return code end
  end
  return run(parsed, printer)
end

return cli
