-- sora.webhooks.verify and sign, through the compiled module (libcrypto's HMAC, base64 and
-- constant-time comparison): every check of the Standard Webhooks scheme, as OpenAI uses it.
local sora = require "sora"
local core = require "sora.core"

local webhooks = sora.webhooks
local b64 = core.webhooks.base64_encode

local SECRET = "whsec_" .. b64("0123456789abcdef0123456789abcdef")
local BODY = '{"id": "evt_685343a1381c819085d44c354e1b330e", "object": "event", '
  .. '"created_at": 1758941485, "type": "video.completed", '
  .. '"data": {"id": "video_68d6d5b2c3f08190a86e0b1ac2b2eb2d"}}'

local function copy(t)
  local c = {}
  for k, v in pairs(t) do c[k] = v end
  return c
end

-- verify must refuse: nil and an error of kind webhook, whose check and message are as given.
local function refused(check, pattern, ...)
  local event, err = webhooks.verify(...)
  assert.is_nil(event)
  assert.is_true(sora.is_error(err))
  assert.are.equal("webhook", err.kind)
  assert.are.equal(check, err.check)
  assert.matches(pattern, err.message)
  assert.matches("^sora: webhook: ", tostring(err))
  return err
end

describe("sora.webhooks.verify", function()
  it("accepts the Standard Webhooks specification's own vector", function()
    -- from the Standard Webhooks specification's test vectors (signed in 2021: no tolerance)
    local event = assert(webhooks.verify('{"test": 2432232314}', {
      ["webhook-id"] = "msg_p5jXN8AQM9LWM0D4loKWxJek",
      ["webhook-timestamp"] = "1614265330",
      ["webhook-signature"] = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=",
    }, "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", { tolerance = math.huge }))
    assert.are.equal(2432232314, event.test)
  end)

  it("returns the event of a signed body, numbers that are integers as integers", function()
    local event = assert(webhooks.verify(BODY, webhooks.sign(BODY, SECRET), SECRET))
    assert.are.same({ id = "evt_685343a1381c819085d44c354e1b330e", object = "event",
      created_at = 1758941485, type = "video.completed",
      data = { id = "video_68d6d5b2c3f08190a86e0b1ac2b2eb2d" } }, event)
    if math.type then assert.are.equal("integer", math.type(event.created_at)) end
  end)

  it("finds the headers whatever the case of their names", function()
    local h = webhooks.sign(BODY, SECRET)
    local mixed = { ["Webhook-Id"] = h["webhook-id"], ["WEBHOOK-TIMESTAMP"] = h["webhook-timestamp"],
      ["webhook-Signature"] = h["webhook-signature"], ["Content-Type"] = "application/json" }
    assert.is_table(webhooks.verify(BODY, mixed, SECRET))
    -- the same header twice (two spellings) with one value is fine, with two is refused
    mixed["webhook-id"] = h["webhook-id"]
    assert.is_table(webhooks.verify(BODY, mixed, SECRET))
    mixed["webhook-id"] = "msg_other"
    refused("headers", "'webhook%-id' is given twice", BODY, mixed, SECRET)
  end)

  it("accepts a header list where any one v1 entry matches; other versions are ignored", function()
    local h = webhooks.sign(BODY, SECRET)
    local good = h["webhook-signature"]
    local wrong = webhooks.sign(BODY, "whsec_" .. b64(("x"):rep(32)),
      { id = h["webhook-id"], timestamp = tonumber(h["webhook-timestamp"]) })["webhook-signature"]
    h["webhook-signature"] = "v1a,c29tZXRoaW5nIGVsc2U= " .. wrong .. " v1,!!notbase64 " .. good
    assert.is_table(webhooks.verify(BODY, h, SECRET))
    h["webhook-signature"] = "v1a," .. good:sub(4) .. " v2," .. good:sub(4)
    refused("signature", "holds no v1 signature", BODY, h, SECRET)
    h["webhook-signature"] = wrong .. " " .. wrong
    refused("signature", "no v1 signature .* matches %(2 tried%)", BODY, h, SECRET)
  end)

  it("refuses a tampered body, id or timestamp, and a wrong secret", function()
    local h = webhooks.sign(BODY, SECRET)
    refused("signature", "matches", BODY:gsub("completed", "failed"), h, SECRET)
    refused("signature", "matches", BODY .. " ", h, SECRET)
    local other = copy(h)
    other["webhook-id"] = h["webhook-id"] .. "x"
    refused("signature", "matches", BODY, other, SECRET)
    other = copy(h)
    other["webhook-timestamp"] = tostring(tonumber(h["webhook-timestamp"]) - 1)
    refused("signature", "matches", BODY, other, SECRET)
    refused("signature", "matches", BODY, h, "whsec_" .. b64("0123456789abcdef0123456789abcdeF"))
    -- a truncated MAC, the MAC of another message: same refusal
    other = copy(h)
    other["webhook-signature"] = "v1," .. b64(("\0"):rep(31))
    refused("signature", "matches", BODY, other, SECRET)
  end)

  it("refuses a timestamp outside the tolerance, in either direction", function()
    local now = os.time()
    local old = webhooks.sign(BODY, SECRET, { timestamp = now - 400 })
    local new = webhooks.sign(BODY, SECRET, { timestamp = now + 400 })
    refused("timestamp", "too old: 4%d%d s ago, the tolerance is 300 s", BODY, old, SECRET)
    refused("timestamp", "too new: 4%d%d s ahead, the tolerance is 300 s", BODY, new, SECRET)
    assert.is_table(webhooks.verify(BODY, old, SECRET, { tolerance = 600 }))
    assert.is_table(webhooks.verify(BODY, new, SECRET, { tolerance = 600 }))
    refused("timestamp", "too old", BODY, webhooks.sign(BODY, SECRET, { timestamp = now - 20 }),
      SECRET, { tolerance = 10 })
    assert.is_table(webhooks.verify(BODY, webhooks.sign(BODY, SECRET, { timestamp = now - 250 }), SECRET))
  end)

  it("refuses a timestamp that is not Unix seconds before looking at the signature", function()
    for _, bad in ipairs{ "soon", "1758941485.5", "-1758941485", " 1758941485", "1e9",
                          "1234567890123456" } do
      local h = webhooks.sign(BODY, SECRET)
      h["webhook-timestamp"] = bad
      refused("timestamp", "not a Unix time in seconds", BODY, h, SECRET)
    end
  end)

  it("names each missing header", function()
    for _, name in ipairs{ "webhook-id", "webhook-timestamp", "webhook-signature" } do
      local h = webhooks.sign(BODY, SECRET)
      h[name] = nil
      refused("headers", "header '" .. name:gsub("%-", "%%-") .. "' is missing", BODY, h, SECRET)
    end
    refused("headers", "missing", BODY, {}, SECRET)
    local h = webhooks.sign(BODY, SECRET)
    h["webhook-id"] = { "a", "b" }
    refused("headers", "'webhook%-id' must be a string, got table", BODY, h, SECRET)
  end)

  it("refuses an empty header as missing, as the reference libraries do, even when signed", function()
    local t = tostring(os.time())
    local key = core.webhooks.base64_decode(SECRET:sub(#"whsec_" + 1))
    for _, name in ipairs{ "webhook-id", "webhook-timestamp", "webhook-signature" } do
      local h = { ["webhook-id"] = "msg_1", ["webhook-timestamp"] = t }
      h[name] = ""
      -- a signature made over the empty value: only the emptiness can refuse it
      h["webhook-signature"] = "v1," .. b64(core.webhooks.hmac_sha256(key,
        h["webhook-id"] .. "." .. h["webhook-timestamp"] .. "." .. BODY))
      h[name] = ""
      refused("headers", "header '" .. name:gsub("%-", "%%-") .. "' is empty", BODY, h, SECRET)
    end
  end)

  it("refuses, never raises, for any header value that is not a string", function()
    local nan, inf = 0 / 0, math.huge
    for _, value in ipairs{ 1.5, nan, inf, -inf, 1758941485, true, false, {}, print,
                            coroutine.create(function() end), io.stdout } do
      for _, name in ipairs{ "webhook-id", "Webhook-Timestamp", "webhook-signature" } do
        local h = webhooks.sign(BODY, SECRET)
        h[name:lower()] = nil
        h[name] = value
        local ok, event, err = pcall(webhooks.verify, BODY, h, SECRET)
        assert.is_true(ok, tostring(event))
        assert.is_nil(event)
        assert.are.equal("headers", err.check)
        assert.matches("header '" .. name:lower():gsub("%-", "%%-") .. "' must be a string, got "
          .. type(value), err.message)
      end
    end
  end)

  it("compares signatures as canonical base64 text, as the reference libraries do", function()
    local h = webhooks.sign(BODY, SECRET)
    local good = h["webhook-signature"]:sub(4) -- 43 characters and '=': 2 unused trailing bits
    local last = good:sub(-2, -2)
    local alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
    local at = alphabet:find(last, 1, true)
    local twin = good:sub(1, -3) .. alphabet:sub(at + 1, at + 1) .. "=" -- other unused bits
    assert.are.equal(core.webhooks.base64_decode(good), core.webhooks.base64_decode(twin))
    h["webhook-signature"] = "v1," .. twin
    refused("signature", "matches", BODY, h, SECRET)
    h["webhook-signature"] = "v1," .. good:gsub("=$", "") -- unpadded: not the canonical text
    refused("signature", "matches", BODY, h, SECRET)
    h["webhook-signature"] = "v1," .. good
    assert.is_table(webhooks.verify(BODY, h, SECRET))
  end)

  it("refuses a signed body that is not a JSON object", function()
    for _, body in ipairs{ "not json", "[1,2]", '"text"', "", '{"a":' } do
      refused("body", "not a JSON object", body, webhooks.sign(body, SECRET), SECRET)
    end
  end)

  it("reads a secret as OpenAI's SDKs do: base64 after whsec_ (padded or not), else its bytes", function()
    local raw = ("k"):rep(32)
    local h = webhooks.sign(BODY, "whsec_" .. b64(raw))
    assert.is_table(webhooks.verify(BODY, h, "whsec_" .. b64(raw):gsub("=+$", "")))
    assert.is_table(webhooks.verify(BODY, h, raw)) -- unprefixed: the bytes themselves
    local plain = webhooks.sign(BODY, "my plain secret")
    assert.is_table(webhooks.verify(BODY, plain, "my plain secret"))
    -- the same key, written the other way
    assert.is_table(webhooks.verify(BODY, plain, "whsec_" .. b64("my plain secret")))
    refused("signature", "matches", BODY, plain, "my plain secret ")
  end)

  it("raises for a wrong argument type, an unknown option or a secret that is no key", function()
    local h = webhooks.sign(BODY, SECRET)
    local unpack = table.unpack or unpack
    local function raises(pattern, ...)
      local args = { n = select("#", ...), ... }
      local ok, err = pcall(function() return webhooks.verify(unpack(args, 1, args.n)) end)
      assert.is_false(ok)
      assert.matches("webhooks_verify_spec.lua:%d+: " .. pattern, err)
    end
    raises("bad argument #1 to 'verify' %(string expected, got nil%)", nil, h, SECRET)
    raises("bad argument #2 to 'verify' %(table expected, got string%)", BODY, "h", SECRET)
    raises("bad argument #3 to 'verify' %(string expected, got number", BODY, h, 42)
    raises("bad argument #3 to 'verify' %(the part of the secret after 'whsec_' must be non%-empty base64%)",
      BODY, h, "whsec_***")
    raises("bad argument #3 to 'verify' %(the part of the secret after 'whsec_'", BODY, h, "whsec_")
    raises("bad argument #3 to 'verify' %(the secret is empty%)", BODY, h, "")
    raises("bad argument #4 to 'verify' %(unknown option 'tolerence' %(did you mean 'tolerance'%?%)%)", BODY, h, SECRET, { tolerence = 5 })
    raises("bad argument #4 to 'verify' %(option 'tolerance' must be a non%-negative number, got %-1%)",
      BODY, h, SECRET, { tolerance = -1 })
    raises("bad argument #4 to 'verify' %(table expected, got number%)", BODY, h, SECRET, 300)
  end)
end)

describe("sora.webhooks.sign", function()
  it("returns the three headers, with the given id and timestamp", function()
    local h = webhooks.sign(BODY, SECRET, { id = "msg_1", timestamp = 1758941485 })
    assert.are.equal("msg_1", h["webhook-id"])
    assert.are.equal("1758941485", h["webhook-timestamp"])
    local mac = core.webhooks.hmac_sha256("0123456789abcdef0123456789abcdef", "msg_1.1758941485." .. BODY)
    assert.are.equal("v1," .. b64(mac), h["webhook-signature"])
    assert.matches("^v1,[%w+/]+=*$", h["webhook-signature"])
  end)

  it("makes a fresh random id and the current time by default", function()
    local a, b = webhooks.sign(BODY, SECRET), webhooks.sign(BODY, SECRET)
    assert.matches("^msg_%x+$", a["webhook-id"])
    assert.are_not.equal(a["webhook-id"], b["webhook-id"])
    assert.is_true(math.abs(tonumber(a["webhook-timestamp"]) - os.time()) <= 1)
  end)

  it("raises for what cannot be signed", function()
    local ok, err = pcall(webhooks.sign, nil, SECRET)
    assert.is_false(ok)
    assert.matches("bad argument #1 to 'sign' %(string expected, got nil%)", err)
    ok, err = pcall(webhooks.sign, BODY, SECRET, { id = "a\r\nb" })
    assert.is_false(ok)
    assert.matches("bad argument #3 to 'sign' %(option 'id' must not hold CR, LF or NUL%)", err)
    ok, err = pcall(webhooks.sign, BODY, SECRET, { timestamp = 1.5 })
    assert.is_false(ok)
    assert.matches("bad argument #3 to 'sign' %(option 'timestamp' must be an integer, got 1.5%)", err)
    ok, err = pcall(webhooks.sign, BODY, "whsec_")
    assert.is_false(ok)
    assert.matches("bad argument #2 to 'sign'", err)
  end)
end)

describe("sora.core.webhooks (libcrypto)", function()
  local c = core.webhooks
  it("computes RFC 4231's HMAC-SHA256 test case 2", function()
    local mac = c.hmac_sha256("Jefe", "what do ya want for nothing?")
    assert.are.equal("5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843",
      (mac:gsub(".", function(ch) return string.format("%02x", ch:byte()) end)))
  end)

  it("encodes and decodes base64 of every padding length, strictly", function()
    for n = 0, 10 do
      local bytes = ("\255\0\1"):rep(4):sub(1, n)
      assert.are.equal(bytes, c.base64_decode(c.base64_encode(bytes)))
      assert.are.equal(bytes, c.base64_decode((c.base64_encode(bytes):gsub("=", ""))))
    end
    assert.are.equal("Zm9vYg==", c.base64_encode("foob"))
    for _, bad in ipairs{ "Zm9vY", "Zm9v\nYg==", " Zm9v", "Zm9vYg=", "Zm9vYg===", "Zm=9", "Zm9v-_==" } do
      assert.is_nil(c.base64_decode(bad), bad)
    end
  end)

  it("compares in constant time, lengths first", function()
    assert.is_true(c.equal("abc", "abc"))
    assert.is_false(c.equal("abc", "abd"))
    assert.is_false(c.equal("abc", "ab"))
    assert.is_true(c.equal("", ""))
  end)
end)
