-- review4: a Video's poll hint now lives in its C block (video.c); it follows the response
-- that last updated the handle, nil when that response had none, on every Lua.
local H = require "support.client"

describe("review4: video:_poll_after()", function()
  local E, c, video
  lazy_setup(function()
    E, c = H.start({ max_retries = 0 })
    video = H.completed_video(c, E, { prompt = "poll" })
  end)
  lazy_teardown(function() H.stop(E, c) end)

  local function answer(headers)
    E:fault{ method = "GET", action = "respond", status = 200, body = video:to_table(), headers = headers }
  end

  it("is the header's value, then nil after a refresh without one, then 0", function()
    answer{ ["openai-poll-after-ms"] = "1234" }
    local v = assert(c:retrieve(video.id))
    assert.are.equal(1234, v:_poll_after())
    answer{}
    assert(v:refresh())
    assert.is_nil(v:_poll_after())
    answer{ ["openai-poll-after-ms"] = "0" }
    assert(v:refresh())
    assert.are.equal(0, v:_poll_after())
  end)
end)
