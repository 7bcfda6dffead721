-- The `sora` command through pipes, against the emulator: every command, the API parameters
-- its flags send, and its output for people and with --json.
local H = require "support.client"
local cli = require "support.cli"
local sha256 = require "sora.emulator.sha256"

describe("sora command", function()
  local E, env, dir

  lazy_setup(function()
    E, env, dir = cli.start(0.3)
  end)

  lazy_teardown(function()
    cli.stop(E, dir)
  end)

  before_each(function()
    E:clear_requests()
  end)

  local function sora(args, opts)
    opts = opts or {}
    opts.dir = opts.dir or dir
    return cli.run(args, opts.env or env, opts)
  end

  -- Runs a command that must succeed; returns its result.
  local function ok(args, opts)
    local r = sora(args, opts)
    assert.are.equal(0, r.code, r.stderr)
    return r
  end

  local function json(args, opts)
    local r = ok(args, opts)
    local lines = cli.lines(r.stdout)
    assert.are.equal(1, #lines, r.stdout)
    return cli.decode(lines[1]), r
  end

  -- A video made through the CLI and completed at once.
  local function completed(prompt)
    local v = json({ "create", prompt or "a completed video", "--json" })
    E:force_video(v.id, { status = "completed" })
    return v.id
  end

  local function same_as_served(path, id, variant)
    local served = E:digest(id, variant)
    local bytes = H.read(path)
    assert.are.equal(served.bytes, #bytes)
    assert.are.equal(served.sha256, sha256.hex(bytes))
  end

  describe("generate", function()
    it("creates, waits and downloads in one line", function()
      local r = ok({ "generate", "a paper boat", "-o", "boat.mp4", "--progress", "none" })
      local id = r.stderr:match("created (video_%w+)")
      assert.is_truthy(id, r.stderr)
      assert.matches("wrote boat.mp4 %(%d+ bytes%)", r.stderr)
      assert.are.equal("boat.mp4\n", r.stdout)
      same_as_served(dir .. "/boat.mp4", id)
      local create = H.matching(E, "POST", "^/v1/videos$")
      assert.are.equal(1, #create)
      assert.are.same({ prompt = "a paper boat" }, create[1].json)
    end)

    it("uploads --image as input_reference", function()
      local image = H.FIXTURES .. "ref-1280x720.png"
      os.execute("cp " .. H.shell_quote(image) .. " " .. H.shell_quote(dir .. "/ref.png"))
      ok({ "generate", "a paper boat", "-o", "boat2.mp4", "--image", "ref.png",
           "--size", "1280x720", "--progress", "none" })
      local create = H.matching(E, "POST", "^/v1/videos$")[1]
      local part = H.part(create, "input_reference")
      assert.are.equal("ref.png", part.filename)
      assert.are.equal("image/png", part.content_type)
      assert.are.equal("1280x720", H.part(create, "size").data)
      assert.is_true(H.exists(dir .. "/boat2.mp4"))
    end)

    it("prints one JSON object with --json: the video, where it went and its size", function()
      local v, r = json({ "--json", "generate", "a paper boat", "-o", "boat3.mp4" })
      assert.are.equal("completed", v.status)
      assert.are.equal(100, v.progress)
      assert.are.equal("boat3.mp4", v.output)
      assert.are.equal(#H.read(dir .. "/boat3.mp4"), v.bytes)
      assert.matches("completed 100%%", r.stderr) -- progress goes to stderr beside JSON
    end)

    it("names the file after the video by default, with the variant's extension", function()
      local v = json({ "generate", "a default name", "--variant", "thumbnail", "--json" })
      assert.are.equal(v.id .. ".webp", v.output)
      same_as_served(dir .. "/" .. v.output, v.id, "thumbnail")
    end)
  end)

  describe("create", function()
    it("sends every parameter given by flag and prints the video at once", function()
      local v = json({ "create", "a cat", "--model", "sora-2-pro", "--seconds", "8", "--size",
                       "1280x720", "--json" })
      assert.are.equal("queued", v.status)
      assert.are.same({ prompt = "a cat", model = "sora-2-pro", seconds = "8", size = "1280x720" },
        E:last_request().json)
    end)

    it("sends --image-url and --file-id as a JSON input_reference", function()
      json({ "create", "by url", "--image-url", "https://example.com/a.png", "--json" })
      assert.are.same({ image_url = "https://example.com/a.png" }, E:last_request().json.input_reference)
      json({ "create", "by file", "--file-id", "file-123", "--json" })
      assert.are.same({ file_id = "file-123" }, E:last_request().json.input_reference)
    end)

    it("waits with --wait and downloads with -o", function()
      local v = json({ "create", "waited", "--wait", "--json" })
      assert.are.equal("completed", v.status)
      v = json({ "create", "downloaded", "-o", "created.mp4", "--json" })
      assert.are.equal("created.mp4", v.output)
      same_as_served(dir .. "/created.mp4", v.id)
    end)

    it("shows the video's fields to people", function()
      local r = ok({ "create", "for people", "--seconds", "8" })
      assert.matches("id%s+video_%w+", r.stdout)
      assert.matches("status%s+queued %(0%%%)", r.stdout)
      assert.matches("seconds%s+8", r.stdout)
      assert.matches("prompt%s+for people", r.stdout)
    end)
  end)

  it("get shows a video", function()
    local id = completed()
    local v = json({ "get", id, "--json" })
    assert.are.equal(id, v.id)
    assert.are.equal("completed", v.status)
    local r = ok({ "get", id })
    assert.matches("status%s+completed %(100%%%)", r.stdout)
  end)

  describe("list", function()
    it("prints one JSON object per line, sending --limit, --order and --after", function()
      local ids = { completed("l1"), completed("l2"), completed("l3") }
      local r = ok({ "list", "--limit", "2", "--order", "asc", "--after", ids[1], "--json" })
      local lines = cli.lines(r.stdout)
      assert.are.equal(2, #lines)
      assert.are.equal(ids[2], cli.decode(lines[1]).id)
      assert.are.equal(ids[3], cli.decode(lines[2]).id)
      local q = E:last_request().query
      assert.are.same({ limit = "2", order = "asc", after = ids[1] }, q)
    end)

    it("follows every page with --all", function()
      local total = #cli.lines(ok({ "list", "--all", "--limit", "100", "--json" }).stdout)
      assert.is_true(total >= 3)
      E:clear_requests()
      local lines = cli.lines(ok({ "list", "--all", "--limit", "1", "--json" }).stdout)
      assert.are.equal(total, #lines)
      assert.is_true(#E:requests() >= total)
    end)

    it("shows one row per video to people and the next cursor on stderr", function()
      local id = completed("a row")
      local r = ok({ "list", "--limit", "1" })
      local lines = cli.lines(r.stdout)
      assert.are.equal(1, #lines)
      assert.matches("^" .. id .. "%s+completed%s+100%%", lines[1])
      assert.matches("more: sora list %-%-after " .. id, r.stderr)
    end)
  end)

  it("delete deletes", function()
    local id = completed()
    local d = json({ "delete", id, "--json" })
    assert.are.same({ id = id, object = "video.deleted", deleted = true }, d)
    local other = completed()
    assert.matches("deleted " .. other, ok({ "delete", other }).stdout)
  end)

  it("remix sends the prompt for the video", function()
    local id = completed()
    local v = json({ "remix", id, "a new ending", "--json" })
    assert.are.equal(id, v.remixed_from_video_id)
    local r = E:last_request()
    assert.are.equal("/v1/videos/" .. id .. "/remix", r.path)
    assert.are.same({ prompt = "a new ending" }, r.json)
  end)

  describe("download", function()
    it("writes the content to -o, or to <id>.<ext> for a variant", function()
      local id = completed()
      local r = ok({ "download", id, "-o", "got.mp4", "--progress", "none" })
      assert.matches("wrote got.mp4", r.stderr)
      assert.are.equal("got.mp4\n", r.stdout)
      same_as_served(dir .. "/got.mp4", id)
      local d = json({ "download", id, "--variant", "spritesheet", "--json" })
      assert.are.same({ id = id, variant = "spritesheet", output = id .. ".jpg",
                        bytes = E:digest(id, "spritesheet").bytes }, d)
      assert.are.equal("variant=spritesheet", E:last_request().path:match("%?(.*)$")
        or ("variant=" .. tostring((E:last_request().query or {}).variant)))
    end)

    it("writes the bytes to stdout with -o -", function()
      local id = completed()
      local r = ok({ "download", id, "-o", "-", "--variant", "thumbnail" })
      assert.are.equal(E:digest(id, "thumbnail").sha256, sha256.hex(r.stdout))
    end)
  end)

  it("wait waits until the video completes, then downloads with -o", function()
    local id = json({ "create", "to wait for", "--json" }).id
    local v = json({ "wait", id, "--json" })
    assert.are.equal("completed", v.status)
    v = json({ "wait", id, "-o", "waited.mp4", "--json" })
    assert.are.equal("waited.mp4", v.output)
    same_as_served(dir .. "/waited.mp4", id)
  end)

  it("edit and extend send a video id, or upload a file", function()
    local id = completed()
    json({ "edit", id, "brighter", "--json" })
    assert.are.same({ video = { id = id }, prompt = "brighter" }, E:last_request().json)
    json({ "extend", id, "and then", "--seconds", "8", "--json" })
    local r = E:last_request()
    assert.are.equal("/v1/videos/extensions", r.path)
    assert.are.same({ video = { id = id }, prompt = "and then", seconds = "8" }, r.json)
    os.execute("cp " .. H.shell_quote(H.FIXTURES .. "clip.mp4") .. " " .. H.shell_quote(dir))
    json({ "edit", "clip.mp4", "from a file", "--json" })
    assert.are.equal("clip.mp4", H.part(E:last_request(), "video").filename)
  end)

  it("character create uploads a video with --name; character get shows it", function()
    os.execute("cp " .. H.shell_quote(H.FIXTURES .. "clip.mp4") .. " " .. H.shell_quote(dir))
    local c = json({ "character", "create", "clip.mp4", "--name", "Captain", "--json" })
    assert.are.equal("Captain", c.name)
    assert.are.equal("Captain", H.part(E:last_request(), "name").data)
    local got = json({ "character", "get", c.id, "--json" })
    assert.are.same(c, got)
    assert.matches("name%s+Captain", ok({ "character", "get", c.id }).stdout)
  end)

  it("works the same on the other interpreter (LuaJIT or 5.4)", function()
    local other = rawget(_G, "jit") and "lua5.4" or "luajit"
    -- its build too: on a fresh checkout `make test` runs the 5.4 pass before it makes 5.1
    local out, built = H.sh("make -s LUA_VERSION=" .. (other == "luajit" and "5.1" or "5.4"))
    assert.are.equal(0, built, out)
    local v = json({ "generate", "on " .. other, "-o", "other.mp4", "--json" }, { lua = other })
    same_as_served(dir .. "/other.mp4", v.id)
  end)

  describe("emulator", function()
    it("runs the emulator's own command line", function()
      local r = ok({ "emulator", "--help" })
      assert.matches("usage: sora%-emulator", r.stdout)
    end)

    it("says which rock provides it when sora.emulator is not installed", function()
      local root = H.tempdir()
      os.execute(("mkdir -p %s/bin %s/lua && cp -R lua/sora %s/lua/ && rm -rf %s/lua/sora/emulator"
        .. " && cp bin/sora %s/bin/"):gsub("%%s", H.shell_quote(root)))
      local _, cpath = cli.interpreter()
      local r = sora({ "emulator" }, { dir = root, root = root, cpath = cpath })
      H.rmdir(root)
      assert.are.equal(1, r.code)
      assert.matches("sora%-emulator rock", r.stderr)
      assert.matches("luarocks install sora%-emulator", r.stderr)
    end)
  end)
end)
