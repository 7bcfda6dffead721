--- sora.webhooks: the webhooks OpenAI sends when a video completes or fails, verified.
-- OpenAI signs them with the Standard Webhooks scheme: three headers, `webhook-id` (the
-- idempotency key), `webhook-timestamp` (Unix seconds) and `webhook-signature` (space-separated
-- `v1,<base64>` entries), where each v1 entry is the base64 HMAC-SHA256 of
-- `id.timestamp.body` keyed with the secret. The MAC, base64 and the constant-time comparison
-- come from libcrypto (sora.core.webhooks); this module reads the headers and decides.
--
--   local event, err = sora.webhooks.verify(body, headers, "whsec_...", { tolerance = 300 })
--   local headers = sora.webhooks.sign(body, "whsec_...", { id = "msg_1", timestamp = t })
local core = require "sora.core"
local args = require "sora.args"
local cjson = require "cjson.safe"

local crypto, make_error = core.webhooks, core.error
local type, pairs, tostring, tonumber, getenv, time = type, pairs, tostring, tonumber, os.getenv, os.time
local format, byte = string.format, string.byte
local tointeger = math.tointeger -- nil before 5.3: numbers are all floats there

local webhooks = {}

--- The default tolerance: how far (seconds) a timestamp may lie from now, either way.
webhooks.DEFAULT_TOLERANCE = 300

local PREFIX = "whsec_"
local NAMES = { ["webhook-id"] = "id", ["webhook-timestamp"] = "timestamp",
                ["webhook-signature"] = "signature" }
local json = cjson.new() -- a private instance: no other user's settings apply

-- ---- the secret ---------------------------------------------------------------------------

-- The HMAC key of a secret, as OpenAI's SDKs read it: the base64-decoded part after `whsec_`,
-- or the bytes of a secret without that prefix. A secret that cannot be a key is a mistake of
-- the program (like a wrong type), so it raises. nil means $OPENAI_WEBHOOK_SECRET.
local function secret_key(fname, n, secret)
  if secret == nil then secret = getenv("OPENAI_WEBHOOK_SECRET") end
  if type(secret) ~= "string" then
    args.fail(fname, n, "string expected, got %s (and OPENAI_WEBHOOK_SECRET is not set)", type(secret))
  end
  if secret:sub(1, #PREFIX) ~= PREFIX then
    if secret == "" then args.fail(fname, n, "the secret is empty") end
    return secret
  end
  local key = crypto.base64_decode(secret:sub(#PREFIX + 1))
  if not key or key == "" then
    args.fail(fname, n, "the part of the secret after '%s' must be non-empty base64", PREFIX)
  end
  return key
end

-- The v1 signature of a message: base64 HMAC-SHA256 of `id.timestamp.body`.
local function mac(key, id, timestamp, body)
  return crypto.hmac_sha256(key, id .. "." .. timestamp .. "." .. body)
end

-- ---- verifying ------------------------------------------------------------------------------

-- nil, err: a webhook that fails `check` (headers, timestamp, signature, body).
local function refused(check, fmt, ...)
  return nil, make_error{ kind = "webhook", check = check, message = format(fmt, ...) }
end

-- The three webhook headers, found whatever the case of their names: { id =, timestamp =,
-- signature = }, or nil, err. A name given twice (in two cases) must carry one value. A value
-- that is not a string (a number, a table, ...) is refused, as HTTP gives only text, and so is
-- an empty one.
local function webhook_headers(headers)
  local found = {}
  for name, value in pairs(headers) do
    local field = type(name) == "string" and NAMES[name:lower()]
    if field then
      if type(value) ~= "string" then
        return refused("headers", "header '%s' must be a string, got %s", name:lower(), type(value))
      end
      if found[field] and found[field] ~= value then
        return refused("headers", "header '%s' is given twice with different values", name:lower())
      end
      found[field] = value
    end
  end
  for name, field in pairs(NAMES) do
    if not found[field] then return refused("headers", "header '%s' is missing", name) end
    -- the reference libraries take an empty header for a missing one, whatever it signs
    if found[field] == "" then return refused("headers", "header '%s' is empty", name) end
  end
  return found
end

-- A timestamp has at most 15 digits: every such number is exact in a double.
local MAX_DIGITS = 15
local MAX_TIMESTAMP = 10 ^ MAX_DIGITS - 1

-- Refuses a timestamp that is not Unix seconds, or lies more than `tolerance` seconds away
-- from now, in the past (a replay) or in the future.
local function check_timestamp(text, tolerance)
  if not text:match("^%d+$") or #text > MAX_DIGITS then
    return refused("timestamp", "header 'webhook-timestamp' is not a Unix time in seconds: '%s'",
                   text:sub(1, 40))
  end
  local age = time() - tonumber(text)
  if age > tolerance then
    return refused("timestamp", "header 'webhook-timestamp' is too old: %d s ago, the tolerance is %g s",
                   age, tolerance)
  end
  if -age > tolerance then
    return refused("timestamp", "header 'webhook-timestamp' is too new: %d s ahead, the tolerance is %g s",
                   -age, tolerance)
  end
  return true
end

-- True when one of the v1 entries of the signature header is the expected MAC's base64 text;
-- entries of other versions (v1a, ...) are not ours to check and are skipped. The text is
-- compared, as the Standard Webhooks reference libraries do: base64 that decodes to the same
-- bytes but differs in its unused trailing bits (or lacks its padding) is not the signature.
local function check_signature(header, expected)
  local v1 = 0
  expected = crypto.base64_encode(expected)
  for entry in header:gmatch("[^ ]+") do
    local version, value = entry:match("^([^,]*),(.*)$")
    if version == "v1" then
      v1 = v1 + 1
      if crypto.equal(value, expected) then return true end
    end
  end
  if v1 == 0 then
    return refused("signature", "header 'webhook-signature' holds no v1 signature")
  end
  return refused("signature", "no v1 signature of header 'webhook-signature' matches "
                 .. "(%d tried): a wrong secret, or a body or header changed on the way", v1)
end

-- Integral numbers become integers on 5.3+ (lua-cjson 2.1.0 decodes every number as a float),
-- so that `created_at` is 1758941485, as the core's own values are.
local function integers(value)
  if type(value) == "table" then
    for k, v in pairs(value) do value[k] = integers(v) end
  elseif type(value) == "number" and tointeger then
    return tointeger(value) or value
  end
  return value
end

-- The event a body holds: a JSON object, or nil, err.
local function decode_event(body)
  local event, problem = json.decode(body)
  if type(event) ~= "table" or byte(body:match("^%s*(.?)") or "") ~= byte("{") then
    return refused("body", "the body is not a JSON object%s",
                   problem and ": " .. tostring(problem) or "")
  end
  return integers(event)
end

--- Verifies a webhook: its body (the raw bytes, exactly as received), its headers (a table of
-- name = value, names in any case) and the secret (`whsec_...`; nil means
-- $OPENAI_WEBHOOK_SECRET). Returns the event table, or nil, err with err.kind == "webhook",
-- err.check naming the check that failed (headers, timestamp, signature, body) and a message
-- saying why. opts.tolerance: seconds a timestamp may lie from now, either way (default 300).
function webhooks.verify(body, headers, secret, opts)
  args.check("verify", 1, body, "string")
  args.table("verify", 2, headers)
  local key = secret_key("verify", 3, secret)
  opts = args.options("verify", 4, args.table("verify", 4, opts, true), { tolerance = "duration" })
  local tolerance = opts.tolerance or webhooks.DEFAULT_TOLERANCE
  local found, err = webhook_headers(headers)
  if not found then return nil, err end
  local ok
  ok, err = check_timestamp(found.timestamp, tolerance)
  if not ok then return nil, err end
  ok, err = check_signature(found.signature, mac(key, found.id, found.timestamp, body))
  if not ok then return nil, err end
  return decode_event(body)
end

-- ---- signing --------------------------------------------------------------------------------

local function hex(bytes)
  return (bytes:gsub(".", function(c) return format("%02x", byte(c)) end))
end

-- A header value must stay on its line.
local function check_header_text(fname, n, name, value)
  if value:find("[%z\r\n]") then
    args.fail(fname, n, "option '%s' must not hold CR, LF or NUL", name)
  end
  return value
end

--- The three headers a sender attaches to `body`, signed with `secret` (as verify reads it):
-- { ["webhook-id"] =, ["webhook-timestamp"] =, ["webhook-signature"] = "v1,<base64>" }.
-- opts.id (default "msg_" and 32 random hex digits) and opts.timestamp (default now, in Unix
-- seconds). For testing receivers, and what the emulator's webhooks carry.
function webhooks.sign(body, secret, opts)
  args.check("sign", 1, body, "string")
  local key = secret_key("sign", 2, secret)
  opts = args.options("sign", 3, args.table("sign", 3, opts, true),
                      { id = "string", timestamp = "integer" })
  local id = check_header_text("sign", 3, "id", opts.id or "msg_" .. hex(crypto.random(16)))
  if id == "" then args.fail("sign", 3, "option 'id' must not be empty") end
  if opts.timestamp and not (opts.timestamp >= 0 and opts.timestamp <= MAX_TIMESTAMP) then
    args.fail("sign", 3, "option 'timestamp' must be Unix seconds, 0 to %.15g, got %.15g", MAX_TIMESTAMP,
              opts.timestamp)
  end
  local timestamp = format("%d", opts.timestamp or time())
  return {
    ["webhook-id"] = id,
    ["webhook-timestamp"] = timestamp,
    ["webhook-signature"] = "v1," .. crypto.base64_encode(mac(key, id, timestamp, body)),
  }
end

return webhooks
