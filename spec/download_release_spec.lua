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

-- Never harm a file sora did not name: the replaced inode is given back slice by slice only
-- when nothing else can reach it (no other name, no other open descriptor), and downloaded
-- bytes never carry the setuid, setgid or sticky bits of the file they replace.
describe("a replaced download never harms what sora did not name", function()
  local E, c, video, dir

  lazy_setup(function()
    E, c = H.start()
    E:config{ video_bytes = 20 * MB }
    video = H.completed_video(c, E, { prompt = "a video over a shared file" })
    dir = H.tempdir()
  end)

  lazy_teardown(function()
    E:config{ video_bytes = require("cjson").null }
    H.rmdir(dir)
    H.stop(E, c)
  end)

  local function mode(path)
    local out = H.sh("stat -c %a " .. H.shell_quote(path))
    return (out:gsub("%s+$", ""))
  end

  -- Downloads to target in a task, stepping the client until it is done and then some more
  -- (the steps that give a replaced file's space back).
  local function download_in_steps(target)
    local task = c:spawn(function() return c:download_content(video.id, { path = target }) end)
    while not task:done() do c:step(0.05) end
    assert(task:result())
    for _ = 1, 8 do c:step(0) end
  end

  it("keeps the bytes and size of a hard link's other name", function()
    local target, other = dir .. "/linked.mp4", dir .. "/other-name.mp4"
    local old = ("h"):rep(20 * MB)
    H.write(other, old)
    assert(os.execute("ln " .. H.shell_quote(other) .. " " .. H.shell_quote(target)))
    download_in_steps(target)
    assert.are.equal(20 * MB, #H.read(target))
    assert.is_true(old ~= H.read(target), "the target holds the download")
    local kept = H.read(other)
    assert.are.equal(#old, #kept) -- its size and bytes, untouched
    assert.is_true(old == kept, "the other name's bytes changed")
    assert.are.equal(0, held_in(dir))
  end)

  it("keeps the bytes of a replaced file another descriptor still reads", function()
    local target = dir .. "/open.mp4"
    local old = ("o"):rep(12 * MB)
    H.write(target, old)
    local reader = assert(io.open(target, "rb"))
    download_in_steps(target)
    local kept = reader:read("*a") -- the old file, whole, for whoever had it open
    reader:close()
    assert.are.equal(#old, #kept)
    assert.is_true(old == kept, "the open file's bytes changed")
    assert.are.equal(20 * MB, #H.read(target))
  end)

  it("leaves nothing behind in a directory moved away during the download", function()
    local here, moved = dir .. "/d", dir .. "/d-moved"
    assert(os.execute("mkdir " .. H.shell_quote(here)))
    local done = false
    local ok, err = c:download_content(video.id, { path = here .. "/v.mp4", on_progress = function()
      if done then return end
      done = true -- the directory named is replaced: moved away, a new one in its place
      assert(os.execute("mv " .. H.shell_quote(here) .. " " .. H.shell_quote(moved)
        .. " && mkdir " .. H.shell_quote(here)))
    end })
    assert.is_true(done)
    assert.is_true(ok, tostring(err))
    assert.are.equal(20 * MB, #H.read(here .. "/v.mp4")) -- at the path named, whole
    assert.are.same({}, H.ls(moved))                       -- no temporary file left there
    assert.are.same({ "v.mp4" }, H.ls(here))
  end)

  it("gives downloaded bytes no setuid, setgid or sticky bit", function()
    for _, bits in ipairs{ "4755", "2755", "6755", "1644" } do
      local target = dir .. "/mode-" .. bits .. ".mp4"
      H.write(target, "old bytes")
      assert(os.execute("chmod " .. bits .. " " .. H.shell_quote(target)))
      assert.are.equal(bits, mode(target)) -- the bits were set
      assert(c:download_content(video.id, { path = target }))
      assert.are.equal(20 * MB, #H.read(target))
      assert.are.equal(bits:sub(2), mode(target)) -- the permissions kept, the special bits not
    end
  end)
end)
