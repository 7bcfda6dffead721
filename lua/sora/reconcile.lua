--- Never pay twice: a create whose answer was lost is looked for before it is sent again.
--
-- Every create-type call (create, remix, edit, extend, create_character) carries an
-- Idempotency-Key (csrc/idempotency.c), the same on every attempt. Each attempt is one
-- attempt on a fresh connection: the C core never sends a create again by itself once the
-- request has left (a reset, a timeout, a cut or malformed answer, a 5xx without an API error
-- body: err.maybe_sent). Then this module lists the newest videos and adopts one that matches
-- what was sent and that no call of this client has returned or adopted; only when none is
-- found does it send the create again, with the same key.
--
--   reconcile.new_key()                           a fresh key: 32 lower-case hex digits,
--                                                 128 bits from the kernel (getrandom)
--   reconcile.claim(client, id)                   id is taken: never adopted again
--   reconcile.find(client, name, params, since [, source_id])
--                                                 the adopted Video (claimed) | false, and
--                                                 the listing's response; or nil, err
--   reconcile.send(client, name, start, ...)      a create-type call, reconciled
local core = require "sora.core"
local tasks = require "sora.tasks"

local now, make_error = core.now, core.error
local os_time, type, setmetatable, tostring = os.time, type, setmetatable, tostring
local pairs, ipairs, tonumber, next, pcall = pairs, ipairs, tonumber, next, pcall
local format, floor = string.format, math.floor

local reconcile = {}

reconcile.new_key = core._random_key

-- created_at and Date have whole seconds: a video made by our request may read up to about
-- two seconds before our clock's send time once the server's offset is measured.
reconcile.SKEW_ALLOWANCE = 2
-- Without a Date header the offset is unknown: look further back.
reconcile.NO_DATE_ALLOWANCE = 300
-- A real server may list a new video a moment late: the one look again after this pause.
reconcile.LOOK_AGAIN_AFTER = 1
local PAGE_LIMIT = 100
local MIN_DEADLINE = 0.001 -- seconds: the C core takes only a positive deadline
local MAX_PAGES = 50 -- a broken server that always says has_more must not hold the call

-- ---- the ids a client has returned or adopted -------------------------------------------

local function claimed(client)
  local state = client:_state()
  local set = state.claimed
  if not set then
    set = {}
    state.claimed = set
  end
  return set
end

--- Enters `id` into the client's set of videos already returned or adopted: no call of this
-- client adopts it afterwards (identical jobs in flight never adopt each other's videos).
function reconcile.claim(client, id)
  claimed(client)[id] = true
end

-- An adoption that may turn out to be another call's: claimed by `owner` (its transfer), and
-- given back only while no one else has claimed it since.
local function claim_for(client, id, owner)
  claimed(client)[id] = owner
end

local function give_back(client, id, owner)
  local set = claimed(client)
  if set[id] == owner then set[id] = nil end
end

-- ---- the client's creates in flight ------------------------------------------------------

-- A call whose answer was lost must not look while a like call of the same client is still
-- waiting for its answer: that call's video already exists and, being unclaimed, would be
-- adopted, and then returned twice. Like calls: the same endpoint and prompt (and source), a
-- superset of those whose videos could match. Kept as transfers, so that a call waits for the
-- transfers to end whoever drives them (a task, or a blocking call elsewhere).
local function in_flight(client)
  local state = client:_state()
  local by_signature = state.in_flight
  if not by_signature then
    by_signature = {}
    state.in_flight = by_signature
  end
  return by_signature
end

-- Enters a call's transfer under its signature, or (leaving) takes it out again. Entries are
-- counted by signature (`like_started`): a look during which a like call started may have seen
-- that call's video. (The counts stay, one small entry per prompt the client sent.)
local function enter(client, sig, transfer)
  local state = client:_state()
  local by_signature = in_flight(client)
  local set = by_signature[sig] or setmetatable({}, { __mode = "k" })
  by_signature[sig] = set
  set[transfer] = true
  local started = state.like_started or {}
  state.like_started = started
  started[sig] = (started[sig] or 0) + 1
end

local function like_started(client, sig)
  local started = client:_state().like_started
  return started and started[sig] or 0
end

local function leave(client, sig, transfer)
  local by_signature = in_flight(client)
  local set = by_signature[sig]
  if not set then return end
  set[transfer] = nil
  if next(set) == nil then by_signature[sig] = nil end
end

local function signature(name, params, source_id)
  return format("%s\0%s\0%s", name, tostring(params.prompt), tostring(source_id))
end

-- Claims the videos of the like calls whose transfers have ended (their tasks may not have
-- run since) and says whether any is still waiting for its answer.
local function others_waiting(client, sig)
  local set, waiting, ended = in_flight(client)[sig], false, {}
  for transfer in pairs(set or {}) do
    if transfer:done() then ended[#ended + 1] = transfer else waiting = true end
  end
  for _, transfer in ipairs(ended) do
    leave(client, sig, transfer)
    local ok, value = pcall(transfer.result, transfer)
    if ok and type(value) == "userdata" and value.id then reconcile.claim(client, value.id) end
  end
  return waiting
end

-- Waits (yielding in a task) until no like call is waiting for its answer, at most until
-- `deadline`; false when the deadline came first.
local SETTLE_PAUSE = 0.05
local function settle(client, sig, deadline)
  while others_waiting(client, sig) do
    if deadline and now() + SETTLE_PAUSE >= deadline then return false end
    tasks.sleep(client, SETTLE_PAUSE, "reconcile")
  end
  return true
end

-- ---- the server's clock ------------------------------------------------------------------

local MONTHS = { Jan = 1, Feb = 2, Mar = 3, Apr = 4, May = 5, Jun = 6, Jul = 7, Aug = 8,
                 Sep = 9, Oct = 10, Nov = 11, Dec = 12 }

-- Days from 1970-01-01 to y-m-d (proleptic Gregorian), without the local time zone os.time
-- would apply.
local function days_from_civil(y, m, d)
  if m <= 2 then y = y - 1 end
  local era = floor(y / 400)
  local yoe = y - era * 400
  local mp = (m + 9) % 12
  local doy = floor((153 * mp + 2) / 5) + d - 1
  local doe = yoe * 365 + floor(yoe / 4) - floor(yoe / 100) + doy
  return era * 146097 + doe - 719468
end

--- Unix seconds of an IMF-fixdate ("Sun, 06 Nov 1994 08:49:37 GMT"), or nil.
function reconcile.parse_date(text)
  if type(text) ~= "string" then return nil end
  local d, mon, y, h, mi, s = text:match("^%a+, (%d%d) (%a%a%a) (%d%d%d%d) (%d%d):(%d%d):(%d%d) GMT$")
  local m = MONTHS[mon]
  if not m then return nil end
  return days_from_civil(tonumber(y), m, tonumber(d)) * 86400 + tonumber(h) * 3600
    + tonumber(mi) * 60 + tonumber(s)
end

-- The earliest created_at a video made by a request first sent at `since` (our wall clock)
-- can have, given a listing's response: its Date tells the server's offset from our clock.
local function cutoff(since, resp, answered_at)
  local server_now = reconcile.parse_date(resp and resp.headers and resp.headers.date)
  if not server_now then return since - reconcile.NO_DATE_ALLOWANCE end
  return since + (server_now - answered_at) - reconcile.SKEW_ALLOWANCE
end

-- ---- what a video must show to be the one a call made -----------------------------------

local function as_text(value)
  if type(value) == "number" then return format("%d", value) end
  return value
end

-- The fields a video made by this call shows, by endpoint; a field the call did not send
-- matches whatever the server chose (its default). edit and extend show only the prompt: the
-- source decides the rest, and extend's seconds may be the stitched total. create_character
-- makes no video and has no listing: nothing to look for.
local function expectation(name, params, source_id)
  if name == "create" then
    return { prompt = params.prompt, model = params.model, size = params.size,
             seconds = as_text(params.seconds) }
  elseif name == "remix" then
    return { prompt = params.prompt, remixed_from_video_id = source_id }
  elseif name == "edit" or name == "extend" then
    return { prompt = params.prompt }
  end
  return nil
end

local function matches(video, expected, taken)
  if taken[video.id] then return false end
  for field, value in pairs(expected) do
    if video[field] ~= value then return false end
  end
  return true
end

-- ---- looking ------------------------------------------------------------------------------

-- The seconds left before `deadline` (monotonic), as a request's deadline option; nil for none.
local function seconds_before(deadline)
  if not deadline then return nil end
  local left = deadline - now()
  return left > MIN_DEADLINE and left or MIN_DEADLINE
end

-- One pass over the newest videos, page after page until they are older than the cutoff.
-- Returns the video, or false; and the last listing's response; or nil, err.
-- Failures that say nothing about the listing itself: a page is asked again after them (its
-- request already had the client's retries), since a look that fails ends the call.
local TRANSIENT = { connection = true, timeout = true, internal_server = true, rate_limit = true,
                    invalid_response = true }
local PAGE_TRIES = 4

local function list_page(client, after, deadline)
  local page, resp
  for try = 1, PAGE_TRIES do
    page, resp = client:list_page{ order = "desc", limit = PAGE_LIMIT, after = after,
                                   with_response = true, deadline = seconds_before(deadline) }
    if page or not TRANSIENT[resp.kind] or try == PAGE_TRIES then break end
    local pause = resp.retry_after or 0.5 * try
    if deadline and now() + pause >= deadline then break end
    tasks.sleep(client, pause, "reconcile")
  end
  return page, resp
end

local function look(client, expected, since, deadline)
  local taken, after, oldest, resp = claimed(client), nil, nil, nil
  for _ = 1, MAX_PAGES do
    local page
    page, resp = list_page(client, after, deadline)
    if not page then return nil, resp end
    oldest = oldest or cutoff(since, resp, os_time())
    for _, video in ipairs(page.data) do
      local created = tonumber(video.created_at)
      if created and created < oldest then return false, resp end
      if matches(video, expected, taken) then return video, resp end
    end
    if not page.has_more or #page.data == 0 or not page.last_id or page.last_id == after then
      return false, resp
    end
    after = page.last_id
  end
  return false, resp
end

--- Looks for the video a lost `name` call (create, remix, edit, extend) made: the newest
-- videos (order=desc), paged until they are older than `since` (Unix seconds of the first
-- send, our clock) less the allowance for skew, the server's offset taken from the listing's
-- Date. A match shows what the call sent (prompt, model, size, seconds; for remix the source
-- `source_id`) and is not already claimed; it is claimed now. When nothing matches, it looks
-- once more after a short pause. Returns the Video | false, and the listing's response; or
-- nil, err when the listing failed.
local function find(client, name, params, since, source_id, deadline, owner)
  local expected = expectation(name, params, source_id)
  if not expected then return false end
  local found, resp = look(client, expected, since, deadline)
  if found == false and (not deadline or deadline - now() > reconcile.LOOK_AGAIN_AFTER) then
    tasks.sleep(client, reconcile.LOOK_AGAIN_AFTER, "reconcile")
    found, resp = look(client, expected, since, deadline)
  end
  if found then claim_for(client, found.id, owner or true) end
  return found, resp
end

function reconcile.find(client, name, params, since, source_id)
  return find(client, name, params, since, source_id)
end

-- ---- a create-type call ------------------------------------------------------------------

-- What the next attempt sends: the call's parameters, seen through (so that __index and every
-- value stay the caller's), with the key and what is left of the retries and the deadline.
local function next_attempt(params, key, retries, seconds_left)
  return setmetatable({ idempotency_key = key, max_retries = retries, deadline = seconds_left },
                      { __index = params })
end

local function adopted(client, name, video, resp, params)
  client:_log("info", format("sora: %s: the answer was lost; adopted %s, made by the first send "
    .. "(nothing sent again)", name, tostring(video.id)))
  if params.with_response then
    resp.reconciled = true
    return video, resp
  end
  return video
end

local function enabled(client, params)
  if params.reconcile ~= nil then return params.reconcile end
  return client:_state().reconcile ~= false
end

-- Looks once no like call waits for its answer; again when a like call started during the
-- look (the video found may be that call's, its answer still on the way). Returns as find.
local MAX_LOOKS = 10
local function look_settled(client, name, params, since, source_id, deadline, owner, sig)
  for _ = 1, MAX_LOOKS do
    if not settle(client, sig, deadline) then break end
    local started = like_started(client, sig)
    local found, listing = find(client, name, params, since, source_id, deadline, owner)
    if not found or like_started(client, sig) == started then return found, listing end
    give_back(client, found.id, owner)
  end
  -- not looked for in peace: sending again could pay twice
  return nil, make_error{ kind = "timeout", message = format("%s: no time was left to look "
    .. "for the video while like calls of this client were waiting for their answers", name) }
end

-- The endpoints whose calls go through reconcile.send: every POST of the API.
reconcile.ENDPOINTS = { create = true, remix = true, edit = true, extend = true,
                        create_character = true }

--- A create-type call `name` (args as the public method takes them: remix(id, params), the
-- others (params)), its transfer started by start(client, name, ...) (the C core's _start, or
-- a caller's wrapper that renames argument errors). A returned video is claimed. When the
-- answer is lost after the request left (err.maybe_sent), the video is looked for (unless
-- reconcile = false) and adopted; else the request is sent again with the same key, within
-- the call's max_retries and deadline; else the error is returned (err.maybe_sent = true).
function reconcile.send(client, name, start, ...)
  local since = os_time()
  local transfer, err = start(client, name, ...)
  if not transfer then return nil, err end
  local source_id, params
  if name == "remix" then source_id, params = ... else params = ... end
  local sig = signature(name, params, source_id)
  enter(client, sig, transfer)
  local value, resp = tasks.await(client, transfer)
  leave(client, sig, transfer)
  local earlier = 0 -- attempts of the calls's earlier transfers
  while not value do
    resp.attempts = earlier + resp.attempts
    if not resp.maybe_sent then return nil, resp end
    if enabled(client, params) then
      -- the look stays within the call's deadline too
      local _, _, seconds_left = transfer:_resend_budget()
      local deadline = seconds_left and now() + seconds_left
      local found, listing = look_settled(client, name, params, since, source_id, deadline,
                                          transfer, sig)
      if found then return adopted(client, name, found, listing, params) end
      if found == nil then
        resp.reconcile_error = listing -- the look failed: sending again could pay twice
        return nil, resp
      end
    end
    local key, retries, seconds_left = transfer:_resend_budget()
    if retries <= 0 or (seconds_left and seconds_left <= 0) then return nil, resp end
    client:_log("info", format("sora: %s: the answer was lost%s; sending again with the same key",
      name, enabled(client, params) and " and no video matches" or ""))
    earlier = resp.attempts
    local again = next_attempt(params, key, retries - 1, seconds_left)
    if source_id then transfer, err = start(client, name, source_id, again)
    else transfer, err = start(client, name, again) end
    if not transfer then return nil, err end
    enter(client, sig, transfer)
    value, resp = tasks.await(client, transfer)
    leave(client, sig, transfer)
  end
  if type(value) == "userdata" and value.id then reconcile.claim(client, value.id) end
  return value, resp
end

return reconcile
