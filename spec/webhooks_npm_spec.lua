-- Webhooks cross-checked with code written elsewhere, in Node.js:
--   * the `standardwebhooks` npm package (the scheme's reference library) signs vectors that
--     sora.webhooks.verify accepts, and refuses what sora tampered with; it verifies what
--     sora.webhooks.sign produced;
--   * the official OpenAI Node SDK's client.webhooks.unwrap, in a receiver on 127.0.0.1,
--     accepts the webhooks the emulator sends (and refuses them under another secret).
-- The packages are installed at test time under build/npm (npm install --prefix); without
-- node and npm, or when the install fails (no network), the specs are pending and say why
-- (and fail under CI=true: spec/support/tools.lua).
local socket = require "socket"
local cjson = require "cjson"
local sora = require "sora"
local emulator = require "support.emulator"
local tools = require "support.tools"

local NPM_DIR = "build/npm"
local PACKAGES = "standardwebhooks@1 openai@6"

local function shell_quote(s)
  return "'" .. tostring(s):gsub("'", "'\\''") .. "'"
end

local function read_file(path)
  local f = io.open(path, "rb")
  if not f then return nil end
  local s = f:read("*a")
  f:close()
  return s
end

local function write_file(path, text)
  local f = assert(io.open(path, "wb"))
  f:write(text)
  f:close()
end

local function succeeded(status) return status == true or status == 0 end

-- true when the npm packages are there (installed now if need be), else false and why.
local function npm_packages()
  local why_node = "the cross-checks run Node.js code"
  local ok, why = tools.require_tool("node", why_node)
  if ok then ok, why = tools.require_tool("npm", why_node) end
  if not ok then return false, why end
  -- installed and whole: both load (an interrupted install leaves package.json without the rest)
  local installed = "node -e \"require('./" .. NPM_DIR .. "/node_modules/standardwebhooks'); require('./"
    .. NPM_DIR .. "/node_modules/openai')\" 2>/dev/null"
  if succeeded(os.execute(installed)) then return true end
  os.execute("mkdir -p " .. NPM_DIR)
  local log = NPM_DIR .. "/install.log"
  -- make test-all runs five Luas at once: one npm install at a time (flock), and none when an
  -- earlier holder of the lock installed them (two at once left a half-removed tree)
  -- (npm leaves a broken package as it is, so what is there goes first)
  local install = installed .. " || { rm -rf " .. NPM_DIR .. "/node_modules; npm install --prefix " .. NPM_DIR
    .. " --no-audit --no-fund " .. PACKAGES .. " >" .. log .. " 2>&1; }"
  local locked = tools.have("flock") and "flock " .. NPM_DIR .. "/.install.lock sh -c " .. shell_quote(install)
    or install
  if not succeeded(os.execute(locked)) then
    return tools.missing("the npm packages " .. PACKAGES, "npm install failed (no network?): see " .. log)
  end
  return true
end

-- Runs a Node script (its text) with arguments; returns its stdout, raising when it fails.
-- The script is written beside node_modules, under a name of this process's own (the five
-- Lua runs of make test-all share build/npm).
local function script_path(name)
  local unique = os.tmpname() -- a name no other process holds (the file itself is not needed)
  os.remove(unique)
  return NPM_DIR .. "/" .. name:gsub("%.js$", "") .. "-" .. unique:match("[^/]*$") .. ".js"
end

local function node(name, script, ...)
  local path = script_path(name)
  write_file(path, script)
  local args = {}
  for i, a in ipairs{ ... } do args[i] = shell_quote(a) end
  local out = os.tmpname()
  local ok = succeeded(os.execute("node " .. path .. " " .. table.concat(args, " ") .. " >" .. out))
  local text = read_file(out)
  os.remove(out)
  os.remove(path)
  assert(ok, name .. " failed: " .. tostring(text))
  return text
end

-- Signs vectors with standardwebhooks: random secrets, ids, times within the tolerance,
-- bodies with non-ASCII text, line breaks, 100 kB of data.
local SIGN_JS = [[
const { Webhook } = require("standardwebhooks");
const crypto = require("crypto");
const bodies = [
  JSON.stringify({ id: "evt_1", object: "event", created_at: 1758941485, type: "video.completed",
                   data: { id: "video_1" } }),
  '{"type": "video.failed", "note": "vidéo échouée 🎬", "data": {"id": "video_2"}}',
  '{\n  "type": "video.completed",\r\n  "data": {"id": "video_3"}\n}\n',
  JSON.stringify({ type: "video.completed", data: { id: "video_4" }, pad: "x".repeat(100000) }),
];
const now = Math.floor(Date.now() / 1000);
const vectors = [];
for (let i = 0; i < 12; i++) {
  const secret = "whsec_" + crypto.randomBytes(i % 2 ? 24 : 32).toString("base64");
  const id = "msg_" + crypto.randomBytes(12).toString("hex");
  const timestamp = now - 200 + i * 30;
  const body = bodies[i % bodies.length];
  const signature = new Webhook(secret).sign(id, new Date(timestamp * 1000), body);
  const other = new Webhook("whsec_" + crypto.randomBytes(32).toString("base64"))
    .sign(id, new Date(timestamp * 1000), body);
  vectors.push({ secret, body, headers: {
    "webhook-id": id, "webhook-timestamp": String(timestamp),
    "webhook-signature": i % 3 ? signature : other + " " + signature,
  } });
}
process.stdout.write(JSON.stringify(vectors));
]]

-- Verifies with standardwebhooks what sora signed: one line per vector, "ok" or the error.
local VERIFY_JS = [[
const { Webhook } = require("standardwebhooks");
const vectors = JSON.parse(require("fs").readFileSync(process.argv[2], "utf8"));
const results = vectors.map((v) => {
  try { new Webhook(v.secret).verify(v.body, v.headers); return "ok"; }
  catch (e) { return String(e.message); }
});
process.stdout.write(JSON.stringify(results));
]]

-- A receiver that unwraps each POST with the official SDK, under the right secret and a
-- wrong one; prints its port, then one JSON line per request.
local RECEIVER_JS = [[
const http = require("http");
// the SDK verifies with the Web Crypto global, which Node 18 (Debian 12's) keeps in node:crypto
if (!globalThis.crypto) globalThis.crypto = require("crypto").webcrypto;
const mod = require("openai");
const OpenAI = mod.OpenAI || mod.default || mod;
const [secret, wrong] = process.argv.slice(2);
const client = new OpenAI({ apiKey: "sk-unused", baseURL: "http://127.0.0.1:9/v1" });
const server = http.createServer((req, res) => {
  const chunks = [];
  req.on("data", (c) => chunks.push(c));
  req.on("end", async () => {
    const body = Buffer.concat(chunks).toString("utf8");
    const line = { path: req.url, webhook_id: req.headers["webhook-id"] };
    try { line.event = await client.webhooks.unwrap(body, req.headers, secret); }
    catch (e) { line.error = e.constructor.name + ": " + e.message; }
    try { await client.webhooks.unwrap(body, req.headers, wrong); line.wrong = "accepted"; }
    catch (e) { line.wrong = e.constructor.name + ": " + e.message; }
    process.stdout.write(JSON.stringify(line) + "\n");
    res.writeHead(line.event ? 200 : 400, { "content-type": "text/plain" });
    res.end("done");
  });
});
server.listen(0, "127.0.0.1", () => {
  process.stdout.write(JSON.stringify({ port: server.address().port }) + "\n");
});
]]

local function copy(t)
  local c = {}
  for k, v in pairs(t) do c[k] = v end
  return c
end

describe("webhooks cross-checked in Node.js", function()
  local ok, why = npm_packages()
  if not ok then
    pending(why)
    return
  end

  it("accepts what standardwebhooks signed, and refuses it tampered with", function()
    local vectors = cjson.decode(node("sign_vectors.js", SIGN_JS))
    assert.are.equal(12, #vectors)
    for _, v in ipairs(vectors) do
      local event = assert(sora.webhooks.verify(v.body, v.headers, v.secret))
      assert.are.same(cjson.decode(v.body).data, event.data)
      -- one byte of the body, of the id, of the MAC; another secret: each refused
      local body = v.body:sub(1, -3) .. (v.body:sub(-2, -2) == " " and "_" or " ") .. v.body:sub(-1)
      local _, err = sora.webhooks.verify(body, v.headers, v.secret)
      assert.are.same({ "webhook", "signature" }, { err.kind, err.check })
      local h = copy(v.headers)
      h["webhook-id"] = h["webhook-id"]:sub(1, -2) .. "z"
      assert.is_nil(sora.webhooks.verify(v.body, h, v.secret))
      h = copy(v.headers)
      h["webhook-signature"] = h["webhook-signature"]:gsub("v1,(.)", function(c)
        return "v1," .. (c == "A" and "B" or "A")
      end)
      _, err = sora.webhooks.verify(v.body, h, v.secret)
      assert.are.equal("signature", err.check)
      _, err = sora.webhooks.verify(v.body, v.headers, v.secret:sub(1, -6) .. "AAAA=")
      assert.are.equal("signature", err.check)
      -- within standardwebhooks' tolerance, outside a tighter one
      _, err = sora.webhooks.verify(v.body, v.headers, v.secret, { tolerance = 0 })
      if tonumber(v.headers["webhook-timestamp"]) ~= os.time() then
        assert.are.equal("timestamp", err.check)
      end
    end
  end)

  it("has standardwebhooks accept what sora.webhooks.sign signed, and refuse it tampered with", function()
    local vectors, b64 = {}, require("sora.core").webhooks.base64_encode
    for i = 1, 8 do
      local secret = "whsec_" .. b64(("secret %d with some length"):format(i))
      local body = cjson.encode{ type = "video.completed", data = { id = "video_" .. i },
        note = ("é🎬"):rep(i) }
      vectors[#vectors + 1] = { secret = secret, body = body, headers = sora.webhooks.sign(body, secret) }
    end
    local tampered = copy(vectors[1])
    tampered.body = tampered.body .. " "
    vectors[#vectors + 1] = tampered
    local path = os.tmpname()
    write_file(path, cjson.encode(vectors))
    local results = cjson.decode(node("verify_vectors.js", VERIFY_JS, path))
    os.remove(path)
    for i = 1, 8 do assert.are.equal("ok", results[i]) end
    assert.are.equal("No matching signature found", results[9])
  end)

  describe("the official SDK's client.webhooks.unwrap", function()
    local E, client, pid, out, receiver

    after_each(function()
      if E then E:stop() end
      if client then client:close() end
      if pid then os.execute("kill " .. pid .. " 2>/dev/null") end
      if out then os.remove(out) end
      if receiver then os.remove(receiver) end
      E, client, pid, out, receiver = nil, nil, nil, nil, nil
    end)

    -- The receiver's JSON lines once there are n of them (10 s at most).
    local function lines(n)
      local deadline, found = socket.gettime() + 10
      repeat
        found = {}
        for line in (read_file(out) or ""):gmatch("[^\n]+") do found[#found + 1] = cjson.decode(line) end
        if #found >= n then return found end
        socket.sleep(0.05)
      until socket.gettime() > deadline
      error("the Node receiver printed " .. #found .. " lines, not " .. n .. ": " .. tostring(read_file(out)))
    end

    it("accepts the emulator's webhooks", function()
      local secret = "whsec_" .. require("sora.core").webhooks.base64_encode("the emulator's key, 32 bytes ok")
      local wrong = "whsec_" .. require("sora.core").webhooks.base64_encode("another key entirely, 32 bytes!")
      receiver = script_path("unwrap_receiver.js")
      write_file(receiver, RECEIVER_JS)
      out = os.tmpname()
      local pidfile = os.tmpname()
      os.execute("node " .. receiver .. " " .. shell_quote(secret) .. " "
        .. shell_quote(wrong) .. " >" .. out .. " 2>&1 </dev/null & echo $! >" .. pidfile)
      pid = read_file(pidfile):match("%d+")
      os.remove(pidfile)
      local port = assert(lines(1)[1].port, "the Node receiver did not start")
      E = emulator.start{ job_seconds = 0.3, api_key = "sk-node",
        webhook_url = string.format("http://127.0.0.1:%d/openai/webhooks", port), webhook_secret = secret }
      client = sora.new{ api_key = "sk-node", base_url = E.url }
      local done = assert(client:create{ prompt = "a paper boat" })
      local failed = assert(client:create{ prompt = "a storm #fail" })
      local got = lines(3)
      local by_video = {}
      for i = 2, 3 do
        local line = got[i]
        assert.is_nil(line.error)
        assert.are.equal("/openai/webhooks", line.path)
        assert.matches("^InvalidWebhookSignatureError: ", line.wrong)
        assert.matches("^wh_", line.webhook_id)
        assert.are.equal("event", line.event.object)
        by_video[line.event.data.id] = line.event.type
      end
      assert.are.same({ [done.id] = "video.completed", [failed.id] = "video.failed" }, by_video)
      -- answered 200: each delivered at the first attempt
      local deadline, log = socket.gettime() + 5
      repeat
        log = E:control("GET", "/webhooks")
        if #log < 2 then socket.sleep(0.05) end
      until #log >= 2 or socket.gettime() > deadline
      assert.are.same({ 200, 200 }, { log[1].status, log[2].status })
      assert.are.equal(2, #log)
    end)
  end)
end)
