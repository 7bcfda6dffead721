--- What the `sora` command prints: for people (aligned fields, one row per video) or, with
-- --json, for programs (one JSON object per result, one per line for lists). Errors go to
-- stderr as one line; with --json stdout also gets them as {"error": {...}}.
-- Nothing printed ever holds the API key: sora redacts it from what the server sends, and
-- every line written here passes through `redact` for the key the user gave.
local cjson = require "cjson"

local format, concat, floor = string.format, table.concat, math.floor
local type, pairs, tostring = type, pairs, tostring

local output = {}

local Printer = {}
Printer.__index = Printer

--- A printer: `json` selects the format; `secrets` lists strings never to print.
function output.new(json, secrets)
  return setmetatable({ json = json, secrets = secrets or {}, out = io.stdout, err = io.stderr },
    Printer)
end

local redact = require("sora.core")._redact -- the module's own redaction (8 bytes or more)

-- Replaces every occurrence of each secret.
function Printer:redact(text)
  for _, secret in pairs(self.secrets) do text = redact(text, secret) end
  return text
end

function Printer:write(text)
  self.out:write(self:redact(text), "\n")
end

-- ---- values as plain tables ----------------------------------------------------------------

-- A copy of a value fit for cjson: Videos become their fields, nested tables are copied.
local function plain(value)
  if type(value) == "userdata" and value.to_table then return plain(value:to_table()) end
  if type(value) ~= "table" then return value end
  local copy = {}
  for k, v in pairs(value) do copy[k] = plain(v) end
  return copy
end
output.plain = plain

function Printer:json_line(value)
  self:write(cjson.encode(plain(value)))
end

-- ---- for people ------------------------------------------------------------------------------

local function date(seconds)
  if type(seconds) ~= "number" then return nil end
  return os.date("!%Y-%m-%d %H:%M:%S UTC", floor(seconds))
end

local function one_line(text, width)
  text = tostring(text or ""):gsub("%s+", " ")
  if #text > width then text = text:sub(1, width - 3) .. "..." end
  return text
end

local function fields(rows)
  local lines = {}
  for _, row in ipairs(rows) do
    if row[2] ~= nil then lines[#lines + 1] = format("%-13s %s", row[1], tostring(row[2])) end
  end
  return concat(lines, "\n")
end

local function video_text(v)
  local err = v.error
  return fields{
    { "id", v.id },
    { "status", format("%s (%s%%)", tostring(v.status), tostring(v.progress or 0)) },
    { "model", v.model }, { "size", v.size }, { "seconds", v.seconds },
    { "prompt", v.prompt and one_line(v.prompt, 200) },
    { "remixed_from", v.remixed_from_video_id },
    { "created", date(v.created_at) }, { "completed", date(v.completed_at) },
    { "expires", date(v.expires_at) },
    { "error", err and format("%s: %s", tostring(err.code), tostring(err.message)) },
  }
end

--- One video (create, get, remix, edit, extend, wait).
function Printer:video(video)
  if self.json then return self:json_line(video) end
  self:write(video_text(video))
end

--- One row of `sora list`.
function Printer:video_row(v)
  if self.json then return self:json_line(v) end
  self:write(format("%-32s %-11s %3s%%  %-23s %s", v.id, tostring(v.status), tostring(v.progress or 0),
    date(v.created_at) or "-", one_line(v.prompt, 60)))
end

--- A deleted video: { id, object, deleted }.
function Printer:deleted(result)
  if self.json then return self:json_line(result) end
  self:write(format("deleted %s", result.id))
end

--- A character: { id, name, created_at }.
function Printer:character(c)
  if self.json then return self:json_line(c) end
  self:write(fields{ { "id", c.id or "(none yet)" }, { "name", c.name }, { "created", date(c.created_at) } })
end

--- A finished download: the video id, the variant, where it went and how many bytes.
function Printer:downloaded(result)
  if self.json then return self:json_line(result) end
  self:write(format("wrote %s (%d bytes)", result.output, result.bytes))
end

--- A line for people, on stdout beside the result (not printed with --json, where stdout
-- holds only JSON).
function Printer:say(text)
  if not self.json then self:write(text) end
end

--- A hint for people, on stderr so that stdout stays what a pipe expects (not with --json).
function Printer:note(text)
  if not self.json then self.err:write(self:redact(text), "\n") end
end

-- ---- errors ------------------------------------------------------------------------------------

local ERROR_FIELDS = { "kind", "status", "code", "type", "param", "message", "request_id",
                       "retry_after", "curl_code" }

--- An error that ended the command: one line on stderr ("sora <command>: ..."), and with
-- --json an {"error": {...}} object on stdout (a failed or timed-out video included).
function Printer:error(command, err)
  -- an error prints as "sora: kind ...": the command's name takes the place of "sora:"
  local text = tostring(err):gsub("^sora: ", "")
  self.err:write(self:redact(format("sora%s: %s", command and " " .. command or "", text)), "\n")
  if not self.json then return end
  local fields_out = {}
  if type(err) == "table" then
    for _, name in ipairs(ERROR_FIELDS) do fields_out[name] = err[name] end
    if err.video then fields_out.video = plain(err.video) end
  else
    fields_out.message = tostring(err)
  end
  self:json_line{ error = fields_out }
end

return output
