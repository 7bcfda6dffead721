-- The command line of sora-emulator, as a module so that launchers and tests share it.

local cli = {}

local USAGE = [[
usage: sora-emulator [options]
  --host H            address to bind (default 127.0.0.1)
  --port N            port (default 8000; 0 picks a free port)
  --job-seconds S     seconds a video takes to complete (default 2)
  --api-key K         accept only this bearer key (default: any non-empty key)
  --asset-ttl S       seconds a completed video's content stays downloadable (default 3600)
  --poll-after-ms N   openai-poll-after-ms header value (default: derived from --job-seconds)
  --video-bytes N     serve every video as a synthetic N-byte body (download tests)
  --fault-rate R      share of /v1 requests (0..1) meeting a random fault (default 0)
  --fault-seed N      seed of the random fault schedule (default: chosen, see the config)
  --fault-kinds LIST  comma-separated kinds the schedule may draw (default: all)
  --answer-delay-ms LO,HI  how late an answer_delayed fault answers (default 1000,2000)
  --idempotency on|off honour Idempotency-Key as the IETF draft says (default on; off:
                      as OpenAI's API, which ignores it)
  --record-limit N    recorded requests kept for the control API (default 1000; 0 = none)
  --max-connections N connections served at once; more wait to be accepted (default 1008)
  --max-body-bytes N  largest request body; larger ones get 413 (default 536870912)
  --max-held-bytes N  most of a request held in memory, so the largest JSON body
                      (default 33554432; uploads beyond it are streamed)
  --webhook-url URL   POST a signed video.completed / video.failed event here (http://)
  --webhook-secret S  the whsec_... secret that signs them (needed with --webhook-url)
  --quiet             do not log requests to stderr
  --help              show this help
Prompts containing "#fail" end as failed (moderation_blocked).
Control API for tests: http://HOST:PORT/__emulator/ (see docs/emulator.md).]]

local function fail(message)
  io.stderr:write("sora-emulator: ", message, "\n(try --help)\n")
  os.exit(2)
end

local OPTIONS = {
  ["--host"] = { "host", "string" }, ["--port"] = { "port", "integer" },
  ["--job-seconds"] = { "job_seconds", "number" }, ["--api-key"] = { "api_key", "string" },
  ["--asset-ttl"] = { "asset_ttl", "number" }, ["--poll-after-ms"] = { "poll_after_ms", "integer" },
  ["--video-bytes"] = { "video_bytes", "integer" },
  ["--fault-rate"] = { "fault_rate", "number" }, ["--fault-seed"] = { "fault_seed", "integer" },
  ["--fault-kinds"] = { "fault_kinds", "list" }, ["--record-limit"] = { "record_limit", "integer" },
  ["--max-connections"] = { "max_connections", "integer" },
  ["--max-body-bytes"] = { "max_body_bytes", "integer" },
  ["--max-held-bytes"] = { "max_held_bytes", "integer" },
  ["--webhook-url"] = { "webhook_url", "string" }, ["--webhook-secret"] = { "webhook_secret", "string" },
  ["--idempotency"] = { "idempotency", "switch" }, ["--answer-delay-ms"] = { "answer_delay_ms", "integers" },
}

local SWITCH = { on = true, ["true"] = true, off = false, ["false"] = false }

local function split_list(value)
  local list = {}
  for item in value:gmatch("[^,%s]+") do list[#list + 1] = item end
  return list
end

local function parse_args(args)
  local opts = { host = "127.0.0.1", port = 8000 }
  local i = 1
  while i <= #args do
    local a = args[i]
    local name, inline = a:match("^(%-%-[%w-]+)=(.*)$")
    name = name or a
    if name == "--help" or name == "-h" then
      print(USAGE); os.exit(0)
    elseif name == "--quiet" then
      opts.quiet = true
    elseif OPTIONS[name] then
      local value = inline
      if not value then
        i = i + 1
        value = args[i]
        if not value then fail(name .. " needs a value") end
      end
      local key, kind = OPTIONS[name][1], OPTIONS[name][2]
      if kind == "list" then
        value = split_list(value)
      elseif kind == "switch" then
        if SWITCH[value] == nil then fail(name .. " expects on or off, got '" .. value .. "'") end
        value = SWITCH[value]
      elseif kind == "integers" then
        value = split_list(value)
        for k, item in ipairs(value) do value[k] = tonumber(item) or item end
      elseif kind ~= "string" then
        local n = tonumber(value)
        if not n or n < 0 or (kind == "integer" and n ~= math.floor(n)) then
          fail(string.format("%s expects a non-negative %s, got '%s'", name, kind, value))
        end
        value = n
      elseif value == "" then
        fail(name .. " needs a non-empty value")
      end
      opts[key] = value
    else
      fail("unknown option '" .. a .. "'")
    end
    i = i + 1
  end
  if opts.port > 65535 then fail("--port must be 0..65535") end
  if opts.job_seconds == 0 then opts.job_seconds = 0.001 end
  if opts.fault_rate and opts.fault_rate > 1 then fail("--fault-rate must be 0..1") end
  local ok, err = require("sora.emulator.options").check(opts)
  if not ok then fail(err) end
  return opts
end

--- Runs the emulator with command-line arguments (a list of strings); returns only when
-- the server is shut down through its control API.
function cli.main(args)
  local opts = parse_args(args or {})
  local emulator = require "sora.emulator"
  if not opts.quiet then
    opts.log = function(line)
      io.stderr:write(os.date("%H:%M:%S "), line, "\n")
      io.stderr:flush()
    end
  end
  local ok, server = pcall(emulator.new, opts)
  if not ok then
    -- the user's words, not the emulator's source position; and the way out of a taken port
    local why = tostring(server):gsub("^[^\n]-%.lua:%d+: ", "")
    if why:find("address already in use", 1, true) then why = why .. " (--port 0 picks a free port)" end
    io.stderr:write("sora-emulator: cannot listen on ", opts.host, ":", tostring(opts.port),
      ": ", why, "\n")
    os.exit(1)
  end
  io.stdout:write("sora-emulator listening on ", server:url(), "\n")
  io.stdout:flush()
  server:run()
end

return cli
