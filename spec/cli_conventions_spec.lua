-- The `sora` command by the conventions of curl and gh: stdout holds only results (paths, ids,
-- JSON), progress and status go to stderr, -q silences them, -v logs each request and -vv adds
-- detail, a progress bar is ended before anything else is printed, and Ctrl-C says which
-- command picks the video up again. Through pipes, a pseudo-terminal (`script`) and signals.
local H = require "support.client"
local cli = require "support.cli"

describe("sora conventions", function()
  local E, env, dir

  lazy_setup(function()
    E, env, dir = cli.start(0.3)
  end)

  lazy_teardown(function()
    cli.stop(E, dir)
  end)

  before_each(function()
    E:clear_faults()
    E:config{ job_seconds = 0.3 }
  end)

  local function sora(args)
    return cli.run(args, env, { dir = dir })
  end

  local function ok(args)
    local r = sora(args)
    assert.are.equal(0, r.code, r.stderr)
    return r
  end

  -- The core's line for one request: method, URL, status, attempt, time and request id.
  local REQUEST_LINE = "sora: (%u+) http://127%.0%.0%.1:%d+(/v1/%S*) %-> (%d+) %(attempt %d+, %d+ ms, (req_%w+)%)"

  describe("stdout holds only results", function()
    it("generate: the file's path on stdout; created, progress and wrote on stderr", function()
      local r = ok({ "generate", "a boat", "-o", "out.mp4", "--interval", "0.05" })
      assert.are.equal("out.mp4\n", r.stdout)
      local id = r.stderr:match("^created (video_%w+) %(queued%)\n")
      assert.is_truthy(id, r.stderr)
      assert.is_truthy(r.stderr:find("\n" .. id .. " completed 100%\n", 1, true), r.stderr)
      assert.matches("\nwrote out%.mp4 %(%d+ bytes%)\n$", r.stderr)
    end)

    it("create --wait: the video on stdout, the status on stderr", function()
      local r = ok({ "create", "a boat", "--wait", "--interval", "0.05" })
      assert.matches("^id%s+video_%w+\nstatus%s+completed %(100%%%)\n", r.stdout)
      assert.matches("^created video_%w+ %(queued%)\n", r.stderr)
    end)

    it("download: the path on stdout", function()
      local id = cli.decode(ok({ "--json", "create", "x", "--wait" }).stdout).id
      local r = ok({ "download", id, "-o", "got.mp4" })
      assert.are.equal("got.mp4\n", r.stdout)
      assert.matches("\nwrote got%.mp4 %(%d+ bytes%)\n$", r.stderr)
    end)
  end)

  describe("-q, --quiet", function()
    it("silences progress and status: stderr stays empty, stdout keeps the result", function()
      for _, flag in ipairs{ "-q", "--quiet" } do
        local r = ok({ flag, "generate", "a boat", "-o", "quiet.mp4", "--interval", "0.05" })
        assert.are.equal("quiet.mp4\n", r.stdout)
        assert.are.equal("", r.stderr)
      end
      local r = ok({ "list", "--limit", "1", "-q" })
      assert.are.equal("", r.stderr) -- no "more: ..." hint either
    end)

    it("still reports the error that ends the command", function()
      local r = sora({ "-q", "get", "video_none" })
      assert.are.equal(5, r.code)
      assert.matches("^sora get: not_found %(404%)", r.stderr)
    end)
  end)

  describe("-v", function()
    it("logs each request on stderr: method, path, status, time, request id", function()
      local id = cli.decode(ok({ "--json", "create", "x", "--wait" }).stdout).id
      local r = ok({ "-v", "get", id })
      local method, path, status, request_id = r.stderr:match(REQUEST_LINE)
      assert.are.same({ "GET", "/v1/videos/" .. id, "200" }, { method, path, status }, r.stderr)
      assert.matches("^req_", request_id)
      assert.is_nil(r.stdout:find("sora: GET", 1, true))
      assert.matches("^id%s+" .. id, r.stdout)
      -- without -v: no log
      assert.are.equal("", ok({ "get", id }).stderr)
    end)

    it("logs every request of a generation, retries included", function()
      E:fault{ method = "GET", path = "^/v1/videos/[^/]+$", action = "respond", status = 500, times = 1 }
      local r = ok({ "-v", "generate", "a boat", "-o", "v.mp4", "--interval", "0.05" })
      local seen = {}
      for line in r.stderr:gmatch("[^\n]+") do
        local method, path, status = line:match(REQUEST_LINE)
        if method then seen[#seen + 1] = method .. " " .. path:gsub("video_%w+", "ID") .. " " .. status end
      end
      assert.are.equal("POST /v1/videos 200", seen[1], r.stderr)
      assert.are.equal("GET /v1/videos/ID/content 200", seen[#seen], r.stderr)
      -- the failed attempt, once at -v
      local failed = select(2, r.stderr:gsub("/v1/videos/video_%w+ %-> 500", ""))
      assert.are.equal(1, failed, r.stderr)
      assert.are.equal("v.mp4\n", r.stdout)
    end)

    it("-vv adds detail (debug lines) that -v does not show", function()
      local v = ok({ "-v", "generate", "a boat", "-o", "v1.mp4", "--interval", "0.05" })
      local vv = ok({ "-vv", "generate", "a boat", "-o", "v2.mp4", "--interval", "0.05" })
      assert.is_nil(v.stderr:find("sora: debug: ", 1, true), v.stderr)
      assert.matches("sora: debug: base URL http://127%.0%.0%.1:%d+/v1", vv.stderr)
      assert.matches("sora: debug: poll video_%w+: completed 100%%", vv.stderr)
      assert.matches("sora: debug: download video_%w+ %(video%) to v2%.mp4", vv.stderr)
    end)
  end)

  describe("on a terminal", function()
    -- A line (up to a line feed: the bar's carriage returns do not end it) that holds a bar and
    -- then other text: what is printed when the bar is not ended first.
    local function after_bar(output)
      for line in output:gmatch("[^\n]+") do
        if line:find("%[[#.]+%][^\r]*\r?[^\r]*sora") then return line end
      end
    end

    it("ends the bar before a log line", function()
      local r = cli.run_tty({ "-v", "generate", "a boat", "-o", "tty.mp4", "--interval", "0.05" }, env,
        { dir = dir })
      assert.are.equal(0, r.code, r.output)
      assert.matches("video    %[#+", r.output)
      local logged = 0
      for from in r.output:gmatch("()sora: %u+ http") do
        logged = logged + 1
        assert.is_true(from == 1 or r.output:sub(from - 1, from - 1) == "\n", r.output)
      end
      assert.is_true(logged >= 3, r.output)
      assert.is_nil(after_bar(r.output), r.output)
    end)

    it("ends the bar before an error", function()
      E:config{ job_seconds = 60 }
      local r = cli.run_tty({ "generate", "slow", "-o", "slow.mp4", "--timeout", "0.5",
        "--interval", "0.05" }, env, { dir = dir })
      assert.are.equal(9, r.code, r.output)
      local from = r.output:find("sora generate: timeout", 1, true)
      assert.is_truthy(from, r.output)
      assert.are.equal("\n", r.output:sub(from - 1, from - 1), r.output)
      assert.matches("video    %[", r.output:sub(1, from))
    end)
  end)

  describe("Ctrl-C", function()
    local function needs_sigint_handler()
      -- the SIGINT handler is lua.c's; a sanitized test interpreter (tools/sanlua.c) has none
      local interpreter = os.getenv("SORA_TEST_LUA")
      return interpreter and interpreter:find("sanlua", 1, true)
    end

    local sleep = require("socket").sleep

    -- Polls `done()` for up to `seconds`; returns whether it came true.
    local function within(seconds, done)
      for _ = 1, seconds * 20 do
        if done() then return true end
        sleep(0.05)
      end
      return false
    end

    -- Runs `args` in the background, sends it SIGINT once `ready(stderr)` is true; returns the
    -- exit code, stdout and stderr. With `tty`, on a pseudo-terminal (`script`), whose output
    -- is both.
    local function interrupted(args, ready, tty)
      local out, err, pid, code = os.tmpname(), os.tmpname(), os.tmpname(), os.tmpname()
      os.remove(code)
      local run = cli.command(args, env, {}) .. " >" .. out .. " 2>" .. err .. " & echo $! >" .. pid .. "; wait $!"
      if tty then
        err = out
        run = "script -qfec " .. H.shell_quote("echo $$ >" .. pid .. "; exec " .. cli.command(args, env, {}))
          .. " /dev/null </dev/null >" .. out .. " 2>&1"
      end
      os.execute("cd " .. H.shell_quote(dir) .. " && { " .. run .. "; echo $? >" .. code .. ".tmp; mv "
        .. code .. ".tmp " .. code .. "; } >/dev/null 2>&1 &")
      assert.is_true(within(20, function() return ready(H.read(err)) end), H.read(err))
      sleep(0.2)
      os.execute("kill -INT " .. H.read(pid):match("%d+"))
      assert.is_true(within(30, function() return H.exists(code) end), "no exit: " .. H.read(err))
      local result = { tonumber(H.read(code):match("%d+")), H.read(out), H.read(err) }
      for _, name in ipairs{ out, err, pid, code } do os.remove(name) end
      return result[1], result[2], result[3]
    end

    local function stderr_has(text)
      return function(stderr) return stderr:find(text, 1, true) ~= nil end
    end

    it("while waiting prints the command that resumes: sora wait ID -o FILE, and exits 130", function()
      if needs_sigint_handler() then return pending("needs lua.c's SIGINT handler") end
      E:config{ job_seconds = 60 }
      local code, stdout, stderr = interrupted({ "generate", "a long one", "-o", "long one.mp4",
        "--interval", "0.1" }, stderr_has("in_progress"))
      assert.are.equal(130, code, stderr)
      assert.are.equal("", stdout)
      local id = stderr:match("created (video_%w+)")
      assert.is_truthy(id, stderr)
      assert.matches("\nsora generate: interrupted; resume with: sora wait " .. id .. " %-o 'long one%.mp4'\n$",
        stderr)
    end)

    it("on a terminal ends the bar before it says so", function()
      if needs_sigint_handler() then return pending("needs lua.c's SIGINT handler") end
      E:config{ job_seconds = 60 }
      local code, output = interrupted({ "generate", "a long one", "-o", "tty-long.mp4", "--interval", "0.1" },
        stderr_has("in_progress"), true)
      assert.are.equal(130, code, output)
      local from = output:find("sora generate: interrupted; resume with: sora wait video_", 1, true)
      assert.is_truthy(from, output)
      assert.matches("%] +%d+%% in_progress *\r?\n$", output:sub(1, from - 1))
    end)

    it("while downloading prints sora download ID -o FILE, and exits 130", function()
      if needs_sigint_handler() then return pending("needs lua.c's SIGINT handler") end
      local id = cli.decode(ok({ "--json", "create", "x", "--wait" }).stdout).id
      E:fault{ method = "GET", path = "/content", action = "delay", delay_ms = 1500, times = 1 }
      -- quiet: no Lua runs while libcurl waits for the answer (a progress or log callback hit by
      -- the interrupt is the C core's case, not the command's)
      E:clear_requests()
      local code, _, stderr = interrupted({ "-q", "wait", id, "-o", "d.mp4", "--variant", "thumbnail" },
        function() return #H.matching(E, "GET", "/content") > 0 end)
      assert.are.equal(130, code, stderr)
      assert.are.equal("sora wait: interrupted; resume with: sora download " .. id
        .. " -o d.mp4 --variant thumbnail\n", stderr)
      -- never a partial file: none, or (the interrupt seen once the transfer ended) the whole
      if H.exists(dir .. "/d.mp4") then assert.are.equal(H.media("thumbnail.webp"), H.read(dir .. "/d.mp4")) end
    end)

    it("with --json, the error object carries the command that resumes", function()
      if needs_sigint_handler() then return pending("needs lua.c's SIGINT handler") end
      E:config{ job_seconds = 60 }
      local code, stdout, stderr = interrupted({ "--json", "create", "x", "--wait", "--interval", "0.1" },
        stderr_has("in_progress"))
      assert.are.equal(130, code, stderr)
      local err = cli.decode(stdout).error
      assert.are.equal("interrupted", err.kind)
      assert.matches("^sora wait video_%w+$", err.resume)
    end)
  end)
end)
