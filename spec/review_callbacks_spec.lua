-- Review of the C core: what a callback raises is raised again by the call that started its
-- transfer, whatever it is, nil included (error() and error(nil) raise nil).
local H = require "support.client"

describe("a callback that raises nil", function()
  local E, c, video

  lazy_setup(function()
    E, c = H.start({ max_retries = 2 })
    video = H.completed_video(c, E, { prompt = "review callbacks" })
  end)

  lazy_teardown(function()
    H.stop(E, c)
  end)

  -- pcall's results for a download of the video with `opts`.
  local function download(opts)
    return { pcall(c.download_content, c, video.id, opts) }
  end

  it("as a sink aborts the download, and the call raises nil", function()
    local calls = 0
    local r = download{ sink = function() calls = calls + 1; error(nil) end }
    assert.is_false(r[1])
    assert.is_nil(r[2])
    assert.are.equal(1, calls) -- aborted at the first chunk, not retried
  end)

  it("as an on_progress aborts the download, and the call raises nil", function()
    local r = download{ on_progress = function() error() end }
    assert.is_false(r[1])
    assert.is_nil(r[2])
  end)

  it("is raised again by every result of its transfer", function()
    local t = c:_start("download_content", video.id, { sink = function() error(nil) end })
    local ok, err = pcall(t.wait, t)
    assert.is_false(ok)
    assert.is_nil(err)
    ok, err = pcall(t.result, t)
    assert.is_false(ok)
    assert.is_nil(err)
  end)

  it("leaves the client usable", function()
    assert.are.equal(video.id, assert(c:retrieve(video.id)).id)
    assert.are.equal(0, c:_drive(0))
  end)
end)
