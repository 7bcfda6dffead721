-- A download that replaces a file: the old file's name is gone at once, and its space is given
-- back a slice per step afterwards (ext4 frees a large file's blocks in the call that ends it,
-- which stalled the host for 25-35 ms per 300 MB), all of it at the latest when the client
-- closes. Nothing is left in the directory and no descriptor is kept for ever.
local H = require "support.client"

local MB = 1024 * 1024

-- The descriptors of this process that point at a deleted file in `dir`.
local function held_in(dir)
  local f = assert(io.open("/proc/self/stat", "r"))
  local pid = f:read("*l"):match("^(%d+)")
  f:close()
  local p = assert(io.popen("ls -l /proc/" .. pid .. "/fd 2>/dev/null"))
  local n = 0
  for line in p:lines() do
    if line:find(dir, 1, true) and line:find("(deleted)", 1, true) then n = n + 1 end
  end
  p:close()
  return n
end

describe("a replaced download", function()
  local E, c, video, dir

  lazy_setup(function()
    E, c = H.start()
    E:config{ video_bytes = 20 * MB }
    video = H.completed_video(c, E, { prompt = "a large video to replace" })
    dir = H.tempdir()
  end)

  lazy_teardown(function()
    E:config{ video_bytes = require("cjson").null }
    H.rmdir(dir)
    H.stop(E, c)
  end)

  it("leaves only the new file, and gives the old one's space back over the next steps", function()
    local target = dir .. "/replaced.mp4"
    H.write(target, ("x"):rep(12 * MB)) -- the old file: more than one slice
    assert(c:download_content(video.id, { path = target }))
    assert.are.same({ "replaced.mp4" }, H.ls(dir))
    assert.are.equal(20 * MB, #H.read(target))
    assert.are.equal(1, held_in(dir)) -- unlinked, still open: its blocks not yet freed
    for _ = 1, 4 do c:step(0) end      -- 8 MB a step
    assert.are.equal(0, held_in(dir))
  end)

  it("gives everything back when the client closes", function()
    local other = require("sora").new{ api_key = H.KEY, base_url = E.url }
    local target = dir .. "/closed.mp4"
    H.write(target, ("y"):rep(30 * MB))
    assert(other:download_content(video.id, { path = target }))
    assert.are.equal(1, held_in(dir))
    other:close()
    assert.are.equal(0, held_in(dir))
    assert.are.same({ "closed.mp4", "replaced.mp4" }, H.ls(dir))
  end)
end)
