-- What the `sora` command prints: --help for every command, a flag for every API parameter,
-- the key never shown, JSON that programs can read.
local H = require "support.client"
local cli = require "support.cli"

describe("sora output", function()
  local E, dir
  local ENV_KEY = "sk-env-secret-0123456789"
  local FLAG_KEY = "sk-flag-secret-9876543210"

  lazy_setup(function()
    E = require("support.emulator").start{ job_seconds = 0.3 } -- any key
    dir = H.tempdir()
  end)

  lazy_teardown(function()
    if E then E:stop() end
    H.rmdir(dir)
  end)

  before_each(function()
    E:clear_faults()
  end)

  local function sora(args, env)
    return cli.run(args, env or { OPENAI_API_KEY = ENV_KEY, OPENAI_BASE_URL = E.url }, { dir = dir })
  end

  local function never_shows_keys(r)
    local all = r.stdout .. r.stderr
    assert.is_nil(all:find(ENV_KEY, 1, true), all)
    assert.is_nil(all:find(FLAG_KEY, 1, true), all)
    assert.is_nil(all:find("secret", 1, true), all)
  end

  describe("--help", function()
    local FLAGS = {
      generate = { "<prompt>", "--model", "--seconds", "--size", "--image", "--image-url",
                   "--file-id", "--output", "--variant", "--timeout", "--interval" },
      create = { "<prompt>", "--model", "--seconds", "--size", "--image", "--image-url",
                 "--file-id", "--wait", "--output" },
      get = { "<id>" },
      list = { "--limit", "--order", "--after", "--all" },
      delete = { "<id>" },
      remix = { "<id>", "<prompt>", "--wait", "--output" },
      download = { "<id>", "--output", "--variant" },
      wait = { "<id>", "--timeout", "--interval", "--output" },
      edit = { "<video>", "<prompt>", "--wait", "--output" },
      extend = { "<video>", "<prompt>", "--seconds", "--wait", "--output" },
      character = { "create", "get" },
    }
    for command, flags in pairs(FLAGS) do
      it("of " .. command .. " names its flags", function()
        local r = sora({ command, "--help" })
        assert.are.equal(0, r.code)
        assert.matches("^Usage: sora " .. command, r.stdout)
        for _, flag in ipairs(flags) do
          assert.is_truthy(r.stdout:find(flag, 1, true), command .. " --help lacks " .. flag)
        end
        never_shows_keys(r)
      end)
    end

    it("of character create and the whole command, without the key as a default", function()
      local r = sora({ "character", "create", "--help" })
      assert.are.equal(0, r.code)
      assert.is_truthy(r.stdout:find("--name", 1, true))
      r = sora({ "--help", "--api-key", FLAG_KEY })
      assert.are.equal(0, r.code)
      for _, command in ipairs{ "generate", "create", "get", "list", "delete", "remix", "download",
                                "wait", "edit", "extend", "character", "emulator" } do
        assert.matches("\n   " .. command .. " ", r.stdout)
      end
      assert.matches("OPENAI_API_KEY", r.stdout)
      never_shows_keys(r)
    end)
  end)

  describe("the key", function()
    it("is not echoed by usage errors", function()
      for _, args in ipairs{
        { "--api-key", FLAG_KEY, "list", "--limit", FLAG_KEY },
        { "--api-key=" .. FLAG_KEY, "get" },
        { "list", "--order", ENV_KEY },
        { ENV_KEY },
      } do
        local r = sora(args)
        assert.are.equal(2, r.code)
        never_shows_keys(r)
      end
    end)

    it("is not echoed by API errors, even when the server sends it back", function()
      E:fault{ action = "respond", status = 400, times = 4, body = { error = {
        message = "bad key " .. FLAG_KEY .. " / " .. ENV_KEY, type = "invalid_request_error",
        code = ENV_KEY, param = FLAG_KEY } } }
      local r = sora({ "--max-retries", "0", "list", "--api-key", FLAG_KEY })
      assert.are.equal(3, r.code)
      assert.matches("%[redacted key%]", r.stderr)
      never_shows_keys(r)
      -- here only the environment's key is this command's: the other is any text to it
      r = sora({ "--max-retries", "0", "--json", "get", "video_1" })
      assert.are.equal(3, r.code)
      assert.matches("%[redacted key%]", r.stdout)
      assert.is_nil((r.stdout .. r.stderr):find(ENV_KEY, 1, true))
    end)

    it("is not in the request log of -vv", function()
      local r = sora({ "-vv", "list", "--api-key", FLAG_KEY })
      assert.are.equal(0, r.code)
      assert.is_truthy(r.stderr:find("/videos", 1, true), r.stderr)
      never_shows_keys(r)
    end)

    it("goes from --api-key to the server, over the environment's", function()
      E:clear_requests()
      assert.are.equal(0, sora({ "list", "--api-key", FLAG_KEY }).code)
      assert.are.equal(E.bearer(FLAG_KEY), E:last_request().headers.authorization)
      assert.are.equal(0, sora({ "list" }).code)
      assert.are.equal(E.bearer(ENV_KEY), E:last_request().headers.authorization)
    end)
  end)

  it("sends --organization and --project, over OPENAI_ORG_ID and OPENAI_PROJECT_ID", function()
    local env = { OPENAI_API_KEY = ENV_KEY, OPENAI_BASE_URL = E.url, OPENAI_ORG_ID = "org_env",
                  OPENAI_PROJECT_ID = "proj_env" }
    assert.are.equal(0, sora({ "list" }, env).code)
    local h = E:last_request().headers
    assert.are.same({ "org_env", "proj_env" }, { h["openai-organization"], h["openai-project"] })
    assert.are.equal(0, sora({ "list", "--organization", "org_flag", "--project", "proj_flag" }, env).code)
    h = E:last_request().headers
    assert.are.same({ "org_flag", "proj_flag" }, { h["openai-organization"], h["openai-project"] })
  end)

  it("--base-url wins over OPENAI_BASE_URL", function()
    local r = sora({ "list", "--base-url", E.url },
      { OPENAI_API_KEY = ENV_KEY, OPENAI_BASE_URL = "http://127.0.0.1:1/v1" })
    assert.are.equal(0, r.code, r.stderr)
  end)

  -- Runs examples/demo.lua in `dir` with the shell text `args` (and `env`, a shell prefix).
  local function demo(args, env)
    local lua, cpath = cli.interpreter()
    local root = os.getenv("PWD")
    local p = io.popen("cd " .. H.shell_quote(dir) .. " && " .. (env or "") .. " LUA_PATH="
      .. H.shell_quote(root .. "/lua/?.lua;" .. root .. "/lua/?/init.lua;;") .. " LUA_CPATH="
      .. H.shell_quote(cpath .. ";;") .. " " .. lua .. " " .. H.shell_quote(root
      .. "/examples/demo.lua") .. " " .. args .. " 2>&1; echo \"exit=$?\"")
    local out = p:read("*a")
    p:close()
    return out
  end

  it("examples/demo.lua --help prints help and writes no file named --help", function()
    local out = demo("--help")
    assert.matches("Usage: demo.lua", out)
    assert.matches("exit=0", out)
    assert.is_false(H.exists(dir .. "/--help"))
  end)

  it("examples/demo.lua with no arguments writes demo.mp4", function()
    os.remove(dir .. "/demo.mp4")
    local out = demo("", "OPENAI_API_KEY=" .. ENV_KEY .. " OPENAI_BASE_URL=" .. H.shell_quote(E.url))
    assert.matches("exit=0", out)
    assert.matches("wrote demo.mp4", out)
    assert.is_true(H.exists(dir .. "/demo.mp4"))
  end)

  it("--json: every line of stdout is one JSON object, an error included", function()
    local r = sora({ "--json", "create", "one object" })
    local lines = cli.lines(r.stdout)
    assert.are.equal(1, #lines)
    assert.are.equal("video", cli.decode(lines[1]).object)
    r = sora({ "--json", "get", "video_none" })
    lines = cli.lines(r.stdout)
    assert.are.equal(1, #lines)
    local err = cli.decode(lines[1]).error
    assert.are.same({ "not_found", 404 }, { err.kind, err.status })
    assert.matches("^req_", err.request_id)
    assert.matches("^sora get: not_found %(404%)", r.stderr)
  end)
end)
