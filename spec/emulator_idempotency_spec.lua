-- The emulator's Idempotency-Key (as the IETF httpapi draft's gateway honours it, or ignored as
-- OpenAI's API does), its count of what each create made, and the faults lose_answer and
-- delay_answer: over real sockets, with LuaSocket as the client (no sora in between).
local http = require "socket.http"
local ltn12 = require "ltn12"
local cjson = require "cjson"
local emulator = require "support.emulator"
local H = require "support.client"

local KEY = "sk-idem"

-- One POST with socket.http: status (or nil, error), headers, decoded body (or the text).
local function post(E, path, body, headers)
  local chunks, h = {}, { authorization = "Bearer " .. KEY }
  for k, v in pairs(headers or {}) do h[k] = v end
  h["content-type"] = h["content-type"] or "application/json"
  h["content-length"] = #body
  local ok, status, answer = http.request{ url = E.url .. path, method = "POST", headers = h,
    source = ltn12.source.string(body), sink = ltn12.sink.table(chunks) }
  if not ok then return nil, status end
  local text = table.concat(chunks)
  local decoded = pcall(cjson.decode, text) and cjson.decode(text) or text
  return status, answer, decoded
end

local function multipart(boundary, fields)
  local out = {}
  for _, f in ipairs(fields) do
    out[#out + 1] = "--" .. boundary .. "\r\nContent-Disposition: form-data; name=\"" .. f[1] .. "\""
      .. (f[3] and ("; filename=\"" .. f[3] .. "\"\r\nContent-Type: " .. f[4]) or "")
      .. "\r\n\r\n" .. f[2] .. "\r\n"
  end
  out[#out + 1] = "--" .. boundary .. "--\r\n"
  return table.concat(out), "multipart/form-data; boundary=" .. boundary
end

local function made(E, prompt)
  local n = 0
  for _, entry in ipairs(E:creates()) do
    if entry.prompt == prompt then n = n + entry.made end
  end
  return n
end

describe("the emulator's Idempotency-Key", function()
  local E

  lazy_setup(function() E = emulator.start{ job_seconds = 0.3, api_key = KEY } end)
  lazy_teardown(function() if E then E:stop() end end)
  before_each(function()
    E:clear_faults()
    E:config{ idempotency = true }
  end)

  it("answers the same key and body with the first answer, and makes nothing", function()
    local body = cjson.encode{ prompt = "replayed", seconds = "8" }
    local s1, _, first = post(E, "/videos", body, { ["idempotency-key"] = '"k-replay"' })
    local s2, h2, again = post(E, "/videos", body, { ["idempotency-key"] = "k-replay" })
    assert.are.equal(200, s1)
    assert.are.equal(200, s2)
    assert.are.same(first, again) -- the first answer, queued as it was
    assert.are.equal("true", h2["idempotent-replayed"])
    assert.are.equal(1, made(E, "replayed"))
  end)

  it("compares bodies by their fields: another boundary or order is the same request", function()
    local image = H.media("thumbnail.webp")
    local fields = { { "prompt", "by fields" }, { "size", "720x1280" } }
    local b1, ct1 = multipart("one", fields)
    local b2, ct2 = multipart("another-boundary", { fields[2], fields[1] })
    local s1, _, first = post(E, "/videos", b1, { ["idempotency-key"] = "k-fields", ["content-type"] = ct1 })
    local s2, _, again = post(E, "/videos", b2, { ["idempotency-key"] = "k-fields", ["content-type"] = ct2 })
    assert.are.equal(200, s1)
    assert.are.equal(200, s2)
    assert.are.equal(first.id, again.id)
    -- a file part counts by its bytes
    local with_file = { { "prompt", "by fields" }, { "input_reference", image, "a.webp", "image/webp" } }
    local b3, ct3 = multipart("x", with_file)
    local s3 = post(E, "/videos", b3, { ["idempotency-key"] = "k-fields", ["content-type"] = ct3 })
    assert.are.equal(422, s3)
  end)

  it("refuses the same key with another body (422), and makes nothing", function()
    post(E, "/videos", cjson.encode{ prompt = "first body" }, { ["idempotency-key"] = "k-reused" })
    local status, _, answer = post(E, "/videos", cjson.encode{ prompt = "second body" },
                                   { ["idempotency-key"] = "k-reused" })
    assert.are.equal(422, status)
    assert.are.equal("idempotency_key_reused", answer.error.code)
    assert.are.equal(0, made(E, "second body"))
  end)

  it("leaves a key unused by an answer that failed", function()
    local status = post(E, "/videos", cjson.encode{ prompt = "fixed", seconds = "7" },
                        { ["idempotency-key"] = "k-error" })
    assert.are.equal(400, status)
    status = post(E, "/videos", cjson.encode{ prompt = "fixed", seconds = "8" },
                  { ["idempotency-key"] = "k-error" })
    assert.are.equal(200, status)
    assert.are.equal(1, made(E, "fixed"))
  end)

  it("is ignored with idempotency = false: every request makes a video, and is counted", function()
    E:config{ idempotency = false }
    local body = cjson.encode{ prompt = "ignored key" }
    local _, _, first = post(E, "/videos", body, { ["idempotency-key"] = "k-off" })
    local _, _, again = post(E, "/videos", body, { ["idempotency-key"] = "k-off" })
    assert.are_not.equal(first.id, again.id)
    local entries = {}
    for _, entry in ipairs(E:creates()) do
      if entry.prompt == "ignored key" then entries[#entries + 1] = entry end
    end
    assert.are.equal(1, #entries)
    assert.are.equal("k-off", entries[1].key)
    assert.are.equal(2, entries[1].made)
    assert.are.same({ first.id, again.id }, entries[1].ids)
  end)

  it("counts creates without a key by their body", function()
    local body = cjson.encode{ prompt = "no key" }
    post(E, "/videos", body)
    post(E, "/videos", body)
    assert.are.equal(2, made(E, "no key"))
  end)

  it("refuses bad settings, and the command line takes on|off", function()
    for _, bad in ipairs{ { idempotency = "yes" }, { answer_delay_ms = { 2000, 1000 } },
                          { answer_delay_ms = { 1 } }, { answer_delay_ms = 5 } } do
      local ok, err = pcall(E.config, E, bad)
      assert.is_false(ok)
      assert.matches("400", err)
    end
    local p = io.popen("lua5.4 bin/sora-emulator --idempotency maybe 2>&1; echo \"rc=$?\"")
    local out = p:read("*a")
    p:close()
    assert.matches("--idempotency expects on or off, got 'maybe'", out, 1, true)
    assert.matches("rc=2", out, 1, true)
    local off = emulator.start{ job_seconds = 0.3, idempotency = false, answer_delay_ms = { 10, 20 } }
    local cfg = off:control("GET", "/config")
    off:stop()
    assert.is_false(cfg.idempotency)
    assert.are.same({ 10, 20 }, cfg.answer_delay_ms)
  end)
end)

describe("the emulator's lost and late answers", function()
  local E

  lazy_setup(function() E = emulator.start{ job_seconds = 0.3, api_key = KEY } end)
  lazy_teardown(function() if E then E:stop() end end)
  before_each(function()
    E:clear_faults()
    E:config{ fault_rate = 0, fault_kinds = cjson.null }
  end)

  it("lose_answer makes the video, then resets the connection", function()
    E:fault{ method = "POST", path = "^/v1/videos$", action = "lose_answer" }
    local status = post(E, "/videos", cjson.encode{ prompt = "lost answer" })
    assert.is_nil(status)
    assert.are.equal(1, made(E, "lost answer"))
  end)

  it("delay_answer makes the video at once and answers later", function()
    E:fault{ method = "POST", path = "^/v1/videos$", action = "delay_answer", delay_ms = 300 }
    local status, _, video = post(E, "/videos", cjson.encode{ prompt = "late answer" })
    assert.are.equal(200, status)
    assert.are.equal("late answer", video.prompt)
    assert.are.equal(1, made(E, "late answer"))
  end)

  it("are drawn by the random schedule for POSTs only", function()
    E:config{ fault_rate = 1, fault_seed = 3, fault_kinds = { "answer_lost" } }
    local status = post(E, "/videos", cjson.encode{ prompt = "drawn lost" })
    assert.is_nil(status)
    assert.are.equal(1, made(E, "drawn lost"))
    local ok, code = http.request(E.url .. "/videos")
    assert.is_truthy(ok, code) -- a GET is left alone (401 without a key, but answered)
    E:config{ fault_kinds = { "answer_delayed" }, answer_delay_ms = { 50, 100 } }
    assert.are.equal(200, (post(E, "/videos", cjson.encode{ prompt = "drawn late" })))
    assert.are.equal(1, E:stats().faults.answer_delayed)
    assert.are.equal(1, E:stats().faults.answer_lost)
  end)
end)
