--- What the `sora` command prints: for people (aligned fields, one row per video) or, with
-- --json, for programs (one JSON object per result, one per line for lists). As curl and gh do,
-- stdout holds only results (paths, ids, JSON); status lines, logs and errors go to stderr, and
-- a progress bar drawn there is ended before any of them. Errors go to stderr as one line;
-- with --json stdout also gets them as {"error": {...}}.
-- Nothing printed ever holds the API key: sora redacts it from what the server sends, and
-- every line written here passes through `redact` for the key the user gave.
local cjson = require "cjson"

local format, concat, floor, huge = string.format, table.concat, math.floor, math.huge
local byte, sub = string.byte, string.sub
local type, pairs, tostring = type, pairs, tostring

local output = {}

local Printer = {}
Printer.__index = Printer

--- A printer: `json` selects the format; `secrets` lists strings never to print. Set later:
-- `quiet` (no status lines), `verbose` (2: debug lines) and `reporter` (the progress, whose
-- bar is ended before anything is printed).
function output.new(json, secrets)
  return setmetatable({ json = json, secrets = secrets or {}, out = io.stdout, err = io.stderr,
                        quiet = false, verbose = 0 }, Printer)
end

local redact = require("sora.core")._redact -- the module's own redaction (8 bytes or more)

-- Replaces every occurrence of each secret.
function Printer:redact(text)
  for _, secret in pairs(self.secrets) do text = redact(text, secret) end
  return text
end

-- Ends a progress bar drawn on the terminal, so that the next text starts a line of its own.
function Printer:end_bar()
  if self.reporter then self.reporter:interrupt() end
end

--- A result on stdout.
function Printer:write(text)
  self:end_bar()
  self.out:write(self:redact(text), "\n")
  self.out:flush()
end

-- A line on stderr.
function Printer:tell(text)
  self:end_bar()
  self.err:write(self:redact(text), "\n")
  self.err:flush()
end

-- ---- values as plain tables ----------------------------------------------------------------

-- The length of the UTF-8 sequence at byte i of s (RFC 3629: no overlong forms, no
-- surrogates, nothing above U+10FFFF), or nil when the bytes there are not one.
local function sequence_at(s, i)
  local b1, b2, b3, b4 = byte(s, i, i + 3)
  if b1 < 0x80 then return 1 end
  local function cont(b) return b and b >= 0x80 and b <= 0xBF end
  if b1 >= 0xC2 and b1 <= 0xDF then return cont(b2) and 2 or nil end
  if b1 >= 0xE0 and b1 <= 0xEF then
    local low = (b1 == 0xE0 and 0xA0) or 0x80
    local high = (b1 == 0xED and 0x9F) or 0xBF
    return b2 and b2 >= low and b2 <= high and cont(b3) and 3 or nil
  end
  if b1 >= 0xF0 and b1 <= 0xF4 then
    local low = (b1 == 0xF0 and 0x90) or 0x80
    local high = (b1 == 0xF4 and 0x8F) or 0xBF
    return b2 and b2 >= low and b2 <= high and cont(b3) and cont(b4) and 4 or nil
  end
  return nil
end

local REPLACEMENT = "\239\191\189" -- U+FFFD

-- Text that JSON can carry: cjson copies bytes as they are, and a server's text that is not
-- UTF-8 would make stdout something no JSON parser accepts. Each byte that starts no valid
-- sequence becomes U+FFFD, as a browser's decoder reads it; valid text is returned as is.
local function valid_utf8(s)
  if not s:find("[\128-\255]") then return s end
  local parts, i, n = {}, 1, #s
  while i <= n do
    local len = sequence_at(s, i)
    parts[#parts + 1] = len and sub(s, i, i + len - 1) or REPLACEMENT
    i = i + (len or 1)
  end
  return concat(parts)
end

-- A copy of a value fit for cjson: Videos become their fields, nested tables are copied,
-- text becomes valid UTF-8; cjson.null (a light userdata, inside a field) stays null, and so
-- does a number JSON cannot write (a server's 1e400 is read as inf), as JSON.stringify does.
local function plain(value)
  if type(value) == "string" then return valid_utf8(value) end
  if type(value) == "number" and not (value > -huge and value < huge) then return cjson.null end
  if type(value) == "userdata" and value ~= cjson.null then return plain(value:to_table()) end
  if type(value) ~= "table" then return value end
  local copy = {}
  for k, v in pairs(value) do copy[plain(k)] = plain(v) end
  return copy
end
output.plain = plain

function Printer:json_line(value)
  self:write(cjson.encode(plain(value)))
end

-- ---- for people ------------------------------------------------------------------------------

-- A time a server sent, as UTC; one os.date cannot show (1e300, inf) is shown as the number.
local function date(seconds)
  if type(seconds) ~= "number" then return nil end
  local ok, text = pcall(os.date, "!%Y-%m-%d %H:%M:%S UTC", floor(seconds))
  return ok and text or format("%.14g", seconds)
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

--- A finished download: the video id, the variant, where it went and how many bytes. For
-- people the result is the file's path (what `f=$(sora generate ...)` wants); how it went is
-- a status line.
function Printer:downloaded(result)
  if self.json then return self:json_line(result) end
  self:status(format("wrote %s (%d bytes)", result.output, result.bytes))
  self:write(result.output)
end

--- A status line for people ("created video_123 (queued)", a hint), on stderr so that stdout
-- stays what a pipe expects; -q silences it.
function Printer:status(text)
  if not self.quiet then self:tell(text) end
end
Printer.note = Printer.status

--- A line of the request log (-v), on stderr whatever -q says: it was asked for.
function Printer:log(line)
  self:tell(line)
end

--- Detail for -vv: "sora: debug: ..." on stderr.
function Printer:debug(text)
  if self.verbose >= 2 then self:tell("sora: debug: " .. text) end
end

-- ---- errors ------------------------------------------------------------------------------------

local ERROR_FIELDS = { "kind", "status", "code", "type", "param", "message", "request_id",
                       "retry_after", "curl_code" }

--- An error that ended the command: one line on stderr ("sora <command>: ..."), and with
-- --json an {"error": {...}} object on stdout (a failed or timed-out video included); `kind`
-- names what a message that is not a sora.Error is ("usage", "interrupted"), and `extra`
-- holds more fields of its object (resume: the command that picks the video up again).
function Printer:error(command, err, kind, extra)
  -- an error prints as "sora: kind ...": the command's name takes the place of "sora:"
  local text = tostring(err):gsub("^sora: ", "")
  self:tell(format("sora%s: %s", command and " " .. command or "", text))
  if not self.json then return end
  local fields_out = {}
  if type(err) == "table" then
    for _, name in ipairs(ERROR_FIELDS) do fields_out[name] = err[name] end
    if err.video then fields_out.video = plain(err.video) end
  else
    fields_out.kind, fields_out.message = kind, self:redact(tostring(err))
  end
  for name, value in pairs(extra or {}) do fields_out[name] = value end
  self:json_line{ error = fields_out }
end

--- A usage error caught before any command ran: `text` (the usage and the message) on stderr,
-- and with --json {"error": {"kind": "usage", "message": ...}} on stdout, as for any failure.
function Printer:usage_error(text, message)
  self.err:write(self:redact(text))
  if self.json then self:json_line{ error = { kind = "usage", message = self:redact(message) } } end
end

return output
