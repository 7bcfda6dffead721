-- No paid work for a file that cannot be written: client:generate and the `sora` command check
-- the output before the create, and refuse (an argument error; exit code 2) with nothing sent.
-- Through the real stack: the compiled core, libcurl, the emulator's request log.
local H = require "support.client"
local cli = require "support.cli"

describe("the output is checked before the create", function()
  local E, c, env, dir

  lazy_setup(function()
    E, c = H.start()
    env = cli.env(E)
    dir = H.tempdir()
    H.write(dir .. "/a-file", "")
  end)

  lazy_teardown(function()
    H.stop(E, c)
    H.rmdir(dir)
  end)

  before_each(function()
    E:clear_requests()
  end)

  local function nothing_sent()
    assert.are.same({}, E:requests())
  end

  local BAD = {
    { "/no/such/dir/x.mp4", "no such directory" },
    { "a-file/x.mp4", "a directory in the path is a file" },
    { ".", "is a directory" },
    { "/dev/null", "is not a regular file" },
  }

  describe("client:generate", function()
    for _, case in ipairs(BAD) do
      it("refuses output = '" .. case[1] .. "' (" .. case[2] .. ") before sending anything", function()
        local path = case[1]:match("^/") and case[1] or dir .. "/" .. case[1]
        local ok, err = pcall(c.generate, c, { prompt = "a boat", output = path })
        assert.is_false(ok)
        assert.matches("^spec/output_before_create_spec%.lua:%d+: bad argument #1 to 'generate' "
          .. "%(option 'output': cannot write '.*': " .. case[2] .. "%)$", err)
        nothing_sent()
      end)
    end

    it("still generates to a writable output", function()
      local video, err = c:generate{ prompt = "a boat", output = dir .. "/ok.mp4", interval = 0.05 }
      assert.is_truthy(video, tostring(err))
      assert.are.equal(H.media("video.mp4"), H.read(dir .. "/ok.mp4"))
    end)
  end)

  describe("sora", function()
    local function sora(args)
      return cli.run(args, env, { dir = dir })
    end

    for _, case in ipairs(BAD) do
      it("generate -o '" .. case[1] .. "' exits 2 (" .. case[2] .. ") with nothing sent", function()
        local r = sora({ "generate", "a boat", "-o", case[1] })
        assert.are.equal(2, r.code, r.stderr)
        assert.are.equal("", r.stdout)
        assert.are.equal("sora generate: --output: cannot write '" .. case[1] .. "': " .. case[2] .. "\n",
          r.stderr)
        nothing_sent()
      end)
    end

    it("create, remix, edit, extend and wait with -o are checked too", function()
      for _, args in ipairs{
        { "create", "a boat", "-o", "no/x.mp4" },
        { "remix", "video_1", "again", "-o", "no/x.mp4" },
        { "edit", "video_1", "redo", "-o", "no/x.mp4" },
        { "extend", "video_1", "more", "--seconds", "4", "-o", "no/x.mp4" },
        { "wait", "video_1", "-o", "no/x.mp4" },
        { "--json", "generate", "a boat", "-o", "no/x.mp4" },
      } do
        local r = sora(args)
        assert.are.equal(2, r.code, table.concat(args, " ") .. ": " .. r.stderr)
        assert.matches("%-%-output: cannot write 'no/x%.mp4': no such directory", r.stderr)
        nothing_sent()
      end
    end)

    -- download makes nothing, but a request (and the bytes of a large video) spent on a
    -- file that cannot be written is still wasted, and the mistake is the command line's
    for _, case in ipairs(BAD) do
      it("download -o '" .. case[1] .. "' exits 2 (" .. case[2] .. ") with nothing sent", function()
        local r = sora({ "download", "video_1", "-o", case[1] })
        assert.are.equal(2, r.code, r.stderr)
        assert.are.equal("", r.stdout)
        assert.are.equal("sora download: --output: cannot write '" .. case[1] .. "': " .. case[2] .. "\n",
          r.stderr)
        nothing_sent()
      end)
    end

    it("download without -o checks its default file (<id>.<extension> of the variant)", function()
      local cwd = dir .. "/cwd-download"
      assert(os.execute("mkdir -p " .. H.shell_quote(cwd .. "/video_1.webp")))
      local r = cli.run({ "download", "video_1", "--variant", "thumbnail" }, env, { dir = cwd })
      assert.are.equal(2, r.code, r.stderr)
      assert.are.equal("sora download: --output: cannot write 'video_1.webp': is a directory\n", r.stderr)
      nothing_sent()
    end)

    it("generate without -o checks where its default file goes (<id>.mp4 here)", function()
      -- a directory in the way stands for any reason the current directory cannot take the
      -- file (a read-only one would not do: the specs may run as root)
      local cwd = dir .. "/cwd"
      assert(os.execute("mkdir -p " .. H.shell_quote(cwd .. "/<id>.mp4")))
      local r = cli.run({ "generate", "a boat" }, env, { dir = cwd })
      assert.are.equal(2, r.code, r.stderr)
      assert.are.equal("sora generate: --output: cannot write '<id>.mp4': is a directory\n", r.stderr)
      nothing_sent()
    end)
  end)
end)
