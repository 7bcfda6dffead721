-- with_response against a raw server that sends what the emulator never does: repeated
-- headers, odd casing, no headers at all, a 1xx before the answer, trailers, a header that
-- echoes the key, a redirect to storage.
local sora = require "sora"
local rawserver = require "support.rawserver"

local KEY = "sk-raw-response-secret-key"

-- Routes on the id (or the path) of the request; every response closes its connection.
local SCRIPT = [==[
local KEY = "sk-raw-response-secret-key"
local VIDEO = '{"id":"video_1","object":"video","status":"queued","progress":0,'
  .. '"created_at":1,"model":"sora-2","seconds":"4","size":"720x1280"}'
local function answer(status, lines, body)
  body = body or VIDEO
  lines[#lines + 1] = "Content-Length: " .. #body
  return head(status, lines) .. body
end
local JSON = "Content-Type: application/json"
local routes = {
  multi = function()
    return answer("200 OK", { JSON, "X-Multi: a", "x-MULTI: b", "X-Multi: c", "X-ODD-Case: Yes",
                              "X-Empty:", "X-Spaced:   padded value   " })
  end,
  bare = function() return "HTTP/1.1 200 OK\r\n\r\n" .. VIDEO end,
  echo = function()
    return answer("200 OK", { JSON, "X-Echo: Bearer " .. KEY, "X-" .. KEY .. ": named" })
  end,
  early = function()
    return "HTTP/1.1 100 Continue\r\nX-Early: 1\r\n\r\n" .. answer("200 OK", { JSON, "X-Final: 1" })
  end,
  trailer = function()
    return head("200 OK", { JSON, "Transfer-Encoding: chunked", "Trailer: X-Trail" })
      .. string.format("%x\r\n", #VIDEO) .. VIDEO .. "\r\n0\r\nX-Trail: late\r\n\r\n"
  end,
  -- the trailers say what the headers did not: an id, a type, a delay that sora must not take
  lateid = function()
    return head("200 OK", { JSON, "X-Request-Id: req_head", "Transfer-Encoding: chunked" })
      .. string.format("%x\r\n", #VIDEO) .. VIDEO
      .. "\r\n0\r\nX-Request-Id: req_trailer\r\nContent-Type: text/html\r\n"
      .. "Openai-Poll-After-Ms: 1\r\n\r\n"
  end,
  emptylate = function()
    return head("503 Service Unavailable", { "Transfer-Encoding: chunked" })
      .. "0\r\nX-Request-Id: req_trailer\r\nRetry-After: 7\r\n\r\n"
  end,
  busy = function()
    return answer("503 Service Unavailable", { "Content-Type: text/plain", "X-Multi: 1",
                                               "X-Multi: 2", "X-Echo: " .. KEY }, "busy")
  end,
  redirect = function(req)
    return answer("302 Found", { "Location: http://" .. req.headers.host .. "/storage/clip",
                                 "X-From: api", "X-Request-Id: req_api" }, "")
  end,
}
return function(req)
  if req.path == "/storage/clip" then
    return answer("200 OK", { "Content-Type: video/mp4", "X-From: storage" }, "movie")
  end
  local name = req.path:match("/videos/video_(%w+)")
  return (routes[name] or routes.bare)(req)
end
]==]

describe("with_response against a raw server", function()
  local S, c

  lazy_setup(function()
    S = rawserver.start(SCRIPT)
    c = sora.new{ api_key = KEY, base_url = S.url, max_retries = 0 }
  end)

  lazy_teardown(function()
    c:close()
    S:stop()
  end)

  local function retrieve(name)
    local video, resp = c:retrieve("video_" .. name, { with_response = true })
    assert.is_truthy(video, tostring(resp))
    assert.are.equal(200, resp.status)
    return resp.headers, resp
  end

  it("joins a repeated header's values with ', ' in order, and lower-cases every name", function()
    local headers = retrieve("multi")
    assert.are.equal("a, b, c", headers["x-multi"])
    assert.are.equal("Yes", headers["x-odd-case"]) -- values keep their case
    assert.are.equal("Yes", headers["X-Odd-CASE"])
    assert.are.equal("", headers["x-empty"])
    assert.are.equal("padded value", headers["x-spaced"])
    for name in pairs(headers) do assert.are.equal(name:lower(), name) end
    assert.is_nil(headers["x-missing"])
  end)

  it("gives an empty table for an answer with no headers, whatever the handle saw before", function()
    retrieve("multi") -- the same pooled handle answers next
    local headers, resp = retrieve("bare")
    assert.is_nil(next(headers))
    assert.is_nil(resp.request_id)
  end)

  it("takes the request id and the timing headers from the header block, never the trailers", function()
    local _, resp = retrieve("lateid")
    assert.are.equal("req_head", resp.request_id)
    local video, err = c:retrieve("video_emptylate") -- no body: the trailers come right after the headers
    assert.is_nil(video)
    assert.are.equal(503, err.status)
    assert.is_nil(err.request_id)
    assert.is_nil(err.retry_after)
  end)

  it("never shows the key a server echoes, nor the request's own headers", function()
    local headers = retrieve("echo")
    assert.are.equal("Bearer [redacted key]", headers["x-echo"])
    assert.are.equal("named", headers["x-[redacted key]"])
    for name, value in pairs(headers) do
      assert.is_nil(name:find(KEY, 1, true))
      assert.is_nil(value:find(KEY, 1, true))
    end
    assert.is_nil(headers.authorization)
    assert.is_nil(headers["user-agent"])
  end)

  it("leaves out a 1xx answer's headers and the trailers", function()
    local headers = retrieve("early")
    assert.are.equal("1", headers["x-final"])
    assert.is_nil(headers["x-early"])
    headers = retrieve("trailer")
    assert.are.equal("X-Trail", headers["trailer"])
    assert.is_nil(headers["x-trail"])
  end)

  it("puts the headers of an error answer on the error, asked or not", function()
    for _, opts in ipairs({ {}, { with_response = true } }) do
      local video, err = c:retrieve("video_busy", opts)
      assert.is_nil(video)
      assert.are.equal("internal_server", err.kind)
      assert.are.equal(503, err.status)
      assert.are.equal("1, 2", err.headers["x-multi"])
      assert.are.equal("[redacted key]", err.headers["x-echo"])
      assert.are.equal("text/plain", err.headers["Content-Type"])
      assert.is_number(err.elapsed)
    end
  end)

  it("gives the final answer's headers after a redirect to storage", function()
    local bytes, resp = c:download_content("video_redirect", { with_response = true })
    assert.are.equal("movie", bytes, tostring(resp))
    assert.are.equal(200, resp.status)
    assert.are.equal("storage", resp.headers["x-from"])
    assert.are.equal("video/mp4", resp.headers["content-type"])
    assert.is_nil(resp.request_id) -- storage sent none; the API's was on the redirect
  end)
end)
