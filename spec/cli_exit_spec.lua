-- The exit codes of the `sora` command: one per kind of outcome, as docs/cli.md's table says.
local H = require "support.client"
local cli = require "support.cli"
local exit = require "sora.cli.exit"

describe("sora exit codes", function()
  local E, env, dir

  lazy_setup(function()
    E, env, dir = cli.start(0.3)
    os.execute("cp " .. H.shell_quote(H.FIXTURES .. "not-an-image.txt") .. " " .. H.shell_quote(dir))
  end)

  lazy_teardown(function()
    cli.stop(E, dir)
  end)

  before_each(function()
    E:clear_faults()
    E:clear_requests()
  end)

  local function sora(args, env_override)
    return cli.run(args, env_override or env, { dir = dir })
  end

  -- Runs args, expects `code`; returns the result.
  local function exits(code, args, env_override)
    local r = sora(args, env_override)
    assert.are.equal(code, r.code, "stdout: " .. r.stdout .. "\nstderr: " .. r.stderr)
    return r
  end

  it("holds docs/cli.md's table", function()
    local doc = H.read("docs/cli.md")
    local rows = 0
    for name, code in pairs(exit) do
      if type(code) == "number" then
        rows = rows + 1
        assert.is_truthy(doc:find("| " .. code .. " | `" .. name .. "` |", 1, true),
          "docs/cli.md has no row for " .. name .. " = " .. code)
      end
    end
    assert.are.equal(14, rows)
    assert.are.same({ 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 130 }, (function()
      local codes = {}
      for _, code in pairs(exit) do if type(code) == "number" then codes[#codes + 1] = code end end
      table.sort(codes)
      return codes
    end)())
  end)

  it("0 on success, --help and --version included", function()
    exits(0, { "list" })
    exits(0, { "--help" })
    exits(0, { "generate", "--help" })
    assert.matches("^sora %S+ %(libcurl", exits(0, { "--version" }).stdout)
  end)

  describe("2 for usage, before any request", function()
    for _, case in ipairs{
      { {}, "a command is required" },
      { { "dance" }, "unknown command 'dance'" },
      { { "get" }, "missing argument 'id'" },
      { { "list", "--limit" }, "option '--limit' requires an argument" },
      { { "list", "--bogus" }, "unknown option '--bogus'" },
      -- a positional argument typed as an option, or misspelt as one: say how it is given
      { { "generate", "--prompt", "a boat" },
        "unknown option '--prompt': <prompt> is an argument, given without an option name" },
      { { "generate", "--promt", "a boat" },
        "unknown option '--promt': <prompt> is an argument, given without an option name" },
      { { "get", "--id", "video_1" }, "unknown option '--id': <id> is an argument" },
      { { "list", "--limit", "ten" }, "a non-negative integer expected, got 'ten'" },
      { { "list", "--order", "sideways" }, "--order" },
      { { "download", "v", "--variant", "poster" }, "--variant" },
      { { "extend", "video_1", "more" }, "missing option '--seconds'" },
      { { "generate", "x", "--image", "a.png", "--file-id", "f" }, "can not be used together" },
      { { "generate", "x", "--image", "not-an-image.txt" },
        "--image: 'not-an-image.txt' is not a JPEG, PNG or WebP image" },
      { { "generate", "x", "--image", "missing.png" }, "--image: cannot open 'missing.png'" },
      { { "edit", "missing.mp4", "x" }, "<video>: cannot open 'missing.mp4'" },
      { { "generate", "x", "-o", "-" }, "'-' (stdout) is for sora download" },
      { { "wait", "video_1", "-o", "-" }, "'-' (stdout) is for sora download" },
      { { "--base-url", "ftp://example.com", "list" }, "base_url must start with http:// or https://" },
    } do
      it(table.concat(case[1], " "), function()
        local r = exits(exit.USAGE, case[1])
        assert.is_truthy(r.stderr:find(case[2], 1, true), r.stderr)
        assert.are.equal(0, #E:requests())
      end)
    end
  end)

  it("3 for a request the API refuses (400)", function()
    local r = exits(exit.BAD_REQUEST, { "create", "x", "--seconds", "5" })
    assert.matches("^sora create: bad_request %(400%)", r.stderr)
  end)

  it("4 without a key, or for a key the server refuses", function()
    local r = exits(exit.AUTH, { "list" }, { OPENAI_BASE_URL = E.url })
    assert.matches("no API key: set OPENAI_API_KEY or pass %-%-api%-key", r.stderr)
    exits(exit.AUTH, { "list" }, { OPENAI_BASE_URL = E.url, OPENAI_API_KEY = "" })
    r = exits(exit.AUTH, { "list", "--api-key", "sk-not-the-right-one" })
    assert.matches("authentication %(401%)", r.stderr)
    E:fault{ action = "respond", status = 403 }
    exits(exit.AUTH, { "list" })
  end)

  it("4 when --api-key-cmd fails or prints nothing; its key is used when it works", function()
    local no_key = { OPENAI_BASE_URL = E.url }
    local r = exits(exit.AUTH, { "list", "--api-key-cmd", "exit 3" }, no_key)
    assert.matches("%-%-api%-key%-cmd", r.stderr)
    exits(exit.AUTH, { "list", "--api-key-cmd", "true" }, no_key)
    exits(exit.OK, { "list", "--api-key-cmd", "echo " .. H.KEY }, no_key)
    -- the command wins over the environment, --api-key over the command
    exits(exit.AUTH, { "list", "--api-key-cmd", "echo sk-wrong-key-1234" })
    exits(exit.OK, { "list", "--api-key", H.KEY, "--api-key-cmd", "exit 3" }, no_key)
  end)

  it("3 for a reference image of another size, sent only with --no-check-reference", function()
    os.execute("cp " .. H.shell_quote(H.FIXTURES .. "ref-720x1280.png") .. " " .. H.shell_quote(dir))
    local r = exits(exit.BAD_REQUEST, { "create", "x", "--size", "1280x720", "--image", "ref-720x1280.png" })
    assert.matches("must match the requested width and height", r.stderr)
    assert.are.equal(0, #E:requests())
    r = exits(exit.BAD_REQUEST, { "create", "x", "--size", "1280x720", "--image", "ref-720x1280.png",
      "--no-check-reference" })
    assert.matches("must match the requested width and height", r.stderr)
    assert.are.equal(1, #E:requests())
  end)

  it("5 for what does not exist", function()
    exits(exit.NOT_FOUND, { "get", "video_none" })
    exits(exit.NOT_FOUND, { "character", "get", "char_none" })
  end)

  it("6 when rate limited after the retries", function()
    E:fault{ action = "respond", status = 429, times = 2 }
    exits(exit.RATE_LIMIT, { "list", "--max-retries", "1" })
    assert.are.equal(2, #E:requests())
  end)

  it("7 for a server error, another status, or an answer that is not the API's", function()
    E:fault{ action = "respond", status = 500 }
    exits(exit.SERVER, { "--max-retries", "0", "list" })
    E:fault{ action = "respond", status = 418 }
    exits(exit.SERVER, { "--max-retries", "0", "list" })
    E:fault{ action = "respond", status = 200, body = "<html>not json</html>" }
    exits(exit.SERVER, { "--max-retries", "0", "list" })
  end)

  it("8 when no connection can be made", function()
    local r = exits(exit.CONNECTION, { "--max-retries", "0", "list" },
      { OPENAI_API_KEY = H.KEY, OPENAI_BASE_URL = "http://127.0.0.1:1/v1" })
    assert.matches("connection", r.stderr)
  end)

  it("9 when a wait runs out of time, and the video is in the JSON error", function()
    E:config{ job_seconds = 60 }
    local r = exits(exit.TIMEOUT, { "--json", "generate", "slow", "--timeout", "0.3" })
    E:config{ job_seconds = 0.3 }
    local err = cli.decode(cli.lines(r.stdout)[1]).error
    assert.are.equal("timeout", err.kind)
    assert.matches("^video_", err.video.id)
    assert.is_truthy(err.video.status == "queued" or err.video.status == "in_progress")
  end)

  it("10 when the video fails, with its code", function()
    local r = exits(exit.FAILED, { "generate", "a storm #fail", "--progress", "none" })
    assert.matches("moderation_blocked", r.stderr)
    assert.is_false(H.exists(dir .. "/" .. r.stderr:match("created (video_%w+)") .. ".mp4"))
    r = exits(exit.FAILED, { "--json", "generate", "a storm #fail" })
    local err = cli.decode(cli.lines(r.stdout)[1]).error
    assert.are.same({ "failed", "moderation_blocked", "failed" },
      { err.kind, err.code, err.video.status })
  end)

  it("130 on Ctrl-C (one SIGINT), leaving no file", function()
    -- the SIGINT handler is lua.c's; a sanitized test interpreter (tools/sanlua.c) has none
    local interpreter = os.getenv("SORA_TEST_LUA")
    if interpreter and interpreter:find("sanlua", 1, true) then
      return pending("needs lua.c's SIGINT handler")
    end
    E:config{ job_seconds = 60 }
    local out, err = os.tmpname(), os.tmpname()
    local p = io.popen("cd " .. H.shell_quote(dir) .. " && { " .. cli.command({ "generate", "x",
      "-o", "interrupted.mp4", "--interval", "0.1" }, env, {}) .. " >" .. out .. " 2>" .. err
      .. " & pid=$!; sleep 1; kill -INT $pid; wait $pid; echo $?; }")
    local code = tonumber(p:read("*a"):match("(%d+)%s*$"))
    p:close()
    E:config{ job_seconds = 0.3 }
    local stderr = H.read(err)
    os.remove(out)
    os.remove(err)
    assert.are.equal(exit.INTERRUPTED, code, stderr)
    assert.matches("sora generate: interrupted", stderr)
    assert.is_false(H.exists(dir .. "/interrupted.mp4"))
  end)

  -- A path that cannot be written is a usage error found before the request (exit 2,
  -- output_before_create_spec); 11 is for a write that fails after the check: here the
  -- directory is removed while the answer is held back by the emulator's delay fault.
  it("11 when a local file cannot be written", function()
    local id = cli.decode(cli.run({ "--json", "create", "x", "--wait" }, env).stdout).id
    local gone = dir .. "/removed-while-downloading"
    assert(os.execute("mkdir -p " .. H.shell_quote(gone)))
    E:fault{ method = "GET", path = "/content$", action = "delay", delay_ms = 1500 }
    local out, err = os.tmpname(), os.tmpname()
    local p = io.popen("cd " .. H.shell_quote(dir) .. " && { " .. cli.command({ "download", id,
      "-o", "removed-while-downloading/x.mp4" }, env, {}) .. " >" .. out .. " 2>" .. err
      .. " & pid=$!; sleep 0.7; rm -rf removed-while-downloading; wait $pid; echo $?; }")
    local code = tonumber(p:read("*a"):match("(%d+)%s*$"))
    p:close()
    local stderr = H.read(err)
    os.remove(out)
    os.remove(err)
    assert.are.equal(exit.IO, code, stderr)
    assert.matches("\nsora download: io %(200%): cannot write 'removed%-while%-downloading/x%.mp4'", stderr)
    assert.are.equal(1, #H.matching(E, "GET", "/content$")) -- the check passed; the write failed
  end)
end)
