-- Standard Webhooks signatures for the emulator's webhooks, in pure Lua on the emulator's own
-- SHA-256 (the emulator never loads sora's C core, so it runs wherever LuaSocket does).
-- HMAC is RFC 2104; base64 is RFC 4648's standard alphabet, padded. sora.webhooks verifies
-- with libcrypto and the official Node SDK with WebCrypto: two implementations written
-- elsewhere check this one (spec/webhooks_emulator_spec.lua).
--
--   local signing = require "sora.emulator.signing"
--   local key = signing.secret_key("whsec_...")        -- nil, message for a bad secret
--   signing.signature(key, id, timestamp, body)       --> "v1,<base64>"

local sha256 = require "sora.emulator.sha256"

local signing = {}

local byte, char, floor = string.byte, string.char, math.floor

local ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
local VALUE = {}
for i = 1, #ALPHABET do VALUE[byte(ALPHABET, i)] = i - 1 end

local BLOCK = 64 -- SHA-256's block size, in bytes

-- The raw 32 bytes of a SHA-256 digest.
local function digest(s)
  return (sha256.hex(s):gsub("%x%x", function(h) return char(tonumber(h, 16)) end))
end

-- a XOR b for bytes, with arithmetic only (Lua 5.1 has no bit operators).
local function xor_byte(a, b)
  local result, bit = 0, 1
  for _ = 1, 8 do
    if a % 2 ~= b % 2 then result = result + bit end
    a, b, bit = floor(a / 2), floor(b / 2), bit * 2
  end
  return result
end

-- Every byte of s XOR pad.
local function xor_all(s, pad)
  local out = {}
  for i = 1, #s do out[i] = char(xor_byte(byte(s, i), pad)) end
  return table.concat(out)
end

--- HMAC-SHA256(key, message): the 32 raw bytes.
function signing.hmac_sha256(key, message)
  if #key > BLOCK then key = digest(key) end
  key = key .. string.rep("\0", BLOCK - #key)
  return digest(xor_all(key, 0x5c) .. digest(xor_all(key, 0x36) .. message))
end

--- Base64 (standard alphabet, padded) of bytes.
function signing.base64_encode(bytes)
  local out = {}
  for i = 1, #bytes, 3 do
    local a, b, c = byte(bytes, i, i + 2)
    local n = a * 65536 + (b or 0) * 256 + (c or 0)
    local quad = {}
    for k = 4, 1, -1 do
      quad[k] = ALPHABET:sub(n % 64 + 1, n % 64 + 1)
      n = floor(n / 64)
    end
    if not c then quad[4] = "=" end
    if not b then quad[3] = "=" end
    out[#out + 1] = table.concat(quad)
  end
  return table.concat(out)
end

--- The bytes of base64 text (padded or not), or nil when it is not base64.
function signing.base64_decode(text)
  local data = text:gsub("=?=?$", "", 1)
  if #data % 4 == 1 or (#data < #text and #text % 4 ~= 0) then return nil end
  local out, n, bits = {}, 0, 0
  for i = 1, #data do
    local v = VALUE[byte(data, i)]
    if not v then return nil end
    n, bits = n * 64 + v, bits + 6
    if bits >= 8 then
      bits = bits - 8
      local p = 2 ^ bits
      out[#out + 1] = char(floor(n / p))
      n = n % p
    end
  end
  return table.concat(out)
end

--- The HMAC key of a secret, read as OpenAI's SDKs read it: the base64-decoded part after
-- `whsec_`, or the bytes of a secret without that prefix. nil, message when it cannot be one.
function signing.secret_key(secret)
  if type(secret) ~= "string" or secret == "" then return nil, "the secret must be a non-empty string" end
  if secret:sub(1, 6) ~= "whsec_" then return secret end
  local key = signing.base64_decode(secret:sub(7))
  if not key or key == "" then return nil, "the part of the secret after 'whsec_' must be non-empty base64" end
  return key
end

--- The value of a webhook-signature header: "v1," and the base64 HMAC of `id.timestamp.body`.
function signing.signature(key, id, timestamp, body)
  return "v1," .. signing.base64_encode(signing.hmac_sha256(key, id .. "." .. timestamp .. "." .. body))
end

return signing
