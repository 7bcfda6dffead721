--- The journal of a batch (client:generate_many(jobs, { journal = path }), `sora batch`): an
-- append-only JSON Lines file, one record per line, each on the disk (written whole, then
-- fsync'd by the C core) before the step it records goes ahead. Rerunning the batch with the
-- same journal resumes it from what the records say.
--
-- A record is a JSON object whose first fields are `event` and `job` (the job's identity: the
-- SHA-256 of its create parameters and its output path, so a changed job is a new job):
--   {"event":"send","job":J,"index":3,"key":K,"at":T,"output":F,"params":{...}}
--       the create of job J is about to be sent with Idempotency-Key K at wall-clock time T
--       (Unix seconds; a monotonic clock means nothing to the next process)
--   {"event":"video","job":J,"video":V,"fields":{...}}    the create made video V
--   {"event":"done","job":J,"video":V,"file":F,"bytes":N,"sha256":D,"fields":{...}}
--       the video completed and F holds it (N bytes, digest D); no file when the job has none
--   {"event":"failed","job":J,"video":V,"kind":K,"message":M,"video_failed":true}
--       the job ended with an error (video_failed: the video itself failed)
-- A line that is not a whole record (a process killed mid-write leaves a torn last line) is
-- ignored. A send with a key other than the job's current one starts the job afresh (a job
-- retried after its video failed).
local core = require "sora.core"
local cjson = require "cjson"

local append_durable, sha256 = core._append_durable, core._sha256
local concat, sort, format = table.concat, table.sort, string.format
local ipairs, pairs, pcall, type, tostring, tonumber = ipairs, pairs, pcall, type, tostring, tonumber
local open = io.open

local journal = {}

-- Fields first in this order, so that a person reads the event and the job first.
local ORDER = { "event", "job", "index", "video", "key", "at", "file", "bytes", "sha256", "kind",
                "status", "message", "video_failed", "output", "params", "fields" }
local RANK = {}
for i, name in ipairs(ORDER) do RANK[name] = i end

-- Options of a create that say how to send it, not what to make: not part of a job's identity.
local NOT_IDENTITY = { deadline = true, max_retries = true, idempotency_key = true,
                       reconcile = true, check_reference = true, with_response = true }

-- cjson escapes every "/" as "\/": paths read better without (in its output every "/" is
-- preceded by its own escape, so removing that backslash is exact).
local function encode(value)
  return (cjson.encode(value):gsub("\\/", "/"))
end

local function by_rank(a, b)
  local ra, rb = RANK[a] or #ORDER + 1, RANK[b] or #ORDER + 1
  if ra ~= rb then return ra < rb end
  return a < b
end

local function sorted_keys(t)
  local keys = {}
  for k in pairs(t) do keys[#keys + 1] = tostring(k) end
  sort(keys, by_rank)
  return keys
end

--- One record as a line of JSON, its fields in a stable order, ending in "\n".
function journal.encode(record)
  local parts = {}
  for _, k in ipairs(sorted_keys(record)) do
    parts[#parts + 1] = encode(k) .. ":" .. encode(record[k])
  end
  return "{" .. concat(parts, ",") .. "}\n"
end

-- A value as canonical JSON: object keys sorted, so that equal parameters give equal text.
local function canonical(value)
  if type(value) ~= "table" then return encode(value) end
  local keys = {}
  for k in pairs(value) do keys[#keys + 1] = k end
  if #keys == #value then -- a list (or empty)
    local items = {}
    for i = 1, #value do items[i] = canonical(value[i]) end
    return "[" .. concat(items, ",") .. "]"
  end
  for i, k in ipairs(keys) do keys[i] = tostring(k) end
  sort(keys)
  local parts = {}
  for _, k in ipairs(keys) do parts[#parts + 1] = encode(k) .. ":" .. canonical(value[k]) end
  return "{" .. concat(parts, ",") .. "}"
end

--- The parameters of a create that name what it makes (a copy without the sending options),
-- for the journal and for a reconciliation.
function journal.identity(params)
  local copy = {}
  for name, value in pairs(params) do
    if not NOT_IDENTITY[name] and type(value) ~= "function" then copy[name] = value end
  end
  return copy
end

--- A job's identity: 32 hex digits of the SHA-256 of its create parameters and output path.
function journal.job_id(params, output)
  return sha256(canonical({ params = journal.identity(params), output = output or false })):sub(1, 32)
end

--- The identities of a list of jobs, each { params, output }: identical jobs are told apart
-- by their rank among the identical ones ("<id>-2", "<id>-3").
function journal.job_ids(jobs)
  local ids, seen = {}, {}
  for i, job in ipairs(jobs) do
    local id = journal.job_id(job[1], job[2])
    seen[id] = (seen[id] or 0) + 1
    ids[i] = seen[id] > 1 and id .. "-" .. seen[id] or id
  end
  return ids
end

-- ---- state: what the records say about each job ------------------------------------------------

local function job_of(state, id)
  local job = state.jobs[id]
  if not job then
    job = { id = id, sends = {} }
    state.jobs[id] = job
    state.order[#state.order + 1] = id
  end
  return job
end

local APPLY = {
  send = function(job, r)
    if job.key ~= r.key then -- a new key: the job starts afresh
      job.sends, job.video, job.fields, job.done, job.failed = {}, nil, nil, nil, nil
    end
    job.key, job.index, job.output, job.params = r.key, r.index, r.output, r.params
    job.sends[#job.sends + 1] = { key = r.key, at = tonumber(r.at) }
    job.failed = nil
  end,
  video = function(job, r)
    job.video, job.fields, job.failed = r.video, r.fields, nil
  end,
  done = function(job, r)
    job.video, job.fields = r.video or job.video, r.fields or job.fields
    job.done, job.failed = { file = r.file, bytes = tonumber(r.bytes), sha256 = r.sha256 }, nil
  end,
  failed = function(job, r)
    job.failed = { kind = r.kind, status = r.status, message = r.message, video = r.video,
                   video_failed = r.video_failed == true }
  end,
}

local function apply(state, record)
  local handler = type(record) == "table" and APPLY[record.event]
  if not handler or type(record.job) ~= "string" then return false end
  handler(job_of(state, record.job), record)
  if type(record.video) == "string" then state.videos[record.video] = true end
  return true
end

local Journal = {}
Journal.__index = Journal

--- Reads the journal at `path` (a missing file is an empty journal; no path: a journal kept
-- in memory only): the journal, or nil and why. journal.jobs[id] holds each job's state;
-- journal.ignored counts lines that were not records (a torn last line).
function journal.open(path)
  local state = setmetatable({ path = path, jobs = {}, order = {}, videos = {}, ignored = 0 },
                             Journal)
  local file = path and open(path, "rb")
  if not file then return state end
  local text = file:read("*a")
  file:close()
  if text == nil then return nil, format("%s: cannot read it", path) end
  for line in text:gmatch("[^\n]+") do
    local ok, record = pcall(cjson.decode, line)
    if not (ok and apply(state, record)) then state.ignored = state.ignored + 1 end
  end
  state.torn = #text > 0 and text:sub(-1) ~= "\n"
  return state
end

--- Appends a record and applies it; true once it is on the disk, or nil and why. After a torn
-- last line the first record starts on a line of its own.
function Journal:append(record)
  if not self.path then return true, apply(self, record) end
  local line = journal.encode(record)
  if self.torn then line = "\n" .. line end
  local ok, err = append_durable(self.path, line)
  if not ok then return nil, err end
  self.torn = false
  apply(self, record)
  return true
end

--- The state of job `id`, made (empty) when the journal has none.
function Journal:job(id)
  return job_of(self, id)
end

--- The ids of every video the journal names (to be claimed before a batch runs).
function Journal:video_ids()
  local ids = {}
  for id in pairs(self.videos) do ids[#ids + 1] = id end
  sort(ids)
  return ids
end

--- Where each job stands: "done", "failed", "video" (made, not yet done), "sent" (a create
-- sent and not answered) or "new".
function journal.stage(job)
  if not job then return "new" end
  if job.failed then return "failed" end
  if job.done then return "done" end
  if job.video then return "video" end
  if #job.sends > 0 then return "sent" end
  return "new"
end

return journal
