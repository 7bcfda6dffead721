-- The video store and its lifecycle. A video's state is computed from the
-- clock on every read (queued, then in_progress, then completed or failed at
-- job_seconds), so nothing runs in the background; tests may pin fields with
-- force(), which wins over the clock.

local socket = require "socket"
local json = require "sora.emulator.json"

local videos = {}

local VIDEO_KEYS = {
  "id", "object", "model", "status", "progress", "created_at", "completed_at",
  "expires_at", "prompt", "size", "seconds", "remixed_from_video_id", "error",
}

local QUEUED_SHARE = 0.1     -- the first 10% of a job is spent queued
local FAIL_SHARE = 0.5       -- "#fail" prompts fail halfway through

local MODERATION = { code = "moderation_blocked",
  message = "Your request was blocked by our moderation system." }

local seeded = false

-- Returns n random lower-case hex digits.
function videos.hex(n)
  if not seeded then
    math.randomseed(math.floor(socket.gettime() * 1000) % 2147483647)
    seeded = true
  end
  local t = {}
  for i = 1, n do t[i] = string.format("%x", math.random(0, 15)) end
  return table.concat(t)
end

local Store = {}
Store.__index = Store

-- Returns an empty store; config() returns the live emulator configuration.
function videos.new(config)
  return setmetatable({ config = config, byid = {}, seq = {}, next_seq = 0, live = 0,
    characters = {} }, Store)
end

-- Creates a video from validated fields { model, prompt, size, seconds,
-- remixed_from_video_id, fail_error }, capturing the job length and asset lifetime now.
function Store:create(fields)
  local id
  repeat id = "video_" .. videos.hex(48) until not self.seq[id]
  local cfg = self.config()
  self.next_seq = self.next_seq + 1
  local v = {
    id = id, model = fields.model, prompt = fields.prompt, size = fields.size,
    seconds = fields.seconds, remixed_from_video_id = fields.remixed_from_video_id,
    started = socket.gettime(), job_seconds = cfg.job_seconds,
    asset_ttl = cfg.asset_ttl,
    fail_error = fields.prompt:find("#fail", 1, true) and MODERATION or fields.fail_error,
    forced = {}, seq = self.next_seq,
  }
  self.byid[id] = v
  self.live = self.live + 1
  -- Sequence numbers outlive deletion, so a deleted id still works as a cursor.
  self.seq[id] = v.seq
  if self.on_change then self.on_change(v) end
  return v
end

function Store:get(id)
  return self.byid[id]
end

function Store:delete(id)
  local v = self.byid[id]
  if v then
    self.byid[id] = nil
    self.live = self.live - 1
  end
  return v
end

-- The number of live (not deleted) videos.
function Store:count()
  return self.live
end

-- Pins fields of a video (decoded JSON; json.null clears a field).
function Store:force(id, fields)
  local v = self.byid[id]
  if not v then return nil end
  for k, value in pairs(fields) do v.forced[k] = value end
  if self.on_change then self.on_change(v) end
  return v
end

-- The clock-derived state: status, progress, completed_at, error.
local function derive(v, now)
  local elapsed = now - v.started
  local js = v.job_seconds
  if v.fail_error and elapsed >= js * FAIL_SHARE then
    return "failed", math.floor(100 * FAIL_SHARE), nil, v.fail_error
  end
  if elapsed >= js then
    return "completed", 100, math.floor(v.started + js)
  end
  if elapsed < js * QUEUED_SHARE then return "queued", 0 end
  return "in_progress", math.min(99, math.max(1, math.floor(100 * elapsed / js)))
end

local function null(x)
  if x == nil then return json.null end
  return x
end

-- When the clock settles video v (completed, or failed for a failing job), or nil when a
-- forced status holds it where it is. The webhook sender sleeps until then.
function videos.settles_at(v)
  if v.forced.status ~= nil then return nil end
  if v.fail_error then return v.started + v.job_seconds * FAIL_SHARE end
  return v.started + v.job_seconds
end

-- Returns the Video object (a table ready for json.encode) as of now.
function Store:render(v, now)
  now = now or socket.gettime()
  local f = v.forced
  local status, progress, completed_at, err = derive(v, now)
  if f.status ~= nil then
    -- A forced status brings consistent defaults for the fields it implies.
    status = f.status
    progress = status == "completed" and 100 or (status == "queued" and 0) or progress
    if status == "completed" then
      completed_at = completed_at or math.floor(now)
    else
      completed_at = nil
    end
    if status ~= "failed" then err = nil end
    if status == "failed" and not err then
      err = { code = "internal_error", message = "Video generation failed." }
    end
  end
  local expires_at = completed_at and completed_at + v.asset_ttl
  local obj = {
    id = v.id, object = "video", model = v.model, status = status,
    progress = progress, created_at = math.floor(v.started),
    completed_at = null(completed_at), expires_at = null(expires_at),
    prompt = v.prompt, size = v.size, seconds = v.seconds,
    remixed_from_video_id = null(v.remixed_from_video_id),
    error = err and json.ordered({ "code", "message" }, err) or json.null,
  }
  for k, value in pairs(f) do obj[k] = value end
  -- A pinned completion time moves the expiry with it unless that is pinned too.
  if type(f.completed_at) == "number" and f.expires_at == nil then
    obj.expires_at = math.floor(f.completed_at + v.asset_ttl)
  end
  return json.ordered(VIDEO_KEYS, obj)
end

-- Lists live videos in creation order ("asc") or newest first ("desc"),
-- starting after the video with sequence number after_seq.
function Store:page(order, after_seq, limit)
  local all = {}
  for _, v in pairs(self.byid) do all[#all + 1] = v end
  if order == "asc" then
    table.sort(all, function(a, b) return a.seq < b.seq end)
  else
    table.sort(all, function(a, b) return a.seq > b.seq end)
  end
  local page, more = {}, false
  for _, v in ipairs(all) do
    local past = not after_seq
      or (order == "asc" and v.seq > after_seq) or (order ~= "asc" and v.seq < after_seq)
    if past then
      if #page >= limit then more = true; break end
      page[#page + 1] = v
    end
  end
  return page, more
end

-- Characters: created from an uploaded clip, then only read back.
function Store:create_character(name)
  local c = { id = "char_" .. videos.hex(32), name = name,
    created_at = math.floor(socket.gettime()) }
  self.characters[c.id] = c
  return json.ordered({ "id", "name", "created_at" }, c)
end

function Store:character(id)
  return self.characters[id]
end

return videos
