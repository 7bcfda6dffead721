-- The emulator's webhooks: when a job completes or fails, a signed POST of the event to the
-- configured URL, as OpenAI sends them (Standard Webhooks: webhook-id, webhook-timestamp,
-- webhook-signature), retried on non-2xx answers and failed connections.
--
-- Off unless webhook_url is configured: no coroutine, no socket, no timer. When it is, each
-- video gets one coroutine of the server's loop that sleeps until the clock settles the video,
-- then posts its event over a non-blocking socket, yielding as a connection's coroutine does,
-- so a slow or dead receiver never holds up the API (only resolving a host name other than
-- an address blocks, as it does for every LuaSocket program).
--
-- Events: {"id":"evt_...","object":"event","created_at":...,"type":"video.completed",
-- "data":{"id":"video_..."}} (and video.failed). The webhook-id stays the same across the
-- attempts of one event (it is the receiver's idempotency key); each attempt is signed anew
-- with its own timestamp.

local socket = require "socket"
local json = require "sora.emulator.json"
local http = require "sora.emulator.http"
local videos = require "sora.emulator.videos"
local signing = require "sora.emulator.signing"

local webhooks = {}

--- Seconds before the 2nd, 3rd and 4th attempt; a 4th failure gives the event up.
webhooks.RETRY_DELAYS = { 0.5, 1, 2 }
--- Seconds an attempt may take: connecting, sending, and the answer's head.
webhooks.ATTEMPT_TIMEOUT = 10

local DELIVERY_LIMIT = 1000          -- attempts kept for GET /__emulator/webhooks
local MAX_ANSWER_BODY = 64 * 1024    -- an answer's body is read (and dropped) up to this
local USER_AGENT = "OpenAI/1.0 (+https://platform.openai.com/docs/webhooks) sora-emulator"
local EVENT_KEYS = { "id", "object", "created_at", "type", "data" }
local DELIVERY_KEYS = { "webhook_id", "event_id", "type", "video_id", "attempt", "status",
  "error", "at" }

-- ---- configuration ----------------------------------------------------------------------

--- { host, port, target, authority } of an http:// URL, or nil, message. The emulator speaks
-- no TLS, so https:// is refused rather than sent in the clear.
function webhooks.parse_url(url)
  if type(url) ~= "string" then return nil, "webhook_url must be a string" end
  local host, port, target = url:match("^[Hh][Tt][Tt][Pp]://([%w%.%-_]+):?(%d*)([^#]*)$")
  if not host then
    return nil, "webhook_url must be an http:// URL with a host (no TLS, no fragment): " .. url
  end
  if target ~= "" and not target:find("^[/?]") then
    return nil, "webhook_url must be an http:// URL with a host (no TLS, no fragment): " .. url
  end
  port = port == "" and 80 or tonumber(port)
  if port < 1 or port > 65535 then return nil, "webhook_url's port must be 1..65535" end
  if target:find("[%s%c]") then return nil, "webhook_url must not hold spaces or controls" end
  if target:sub(1, 1) ~= "/" then target = "/" .. target end
  return { host = host, port = port, target = target,
           authority = port == 80 and host or (host .. ":" .. port) }
end

--- Checks webhook_url and webhook_secret of an options table: true or nil, message.
function webhooks.check(o)
  if o.webhook_url ~= nil then
    local ok, err = webhooks.parse_url(o.webhook_url)
    if not ok then return nil, err end
    if o.webhook_secret == nil then return nil, "webhook_url needs a webhook_secret (whsec_...)" end
  end
  if o.webhook_secret ~= nil then
    local ok, err = signing.secret_key(o.webhook_secret)
    if not ok then return nil, "webhook_secret: " .. err end
  end
  return true
end

-- ---- the sender -------------------------------------------------------------------------

local Sender = {}
Sender.__index = Sender

--- The sender of a server (one per server; reset() forgets what is pending).
function webhooks.new(server)
  local self = setmetatable({ server = server, generation = 0, active = {} }, Sender)
  self:reset()
  return self
end

-- Forgets the recorded deliveries and gives up every pending event.
function Sender:reset()
  self.generation = self.generation + 1
  self:clear()
  self:close_connections()
end

function Sender:clear()
  self.deliveries = { first = 1, last = 0 }
end

-- The recorded attempts, oldest first (GET /__emulator/webhooks).
function Sender:list()
  local list, d = json.array(), self.deliveries
  for i = d.first, d.last do list[#list + 1] = d[i] end
  return list
end

function Sender:record(delivery)
  local d = self.deliveries
  d.last = d.last + 1
  d[d.last] = json.ordered(DELIVERY_KEYS, delivery)
  if d.last - d.first + 1 > DELIVERY_LIMIT then
    d[d.first] = nil
    d.first = d.first + 1
  end
end

-- Ends the attempts under way: each finds its connection closed and, its generation past,
-- gives up.
function Sender:close_connections()
  for conn in pairs(self.active) do
    conn:close()
    self.server.loop:interrupt(conn.sock)
  end
  self.active = {}
end

-- True once a watch or delivery started under other circumstances must end: the server was
-- reset, webhooks were turned off, or (for a video) a newer watch replaced this one or the
-- video is gone.
function Sender:stale(generation, v, watch)
  if generation ~= self.generation or not self.server.config.webhook_url then return true end
  return v ~= nil and (v.webhook_watch ~= watch or self.server.store:get(v.id) ~= v)
end

--- Watches video v (created, or forced) until it settles, then sends its event. Called by the
-- store; does nothing while webhooks are off or once v's event went out.
function Sender:track(v)
  if not self.server.config.webhook_url or v.webhook_sent then return end
  v.webhook_watch = (v.webhook_watch or 0) + 1
  local watch, generation = v.webhook_watch, self.generation
  self.server.loop:spawn(function() self:watch(v, watch, generation) end)
end

--- Watches every live video still running (webhooks were just configured): those that
-- settled before get no event.
function Sender:track_all()
  local store = self.server.store
  for _, v in pairs(store.byid) do
    local status = store:render(v).status
    if status ~= "completed" and status ~= "failed" then self:track(v) end
  end
end

function Sender:watch(v, watch, generation)
  while not self:stale(generation, v, watch) do
    local status = self.server.store:render(v).status
    if status == "completed" or status == "failed" then
      v.webhook_sent = true
      return self:deliver(v, "video." .. status, generation)
    end
    local due = videos.settles_at(v)
    if not due then return end -- a forced status holds it: the next force watches again
    coroutine.yield("t", due)
  end
end

-- The event's JSON text.
local function event_body(event_id, event_type, video_id)
  return json.encode(json.ordered(EVENT_KEYS, {
    id = event_id, object = "event", created_at = math.floor(socket.gettime()),
    type = event_type, data = { id = video_id },
  }))
end

-- Sends the event of v, retrying after RETRY_DELAYS; records every attempt.
function Sender:deliver(v, event_type, generation)
  local event_id, webhook_id = "evt_" .. videos.hex(32), "wh_" .. videos.hex(32)
  local body = event_body(event_id, event_type, v.id)
  for attempt = 1, #webhooks.RETRY_DELAYS + 1 do
    if self:stale(generation) then return end
    local status, err = self:attempt(webhook_id, body)
    if self:stale(generation) then return end -- reset while it ran: not recorded
    self:record{ webhook_id = webhook_id, event_id = event_id, type = event_type,
      video_id = v.id, attempt = attempt, status = status or json.null, error = err or json.null,
      at = socket.gettime() }
    self.server:note(string.format("webhook %s %s -> %s (attempt %d)", event_type, v.id,
      tostring(status or err), attempt))
    if status and status >= 200 and status < 300 then return end
    local delay = webhooks.RETRY_DELAYS[attempt]
    if delay then coroutine.yield("t", socket.gettime() + delay) end
  end
end

-- The request's head: the signature headers are made now, for this attempt.
local function request_head(target, webhook_id, body, key)
  local timestamp = string.format("%d", os.time())
  return table.concat({
    "POST " .. target.target .. " HTTP/1.1",
    "host: " .. target.authority,
    "user-agent: " .. USER_AGENT,
    "content-type: application/json",
    "content-length: " .. #body,
    "webhook-id: " .. webhook_id,
    "webhook-timestamp: " .. timestamp,
    "webhook-signature: " .. signing.signature(key, webhook_id, timestamp, body),
    "connection: close",
    "", "",
  }, "\r\n")
end

-- Connects conn's socket without blocking; true, or nil, message.
local function connect(conn, target)
  local address = socket.dns.toip(target.host)
  if not address then return nil, "cannot resolve " .. target.host end
  local ok, err = conn.sock:connect(address, target.port)
  if not ok and err == "timeout" then -- in progress: writable once it is decided
    coroutine.yield("w", conn.sock)
    if conn.closed then return nil, "timeout" end
    ok, err = conn.sock:connect(address, target.port)
    if err == "already connected" then ok = true end
  end
  if not ok then return nil, "connect: " .. tostring(err) end
  return true
end

-- Reads the answer's head (and a small body): its status, or nil, message.
local function read_answer(conn)
  local line = conn:read_line()
  local status = line and tonumber(line:match("^HTTP/%d%.%d (%d%d%d)"))
  if not status then return nil, conn.closed and "no answer" or "not an HTTP answer" end
  local length
  repeat
    line = conn:read_line()
    if not line then return nil, "answer cut off" end
    local n = line:lower():match("^content%-length:%s*(%d+)%s*$")
    if n then length = tonumber(n) end
  until line == ""
  if length and length <= MAX_ANSWER_BODY then conn:read(length) end
  return status
end

-- One request and its answer over conn; the answer's status, or nil, message.
local function exchange(conn, target, head, body)
  local ok, err = connect(conn, target)
  if not ok then return nil, err end
  if not conn:send(head .. body) then return nil, "connection closed while sending" end
  return read_answer(conn)
end

-- One attempt, within ATTEMPT_TIMEOUT: a watchdog coroutine closes the connection and ends
-- the attempt's wait when the time is up.
function Sender:attempt(webhook_id, body)
  local cfg = self.server.config
  local target = webhooks.parse_url(cfg.webhook_url)
  local key = signing.secret_key(cfg.webhook_secret)
  local sock = (socket.tcp4 or socket.tcp)()
  local conn = http.connection(sock)
  local state = {}
  self.active[conn] = true
  self.server.loop:spawn(function()
    coroutine.yield("t", socket.gettime() + webhooks.ATTEMPT_TIMEOUT)
    if state.done then return end
    state.timed_out = true
    conn:close()
    self.server.loop:interrupt(sock)
  end)
  local status, err = exchange(conn, target, request_head(target, webhook_id, body, key), body)
  state.done = true
  self.active[conn] = nil
  conn:close()
  if state.timed_out then return nil, "timeout" end
  return status, err
end

return webhooks
