-- sora.emulator: a local, in-memory server of OpenAI's Videos API (Sora) for
-- demos, tests and offline development.
--
--   local emulator = require "sora.emulator"
--   local server = emulator.new{ port = 0, job_seconds = 2 }
--   print(server:url())         --> http://127.0.0.1:PORT/v1
--   server:run()                -- or server:step(timeout) from your own loop
--
-- See docs/emulator.md for the behaviour and the /__emulator/ control API.

local socket = require "socket"
local json = require "sora.emulator.json"
local http = require "sora.emulator.http"
local videos = require "sora.emulator.videos"
local faults = require "sora.emulator.faults"
local errors = require "sora.emulator.errors"
local api = require "sora.emulator.api"
local control = require "sora.emulator.control"
local multipart = require "sora.emulator.multipart"
local random_faults = require "sora.emulator.random_faults"
local options = require "sora.emulator.options"
local sha256 = require "sora.emulator.sha256"
local webhooks = require "sora.emulator.webhooks"
local idempotency = require "sora.emulator.idempotency"

local emulator = { _VERSION = "sora.emulator 0.1" }

local MAX_RECORDED_BODY = 1024 * 1024
local MAX_RECORDED_PART = 64 * 1024
local RECORD_LIMIT = 1000          -- recorded requests kept (the oldest go first)

-- Route table: raw-path pattern (captures are percent-encoded ids) and the
-- handler of each method. Literal routes come before the {id} ones.
local ROUTES = {
  { "^/v1/videos$", { GET = api.list, POST = api.create } },
  { "^/v1/videos/edits$", { POST = api.edit } },
  { "^/v1/videos/extensions$", { POST = api.extend } },
  { "^/v1/videos/characters$", { POST = api.create_character } },
  { "^/v1/videos/characters/([^/]+)$", { GET = api.character } },
  { "^/v1/videos/([^/]+)$", { GET = api.retrieve, DELETE = api.delete } },
  { "^/v1/videos/([^/]+)/remix$", { POST = api.remix } },
  { "^/v1/videos/([^/]+)/content$", { GET = api.content } },
}

local NO_KEY = "You didn't provide an API key. You need to provide your API key in an "
  .. "Authorization header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY), or as the "
  .. "password field (with blank username) if you're accessing the API from your browser and "
  .. "are prompted for a username and password. You can obtain an API key from "
  .. "https://platform.openai.com/account/api-keys."
local BAD_KEY = "Incorrect API key provided. You can find your API key at "
  .. "https://platform.openai.com/account/api-keys."

local Server = {}
Server.__index = Server

local function copy(t)
  local c = {}
  for k, v in pairs(t) do c[k] = v end
  return c
end

-- Returns a server listening on opts.host:opts.port (port 0 picks a free one).
function emulator.new(opts)
  opts = opts or {}
  local self = setmetatable({ log = opts.log }, Server)
  self.initial = {
    job_seconds = opts.job_seconds or 2, api_key = opts.api_key,
    asset_ttl = opts.asset_ttl or 3600, poll_after_ms = opts.poll_after_ms,
    video_bytes = opts.video_bytes, record_limit = opts.record_limit or RECORD_LIMIT,
    fault_rate = opts.fault_rate or 0, fault_seed = opts.fault_seed,
    fault_kinds = opts.fault_kinds, idempotency = opts.idempotency,
    answer_delay_ms = opts.answer_delay_ms,
    webhook_url = opts.webhook_url, webhook_secret = opts.webhook_secret,
  }
  local ok, err = options.check(self.initial)
  if ok then
    ok, err = options.check{ max_connections = opts.max_connections,
      max_body_bytes = opts.max_body_bytes, max_held_bytes = opts.max_held_bytes }
  end
  if not ok then error("sora.emulator.new: " .. err, 2) end
  local body_bytes = opts.max_body_bytes or http.limits.body_bytes
  self.body_limits = { body = body_bytes,
    held = math.min(body_bytes, opts.max_held_bytes or http.limits.held_bytes) }
  self.body_sink = function(req) return self:sink_for(req) end
  -- a deep backlog: clients beyond max_connections wait in it to be accepted
  local listener = assert(socket.bind(opts.host or "127.0.0.1", opts.port or 0, 1024))
  self.host, self.port = listener:getsockname()
  self.loop = http.loop(listener, function(conn) self:serve(conn) end,
    function(problem) self:note("error: " .. tostring(problem)) end, opts.max_connections)
  self:reset()
  return self
end

-- Forgets all videos, characters, requests and faults; restores the start config and
-- zeroes the counters.
function Server:reset()
  self.config = copy(self.initial)
  local server = self
  self.store = videos.new(function() return server.config end)
  -- webhooks: the store tells the sender of each video created or forced
  self.webhooks = self.webhooks or webhooks.new(self)
  self.webhooks:reset()
  self.store.on_change = function(v) server.webhooks:track(v) end
  self.faults = faults.new()
  self.idempotency = idempotency.new()
  self.digests = {}
  self:clear_recorded()
  self:reset_stats()
  self:schedule_faults()
end

-- Restarts the random fault schedule from the configured rate, seed and kinds. Without a
-- seed one is chosen now and shown in the config, so that a run can be replayed.
function Server:schedule_faults()
  local cfg = self.config
  if cfg.fault_seed == nil then
    cfg.fault_seed = math.floor(socket.gettime() * 1000) % 2147483647
  end
  local kinds
  if cfg.fault_kinds then
    kinds = {}
    for _, kind in ipairs(cfg.fault_kinds) do kinds[kind] = true end
  end
  self.random_faults = random_faults.new(cfg.fault_rate or 0, cfg.fault_seed, kinds,
    cfg.answer_delay_ms)
end

function Server:reset_stats()
  self.stats = { requests = 0, faults = {} }
  self.loop:reset_counters()
end

-- The counters of GET /__emulator/stats.
function Server:stats_view()
  collectgarbage("collect")      -- a settled figure, so growth is visible and noise is not
  local faults_seen = {}
  for kind, n in pairs(self.stats.faults) do faults_seen[kind] = n end
  return {
    requests = self.stats.requests, connections_accepted = self.loop.accepted,
    connections_open = self.loop.open, max_connections_open = self.loop.max_open,
    connections_refused = self.loop.refused, faults = faults_seen,
    lua_memory_kb = math.floor(collectgarbage("count")), videos = self.store:count(),
    recorded = self.recorded.last - self.recorded.first + 1,
  }
end

function Server:url()
  return string.format("http://%s:%d/v1", self.host, self.port)
end

function Server:note(line)
  if self.log then self.log(line) end
end

-- Serves for at most timeout seconds; returns false once shut down.
function Server:step(timeout)
  if self.loop.stopped then return false end
  self.loop:step(timeout)
  return not self.loop.stopped
end

-- Serves until POST /__emulator/shutdown (or close()).
function Server:run()
  while self:step(1) do end
  self:close()
end

function Server:close()
  if not self.closed then
    self.closed = true
    self.webhooks:reset()
    self.loop:close()
  end
end

---------------------------------------------------------------------------
-- Recording /v1 requests for GET /__emulator/requests: the last record_limit of them.

function Server:clear_recorded()
  self.recorded = { first = 1, last = 0 }
end

-- Drops the oldest recorded requests beyond the limit.
function Server:trim_recorded()
  local r, limit = self.recorded, self.config.record_limit or RECORD_LIMIT
  while r.last - r.first + 1 > limit do
    r[r.first] = nil
    r.first = r.first + 1
  end
end

-- The recorded requests, oldest first.
function Server:recorded_list()
  local list, r = json.array(), self.recorded
  for i = r.first, r.last do list[#list + 1] = r[i] end
  return list
end

-- What is recorded of an Authorization header: a fingerprint of the credential, never the
-- credential, since the control API has no auth. "Bearer [sha256:<16 hex>]" for bearer auth.
function emulator.fingerprint(value)
  local scheme, token = value:match("^%s*(%S+)%s+(%S+)%s*$")
  if scheme and scheme:lower() == "bearer" then
    return scheme .. " [sha256:" .. sha256.hex(token):sub(1, 16) .. "]"
  end
  return "[sha256:" .. sha256.hex(value):sub(1, 16) .. "]"
end

local function recorded_headers(headers)
  local copy_of = copy(headers)
  if copy_of["authorization"] then
    copy_of["authorization"] = emulator.fingerprint(copy_of["authorization"])
  end
  if copy_of["api-key"] then copy_of["api-key"] = emulator.fingerprint(copy_of["api-key"]) end
  return copy_of
end

local function record(self, req)
  if (self.config.record_limit or RECORD_LIMIT) <= 0 then return end
  local rec = { method = req.method, path = req.path, query = req.query,
    headers = recorded_headers(req.headers) }
  local parts = req.parts
  if parts then
    rec.parts = json.array()
    for i, p in ipairs(parts) do
      rec.parts[i] = { name = p.name, filename = p.filename or json.null,
        content_type = p.content_type or json.null, size = p.size,
        data = p.size <= MAX_RECORDED_PART and p.data or nil }
    end
  elseif #req.body <= MAX_RECORDED_BODY then
    rec.body = req.body
    local ct = req.headers["content-type"] or ""
    if ct:lower():find("json") then rec.json = json.decode(req.body) end
  end
  local r = self.recorded
  r.last = r.last + 1
  r[r.last] = rec
  self:trim_recorded()
end

---------------------------------------------------------------------------
-- Dispatch.

-- Checks the bearer key (or Azure's api-key header); returns an error response or nil.
local function authorize(self, req)
  local auth = req.headers["authorization"] or ""
  local key = auth:match("^%s*[Bb][Ee][Aa][Rr][Ee][Rr]%s+(%S+)%s*$")
  -- Azure OpenAI's form: the raw key in an api-key header
  if not key and req.headers["authorization"] == nil then
    key = (req.headers["api-key"] or ""):match("^%s*(%S+)%s*$")
  end
  if not key then return errors.response(401, NO_KEY, nil, nil) end
  if self.config.api_key and key ~= self.config.api_key then
    return errors.response(401, BAD_KEY, nil, "invalid_api_key")
  end
end

local function route(req)
  local method = req.method == "HEAD" and "GET" or req.method
  for _, r in ipairs(ROUTES) do
    local captures = { req.path:match(r[1]) }
    if captures[1] then
      local handler = r[2][method]
      if not handler then
        local allow = {}
        for m in pairs(r[2]) do allow[#allow + 1] = m end
        table.sort(allow)
        local res = errors.response(405, string.format("Invalid method for URL (%s %s)",
          req.method, req.path))
        res.headers["allow"] = table.concat(allow, ", ")
        return nil, res
      end
      local id = r[1]:find("%(") and http.unescape(captures[1]) or nil
      return handler, id
    end
  end
  return nil, errors.response(404, string.format("Invalid URL (%s %s)", req.method, req.path))
end

-- openai-poll-after-ms: configured, else a tenth of the job, within 50 ms..10 s.
local function poll_after(self, v)
  if self.config.poll_after_ms then return self.config.poll_after_ms end
  return math.min(10000, math.max(50, math.floor(v.job_seconds * 100)))
end

-- Runs a route's handler; a raise is the API's 500.
local function run(self, handler, req, id)
  local ok, result = pcall(handler, self, req, id)
  if ok then return result end
  self:note("error: " .. tostring(result))
  return errors.response(500, "The server had an error while processing your request. "
    .. "Sorry about that!", nil, nil, "server_error")
end

-- A create-type POST (every POST of the API): under an Idempotency-Key already seen, the
-- first answer again (or 422 for another body); else served, its answer kept under its key
-- (sora.emulator.idempotency) and what it made counted by key and body.
local function serve_create(self, req, handler, id)
  local form = api.read_form(req)
  if not form then return run(self, handler, req, id) end -- the handler answers the bad body
  local key, print = idempotency.key(req), idempotency.fingerprint(req, form)
  local honoured = key and self.config.idempotency ~= false
  if honoured then
    local replay = self.idempotency:answer(key, print, os.time())
    if replay then return replay end
  end
  local res = run(self, handler, req, id)
  if res.status >= 200 and res.status < 300 then
    if honoured then self.idempotency:keep(key, print, res, os.time()) end
    local made = res.video and res.video.id or (json.decode(res.body) or {}).id
    self.idempotency:count(key, print, made, form.prompt or form.name)
  end
  return res
end

function Server:handle_api(req)
  local res = authorize(self, req)
  if res then return res end
  local handler, id = route(req)
  if not handler then return id end
  if req.method == "POST" then res = serve_create(self, req, handler, id)
  else res = run(self, handler, req, id) end
  if res.video then
    local status = self.store:render(res.video).status
    if status == "queued" or status == "in_progress" then
      res.headers["openai-poll-after-ms"] = string.format("%d", poll_after(self, res.video))
    end
  end
  return res
end

local function finish(res, request_id, req)
  res.headers = res.headers or {}
  if req and not req.keep_alive then res.headers["connection"] = "close" end
  res.headers["x-request-id"] = request_id
  res.headers["content-type"] = res.headers["content-type"] or "application/json"
  res.headers["server"] = "sora-emulator"
  res.headers["date"] = os.date("!%a, %d %b %Y %H:%M:%S GMT")
  return res
end

-- Serves one request; returns true to keep the connection, and a log status.
function Server:serve_request(conn, req)
  local request_id = "req_" .. videos.hex(32)
  local head = req.method == "HEAD"
  if req.path == "/v1" or req.path:find("^/v1/") then
    record(self, req)
    self.stats.requests = self.stats.requests + 1
    -- Scripted faults first; the random schedule draws for every request all the same, so
    -- its faults fall on the same requests whatever was scripted.
    local scripted = self.faults:take(req.method, req.path)
    local random = self.random_faults:next(req)
    local fault = scripted or random
    if fault then
      local kind = fault.kind or fault.action
      self.stats.faults[kind] = (self.stats.faults[kind] or 0) + 1
    end
    local produce = function() return finish(self:handle_api(req), request_id, req) end
    if fault then
      return faults.apply(fault, conn, req, produce, request_id), fault.action
    end
    local res = produce()
    return http.write_response(conn, res, { head = head }), res.status
  end
  local res
  if req.path:find("^/__emulator/") then
    res = control.handle(self, req)
  else
    res = errors.response(404, string.format("Invalid URL (%s %s)", req.method, req.path))
  end
  res = finish(res, request_id, req)
  return http.write_response(conn, res, { head = head }), res.status
end

-- The sink of a request's body (see http.read_request): a multipart body is parsed as it
-- arrives, up to the body limit, holding at most the held limit; any other is held whole,
-- up to the held limit.
function Server:sink_for(req)
  local limits = self.body_limits
  local boundary = multipart.boundary(req.headers["content-type"])
  if boundary then return multipart.reader(boundary, limits.body, limits.held) end
  return http.held_sink(limits.held)
end

-- What a client still sending a refused request may send before the close.
local LINGER_BYTES = 4 * 1024 * 1024

-- Answers a request that could not be read (status 400, 413, 414, 431 or 505), then closes.
local function refuse(conn, status, err)
  local message = status == 400 and ("Malformed HTTP request: " .. tostring(err))
    or (tostring(err):gsub("^%l", string.upper) .. ".")
  local res = finish(errors.response(status, message), "req_" .. videos.hex(32))
  res.headers["connection"] = "close"
  if http.write_response(conn, res) then conn:linger(LINGER_BYTES) end
end

-- A connection's coroutine: requests in turn while the client keeps it open.
function Server:serve(conn)
  while not conn.closed do
    local req, err, refusal = http.read_request(conn, self.body_sink)
    if not req then
      if refusal and not conn.closed then
        self:note(string.format("refused %d: %s", refusal, tostring(err)))
        refuse(conn, refusal, err)
      end
      return
    end
    local started = socket.gettime()
    local keep, status = self:serve_request(conn, req)
    -- Never the query or headers: they may carry credentials.
    self:note(string.format("%s %s %s %dms", req.method, req.path, tostring(status),
      math.floor((socket.gettime() - started) * 1000 + 0.5)))
    if self.shutting_down then self.loop.stopped = true; return end
    if not keep or not req.keep_alive then return end
  end
end

return emulator
