-- `sora --json` is always JSON: whatever a server sends (nested nulls, invalid UTF-8) and
-- however the command ends (a usage error caught by the parser included), stdout holds lines
-- that a strict JSON parser (Python's json, with strict UTF-8) accepts.
local cli = require "support.cli"
local rawserver = require "support.rawserver"

describe("sora --json", function()
  local S

  -- A video with nested nulls and, in its prompt, bytes that are not UTF-8; a list of it; an
  -- API error whose message is not UTF-8 either.
  local SCRIPT = [[
local VIDEO = '{"id":"video_nulls","object":"video","created_at":1700000000,"status":"completed",'
  .. '"model":"sora-2","progress":100,"seconds":"4","size":"720x1280",'
  .. '"prompt":"a boat \255\254 on \195 water \237\160\128 end",'
  .. '"metadata":{"tag":null,"list":[1,null],"deep":{"x":[null,{"y":null}]}}}'
local function answer(status, body)
  return head(status, { "Content-Type: application/json", "Content-Length: " .. #body,
                        "x-request-id: req_raw" }) .. body
end
-- numbers past a double's range (JSON's grammar has no limit): cjson reads them as +-inf
local HUGE = '{"id":"video_huge","object":"video","created_at":1e300,"status":"completed",'
  .. '"model":"sora-2","progress":1e400,"seconds":"4","size":"720x1280","prompt":"p",'
  .. '"expires_at":-1e400,"metadata":{"big":[1e400,-1e400]}}'
return function(req)
  if req.path == "/v1/videos/video_nulls" then return answer("200 OK", VIDEO) end
  if req.path == "/v1/videos/video_huge" then return answer("200 OK", HUGE) end
  if req.path:match("^/v1/videos%??") and req.method == "GET" and not req.path:find("/v1/videos/") then
    return answer("200 OK", '{"object":"list","data":[' .. VIDEO .. ',' .. VIDEO
      .. '],"first_id":"video_nulls","last_id":"video_nulls","has_more":false}')
  end
  return answer("400 Bad Request", '{"error":{"message":"refused \255 here","type":'
    .. '"invalid_request_error","param":null,"code":null}}')
end
]]

  lazy_setup(function()
    S = rawserver.start(SCRIPT)
  end)

  lazy_teardown(function()
    if S then S:stop() end
  end)

  local function sora(args)
    return cli.run(args, { OPENAI_API_KEY = "sk-json-test", OPENAI_BASE_URL = S.url })
  end

  local function assert_json(r)
    local ok, why = cli.strict_json(r.stdout)
    assert.is_true(ok, tostring(why) .. "\nstdout: " .. r.stdout .. "\nstderr: " .. r.stderr)
  end

  it("get: a video with nested nulls and invalid UTF-8 is one valid JSON object", function()
    local r = sora({ "--json", "get", "video_nulls" })
    assert.are.equal(0, r.code, r.stderr)
    assert_json(r)
    local lines = cli.lines(r.stdout)
    assert.are.equal(1, #lines)
    local v = cli.decode(lines[1])
    assert.are.equal("video_nulls", v.id)
    assert.are.equal(require("cjson").null, v.metadata.tag)
    assert.are.equal(2, #v.metadata.list)
    -- each byte that is not UTF-8 became U+FFFD; the rest of the text is kept
    assert.are.equal("a boat \239\191\189\239\191\189 on \239\191\189 water "
      .. "\239\191\189\239\191\189\239\191\189 end", v.prompt)
  end)

  it("get: numbers past a double's range are null in JSON, and shown as they are for people", function()
    local r = sora({ "--json", "get", "video_huge" })
    assert.are.equal(0, r.code, r.stderr)
    assert_json(r)
    local v = cli.decode(cli.lines(r.stdout)[1])
    assert.are.equal("video_huge", v.id)
    assert.are.equal(require("cjson").null, v.progress)
    assert.are.equal(require("cjson").null, v.metadata.big[2])
    r = sora({ "get", "video_huge" })
    assert.are.equal(0, r.code, r.stderr)
    assert.matches("video_huge", r.stdout)
    assert.matches("created%s+1e%+300", r.stdout)
  end)

  it("list: one valid JSON object per line", function()
    for _, args in ipairs{ { "--json", "list" }, { "--json", "list", "--all" } } do
      local r = sora(args)
      assert.are.equal(0, r.code, r.stderr)
      assert_json(r)
      assert.are.equal(2, #cli.lines(r.stdout))
    end
  end)

  it("an API error whose message is not UTF-8 is a valid error object", function()
    local r = sora({ "--json", "--max-retries", "0", "delete", "video_x" })
    assert.are.equal(3, r.code, r.stderr)
    assert_json(r)
    local err = cli.decode(r.stdout).error
    assert.are.equal("bad_request", err.kind)
    assert.are.equal("refused \239\191\189 here", err.message)
  end)

  it("a usage error caught by the parser writes one error object", function()
    for _, args in ipairs{
      { "--json", "get" },                    -- a missing argument
      { "--json", "list", "--bogus" },         -- an unknown flag
      { "list", "--limit", "many", "--json" }, -- a bad value, --json after the command
      { "--json" },                            -- no command
      { "--json", "nosuch" },                  -- an unknown command
    } do
      local r = sora(args)
      assert.are.equal(2, r.code, table.concat(args, " "))
      assert_json(r)
      local lines = cli.lines(r.stdout)
      assert.are.equal(1, #lines, r.stdout)
      local err = cli.decode(lines[1]).error
      assert.are.equal("usage", err.kind)
      assert.is_string(err.message)
      assert.matches("try %-%-help", r.stderr) -- people still get the usage on stderr
    end
  end)

  it("a usage error found by sora (a reference that cannot be read) is kind usage too", function()
    local before = #S:requests()
    local r = sora({ "--json", "create", "x", "--image", "/no/such/ref.png" })
    assert.are.equal(2, r.code, r.stderr)
    assert_json(r)
    assert.are.equal("usage", cli.decode(r.stdout).error.kind)
    assert.are.equal(before, #S:requests()) -- nothing sent
  end)

  it("download -o - is a usage error: stdout cannot hold both the bytes and the JSON", function()
    local before = #S:requests()
    local r = sora({ "--json", "download", "video_nulls", "-o", "-" })
    assert.are.equal(2, r.code, r.stderr)
    assert_json(r)
    local lines = cli.lines(r.stdout)
    assert.are.equal(1, #lines, r.stdout)
    local err = cli.decode(lines[1]).error
    assert.are.equal("usage", err.kind)
    assert.matches("%-%-json", err.message)
    assert.are.equal(before, #S:requests()) -- nothing sent
  end)

  it("without --json, a usage error leaves stdout empty", function()
    local r = sora({ "get" })
    assert.are.equal(2, r.code)
    assert.are.equal("", r.stdout)
  end)
end)
