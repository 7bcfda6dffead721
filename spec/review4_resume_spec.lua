-- review4: a resume whose first bytes were all still gathered (download.c writes 16 KiB at a
-- time) or partly written, continued by a 206, gives the whole body, byte-identical.
local sora = require "sora"
local H = require "support.client"
local F = require "support.faults"
local rawserver = require "support.rawserver"

describe("review4: a cut download resumed with a 206", function()
  local S, c, dir
  before_each(function() dir = F.tempdir() end)
  after_each(function()
    if c then c:close() end
    if S then S:stop() end
    c, S = nil, nil
    H.rmdir(dir)
  end)
  for _, sent in ipairs({ 10000, 16384, 200000 }) do
    it("after " .. sent .. " bytes", function()
      S = rawserver.start(string.format([[return function(req, n)
        if n == 1 then return head("200 OK", { "Content-Length: 300000" }) .. synthetic(0, %d) end
        return head("206 Partial Content", { "Content-Range: bytes %d-299999/300000",
          "Content-Length: %d" }) .. synthetic(%d, 300000)
      end]], sent, sent, 300000 - sent, sent))
      c = sora.new{ api_key = H.KEY, base_url = S.url, max_retries = 1 }
      local out = dir .. "/out.mp4"
      assert(c:download_content("video_1", { path = out }))
      assert.are.equal("bytes=" .. sent .. "-", S:requests()[2].headers.range)
      F.assert_synthetic_exact(H.read(out), 300000)
      assert.are.same({ "out.mp4" }, H.ls(dir))
    end)
  end
end)
